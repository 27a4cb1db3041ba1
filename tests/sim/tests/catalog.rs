//! Impersonating catalog providers over HTTP: a simulator started from `config/catalog.toml`,
//! per-model limits and the Cloudflare profile.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use freeway_sim::{SimConfig, Simulator, sim_base_url};
use serde_json::{Value, json};

const CATALOG: &str = include_str!("../../../config/catalog.toml");
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

async fn start(config: SimConfig) -> Simulator {
    Simulator::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
}

async fn post(url: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(url).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

async fn get(url: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new().get(url).bearer_auth(key).send().await.unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello, simulator!"}]})
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn catalog_providers_answer_at_their_own_paths() {
    let sim = start(SimConfig::from_catalog(CATALOG).unwrap()).await;
    let groq = sim_base_url("https://api.groq.com/openai/v1", "groq", sim.addr());
    let response = post(&format!("{groq}/chat/completions"), Some("gsk-1"), &chat("llama-3.1-8b-instant")).await;
    assert_eq!(response.status(), 200);
    // Groq's per-model limits: requests per day and tokens per minute of this model
    assert_eq!(header(&response, "x-ratelimit-limit-requests").as_deref(), Some("14400"));
    assert_eq!(header(&response, "x-ratelimit-remaining-requests").as_deref(), Some("14399"));
    assert_eq!(header(&response, "x-ratelimit-limit-tokens").as_deref(), Some("6000"));
    let other = post(&format!("{groq}/chat/completions"), Some("gsk-1"), &chat("llama-3.3-70b-versatile")).await;
    assert_eq!(header(&other, "x-ratelimit-limit-requests").as_deref(), Some("1000"));
    assert_eq!(header(&other, "x-ratelimit-remaining-requests").as_deref(), Some("999"), "counted per model");
    // a model the catalog does not list is unknown there
    assert_eq!(post(&format!("{groq}/chat/completions"), Some("gsk-1"), &chat("gpt-4o")).await.status(), 404);

    let openrouter = sim_base_url("https://openrouter.ai/api/v1", "openrouter", sim.addr());
    let key: Value = get(&format!("{openrouter}/key"), "sk-or-1").await.json().await.unwrap();
    assert_eq!(key["data"]["free_model_daily_requests"]["limit"], 50);

    let gemini = sim_base_url("https://generativelanguage.googleapis.com/v1beta", "gemini", sim.addr());
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let response = reqwest::Client::new()
        .post(format!("{gemini}/models/gemini-2.5-flash:generateContent"))
        .header("x-goog-api-key", "AIza-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let cf = sim_base_url("https://api.cloudflare.com/client/v4", "cloudflare", sim.addr());
    let url = format!("{cf}/accounts/{ACCOUNT}/ai/v1/chat/completions");
    let response = post(&url, Some("cf-token"), &chat("@cf/meta/llama-3.1-8b-instruct-fp8")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().keys().all(|h| !h.as_str().starts_with("x-ratelimit")));
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    let paths: Vec<String> = sim.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.contains(&format!("/cloudflare/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions")), "{paths:?}");
    assert!(paths.contains(&"/groq/openai/v1/chat/completions".to_owned()), "{paths:?}");
}

#[tokio::test]
async fn per_model_limits_are_counted_per_key_and_model() {
    let config = SimConfig::from_json(
        &json!({"upstreams": [{"profile": "cerebras", "limits": {"rpd": 1, "per_model": true},
            "model_limits": {"big": {"rpd": 2}}}]})
        .to_string(),
    )
    .unwrap();
    let sim = start(config).await;
    let url = format!("{}/chat/completions", sim.base_url());
    assert_eq!(post(&url, Some("k"), &chat("a")).await.status(), 200);
    assert_eq!(post(&url, Some("k"), &chat("b")).await.status(), 200, "another model has its own counter");
    assert_eq!(post(&url, Some("other"), &chat("a")).await.status(), 200, "and so has another key");
    let limited = post(&url, Some("k"), &chat("a")).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(header(&limited, "x-ratelimit-limit-requests-day").as_deref(), Some("1"));
    let big = post(&url, Some("k"), &chat("big")).await;
    assert_eq!(header(&big, "x-ratelimit-limit-requests-day").as_deref(), Some("2"), "the model's own limits");
    assert_eq!(header(&big, "x-ratelimit-remaining-requests-day").as_deref(), Some("1"));
    assert_eq!(post(&url, Some("k"), &chat("big")).await.status(), 200);
    assert_eq!(post(&url, Some("k"), &chat("big")).await.status(), 429);
    // a scripted day limit reports the model's counters too
    sim.reset();
    sim.add_rules(vec![serde_json::from_value(json!({"action": {"type": "rate_limit", "window": "day"}})).unwrap()]);
    let scripted = post(&url, Some("k"), &chat("big")).await;
    assert_eq!(scripted.status(), 429);
    assert_eq!(header(&scripted, "x-ratelimit-limit-requests-day").as_deref(), Some("2"));
    assert_eq!(header(&scripted, "x-ratelimit-remaining-requests-day").as_deref(), Some("0"));
}

async fn cloudflare() -> Simulator {
    let config = SimConfig::from_json(
        &json!({"upstreams": [{"prefix": "/client/v4", "profile": "cloudflare", "keys": ["cf-token"],
            "strict_models": true,
            "models": ["@cf/meta/llama-3.1-8b-instruct-fp8", "@cf/openai/gpt-oss-20b", "@cf/baai/bge-base-en-v1.5"],
            "limits": {"rpm": 300, "neurons_per_day": 40}}]})
        .to_string(),
    )
    .unwrap();
    start(config).await
}

fn errors(v: &Value) -> (u64, String) {
    assert_eq!(v["success"], false, "{v}");
    assert_eq!(v["messages"], json!([]), "{v}");
    assert!(v["result"].is_null(), "{v}");
    (v["errors"][0]["code"].as_u64().unwrap(), v["errors"][0]["message"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn cloudflare_speaks_openai_under_accounts_and_errs_in_the_v4_envelope() {
    let sim = cloudflare().await;
    let chat_url = sim.url(&format!("/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions"));
    let model = "@cf/meta/llama-3.1-8b-instruct-fp8";

    let mut streamed = chat(model);
    streamed["stream"] = json!(true);
    let response = post(&chat_url, Some("cf-token"), &streamed).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type").as_deref(), Some("text/event-stream"));
    assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));

    let bad = post(&chat_url, Some("wrong"), &chat(model)).await;
    assert_eq!(bad.status(), 401);
    assert_eq!(errors(&bad.json().await.unwrap()).0, 10000);
    let missing = post(&chat_url, None, &chat(model)).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(errors(&missing.json().await.unwrap()).0, 10001);

    let unknown = post(&chat_url, Some("cf-token"), &chat("@cf/nope")).await;
    assert_eq!(unknown.status(), 400);
    let (code, message) = errors(&unknown.json().await.unwrap());
    assert_eq!((code, message.as_str()), (5007, "No such model @cf/nope or task"));

    let nowhere = post(&sim.url("/client/v4/accounts/x/workers/scripts"), Some("cf-token"), &chat(model)).await;
    assert_eq!(nowhere.status(), 404);
    assert_eq!(errors(&nowhere.json().await.unwrap()).0, 7000);

    // 12 + 4 tokens per request, 40 neurons a day: the third request is over the allowance
    assert_eq!(post(&chat_url, Some("cf-token"), &chat(model)).await.status(), 200);
    let over = post(&chat_url, Some("cf-token"), &chat(model)).await;
    assert_eq!(over.status(), 429);
    assert!(over.headers().get("retry-after").is_none(), "Cloudflare sends no retry-after");
    let (code, message) = errors(&over.json().await.unwrap());
    assert_eq!(code, 3036);
    assert!(message.contains("daily free allocation of 40 neurons"), "{message}");

    sim.add_rules(vec![serde_json::from_value(json!({"action": {"type": "rate_limit"}})).unwrap()]);
    let busy = post(&chat_url, Some("cf-token"), &chat(model)).await;
    assert_eq!(busy.status(), 429);
    assert_eq!(errors(&busy.json().await.unwrap()).0, 3040);
}

#[tokio::test]
async fn cloudflare_lists_models_through_models_search() {
    let sim = cloudflare().await;
    let base = sim.url(&format!("/client/v4/accounts/{ACCOUNT}/ai/models/search"));
    let v: Value = get(&format!("{base}?task=Text%20Generation&per_page=200"), "cf-token").await.json().await.unwrap();
    assert_eq!(v["success"], true);
    assert_eq!(v["errors"], json!([]));
    let names: Vec<&str> = v["result"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["@cf/meta/llama-3.1-8b-instruct-fp8", "@cf/openai/gpt-oss-20b"]);
    let props = &v["result"][0]["properties"];
    assert!(props.as_array().unwrap().contains(&json!({"property_id": "context_window", "value": "32000"})));
    assert_eq!(v["result_info"], json!({"page": 1, "per_page": 200, "count": 2, "total_count": 2}));

    let page: Value = get(&format!("{base}?per_page=2&page=2"), "cf-token").await.json().await.unwrap();
    assert_eq!(page["result"][0]["name"], "@cf/baai/bge-base-en-v1.5");
    assert_eq!(page["result"][0]["task"]["name"], "Text Embeddings");
    let found: Value = get(&format!("{base}?search=gpt-oss"), "cf-token").await.json().await.unwrap();
    assert_eq!(found["result_info"]["count"], 1);
    let bad = get(&format!("{base}?page=0"), "cf-token").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(errors(&bad.json().await.unwrap()).0, 3003);
}
