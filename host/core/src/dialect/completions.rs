//! Legacy completions (`POST /v1/completions`) over the chat pipeline: the prompt becomes one
//! user message; the answer's message text becomes each choice's `text`.
//!
//! Served: `model`, `prompt` (a string, or an array of one string), `max_tokens` (default 16, as
//! OpenAI's), `temperature`, `top_p`, `n`, `stop`, `presence_penalty`, `frequency_penalty`,
//! `seed`, `logit_bias`, `user`, `stream`, `stream_options`. Refused (400): several prompts,
//! token-array prompts, `suffix`, `echo: true`, `logprobs`, `best_of` above 1.

use serde_json::{Map, Value, json};

use super::json::{body, copy_numbers, invalid, missing, opt, opt_bool, opt_u32, req_str, unsupported};
use super::{Reply, first_choice, id_suffix, reasoning_of, sse_event, text_of};
use crate::errors::GatewayError;

/// OpenAI's default `max_tokens` for legacy completions.
const DEFAULT_MAX_TOKENS: u32 = 16;

/// The chat request a completions request becomes, and whether it streams.
pub fn to_chat(bytes: &[u8]) -> Result<(Value, bool), GatewayError> {
    let o = body(bytes)?;
    let model = req_str(&o, "model")?;
    let prompt = match opt(&o, "prompt") {
        None => return Err(missing("prompt")),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_owned(),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            return Err(unsupported(
                "prompt",
                "Only one prompt per request is supported; send one request per prompt.",
            ));
        }
        Some(_) => {
            return Err(unsupported("prompt", "'prompt' must be a string: token-array prompts are not supported."));
        }
    };
    if opt(&o, "suffix").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
        return Err(unsupported("suffix", "'suffix' (fill-in-the-middle) is not supported."));
    }
    if opt_bool(&o, "echo")? == Some(true) {
        return Err(unsupported("echo", "'echo' is not supported."));
    }
    if opt(&o, "logprobs").is_some_and(|v| v.as_u64() != Some(0)) {
        return Err(unsupported("logprobs", "'logprobs' is not supported for legacy completions."));
    }
    if opt_u32(&o, "best_of")?.is_some_and(|n| n > 1) {
        return Err(unsupported("best_of", "'best_of' above 1 is not supported."));
    }
    let max_tokens = opt_u32(&o, "max_tokens")?.unwrap_or(DEFAULT_MAX_TOKENS);
    if max_tokens == 0 {
        return Err(invalid("max_tokens", "'max_tokens' must be at least 1."));
    }
    let stream = opt_bool(&o, "stream")?.unwrap_or(false);
    let mut chat = Map::new();
    chat.insert("model".into(), model.into());
    chat.insert("messages".into(), json!([{ "role": "user", "content": prompt }]));
    chat.insert("max_tokens".into(), max_tokens.into());
    copy_numbers(&o, &mut chat, &["temperature", "top_p", "n", "presence_penalty", "frequency_penalty", "seed"])?;
    for k in ["stop", "logit_bias", "user", "stream_options"] {
        if let Some(v) = opt(&o, k) {
            chat.insert(k.into(), v.clone());
        }
    }
    if stream {
        chat.insert("stream".into(), Value::Bool(true));
    }
    Ok((Value::Object(chat), stream))
}

/// The completions answer to one request.
#[derive(Debug, Default)]
pub struct CompletionsReply;

fn choice(index: &Value, text: String, finish: &Value) -> Value {
    json!({ "text": text, "index": index, "logprobs": null, "finish_reason": finish })
}

impl Reply for CompletionsReply {
    fn complete(&mut self, chat: &Value) -> Value {
        let choices: Vec<Value> = chat
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let text = text_of(c.pointer("/message/content")).unwrap_or_default();
                choice(c.get("index").unwrap_or(&json!(0)), text, c.get("finish_reason").unwrap_or(&Value::Null))
            })
            .collect();
        let mut out = json!({
            "id": format!("cmpl-{}", id_suffix(chat)),
            "object": "text_completion",
            "created": chat.get("created").cloned().unwrap_or(json!(0)),
            "model": chat.get("model").cloned().unwrap_or(Value::Null),
            "choices": choices,
        });
        if let Some(u) = chat.get("usage").filter(|u| u.is_object()) {
            out["usage"] = u.clone();
        }
        if let Some(f) = chat.get("system_fingerprint").filter(|f| !f.is_null()) {
            out["system_fingerprint"] = f.clone();
        }
        out
    }

    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        let choices: Vec<Value> = chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let delta = c.get("delta");
                let text = delta.and_then(|d| d.get("content")).and_then(Value::as_str).unwrap_or("");
                let finish = c.get("finish_reason").unwrap_or(&Value::Null);
                // reasoning has no place in a completion's text
                if text.is_empty() && finish.is_null() && delta.and_then(reasoning_of).is_some() {
                    return None;
                }
                Some(choice(c.get("index").unwrap_or(&json!(0)), text.to_owned(), finish))
            })
            .collect();
        let usage = chunk.get("usage").filter(|u| u.is_object());
        if choices.is_empty() && usage.is_none() && first_choice(chunk).is_some() {
            return;
        }
        let mut c = json!({
            "id": format!("cmpl-{}", id_suffix(chunk)),
            "object": "text_completion",
            "created": chunk.get("created").cloned().unwrap_or(json!(0)),
            "model": chunk.get("model").cloned().unwrap_or(Value::Null),
            "choices": choices,
        });
        if let Some(u) = usage {
            c["usage"] = u.clone();
        }
        sse_event(out, None, &c);
    }

    fn failed(&mut self, error: &Value, out: &mut Vec<u8>) {
        sse_event(out, None, &json!({ "error": error }));
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_becomes_one_user_message_with_openais_default_max_tokens() {
        let (chat, stream) = to_chat(br#"{"model":"m","prompt":"Say hi","temperature":0,"stop":["\n"]}"#).unwrap();
        assert!(!stream);
        assert_eq!(chat["messages"], json!([{"role":"user","content":"Say hi"}]));
        assert_eq!(chat["max_tokens"], 16);
        assert_eq!(chat["temperature"], 0);
        assert_eq!(chat["stop"], json!(["\n"]));
        let (chat, _) = to_chat(br#"{"model":"m","prompt":["one"],"max_tokens":5,"stream":true}"#).unwrap();
        assert_eq!(chat["messages"][0]["content"], "one");
        assert_eq!(chat["stream"], true);
    }

    #[test]
    fn what_is_not_served_is_refused_by_name() {
        for (body, param) in [
            (r#"{"model":"m","prompt":["a","b"]}"#, "prompt"),
            (r#"{"model":"m","prompt":[1,2,3]}"#, "prompt"),
            (r#"{"model":"m","prompt":"a","suffix":"z"}"#, "suffix"),
            (r#"{"model":"m","prompt":"a","echo":true}"#, "echo"),
            (r#"{"model":"m","prompt":"a","logprobs":2}"#, "logprobs"),
            (r#"{"model":"m","prompt":"a","best_of":3}"#, "best_of"),
            (r#"{"model":"m"}"#, "prompt"),
            (r#"{"prompt":"a"}"#, "model"),
        ] {
            let e = to_chat(body.as_bytes()).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
        }
    }

    #[test]
    fn an_answer_and_its_stream_become_text_completions() {
        let chat = json!({"id":"chatcmpl-x1","created":5,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}});
        let out = CompletionsReply.complete(&chat);
        assert_eq!(out["object"], "text_completion");
        assert_eq!(out["id"], "cmpl-x1");
        assert_eq!(out["choices"][0]["text"], "Hello");
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(out["usage"]["total_tokens"], 4);
        let mut r = CompletionsReply;
        let mut bytes = Vec::new();
        r.chunk(&json!({"id":"chatcmpl-x1","model":"m","choices":[{"index":0,"delta":{"content":"He"},"finish_reason":null}]}), &mut bytes);
        r.chunk(
            &json!({"id":"chatcmpl-x1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}),
            &mut bytes,
        );
        r.finish(&mut bytes);
        let text = String::from_utf8(bytes).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 3, "{text}");
        assert!(events[0].contains(r#""text":"He""#), "{}", events[0]);
        assert!(events[1].contains(r#""finish_reason":"length""#), "{}", events[1]);
        assert_eq!(events[2], "data: [DONE]");
    }
}
