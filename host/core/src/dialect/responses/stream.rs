//! A stream of `chat.completion.chunk`s -> Responses events: `response.created`,
//! `response.in_progress`, per output item `response.output_item.added`, its deltas
//! (`response.reasoning_summary_text.delta`, `response.output_text.delta`,
//! `response.function_call_arguments.delta`) and their `.done` events, `response.output_item.done`,
//! then `response.completed` (or `response.incomplete`); a failure is `response.failed`. Every
//! event carries its `sequence_number`.

use serde_json::{Value, json};

use super::super::{first_choice, reasoning_of, sse_event};
use super::reply::{Item, Kind, ResponsesReply};

#[derive(Debug, Default)]
pub struct State {
    started: bool,
    ended: bool,
    seq: u64,
    /// the open item, by index into the reply's items
    open: Option<usize>,
}

fn emit(r: &mut ResponsesReply, out: &mut Vec<u8>, kind: &str, mut data: Value) {
    data["type"] = Value::String(kind.to_owned());
    data["sequence_number"] = r.stream.seq.into();
    r.stream.seq += 1;
    sse_event(out, Some(kind), &data);
}

fn start(r: &mut ResponsesReply, chunk: &Value, out: &mut Vec<u8>) {
    if r.stream.started {
        return;
    }
    r.stream.started = true;
    if let Some(m) = chunk.get("model").filter(|m| m.is_string()) {
        r.model = m.clone();
    }
    let response = r.response(Some("in_progress"), Value::Null);
    emit(r, out, "response.created", json!({ "response": response }));
    emit(r, out, "response.in_progress", json!({ "response": response }));
}

/// Close the open item: its `.done` events.
fn close(r: &mut ResponsesReply, out: &mut Vec<u8>) {
    let Some(index) = r.stream.open.take() else {
        return;
    };
    let item = &r.items[index];
    let (id, text) = (item.id.clone(), item.text.clone());
    let done = item.json(true);
    match item.kind {
        Kind::Reasoning => {
            let part = json!({ "type": "summary_text", "text": text });
            emit(
                r,
                out,
                "response.reasoning_summary_text.done",
                json!({ "item_id": id, "output_index": index, "summary_index": 0, "text": text }),
            );
            emit(
                r,
                out,
                "response.reasoning_summary_part.done",
                json!({ "item_id": id, "output_index": index, "summary_index": 0, "part": part }),
            );
        }
        Kind::Message => {
            let part = r.items[index].part();
            emit(
                r,
                out,
                "response.output_text.done",
                json!({ "item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": [] }),
            );
            emit(
                r,
                out,
                "response.content_part.done",
                json!({ "item_id": id, "output_index": index, "content_index": 0, "part": part }),
            );
        }
        Kind::Function(_) => {
            emit(
                r,
                out,
                "response.function_call_arguments.done",
                json!({ "item_id": id, "output_index": index, "arguments": text }),
            );
        }
        Kind::Custom(_) => {
            let input = done.get("input").cloned().unwrap_or(Value::Null);
            emit(
                r,
                out,
                "response.custom_tool_call_input.done",
                json!({ "item_id": id, "output_index": index, "input": input }),
            );
        }
    }
    emit(r, out, "response.output_item.done", json!({ "output_index": index, "item": done }));
}

/// Open a new item of `kind` (closing the open one); its index.
fn open(r: &mut ResponsesReply, item: Item, out: &mut Vec<u8>) -> usize {
    close(r, out);
    let index = r.items.len();
    let added = item.json(false);
    let (kind, id) = (item.kind, item.id.clone());
    r.items.push(item);
    r.stream.open = Some(index);
    emit(r, out, "response.output_item.added", json!({ "output_index": index, "item": added }));
    match kind {
        Kind::Reasoning => emit(
            r,
            out,
            "response.reasoning_summary_part.added",
            json!({ "item_id": id, "output_index": index, "summary_index": 0, "part": { "type": "summary_text", "text": "" } }),
        ),
        Kind::Message => emit(
            r,
            out,
            "response.content_part.added",
            json!({ "item_id": id, "output_index": index, "content_index": 0,
                    "part": { "type": "output_text", "text": "", "annotations": [], "logprobs": [] } }),
        ),
        Kind::Function(_) | Kind::Custom(_) => {}
    }
    index
}

/// The open item when it is of `kind`.
fn current(r: &ResponsesReply, kind: Kind) -> Option<usize> {
    r.stream.open.filter(|&i| r.items[i].kind == kind)
}

pub fn chunk(r: &mut ResponsesReply, chunk: &Value, out: &mut Vec<u8>) {
    if r.stream.ended {
        return;
    }
    start(r, chunk, out);
    if chunk.get("usage").is_some_and(Value::is_object) {
        r.usage = Some(chunk.clone());
    }
    let Some(choice) = first_choice(chunk) else {
        return;
    };
    if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
        r.finish = Some(f.to_owned());
    }
    let Some(delta) = choice.get("delta") else {
        return;
    };
    if let Some(text) = reasoning_of(delta) {
        let i = current(r, Kind::Reasoning).unwrap_or_else(|| open(r, Item::new(Kind::Reasoning), out));
        r.items[i].text.push_str(text);
        let id = r.items[i].id.clone();
        emit(
            r,
            out,
            "response.reasoning_summary_text.delta",
            json!({ "item_id": id, "output_index": i, "summary_index": 0, "delta": text }),
        );
    }
    if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        let i = current(r, Kind::Message).unwrap_or_else(|| open(r, Item::new(Kind::Message), out));
        r.items[i].text.push_str(text);
        let id = r.items[i].id.clone();
        emit(
            r,
            out,
            "response.output_text.delta",
            json!({ "item_id": id, "output_index": i, "content_index": 0, "delta": text, "logprobs": [] }),
        );
    }
    for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        tool_call(r, call, out);
    }
}

fn tool_call(r: &mut ResponsesReply, call: &Value, out: &mut Vec<u8>) {
    let n = call.get("index").and_then(Value::as_u64).unwrap_or(0);
    let f = call.get("function");
    let args = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or("");
    let known = r.items.iter().position(|i| matches!(i.kind, Kind::Function(k) | Kind::Custom(k) if k == n));
    let i = match known {
        Some(i) => i,
        None => {
            let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or("");
            let mut item = Item::new(r.call_kind(name, n));
            item.name = name.to_owned();
            item.call_id = call
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| format!("call_{}", super::super::random_id()), str::to_owned);
            open(r, item, out)
        }
    };
    if args.is_empty() {
        return;
    }
    r.items[i].text.push_str(args);
    // a custom tool's input is told whole when its call is done
    if let Kind::Function(_) = r.items[i].kind {
        let id = r.items[i].id.clone();
        emit(
            r,
            out,
            "response.function_call_arguments.delta",
            json!({ "item_id": id, "output_index": i, "delta": args }),
        );
    }
}

pub fn failed(r: &mut ResponsesReply, error: &Value, out: &mut Vec<u8>) {
    if r.stream.ended {
        return;
    }
    r.stream.ended = true;
    start(r, &Value::Null, out);
    let code = error.get("code").cloned().unwrap_or_else(|| json!("server_error"));
    let message = error.get("message").cloned().unwrap_or_else(|| json!("The upstream stream failed."));
    let response = r.response(Some("failed"), json!({ "code": code, "message": message }));
    emit(r, out, "response.failed", json!({ "response": response }));
}

pub fn finish(r: &mut ResponsesReply, out: &mut Vec<u8>) {
    if r.stream.ended {
        return;
    }
    r.stream.ended = true;
    start(r, &Value::Null, out);
    close(r, out);
    r.keep();
    let response = r.response(None, Value::Null);
    let kind = if response["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
    emit(r, out, kind, json!({ "response": response }));
}
