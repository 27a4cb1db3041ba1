//! Building OpenAI responses in translating providers: `chat.completion` bodies and
//! `chat.completion.chunk` events, ids and timestamps.
//!
//! A translating provider keeps per-request state (the request's model, the chunk writer,
//! tool-call indices, usage so far) in a `thread_local!` that it resets in `chat`: the host
//! calls `translate-*` on the instance that planned the request, and instances are reused only
//! after a request is over.

use serde_json::{Value, json};

use crate::openai::{ChatCompletion, Choice, Message, ToolCall, Usage};
use crate::provider::bindings::freeway::gateway::clock;

/// The translation state of the request an instance serves: set by `chat`, used by the
/// `translate-*` calls that follow on the same instance (the host sends a request's translate
/// calls to the instance that planned it, and reuses an instance only once its request is
/// over). Declare one as a `static`.
pub struct RequestState<T>(std::sync::Mutex<Option<T>>);

impl<T> Default for RequestState<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RequestState<T> {
    pub const fn new() -> Self {
        Self(std::sync::Mutex::new(None))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        // a guest that panicked has trapped: its instance is never used again
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forget the previous request's state (call first in `chat`, so a plan that fails leaves
    /// none behind).
    pub fn clear(&self) {
        self.slot().take();
    }

    /// The state of the request `chat` has just planned.
    pub fn begin(&self, state: T) {
        *self.slot() = Some(state);
    }

    /// Run `f` on the current request's state (`init()` if `chat` did not set one).
    pub fn with<R>(&self, init: impl FnOnce() -> T, f: impl FnOnce(&mut T) -> R) -> R {
        let mut slot = self.slot();
        f(slot.get_or_insert_with(init))
    }
}

/// A tool call's `arguments` (a JSON string, as OpenAI clients send them) as the JSON object
/// most APIs want: empty or `null` is `{}`; anything but an object is the client's mistake,
/// named by the tool.
pub fn tool_arguments(arguments: &str, name: &str) -> Result<Value, crate::types::ProviderError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(Value::Null) => Ok(json!({})),
        _ => Err(crate::errors::bad_request(&format!(
            "the arguments of the tool call to `{name}` are not a JSON object"
        ))),
    }
}

/// Seconds since the Unix epoch (host clock).
pub fn now_secs() -> u64 {
    clock::now_ms() / 1000
}

/// A fresh id like `chatcmpl-1f3a...` (from the host's monotonic clock and a counter).
pub fn new_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:x}{:04x}", clock::monotonic_ns() ^ clock::now_ms().rotate_left(20), n & 0xffff)
}

/// Writes the chunks of one streamed completion.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    pub id: String,
    pub model: String,
    pub created: u64,
}

impl ChunkWriter {
    pub fn new(model: &str) -> Self {
        Self { id: new_id("chatcmpl"), model: model.to_owned(), created: now_secs() }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
        })
        .to_string()
    }

    /// The first chunk: `{"role": "assistant", "content": ""}`.
    pub fn role(&self) -> String {
        self.chunk(json!({ "role": "assistant", "content": "" }), None)
    }

    pub fn text(&self, text: &str) -> String {
        self.chunk(json!({ "content": text }), None)
    }

    /// Reasoning text, as OpenAI-compatible servers stream it (`reasoning_content`).
    pub fn reasoning(&self, text: &str) -> String {
        self.chunk(json!({ "reasoning_content": text }), None)
    }

    /// A tool call begins: its index among this message's calls, id and function name.
    pub fn tool_call_start(&self, index: u32, id: &str, name: &str) -> String {
        self.chunk(
            json!({ "tool_calls": [{ "index": index, "id": id, "type": "function", "function": { "name": name, "arguments": "" } }] }),
            None,
        )
    }

    /// More of a tool call's JSON arguments.
    pub fn tool_call_arguments(&self, index: u32, fragment: &str) -> String {
        self.chunk(json!({ "tool_calls": [{ "index": index, "function": { "arguments": fragment } }] }), None)
    }

    /// The last content chunk: empty delta and a finish reason.
    pub fn finish(&self, reason: &str) -> String {
        self.chunk(json!({}), Some(reason))
    }

    /// The usage chunk (`choices: []`), as with `stream_options.include_usage`.
    pub fn usage(&self, usage: &Usage) -> String {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        })
        .to_string()
    }
}

/// A whole `chat.completion` with one choice.
pub fn completion(
    model: &str,
    content: Option<String>,
    tool_calls: Vec<ToolCall>,
    finish_reason: &str,
    usage: Option<Usage>,
) -> String {
    let message = Message {
        role: "assistant".to_owned(),
        content: Some(crate::openai::Content::Text(content.unwrap_or_default())),
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        ..Message::default()
    };
    let c = ChatCompletion {
        id: new_id("chatcmpl"),
        object: "chat.completion".to_owned(),
        created: now_secs(),
        model: model.to_owned(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish_reason.to_owned()),
            extra: Default::default(),
        }],
        usage,
        extra: Default::default(),
    };
    serde_json::to_string(&c).unwrap_or_default()
}

/// A tool call in a complete message.
pub fn tool_call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        index: None,
        id: Some(id.to_owned()),
        kind: Some("function".to_owned()),
        function: crate::openai::FunctionCall { name: Some(name.to_owned()), arguments: arguments.to_owned() },
    }
}
