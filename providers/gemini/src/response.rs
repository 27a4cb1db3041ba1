//! Gemini `GenerateContentResponse` (whole, or one stream event) -> OpenAI `chat.completion`
//! and `chat.completion.chunk`s.
//!
//! - text parts are joined; `thought` parts (thought summaries, present when thoughts are
//!   requested) become `reasoning_content`, as OpenAI-compatible reasoning servers send it;
//! - `functionCall` parts become `tool_calls` with generated ids (`call_<request>_<n>`, or the
//!   call's own `id` when Gemini sends one) and JSON-string arguments; a part's
//!   `thoughtSignature` rides along as `extra_content.google.thought_signature`, where Google's
//!   own OpenAI endpoint puts it, and is replayed from there on the next request;
//! - finish reasons: `STOP` -> `stop` (`tool_calls` when the message calls tools),
//!   `MAX_TOKENS` -> `length`, the safety family -> `content_filter`, anything else -> `stop`;
//! - `usageMetadata` -> `usage`: prompt (+ tool-use prompt) tokens, candidates + thoughts tokens
//!   as completion tokens (thoughts also as `completion_tokens_details.reasoning_tokens`).

use freeway_sdk::errors::invalid_response;
use freeway_sdk::openai::{Extra, Usage};
use freeway_sdk::translate::ChunkWriter;
use freeway_sdk::types::{ErrorKind, ProviderError};
use serde_json::{Value, json};

/// Per-request translation state (one per `chat`, kept until the next).
#[derive(Debug, Clone)]
pub struct Translator {
    writer: ChunkWriter,
    /// tool calls emitted so far (the next one's index)
    tool_calls: u32,
    role_sent: bool,
    finish_sent: bool,
    usage_sent: bool,
    content_seen: bool,
    usage: Option<Usage>,
}

/// Gemini finish reason -> OpenAI `finish_reason`.
pub fn finish_reason(reason: &str, calls_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if calls_tools => "tool_calls",
        _ => "stop",
    }
}

/// `usageMetadata` -> OpenAI usage.
pub fn usage(meta: &Value) -> Usage {
    let n = |k: &str| meta.get(k).and_then(Value::as_u64).unwrap_or(0);
    let prompt = n("promptTokenCount") + n("toolUsePromptTokenCount");
    let thoughts = n("thoughtsTokenCount");
    let completion = n("candidatesTokenCount") + thoughts;
    let total = meta.get("totalTokenCount").and_then(Value::as_u64).unwrap_or(prompt + completion);
    let mut extra = Extra::new();
    if thoughts > 0 {
        extra.insert("completion_tokens_details".to_owned(), json!({"reasoning_tokens": thoughts}));
    }
    let cached = n("cachedContentTokenCount");
    if cached > 0 {
        extra.insert("prompt_tokens_details".to_owned(), json!({"cached_tokens": cached}));
    }
    Usage { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total, extra }
}

/// A response without candidates: blocked by `promptFeedback`, or unreadable.
fn no_candidates(v: &Value) -> ProviderError {
    let feedback = v.get("promptFeedback");
    match feedback.and_then(|f| f.get("blockReason")).and_then(Value::as_str) {
        Some(reason) => {
            let detail = feedback
                .and_then(|f| f.get("blockReasonMessage"))
                .and_then(Value::as_str)
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            ProviderError {
                kind: ErrorKind::ContentPolicy,
                message: format!("Gemini blocked the prompt (blockReason {reason}){detail}"),
                status: 0,
                code: Some(reason.to_owned()),
                retry_after_ms: None,
                window: None,
            }
        }
        None => invalid_response("Gemini answered without any candidate"),
    }
}

/// An `{"error": {...}}` body inside a successful response or stream.
fn embedded_error(v: &Value) -> Option<ProviderError> {
    let err = v.get("error")?;
    let status = err.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
    Some(crate::quota::map_error(status, &Vec::new(), &v.to_string()))
}

fn parse(body: &str) -> Result<Value, ProviderError> {
    serde_json::from_str(body).map_err(|e| invalid_response(&format!("Gemini answered with invalid JSON: {e}")))
}

/// One function call of a candidate.
struct Call {
    id: String,
    name: String,
    arguments: String,
    signature: Option<String>,
}

impl Call {
    fn to_json(&self) -> Value {
        let mut c = json!({
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        });
        if let Some(sig) = &self.signature {
            c["extra_content"] = json!({"google": {"thought_signature": sig}});
        }
        c
    }
}

impl Translator {
    pub fn new(id: &str, model: &str, created: u64) -> Self {
        Self {
            writer: ChunkWriter { id: id.to_owned(), model: model.to_owned(), created },
            tool_calls: 0,
            role_sent: false,
            finish_sent: false,
            usage_sent: false,
            content_seen: false,
            usage: None,
        }
    }

    fn call(&mut self, part: &Value, fc: &Value) -> Call {
        let n = self.tool_calls;
        self.tool_calls += 1;
        let id = match fc.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => format!("call_{}_{n}", self.writer.id.trim_start_matches("chatcmpl-")),
        };
        let args = fc.get("args").filter(|a| !a.is_null()).cloned().unwrap_or_else(|| json!({}));
        Call {
            id,
            name: fc.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
            arguments: args.to_string(),
            signature: part.get("thoughtSignature").and_then(Value::as_str).map(str::to_owned),
        }
    }

    /// A whole `generateContent` answer -> a `chat.completion` (one choice per candidate).
    pub fn response(&mut self, body: &str) -> Result<String, ProviderError> {
        let v = parse(body)?;
        if let Some(e) = embedded_error(&v) {
            return Err(e);
        }
        let candidates = match v.get("candidates").and_then(Value::as_array) {
            Some(c) if !c.is_empty() => c,
            _ => return Err(no_candidates(&v)),
        };
        let mut choices = Vec::with_capacity(candidates.len());
        for (i, cand) in candidates.iter().enumerate() {
            let mut text = String::new();
            let mut reasoning = String::new();
            let mut calls = Vec::new();
            for part in cand.pointer("/content/parts").and_then(Value::as_array).into_iter().flatten() {
                if let Some(fc) = part.get("functionCall") {
                    calls.push(self.call(part, fc).to_json());
                } else if let Some(t) = part.get("text").and_then(Value::as_str) {
                    if part.get("thought").and_then(Value::as_bool) == Some(true) {
                        reasoning.push_str(t);
                    } else {
                        text.push_str(t);
                    }
                }
            }
            let reason = cand.get("finishReason").and_then(Value::as_str).unwrap_or("STOP");
            let mut message = json!({
                "role": "assistant",
                "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
            });
            if !reasoning.is_empty() {
                message["reasoning_content"] = Value::String(reasoning);
            }
            let finish = finish_reason(reason, !calls.is_empty());
            if !calls.is_empty() {
                message["tool_calls"] = Value::Array(calls);
            }
            let index = cand.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
            choices.push(json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish}));
        }
        let mut out = json!({
            "id": self.writer.id,
            "object": "chat.completion",
            "created": self.writer.created,
            "model": self.writer.model,
            "choices": choices,
        });
        if let Some(meta) = v.get("usageMetadata") {
            out["usage"] = json!(usage(meta));
        }
        Ok(out.to_string())
    }

    /// One stream event's data -> chunks.
    pub fn event(&mut self, data: &str) -> Result<Vec<String>, ProviderError> {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        match parse(data)? {
            // `streamGenerateContent` without `alt=sse` sends a JSON array of responses
            Value::Array(items) => {
                for item in &items {
                    self.chunk(item, &mut out)?;
                }
            }
            v => self.chunk(&v, &mut out)?,
        }
        Ok(out)
    }

    fn chunk(&mut self, v: &Value, out: &mut Vec<String>) -> Result<(), ProviderError> {
        if let Some(e) = embedded_error(v) {
            return Err(e);
        }
        if let Some(meta) = v.get("usageMetadata") {
            self.usage = Some(usage(meta));
        }
        let Some(cand) = v.get("candidates").and_then(Value::as_array).and_then(|c| c.first()) else {
            // a usage-only event is fine; a blocked prompt is not
            if v.pointer("/promptFeedback/blockReason").is_some() {
                return Err(no_candidates(v));
            }
            return Ok(());
        };
        if !self.role_sent {
            out.push(self.writer.role());
            self.role_sent = true;
        }
        for part in cand.pointer("/content/parts").and_then(Value::as_array).into_iter().flatten() {
            if let Some(fc) = part.get("functionCall") {
                let index = self.tool_calls;
                let call = self.call(part, fc);
                let mut start = self.writer.tool_call_start(index, &call.id, &call.name);
                if let Some(sig) = &call.signature {
                    start = with_signature(&start, sig);
                }
                out.push(start);
                out.push(self.writer.tool_call_arguments(index, &call.arguments));
                self.content_seen = true;
            } else if let Some(t) = part.get("text").and_then(Value::as_str) {
                if t.is_empty() {
                    continue;
                }
                if part.get("thought").and_then(Value::as_bool) == Some(true) {
                    out.push(self.writer.reasoning(t));
                } else {
                    out.push(self.writer.text(t));
                }
                self.content_seen = true;
            }
        }
        let reason = cand.get("finishReason").and_then(Value::as_str).filter(|r| !r.is_empty());
        if let Some(reason) = reason
            && reason != "FINISH_REASON_UNSPECIFIED"
            && !self.finish_sent
        {
            out.push(self.writer.finish(finish_reason(reason, self.tool_calls > 0)));
            self.finish_sent = true;
            // the event that finishes carries the final usage
            if let Some(u) = &self.usage {
                out.push(self.writer.usage(u));
                self.usage_sent = true;
            }
        }
        Ok(())
    }

    /// The stream ended: a finish chunk if content came without one, and the usage chunk if it
    /// was not sent yet.
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if self.content_seen && !self.finish_sent {
            out.push(self.writer.finish(if self.tool_calls > 0 { "tool_calls" } else { "stop" }));
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

/// Add `extra_content.google.thought_signature` to a tool-call-start chunk.
fn with_signature(chunk: &str, signature: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(chunk) else { return chunk.to_owned() };
    if let Some(call) = v.pointer_mut("/choices/0/delta/tool_calls/0") {
        call["extra_content"] = json!({"google": {"thought_signature": signature}});
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Translator {
        Translator::new("chatcmpl-abc", "gemini-2.5-flash", 1_700_000_000)
    }

    fn completion(body: Value) -> Value {
        serde_json::from_str(&t().response(&body.to_string()).unwrap()).unwrap()
    }

    #[test]
    fn text_reasoning_and_usage() {
        let c = completion(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Let me think.", "thought": true},
                {"text": "Hello"}, {"text": ", world"}]},
                "finishReason": "STOP", "index": 0, "safetyRatings": []}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 4,
                              "totalTokenCount": 12, "cachedContentTokenCount": 2},
            "modelVersion": "gemini-2.5-flash", "responseId": "r1",
        }));
        assert_eq!(c["id"], "chatcmpl-abc");
        assert_eq!(c["object"], "chat.completion");
        assert_eq!(c["created"], 1_700_000_000);
        assert_eq!(c["model"], "gemini-2.5-flash");
        let choice = &c["choices"][0];
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "Hello, world");
        assert_eq!(choice["message"]["reasoning_content"], "Let me think.");
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(
            c["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
                   "completion_tokens_details": {"reasoning_tokens": 4}, "prompt_tokens_details": {"cached_tokens": 2}})
        );
    }

    #[test]
    fn function_calls_become_tool_calls() {
        let c = completion(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "now"}}]},
                "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 6, "totalTokenCount": 16},
        }));
        let choice = &c["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert!(choice["message"]["content"].is_null());
        let calls = choice["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["id"], "call_abc_0");
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        let args: Value = serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Paris"}));
        assert_eq!(calls[0]["extra_content"]["google"]["thought_signature"], "c2ln");
        assert_eq!(calls[1]["id"], "call_abc_1");
        assert_eq!(calls[1]["function"]["arguments"], "{}");
        assert!(calls[1].get("extra_content").is_none());
        assert_eq!(c["usage"]["completion_tokens"], 6);
    }

    #[test]
    fn finish_reasons() {
        let reason = |r: &str| {
            completion(json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": r}]}))["choices"]
                [0]["finish_reason"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(reason("STOP"), "stop");
        assert_eq!(reason("MAX_TOKENS"), "length");
        for r in ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"] {
            assert_eq!(reason(r), "content_filter", "{r}");
        }
        assert_eq!(reason("OTHER"), "stop");
        assert_eq!(reason("MALFORMED_FUNCTION_CALL"), "stop");
        // a safety stop without content still answers
        let c = completion(json!({"candidates": [{"finishReason": "SAFETY", "index": 0}]}));
        assert_eq!(c["choices"][0]["message"]["content"], "");
        assert_eq!(c["choices"][0]["finish_reason"], "content_filter");
        assert!(c.get("usage").is_none());
    }

    #[test]
    fn several_candidates_become_several_choices() {
        let c = completion(json!({"candidates": [
            {"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP", "index": 0},
            {"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS", "index": 1}]}));
        assert_eq!(c["choices"][1]["index"], 1);
        assert_eq!(c["choices"][1]["message"]["content"], "b");
        assert_eq!(c["choices"][1]["finish_reason"], "length");
    }

    #[test]
    fn blocked_prompt_is_a_content_policy_error() {
        let body = json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                          "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}});
        let e = t().response(&body.to_string()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ContentPolicy);
        assert_eq!(e.code.as_deref(), Some("SAFETY"));
        assert!(e.message.contains("blocked the prompt"));
        let e = t().response("{}").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidResponse);
        assert_eq!(t().response("nope").unwrap_err().kind, ErrorKind::InvalidResponse);
        let e = t().event(&body.to_string()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ContentPolicy);
    }

    fn chunks(t: &mut Translator, events: &[Value]) -> Vec<Value> {
        let mut out = Vec::new();
        for e in events {
            out.extend(t.event(&e.to_string()).unwrap());
        }
        out.extend(t.finish());
        out.iter().map(|c| serde_json::from_str(c).unwrap()).collect()
    }

    #[test]
    fn a_stream_with_text_then_a_function_call_then_usage() {
        let mut tr = t();
        let events = [
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me check"}]}, "index": 0}],
                   "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "gemini-2.5-flash"}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": " the weather."}]}, "index": 0}],
                   "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13}}),
            json!({"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"}]},
                "finishReason": "STOP", "index": 0}],
                   "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 12, "thoughtsTokenCount": 3, "totalTokenCount": 24}}),
        ];
        let out = chunks(&mut tr, &events);
        // role, 2 texts, tool start, tool arguments, finish, usage
        assert_eq!(out.len(), 7, "{out:#?}");
        for c in &out {
            assert_eq!(c["id"], "chatcmpl-abc");
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["model"], "gemini-2.5-flash");
        }
        assert_eq!(out[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        let text: String =
            out[1..3].iter().map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap().to_owned()).collect();
        assert_eq!(text, "Let me check the weather.");
        let start = &out[3]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(start["index"], 0);
        assert_eq!(start["id"], "call_abc_0");
        assert_eq!(start["function"]["name"], "get_weather");
        assert_eq!(start["extra_content"]["google"]["thought_signature"], "c2ln");
        let args = &out[4]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(args["index"], 0);
        assert_eq!(args["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(out[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out[6]["choices"], json!([]));
        assert_eq!(out[6]["usage"]["prompt_tokens"], 9);
        assert_eq!(out[6]["usage"]["completion_tokens"], 15);
        assert_eq!(out[6]["usage"]["total_tokens"], 24);
        assert!(tr.finish().is_empty(), "nothing more once finished");
    }

    #[test]
    fn a_stream_that_ends_without_a_finish_reason_is_finished_by_finish_stream() {
        let mut tr = t();
        let out = chunks(
            &mut tr,
            &[json!({"candidates": [{"content": {"parts": [{"text": "partial"}]}}],
                     "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1, "totalTokenCount": 3}})],
        );
        assert_eq!(out.len(), 4);
        assert_eq!(out[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(out[3]["usage"]["total_tokens"], 3);
        // nothing at all: nothing to flush (the host reports the empty stream)
        assert!(t().finish().is_empty());
    }

    #[test]
    fn stream_errors_and_blank_events() {
        let mut tr = t();
        assert!(tr.event("").unwrap().is_empty());
        assert!(tr.event("[DONE]").unwrap().is_empty());
        let e = tr
            .event(
                &json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
                    .to_string(),
            )
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Overloaded);
        assert_eq!(tr.event("{not json").unwrap_err().kind, ErrorKind::InvalidResponse);
        // the JSON-array form of streamGenerateContent
        let arr = json!([{"candidates": [{"content": {"parts": [{"text": "a"}]}}]}, {"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS"}]}]);
        let out: Vec<Value> =
            tr.event(&arr.to_string()).unwrap().iter().map(|c| serde_json::from_str(c).unwrap()).collect();
        assert_eq!(out.len(), 4);
        assert_eq!(out[3]["choices"][0]["finish_reason"], "length");
    }
}
