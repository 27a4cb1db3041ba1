//! Every upstream failure mode, typed by the provider component and mapped to a gateway status,
//! with the provider's message kept and its secret removed; fallback when another candidate
//! can serve.

use std::time::{Duration, Instant};

use freeway_integration::{Gateway, Opts, Sim, chat_body, provider};
use serde_json::{Value, json};

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap())
}

#[tokio::test]
async fn upstream_5xx_is_a_502_with_the_providers_message() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    sim.script(json!([{"action": {"type": "status", "status": 500, "body": {"error": {"message": "the model crashed", "type": "server_error"}}}}])).await;
    let (s, v) = error_of(gw.chat(chat_body("m")).await).await;
    assert_eq!(s, 502);
    assert_eq!(v["error"]["code"], "upstream_server_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("the model crashed"), "{v}");
}

#[tokio::test]
async fn upstream_503_is_a_503_and_504_after_a_hang() {
    let sim = Sim::start().await;
    let opts = Opts { upstream: "request_timeout_ms = 500\nmax_attempts = 1".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    sim.script(json!([{"times": 1, "action": {"type": "status", "status": 503, "body": {"error": {"message": "overloaded"}}}}])).await;
    let (s, v) = error_of(gw.chat(chat_body("m")).await).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], "upstream_overloaded");

    sim.script(json!([{"times": 1, "action": {"type": "hang"}}])).await;
    let started = Instant::now();
    let (s, v) = error_of(gw.chat(chat_body("m")).await).await;
    assert_eq!(s, 504, "{v}");
    assert_eq!(v["error"]["code"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn upstream_401_never_shows_the_key() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "keys": ["sk-the-right-key-000"]}]})).await;
    let key = "sk-live-abcdefghijklmnop1234";
    let gw = Gateway::start(&provider("local", &sim.base(), &[key], &["m"])).await;
    // an upstream that echoes the key it was given, whole and in part
    sim.script(json!([{"action": {"type": "status", "status": 401, "body": {"error": {"message": format!("Incorrect API key provided: {key} ({}…)", &key[..12]), "code": "invalid_api_key"}}}}])).await;
    let resp = gw.chat(chat_body("m")).await;
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "upstream_auth_failed", "{v}");
    assert!(!text.contains("abcdefghijklmnop"), "secret leaked: {text}");
    assert!(!text.contains(&key[..12]), "partial secret leaked: {text}");
    assert!(text.contains("Incorrect API key provided"));
}

#[tokio::test]
async fn rate_limited_everywhere_is_a_429_with_retry_after() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k1", "k2"], &["m"])).await;
    sim.script(json!([{"action": {"type": "rate_limit", "retry_after_s": 7, "window": "minute"}}])).await;
    // a client that will not wait for the rest to end (waiting is the wait queue's suite)
    let resp = freeway_integration::http()
        .post(gw.url("/v1/chat/completions"))
        .header("x-freeway-max-wait-ms", "0")
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_rate_limited");
    assert_eq!(sim.requests().await.len(), 2, "both keys were tried");
}

#[tokio::test]
async fn malformed_json_from_upstream_is_a_502() {
    let sim = Sim::start().await;
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    sim.script(json!([{"action": {"type": "malformed"}}])).await;
    let (s, v) = error_of(gw.chat(chat_body("m")).await).await;
    assert_eq!(s, 502);
    assert_eq!(v["error"]["code"], "upstream_invalid_response");
}

#[tokio::test]
async fn unreachable_upstream_is_a_502() {
    // a port nothing listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let gw = Gateway::start(&provider("local", &format!("http://127.0.0.1:{port}/v1"), &["k"], &["m"])).await;
    let (s, v) = error_of(gw.chat(chat_body("m")).await).await;
    assert_eq!(s, 502);
    assert_eq!(v["error"]["code"], "upstream_unreachable");
}

#[tokio::test]
async fn a_failing_provider_falls_back_to_the_next() {
    let bad = Sim::start().await;
    let good = Sim::start().await;
    let providers = provider("first", &bad.base(), &["k"], &["m"]) + &provider("second", &good.base(), &["k"], &["m"]);
    let gw = Gateway::start(&providers).await;
    bad.script(json!([{"action": {"type": "status", "status": 500}}])).await;
    let resp = gw.chat(chat_body("m")).await;
    assert_eq!(resp.status(), 200);
    let route = resp.headers()["x-freeway-route"].to_str().unwrap().to_owned();
    assert!(route.contains("provider=second") && route.contains("attempts=2"), "{route}");
}

#[tokio::test]
async fn client_errors_from_upstream_are_not_retried() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k1", "k2"], &["m"])).await;
    sim.script(json!([{"action": {"type": "status", "status": 400, "body": {"error": {"message": "temperature must be <= 2", "param": "temperature"}}}}])).await;
    let (s, v) = error_of(gw.chat(chat_body("m")).await).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("temperature must be <= 2"));
    assert_eq!(sim.requests().await.len(), 1);
}

#[tokio::test]
async fn context_length_errors_are_typed() {
    let sim = Sim::start().await;
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    sim.script(json!([{"action": {"type": "status", "status": 400, "body": {"message": "Please reduce the length of the messages or completion.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}}])).await;
    let (s, v) = error_of(gw.chat(chat_body("m")).await).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn egress_hosts_stop_calls_to_anywhere_else_before_any_lookup() {
    // the harness allows loopback only: a provider at a real host is refused, not resolved
    let gw =
        Gateway::start(&provider("real", "https://api.groq.com/openai/v1", &["gsk_not_a_real_key_000"], &["m"])).await;
    let started = Instant::now();
    let (s, v) = error_of(gw.chat(chat_body("m")).await).await;
    assert_eq!(s, 502, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("egress_hosts"), "{v}");
    assert!(started.elapsed() < Duration::from_secs(1), "refused at once, no DNS and no connect");
}
