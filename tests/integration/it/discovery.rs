//! Model discovery: providers configured without models list theirs through the component;
//! a model the provider stops listing becomes unavailable; local servers are found by probing;
//! OpenRouter's quota is read through its key endpoint.

use std::time::Duration;

use freeway_integration::{Gateway, Opts, Sim, chat_body, eventually};
use serde_json::{Value, json};

/// A catalog file describing one provider at the simulator.
fn catalog_file(gw: &Gateway, text: &str) -> String {
    let path = gw.dir.path().join("catalog.toml");
    std::fs::write(&path, text).unwrap();
    format!("[catalog]\nfiles = [\"{}\"]\n", path.display())
}

#[tokio::test]
async fn listed_models_are_served_and_missing_catalog_models_are_not() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "models": ["alpha", "beta"]}]})).await;
    let gw = Gateway::start_opts("", Opts::default()).await;
    let catalog = format!(
        "[[providers]]\nid = \"simprov\"\nname = \"Sim\"\nbase_url = \"{}\"\ncomponent = \"openai-compat\"\n\
         [[providers.models]]\nid = \"alpha\"\ncontext_window = 32768\ntools = true\n\
         [[providers.models]]\nid = \"retired\"\ncontext_window = 8192\n",
        sim.base()
    );
    let extra = catalog_file(&gw, &catalog);
    // the provider names only its catalog id and a key
    gw.rewrite_config(&format!("{extra}\n[[providers]]\nid = \"simprov\"\napi_keys = [\"k\"]\n"), &Opts::default());
    let listed = eventually(Duration::from_secs(5), || async {
        let ids = gw.model_ids().await;
        ids.contains(&"alpha".to_owned()) && ids.contains(&"beta".to_owned())
    })
    .await;
    assert!(listed, "{:?}", gw.model_ids().await);
    assert!(!gw.model_ids().await.contains(&"retired".to_owned()), "not listed upstream: unavailable");
    let v: Value = gw.get("/v1/models").await.json().await.unwrap();
    let alpha = v["data"].as_array().unwrap().iter().find(|m| m["id"] == "alpha").unwrap();
    assert_eq!(alpha["context_window"], 32768, "catalog facts fill what the listing lacks");
    assert_eq!(alpha["capabilities"], json!(["tools"]));
    assert_eq!(gw.chat(chat_body("retired")).await.status(), 404);
    assert_eq!(gw.chat(chat_body("simprov/beta")).await.status(), 200);
    // the listing was saved
    let state: Value = serde_json::from_slice(&std::fs::read(gw.dir.path().join("data/models.json")).unwrap()).unwrap();
    assert_eq!(state["providers"]["simprov"]["models"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_model_the_provider_stops_listing_becomes_unavailable_at_the_next_sync() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "models": ["keep", "drop"]}]})).await;
    let providers = format!("[[providers]]\nid = \"p\"\nbase_url = \"{}\"\napi_keys = [\"k\"]\n", sim.base());
    let gw = Gateway::start(&providers).await;
    assert!(eventually(Duration::from_secs(5), || async { gw.model_ids().await.len() == 2 }).await);
    sim.configure(json!({"upstreams": [{"prefix": "/v1", "models": ["keep"]}]})).await;
    let report = gw.app.reloader.sync_models().await;
    assert_eq!(report, vec![("p".to_owned(), Ok(1))]);
    assert_eq!(gw.model_ids().await, ["keep"]);
    assert_eq!(gw.chat(chat_body("drop")).await.status(), 404);
}

#[tokio::test]
async fn periodic_sync_notices_new_models() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "models": ["one"]}]})).await;
    let providers = format!("[[providers]]\nid = \"p\"\nbase_url = \"{}\"\napi_keys = [\"k\"]\n", sim.base());
    let fast = Opts { discovery: "interval_secs = 1".into(), ..Default::default() };
    let gw = Gateway::start_opts(&providers, fast).await;
    assert!(eventually(Duration::from_secs(5), || async { gw.model_ids().await == ["one"] }).await);
    sim.configure(json!({"upstreams": [{"prefix": "/v1", "models": ["one", "two"]}]})).await;
    assert!(eventually(Duration::from_secs(5), || async { gw.model_ids().await == ["one", "two"] }).await);
}

#[tokio::test]
async fn local_servers_are_found_on_their_port_and_missing_ones_are_no_problem() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "models": ["llama3.2:3b"]}]})).await;
    let gw = Gateway::start_opts("", Opts::default()).await;
    // a catalog override puts "ollama" at the simulator and "vllm" at a port nothing listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let catalog = format!(
        "[[providers]]\nid = \"ollama\"\nname = \"Ollama\"\nbase_url = \"{}\"\ncomponent = \"openai-compat\"\nlocal = true\ntier = \"local\"\n\n\
         [[providers]]\nid = \"vllm\"\nname = \"vLLM\"\nbase_url = \"http://127.0.0.1:{dead}/v1\"\ncomponent = \"openai-compat\"\nlocal = true\ntier = \"local\"\n",
        sim.base()
    );
    let extra = catalog_file(&gw, &catalog);
    let opts = Opts { discovery: "local = [\"ollama\", \"vllm\"]".into(), ..Default::default() };
    gw.rewrite_config(&extra, &opts);
    assert!(eventually(Duration::from_secs(5), || async { gw.model_ids().await == ["llama3.2:3b"] }).await);
    let resp = gw.chat(chat_body("ollama/llama3.2:3b")).await;
    assert_eq!(resp.status(), 200);
    // no key was sent to the local server
    let reqs = sim.requests().await;
    assert!(reqs.iter().all(|r| r["headers"].get("authorization").is_none()), "{reqs:?}");
    // the unreachable one is not a readiness problem
    let ready: Value = gw.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
}

#[tokio::test]
async fn openrouter_quota_is_read_from_its_key_endpoint_after_responses() {
    let sim = Sim::start_json(
        json!({"upstreams": [{"prefix": "/api/v1", "profile": "openrouter", "limits": {"rpm": 20, "rpd": 50}}]}),
    )
    .await;
    let gw = Gateway::start_opts("", Opts::default()).await;
    let base = format!("http://{}/api/v1", sim.sim.addr());
    let catalog = format!(
        "[[providers]]\nid = \"openrouter\"\nname = \"OpenRouter\"\nbase_url = \"{base}\"\ncomponent = \"openai-compat\"\npoll_limits = true\n\
         [providers.settings]\nkey_info_path = \"key\"\n"
    );
    let extra = catalog_file(&gw, &catalog);
    gw.rewrite_config(&format!("{extra}\n[[providers]]\nid = \"openrouter\"\napi_keys = [\"sk-or-1\"]\nmodels = [\"meta-llama/llama-3.3-70b-instruct:free\"]\n"), &Opts::default());
    assert!(eventually(Duration::from_secs(5), || async { gw.model_ids().await.len() == 1 }).await);
    for _ in 0..3 {
        assert_eq!(gw.chat(chat_body("meta-llama/llama-3.3-70b-instruct:free")).await.status(), 200);
    }
    let read = eventually(Duration::from_secs(5), || async {
        let snap = gw.app.registry.snapshot();
        let q = snap.providers[0].accounts[0].quota.lock().clone();
        q.iter().any(|u| u.limit == Some(50) && u.remaining.is_some_and(|r| r >= 47))
    })
    .await;
    assert!(read, "{:?}", gw.app.registry.snapshot().providers[0].accounts[0].quota.lock());
    // polled at most twice a minute, not once per request
    let key_reads = sim.requests().await.iter().filter(|r| r["path"] == "/api/v1/key").count();
    assert!((1..=2).contains(&key_reads), "{key_reads}");
    assert!(sim.requests().await.iter().filter(|r| r["path"] == "/api/v1/key").all(|r| r["key"] == "sk-or-1"));
}
