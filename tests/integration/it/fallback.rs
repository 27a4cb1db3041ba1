//! Fallback beyond one model: `[[routes]]` fallback chains, and moving to a larger-context model
//! when a model refuses a request as too long (without trying its other accounts).

use freeway_integration::{Gateway, Sim, chat_body};
use serde_json::{Value, json};

/// `p1` serves `small` (8k context, two accounts), `p2` serves `big` (128k); `chat` falls back
/// from one to the other.
fn fleet(sim: &Sim) -> String {
    let base = sim.base();
    format!(
        "[[routes]]\nmodel = \"chat\"\nfallback_chain = [\"p1/small\", \"p2/big\"]\n\n\
         [[providers]]\nid = \"p1\"\ncomponent = \"openai-compat\"\nbase_url = \"{base}\"\napi_keys = [\"sk-p1-one\", \"sk-p1-two\"]\n\
         models = [{{ id = \"small\", context_window = 8192 }}]\n\n\
         [[providers]]\nid = \"p2\"\ncomponent = \"openai-compat\"\nbase_url = \"{base}\"\napi_keys = [\"sk-p2-one\"]\n\
         models = [{{ id = \"big\", context_window = 131072 }}]\n\n"
    )
}

fn route_of(r: &reqwest::Response) -> String {
    r.headers().get("x-freeway-route").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

async fn models_asked(sim: &Sim) -> Vec<String> {
    sim.requests()
        .await
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/chat/completions")))
        .filter_map(|r| r["body"]["model"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_fallback_chain_serves_an_alias_from_the_next_model_when_the_first_fails() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&fleet(&sim)).await;
    sim.script(json!([{ "match": { "model": "small" }, "action": { "type": "status", "status": 503,
        "body": { "error": { "message": "overloaded", "type": "server_error" } } } }]))
        .await;
    let r = gw.chat(chat_body("chat")).await;
    assert_eq!(r.status(), 200);
    let route = route_of(&r);
    assert!(route.contains("provider=p2; model=big"), "{route}");
    assert!(gw.model_ids().await.contains(&"chat".to_owned()), "the alias is listed");
    // the alias' own chain starts with p1: both of its accounts were tried first
    assert_eq!(models_asked(&sim).await, ["small", "small", "big"]);
}

#[tokio::test]
async fn a_context_window_refusal_moves_to_a_larger_context_model_not_to_the_same_models_other_accounts() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&fleet(&sim)).await;
    sim.script(json!([{ "match": { "model": "small" }, "action": { "type": "status", "status": 400, "body": {
        "error": { "message": "Please reduce the length of the messages or completion.", "type": "invalid_request_error",
                   "param": "messages", "code": "context_length_exceeded" } } } }]))
    .await;
    let r = gw.chat(chat_body("chat")).await;
    assert_eq!(r.status(), 200, "{}", route_of(&r));
    assert!(route_of(&r).contains("model=big"));
    let v: Value = r.json().await.unwrap();
    assert!(v["choices"][0]["message"]["content"].is_string());
    assert_eq!(models_asked(&sim).await, ["small", "big"], "the second account of `small` was not asked");
}

#[tokio::test]
async fn without_a_larger_model_the_context_error_reaches_the_client() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&fleet(&sim)).await;
    sim.script(json!([{ "action": { "type": "status", "status": 400, "body": {
        "error": { "message": "Please reduce the length of the messages or completion.", "type": "invalid_request_error",
                   "param": "messages", "code": "context_length_exceeded" } } } }]))
    .await;
    let r = gw.chat(chat_body("chat")).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(models_asked(&sim).await, ["small", "big"]);
}

#[tokio::test]
async fn a_hedged_route_starts_the_next_candidate_when_the_first_is_slower_than_its_p95() {
    let sim = Sim::start().await;
    let providers = fleet(&sim).replacen(
        "fallback_chain = [\"p1/small\", \"p2/big\"]\n",
        "fallback_chain = [\"p1/small\", \"p2/big\"]\nhedge = true\n",
        1,
    );
    let gw = Gateway::start(&providers).await;
    // learn the usual time to first byte (a few ms here)
    for _ in 0..12 {
        assert_eq!(gw.chat(chat_body("chat")).await.status(), 200);
    }
    sim.script(json!([{ "match": { "model": "small" }, "times": 1, "action": { "type": "delay", "ms": 5000 } }])).await;
    let t = std::time::Instant::now();
    let r = gw.chat(chat_body("chat")).await;
    let took = t.elapsed();
    assert_eq!(r.status(), 200);
    assert!(took < std::time::Duration::from_secs(2), "the hedge answered long before the slow one: {took:?}");
    let route = route_of(&r);
    assert!(route.contains("attempts=2"), "{route}");
    let asked = models_asked(&sim).await;
    assert_eq!(asked.len(), 14, "12 warm-up requests, the slow one and its hedge: {asked:?}");
}

#[tokio::test]
async fn without_hedging_a_slow_first_candidate_is_simply_waited_for() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&fleet(&sim)).await;
    for _ in 0..12 {
        assert_eq!(gw.chat(chat_body("chat")).await.status(), 200);
    }
    sim.script(json!([{ "match": { "model": "small" }, "times": 1, "action": { "type": "delay", "ms": 600 } }])).await;
    let t = std::time::Instant::now();
    let r = gw.chat(chat_body("chat")).await;
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= std::time::Duration::from_millis(600));
    assert!(route_of(&r).contains("attempts=1"));
    assert_eq!(models_asked(&sim).await.len(), 13);
}
