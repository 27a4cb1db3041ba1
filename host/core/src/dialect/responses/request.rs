//! A Responses request -> an OpenAI chat completion request.
//!
//! Served: `model`, `input` (a string, or items: messages with `input_text` / `output_text` /
//! `input_image` parts, `function_call`, `function_call_output`, `custom_tool_call`,
//! `custom_tool_call_output`; `reasoning` items are dropped), `instructions`, `tools` (`function`;
//! `custom` tools as a function taking one string `input`), `tool_choice`, `parallel_tool_calls`,
//! `max_output_tokens`, `temperature`, `top_p`, `text.format` (text, json_object, json_schema),
//! `stream`, `store`, `previous_response_id`, `metadata`. Accepted and ignored: `reasoning`,
//! `include`, `truncation`, `user`, `safety_identifier`, `prompt_cache_key`, `service_tier`,
//! `stream_options`, `top_logprobs`. Refused (400): hosted tools (web search, file search,
//! computer use, code interpreter, image generation, MCP, local shell), `background`,
//! `conversation`, `prompt`, `input_file` parts, `item_reference` items, file ids.

use serde_json::{Map, Value, json};

use super::super::json::{
    Obj, as_obj, body, copy_numbers, invalid, invalid_type, missing, opt, opt_array, opt_bool, opt_str, opt_u32,
    req_str, unsupported,
};
use crate::errors::{ErrorKind, GatewayError};

/// What the response object echoes back of the request.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub instructions: Value,
    pub tools: Value,
    pub tool_choice: Value,
    pub temperature: Value,
    pub top_p: Value,
    pub parallel_tool_calls: Value,
    pub max_output_tokens: Value,
    pub metadata: Value,
    pub text: Value,
    pub previous_response_id: Value,
    pub store: bool,
    /// names of `custom` tools (their calls are answered as `custom_tool_call` items)
    pub custom_tools: Vec<String>,
}

/// The chat request a Responses request becomes.
#[derive(Debug)]
pub struct Translated {
    pub chat: Value,
    pub stream: bool,
    /// the conversation so far (earlier turns and this input), without the instructions
    pub conversation: Vec<Value>,
    pub echo: Echo,
}

const REFUSED: &[(&str, &str)] = &[
    ("background", "background responses are not supported"),
    ("conversation", "conversations are not supported; use previous_response_id"),
    ("prompt", "prompt templates are not supported"),
];

/// Translate; `previous` looks up a stored conversation by response id.
pub fn to_chat(bytes: &[u8], previous: impl FnOnce(&str) -> Option<Vec<Value>>) -> Result<Translated, GatewayError> {
    let o = body(bytes)?;
    for (k, why) in REFUSED {
        if opt(&o, k).is_some_and(|v| v != &Value::Bool(false)) {
            return Err(unsupported(k, format!("'{k}': {why} by Freeway.")));
        }
    }
    let model = req_str(&o, "model")?;
    let stream = opt_bool(&o, "stream")?.unwrap_or(false);
    let store = opt_bool(&o, "store")?.unwrap_or(true);
    let previous_id = opt_str(&o, "previous_response_id")?;
    let mut conversation = match previous_id {
        Some(id) => previous(id).ok_or_else(|| {
            GatewayError::new(ErrorKind::InvalidValue, format!("Previous response with id '{id}' not found."))
                .with_param("previous_response_id")
        })?,
        None => Vec::new(),
    };
    let (tools, custom_tools) = tools(&o)?;
    match opt(&o, "input") {
        None => return Err(missing("input")),
        Some(Value::String(s)) => conversation.push(json!({ "role": "user", "content": s })),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, i, &mut conversation)?;
            }
        }
        Some(v) => return Err(invalid_type("input", "a string or an array of input items", v)),
    }
    let instructions = opt_str(&o, "instructions")?;
    let mut messages = Vec::with_capacity(conversation.len() + 1);
    if let Some(text) = instructions.filter(|t| !t.is_empty()) {
        messages.push(json!({ "role": "system", "content": text }));
    }
    messages.extend(conversation.iter().cloned());
    let mut chat = Map::new();
    chat.insert("model".into(), model.into());
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(n) = opt_u32(&o, "max_output_tokens")? {
        chat.insert("max_tokens".into(), n.into());
    }
    copy_numbers(&o, &mut chat, &["temperature", "top_p"])?;
    if !tools.is_empty() {
        chat.insert("tools".into(), Value::Array(tools));
        if let Some(tc) = opt(&o, "tool_choice") {
            chat.insert("tool_choice".into(), tool_choice(tc)?);
        }
        if let Some(p) = opt_bool(&o, "parallel_tool_calls")? {
            chat.insert("parallel_tool_calls".into(), Value::Bool(p));
        }
    }
    let format = opt(&o, "text").and_then(|t| t.get("format")).filter(|f| !f.is_null());
    if let Some(rf) = format.map(response_format).transpose()?.flatten() {
        chat.insert("response_format".into(), rf);
    }
    if stream {
        chat.insert("stream".into(), Value::Bool(true));
        chat.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    let field = |k: &str| opt(&o, k).cloned().unwrap_or(Value::Null);
    let echo = Echo {
        instructions: field("instructions"),
        tools: opt(&o, "tools").cloned().unwrap_or_else(|| json!([])),
        tool_choice: opt(&o, "tool_choice").cloned().unwrap_or_else(|| json!("auto")),
        temperature: opt(&o, "temperature").cloned().unwrap_or(json!(1.0)),
        top_p: opt(&o, "top_p").cloned().unwrap_or(json!(1.0)),
        parallel_tool_calls: opt(&o, "parallel_tool_calls").cloned().unwrap_or(Value::Bool(true)),
        max_output_tokens: field("max_output_tokens"),
        metadata: opt(&o, "metadata").cloned().unwrap_or_else(|| json!({})),
        text: opt(&o, "text").cloned().unwrap_or_else(|| json!({ "format": { "type": "text" } })),
        previous_response_id: field("previous_response_id"),
        store,
        custom_tools,
    };
    Ok(Translated { chat: Value::Object(chat), stream, conversation, echo })
}

/// Message content parts -> chat content (a string when it is all text).
fn content(v: &Value, param: &str) -> Result<Value, GatewayError> {
    let parts = match v {
        Value::String(s) => return Ok(Value::String(s.clone())),
        Value::Array(parts) => parts,
        v => return Err(invalid_type(param, "a string or an array of content parts", v)),
    };
    let mut out = Vec::with_capacity(parts.len());
    let mut image = false;
    for (j, p) in parts.iter().enumerate() {
        let at = format!("{param}.{j}");
        let p = as_obj(p, &at)?;
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text" | "summary_text") => {
                let text = p.get("text").and_then(Value::as_str).ok_or_else(|| missing(&format!("{at}.text")))?;
                out.push(json!({ "type": "text", "text": text }));
            }
            Some("refusal") => {
                let text = p.get("refusal").and_then(Value::as_str).unwrap_or("");
                out.push(json!({ "type": "text", "text": text }));
            }
            Some("input_image") => {
                let url = p.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                    unsupported(
                        &format!("{at}.image_url"),
                        format!("{at}: images by file id are not supported; send image_url"),
                    )
                })?;
                let mut img = json!({ "url": url });
                if let Some(d) = p.get("detail").filter(|d| d.is_string()) {
                    img["detail"] = d.clone();
                }
                image = true;
                out.push(json!({ "type": "image_url", "image_url": img }));
            }
            Some("input_file") => {
                return Err(unsupported(&format!("{at}.type"), format!("{at}: input_file is not supported")));
            }
            other => {
                return Err(invalid(
                    &format!("{at}.type"),
                    format!("{at}: unknown content part type '{}'", other.unwrap_or("none")),
                ));
            }
        }
    }
    if image {
        return Ok(Value::Array(out));
    }
    let texts: Vec<&str> = out.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
    Ok(Value::String(texts.join("\n\n")))
}

/// Append a tool call to the conversation's last assistant message, or start one.
fn push_call(conversation: &mut Vec<Value>, call: Value) {
    if let Some(last) = conversation.last_mut()
        && last.get("role").and_then(Value::as_str) == Some("assistant")
    {
        match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
            Some(calls) => calls.push(call),
            None => last["tool_calls"] = json!([call]),
        }
        return;
    }
    conversation.push(json!({ "role": "assistant", "content": null, "tool_calls": [call] }));
}

fn output_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n\n")
        }
        Some(v) if !v.is_null() => v.to_string(),
        _ => String::new(),
    }
}

fn input_item(item: &Value, i: usize, conversation: &mut Vec<Value>) -> Result<(), GatewayError> {
    let at = format!("input.{i}");
    let o = as_obj(item, &at)?;
    let kind = o.get("type").and_then(Value::as_str).unwrap_or("message");
    let call_id = |o: &Obj| -> Result<String, GatewayError> {
        o.get("call_id").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| missing(&format!("{at}.call_id")))
    };
    match kind {
        "message" => {
            let role = match o.get("role").and_then(Value::as_str) {
                Some(r @ ("user" | "assistant" | "system")) => r,
                Some("developer") => "system",
                Some(r) => return Err(invalid(&format!("{at}.role"), format!("{at}.role: unknown role '{r}'"))),
                None => return Err(missing(&format!("{at}.role"))),
            };
            let c = o.get("content").ok_or_else(|| missing(&format!("{at}.content")))?;
            conversation.push(json!({ "role": role, "content": content(c, &format!("{at}.content"))? }));
        }
        "function_call" => {
            let name = o.get("name").and_then(Value::as_str).ok_or_else(|| missing(&format!("{at}.name")))?;
            let args = o.get("arguments").and_then(Value::as_str).unwrap_or("{}");
            let call =
                json!({ "id": call_id(o)?, "type": "function", "function": { "name": name, "arguments": args } });
            push_call(conversation, call);
        }
        "custom_tool_call" => {
            let name = o.get("name").and_then(Value::as_str).ok_or_else(|| missing(&format!("{at}.name")))?;
            let input = o.get("input").and_then(Value::as_str).unwrap_or("");
            let args = json!({ "input": input }).to_string();
            let call =
                json!({ "id": call_id(o)?, "type": "function", "function": { "name": name, "arguments": args } });
            push_call(conversation, call);
        }
        "function_call_output" | "custom_tool_call_output" => {
            let text = output_text(o.get("output"));
            conversation.push(json!({ "role": "tool", "tool_call_id": call_id(o)?, "content": text }));
        }
        "reasoning" => {}
        "item_reference" => {
            return Err(unsupported(&format!("{at}.type"), format!("{at}: item references are not supported")));
        }
        other => return Err(invalid(&format!("{at}.type"), format!("{at}: unsupported input item type '{other}'"))),
    }
    Ok(())
}

/// Function tools (and custom tools, as functions of one string) -> chat tools; the names of
/// the custom ones.
fn tools(o: &Obj) -> Result<(Vec<Value>, Vec<String>), GatewayError> {
    let Some(list) = opt_array(o, "tools")? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut out = Vec::with_capacity(list.len());
    let mut custom = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let at = format!("tools.{i}");
        let t = as_obj(t, &at)?;
        let name = || t.get("name").and_then(Value::as_str).ok_or_else(|| missing(&format!("{at}.name")));
        let mut f = Map::new();
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {
                f.insert("name".into(), name()?.into());
                f.insert(
                    "parameters".into(),
                    t.get("parameters").cloned().unwrap_or_else(|| json!({"type":"object","properties":{}})),
                );
                if let Some(s) = t.get("strict").filter(|s| s.is_boolean()) {
                    f.insert("strict".into(), s.clone());
                }
            }
            Some("custom") => {
                let n = name()?;
                custom.push(n.to_owned());
                f.insert("name".into(), n.into());
                f.insert(
                    "parameters".into(),
                    json!({ "type": "object", "properties": { "input": { "type": "string" } }, "required": ["input"] }),
                );
            }
            Some(kind) => {
                return Err(unsupported(
                    &format!("{at}.type"),
                    format!("{at}: hosted tool '{kind}' is not supported; only function and custom tools are"),
                ));
            }
            None => return Err(missing(&format!("{at}.type"))),
        }
        if let Some(d) = t.get("description").and_then(Value::as_str) {
            f.insert("description".into(), d.into());
        }
        out.push(json!({ "type": "function", "function": Value::Object(f) }));
    }
    Ok((out, custom))
}

fn tool_choice(tc: &Value) -> Result<Value, GatewayError> {
    match tc {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(tc.clone()),
        Value::Object(o) if matches!(o.get("type").and_then(Value::as_str), Some("function" | "custom")) => {
            let name = o.get("name").and_then(Value::as_str).ok_or_else(|| missing("tool_choice.name"))?;
            Ok(json!({ "type": "function", "function": { "name": name } }))
        }
        Value::Object(_) => {
            Err(unsupported("tool_choice", "tool_choice: only auto, none, required or a function are supported"))
        }
        v => Err(invalid_type("tool_choice", "a string or an object", v)),
    }
}

fn response_format(format: &Value) -> Result<Option<Value>, GatewayError> {
    let f = as_obj(format, "text.format")?;
    match f.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({ "type": "json_object" }))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(v) = f.get(k) {
                    schema.insert(k.into(), v.clone());
                }
            }
            if !schema.contains_key("schema") {
                return Err(missing("text.format.schema"));
            }
            Ok(Some(json!({ "type": "json_schema", "json_schema": Value::Object(schema) })))
        }
        other => {
            Err(invalid("text.format.type", format!("text.format.type: unknown format '{}'", other.unwrap_or("none"))))
        }
    }
}

#[cfg(test)]
mod tests;
