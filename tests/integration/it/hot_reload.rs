//! Hot reload: new components and configuration take effect without a restart; broken ones are
//! refused and the previous version keeps serving.

use std::time::Duration;

use freeway_integration::{Gateway, Opts, Sim, artifact, chat_body, eventually, provider};

#[tokio::test]
async fn a_new_component_and_provider_appear_within_five_seconds() {
    let sim = Sim::start().await;
    let opts = Opts::default();
    let gw = Gateway::start_opts(&provider("first", &sim.base(), &["k"], &["m1"]), opts.clone()).await;
    assert_eq!(gw.model_ids().await, ["m1"]);
    // drop a new provider component in, then add it to the configuration
    std::fs::copy(artifact("providers/openai-compat.wasm"), gw.providers_dir().join("second-adapter.wasm")).unwrap();
    let providers = provider("first", &sim.base(), &["k"], &["m1"])
        + &format!(
            "[[providers]]\nid = \"second\"\ncomponent = \"second-adapter\"\nbase_url = \"{}\"\napi_keys = [\"k2\"]\nmodels = [\"m2\"]\n",
            sim.base()
        );
    gw.rewrite_config(&providers, &opts);
    let appeared =
        eventually(Duration::from_secs(5), || async { gw.model_ids().await.contains(&"m2".to_owned()) }).await;
    assert!(appeared, "models: {:?}", gw.model_ids().await);
    let resp = gw.chat(chat_body("m2")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["x-freeway-route"].to_str().unwrap().contains("provider=second"));
}

#[tokio::test]
async fn a_corrupt_component_is_refused_and_the_old_one_keeps_serving() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let generation = gw.app.registry.snapshot().generation;
    std::fs::write(gw.providers_dir().join("openai-compat.wasm"), b"\0asm\x0d\0\x01\0garbage that is not a component")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(gw.app.registry.snapshot().generation, generation, "nothing was swapped in");
    for _ in 0..3 {
        assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
    }
    // a fixed file is picked up again
    std::fs::copy(artifact("providers/openai-compat.wasm"), gw.providers_dir().join("openai-compat.wasm")).unwrap();
    assert_eq!(gw.get("/ready").await.status(), 200);
}

#[tokio::test]
async fn an_updated_component_is_swapped_in() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let before = gw.app.registry.snapshot().providers[0].component.hash.clone();
    // a different build of a provider component (the test guest) under the same name
    let tmp = gw.providers_dir().join("incoming.tmp");
    std::fs::copy(artifact("tests/guests/misbehave.wasm"), &tmp).unwrap();
    std::fs::rename(&tmp, gw.providers_dir().join("openai-compat.wasm")).unwrap();
    let swapped = eventually(Duration::from_secs(5), || async {
        gw.app.registry.snapshot().providers[0].component.hash != before
    })
    .await;
    assert!(swapped);
    assert_eq!(gw.app.registry.snapshot().providers[0].component.manifest.id, "misbehave");
    assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_and_the_old_one_keeps_serving() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let generation = gw.app.registry.snapshot().generation;
    std::fs::write(gw.config_path(), "[[providers]]\nid = \"local\"\nbase_url = 42\n").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(gw.app.registry.snapshot().generation, generation);
    assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
}

#[tokio::test]
async fn requests_in_flight_finish_on_the_old_version() {
    let sim = Sim::start_json(serde_json::json!({"upstreams": [{"prefix": "/v1", "latency_ms": 700}]})).await;
    let opts = Opts::default();
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts.clone()).await;
    let in_flight = gw.chat(chat_body("m"));
    let reload = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        // the model is renamed while the request is upstream
        gw.rewrite_config(&provider("local", &sim.base(), &["k"], &["renamed"]), &opts);
        eventually(Duration::from_secs(5), || async { gw.model_ids().await == ["renamed"] }).await
    };
    let (resp, reloaded) = tokio::join!(in_flight, reload);
    assert!(reloaded);
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.chat(chat_body("m")).await.status(), 404);
}

#[tokio::test]
async fn a_request_keeps_the_configuration_it_started_under_when_a_reload_lands_mid_flight() {
    // `slow` fails after a while; `tight` has room for 1,000 tokens a minute. The request names
    // no max_tokens, so its reservation on `tight` is the prompt plus [quota]
    // default_output_tokens: 100 under the configuration it started with, 5,000 under the one
    // that lands while `slow` is still working. Mixing the two would find no room on `tight`.
    let sim = Sim::start_json(serde_json::json!({"upstreams": [
        {"prefix": "/slow/v1", "latency_ms": 1500, "error_per_mille": 1000},
        {"prefix": "/v1"}
    ]}))
    .await;
    let providers = provider("slow", &sim.url("/slow/v1"), &["k1"], &["m"])
        + &format!("{}limits = {{ tpm = 1000 }}\n\n", provider("tight", &sim.url("/v1"), &["k2"], &["m"]));
    let opts = Opts { quota: "default_output_tokens = 100\n".into(), ..Opts::default() };
    let gw = Gateway::start_opts(&providers, opts.clone()).await;
    let in_flight = gw.chat(chat_body("m"));
    let reload = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let bigger = Opts { quota: "default_output_tokens = 5000\n".into(), ..opts.clone() };
        gw.rewrite_config(&providers, &bigger);
        eventually(Duration::from_secs(5), || async {
            gw.app.registry.snapshot().config.quota.default_output_tokens == 5000
        })
        .await
    };
    let (resp, reloaded) = tokio::join!(in_flight, reload);
    assert!(reloaded, "the new configuration was live while the request was in flight");
    let status = resp.status();
    let route = resp.headers().get("x-freeway-route").map(|v| v.to_str().unwrap_or("").to_owned());
    assert_eq!(status, 200, "{:?}", resp.text().await);
    let route = route.unwrap_or_default();
    assert!(route.contains("provider=tight") && route.contains("attempts=2"), "{route}");
    // a request that starts under the new configuration reserves 5,000 and finds no room on
    // `tight`: only `slow` is tried, and fails
    let after = gw.chat(chat_body("m")).await;
    assert_ne!(after.status(), 200, "{:?}", after.text().await);
}
