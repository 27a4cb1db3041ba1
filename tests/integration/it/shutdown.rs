//! Graceful shutdown: stop accepting, let open streams finish, give up after the grace period.

use std::time::{Duration, Instant};

use freeway_integration::{Gateway, Opts, Sim, chat_body, provider, sse_data};
use serde_json::json;

#[tokio::test]
async fn open_streams_finish_and_new_connections_are_refused() {
    let sim =
        Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "token_delay_ms": 100, "reply_tokens": 8}]})).await;
    let mut gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    let resp = gw.chat(body).await;
    assert_eq!(resp.status(), 200);
    let server = gw.begin_shutdown().unwrap();
    let data = sse_data(resp).await;
    assert_eq!(data.last().unwrap(), "[DONE]", "the open stream completed: {data:?}");
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
    let refused = reqwest::Client::new().get(gw.url("/health")).timeout(Duration::from_secs(1)).send().await;
    assert!(refused.is_err(), "the listener is closed");
}

#[tokio::test]
async fn streams_past_the_grace_period_are_cut() {
    let sim = Sim::start().await;
    let opts = Opts { grace_secs: 1, ..Default::default() };
    let mut gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    sim.script(json!([{"action": {"type": "stall_after", "chunks": 2}}])).await;
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    let resp = gw.chat(body).await;
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    let server = gw.begin_shutdown().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(4), "{waited:?}");
    drop(resp);
}

#[tokio::test]
async fn ready_turns_503_while_shutting_down() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "latency_ms": 600}]})).await;
    let mut gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    // keep one request open so the server stays up while we look
    let client = reqwest::Client::new();
    let slow = client.post(gw.url("/v1/chat/completions")).json(&chat_body("m")).send();
    let handle = tokio::spawn(slow);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _server = gw.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(gw.app.shutting_down.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(handle.await.unwrap().unwrap().status(), 200, "the request in flight finished");
}
