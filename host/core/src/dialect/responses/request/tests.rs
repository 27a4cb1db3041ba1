use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::*;
use crate::dialect::Reply;
use crate::dialect::responses::ResponsesReply;

fn translate(body: Value) -> Translated {
    to_chat(body.to_string().as_bytes(), |_| None).unwrap()
}

#[test]
fn a_string_input_with_instructions_becomes_system_and_user_messages() {
    let t = translate(json!({"model": "m", "input": "Hi", "instructions": "Be brief.", "max_output_tokens": 50,
                             "temperature": 0, "reasoning": {"effort": "low"}, "include": ["reasoning.encrypted_content"],
                             "store": false, "text": {"format": {"type": "json_object"}}}));
    assert_eq!(
        t.chat["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    );
    assert_eq!(t.chat["max_tokens"], 50);
    assert_eq!(t.chat["temperature"], 0);
    assert_eq!(t.chat["response_format"], json!({"type": "json_object"}));
    assert!(t.chat.get("reasoning").is_none() && t.chat.get("include").is_none());
    assert!(!t.echo.store);
    assert_eq!(t.conversation, vec![json!({"role": "user", "content": "Hi"})]);
}

#[test]
fn items_with_calls_and_outputs_become_a_chat_conversation() {
    let t = translate(json!({"model": "m",
    "tools": [{"type": "function", "name": "add", "description": "Add", "parameters": {"type": "object"}, "strict": true},
              {"type": "custom", "name": "apply_patch", "description": "Patch"}],
    "tool_choice": {"type": "function", "name": "add"}, "parallel_tool_calls": false,
    "input": [
        {"role": "developer", "content": "dev note"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "2+2?"},
                                                      {"type": "input_image", "image_url": "data:image/png;base64,AA"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "c1", "name": "add", "arguments": "{\"a\":2}"},
        {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin"},
        {"type": "function_call_output", "call_id": "c1", "output": "4"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": "done"}
    ]}));
    let m = &t.chat["messages"];
    assert_eq!(m[0], json!({"role": "system", "content": "dev note"}));
    assert_eq!(m[1]["content"][1]["image_url"]["url"], "data:image/png;base64,AA");
    assert_eq!(m[2]["role"], "assistant");
    assert_eq!(m[2]["tool_calls"][0]["id"], "c1");
    assert_eq!(m[2]["tool_calls"][1]["function"]["arguments"], "{\"input\":\"*** Begin\"}");
    assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "c1", "content": "4"}));
    assert_eq!(m[4], json!({"role": "tool", "tool_call_id": "c2", "content": "done"}));
    assert_eq!(t.chat["tools"][0]["function"]["strict"], true);
    assert_eq!(t.chat["tools"][1]["function"]["parameters"]["required"], json!(["input"]));
    assert_eq!(t.chat["tool_choice"], json!({"type": "function", "function": {"name": "add"}}));
    assert_eq!(t.chat["parallel_tool_calls"], false);
    assert_eq!(t.echo.custom_tools, vec!["apply_patch".to_owned()]);
}

#[test]
fn a_previous_response_is_continued_and_an_unknown_one_is_a_400() {
    let earlier = vec![json!({"role": "user", "content": "Hi"}), json!({"role": "assistant", "content": "Hello"})];
    let t = to_chat(br#"{"model":"m","input":"Again","previous_response_id":"resp_1"}"#, |id| {
        (id == "resp_1").then(|| earlier.clone())
    })
    .unwrap();
    assert_eq!(t.chat["messages"][1]["content"], "Hello");
    assert_eq!(t.chat["messages"][2]["content"], "Again");
    let e = to_chat(br#"{"model":"m","input":"x","previous_response_id":"resp_nope"}"#, |_| None).unwrap_err();
    assert_eq!((e.status(), e.param.as_deref()), (400, Some("previous_response_id")));
}

#[test]
fn what_is_not_served_is_refused_by_name() {
    for (body, param) in [
        (json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}), "tools.0.type"),
        (json!({"model": "m", "input": "x", "background": true}), "background"),
        (json!({"model": "m", "input": "x", "conversation": "conv_1"}), "conversation"),
        (json!({"model": "m", "input": "x", "prompt": {"id": "p"}}), "prompt"),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input.0.content.0.type",
        ),
        (json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}), "input.0.type"),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
            "input.0.content.0.image_url",
        ),
        (json!({"model": "m"}), "input"),
        (json!({"input": "x"}), "model"),
    ] {
        let e = to_chat(body.to_string().as_bytes(), |_| None).unwrap_err();
        assert_eq!(e.status(), 400, "{body}");
        assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
    }
}

type Kept = Arc<Mutex<Option<(String, Vec<Value>)>>>;

fn reply(t: Translated, custom: bool) -> (ResponsesReply, Kept) {
    let kept: Kept = Arc::new(Mutex::new(None));
    let k = kept.clone();
    let mut echo = t.echo;
    if custom {
        echo.custom_tools.push("apply_patch".into());
    }
    let r = ResponsesReply::new(
        "m",
        echo,
        t.conversation,
        Some(Box::new(move |id, conv| *k.lock().unwrap() = Some((id, conv)))),
    );
    (r, kept)
}

#[test]
fn an_answer_becomes_a_response_and_is_kept_for_the_next_turn() {
    let (mut r, kept) = reply(translate(json!({"model": "m", "input": "Hi"})), true);
    let out = r.complete(&json!({"id": "chatcmpl-1", "model": "llama", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": "Sure.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "add", "arguments": "{\"a\":1}"}},
            {"id": "call_b", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"diff\"}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5}}));
    assert_eq!(out["object"], "response");
    assert_eq!(out["status"], "completed");
    assert_eq!(out["model"], "llama");
    assert_eq!(out["output"][0]["type"], "message");
    assert_eq!(
        out["output"][0]["content"][0],
        json!({"type": "output_text", "text": "Sure.", "annotations": [], "logprobs": []})
    );
    assert_eq!(out["output"][1]["type"], "function_call");
    assert_eq!(out["output"][1]["call_id"], "call_a");
    assert_eq!(out["output"][1]["arguments"], "{\"a\":1}");
    assert_eq!(
        out["output"][2],
        json!({"type": "custom_tool_call", "id": out["output"][2]["id"], "call_id": "call_b", "name": "apply_patch", "input": "diff"})
    );
    assert_eq!(out["usage"]["total_tokens"], 15);
    let (id, conv) = kept.lock().unwrap().take().unwrap();
    assert_eq!(id, out["id"].as_str().unwrap());
    assert_eq!(conv[0], json!({"role": "user", "content": "Hi"}));
    assert_eq!(conv[1]["content"], "Sure.");
    assert_eq!(conv[1]["tool_calls"][1]["id"], "call_b");
}

#[test]
fn a_cut_answer_is_incomplete_and_store_false_keeps_nothing() {
    let (mut r, kept) = reply(translate(json!({"model": "m", "input": "Hi", "store": false})), false);
    let out = r.complete(&json!({"choices": [{"finish_reason": "length", "message": {"content": "abc"}}]}));
    assert_eq!(out["status"], "incomplete");
    assert_eq!(out["incomplete_details"]["reason"], "max_output_tokens");
    assert!(kept.lock().unwrap().is_none());
}

#[test]
fn a_stream_emits_typed_events_in_order_with_sequence_numbers() {
    let (mut r, kept) = reply(translate(json!({"model": "m", "input": "Hi", "stream": true})), false);
    let mut out = Vec::new();
    let c = |delta: Value, finish: Value| json!({"id": "chatcmpl-2", "model": "llama", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    r.chunk(&c(json!({"content": "He"}), Value::Null), &mut out);
    r.chunk(&c(json!({"content": "llo"}), Value::Null), &mut out);
    r.chunk(
        &c(
            json!({"tool_calls": [{"index": 0, "id": "call_z", "function": {"name": "add", "arguments": "{}"}}]}),
            Value::Null,
        ),
        &mut out,
    );
    r.chunk(&c(json!({}), json!("tool_calls")), &mut out);
    r.chunk(&json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}), &mut out);
    r.finish(&mut out);
    let text = String::from_utf8(out).unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let names: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64);
    }
    assert_eq!(events[6]["text"], "Hello");
    let done = &events[13]["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["output"][1]["arguments"], "{}");
    assert_eq!(done["usage"]["output_tokens"], 2);
    assert_eq!(kept.lock().unwrap().as_ref().unwrap().1[1]["content"], "Hello");
}
