use serde_json::{Value, json};

use super::*;
use crate::dialect::Reply;
use crate::dialect::messages::MessagesReply;

fn chat(body: Value) -> Value {
    to_chat(body.to_string().as_bytes()).unwrap().chat
}

#[test]
fn system_blocks_and_turns_become_chat_messages() {
    let c = chat(json!({
        "model": "claude-sonnet-4-5", "max_tokens": 100, "stop_sequences": ["END"], "temperature": 0.2,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Use English."}],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                              {"type": "text", "text": "Hello"}]},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ],
        "metadata": {"user_id": "u1"}, "thinking": {"type": "enabled", "budget_tokens": 1024}, "top_k": 5
    }));
    assert_eq!(
        c["messages"],
        json!([
            {"role": "system", "content": "Be brief.\n\nUse English."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "a\n\nb"}
        ])
    );
    assert_eq!(c["max_tokens"], 100);
    assert_eq!(c["stop"], json!(["END"]));
    assert_eq!(c["temperature"], 0.2);
    for dropped in ["metadata", "thinking", "top_k", "system", "stop_sequences"] {
        assert!(c.get(dropped).is_none(), "{dropped} left in {c}");
    }
}

#[test]
fn tool_use_and_results_become_tool_calls_and_tool_messages_in_order() {
    let c = chat(json!({
        "model": "m", "max_tokens": 10,
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                              {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": true},
                {"type": "text", "text": "Thanks"}]}
        ]
    }));
    let m = &c["messages"];
    assert_eq!(m[1]["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(m[1]["tool_calls"][0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(m[1]["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(m[1]["content"], "Checking.");
    assert_eq!(m[2], json!({"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}));
    assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "toolu_2", "content": "Error: boom"}));
    assert_eq!(m[4], json!({"role": "user", "content": "Thanks"}));
    assert_eq!(c["tools"][0]["function"]["parameters"]["properties"]["city"]["type"], "string");
    assert_eq!(c["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
    assert_eq!(c["parallel_tool_calls"], false);
}

#[test]
fn images_become_image_url_parts() {
    let c = chat(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}},
        {"type": "text", "text": "What is this?"}]}]}));
    let parts = &c["messages"][0]["content"];
    assert_eq!(parts[0]["image_url"]["url"], "data:image/jpeg;base64,QUJD");
    assert_eq!(parts[1]["image_url"]["url"], "https://example.test/a.png");
    assert_eq!(parts[2], json!({"type": "text", "text": "What is this?"}));
}

#[test]
fn a_stream_asks_for_usage() {
    let t =
        to_chat(br#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"x"}]}"#).unwrap();
    assert!(t.stream);
    assert_eq!(t.chat["stream_options"]["include_usage"], true);
}

#[test]
fn what_cannot_be_served_is_a_clear_400_naming_the_parameter() {
    for (body, param) in [
        (json!({"model": "m", "messages": []}), "max_tokens"),
        (json!({"max_tokens": 5, "messages": []}), "model"),
        (json!({"model": "m", "max_tokens": 5}), "messages"),
        (json!({"model": "m", "max_tokens": 0, "messages": []}), "max_tokens"),
        (json!({"model": "m", "max_tokens": "5", "messages": []}), "max_tokens"),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "tools.0.type",
        ),
        (json!({"model": "m", "max_tokens": 5, "messages": [], "mcp_servers": [{}]}), "mcp_servers"),
        (json!({"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}), "messages.0.role"),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "x"}}]}]}),
            "messages.0.content.0.source.type",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]}),
            "messages.0.content.0.type",
        ),
    ] {
        let e = to_chat(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.status(), 400, "{body}");
        assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
    }
    assert_eq!(to_chat(b"[1]").unwrap_err().status(), 400);
    assert_eq!(to_chat(b"{nope").unwrap_err().status(), 400);
}

#[test]
fn an_answer_becomes_a_message_with_thinking_text_and_tool_use_blocks() {
    let out = MessagesReply::new().complete(&json!({
        "id": "chatcmpl-abc123", "model": "llama", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "reasoning_content": "Let me think", "content": "Calling.",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 5}}
    }));
    assert_eq!(out["id"], "msg_abc123");
    assert_eq!(out["type"], "message");
    assert_eq!(out["stop_reason"], "tool_use");
    assert_eq!(out["content"][0], json!({"type": "thinking", "thinking": "Let me think", "signature": ""}));
    assert_eq!(out["content"][1], json!({"type": "text", "text": "Calling."}));
    assert_eq!(out["content"][2], json!({"type": "tool_use", "id": "call_9", "name": "f", "input": {"a": 1}}));
    assert_eq!(out["usage"]["input_tokens"], 15);
    assert_eq!(out["usage"]["cache_read_input_tokens"], 5);
    assert_eq!(out["usage"]["output_tokens"], 7);
    let cut =
        MessagesReply::new().complete(&json!({"choices": [{"finish_reason": "length", "message": {"content": "x"}}]}));
    assert_eq!(cut["stop_reason"], "max_tokens");
}

fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut lines = e.lines();
            let name = lines.next().unwrap().strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

#[test]
fn a_stream_follows_anthropics_event_sequence() {
    let mut r = MessagesReply::new();
    let mut out = Vec::new();
    let c = |delta: Value, finish: Value| json!({"id": "chatcmpl-s1", "model": "llama", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    r.chunk(&c(json!({"role": "assistant", "reasoning": "hmm"}), Value::Null), &mut out);
    r.chunk(&c(json!({"content": "Hi"}), Value::Null), &mut out);
    r.chunk(&c(json!({"content": " there"}), Value::Null), &mut out);
    r.chunk(&c(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}), Value::Null), &mut out);
    r.chunk(&c(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}), Value::Null), &mut out);
    r.chunk(&c(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), Value::Null), &mut out);
    r.chunk(&c(json!({}), json!("tool_calls")), &mut out);
    r.chunk(
        &json!({"id": "chatcmpl-s1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}),
        &mut out,
    );
    r.finish(&mut out);
    let ev = events(&out);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(ev[0].1["message"]["id"], "msg_s1");
    assert_eq!(ev[2].1["content_block"]["type"], "thinking");
    assert_eq!(ev[3].1["delta"], json!({"type": "thinking_delta", "thinking": "hmm"}));
    assert_eq!(ev[5].1["index"], 1);
    assert_eq!(ev[7].1["delta"], json!({"type": "text_delta", "text": " there"}));
    assert_eq!(ev[9].1["content_block"], json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}}));
    assert_eq!(ev[10].1["delta"], json!({"type": "input_json_delta", "partial_json": "{\"a\":"}));
    assert_eq!(ev[12].1["index"], 2);
    assert_eq!(ev[13].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(ev[13].1["usage"]["output_tokens"], 4);
    assert_eq!(ev[13].1["usage"]["input_tokens"], 9);
}

#[test]
fn a_stream_that_fails_ends_with_an_error_event_and_nothing_after() {
    let mut r = MessagesReply::new();
    let mut out = Vec::new();
    r.chunk(
        &json!({"id": "chatcmpl-e", "choices": [{"index": 0, "delta": {"content": "par"}, "finish_reason": null}]}),
        &mut out,
    );
    r.failed(&json!({"message": "gone", "type": "upstream_error", "code": "upstream_stream_interrupted"}), &mut out);
    r.finish(&mut out);
    let ev = events(&out);
    let last = ev.last().unwrap();
    assert_eq!(last.0, "error");
    assert_eq!(last.1["error"], json!({"type": "api_error", "message": "gone"}));
    assert!(!ev.iter().any(|(n, _)| n == "message_stop"));
}
