//! End-to-end tests: a real simulator on port 0, driven over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use freeway_sim::{SimConfig, Simulator};
use futures_util::StreamExt;
use serde_json::{Value, json};

async fn start(config: Value) -> Simulator {
    let config: SimConfig = serde_json::from_value(config).unwrap();
    Simulator::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
}

fn chat_body(stream: bool) -> Value {
    json!({
        "model": "sim-model",
        "messages": [{"role": "user", "content": "Hello, simulator!"}],
        "stream": stream,
    })
}

async fn post(url: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(url).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

async fn script(sim: &Simulator, rules: Value) {
    let response = post(&sim.url("/_sim/script"), None, &json!({ "rules": rules })).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// `data:` payloads of an SSE body.
fn sse_data(text: &str) -> Vec<String> {
    assert!(text.ends_with("\n\n"), "events end with a blank line: {text:?}");
    text.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| event.strip_prefix("data: ").expect("data event").to_owned())
        .collect()
}

#[tokio::test]
async fn non_stream_completion_shape() {
    let sim = start(json!({})).await;
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    assert!(sim.base_url().ends_with("/v1"));
    let url = format!("{}/chat/completions", sim.base_url());
    let response = post(&url, Some("any-key"), &chat_body(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], "chatcmpl-sim-1");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["model"], "sim-model");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 tok8 tok9 tok10 tok11"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"], json!({"prompt_tokens": 4, "completion_tokens": 12, "total_tokens": 16}));
    assert_eq!(body["system_fingerprint"], "fp_sim");
    assert_eq!(body["x_sim"], json!({"request": 1}));

    let mut capped = chat_body(false);
    capped["max_tokens"] = json!(3);
    capped["model"] = json!("whatever-model");
    let body: Value = post(&url, None, &capped).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "tok0 tok1 tok2");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["model"], "whatever-model");
    assert_eq!(body["x_sim"]["request"], 2);

    let bad = post(&url, None, &json!({"model": "m"})).await;
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["type"], "invalid_request_error");

    let models: Value = reqwest::get(format!("{}/models", sim.base_url())).await.unwrap().json().await.unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(
        models["data"][0],
        json!({"id": "sim-model", "object": "model", "created": 1_700_000_000, "owned_by": "sim"})
    );

    let missing = reqwest::get(sim.url("/nowhere")).await.unwrap();
    assert_eq!(missing.status(), 404);
    let missing: Value = missing.json().await.unwrap();
    assert_eq!(missing["error"]["code"], "unknown_url");
    sim.shutdown().await;
}

#[tokio::test]
async fn stream_framing_with_include_usage() {
    let sim = start(json!({"upstreams": [{"reply_tokens": 4}]})).await;
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = post(&format!("{}/chat/completions", sim.base_url()), None, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse_data(&response.text().await.unwrap());
    // role + 4 tokens + finish + usage + [DONE]
    assert_eq!(events.len(), 8, "{events:?}");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..7].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], "chatcmpl-sim-1");
        assert_eq!(chunk["model"], "sim-model");
        assert_eq!(chunk["system_fingerprint"], "fp_sim");
        assert_eq!(chunk["x_sim"]["request"], 1);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    let text: String =
        chunks[1..5].iter().map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap().to_owned()).collect();
    assert_eq!(text, "tok0 tok1 tok2 tok3");
    assert_eq!(chunks[5]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "stop");
    for chunk in &chunks[..6] {
        assert!(chunk.get("usage").is_some_and(Value::is_null), "{chunk}");
    }
    assert_eq!(chunks[6]["choices"], json!([]));
    assert_eq!(chunks[6]["usage"]["completion_tokens"], 4);
    assert_eq!(chunks[6]["usage"]["total_tokens"], 8);
    sim.shutdown().await;
}

#[tokio::test]
async fn stream_chunks_arrive_as_produced() {
    let sim = start(json!({"upstreams": [{"reply_tokens": 3, "token_delay_ms": 80}]})).await;
    let response = post(&format!("{}/chat/completions", sim.base_url()), None, &chat_body(true)).await;
    let started = Instant::now();
    let mut arrivals = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        chunk.unwrap();
        arrivals.push(started.elapsed());
    }
    // role, 3 tokens, finish, [DONE]: 5 pauses of 80 ms after the first event.
    assert!(arrivals.len() >= 5, "{arrivals:?}");
    // Chunks are flushed one by one as they are produced, not buffered until the end.
    let spread = *arrivals.last().unwrap() - arrivals[0];
    assert!(spread >= Duration::from_millis(300), "{arrivals:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_key_gets_401_without_echoing_it() {
    let sim = start(json!({"upstreams": [{"keys": ["sk-good-1", "sk-good-2"]}]})).await;
    let url = format!("{}/chat/completions", sim.base_url());
    let response = post(&url, Some("sk-xyz-secret-123"), &chat_body(false)).await;
    assert_eq!(response.status(), 401);
    let text = response.text().await.unwrap();
    assert!(!text.contains("sk-xyz-secret-123"));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["param"].is_null());
    assert!(body["error"]["message"].as_str().unwrap().contains("sk-x***"));

    assert_eq!(post(&url, None, &chat_body(false)).await.status(), 401);
    assert_eq!(post(&url, Some("sk-good-2"), &chat_body(false)).await.status(), 200);
    let models = reqwest::get(format!("{}/models", sim.base_url())).await.unwrap();
    assert_eq!(models.status(), 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn rpm_limit_gives_429_with_headers() {
    let sim = start(json!({"upstreams": [{"limits": {"rpm": 2, "tpm": 1000}}]})).await;
    let url = format!("{}/chat/completions", sim.base_url());
    let first = post(&url, Some("k1"), &chat_body(false)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "2");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "1");
    assert_eq!(first.headers()["x-ratelimit-limit-tokens"], "1000");
    assert_eq!(first.headers()["x-ratelimit-remaining-tokens"], "984");
    let reset = first.headers()["x-ratelimit-reset-requests"].to_str().unwrap().to_owned();
    assert!(reset.ends_with('s'), "{reset}");
    let second = post(&url, Some("k1"), &chat_body(false)).await;
    assert_eq!(second.headers()["x-ratelimit-remaining-requests"], "0");

    let third = post(&url, Some("k1"), &chat_body(false)).await;
    assert_eq!(third.status(), 429);
    let retry: u64 = third.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(third.headers()["x-ratelimit-remaining-requests"], "0");
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");

    // Another key has its own counters.
    assert_eq!(post(&url, Some("k2"), &chat_body(false)).await.status(), 200);
    let stats: Value = reqwest::get(sim.url("/_sim/stats")).await.unwrap().json().await.unwrap();
    assert_eq!(stats["by_status"], json!({"200": 3, "429": 1}));
    assert_eq!(stats["by_key"], json!({"k1": 3, "k2": 1}));
    sim.shutdown().await;
}

#[tokio::test]
async fn drop_after_cuts_the_stream() {
    let sim = start(json!({})).await;
    script(&sim, json!([{"times": 1, "action": {"type": "drop_after", "chunks": 3}}])).await;
    let response = post(&format!("{}/chat/completions", sim.base_url()), None, &chat_body(true)).await;
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let mut failed = false;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body must end with an error, not cleanly");
    let text = String::from_utf8(received).unwrap();
    assert_eq!(sse_data(&text).len(), 3, "{text}");
    assert!(!text.contains("[DONE]"));

    // Non-stream: half a JSON body, then the cut.
    script(&sim, json!([{"times": 1, "action": {"type": "drop_after"}}])).await;
    let response = post(&format!("{}/chat/completions", sim.base_url()), None, &chat_body(false)).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err());

    // The rule is used up: the next stream is complete.
    let response = post(&format!("{}/chat/completions", sim.base_url()), None, &chat_body(true)).await;
    assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    sim.shutdown().await;
}

#[tokio::test]
async fn script_times_are_counted_and_first_match_wins() {
    let sim = start(json!({})).await;
    script(
        &sim,
        json!([
            {"match": {"model": "other"}, "action": {"type": "status", "status": 500}},
            {"match": {"path_suffix": "/chat/completions"}, "times": 2,
             "action": {"type": "status", "status": 503, "headers": {"x-sim-test": "yes"}}},
        ]),
    )
    .await;
    let url = format!("{}/chat/completions", sim.base_url());
    let first = post(&url, None, &chat_body(false)).await;
    assert_eq!(first.status(), 503);
    assert_eq!(first.headers()["x-sim-test"], "yes");
    let body: Value = first.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("503"));
    assert_eq!(post(&url, None, &chat_body(false)).await.status(), 503);
    assert_eq!(post(&url, None, &chat_body(false)).await.status(), 200);
    // `GET /models` never matched the path_suffix rule.
    assert_eq!(reqwest::get(format!("{}/models", sim.base_url())).await.unwrap().status(), 200);

    let rules: Value = reqwest::get(sim.url("/_sim/script")).await.unwrap().json().await.unwrap();
    assert_eq!(rules["rules"].as_array().unwrap().len(), 1, "{rules}");

    let mut other = chat_body(false);
    other["model"] = json!("other");
    assert_eq!(post(&url, None, &other).await.status(), 500);
    assert_eq!(post(&url, None, &other).await.status(), 500);

    let stats = sim.stats();
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.by_status["503"], 2);
    assert_eq!(stats.by_model["other"], 2);

    assert_eq!(post(&sim.url("/_sim/reset"), None, &json!({})).await.status(), 200);
    assert_eq!(post(&url, None, &other).await.status(), 200);
    assert_eq!(sim.stats().requests, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn requests_are_recorded_with_headers_and_key() {
    let sim = start(json!({})).await;
    let url = format!("{}/chat/completions?trace=1", sim.base_url());
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth("sk-injected")
        .header("X-Custom", "abc")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let recorded: Value = reqwest::get(sim.url("/_sim/requests")).await.unwrap().json().await.unwrap();
    let list = recorded.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let request = &list[0];
    assert_eq!(request["seq"], 1);
    assert_eq!(request["method"], "POST");
    assert_eq!(request["path"], "/v1/chat/completions");
    assert_eq!(request["query"], "trace=1");
    assert_eq!(request["headers"]["authorization"], "Bearer sk-injected");
    assert_eq!(request["headers"]["x-custom"], "abc");
    assert_eq!(request["key"], "sk-injected");
    assert_eq!(request["body"]["model"], "sim-model");
    assert!(request["at_ms"].as_u64().unwrap() > 0);
    sim.shutdown().await;

    let quiet = start(json!({"record": false})).await;
    post(&format!("{}/chat/completions", quiet.base_url()), None, &chat_body(false)).await;
    assert!(quiet.requests().is_empty());
    quiet.shutdown().await;
}

#[tokio::test]
async fn profiles_shape_scripted_rate_limits() {
    let sim = start(json!({"upstreams": [
        {"prefix": "/v1"},
        {"prefix": "/openai/v1", "profile": "groq", "limits": {"rpd": 1000, "tpm": 6000}},
        {"prefix": "/cerebras/v1", "profile": "cerebras"},
        {"prefix": "/api/v1", "profile": "openrouter", "limits": {"rpm": 20, "rpd": 50}},
        {"prefix": "/mistral/v1", "profile": "mistral"},
        {"prefix": "/v1beta/openai", "profile": "gemini-openai"},
    ]}))
    .await;
    let chat = |prefix: &str| sim.url(&format!("{prefix}/chat/completions"));

    // Groq success headers: requests per day, tokens per minute.
    let ok = post(&chat("/openai/v1"), Some("g"), &chat_body(false)).await;
    assert_eq!(ok.headers()["x-ratelimit-limit-requests"], "1000");
    assert_eq!(ok.headers()["x-ratelimit-remaining-requests"], "999");
    assert_eq!(ok.headers()["x-ratelimit-limit-tokens"], "6000");

    script(
        &sim,
        json!([
            {"match": {"prefix": "/v1"}, "times": 1, "action": {"type": "rate_limit", "retry_after_s": 7}},
            {"match": {"prefix": "/openai/v1"}, "times": 1, "action": {"type": "rate_limit", "retry_after_s": 7}},
            {"match": {"prefix": "/cerebras/v1"}, "times": 1, "action": {"type": "rate_limit", "retry_after_s": 7, "window": "day"}},
            {"match": {"prefix": "/api/v1"}, "times": 1, "action": {"type": "rate_limit", "window": "day"}},
            {"match": {"prefix": "/mistral/v1"}, "times": 1, "action": {"type": "rate_limit"}},
            {"match": {"prefix": "/v1beta/openai"}, "times": 1, "action": {"type": "rate_limit", "retry_after_s": 37}},
        ]),
    )
    .await;

    let openai = post(&chat("/v1"), None, &chat_body(false)).await;
    assert_eq!(openai.status(), 429);
    assert_eq!(openai.headers()["retry-after"], "7");
    assert_eq!(openai.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(openai.headers()["x-ratelimit-reset-requests"], "7s");
    let body: Value = openai.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    let groq = post(&chat("/openai/v1"), Some("g"), &chat_body(false)).await;
    assert_eq!(groq.status(), 429);
    assert_eq!(groq.headers()["retry-after"], "7");
    assert_eq!(groq.headers()["x-ratelimit-remaining-tokens"], "0");
    let body: Value = groq.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("tokens per minute (TPM)"));

    let cerebras = post(&chat("/cerebras/v1"), None, &chat_body(false)).await;
    assert_eq!(cerebras.status(), 429);
    assert_eq!(cerebras.headers()["x-ratelimit-remaining-requests-day"], "0");
    assert_eq!(cerebras.headers()["x-ratelimit-reset-requests-day"], "7.0");
    let body: Value = cerebras.json().await.unwrap();
    assert_eq!(body["type"], "too_many_requests_error");
    assert_eq!(body["code"], "request_quota_exceeded");

    let openrouter = post(&chat("/api/v1"), Some("or"), &chat_body(false)).await;
    assert_eq!(openrouter.status(), 429);
    assert_eq!(openrouter.headers()["x-ratelimit-limit"], "50");
    let reset: u64 = openrouter.headers()["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!(reset > 1_600_000_000_000, "Unix ms: {reset}");
    let body: Value = openrouter.json().await.unwrap();
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(body["error"]["message"], "Rate limit exceeded");
    // OpenRouter's success responses carry no rate-limit headers; /key reports the day counter.
    let ok = post(&chat("/api/v1"), Some("or"), &chat_body(false)).await;
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().keys().all(|name| !name.as_str().starts_with("x-ratelimit")));
    let key: Value = reqwest::Client::new()
        .get(sim.url("/api/v1/key"))
        .bearer_auth("or")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key["data"]["free_model_daily_requests"], json!({"limit": 50, "remaining": 49, "used": 1}));

    let mistral = post(&chat("/mistral/v1"), None, &chat_body(false)).await;
    assert_eq!(mistral.status(), 429);
    let body: Value = mistral.json().await.unwrap();
    assert_eq!(body["object"], "error");
    assert_eq!(body["code"], "1300");

    let gemini = post(&chat("/v1beta/openai"), None, &chat_body(false)).await;
    assert_eq!(gemini.status(), 429);
    let body: Value = gemini.json().await.unwrap();
    let error = &body[0]["error"];
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    let details = error["details"].as_array().unwrap();
    assert!(details.iter().any(|d| d["retryDelay"] == "37s"));
    assert!(
        details.iter().any(|d| { d["violations"][0]["quotaId"].as_str().is_some_and(|q| q.contains("PerMinute")) })
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn runtime_config_replaces_upstreams() {
    let sim = start(json!({})).await;
    let config = json!({"upstreams": [{"prefix": "/openai/v1", "strict_models": true, "models": ["only-model"]}]});
    assert_eq!(post(&sim.url("/_sim/config"), None, &config).await.status(), 200);
    let url = sim.url("/openai/v1/chat/completions");
    let unknown = post(&url, None, &chat_body(false)).await;
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    let mut known = chat_body(false);
    known["model"] = json!("only-model");
    assert_eq!(post(&url, None, &known).await.status(), 200);
    assert_eq!(post(&sim.url("/v1/chat/completions"), None, &known).await.status(), 404);
    assert!(sim.base_url().ends_with("/openai/v1"));
    let bad = post(&sim.url("/_sim/config"), None, &json!({"upstreams": [{"profile": "nope"}]})).await;
    assert_eq!(bad.status(), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn tool_calls_malformed_and_custom_replies() {
    let sim = start(json!({})).await;
    let url = format!("{}/chat/completions", sim.base_url());
    let tool_request = json!({
        "model": "sim-model",
        "messages": [{"role": "user", "content": "please call a tool now"}],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
    });
    let body: Value = post(&url, None, &tool_request).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "lookup");

    script(&sim, json!([{"times": 1, "action": {"type": "malformed"}}])).await;
    let malformed = post(&url, None, &chat_body(false)).await;
    assert_eq!(malformed.status(), 200);
    assert_eq!(malformed.headers()["content-type"], "application/json");
    assert!(serde_json::from_str::<Value>(&malformed.text().await.unwrap()).is_err());

    script(
        &sim,
        json!([{"times": 1, "action": {"type": "reply", "content": "custom words", "extra": {"provider": "x"}}}]),
    )
    .await;
    let body: Value = post(&url, None, &chat_body(false)).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "custom words");
    assert_eq!(body["provider"], "x");

    script(&sim, json!([{"times": 1, "action": {"type": "mid_stream_error", "chunks": 2, "error": {"code": 502, "message": "upstream died"}}}])).await;
    let text = post(&url, None, &chat_body(true)).await.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.len(), 4);
    let error: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(error["error"]["message"], "upstream died");
    assert_eq!(error["choices"][0]["finish_reason"], "error");
    assert_eq!(events[3], "[DONE]");
    sim.shutdown().await;
}

#[tokio::test]
async fn hang_and_stall_hold_until_the_client_gives_up() {
    let sim = start(json!({})).await;
    let url = format!("{}/chat/completions", sim.base_url());
    script(
        &sim,
        json!([
            {"times": 1, "action": {"type": "hang"}},
            {"times": 1, "action": {"type": "stall_after", "chunks": 2}},
            {"times": 1, "action": {"type": "delay", "ms": 150}},
        ]),
    )
    .await;
    let client = reqwest::Client::new();
    let hung = client.post(&url).json(&chat_body(false)).timeout(Duration::from_millis(200)).send().await;
    assert!(hung.unwrap_err().is_timeout());

    let stalled = post(&url, None, &chat_body(true)).await;
    let mut stream = stalled.bytes_stream();
    let mut received = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk.unwrap()),
            Ok(None) => panic!("a stalled stream must not end"),
            Err(_) => break,
        }
    }
    assert_eq!(sse_data(&String::from_utf8(received).unwrap()).len(), 2);
    drop(stream);

    let started = Instant::now();
    assert_eq!(post(&url, None, &chat_body(false)).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    // Shutting down with a hung request in flight is still quick.
    script(&sim, json!([{"action": {"type": "hang"}}])).await;
    let pending = tokio::spawn(async move { reqwest::Client::new().post(url).json(&chat_body(false)).send().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    sim.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(pending.await.unwrap().is_err());
}

#[tokio::test]
async fn binary_prints_its_address_and_stops_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_freeway-sim"))
        .args(["--listen", "127.0.0.1:0", "--no-record"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), BufReader::new(stdout).read_line(&mut line)).await.unwrap().unwrap();
    let base = line.trim().strip_prefix("freeway-sim listening on ").unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"), "{base}");
    let health = reqwest::get(format!("{base}/_sim/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    post(&format!("{base}/v1/chat/completions"), None, &chat_body(false)).await;
    let recorded: Value = reqwest::get(format!("{base}/_sim/requests")).await.unwrap().json().await.unwrap();
    assert_eq!(recorded, json!([]), "--no-record keeps nothing");

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}
