//! A stream of `chat.completion.chunk`s -> Anthropic's event sequence: `message_start`, `ping`,
//! per content block `content_block_start`, its deltas (`thinking_delta`, `text_delta`,
//! `input_json_delta`) and `content_block_stop`, then `message_delta` (stop reason, usage) and
//! `message_stop`. Reasoning, text and each tool call are blocks of their own, in the order they
//! begin; a failure mid-stream is an `error` event.

use serde_json::{Value, json};

use super::super::{first_choice, id_suffix, reasoning_of, sse_event};
use super::error;
use super::reply::{stop_reason, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Text,
    /// a tool call, by its index in the chat stream
    Tool(u64),
}

/// Where a stream is.
#[derive(Debug, Default)]
pub struct MessageStream {
    started: bool,
    /// the open block and its index
    open: Option<(usize, Block)>,
    blocks: usize,
    /// tool call index in the chat stream -> block index
    tools: Vec<(u64, usize)>,
    finish: Option<String>,
    usage: Option<Value>,
    ended: bool,
}

impl MessageStream {
    fn start(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": format!("msg_{}", id_suffix(chunk)),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model").cloned().unwrap_or(Value::Null),
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": { "input_tokens": 0, "output_tokens": 0,
                       "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
        });
        sse_event(out, Some("message_start"), &json!({ "type": "message_start", "message": message }));
        sse_event(out, Some("ping"), &json!({ "type": "ping" }));
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            sse_event(out, Some("content_block_stop"), &json!({ "type": "content_block_stop", "index": index }));
        }
    }

    /// Open `block` (closing another) unless it is open; its index.
    fn open(&mut self, block: Block, start: Value, out: &mut Vec<u8>) -> usize {
        if let Some((index, open)) = self.open
            && open == block
        {
            return index;
        }
        self.close(out);
        let index = self.blocks;
        self.blocks += 1;
        self.open = Some((index, block));
        sse_event(
            out,
            Some("content_block_start"),
            &json!({ "type": "content_block_start", "index": index, "content_block": start }),
        );
        index
    }

    fn delta(out: &mut Vec<u8>, index: usize, delta: Value) {
        sse_event(
            out,
            Some("content_block_delta"),
            &json!({ "type": "content_block_delta", "index": index, "delta": delta }),
        );
    }

    pub fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(chunk, out);
        if chunk.get("usage").is_some_and(Value::is_object) {
            self.usage = Some(chunk.clone());
        }
        let Some(choice) = first_choice(chunk) else {
            return;
        };
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        if let Some(thinking) = reasoning_of(delta) {
            let i = self.open(Block::Thinking, json!({ "type": "thinking", "thinking": "", "signature": "" }), out);
            Self::delta(out, i, json!({ "type": "thinking_delta", "thinking": thinking }));
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            let i = self.open(Block::Text, json!({ "type": "text", "text": "" }), out);
            Self::delta(out, i, json!({ "type": "text_delta", "text": text }));
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            self.tool_call(call, out);
        }
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<u8>) {
        let n = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let f = call.get("function");
        let args = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or("");
        let index = match self.tools.iter().find(|(t, _)| *t == n) {
            Some(&(_, index)) => index,
            None => {
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("toolu_{}", super::super::random_id()), str::to_owned);
                let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or("");
                let start = json!({ "type": "tool_use", "id": id, "name": name, "input": {} });
                let index = self.open(Block::Tool(n), start, out);
                self.tools.push((n, index));
                index
            }
        };
        if !args.is_empty() {
            Self::delta(out, index, json!({ "type": "input_json_delta", "partial_json": args }));
        }
    }

    pub fn failed(&mut self, err: &Value, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        sse_event(out, Some("error"), &error::from_openai(err));
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        if !self.started {
            self.start(&Value::Null, out);
        }
        self.close(out);
        let usage = usage(self.usage.as_ref().unwrap_or(&Value::Null));
        sse_event(
            out,
            Some("message_delta"),
            &json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null },
                "usage": usage,
            }),
        );
        sse_event(out, Some("message_stop"), &json!({ "type": "message_stop" }));
    }
}
