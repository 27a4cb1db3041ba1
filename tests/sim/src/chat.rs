//! Chat completions: request validation, the deterministic reply, and the non-stream body.

use std::ops::Range;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

/// `system_fingerprint` of every response.
pub const FINGERPRINT: &str = "fp_sim";
/// Arguments of every simulated tool call.
pub const TOOL_ARGUMENTS: &str = r#"{"sim":true}"#;
/// Text in the last user message that makes a request with `tools` get a tool call.
pub const TOOL_TRIGGER: &str = "call a tool";

/// The parts of a chat request the simulator acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub stream: bool,
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    pub prompt_tokens: u64,
    /// Function to call when the request asks for a tool call.
    pub tool: Option<&'a str>,
}

/// Validates a chat body: JSON object with string `model` and array `messages`.
pub fn parse(body: Option<&Value>) -> Result<ChatRequest<'_>, String> {
    let Some(Value::Object(body)) = body else {
        return Err(
            "We could not parse the JSON body of your request. The request body must be a JSON object.".to_owned()
        );
    };
    let model = match body.get("model") {
        Some(Value::String(model)) => model.as_str(),
        Some(_) => return Err("Invalid type for 'model': expected a string.".to_owned()),
        None => return Err("you must provide a model parameter".to_owned()),
    };
    let messages = match body.get("messages") {
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err("Invalid type for 'messages': expected an array.".to_owned()),
        None => return Err("Missing required parameter: 'messages'.".to_owned()),
    };
    let mut max_tokens = None;
    for field in ["max_completion_tokens", "max_tokens"] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(value) => match value.as_u64() {
                Some(n) if max_tokens.is_none() => max_tokens = Some(n),
                Some(_) => {}
                None => {
                    return Err(format!("Invalid type for '{field}': expected a non-negative integer."));
                }
            },
        }
    }
    let chars: usize = messages.iter().map(|m| text_chars(m.get("content"))).sum();
    let tool = body
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|tools| tools.first())
        .filter(|_| last_user_text_contains(messages, TOOL_TRIGGER))
        .map(|tool| tool.pointer("/function/name").and_then(Value::as_str).unwrap_or("tool"));
    Ok(ChatRequest {
        model,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: body
            .get("stream_options")
            .and_then(|options| options.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        max_tokens,
        prompt_tokens: (chars as u64 / 4).max(1),
        tool,
    })
}

/// Characters of a message content: a string, or the `text` of array parts.
fn text_chars(content: Option<&Value>) -> usize {
    match content {
        Some(Value::String(text)) => text.chars().count(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .map(|text| text.chars().count())
            .sum(),
        _ => 0,
    }
}

fn last_user_text_contains(messages: &[Value], needle: &str) -> bool {
    let Some(last_user) = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")) else {
        return false;
    };
    match last_user.get("content") {
        Some(Value::String(text)) => text.contains(needle),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|part| part.get("text").and_then(Value::as_str)).any(|text| text.contains(needle))
        }
        _ => false,
    }
}

/// A scripted `reply` override.
#[derive(Debug, Clone, Copy, Default)]
pub struct Custom<'a> {
    pub reasoning: Option<&'a str>,
    pub content: Option<&'a str>,
    pub finish_reason: Option<&'a str>,
    pub usage: Option<&'a Value>,
    pub extra: Option<&'a Map<String, Value>>,
}

/// A tool call in the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
}

/// Everything needed to render one completion, as a body or as a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub id: String,
    pub seq: u64,
    pub created: u64,
    pub model: String,
    /// Reasoning before the content, when scripted.
    pub reasoning: Option<String>,
    /// Text content ("" when the reply is a tool call).
    pub content: String,
    pub tool_call: Option<ToolCall>,
    pub finish_reason: String,
    pub usage: Value,
    pub extra: Option<Map<String, Value>>,
    /// Prompt + completion tokens charged to the rate limiter.
    pub tokens: u64,
}

/// "tok0 tok1 ... tok{n-1}".
pub fn words(n: u64) -> String {
    let mut text = String::with_capacity(n as usize * 6);
    for i in 0..n {
        if i > 0 {
            text.push(' ');
        }
        text.push_str("tok");
        text.push_str(&i.to_string());
    }
    text
}

/// Splits text into stream pieces, each word carrying the whitespace before it
/// ("a b" -> "a", " b"); joined they give `text`.
pub fn pieces(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut seen_word = false;
    let mut prev_ws = true;
    for (i, ch) in text.char_indices() {
        let ws = ch.is_whitespace();
        if ws && !prev_ws && seen_word && !text[i..].trim_start().is_empty() {
            out.push(start..i);
            start = i;
        }
        seen_word |= !ws;
        prev_ws = ws;
    }
    if start < text.len() {
        out.push(start..text.len());
    }
    out
}

/// Plans the reply to `req`.
pub fn plan(req: &ChatRequest<'_>, reply_tokens: u32, seq: u64, created: u64, custom: Option<Custom<'_>>) -> Reply {
    let custom = custom.unwrap_or_default();
    let (content, tool_call, completion_tokens, default_finish) = match (custom.content, req.tool) {
        (Some(content), _) => {
            let n = pieces(content).len() as u64;
            (content.to_owned(), None, n, "stop")
        }
        (None, Some(name)) => {
            let n = capped(req, reply_tokens).0;
            let call = ToolCall { id: format!("call_sim_{seq}"), name: name.to_owned() };
            (String::new(), Some(call), n, "tool_calls")
        }
        (None, None) => {
            let (n, was_capped) = capped(req, reply_tokens);
            (words(n), None, n, if was_capped { "length" } else { "stop" })
        }
    };
    let mut usage = serde_json::json!({
        "prompt_tokens": req.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": req.prompt_tokens + completion_tokens,
    });
    match (custom.usage, &mut usage) {
        (Some(Value::Object(over)), Value::Object(base)) => {
            base.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        (Some(other), _) => usage = other.clone(),
        (None, _) => {}
    }
    Reply {
        id: format!("chatcmpl-sim-{seq}"),
        seq,
        created,
        model: req.model.to_owned(),
        reasoning: custom.reasoning.map(str::to_owned),
        content,
        tool_call,
        finish_reason: custom.finish_reason.unwrap_or(default_finish).to_owned(),
        usage,
        extra: custom.extra.cloned(),
        tokens: req.prompt_tokens + completion_tokens,
    }
}

/// Completion length and whether `max_tokens` cut it.
fn capped(req: &ChatRequest<'_>, reply_tokens: u32) -> (u64, bool) {
    let n = u64::from(reply_tokens);
    match req.max_tokens {
        Some(max) if max < n => (max, true),
        _ => (n, false),
    }
}

#[derive(Serialize)]
pub(crate) struct XSim {
    pub request: u64,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    usage: &'a Value,
    system_fingerprint: &'static str,
    x_sim: XSim,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut<'a>; 1]>,
    refusal: Option<()>,
}

#[derive(Serialize)]
pub(crate) struct ToolCallOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionOut<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// The non-stream `chat.completion` body.
pub fn completion_body(reply: &Reply) -> Bytes {
    let tool_calls = reply.tool_call.as_ref().map(|call| {
        [ToolCallOut {
            index: None,
            id: Some(&call.id),
            kind: Some("function"),
            function: FunctionOut { name: Some(&call.name), arguments: TOOL_ARGUMENTS },
        }]
    });
    let completion = Completion {
        id: &reply.id,
        object: "chat.completion",
        created: reply.created,
        model: &reply.model,
        choices: [CompletionChoice {
            index: 0,
            message: Message {
                role: "assistant",
                reasoning_content: reply.reasoning.as_deref(),
                content: if tool_calls.is_some() { None } else { Some(&reply.content) },
                tool_calls,
                refusal: None,
            },
            logprobs: None,
            finish_reason: &reply.finish_reason,
        }],
        usage: &reply.usage,
        system_fingerprint: FINGERPRINT,
        x_sim: XSim { request: reply.seq },
    };
    encode(&completion, reply.extra.as_ref())
}

/// Serializes `value`, merging `extra` into its top level (extra wins on conflicts).
pub(crate) fn encode<T: Serialize>(value: &T, extra: Option<&Map<String, Value>>) -> Bytes {
    let result = match extra {
        None => serde_json::to_vec(value),
        Some(extra) => serde_json::to_value(value).and_then(|mut merged| {
            if let Value::Object(map) = &mut merged {
                map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            serde_json::to_vec(&merged)
        }),
    };
    // Serializing these plain structs cannot fail; an empty body would surface as malformed.
    Bytes::from(result.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(body: Value) -> ChatRequest<'static> {
        let leaked: &'static Value = Box::leak(Box::new(body));
        parse(Some(leaked)).unwrap()
    }

    #[test]
    fn parse_validates_model_and_messages() {
        assert!(parse(None).is_err());
        assert!(parse(Some(&json!([1]))).is_err());
        assert!(parse(Some(&json!({"messages": []}))).is_err());
        assert!(parse(Some(&json!({"model": 1, "messages": []}))).is_err());
        assert!(parse(Some(&json!({"model": "m", "messages": "hi"}))).is_err());
        assert!(parse(Some(&json!({"model": "m", "messages": [], "max_tokens": "x"}))).is_err());
        let ok = req(json!({"model": "m", "messages": []}));
        assert_eq!(ok.model, "m");
        assert!(!ok.stream);
        assert_eq!(ok.prompt_tokens, 1);
    }

    #[test]
    fn prompt_tokens_count_string_and_text_parts() {
        let r = req(json!({"model": "m", "messages": [
            {"role": "system", "content": "0123456789abcdef"},
            {"role": "user", "content": [{"type": "text", "text": "01234567"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        ]}));
        assert_eq!(r.prompt_tokens, 6); // 24 chars / 4
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let r = req(json!({"model": "m", "messages": [], "max_tokens": 9, "max_completion_tokens": 3}));
        assert_eq!(r.max_tokens, Some(3));
        let r = req(
            json!({"model": "m", "messages": [], "max_tokens": 9, "stream": true, "stream_options": {"include_usage": true}}),
        );
        assert_eq!(r.max_tokens, Some(9));
        assert!(r.stream && r.include_usage);
    }

    #[test]
    fn reply_is_deterministic_words() {
        let r = req(json!({"model": "m", "messages": [{"role": "user", "content": "hello world!"}]}));
        let reply = plan(&r, 4, 7, 100, None);
        assert_eq!(reply.content, "tok0 tok1 tok2 tok3");
        assert_eq!(reply.finish_reason, "stop");
        assert_eq!(reply.id, "chatcmpl-sim-7");
        assert_eq!(reply.usage, json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}));
        assert_eq!(reply.tokens, 7);
        let capped = req(json!({"model": "m", "messages": [], "max_tokens": 2}));
        let reply = plan(&capped, 4, 1, 100, None);
        assert_eq!(reply.content, "tok0 tok1");
        assert_eq!(reply.finish_reason, "length");
        let not_capped = req(json!({"model": "m", "messages": [], "max_tokens": 4}));
        assert_eq!(plan(&not_capped, 4, 1, 100, None).finish_reason, "stop");
    }

    #[test]
    fn tool_call_needs_tools_and_the_trigger_in_the_last_user_message() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]);
        let r =
            req(json!({"model": "m", "tools": tools, "messages": [{"role": "user", "content": "please call a tool"}]}));
        assert_eq!(r.tool, Some("get_weather"));
        let reply = plan(&r, 12, 3, 0, None);
        assert_eq!(reply.finish_reason, "tool_calls");
        assert_eq!(reply.tool_call.as_ref().unwrap().name, "get_weather");
        let body: Value = serde_json::from_slice(&completion_body(&reply)).unwrap();
        let message = &body["choices"][0]["message"];
        assert!(message["content"].is_null());
        assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
        assert_eq!(message["tool_calls"][0]["function"]["arguments"], TOOL_ARGUMENTS);
        assert_eq!(message["tool_calls"][0]["type"], "function");

        let earlier = req(json!({"model": "m", "tools": tools, "messages": [
            {"role": "user", "content": "call a tool"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "thanks"}]}));
        assert_eq!(earlier.tool, None);
        let no_tools = req(json!({"model": "m", "messages": [{"role": "user", "content": "call a tool"}]}));
        assert_eq!(no_tools.tool, None);
    }

    #[test]
    fn custom_reply_overrides() {
        let r = req(json!({"model": "m", "messages": []}));
        let usage = json!({"completion_tokens": 99});
        let extra: Map<String, Value> = serde_json::from_value(json!({"provider": "sim", "model": "other"})).unwrap();
        let custom = Custom {
            reasoning: None,
            content: Some("hello there world"),
            finish_reason: Some("content_filter"),
            usage: Some(&usage),
            extra: Some(&extra),
        };
        let reply = plan(&r, 12, 1, 0, Some(custom));
        assert_eq!(reply.content, "hello there world");
        assert_eq!(reply.finish_reason, "content_filter");
        assert_eq!(reply.usage["completion_tokens"], 99);
        assert_eq!(reply.usage["prompt_tokens"], 1);
        let body: Value = serde_json::from_slice(&completion_body(&reply)).unwrap();
        assert_eq!(body["provider"], "sim");
        assert_eq!(body["model"], "other");
    }

    #[test]
    fn completion_body_shape() {
        let r = req(json!({"model": "gpt-x", "messages": []}));
        let body: Value = serde_json::from_slice(&completion_body(&plan(&r, 2, 5, 1234, None))).unwrap();
        assert_eq!(body["id"], "chatcmpl-sim-5");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["created"], 1234);
        assert_eq!(body["model"], "gpt-x");
        assert_eq!(body["choices"][0]["message"]["role"], "assistant");
        assert_eq!(body["choices"][0]["message"]["content"], "tok0 tok1");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["total_tokens"], 3);
        assert_eq!(body["system_fingerprint"], "fp_sim");
        assert_eq!(body["x_sim"]["request"], 5);
    }

    #[test]
    fn pieces_rejoin_to_the_text() {
        let text = words(4);
        let parts: Vec<&str> = pieces(&text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(parts, ["tok0", " tok1", " tok2", " tok3"]);
        for text in ["", "one", "  lead", "a  b\nc ", "héllo wörld"] {
            let joined: String = pieces(text).into_iter().map(|r| &text[r]).collect();
            assert_eq!(joined, text);
        }
        assert!(pieces("").is_empty());
        assert_eq!(pieces("a  b\nc ").len(), 3);
        assert_eq!(pieces("  lead").len(), 1);
        assert_eq!(words(0), "");
    }
}
