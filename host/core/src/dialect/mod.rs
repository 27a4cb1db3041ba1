//! Other APIs the gateway answers, translated to and from OpenAI chat completions: Anthropic
//! Messages (`messages`), legacy completions (`completions`) and the Responses API subset
//! (`responses`). A request is turned into a chat body for the one chat pipeline; its answer (a
//! `chat.completion`, or a stream of `chat.completion.chunk`s) is turned back by a [`Reply`].

pub mod completions;
pub mod json;
pub mod messages;
pub mod responses;

use serde_json::Value;

/// Turns the chat pipeline's answer into a dialect's, for one request.
pub trait Reply: Send {
    /// A whole `chat.completion` -> the dialect's response body.
    fn complete(&mut self, chat: &Value) -> Value;
    /// One `chat.completion.chunk` of a stream -> the dialect's events, appended to `out`.
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>);
    /// The stream failed after it began; `error` is the OpenAI error object
    /// (`{"message", "type", "code"}`).
    fn failed(&mut self, error: &Value, out: &mut Vec<u8>);
    /// The stream ended (`[DONE]`, or the end of the body): closing events, if any.
    fn finish(&mut self, out: &mut Vec<u8>);
}

/// Append one server-sent event (`event:` line when named) to `out`.
pub fn sse_event(out: &mut Vec<u8>, name: Option<&str>, data: &Value) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // a Value always serialises
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

/// The id part of a chat completion id (`chatcmpl-abc` -> `abc`), for the dialect's own id.
pub fn id_suffix(chat: &Value) -> String {
    let id = chat.get("id").and_then(Value::as_str).unwrap_or("");
    let tail = id.strip_prefix("chatcmpl-").unwrap_or(id);
    let clean: String = tail.chars().filter(char::is_ascii_alphanumeric).take(40).collect();
    if clean.is_empty() { random_id() } else { clean }
}

/// 24 random hex digits.
pub fn random_id() -> String {
    let mut b = [0u8; 12];
    // without entropy the id is still unique enough for a reply's own name
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

/// `finish_reason` of the first choice, and whether the chat's answer holds tool calls.
pub fn first_choice(chat: &Value) -> Option<&Value> {
    chat.get("choices").and_then(Value::as_array).and_then(|c| c.first())
}

/// The reasoning text a chat message or delta carries (`reasoning_content`, or `reasoning`).
pub fn reasoning_of(m: &Value) -> Option<&str> {
    m.get("reasoning_content")
        .and_then(Value::as_str)
        .or_else(|| m.get("reasoning").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// Text of a chat message's `content` (a string, or an array of text parts).
pub fn text_of(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let text: String = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
            Some(text)
        }
        _ => None,
    }
}

/// The chat usage's token counts: (prompt, completion, cached prompt).
pub fn usage_of(chat: &Value) -> Option<(u64, u64, u64)> {
    let u = chat.get("usage").filter(|u| u.is_object())?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = u.pointer("/prompt_tokens_details/cached_tokens").and_then(Value::as_u64).unwrap_or(0);
    Some((n("prompt_tokens"), n("completion_tokens"), cached))
}
