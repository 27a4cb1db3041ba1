//! Provider components written in Python (componentize-py) and JavaScript (componentize-js), and
//! the Rust project `freeway plugins new provider` scaffolds, built by the test command: each
//! serves JSON and streamed chats against the simulator, with the key attached by the host and
//! its own body edit applied.

use std::path::Path;
use std::time::Duration;

use freeway_integration::{Gateway, Sim, artifact, chat_body, eventually, sse_data};
use serde_json::json;

async fn serves_through(component: &Path, drops_logprobs: bool) {
    assert!(component.exists(), "{} is missing: `cargo xtask test` builds it", component.display());
    let sim = Sim::start().await;
    let providers = format!(
        "[[providers]]\nid = \"lang\"\ncomponent = \"{}\"\nbase_url = \"{}\"\napi_keys = [\"sk-lang\"]\n",
        component.display(),
        sim.base()
    );
    let gw = Gateway::start(&providers).await;
    let listed =
        eventually(Duration::from_secs(30), || async { gw.model_ids().await.contains(&"sim-model".to_owned()) }).await;
    assert!(listed, "the component's model listing never arrived: {:?}", gw.model_ids().await);

    let mut body = chat_body("sim-model");
    body["logprobs"] = json!(true);
    let resp = gw.chat(body.clone()).await;
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert!(answer["choices"][0]["message"]["content"].as_str().is_some_and(|c| !c.is_empty()), "{answer}");

    body["stream"] = json!(true);
    let resp = gw.chat(body).await;
    assert_eq!(resp.status(), 200);
    let data = sse_data(resp).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");

    let reqs = sim.requests().await;
    let chats: Vec<_> = reqs.iter().filter(|r| r["path"] == "/v1/chat/completions").collect();
    assert_eq!(chats.len(), 2, "{reqs:?}");
    for c in &chats {
        assert_eq!(c["headers"]["authorization"], "Bearer sk-lang");
        assert_eq!(c["body"].get("logprobs").is_none(), drops_logprobs, "{c}");
    }
    let listing = reqs.iter().find(|r| r["path"] == "/v1/models").unwrap();
    assert_eq!(
        listing["headers"]["authorization"], "Bearer sk-lang",
        "the listing went through the host's http import"
    );
}

#[tokio::test]
async fn a_provider_written_in_python_serves_requests() {
    serves_through(&artifact("tests/guests/python-provider.wasm"), true).await;
}

#[tokio::test]
async fn a_provider_written_in_javascript_serves_requests() {
    serves_through(&artifact("tests/guests/js-provider.wasm"), true).await;
}

#[tokio::test]
async fn the_scaffolded_rust_provider_builds_and_serves_requests() {
    // scaffolded with `freeway plugins new provider acme-rust` and built with plain cargo by the
    // test command (host/xtask/src/languages.rs); the template keeps every parameter
    serves_through(&artifact("tests/guests/scaffold-rust.wasm"), false).await;
}
