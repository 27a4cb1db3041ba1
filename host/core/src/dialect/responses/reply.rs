//! The answer: output items (reasoning, message, function and custom tool calls) and the
//! response object around them, whole or as a stream ([`super::stream`]).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::super::{Reply, first_choice, random_id, reasoning_of, text_of, usage_of};
use super::Keep;
use super::request::Echo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Reasoning,
    Message,
    /// a function call (the chat stream's tool call index)
    Function(u64),
    /// a call of a `custom` tool (its `input` is the function's one string argument)
    Custom(u64),
}

/// One output item as it is built.
#[derive(Debug)]
pub(super) struct Item {
    pub kind: Kind,
    pub id: String,
    /// reasoning or message text, or a call's JSON arguments
    pub text: String,
    pub call_id: String,
    pub name: String,
}

impl Item {
    pub fn new(kind: Kind) -> Self {
        let prefix = match kind {
            Kind::Reasoning => "rs",
            Kind::Message => "msg",
            Kind::Function(_) => "fc",
            Kind::Custom(_) => "ctc",
        };
        Self {
            kind,
            id: format!("{prefix}_{}", random_id()),
            text: String::new(),
            call_id: String::new(),
            name: String::new(),
        }
    }

    /// The item as JSON, `done` or still in progress.
    pub fn json(&self, done: bool) -> Value {
        let status = if done { "completed" } else { "in_progress" };
        match self.kind {
            Kind::Reasoning => {
                let summary = if done { json!([{ "type": "summary_text", "text": self.text }]) } else { json!([]) };
                json!({ "type": "reasoning", "id": self.id, "summary": summary })
            }
            Kind::Message => {
                let content = if done { json!([self.part()]) } else { json!([]) };
                json!({ "type": "message", "id": self.id, "status": status, "role": "assistant", "content": content })
            }
            Kind::Function(_) => json!({
                "type": "function_call", "id": self.id, "call_id": self.call_id, "name": self.name,
                "arguments": if done { self.text.as_str() } else { "" }, "status": status,
            }),
            Kind::Custom(_) => json!({
                "type": "custom_tool_call", "id": self.id, "call_id": self.call_id, "name": self.name,
                "input": custom_input(&self.text),
            }),
        }
    }

    pub fn part(&self) -> Value {
        json!({ "type": "output_text", "text": self.text, "annotations": [], "logprobs": [] })
    }
}

/// A custom tool's `input`: the one string argument of the function it was offered as.
fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v) => v.get("input").and_then(Value::as_str).map_or_else(|| arguments.to_owned(), str::to_owned),
        Err(_) => arguments.to_owned(),
    }
}

/// The Responses answer to one request.
pub struct ResponsesReply {
    pub(super) id: String,
    created_at: u64,
    pub(super) model: Value,
    echo: Echo,
    conversation: Vec<Value>,
    keep: Option<Keep>,
    pub(super) items: Vec<Item>,
    pub(super) usage: Option<Value>,
    pub(super) finish: Option<String>,
    pub(super) stream: super::stream::State,
}

impl ResponsesReply {
    /// `keep` is called once the answer is whole (not when `echo.store` is false).
    pub fn new(model: &str, echo: Echo, conversation: Vec<Value>, keep: Option<Keep>) -> Self {
        let created_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let keep = if echo.store { keep } else { None };
        Self {
            id: format!("resp_{}", random_id()),
            created_at,
            model: Value::String(model.to_owned()),
            echo,
            conversation,
            keep,
            items: Vec::new(),
            usage: None,
            finish: None,
            stream: super::stream::State::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn call_kind(&self, name: &str, index: u64) -> Kind {
        if self.echo.custom_tools.iter().any(|c| c == name) { Kind::Custom(index) } else { Kind::Function(index) }
    }

    /// `completed`, or `incomplete` when the answer was cut short; the reason.
    fn status(&self) -> (&'static str, Value) {
        match self.finish.as_deref() {
            Some("length") => ("incomplete", json!({ "reason": "max_output_tokens" })),
            Some("content_filter") => ("incomplete", json!({ "reason": "content_filter" })),
            _ => ("completed", Value::Null),
        }
    }

    /// The response object: `status` given, or as the answer ended (`None`).
    pub(super) fn response(&self, status: Option<&str>, error: Value) -> Value {
        let (ended, incomplete) = self.status();
        let status = status.unwrap_or(ended);
        let done = status != "in_progress";
        let output: Vec<Value> = if done { self.items.iter().map(|i| i.json(true)).collect() } else { Vec::new() };
        let usage = match (done, self.usage.as_ref().and_then(usage_of)) {
            (true, Some((input, output, cached))) => {
                let reasoning = self
                    .usage
                    .as_ref()
                    .and_then(|u| u.pointer("/usage/completion_tokens_details/reasoning_tokens"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                json!({
                    "input_tokens": input,
                    "input_tokens_details": { "cached_tokens": cached },
                    "output_tokens": output,
                    "output_tokens_details": { "reasoning_tokens": reasoning },
                    "total_tokens": input + output,
                })
            }
            _ => Value::Null,
        };
        let e = &self.echo;
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": if status == "incomplete" { incomplete } else { Value::Null },
            "instructions": e.instructions,
            "max_output_tokens": e.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": e.parallel_tool_calls,
            "previous_response_id": e.previous_response_id,
            "reasoning": { "effort": null, "summary": null },
            "store": e.store,
            "temperature": e.temperature,
            "text": e.text,
            "tool_choice": e.tool_choice,
            "tools": e.tools,
            "top_p": e.top_p,
            "truncation": "disabled",
            "usage": usage,
            "user": null,
            "metadata": e.metadata,
        })
    }

    /// Hand the conversation, this answer included, to the store.
    pub(super) fn keep(&mut self) {
        let Some(keep) = self.keep.take() else {
            return;
        };
        let text: String =
            self.items.iter().filter(|i| i.kind == Kind::Message).map(|i| i.text.as_str()).collect::<Vec<_>>().join("");
        let calls: Vec<Value> = self
            .items
            .iter()
            .filter(|i| matches!(i.kind, Kind::Function(_) | Kind::Custom(_)))
            .map(
                |i| json!({ "id": i.call_id, "type": "function", "function": { "name": i.name, "arguments": i.text } }),
            )
            .collect();
        let mut answer = json!({ "role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) } });
        if !calls.is_empty() {
            answer["tool_calls"] = Value::Array(calls);
        }
        let mut conversation = std::mem::take(&mut self.conversation);
        conversation.push(answer);
        keep(self.id.clone(), conversation);
    }
}

impl Reply for ResponsesReply {
    fn complete(&mut self, chat: &Value) -> Value {
        if let Some(m) = chat.get("model").filter(|m| m.is_string()) {
            self.model = m.clone();
        }
        let choice = first_choice(chat);
        let msg = choice.and_then(|c| c.get("message"));
        if let Some(r) = msg.and_then(reasoning_of) {
            let mut item = Item::new(Kind::Reasoning);
            item.text = r.to_owned();
            self.items.push(item);
        }
        if let Some(text) = text_of(msg.and_then(|m| m.get("content"))).filter(|t| !t.is_empty()) {
            let mut item = Item::new(Kind::Message);
            item.text = text;
            self.items.push(item);
        }
        for (n, call) in
            msg.and_then(|m| m.get("tool_calls")).and_then(Value::as_array).into_iter().flatten().enumerate()
        {
            let f = call.get("function");
            let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or("");
            let mut item = Item::new(self.call_kind(name, n as u64));
            item.name = name.to_owned();
            item.call_id =
                call.get("id").and_then(Value::as_str).map_or_else(|| format!("call_{}", random_id()), str::to_owned);
            item.text = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or("{}").to_owned();
            self.items.push(item);
        }
        self.finish = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str).map(str::to_owned);
        self.usage = Some(chat.clone());
        self.keep();
        self.response(None, Value::Null)
    }

    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        super::stream::chunk(self, chunk, out);
    }

    fn failed(&mut self, error: &Value, out: &mut Vec<u8>) {
        super::stream::failed(self, error, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        super::stream::finish(self, out);
    }
}
