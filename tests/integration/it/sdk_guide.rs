//! The provider written in `sdk/README.md` ("a provider in 50 lines") loads and serves.

use std::time::Duration;

use freeway_integration::{Gateway, Opts, Sim, artifact, chat_body, eventually};
use serde_json::json;

#[tokio::test]
async fn the_guide_provider_serves_its_models_and_drops_what_the_upstream_rejects() {
    // the upstream lists the model the component's manifest knows, and one more
    let sim =
        Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "models": ["example-large", "sim-model"]}]})).await;
    let opts = Opts::default();
    let gw = Gateway::start_opts("", opts.clone()).await;
    std::fs::copy(artifact("tests/guests/example-provider.wasm"), gw.providers_dir().join("example.wasm")).unwrap();
    // no `models`: the manifest's models plus those listed through the component
    let providers = format!(
        "[[providers]]\nid = \"example\"\ncomponent = \"example\"\nbase_url = \"{}\"\napi_keys = [\"sk-example\"]\n",
        sim.base()
    );
    gw.rewrite_config(&providers, &opts);
    let listed = eventually(Duration::from_secs(30), || async {
        let ids = gw.model_ids().await;
        ids.contains(&"example-large".to_owned()) && ids.contains(&"sim-model".to_owned())
    })
    .await;
    assert!(listed, "{:?}", gw.model_ids().await);
    let mut body = chat_body("example-large");
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(2);
    let resp = gw.chat(body).await;
    assert_eq!(resp.status(), 200);
    let reqs = sim.requests().await;
    let chat = reqs.iter().find(|r| r["path"] == "/v1/chat/completions").unwrap();
    assert!(chat["body"].get("logprobs").is_none());
    assert_eq!(chat["body"]["top_logprobs"], 2);
    assert_eq!(chat["headers"]["authorization"], "Bearer sk-example");
    // the model listing went through the host with the key attached
    let listing = reqs.iter().find(|r| r["path"] == "/v1/models").unwrap();
    assert_eq!(listing["headers"]["authorization"], "Bearer sk-example");
}
