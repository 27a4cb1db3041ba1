//! Non-streaming chat through the `openai-compat` component.

use freeway_integration::{Gateway, Sim, chat_body, http, provider};
use serde_json::{Value, json};

#[tokio::test]
async fn completion_passes_through_with_unknown_fields_both_ways() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["sk-local-1"], &["local-model"])).await;
    let mut body = chat_body("local-model");
    body["x_client_field"] = json!({"nested": [1, 2, 3]});
    body["logit_bias"] = json!({"50256": -100});
    let resp = gw.chat(body).await;
    assert_eq!(resp.status(), 200);
    let route = resp.headers()["x-freeway-route"].to_str().unwrap().to_owned();
    assert!(route.contains("provider=local") && route.contains("attempts=1"), "{route}");
    assert!(resp.headers().contains_key("x-freeway-overhead-ms"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().starts_with("tok0"));
    // an upstream field the gateway does not know survives
    assert_eq!(v["x_sim"]["request"], 1);
    assert_eq!(v["system_fingerprint"], "fp_sim");

    let reqs = sim.requests().await;
    assert_eq!(reqs.len(), 1);
    let up = &reqs[0];
    assert_eq!(up["body"]["x_client_field"], json!({"nested": [1, 2, 3]}));
    assert_eq!(up["body"]["logit_bias"], json!({"50256": -100}));
    assert_eq!(up["body"]["model"], "local-model");
    // the host injected the credential; the component never had it
    assert_eq!(up["headers"]["authorization"], "Bearer sk-local-1");
}

#[tokio::test]
async fn qualified_model_name_routes_to_that_provider() {
    let sim = Sim::start().await;
    let providers =
        provider("a", &sim.base(), &["sk-a"], &["shared"]) + &provider("b", &sim.base(), &["sk-b"], &["shared"]);
    let gw = Gateway::start(&providers).await;
    let resp = gw.chat(chat_body("b/shared")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["x-freeway-route"].to_str().unwrap().contains("provider=b"));
    let reqs = sim.requests().await;
    assert_eq!(reqs[0]["key"], "sk-b");
    assert_eq!(reqs[0]["body"]["model"], "shared");
}

#[tokio::test]
async fn keys_of_a_provider_are_rotated() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["sk-1", "sk-2", "sk-3"], &["m"])).await;
    for _ in 0..6 {
        assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
    }
    let reqs = sim.requests().await;
    for key in ["sk-1", "sk-2", "sk-3"] {
        assert_eq!(reqs.iter().filter(|r| r["key"] == key).count(), 2, "{key}");
    }
}

#[tokio::test]
async fn models_lists_the_union_of_providers() {
    let sim = Sim::start().await;
    let providers =
        provider("a", &sim.base(), &["k"], &["m1", "shared"]) + &provider("b", &sim.base(), &["k"], &["shared", "m2"]);
    let gw = Gateway::start(&providers).await;
    let v: Value = gw.get("/v1/models").await.json().await.unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    // each model once in provider order, then the built-in `auto` aliases
    assert_eq!(
        ids,
        ["m1", "shared", "m2", "auto", "auto:code", "auto:reasoning", "auto:fast", "auto:long", "auto:vision"]
    );
    let shared = v["data"].as_array().unwrap().iter().find(|m| m["id"] == "shared").unwrap();
    assert_eq!(shared["providers"], json!(["a", "b"]));
    assert_eq!(shared["object"], "model");
    let one: Value = gw.get("/v1/models/m2").await.json().await.unwrap();
    assert_eq!(one["owned_by"], "b");
}

#[tokio::test]
async fn health_and_ready() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    assert_eq!(gw.get("/health").await.status(), 200);
    let r = gw.get("/ready").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["providers"][0]["component"], "openai-compat");
}

#[tokio::test]
async fn client_keys_are_enforced_when_configured() {
    let sim = Sim::start().await;
    let opts = freeway_integration::Opts { server: "api_keys = [\"fw-test-key\"]".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    let r = gw.chat(chat_body("m")).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let r = http()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("fw-test-key")
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(gw.get("/v1/models").await.status(), 401);
    // the client's key is never forwarded upstream
    let reqs = sim.requests().await;
    assert!(!reqs[0].to_string().contains("fw-test-key"));
}

#[tokio::test]
async fn usage_is_counted_off_the_hot_path() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    for _ in 0..3 {
        assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
    }
    let ok = freeway_integration::eventually(std::time::Duration::from_secs(2), || async {
        let text = gw.get("/metrics").await.text().await.unwrap();
        text.contains("freeway_requests_total{provider=\"local\",model=\"m\",outcome=\"ok\"} 3")
    })
    .await;
    assert!(ok, "{}", gw.get("/metrics").await.text().await.unwrap());
    let text = gw.get("/metrics").await.text().await.unwrap();
    // 12 completion tokens per simulated reply
    assert!(text.contains("kind=\"completion\"} 36"), "{text}");
}
