//! Waiting instead of refusing: a request that finds every account resting after a rate limit
//! waits for the rest to end (within its maximum wait) and is served then; one whose wait would
//! end first is refused at once with an honest Retry-After; waiting keys share freed capacity
//! by their tags' weights; a virtual key's own maximum wait is its default and its ceiling; a
//! client that leaves while waiting leaves the queue and spends nothing.

use std::time::{Duration, Instant};

use freeway_integration::{Gateway, Opts, Sim, chat_body, eventually, http, make_virtual_key, metric_value, provider};
use serde_json::{Value, json};

const ADMIN: &str = "fw-admin-waiting-suite";

async fn chat_requests(sim: &Sim) -> usize {
    sim.requests().await.iter().filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/chat/completions"))).count()
}

fn header_u64(r: &reqwest::Response, name: &str) -> Option<u64> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// A chat request for `m` with an optional bearer key and maximum wait.
async fn send(url: &str, key: Option<&str>, max_wait_ms: Option<u64>) -> reqwest::Response {
    let mut r = http().post(format!("{url}/v1/chat/completions")).json(&chat_body("m"));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    if let Some(ms) = max_wait_ms {
        r = r.header("x-freeway-max-wait-ms", ms.to_string());
    }
    r.send().await.expect("request")
}

async fn metrics(gw: &Gateway) -> String {
    gw.get("/metrics").await.text().await.expect("metrics")
}

/// Whether `freeway_queue_waiting` reaches `n` within 2 s.
async fn queue_holds(gw: &Gateway, n: u32) -> bool {
    eventually(Duration::from_secs(2), || async {
        metric_value(&metrics(gw).await, "freeway_queue_waiting") == Some(f64::from(n))
    })
    .await
}

#[tokio::test]
async fn a_waiting_request_is_served_when_the_rest_ends_and_a_short_wait_is_refused_at_once() {
    let sim = Sim::start().await;
    sim.script(json!([{ "times": 1, "action": { "type": "rate_limit", "retry_after_s": 2 } }])).await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["sk-wait-1"], &["m"])).await;
    let url = gw.url("");
    // the first attempt is rate limited (the account rests 2 s): the request waits, then is served
    let t = Instant::now();
    let waiting = tokio::spawn({
        let url = url.clone();
        async move { send(&url, None, None).await }
    });
    assert!(queue_holds(&gw, 1).await, "the first request waits in the queue");
    // a request that may wait 200 ms only: capacity returns later, so a 429 at once
    let quick = Instant::now();
    let r = send(&url, None, Some(200)).await;
    let took = quick.elapsed();
    assert_eq!(r.status(), 429);
    assert!(took < Duration::from_millis(500), "refused at once, not after waiting: {took:?}");
    let retry = header_u64(&r, "retry-after").unwrap_or(0);
    assert!((1..=2).contains(&retry), "Retry-After {retry}: when the rest ends");
    assert!(r.headers().get("x-freeway-waited-ms").is_none(), "it did not wait");

    let r = waiting.await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let waited = header_u64(&r, "x-freeway-waited-ms").expect("x-freeway-waited-ms");
    assert!((1_000..=3_500).contains(&waited), "waited {waited} ms for a 2 s rest");
    assert!(t.elapsed() >= Duration::from_millis(1_900));
    let _ = r.text().await;
    assert_eq!(chat_requests(&sim).await, 2, "the 429, then the served retry; the refused one never went");
    let text = metrics(&gw).await;
    assert_eq!(metric_value(&text, "freeway_queue_waiting"), Some(0.0));
    assert!(text.contains("freeway_queue_waited_total{result=\"served\"} 1"), "{text}");
}

#[tokio::test]
async fn waiting_keys_share_freed_capacity_by_their_weights() {
    let sim = Sim::start().await;
    // a first 429 rests the account 2 s (the flood queues meanwhile); then capacity comes back
    // in bursts: 4 answers, then a 429 that rests it 1 s; after 5 bursts, a long rest that no
    // waiting request can outlast
    let mut rules = vec![json!({ "times": 1, "action": { "type": "rate_limit", "retry_after_s": 2 } })];
    for _ in 0..5 {
        rules.push(json!({ "times": 4, "action": { "type": "reply" } }));
        rules.push(json!({ "times": 1, "action": { "type": "rate_limit", "retry_after_s": 1 } }));
    }
    rules.push(json!({ "action": { "type": "rate_limit", "retry_after_s": 60 } }));
    sim.script(Value::Array(rules)).await;
    let providers = format!(
        "[queue]\nmax_wait_ms = 9000\n\n[queue.weights]\ngold = 2\n\n{}",
        provider("local", &sim.base(), &["sk-wait-fair"], &["m"])
    );
    let opts = Opts { server: format!("admin_key = \"{ADMIN}\""), ..Opts::default() };
    let gw = Gateway::start_opts(&providers, opts).await;
    let url = gw.url("");
    let mut keys = Vec::new();
    for (name, tags) in [("gold", json!(["gold"])), ("plain", json!([]))] {
        keys.push(make_virtual_key(&gw, ADMIN, &json!({ "name": name, "tags": tags })).await);
    }
    let r = send(&url, Some(&keys[1]), Some(0)).await;
    assert_eq!(r.status(), 429, "the account goes to rest");
    // both keys flood: 24 requests each, at once
    let mut tasks = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        for _ in 0..24 {
            let (url, key) = (url.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let r = send(&url, Some(&key), None).await;
                let waited = r.headers().get("x-freeway-waited-ms").is_some();
                (i, r.status().as_u16(), waited)
            }));
        }
    }
    let mut served = [0usize; 2];
    let mut refused = 0;
    for t in tasks {
        let (i, status, waited) = t.await.unwrap();
        match status {
            200 if waited => served[i] += 1,
            200 => panic!("served without waiting while the account rested"),
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    let total = served[0] + served[1];
    assert!(total >= 16, "served from the queue: {served:?}");
    #[allow(clippy::cast_precision_loss)]
    let gold = served[0] as f64 / total as f64;
    assert!((gold - 2.0 / 3.0).abs() <= 0.1, "gold's share {gold:.2} of {total} (weights 2 : 1), {served:?}");
    assert!(refused > 0, "the rest could not be served within their wait");
    let text = metrics(&gw).await;
    assert_eq!(metric_value(&text, "freeway_queue_waiting"), Some(0.0));
}

#[tokio::test]
async fn a_client_that_leaves_while_waiting_leaves_the_queue_and_spends_nothing() {
    let sim = Sim::start().await;
    sim.script(json!([{ "times": 1, "action": { "type": "rate_limit", "retry_after_s": 2 } }])).await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["sk-wait-gone"], &["m"])).await;
    let url = gw.url("");
    // the account goes to rest: this one may not wait
    assert_eq!(send(&url, None, Some(0)).await.status(), 429);
    assert_eq!(chat_requests(&sim).await, 1);
    let client = tokio::spawn({
        let url = url.clone();
        async move { send(&url, None, None).await }
    });
    assert!(queue_holds(&gw, 1).await, "the request waits");
    // the client goes away: its connection closes
    client.abort();
    assert!(queue_holds(&gw, 0).await, "it left the queue");
    let text = metrics(&gw).await;
    assert!(text.contains("freeway_queue_waited_total{result=\"abandoned\"} 1"), "{text}");
    // after the rest it would have been sent: it was not
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(chat_requests(&sim).await, 1, "the provider never saw the request that left");
    assert_eq!(send(&url, None, None).await.status(), 200, "the account serves again");
}

#[tokio::test]
async fn a_keys_own_max_wait_is_its_default_and_its_ceiling() {
    let sim = Sim::start().await;
    sim.script(json!([{ "times": 1, "action": { "type": "rate_limit", "retry_after_s": 2 } }])).await;
    let opts = Opts { server: format!("admin_key = \"{ADMIN}\""), ..Opts::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["sk-wait-keys"], &["m"]), opts).await;
    let url = gw.url("");
    let impatient = make_virtual_key(&gw, ADMIN, &json!({ "name": "impatient", "max_wait_ms": 0 })).await;
    let patient = make_virtual_key(&gw, ADMIN, &json!({ "name": "patient", "max_wait_ms": 5000 })).await;
    // the account goes to rest for 2 s; a key that never waits cannot ask to
    let t = Instant::now();
    let r = send(&url, Some(&impatient), Some(5_000)).await;
    assert_eq!(r.status(), 429);
    assert!(t.elapsed() < Duration::from_millis(1_000), "refused at once: {:?}", t.elapsed());
    assert!(r.headers().get("x-freeway-waited-ms").is_none());
    // a key that may wait 5 s does, without asking
    let r = send(&url, Some(&patient), None).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let waited = header_u64(&r, "x-freeway-waited-ms").expect("x-freeway-waited-ms");
    assert!((500..=3_500).contains(&waited), "waited {waited} ms for the rest to end");
}
