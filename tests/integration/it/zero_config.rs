//! Zero-config rules, on the real binary with nothing but its environment: providers enabled from
//! key variables join those a configuration file lists (unless `auto_env = false`), and upstream
//! calls go through the environment's proxy except to `NO_PROXY` hosts.

use std::time::Duration;

use freeway_integration::{Bare, Served, Sim, chat_body, eventually, http};
use serde_json::json;

async fn models(served: &Served) -> String {
    match http().get(served.url("/v1/models")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn config_listing_one_provider(bare: &Bare, sim: &Sim, auto_env: bool) -> std::path::PathBuf {
    let path = bare.work.join("freeway.toml");
    let text = format!(
        "auto_env = {auto_env}\n\n[upstream]\nproxy_from_env = false\n\n[[providers]]\nid = \"mine\"\nbase_url = \"{}\"\napi_keys = [\"sk-mine\"]\n",
        sim.base()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn providers_from_key_variables_join_the_ones_a_file_lists_unless_auto_env_is_off() {
    let mine = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "models": ["mine-model"]}]})).await;
    let groq = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "models": ["groq-model"]}]})).await;
    for auto_env in [true, false] {
        let bare = Bare::new();
        let config = config_listing_one_provider(&bare, &mine, auto_env);
        let mut cmd = bare.command(&["serve", "--listen", "127.0.0.1:0", "--config"]);
        cmd.arg(&config).env("GROQ_API_KEY", "gsk-env").env("GROQ_BASE_URL", groq.base());
        let served = Served::spawn(cmd).await;
        let both = eventually(Duration::from_secs(20), || async {
            let m = models(&served).await;
            m.contains("mine-model") && m.contains("groq-model")
        })
        .await;
        if auto_env {
            assert!(both, "{}\n{}", models(&served).await, served.log());
            let resp =
                http().post(served.url("/v1/chat/completions")).json(&chat_body("groq-model")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
        } else {
            let m = models(&served).await;
            assert!(m.contains("mine-model") && !m.contains("groq-model"), "auto_env = false: {m}");
        }
    }
}

#[tokio::test]
async fn upstream_calls_go_through_the_environment_s_proxy_except_to_no_proxy_hosts() {
    let sim = Sim::start().await;
    let proxy = format!("http://{}", sim.sim.addr());

    // the base URL names a loopback address nothing listens on: only the proxy (the simulator,
    // which serves absolute-form requests like any forward proxy's origin) can answer
    let bare = Bare::new();
    let mut cmd = bare.command(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("GROQ_API_KEY", "gsk-proxied").env("GROQ_BASE_URL", "http://127.0.0.2:9/v1").env("HTTP_PROXY", &proxy);
    let served = Served::spawn(cmd).await;
    let listed = eventually(Duration::from_secs(20), || async { models(&served).await.contains("sim-model") }).await;
    assert!(listed, "{}", served.log());
    let resp = http().post(served.url("/v1/chat/completions")).json(&chat_body("sim-model")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", served.log());
    let reqs = sim.requests().await;
    assert!(reqs.iter().any(|r| r["path"] == "/v1/chat/completions"), "{reqs:?}");

    // NO_PROXY: straight to the upstream, past a proxy that would refuse the connection
    let bare = Bare::new();
    let mut cmd = bare.command(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("GROQ_API_KEY", "gsk-direct")
        .env("GROQ_BASE_URL", sim.base())
        .env("HTTP_PROXY", "http://127.0.0.1:1")
        .env("NO_PROXY", "127.0.0.1");
    let served = Served::spawn(cmd).await;
    let listed = eventually(Duration::from_secs(20), || async { models(&served).await.contains("sim-model") }).await;
    assert!(listed, "{}", served.log());
    let resp = http().post(served.url("/v1/chat/completions")).json(&chat_body("sim-model")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", served.log());
}
