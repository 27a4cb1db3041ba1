//! A request's function tools and its `tool_choice`, read once the same way for every translating
//! provider: each then writes them in its own API's shape.
//!
//! ```ignore
//! let tools = Tools::read(&req, "Gemini")?;
//! for tool in tools.permitted() { /* tool.function.name, .description, .parameters */ }
//! match tools.choice { Some(ToolChoice::Required) => ..., _ => ... }
//! ```

use serde_json::Value;

use crate::errors::bad_request;
use crate::openai::{ChatRequest, Tool};
use crate::types::ProviderError;

/// What the client said about calling tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice<'a> {
    /// the model decides (`"auto"`)
    Auto,
    /// no tool call (`"none"`)
    None,
    /// some tool must be called (`"required"`, or `"any"` as some clients write it)
    Required,
    /// this function must be called (`{"type": "function", "function": {"name": ...}}`)
    Function(&'a str),
    /// only these functions may be called; with `required`, one of them must be
    /// (`{"type": "allowed_tools", "allowed_tools": {"mode": ..., "tools": [...]}}`)
    Allowed { names: Vec<&'a str>, required: bool },
}

impl ToolChoice<'_> {
    /// Whether the choice forces some tool call.
    pub fn forces_a_call(&self) -> bool {
        matches!(self, ToolChoice::Required | ToolChoice::Function(_) | ToolChoice::Allowed { required: true, .. })
    }
}

/// A request's function tools and its tool choice, checked against each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Tools<'a> {
    /// every tool the client declared, in its order
    pub declared: Vec<&'a Tool>,
    /// `None` when the client set no choice or declared no tools (nothing to choose from)
    pub choice: Option<ToolChoice<'a>>,
}

impl<'a> Tools<'a> {
    /// Read `tools` and `tool_choice`. A tool that is not a function (`provider` names the API in
    /// the message), a function without a name, a choice this API cannot express and a choice that
    /// names a function which is not declared are the client's errors (400).
    pub fn read(req: &'a ChatRequest, provider: &str) -> Result<Tools<'a>, ProviderError> {
        let declared: Vec<&Tool> = req.tools.iter().flatten().collect();
        for tool in &declared {
            if tool.kind != "function" {
                return Err(bad_request(&format!("tools of type `{}` are not supported by {provider}", tool.kind)));
            }
            if tool.function.name.is_empty() {
                return Err(bad_request("a tool has no function name"));
            }
        }
        let choice = parse_choice(req.tool_choice.as_ref())?;
        let named: &[&str] = match &choice {
            Some(ToolChoice::Function(name)) => std::slice::from_ref(name),
            Some(ToolChoice::Allowed { names, .. }) => names,
            _ => &[],
        };
        if let Some(missing) = named.iter().find(|n| !declared.iter().any(|t| t.function.name == **n)) {
            return Err(bad_request(&format!("`tool_choice` names the function `{missing}`, which is not in `tools`")));
        }
        let choice = if declared.is_empty() { None } else { choice };
        Ok(Tools { declared, choice })
    }

    /// The declared tools the choice leaves callable: the one named function, the allowed list,
    /// or all of them.
    pub fn permitted(&self) -> Vec<&'a Tool> {
        let keep = |t: &&Tool| match &self.choice {
            Some(ToolChoice::Function(name)) => t.function.name == *name,
            Some(ToolChoice::Allowed { names, .. }) => names.contains(&t.function.name.as_str()),
            _ => true,
        };
        self.declared.iter().copied().filter(keep).collect()
    }
}

fn parse_choice(value: Option<&Value>) -> Result<Option<ToolChoice<'_>>, ProviderError> {
    let mode = |m: &str, unsupported: &str| match m {
        "auto" => Ok(ToolChoice::Auto),
        "none" => Ok(ToolChoice::None),
        "required" | "any" => Ok(ToolChoice::Required),
        other => Err(bad_request(&format!("unsupported {unsupported} `{other}`"))),
    };
    let obj = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => return mode(s, "tool_choice").map(Some),
        Some(Value::Object(obj)) => obj,
        Some(_) => return Err(bad_request("tool_choice must be a string or an object")),
    };
    match obj.get("type").and_then(Value::as_str).unwrap_or("function") {
        "function" => {
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad_request("tool_choice names no function"))?;
            Ok(Some(ToolChoice::Function(name)))
        }
        "allowed_tools" => {
            let allowed = obj.get("allowed_tools").unwrap_or(&Value::Null);
            let names = allowed
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                .collect();
            let required =
                match mode(allowed.get("mode").and_then(Value::as_str).unwrap_or("auto"), "allowed_tools mode")? {
                    ToolChoice::Auto => false,
                    ToolChoice::Required => true,
                    _ => return Err(bad_request("allowed_tools mode must be `auto` or `required`")),
                };
            Ok(Some(ToolChoice::Allowed { names, required }))
        }
        other => Err(bad_request(&format!("unsupported tool_choice type `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(tool_choice: Value) -> ChatRequest {
        serde_json::from_value(json!({
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "now"}}
            ],
            "tool_choice": tool_choice
        }))
        .unwrap()
    }

    fn names(tools: &[&Tool]) -> Vec<String> {
        tools.iter().map(|t| t.function.name.clone()).collect()
    }

    #[test]
    fn string_choices_keep_every_tool() {
        for (text, want) in [
            ("auto", ToolChoice::Auto),
            ("none", ToolChoice::None),
            ("required", ToolChoice::Required),
            ("any", ToolChoice::Required),
        ] {
            let req = request(json!(text));
            let tools = Tools::read(&req, "X").unwrap();
            assert_eq!(tools.choice, Some(want), "{text}");
            assert_eq!(names(&tools.permitted()), ["get_weather", "now"]);
        }
        let req = request(Value::Null);
        assert_eq!(Tools::read(&req, "X").unwrap().choice, None);
    }

    #[test]
    fn a_named_function_or_an_allowed_list_cuts_the_tools() {
        let req = request(json!({"type": "function", "function": {"name": "now"}}));
        let tools = Tools::read(&req, "X").unwrap();
        assert_eq!(tools.choice, Some(ToolChoice::Function("now")));
        assert!(tools.choice.as_ref().is_some_and(ToolChoice::forces_a_call));
        assert_eq!(names(&tools.permitted()), ["now"]);

        let req = request(json!({"type": "allowed_tools", "allowed_tools": {"mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_weather"}}]}}));
        let tools = Tools::read(&req, "X").unwrap();
        assert_eq!(tools.choice, Some(ToolChoice::Allowed { names: vec!["get_weather"], required: true }));
        assert_eq!(names(&tools.permitted()), ["get_weather"]);
        assert_eq!(names(&tools.declared), ["get_weather", "now"]);

        let req = request(json!({"type": "allowed_tools", "allowed_tools": {"tools": []}}));
        let tools = Tools::read(&req, "X").unwrap();
        assert!(!tools.choice.as_ref().is_some_and(ToolChoice::forces_a_call));
    }

    #[test]
    fn mistakes_are_the_clients_errors() {
        for (choice, says) in [
            (json!("sometimes"), "unsupported tool_choice `sometimes`"),
            (json!(3), "string or an object"),
            (json!({"type": "function", "function": {}}), "names no function"),
            (json!({"type": "function", "function": {"name": "nope"}}), "`nope`, which is not in `tools`"),
            (json!({"type": "allowed_tools", "allowed_tools": {"tools": [{"function": {"name": "x"}}]}}), "`x`"),
            (json!({"type": "allowed_tools", "allowed_tools": {"mode": "none", "tools": []}}), "mode"),
            (json!({"type": "web_search"}), "type `web_search`"),
        ] {
            let req = request(choice.clone());
            let e = Tools::read(&req, "X").unwrap_err();
            assert_eq!(e.status, 400, "{choice}");
            assert!(e.message.contains(says), "{choice}: {}", e.message);
        }
        let req: ChatRequest = serde_json::from_value(json!({"model": "m", "messages": [],
            "tools": [{"type": "web_search", "function": {"name": "search"}}]}))
        .unwrap();
        assert!(Tools::read(&req, "Gemini").unwrap_err().message.contains("not supported by Gemini"));
    }

    #[test]
    fn without_tools_there_is_no_choice() {
        let req: ChatRequest =
            serde_json::from_value(json!({"model": "m", "messages": [], "tool_choice": "required"})).unwrap();
        assert_eq!(Tools::read(&req, "X").unwrap(), Tools { declared: vec![], choice: None });
    }
}
