//! A `chat.completion` -> an Anthropic `message`.

use serde_json::{Map, Value, json};

use super::super::{Reply, first_choice, id_suffix, reasoning_of, text_of, usage_of};
use super::stream::MessageStream;

/// Anthropic's `stop_reason` for a chat `finish_reason`.
pub fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's `usage` from the chat usage (absent: zeros).
pub fn usage(chat: &Value) -> Value {
    let (input, output, cached) = usage_of(chat).unwrap_or((0, 0, 0));
    json!({
        "input_tokens": input.saturating_sub(cached),
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
}

/// A tool call's JSON arguments as the `input` object (arguments that are not an object: `{}`).
pub fn tool_input(arguments: Option<&Value>) -> Value {
    match arguments {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({}),
        },
        Some(v @ Value::Object(_)) => v.clone(),
        _ => json!({}),
    }
}

/// The Messages answer to one request.
pub struct MessagesReply {
    /// the state of a streamed answer
    stream: MessageStream,
}

impl MessagesReply {
    pub fn new() -> Self {
        Self { stream: MessageStream::default() }
    }
}

impl Default for MessagesReply {
    fn default() -> Self {
        Self::new()
    }
}

impl Reply for MessagesReply {
    fn complete(&mut self, chat: &Value) -> Value {
        let choice = first_choice(chat);
        let msg = choice.and_then(|c| c.get("message"));
        let mut content = Vec::new();
        if let Some(thinking) = msg.and_then(reasoning_of) {
            content.push(json!({ "type": "thinking", "thinking": thinking, "signature": "" }));
        }
        if let Some(text) = text_of(msg.and_then(|m| m.get("content"))).filter(|t| !t.is_empty()) {
            content.push(json!({ "type": "text", "text": text }));
        }
        for call in msg.and_then(|m| m.get("tool_calls")).and_then(Value::as_array).into_iter().flatten() {
            let f = call.get("function");
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| format!("toolu_{}", super::super::random_id()), str::to_owned);
            content.push(json!({
                "type": "tool_use",
                "id": id,
                "name": f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or(""),
                "input": tool_input(f.and_then(|f| f.get("arguments"))),
            }));
        }
        let finish = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str);
        let mut m = Map::new();
        m.insert("id".into(), format!("msg_{}", id_suffix(chat)).into());
        m.insert("type".into(), "message".into());
        m.insert("role".into(), "assistant".into());
        m.insert("model".into(), chat.get("model").cloned().unwrap_or(Value::Null));
        m.insert("content".into(), Value::Array(content));
        m.insert("stop_reason".into(), stop_reason(finish).into());
        m.insert("stop_sequence".into(), Value::Null);
        m.insert("usage".into(), usage(chat));
        Value::Object(m)
    }

    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        self.stream.chunk(chunk, out);
    }

    fn failed(&mut self, error: &Value, out: &mut Vec<u8>) {
        self.stream.failed(error, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.stream.finish(out);
    }
}
