//! Anthropic `Message` (whole, or as stream events) -> OpenAI `chat.completion` and
//! `chat.completion.chunk`s.
//!
//! - `text` blocks are joined into `content`; `thinking` blocks become `reasoning_content`, and
//!   every thinking block (with its `signature`; `redacted_thinking` too) is returned in the
//!   message's `thinking_blocks` so a client can replay it (Anthropic needs them back when
//!   thinking and tools are combined);
//! - `tool_use` blocks become `tool_calls` (Anthropic's `toolu_...` ids, the input as JSON
//!   arguments); streamed, each call gets the next index whatever block index it has;
//! - JSON mode's tool call is the message content instead (streamed as content deltas);
//! - `stop_reason`: `end_turn`, `stop_sequence`, `pause_turn` -> `stop`, `max_tokens` ->
//!   `length`, `tool_use` -> `tool_calls`, `refusal` -> `content_filter`;
//! - usage: prompt tokens are input + cache creation + cache read tokens (cache reads also as
//!   `prompt_tokens_details.cached_tokens`), completion tokens are output tokens;
//! - stream `ping`s are ignored and `error` events fail the stream with a typed error.

use std::collections::HashMap;

use freeway_sdk::errors::invalid_response;
use freeway_sdk::openai::{Extra, Usage};
use freeway_sdk::translate::ChunkWriter;
use freeway_sdk::types::ProviderError;
use serde_json::{Value, json};

use crate::quota::stream_error;
use crate::request::JsonTool;

/// Anthropic `stop_reason` -> OpenAI `finish_reason`.
pub fn finish_reason(stop: Option<&str>, calls_tools: bool) -> &'static str {
    match stop {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("refusal") => "content_filter",
        _ if calls_tools => "tool_calls",
        _ => "stop",
    }
}

/// Token counts as Anthropic reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    input: u64,
    cache_creation: u64,
    cache_read: u64,
    output: u64,
}

impl Counts {
    /// Take the counts a `usage` object has (stream events carry some of them).
    fn update(&mut self, u: &Value) -> bool {
        let mut any = false;
        for (key, slot) in [
            ("input_tokens", &mut self.input),
            ("cache_creation_input_tokens", &mut self.cache_creation),
            ("cache_read_input_tokens", &mut self.cache_read),
            ("output_tokens", &mut self.output),
        ] {
            if let Some(n) = u.get(key).and_then(Value::as_u64) {
                *slot = n;
                any = true;
            }
        }
        any
    }

    fn usage(&self) -> Usage {
        let mut u = Usage::new(self.input + self.cache_creation + self.cache_read, self.output);
        let mut extra = Extra::new();
        if self.cache_read > 0 {
            extra.insert("prompt_tokens_details".to_owned(), json!({"cached_tokens": self.cache_read}));
        }
        if self.cache_creation > 0 {
            extra.insert("cache_creation_input_tokens".to_owned(), json!(self.cache_creation));
        }
        u.extra = extra;
        u
    }
}

/// A content block being streamed, by Anthropic's block index.
#[derive(Debug, Clone)]
enum Block {
    Text,
    Thinking { text: String, signature: String },
    Redacted { data: String },
    Tool { index: u32, sent: bool, input: Value },
    Json { buffer: String, sent: bool },
    Other,
}

/// Per-request translation state (one per `chat`, kept until the next).
#[derive(Debug, Clone)]
pub struct Translator {
    writer: ChunkWriter,
    json_tool: Option<JsonTool>,
    blocks: HashMap<u64, Block>,
    /// tool calls started so far (the next one's index)
    tool_calls: u32,
    role_sent: bool,
    finish_sent: bool,
    usage_sent: bool,
    content_seen: bool,
    usage_seen: bool,
    counts: Counts,
}

fn parse(body: &str) -> Result<Value, ProviderError> {
    serde_json::from_str(body).map_err(|e| invalid_response(&format!("Anthropic answered with invalid JSON: {e}")))
}

impl Translator {
    pub fn new(id: &str, model: &str, created: u64, json_tool: Option<JsonTool>) -> Self {
        Self {
            writer: ChunkWriter { id: id.to_owned(), model: model.to_owned(), created },
            json_tool,
            blocks: HashMap::new(),
            tool_calls: 0,
            role_sent: false,
            finish_sent: false,
            usage_sent: false,
            content_seen: false,
            usage_seen: false,
            counts: Counts::default(),
        }
    }

    fn is_json_tool(&self, name: Option<&str>) -> bool {
        self.json_tool.as_ref().is_some_and(|t| Some(t.name.as_str()) == name)
    }

    fn wrapped(&self) -> bool {
        self.json_tool.as_ref().is_some_and(|t| t.wrapped)
    }

    /// JSON mode's answer from its tool's input.
    fn json_text(&self, input: &Value) -> String {
        match input.get("value") {
            Some(v) if self.wrapped() => v.to_string(),
            _ => input.to_string(),
        }
    }

    /// A whole `Message` -> a `chat.completion`.
    pub fn response(&mut self, body: &str) -> Result<String, ProviderError> {
        let v = parse(body)?;
        if v.get("type").and_then(Value::as_str) == Some("error") {
            return Err(stream_error(v.get("error").unwrap_or(&Value::Null)));
        }
        let Some(content) = v.get("content").and_then(Value::as_array) else {
            return Err(invalid_response("Anthropic answered without `content`"));
        };
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut thinking_blocks = Vec::new();
        let mut calls = Vec::new();
        let mut json_answer: Option<String> = None;
        for block in content {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
                Some("thinking") => {
                    let thinking = block.get("thinking").and_then(Value::as_str).unwrap_or_default();
                    reasoning.push_str(thinking);
                    thinking_blocks.push(json!({"type": "thinking", "thinking": thinking,
                        "signature": block.get("signature").cloned().unwrap_or(Value::Null)}));
                }
                Some("redacted_thinking") => {
                    thinking_blocks.push(json!({"type": "redacted_thinking",
                        "data": block.get("data").cloned().unwrap_or(Value::Null)}));
                }
                Some("tool_use") => {
                    let name = block.get("name").and_then(Value::as_str);
                    let input = block.get("input").filter(|i| !i.is_null()).cloned().unwrap_or_else(|| json!({}));
                    if self.is_json_tool(name) {
                        json_answer = Some(self.json_text(&input));
                    } else {
                        calls.push(json!({
                            "id": block.get("id").and_then(Value::as_str).unwrap_or_default(),
                            "type": "function",
                            "function": {"name": name.unwrap_or_default(), "arguments": input.to_string()},
                        }));
                    }
                }
                _ => {}
            }
        }
        // JSON mode: the tool's input is the answer (any text around it is not JSON)
        let content = json_answer.unwrap_or(text);
        let stop = v.get("stop_reason").and_then(Value::as_str);
        let finish = finish_reason(stop, !calls.is_empty());
        let mut message = json!({
            "role": "assistant",
            "content": if content.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(content) },
        });
        if !reasoning.is_empty() {
            message["reasoning_content"] = Value::String(reasoning);
        }
        if !thinking_blocks.is_empty() {
            message["thinking_blocks"] = Value::Array(thinking_blocks);
        }
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        let mut out = json!({
            "id": self.writer.id,
            "object": "chat.completion",
            "created": self.writer.created,
            "model": self.writer.model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        });
        if let Some(u) = v.get("usage") {
            let mut counts = Counts::default();
            counts.update(u);
            out["usage"] = json!(counts.usage());
        }
        Ok(out.to_string())
    }

    /// A chunk with an arbitrary delta.
    fn delta_chunk(&self, delta: Value) -> String {
        json!({
            "id": self.writer.id,
            "object": "chat.completion.chunk",
            "created": self.writer.created,
            "model": self.writer.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": null}],
        })
        .to_string()
    }

    fn start(&mut self, out: &mut Vec<String>) {
        if !self.role_sent {
            out.push(self.writer.role());
            self.role_sent = true;
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<String>) {
        if !text.is_empty() {
            self.start(out);
            out.push(self.writer.text(text));
            self.content_seen = true;
        }
    }

    fn reasoning(&mut self, text: &str, out: &mut Vec<String>) {
        if !text.is_empty() {
            self.start(out);
            out.push(self.writer.reasoning(text));
            self.content_seen = true;
        }
    }

    /// One stream event (`event` is the SSE event name; `data` says its type too) -> chunks.
    pub fn event(&mut self, event: Option<&str>, data: &str) -> Result<Vec<String>, ProviderError> {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(Vec::new());
        }
        let v = parse(data)?;
        let kind = v.get("type").and_then(Value::as_str).or(event).unwrap_or_default();
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                if let Some(u) = v.pointer("/message/usage") {
                    self.usage_seen |= self.counts.update(u);
                }
                self.start(&mut out);
            }
            "content_block_start" => self.block_start(&v, &mut out),
            "content_block_delta" => self.block_delta(&v, &mut out),
            "content_block_stop" => self.block_stop(&v, &mut out),
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.usage_seen |= self.counts.update(u);
                }
                let stop = v.pointer("/delta/stop_reason").and_then(Value::as_str);
                if let Some(stop) = stop
                    && !self.finish_sent
                {
                    self.start(&mut out);
                    out.push(self.writer.finish(finish_reason(Some(stop), self.tool_calls > 0)));
                    self.finish_sent = true;
                    if self.usage_seen {
                        out.push(self.writer.usage(&self.counts.usage()));
                        self.usage_sent = true;
                    }
                }
            }
            "error" => return Err(stream_error(v.get("error").unwrap_or(&Value::Null))),
            // `ping`, `message_stop` and anything new
            _ => {}
        }
        Ok(out)
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<String>) {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let block = v.get("content_block").unwrap_or(&Value::Null);
        let state = match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                self.text(block.get("text").and_then(Value::as_str).unwrap_or_default(), out);
                Block::Text
            }
            Some("thinking") => {
                let text = block.get("thinking").and_then(Value::as_str).unwrap_or_default().to_owned();
                self.reasoning(&text, out);
                let signature = block.get("signature").and_then(Value::as_str).unwrap_or_default().to_owned();
                Block::Thinking { text, signature }
            }
            Some("redacted_thinking") => {
                Block::Redacted { data: block.get("data").and_then(Value::as_str).unwrap_or_default().to_owned() }
            }
            Some("tool_use") => {
                let name = block.get("name").and_then(Value::as_str);
                let input = block.get("input").cloned().unwrap_or(Value::Null);
                if self.is_json_tool(name) {
                    Block::Json { buffer: String::new(), sent: false }
                } else {
                    self.start(out);
                    let call = self.tool_calls;
                    self.tool_calls += 1;
                    let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                    out.push(self.writer.tool_call_start(call, id, name.unwrap_or_default()));
                    self.content_seen = true;
                    Block::Tool { index: call, sent: false, input }
                }
            }
            _ => Block::Other,
        };
        self.blocks.insert(index, state);
    }

    fn block_delta(&mut self, v: &Value, out: &mut Vec<String>) {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let delta = v.get("delta").unwrap_or(&Value::Null);
        let wrapped = self.wrapped();
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => self.text(delta.get("text").and_then(Value::as_str).unwrap_or_default(), out),
            Some("thinking_delta") => {
                let piece = delta.get("thinking").and_then(Value::as_str).unwrap_or_default();
                if let Some(Block::Thinking { text, .. }) = self.blocks.get_mut(&index) {
                    text.push_str(piece);
                }
                self.reasoning(piece, out);
            }
            Some("signature_delta") => {
                let piece = delta.get("signature").and_then(Value::as_str).unwrap_or_default();
                if let Some(Block::Thinking { signature, .. }) = self.blocks.get_mut(&index) {
                    signature.push_str(piece);
                }
            }
            Some("input_json_delta") => {
                let piece = delta.get("partial_json").and_then(Value::as_str).unwrap_or_default();
                if piece.is_empty() {
                    return;
                }
                match self.blocks.get_mut(&index) {
                    Some(Block::Tool { index: call, sent, .. }) => {
                        *sent = true;
                        let call = *call;
                        out.push(self.writer.tool_call_arguments(call, piece));
                    }
                    Some(Block::Json { buffer, sent }) => {
                        *sent = true;
                        if wrapped {
                            buffer.push_str(piece);
                        } else {
                            self.text(piece, out);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn block_stop(&mut self, v: &Value, out: &mut Vec<String>) {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match self.blocks.remove(&index) {
            // a call without argument deltas: its start input (usually `{}`)
            Some(Block::Tool { index: call, sent: false, input }) => {
                let args = if input.is_object() { input.to_string() } else { "{}".to_owned() };
                out.push(self.writer.tool_call_arguments(call, &args));
            }
            Some(Block::Json { buffer, sent }) => {
                let text = if self.wrapped() {
                    match serde_json::from_str::<Value>(&buffer) {
                        Ok(input) => self.json_text(&input),
                        Err(_) => buffer,
                    }
                } else if !sent {
                    "{}".to_owned()
                } else {
                    String::new()
                };
                self.text(&text, out);
            }
            Some(Block::Thinking { text, signature }) if !signature.is_empty() => {
                let block = json!({"type": "thinking", "thinking": text, "signature": signature});
                out.push(self.delta_chunk(json!({"thinking_blocks": [block]})));
            }
            Some(Block::Redacted { data }) => {
                let block = json!({"type": "redacted_thinking", "data": data});
                out.push(self.delta_chunk(json!({"thinking_blocks": [block]})));
            }
            _ => {}
        }
    }

    /// The stream ended: a finish chunk if content came without one, and the usage chunk if it
    /// was not sent yet.
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if self.content_seen && !self.finish_sent {
            out.push(self.writer.finish(if self.tool_calls > 0 { "tool_calls" } else { "stop" }));
            self.finish_sent = true;
        }
        if self.finish_sent && !self.usage_sent && self.usage_seen {
            out.push(self.writer.usage(&self.counts.usage()));
            self.usage_sent = true;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use freeway_sdk::types::ErrorKind;

    fn t(json_tool: Option<JsonTool>) -> Translator {
        Translator::new("chatcmpl-abc", "claude-sonnet-4-5", 1_700_000_000, json_tool)
    }

    fn json_tool(wrapped: bool) -> Option<JsonTool> {
        Some(JsonTool { name: "json_response".into(), wrapped })
    }

    fn completion(tr: &mut Translator, body: Value) -> Value {
        serde_json::from_str(&tr.response(&body.to_string()).unwrap()).unwrap()
    }

    fn message(content: Value, stop: &str) -> Value {
        json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "content": content, "stop_reason": stop, "stop_sequence": null,
               "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 2}})
    }

    #[test]
    fn text_thinking_and_usage() {
        let c = completion(
            &mut t(None),
            message(
                json!([
                    {"type": "thinking", "thinking": "Let me think.", "signature": "sig=="},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "Hello"}, {"type": "text", "text": ", world"},
                ]),
                "end_turn",
            ),
        );
        assert_eq!(c["id"], "chatcmpl-abc");
        assert_eq!(c["object"], "chat.completion");
        assert_eq!(c["model"], "claude-sonnet-4-5");
        let m = &c["choices"][0]["message"];
        assert_eq!(m["content"], "Hello, world");
        assert_eq!(m["reasoning_content"], "Let me think.");
        assert_eq!(
            m["thinking_blocks"],
            json!([{"type": "thinking", "thinking": "Let me think.", "signature": "sig=="},
                   {"type": "redacted_thinking", "data": "opaque"}])
        );
        assert!(m.get("tool_calls").is_none());
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            c["usage"],
            json!({"prompt_tokens": 15, "completion_tokens": 5, "total_tokens": 20,
                   "prompt_tokens_details": {"cached_tokens": 2}, "cache_creation_input_tokens": 3})
        );
    }

    #[test]
    fn tool_use_becomes_tool_calls() {
        let c = completion(
            &mut t(None),
            message(
                json!([
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_02", "name": "now", "input": {}},
                ]),
                "tool_use",
            ),
        );
        let choice = &c["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me check.");
        let calls = choice["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            calls[0],
            json!({"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}})
        );
        assert_eq!(calls[1]["function"]["arguments"], "{}");
        let c = completion(
            &mut t(None),
            message(json!([{"type": "tool_use", "id": "toolu_03", "name": "f", "input": {}}]), "tool_use"),
        );
        assert!(c["choices"][0]["message"]["content"].is_null());
    }

    #[test]
    fn json_mode_tool_is_the_content() {
        let body = message(
            json!([{"type": "text", "text": "Here you go:"},
                   {"type": "tool_use", "id": "toolu_j", "name": "json_response", "input": {"answer": 42}}]),
            "tool_use",
        );
        let c = completion(&mut t(json_tool(false)), body.clone());
        assert_eq!(c["choices"][0]["message"]["content"], "{\"answer\":42}");
        assert!(c["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        // without JSON mode, a tool of that name is just a tool
        let c = completion(&mut t(None), body);
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        // a wrapped schema is unwrapped
        let c = completion(
            &mut t(json_tool(true)),
            message(
                json!([{"type": "tool_use", "id": "toolu_j", "name": "json_response", "input": {"value": ["a", "b"]}}]),
                "tool_use",
            ),
        );
        assert_eq!(c["choices"][0]["message"]["content"], "[\"a\",\"b\"]");
    }

    #[test]
    fn stop_reasons() {
        let reason = |stop: &str| {
            completion(&mut t(None), message(json!([{"type": "text", "text": "x"}]), stop))["choices"][0]["finish_reason"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(reason("end_turn"), "stop");
        assert_eq!(reason("stop_sequence"), "stop");
        assert_eq!(reason("pause_turn"), "stop");
        assert_eq!(reason("max_tokens"), "length");
        assert_eq!(reason("model_context_window_exceeded"), "length");
        assert_eq!(reason("refusal"), "content_filter");
        assert_eq!(finish_reason(None, false), "stop");
    }

    #[test]
    fn bad_bodies_and_error_bodies() {
        assert_eq!(t(None).response("nope").unwrap_err().kind, ErrorKind::InvalidResponse);
        assert_eq!(t(None).response("{}").unwrap_err().kind, ErrorKind::InvalidResponse);
        let e = t(None)
            .response(
                &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).to_string(),
            )
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Overloaded);
    }

    fn run(tr: &mut Translator, events: &[Value]) -> Vec<Value> {
        let mut out = Vec::new();
        for e in events {
            let name = e["type"].as_str().map(str::to_owned);
            out.extend(tr.event(name.as_deref(), &e.to_string()).unwrap());
        }
        out.extend(tr.finish());
        out.iter().map(|c| serde_json::from_str(c).unwrap()).collect()
    }

    fn start_event(input_tokens: u64) -> Value {
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
               "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
               "usage": {"input_tokens": input_tokens, "cache_read_input_tokens": 4, "output_tokens": 1}}})
    }

    #[test]
    fn a_stream_with_thinking_text_and_two_tool_calls() {
        let mut tr = t(None);
        let events = [
            start_event(20),
            json!({"type": "ping"}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm."}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "c2ln"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Checking"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": " now."}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
            json!({"type": "content_block_stop", "index": 2}),
            json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "now", "input": {}}}),
            json!({"type": "content_block_stop", "index": 3}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 30}}),
            json!({"type": "message_stop"}),
        ];
        let out = run(&mut tr, &events);
        // role, reasoning, thinking block, 2 texts, call a start + 2 args, call b start + args, finish, usage
        assert_eq!(out.len(), 12, "{out:#?}");
        for c in &out {
            assert_eq!(c["id"], "chatcmpl-abc");
            assert_eq!(c["object"], "chat.completion.chunk");
        }
        let delta = |i: usize| &out[i]["choices"][0]["delta"];
        assert_eq!(*delta(0), json!({"role": "assistant", "content": ""}));
        assert_eq!(delta(1)["reasoning_content"], "Hmm.");
        assert_eq!(delta(2)["thinking_blocks"], json!([{"type": "thinking", "thinking": "Hmm.", "signature": "c2ln"}]));
        assert_eq!(
            format!("{}{}", delta(3)["content"].as_str().unwrap(), delta(4)["content"].as_str().unwrap()),
            "Checking now."
        );
        let a = &delta(5)["tool_calls"][0];
        assert_eq!(
            (a["index"].as_u64(), a["id"].as_str(), a["function"]["name"].as_str()),
            (Some(0), Some("toolu_a"), Some("get_weather"))
        );
        let args: String =
            (6..8).map(|i| delta(i)["tool_calls"][0]["function"]["arguments"].as_str().unwrap().to_owned()).collect();
        assert_eq!(args, "{\"city\": \"Paris\"}");
        let b = &delta(8)["tool_calls"][0];
        assert_eq!((b["index"].as_u64(), b["id"].as_str()), (Some(1), Some("toolu_b")));
        assert_eq!(delta(9)["tool_calls"][0], json!({"index": 1, "function": {"arguments": "{}"}}));
        assert_eq!(out[10]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out[11]["choices"], json!([]));
        assert_eq!(out[11]["usage"]["prompt_tokens"], 24);
        assert_eq!(out[11]["usage"]["completion_tokens"], 30);
        assert_eq!(out[11]["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
        assert!(tr.finish().is_empty(), "nothing more once finished");
    }

    #[test]
    fn json_mode_streams_as_content() {
        let events = |partials: &[&str]| {
            let mut e = vec![
                start_event(5),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_j", "name": "json_response", "input": {}}}),
            ];
            for p in partials {
                e.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": p}}));
            }
            e.push(json!({"type": "content_block_stop", "index": 0}));
            e.push(
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}}),
            );
            e
        };
        let out = run(&mut t(json_tool(false)), &events(&["{\"a\":", " 1}"]));
        let text: String = out.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "{\"a\": 1}");
        assert!(!out.iter().any(|c| c["choices"][0]["delta"].get("tool_calls").is_some()));
        assert!(out.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
        let out = run(&mut t(json_tool(true)), &events(&["{\"value\": [1,", " 2]}"]));
        let text: String = out.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "[1,2]");
        let out = run(&mut t(json_tool(false)), &events(&[]));
        let text: String = out.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "{}");
    }

    #[test]
    fn a_stream_that_ends_early_is_finished_by_finish_stream() {
        let mut tr = t(None);
        let out = run(
            &mut tr,
            &[
                start_event(3),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "part"}}),
            ],
        );
        assert_eq!(out.len(), 4);
        assert_eq!(out[1]["choices"][0]["delta"]["content"], "part");
        assert_eq!(out[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(out[3]["usage"]["prompt_tokens"], 7);
        // nothing at all: nothing to flush
        assert!(t(None).finish().is_empty());
    }

    #[test]
    fn stream_errors_pings_and_blank_events() {
        let mut tr = t(None);
        assert!(tr.event(None, "").unwrap().is_empty());
        assert!(tr.event(Some("ping"), "{\"type\": \"ping\"}").unwrap().is_empty());
        assert!(tr.event(Some("mystery"), "{\"type\": \"mystery\"}").unwrap().is_empty());
        let e = tr
            .event(
                Some("error"),
                &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).to_string(),
            )
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Overloaded);
        assert_eq!(e.message, "Overloaded");
        assert_eq!(tr.event(None, "{not json").unwrap_err().kind, ErrorKind::InvalidResponse);
        // the type may come from the event name alone
        let out = tr.event(Some("message_delta"), "{\"delta\": {\"stop_reason\": \"max_tokens\"}}").unwrap();
        let last: Value = serde_json::from_str(out.last().unwrap()).unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], "length");
    }
}
