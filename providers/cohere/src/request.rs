//! OpenAI chat request -> Cohere `POST /v2/chat` request.
//!
//! - `system` and `developer` messages become `system` messages where they stand; user content
//!   stays a string or becomes `text` / `image_url` parts (`detail` kept); assistant messages keep
//!   their text and `tool_calls` (arguments as JSON strings, `{}` when empty) and send a
//!   `reasoning_content` they carry back as Cohere's `tool_plan`; tool results are `tool`
//!   messages with `tool_call_id` and the result text. `name` fields are dropped; assistant
//!   messages with neither text nor tool calls are left out.
//! - `tools` keep `name`, `description` and `parameters` (`$schema` and `additionalProperties`
//!   removed, which Cohere's tool-schema validator rejects); `strict` is dropped.
//! - `tool_choice`: `required` -> `REQUIRED`, `none` -> `NONE`, `auto` -> nothing, a named
//!   function -> `tools` cut to that one and `REQUIRED`, `allowed_tools` -> `tools` cut to the
//!   list (`REQUIRED` in `required` mode). Without tools no `tool_choice` is sent.
//! - `response_format`: `json_object` -> `{"type": "json_object"}`, `json_schema` -> the same
//!   with `json_schema` set to the schema.
//! - sampling: `max_completion_tokens` / `max_tokens` -> `max_tokens`, `top_p` -> `p` (clamped
//!   to Cohere's 0.01 - 0.99), `top_k` -> `k`, `stop` -> `stop_sequences` (at most 5),
//!   `frequency_penalty` / `presence_penalty` clamped to Cohere's 0 - 1, `seed`, `temperature`;
//!   `reasoning_effort` -> `thinking` (`none` disables it).
//! - refused with a 400 naming the parameter: `n` > 1, `logprobs`, a non-empty `logit_bias`,
//!   audio output, the legacy `functions`, content parts other than text and images. Ignored
//!   (no Cohere counterpart): `parallel_tool_calls`, `user`, `store`, `metadata`,
//!   `service_tier`, `stream_options` (usage always comes at the end of a Cohere stream).

use freeway_sdk::errors::bad_request;
use freeway_sdk::openai::{ChatRequest, Content, ContentPart, Message, Tool};
use freeway_sdk::provider::setting;
use freeway_sdk::tools::{ToolChoice, Tools};
use freeway_sdk::types::{ProviderConfig, ProviderError};
use serde_json::{Map, Value, json};

/// Cohere accepts at most this many stop sequences.
const MAX_STOP: usize = 5;

/// Build the Cohere body from the client's JSON.
pub fn build(body: &str, model: &str, streaming: bool, config: &ProviderConfig) -> Result<Value, ProviderError> {
    let raw: Value =
        serde_json::from_str(body).map_err(|e| bad_request(&format!("the request body is not valid JSON: {e}")))?;
    let req: ChatRequest = serde_json::from_value(raw.clone())
        .map_err(|e| bad_request(&format!("the request is not a valid chat completion request: {e}")))?;
    refuse_unsupported(&req)?;

    let mut out = Map::new();
    out.insert("model".to_owned(), json!(model));
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, msg) in req.messages.iter().enumerate() {
        if let Some(m) = message(msg, raw.pointer(&format!("/messages/{i}")))? {
            messages.push(m);
        }
    }
    if messages.is_empty() {
        return Err(bad_request("the request has no messages Cohere can answer"));
    }
    out.insert("messages".to_owned(), Value::Array(messages));
    out.insert("stream".to_owned(), json!(streaming));

    let (tools, choice) = tools_and_choice(&req)?;
    let has_tools = !tools.is_empty();
    if has_tools {
        out.insert("tools".to_owned(), Value::Array(tools));
        if let Some(choice) = choice {
            out.insert("tool_choice".to_owned(), json!(choice));
        }
    }
    sampling(&req, &mut out)?;
    if let Some(format) = response_format(&req)? {
        out.insert("response_format".to_owned(), format);
    }
    if let Some(thinking) = thinking(&req)? {
        out.insert("thinking".to_owned(), thinking);
    }
    // Cohere does not combine safety modes with tools
    if let Some(mode) = setting(config, "safety_mode")
        && !has_tools
    {
        out.insert("safety_mode".to_owned(), json!(mode.to_ascii_uppercase()));
    }
    Ok(Value::Object(out))
}

/// Parameters that would change what the client gets back in ways Cohere cannot honour.
fn refuse_unsupported(req: &ChatRequest) -> Result<(), ProviderError> {
    let extra = &req.extra;
    if extra.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(bad_request("`n` greater than 1 is not supported by Cohere"));
    }
    req.refuse_untranslatable("Cohere")?;
    Ok(())
}

/// One OpenAI message -> one Cohere message (`None`: nothing Cohere could use).
fn message(msg: &Message, raw: Option<&Value>) -> Result<Option<Value>, ProviderError> {
    let text = || msg.content.as_ref().map(Content::text).unwrap_or_default();
    Ok(Some(match msg.role.as_str() {
        "system" | "developer" => json!({"role": "system", "content": text()}),
        "user" => {
            let content = match &msg.content {
                None => Value::String(String::new()),
                Some(Content::Text(t)) => Value::String(t.clone()),
                Some(Content::Parts(parts)) => {
                    let mut out = Vec::with_capacity(parts.len());
                    for part in parts {
                        if let Some(p) = content_part(part)? {
                            out.push(p);
                        }
                    }
                    Value::Array(out)
                }
            };
            json!({"role": "user", "content": content})
        }
        "assistant" => {
            let mut m = Map::new();
            m.insert("role".to_owned(), json!("assistant"));
            let content = text();
            let calls = msg.tool_calls.as_deref().unwrap_or_default();
            if !calls.is_empty() {
                let mut out = Vec::with_capacity(calls.len());
                for (j, call) in calls.iter().enumerate() {
                    let name = call
                        .function
                        .name
                        .as_deref()
                        .filter(|n| !n.is_empty())
                        .ok_or_else(|| bad_request("an assistant tool call has no function name"))?;
                    let id = call.id.clone().unwrap_or_else(|| format!("{name}_{j}"));
                    let arguments =
                        if call.function.arguments.trim().is_empty() { "{}" } else { call.function.arguments.as_str() };
                    out.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}));
                }
                // the plan Cohere wrote before its calls, as the client got it back
                let plan = raw.and_then(|m| m.get("reasoning_content")).and_then(Value::as_str).unwrap_or("");
                if !plan.is_empty() {
                    m.insert("tool_plan".to_owned(), json!(plan));
                }
                m.insert("tool_calls".to_owned(), Value::Array(out));
            } else if content.is_empty() {
                return Ok(None);
            }
            if !content.is_empty() {
                m.insert("content".to_owned(), json!(content));
            }
            Value::Object(m)
        }
        "tool" => {
            let id = msg
                .tool_call_id
                .as_deref()
                .filter(|id| !id.is_empty())
                .ok_or_else(|| bad_request("a tool message has no `tool_call_id`"))?;
            json!({"role": "tool", "tool_call_id": id, "content": text()})
        }
        "function" => {
            return Err(bad_request("`function` messages (legacy function calling) are not supported; use `tool`"));
        }
        other => return Err(bad_request(&format!("unsupported message role `{other}`"))),
    }))
}

fn content_part(part: &ContentPart) -> Result<Option<Value>, ProviderError> {
    match part.kind.as_str() {
        "text" | "refusal" => {
            let text = part.text.as_deref().or_else(|| part.extra.get("refusal").and_then(Value::as_str)).unwrap_or("");
            Ok(Some(json!({"type": "text", "text": text})))
        }
        "image_url" => {
            let image = part.image_url.as_ref().ok_or_else(|| bad_request("an image_url part has no `image_url`"))?;
            let url = image.url.as_str();
            if !(url.starts_with("data:") || url.starts_with("https://") || url.starts_with("http://")) {
                return Err(bad_request("image URLs must be data: URLs or http(s) URLs"));
            }
            let mut image_url = json!({"url": url});
            if let Some(detail) = &image.detail {
                image_url["detail"] = json!(detail);
            }
            Ok(Some(json!({"type": "image_url", "image_url": image_url})))
        }
        other => Err(bad_request(&format!("content parts of type `{other}` are not supported by Cohere"))),
    }
}

/// A JSON schema without the keywords Cohere's tool-schema validator rejects.
pub fn clean_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(obj) => Value::Object(
            obj.iter()
                .filter(|(k, _)| k.as_str() != "$schema" && k.as_str() != "additionalProperties")
                .map(|(k, v)| {
                    // property names are data, not keywords: keep them, clean what they hold
                    let v = if k == "properties" || k == "$defs" || k == "definitions" {
                        match v {
                            Value::Object(props) => {
                                Value::Object(props.iter().map(|(name, s)| (name.clone(), clean_schema(s))).collect())
                            }
                            other => other.clone(),
                        }
                    } else {
                        clean_schema(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

fn cohere_tool(tool: &Tool) -> Value {
    let f = &tool.function;
    let mut function = Map::new();
    function.insert("name".to_owned(), json!(f.name));
    if let Some(d) = &f.description {
        function.insert("description".to_owned(), json!(d));
    }
    if let Some(params) = &f.parameters {
        function.insert("parameters".to_owned(), clean_schema(params));
    }
    json!({"type": "function", "function": function})
}

/// `tools` and `tool_choice` together: a choice naming functions cuts the tool list down.
fn tools_and_choice(req: &ChatRequest) -> Result<(Vec<Value>, Option<&'static str>), ProviderError> {
    let tools = Tools::read(req, "Cohere")?;
    let mode = match &tools.choice {
        Some(ToolChoice::None) => Some("NONE"),
        Some(c) if c.forces_a_call() => Some("REQUIRED"),
        _ => None,
    };
    Ok((tools.permitted().into_iter().map(cohere_tool).collect(), mode))
}

fn sampling(req: &ChatRequest, out: &mut Map<String, Value>) -> Result<(), ProviderError> {
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_owned(), v);
    };
    if let Some(max) = req.max_output() {
        put("max_tokens", json!(max));
    }
    if let Some(t) = req.temperature {
        put("temperature", json!(t));
    }
    if let Some(p) = req.top_p {
        put("p", json!(p.clamp(0.01, 0.99)));
    }
    if let Some(k) = req.extra.get("top_k").and_then(Value::as_u64) {
        put("k", json!(k.min(500)));
    }
    if let Some(stop) = &req.stop {
        let stop = stop.to_vec();
        if stop.len() > MAX_STOP {
            return Err(bad_request(&format!("Cohere accepts at most {MAX_STOP} stop sequences")));
        }
        if !stop.is_empty() {
            put("stop_sequences", json!(stop));
        }
    }
    if let Some(seed) = req.seed {
        put("seed", json!(seed));
    }
    for key in ["frequency_penalty", "presence_penalty"] {
        if let Some(v) = req.extra.get(key).and_then(Value::as_f64) {
            put(key, json!(v.clamp(0.0, 1.0)));
        }
    }
    Ok(())
}

fn response_format(req: &ChatRequest) -> Result<Option<Value>, ProviderError> {
    let Some(format) = &req.response_format else { return Ok(None) };
    Ok(match format.get("type").and_then(Value::as_str) {
        Some("text") | None => None,
        Some("json_object") => Some(json!({"type": "json_object"})),
        Some("json_schema") => {
            let mut f = json!({"type": "json_object"});
            if let Some(schema) = format.pointer("/json_schema/schema") {
                f["json_schema"] = match schema {
                    Value::Object(obj) => Value::Object(
                        obj.iter()
                            .filter(|(k, _)| k.as_str() != "$schema")
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                    other => other.clone(),
                };
            }
            Some(f)
        }
        Some(other) => return Err(bad_request(&format!("unsupported response_format type `{other}`"))),
    })
}

/// `reasoning_effort` -> Cohere's `thinking` (reasoning models only).
fn thinking(req: &ChatRequest) -> Result<Option<Value>, ProviderError> {
    let Some(effort) = req.extra.get("reasoning_effort").and_then(Value::as_str) else { return Ok(None) };
    Ok(Some(match effort.to_ascii_lowercase().as_str() {
        "none" => json!({"type": "disabled"}),
        "minimal" | "low" => json!({"type": "enabled", "token_budget": 1024}),
        "medium" => json!({"type": "enabled", "token_budget": 8192}),
        "high" => json!({"type": "enabled"}),
        other => return Err(bad_request(&format!("unsupported reasoning_effort `{other}`"))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(settings: &[(&str, &str)]) -> ProviderConfig {
        ProviderConfig {
            provider_id: "cohere".into(),
            base_url: "https://api.cohere.com/v2".into(),
            settings: settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    fn build_for(body: Value) -> Result<Value, ProviderError> {
        build(&body.to_string(), "command-a-03-2025", false, &config(&[]))
    }

    fn ok(body: Value) -> Value {
        build_for(body).unwrap()
    }

    #[test]
    fn messages_keep_their_order_and_roles() {
        let c = ok(json!({"model": "command-a-03-2025", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "Hi", "name": "bob"},
            {"role": "assistant", "content": "Oui."},
            {"role": "assistant", "content": null},
            {"role": "user", "content": [{"type": "text", "text": "Merci"}]},
        ]}));
        assert_eq!(c["model"], "command-a-03-2025");
        assert_eq!(c["stream"], false);
        assert_eq!(
            c["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": "Use French."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Oui."},
                {"role": "user", "content": [{"type": "text", "text": "Merci"}]},
            ])
        );
        for absent in ["tools", "tool_choice", "response_format", "max_tokens", "p", "thinking"] {
            assert!(c.get(absent).is_none(), "{absent}");
        }
        let streamed = build(
            &json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}).to_string(),
            "m",
            true,
            &config(&[]),
        )
        .unwrap();
        assert_eq!(streamed["stream"], true);
        assert!(build_for(json!({"model": "m", "messages": []})).is_err());
    }

    #[test]
    fn images_are_image_url_parts() {
        let c = ok(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp", "detail": "low"}},
        ]}]}));
        assert_eq!(
            c["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp", "detail": "low"}},
            ])
        );
        let bad = build_for(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}));
        assert!(bad.unwrap_err().message.contains("`input_audio`"));
        let bad = build_for(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}));
        assert!(bad.is_err());
    }

    fn weather_tools() -> Value {
        json!([{"type": "function", "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "strict": true,
            "parameters": {"type": "object", "additionalProperties": false, "$schema": "x",
                "properties": {"city": {"type": "string"}, "additionalProperties": {"type": "string"}}, "required": ["city"]},
        }}, {"type": "function", "function": {"name": "now"}}])
    }

    #[test]
    fn tools_calls_and_results_round_trip() {
        let c = ok(json!({"model": "m", "tools": weather_tools(), "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "reasoning_content": "I will look both up.", "tool_calls": [
                {"id": "get_weather_a1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "get_weather_b2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "get_weather_a1", "content": "{\"temp_c\": 21}"},
            {"role": "tool", "tool_call_id": "get_weather_b2", "content": [{"type": "text", "text": "sunny"}]},
        ]}));
        assert_eq!(
            c["tools"],
            json!([
                {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "additionalProperties": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "now"}},
            ])
        );
        assert!(c.get("tool_choice").is_none());
        let m = &c["messages"];
        assert_eq!(
            m[1],
            json!({"role": "assistant", "tool_plan": "I will look both up.", "tool_calls": [
                {"id": "get_weather_a1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "get_weather_b2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            ]})
        );
        assert_eq!(m[2], json!({"role": "tool", "tool_call_id": "get_weather_a1", "content": "{\"temp_c\": 21}"}));
        assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "get_weather_b2", "content": "sunny"}));
        let bad = build_for(json!({"model": "m", "messages": [{"role": "tool", "content": "1"}]}));
        assert!(bad.unwrap_err().message.contains("tool_call_id"));
    }

    #[test]
    fn tool_choice_modes() {
        let with = |choice: Value| {
            ok(
                json!({"model": "m", "tools": weather_tools(), "tool_choice": choice, "messages": [{"role": "user", "content": "x"}]}),
            )
        };
        assert_eq!(with(json!("required"))["tool_choice"], "REQUIRED");
        assert_eq!(with(json!("none"))["tool_choice"], "NONE");
        let auto = with(json!("auto"));
        assert!(auto.get("tool_choice").is_none());
        assert_eq!(auto["tools"].as_array().unwrap().len(), 2);
        let named = with(json!({"type": "function", "function": {"name": "now"}}));
        assert_eq!(named["tool_choice"], "REQUIRED");
        assert_eq!(named["tools"], json!([{"type": "function", "function": {"name": "now"}}]));
        let allowed = with(json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
            {"type": "function", "function": {"name": "get_weather"}}]}}));
        assert!(allowed.get("tool_choice").is_none());
        assert_eq!(allowed["tools"].as_array().unwrap().len(), 1);
        let bad =
            build_for(json!({"model": "m", "tools": weather_tools(), "messages": [{"role": "user", "content": "x"}],
            "tool_choice": {"type": "function", "function": {"name": "nope"}}}));
        assert!(bad.unwrap_err().message.contains("nope"));
        // no tools: no tool_choice
        let c = ok(json!({"model": "m", "tool_choice": "required", "messages": [{"role": "user", "content": "x"}]}));
        assert!(c.get("tool_choice").is_none() && c.get("tools").is_none());
        assert!(
            build_for(
                json!({"model": "m", "tools": [{"type": "web_search"}], "messages": [{"role": "user", "content": "x"}]})
            )
            .is_err()
        );
    }

    #[test]
    fn sampling_json_mode_and_thinking() {
        let c = ok(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.2, "top_p": 1.0, "top_k": 40, "max_tokens": 100, "max_completion_tokens": 50,
            "stop": ["END", "STOP"], "seed": 7, "presence_penalty": 0.5, "frequency_penalty": -1.0,
            "response_format": {"type": "json_object"}, "reasoning_effort": "low",
            "parallel_tool_calls": true, "user": "u1", "stream_options": {"include_usage": true}}));
        assert_eq!(c["temperature"], 0.2);
        assert_eq!(c["p"], 0.99);
        assert_eq!(c["k"], 40);
        assert_eq!(c["max_tokens"], 50);
        assert_eq!(c["stop_sequences"], json!(["END", "STOP"]));
        assert_eq!(c["seed"], 7);
        assert_eq!(c["presence_penalty"], 0.5);
        assert_eq!(c["frequency_penalty"], 0.0);
        assert_eq!(c["response_format"], json!({"type": "json_object"}));
        assert_eq!(c["thinking"], json!({"type": "enabled", "token_budget": 1024}));
        for absent in [
            "top_p",
            "stop",
            "parallel_tool_calls",
            "user",
            "stream_options",
            "reasoning_effort",
            "max_completion_tokens",
        ] {
            assert!(c.get(absent).is_none(), "{absent}");
        }
        let c = ok(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": "END",
            "reasoning_effort": "none",
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": true, "schema": {
                "$schema": "x", "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}}));
        assert_eq!(c["stop_sequences"], json!(["END"]));
        assert_eq!(c["thinking"], json!({"type": "disabled"}));
        assert_eq!(
            c["response_format"],
            json!({"type": "json_object", "json_schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}})
        );
        let text = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}),
        );
        assert!(text.get("response_format").is_none());
        assert!(build_for(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e", "f"]})).is_err());
        assert!(build_for(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}})).is_err());
    }

    #[test]
    fn safety_mode_setting_applies_without_tools() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}).to_string();
        let c = build(&body, "m", false, &config(&[("safety_mode", "strict")])).unwrap();
        assert_eq!(c["safety_mode"], "STRICT");
        let body =
            json!({"model": "m", "tools": weather_tools(), "messages": [{"role": "user", "content": "x"}]}).to_string();
        let c = build(&body, "m", false, &config(&[("safety_mode", "OFF")])).unwrap();
        assert!(c.get("safety_mode").is_none());
    }

    #[test]
    fn what_cohere_cannot_express_is_refused() {
        let base = || json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let with = |k: &str, v: Value| {
            let mut b = base();
            b[k] = v;
            b
        };
        assert!(build_for(with("n", json!(2))).unwrap_err().message.contains("`n`"));
        assert!(build_for(with("n", json!(1))).is_ok());
        assert!(build_for(with("logprobs", json!(true))).unwrap_err().message.contains("logprobs"));
        assert!(build_for(with("logprobs", json!(false))).is_ok());
        assert!(build_for(with("logit_bias", json!({"5": 1}))).is_err());
        assert!(build_for(with("logit_bias", json!({}))).is_ok());
        assert!(build_for(with("modalities", json!(["text", "audio"]))).is_err());
        assert!(build_for(with("functions", json!([{"name": "f"}]))).is_err());
        assert!(build_for(with("reasoning_effort", json!("extreme"))).is_err());
        assert!(build("not json", "m", false, &config(&[])).is_err());
        let e = build_for(json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]})).unwrap_err();
        assert!(e.message.contains("wizard"));
        assert_eq!(e.kind, freeway_sdk::types::ErrorKind::BadRequest);
    }
}
