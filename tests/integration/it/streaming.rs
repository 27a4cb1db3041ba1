//! Streaming: pass-through relay, usage injection, chunk timing, and failures before and after
//! the first byte.

use std::time::{Duration, Instant};

use freeway_integration::{Gateway, Opts, Sim, chat_body, provider, sse_data};
use futures_util::StreamExt;
use serde_json::{Value, json};

fn stream_body(model: &str) -> Value {
    let mut b = chat_body(model);
    b["stream"] = json!(true);
    b
}

fn chunks(data: &[String]) -> Vec<Value> {
    data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect()
}

#[tokio::test]
async fn stream_passes_through_and_hides_injected_usage() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let resp = gw.chat(stream_body("m")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let data = sse_data(resp).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks = chunks(&data);
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert!(text.starts_with("tok0 tok1"), "{text}");
    assert_eq!(
        chunks.iter().filter(|c| c["choices"].as_array().is_some_and(Vec::is_empty)).count(),
        0,
        "usage chunk leaked"
    );
    assert!(chunks.iter().all(|c| c["x_sim"].is_object()), "unknown chunk fields are kept");
    // upstream was asked for usage all the same
    let up = &sim.requests().await[0];
    assert_eq!(up["body"]["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn include_usage_is_honoured_when_asked() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let mut body = stream_body("m");
    body["stream_options"] = json!({"include_usage": true});
    let data = sse_data(gw.chat(body).await).await;
    let chunks = chunks(&data);
    let usage = chunks.iter().find(|c| c["choices"].as_array().is_some_and(Vec::is_empty)).expect("usage chunk");
    assert_eq!(usage["usage"]["completion_tokens"], 12);
}

#[tokio::test]
async fn chunks_arrive_as_they_are_produced() {
    let sim =
        Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "token_delay_ms": 150, "reply_tokens": 6}]})).await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let started = Instant::now();
    let resp = gw.chat(stream_body("m")).await;
    let mut stream = resp.bytes_stream();
    let mut arrivals = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if String::from_utf8_lossy(&chunk).contains("tok") {
            arrivals.push(started.elapsed());
        }
    }
    assert!(arrivals.len() >= 4, "{arrivals:?}");
    // the first token came long before the last: nothing buffered the stream
    let spread = *arrivals.last().unwrap() - arrivals[0];
    assert!(spread >= Duration::from_millis(500), "{arrivals:?}");
}

#[tokio::test]
async fn failure_before_the_first_byte_falls_back_to_the_next_account() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["sk-a", "sk-b"], &["m"])).await;
    // whichever key goes first gets its stream cut before any event
    sim.script(json!([{"match": {"model": "m"}, "times": 1, "action": {"type": "drop_after", "chunks": 0}}])).await;
    let resp = gw.chat(stream_body("m")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["x-freeway-route"].to_str().unwrap().contains("attempts=2"));
    let data = sse_data(resp).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert!(!data.iter().any(|d| d.contains("\"error\"")));
}

#[tokio::test]
async fn upstream_error_event_before_first_byte_falls_back() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["sk-a", "sk-b"], &["m"])).await;
    sim.script(json!([{"match": {"model": "m"}, "times": 1, "action": {"type": "mid_stream_error", "chunks": 0, "error": {"code": 429, "message": "Rate limit exceeded"}}}])).await;
    let resp = gw.chat(stream_body("m")).await;
    assert_eq!(resp.status(), 200);
    let data = sse_data(resp).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn failure_after_the_first_byte_ends_with_an_error_not_a_clean_end() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    sim.script(json!([{"match": {"model": "m"}, "times": 1, "action": {"type": "drop_after", "chunks": 3}}])).await;
    let data = sse_data(gw.chat(stream_body("m")).await).await;
    assert_ne!(data.last().unwrap(), "[DONE]", "a cut stream must not look complete: {data:?}");
    let chunks = chunks(&data);
    let fin = chunks.iter().find(|c| c["choices"][0]["finish_reason"] == "error").expect("error finish chunk");
    assert_eq!(fin["object"], "chat.completion.chunk");
    let err = chunks.last().unwrap();
    assert_eq!(err["error"]["code"], "upstream_stream_interrupted");
    assert!(err["error"]["message"].as_str().unwrap().contains("local"));
}

#[tokio::test]
async fn mid_stream_upstream_error_is_reported_in_band() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    sim.script(json!([{"match": {"model": "m"}, "times": 1, "action": {"type": "mid_stream_error", "chunks": 2, "error": {"code": 502, "message": "Provider returned error"}}}])).await;
    let data = sse_data(gw.chat(stream_body("m")).await).await;
    let chunks = chunks(&data);
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "error"));
    assert!(chunks.last().unwrap()["error"]["message"].as_str().unwrap().contains("Provider returned error"));
}

#[tokio::test]
async fn a_stalled_stream_times_out_in_band() {
    let sim = Sim::start().await;
    let opts = Opts { upstream: "idle_timeout_ms = 400".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    sim.script(json!([{"match": {"model": "m"}, "times": 1, "action": {"type": "stall_after", "chunks": 2}}])).await;
    let started = Instant::now();
    let data = tokio::time::timeout(Duration::from_secs(10), sse_data(gw.chat(stream_body("m")).await))
        .await
        .expect("stream ended");
    assert!(started.elapsed() < Duration::from_secs(5));
    let chunks = chunks(&data);
    assert!(chunks.last().unwrap()["error"]["message"].as_str().unwrap().contains("sent nothing"), "{data:?}");
}

#[tokio::test]
async fn malformed_stream_event_is_an_error() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    sim.script(json!([{"match": {"model": "m"}, "action": {"type": "malformed"}}])).await;
    let resp = gw.chat(stream_body("m")).await;
    // nothing valid ever arrived, so the client gets a plain error response
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_stream_interrupted");
}
