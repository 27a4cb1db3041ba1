//! Cohere chat answers (a whole response, or the SSE events of a stream) -> OpenAI
//! `chat.completion` and `chat.completion.chunk`s.
//!
//! - `text` content becomes `content`; `thinking` content (reasoning models) and the
//!   `tool_plan` Cohere writes before calling tools become `reasoning_content`, as
//!   OpenAI-compatible reasoning servers send it (and a client that sends the assistant message
//!   back gives Cohere its plan again); citations are dropped;
//! - `tool_calls` keep Cohere's ids and JSON-string arguments; streamed, a call is a
//!   `tool-call-start` chunk followed by argument fragments, at stable indices counted from 0;
//! - finish reasons: `COMPLETE` and `STOP_SEQUENCE` -> `stop` (`tool_calls` when the message
//!   calls tools), `MAX_TOKENS` -> `length`, `TOOL_CALL` -> `tool_calls`; `ERROR` and
//!   `TIMEOUT` are failures (an upstream error / a timeout, with Cohere's `error` text);
//! - usage from `usage.tokens` (what the model processed), else `usage.billed_units`; in a
//!   stream it comes with `message-end` and is sent as the final usage chunk.

use std::collections::HashMap;

use freeway_sdk::errors::invalid_response;
use freeway_sdk::openai::Usage;
use freeway_sdk::translate::ChunkWriter;
use freeway_sdk::types::{ErrorKind, ProviderError};
use serde_json::{Value, json};

/// Cohere finish reason -> OpenAI `finish_reason`, or the failure it reports.
pub fn finish_reason(reason: &str, calls_tools: bool, error: Option<&str>) -> Result<&'static str, ProviderError> {
    Ok(match reason {
        "MAX_TOKENS" => "length",
        "TOOL_CALL" => "tool_calls",
        "ERROR" | "TIMEOUT" => {
            let timeout = reason == "TIMEOUT";
            let detail = error.filter(|e| !e.is_empty()).map(|e| format!(": {e}")).unwrap_or_default();
            return Err(ProviderError {
                kind: if timeout { ErrorKind::Timeout } else { ErrorKind::Upstream },
                message: format!("Cohere stopped generating (finish_reason {reason}){detail}"),
                status: 0,
                code: Some(reason.to_owned()),
                retry_after_ms: None,
                window: None,
            });
        }
        _ if calls_tools => "tool_calls",
        _ => "stop",
    })
}

/// Cohere `usage` -> OpenAI usage: `tokens`, else `billed_units`.
pub fn usage(u: &Value) -> Option<Usage> {
    let counts = |k: &str| {
        let part = u.get(k)?;
        let n = |f: &str| part.get(f).and_then(Value::as_f64).filter(|v| v.is_finite() && *v >= 0.0);
        let (input, output) = (n("input_tokens"), n("output_tokens"));
        // counts are whole numbers sent as JSON numbers (sometimes with a `.0`)
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        (input.is_some() || output.is_some())
            .then(|| Usage::new(input.unwrap_or(0.0) as u64, output.unwrap_or(0.0) as u64))
    };
    counts("tokens").or_else(|| counts("billed_units"))
}

fn parse(body: &str) -> Result<Value, ProviderError> {
    serde_json::from_str(body).map_err(|e| invalid_response(&format!("Cohere answered with invalid JSON: {e}")))
}

/// An error body (`{"id", "message"}`) where an answer was expected.
fn embedded_error(v: &Value) -> Option<ProviderError> {
    if v.get("type").is_some() || v.get("message").is_some_and(Value::is_object) {
        return None;
    }
    let message = v.get("message").and_then(Value::as_str)?;
    Some(crate::quota::map_error(500, &Vec::new(), &json!({"message": message}).to_string()))
}

/// The arguments of a tool call as a JSON string.
fn arguments(function: Option<&Value>) -> String {
    match function.and_then(|f| f.get("arguments")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Per-request translation state (one per `chat`, kept until the next).
#[derive(Debug, Clone)]
pub struct Translator {
    writer: ChunkWriter,
    /// Cohere's tool-call index -> ours (the order calls started in)
    calls: HashMap<u64, u32>,
    role_sent: bool,
    finish_sent: bool,
    usage_sent: bool,
    content_seen: bool,
    usage: Option<Usage>,
}

impl Translator {
    pub fn new(id: &str, model: &str, created: u64) -> Self {
        Self {
            writer: ChunkWriter { id: id.to_owned(), model: model.to_owned(), created },
            calls: HashMap::new(),
            role_sent: false,
            finish_sent: false,
            usage_sent: false,
            content_seen: false,
            usage: None,
        }
    }

    fn fallback_call_id(&self, n: usize) -> String {
        format!("call_{}_{n}", self.writer.id.trim_start_matches("chatcmpl-"))
    }

    /// A whole `/v2/chat` answer -> a `chat.completion`.
    pub fn response(&mut self, body: &str) -> Result<String, ProviderError> {
        let v = parse(body)?;
        if let Some(e) = embedded_error(&v) {
            return Err(e);
        }
        let msg = v
            .get("message")
            .filter(|m| m.is_object())
            .ok_or_else(|| invalid_response("Cohere answered without a message"))?;
        let mut text = String::new();
        let mut reasoning = String::new();
        for item in msg.get("content").and_then(Value::as_array).into_iter().flatten() {
            match item.get("type").and_then(Value::as_str) {
                Some("thinking") => reasoning.push_str(item.get("thinking").and_then(Value::as_str).unwrap_or("")),
                _ => text.push_str(item.get("text").and_then(Value::as_str).unwrap_or("")),
            }
        }
        if let Some(plan) = msg.get("tool_plan").and_then(Value::as_str).filter(|p| !p.is_empty()) {
            if !reasoning.is_empty() {
                reasoning.push('\n');
            }
            reasoning.push_str(plan);
        }
        let mut calls = Vec::new();
        for (i, call) in msg.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let function = call.get("function");
            let id = match call.get("id").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => self.fallback_call_id(i),
            };
            let name = function.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default();
            let mut args = arguments(function);
            if args.is_empty() {
                args = "{}".to_owned();
            }
            calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}));
        }
        let reason = v.get("finish_reason").and_then(Value::as_str).unwrap_or("COMPLETE");
        let error = v.get("error").and_then(Value::as_str);
        let finish = finish_reason(reason, !calls.is_empty(), error)?;
        let mut message = json!({
            "role": "assistant",
            "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
        });
        if !reasoning.is_empty() {
            message["reasoning_content"] = Value::String(reasoning);
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
        if let Some(u) = v.get("usage").and_then(usage) {
            out["usage"] = json!(u);
        }
        Ok(out.to_string())
    }

    fn role(&mut self, out: &mut Vec<String>) {
        if !self.role_sent {
            out.push(self.writer.role());
            self.role_sent = true;
        }
    }

    /// One stream event -> chunks. `name` is the SSE `event:` field, used when the data has no
    /// `type`.
    pub fn event(&mut self, name: Option<&str>, data: &str) -> Result<Vec<String>, ProviderError> {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(Vec::new());
        }
        let v = parse(data)?;
        let kind = v.get("type").and_then(Value::as_str).or(name).unwrap_or_default();
        if kind.is_empty()
            && let Some(e) = embedded_error(&v)
        {
            return Err(e);
        }
        let mut out = Vec::new();
        let delta_msg = v.pointer("/delta/message");
        match kind {
            "message-start" => self.role(&mut out),
            "content-start" | "content-delta" => {
                let content = delta_msg.and_then(|m| m.get("content"));
                let text = content.and_then(|c| c.get("text")).and_then(Value::as_str).unwrap_or("");
                let thinking = content.and_then(|c| c.get("thinking")).and_then(Value::as_str).unwrap_or("");
                if !thinking.is_empty() {
                    self.role(&mut out);
                    out.push(self.writer.reasoning(thinking));
                    self.content_seen = true;
                }
                if !text.is_empty() {
                    self.role(&mut out);
                    out.push(self.writer.text(text));
                    self.content_seen = true;
                }
            }
            "tool-plan-delta" => {
                let plan = delta_msg.and_then(|m| m.get("tool_plan")).and_then(Value::as_str).unwrap_or("");
                if !plan.is_empty() {
                    self.role(&mut out);
                    out.push(self.writer.reasoning(plan));
                    self.content_seen = true;
                }
            }
            "tool-call-start" => {
                let call = delta_msg.and_then(|m| m.get("tool_calls"));
                let cohere_index = v.get("index").and_then(Value::as_u64).unwrap_or(self.calls.len() as u64);
                let index = u32::try_from(self.calls.len()).unwrap_or(u32::MAX);
                self.calls.insert(cohere_index, index);
                let id = match call.and_then(|c| c.get("id")).and_then(Value::as_str) {
                    Some(id) if !id.is_empty() => id.to_owned(),
                    _ => self.fallback_call_id(index as usize),
                };
                let function = call.and_then(|c| c.get("function"));
                let name = function.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default();
                self.role(&mut out);
                out.push(self.writer.tool_call_start(index, &id, name));
                let args = arguments(function);
                if !args.is_empty() {
                    out.push(self.writer.tool_call_arguments(index, &args));
                }
                self.content_seen = true;
            }
            "tool-call-delta" => {
                let fragment = arguments(delta_msg.and_then(|m| m.get("tool_calls")).and_then(|c| c.get("function")));
                let cohere_index = v.get("index").and_then(Value::as_u64);
                let index = match cohere_index.and_then(|i| self.calls.get(&i)) {
                    Some(i) => *i,
                    // a delta without a start: the latest call
                    None => u32::try_from(self.calls.len().saturating_sub(1)).unwrap_or(0),
                };
                if self.calls.is_empty() {
                    return Err(invalid_response("Cohere streamed tool-call arguments before any tool-call-start"));
                }
                if !fragment.is_empty() {
                    out.push(self.writer.tool_call_arguments(index, &fragment));
                }
            }
            "message-end" => {
                let delta = v.get("delta");
                if let Some(u) = delta.and_then(|d| d.get("usage")).and_then(usage) {
                    self.usage = Some(u);
                }
                let reason = delta.and_then(|d| d.get("finish_reason")).and_then(Value::as_str).unwrap_or("COMPLETE");
                let error = delta.and_then(|d| d.get("error")).and_then(Value::as_str);
                let finish = finish_reason(reason, !self.calls.is_empty(), error)?;
                if !self.finish_sent {
                    self.role(&mut out);
                    out.push(self.writer.finish(finish));
                    self.finish_sent = true;
                }
                if !self.usage_sent
                    && let Some(u) = &self.usage
                {
                    out.push(self.writer.usage(u));
                    self.usage_sent = true;
                }
            }
            // content-end, tool-call-end, citation-start / -end, debug and anything newer
            _ => {}
        }
        Ok(out)
    }

    /// The stream ended: a finish chunk if content came without `message-end`, and the usage
    /// chunk if it was not sent yet.
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if self.content_seen && !self.finish_sent {
            out.push(self.writer.finish(if self.calls.is_empty() { "stop" } else { "tool_calls" }));
            self.finish_sent = true;
        }
        if !self.usage_sent
            && self.finish_sent
            && let Some(u) = &self.usage
        {
            out.push(self.writer.usage(u));
            self.usage_sent = true;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Translator {
        Translator::new("chatcmpl-abc", "command-a-03-2025", 1_700_000_000)
    }

    fn completion(body: Value) -> Value {
        serde_json::from_str(&t().response(&body.to_string()).unwrap()).unwrap()
    }

    #[test]
    fn text_and_usage() {
        let c = completion(json!({
            "id": "5a5e4b3c-0000-4000-8000-000000000001",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": ", world"}]},
            "finish_reason": "COMPLETE",
            "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 3}, "tokens": {"input_tokens": 71, "output_tokens": 3}},
        }));
        assert_eq!(c["id"], "chatcmpl-abc");
        assert_eq!(c["object"], "chat.completion");
        assert_eq!(c["created"], 1_700_000_000);
        assert_eq!(c["model"], "command-a-03-2025");
        let choice = &c["choices"][0];
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "Hello, world");
        assert!(choice["message"].get("tool_calls").is_none());
        assert!(choice["message"].get("reasoning_content").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(c["usage"], json!({"prompt_tokens": 71, "completion_tokens": 3, "total_tokens": 74}));
        // only billed units
        let c = completion(json!({"message": {"role": "assistant", "content": [{"type": "text", "text": "x"}]},
            "finish_reason": "STOP_SEQUENCE", "usage": {"billed_units": {"input_tokens": 5.0, "output_tokens": 1}}}));
        assert_eq!(c["usage"]["total_tokens"], 6);
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        let c = completion(json!({"message": {"role": "assistant", "content": []}, "finish_reason": "MAX_TOKENS"}));
        assert_eq!(c["choices"][0]["message"]["content"], "");
        assert_eq!(c["choices"][0]["finish_reason"], "length");
        assert!(c.get("usage").is_none());
    }

    #[test]
    fn tool_calls_plan_and_thinking() {
        let c = completion(json!({
            "id": "x",
            "message": {"role": "assistant",
                "content": [{"type": "thinking", "thinking": "The user wants weather."}],
                "tool_plan": "I will look up the weather in Paris.",
                "tool_calls": [
                    {"id": "get_weather_1byjy32y4hvq", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"type": "function", "function": {"name": "now", "arguments": {}}},
                    {"id": "", "type": "function", "function": {"name": "now"}},
                ]},
            "finish_reason": "TOOL_CALL",
            "usage": {"tokens": {"input_tokens": 10, "output_tokens": 6}},
        }));
        let choice = &c["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert!(choice["message"]["content"].is_null());
        assert_eq!(
            choice["message"]["reasoning_content"],
            "The user wants weather.\nI will look up the weather in Paris."
        );
        let calls = choice["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 3);
        assert_eq!(
            calls[0],
            json!({"id": "get_weather_1byjy32y4hvq", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}})
        );
        assert_eq!(calls[1]["id"], "call_abc_1");
        assert_eq!(calls[1]["function"]["arguments"], "{}");
        assert_eq!(calls[2]["id"], "call_abc_2");
        assert_eq!(calls[2]["function"]["arguments"], "{}");
        // COMPLETE with calls still says tool_calls
        let c = completion(
            json!({"message": {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "COMPLETE"}),
        );
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn error_finishes_and_error_bodies_are_failures() {
        let e = t().response(&json!({"message": {"role": "assistant", "content": []}, "finish_reason": "ERROR", "error": "internal"}).to_string()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
        assert!(e.message.contains("ERROR") && e.message.contains("internal"), "{}", e.message);
        let e = t()
            .response(&json!({"message": {"role": "assistant"}, "finish_reason": "TIMEOUT"}).to_string())
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        let e = t().response(r#"{"id":"abc","message":"internal server error"}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
        assert_eq!(e.message, "internal server error");
        assert_eq!(t().response("nope").unwrap_err().kind, ErrorKind::InvalidResponse);
        assert_eq!(t().response("{}").unwrap_err().kind, ErrorKind::InvalidResponse);
    }

    fn chunks(t: &mut Translator, events: &[Value]) -> Vec<Value> {
        let mut out = Vec::new();
        for e in events {
            out.extend(t.event(None, &e.to_string()).unwrap());
        }
        out.extend(t.finish());
        out.iter().map(|c| serde_json::from_str(c).unwrap()).collect()
    }

    fn text_events() -> Vec<Value> {
        vec![
            json!({"id": "m1", "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
            json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
            json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hello"}}}, "logprobs": null}),
            json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": " world"}}}}),
            json!({"type": "citation-start", "index": 0, "delta": {"message": {"citations": {"start": 0, "end": 5, "text": "Hello", "sources": []}}}}),
            json!({"type": "citation-end", "index": 0}),
            json!({"type": "content-end", "index": 0}),
            json!({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 2}, "tokens": {"input_tokens": 70, "output_tokens": 2}}}}),
        ]
    }

    #[test]
    fn a_text_stream() {
        let mut tr = t();
        let out = chunks(&mut tr, &text_events());
        // role, 2 texts, finish, usage
        assert_eq!(out.len(), 5, "{out:#?}");
        for c in &out {
            assert_eq!(c["id"], "chatcmpl-abc");
            assert_eq!(c["object"], "chat.completion.chunk");
        }
        assert_eq!(out[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        assert_eq!(out[1]["choices"][0]["delta"]["content"], "Hello");
        assert_eq!(out[2]["choices"][0]["delta"]["content"], " world");
        assert_eq!(out[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(out[4]["choices"], json!([]));
        assert_eq!(out[4]["usage"], json!({"prompt_tokens": 70, "completion_tokens": 2, "total_tokens": 72}));
        assert!(tr.finish().is_empty(), "nothing more once finished");
    }

    #[test]
    fn a_tool_call_stream_with_plan_and_argument_fragments() {
        let mut tr = t();
        let events = [
            json!({"id": "m1", "type": "message-start", "delta": {"message": {"role": "assistant"}}}),
            json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will"}}}),
            json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": " check."}}}),
            json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": "get_weather_x1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}}}}),
            json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "{\"city\":"}}}}}),
            json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "\"Paris\"}"}}}}}),
            json!({"type": "tool-call-end", "index": 0}),
            json!({"type": "tool-call-start", "index": 1, "delta": {"message": {"tool_calls": {"id": "now_x2", "type": "function", "function": {"name": "now", "arguments": "{}"}}}}}),
            json!({"type": "tool-call-end", "index": 1}),
            json!({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {"tokens": {"input_tokens": 9, "output_tokens": 12}}}}),
        ];
        let out = chunks(&mut tr, &events);
        // role, 2 plan pieces, start, 2 fragments, start + args, finish, usage
        assert_eq!(out.len(), 10, "{out:#?}");
        assert_eq!(out[1]["choices"][0]["delta"]["reasoning_content"], "I will");
        let start = &out[3]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!((start["index"].as_u64(), start["id"].as_str()), (Some(0), Some("get_weather_x1")));
        assert_eq!(start["function"]["name"], "get_weather");
        let args: String = out[4..6]
            .iter()
            .map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(args, "{\"city\":\"Paris\"}");
        assert_eq!(out[6]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(out[7]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "{}");
        assert_eq!(out[8]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out[9]["usage"]["total_tokens"], 21);
    }

    #[test]
    fn thinking_streams_as_reasoning_and_event_names_stand_in_for_types() {
        let mut tr = t();
        let out = tr
            .event(Some("content-delta"), r#"{"index":0,"delta":{"message":{"content":{"thinking":"hmm"}}}}"#)
            .unwrap();
        assert_eq!(out.len(), 2);
        let v: Value = serde_json::from_str(&out[1]).unwrap();
        assert_eq!(v["choices"][0]["delta"]["reasoning_content"], "hmm");
    }

    #[test]
    fn a_stream_that_ends_without_message_end_is_finished_by_finish_stream() {
        let mut tr = t();
        let events = &text_events()[..4];
        let out = chunks(&mut tr, events);
        assert_eq!(out.len(), 4);
        assert_eq!(out[3]["choices"][0]["finish_reason"], "stop");
        assert!(t().finish().is_empty());
    }

    #[test]
    fn stream_errors_and_blank_events() {
        let mut tr = t();
        assert!(tr.event(None, "").unwrap().is_empty());
        assert!(tr.event(None, "[DONE]").unwrap().is_empty());
        assert!(tr.event(None, r#"{"type":"debug","prompt":"x"}"#).unwrap().is_empty());
        assert_eq!(tr.event(None, "{not json").unwrap_err().kind, ErrorKind::InvalidResponse);
        let e = tr
            .event(None, r#"{"type":"message-end","delta":{"finish_reason":"ERROR","error":"model crashed"}}"#)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
        assert!(e.message.contains("model crashed"));
        let e = tr.event(None, r#"{"id":"x","message":"too many tokens in the stream"}"#).unwrap_err();
        assert_eq!(e.message, "too many tokens in the stream");
        let mut fresh = t();
        let e = fresh.event(
            None,
            r#"{"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"{"}}}}}"#,
        );
        assert_eq!(e.unwrap_err().kind, ErrorKind::InvalidResponse);
    }

    #[test]
    fn usage_prefers_tokens() {
        assert_eq!(
            usage(&json!({"tokens": {"input_tokens": 2, "output_tokens": 3}, "billed_units": {"input_tokens": 1}})),
            Some(Usage::new(2, 3))
        );
        assert_eq!(usage(&json!({"billed_units": {"output_tokens": 3}})), Some(Usage::new(0, 3)));
        assert_eq!(usage(&json!({})), None);
    }
}
