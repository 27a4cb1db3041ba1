//! The sandbox: a guest that loops, allocates without end, traps, or asks for a host or a
//! credential it was not given fails its own request cleanly while the gateway keeps serving.

use std::time::{Duration, Instant};

use freeway_integration::{Gateway, Opts, Sim, artifact, chat_body, provider};
use serde_json::Value;

async fn misbehaving_gateway(sim: &Sim) -> Gateway {
    let opts = Opts {
        runtime: "guest_cpu_ms = 100\nguest_memory_mib = 32".into(),
        upstream: "max_attempts = 1".into(),
        ..Default::default()
    };
    let gw = Gateway::start_opts("", opts.clone()).await;
    std::fs::copy(artifact("tests/guests/misbehave.wasm"), gw.providers_dir().join("misbehave.wasm")).unwrap();
    let providers = provider("good", &sim.base(), &["k"], &["fine"])
        + &format!(
            "[[providers]]\nid = \"bad\"\ncomponent = \"misbehave\"\nbase_url = \"{}\"\napi_keys = [\"sk-bad-secret-1234567890\"]\nmodels = [\"loop\", \"alloc\", \"panic\", \"stack\", \"evil-host\", \"forged-credential\", \"ok\"]\n",
            sim.base()
        );
    gw.rewrite_config(&providers, &opts);
    let ready = freeway_integration::eventually(Duration::from_secs(10), || async {
        gw.model_ids().await.contains(&"loop".to_owned())
    })
    .await;
    assert!(ready, "misbehave provider did not load");
    gw
}

async fn code_of(resp: reqwest::Response) -> (u16, String, String) {
    let s = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    (
        s,
        v["error"]["code"].as_str().unwrap_or_default().to_owned(),
        v["error"]["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// `freeway_guest_failures_total` for the misbehaving component and `kind`.
async fn guest_failures(gw: &Gateway, kind: &str) -> f64 {
    let text = gw.get("/metrics").await.text().await.unwrap();
    freeway_integration::parse_samples(&text)
        .iter()
        .filter(|s| s.name == "freeway_guest_failures_total" && s.has(&[("component", "misbehave"), ("kind", kind)]))
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn an_endless_loop_fails_within_its_budget_while_others_are_served() {
    let sim = Sim::start().await;
    let gw = misbehaving_gateway(&sim).await;
    let started = Instant::now();
    let looping = gw.chat(chat_body("loop"));
    let others = async {
        let mut ok = 0;
        for _ in 0..10 {
            if gw.chat(chat_body("fine")).await.status() == 200 {
                ok += 1;
            }
        }
        ok
    };
    let (resp, ok) = tokio::join!(looping, others);
    let (status, code, message) = code_of(resp).await;
    assert_eq!(status, 504, "{message}");
    assert_eq!(code, "provider_component_timeout");
    assert!(message.contains("CPU budget"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(ok, 10, "other requests were served meanwhile");
    assert_eq!(guest_failures(&gw, "cpu").await, 1.0, "counted by kind in /metrics");
}

#[tokio::test]
async fn unbounded_allocation_fails_cleanly() {
    let sim = Sim::start().await;
    let gw = misbehaving_gateway(&sim).await;
    let (status, code, message) = code_of(gw.chat(chat_body("alloc")).await).await;
    assert_eq!(status, 502, "{message}");
    assert_eq!(code, "provider_component_out_of_memory", "{message}");
    assert_eq!(gw.chat(chat_body("ok")).await.status(), 200, "the component still serves");
    assert_eq!(guest_failures(&gw, "memory").await, 1.0, "counted by kind in /metrics");
}

#[tokio::test]
async fn panics_and_stack_overflows_are_contained() {
    let sim = Sim::start().await;
    let gw = misbehaving_gateway(&sim).await;
    let (status, code, message) = code_of(gw.chat(chat_body("panic")).await).await;
    assert_eq!((status, code.as_str()), (502, "provider_component_failed"), "{message}");
    assert!(message.contains("misbehave was asked to panic"), "guest output is shown: {message}");
    let (status, code, message) = code_of(gw.chat(chat_body("stack")).await).await;
    assert_eq!((status, code.as_str()), (502, "provider_component_failed"), "{message}");
    assert_eq!(gw.chat(chat_body("fine")).await.status(), 200);
    assert_eq!(guest_failures(&gw, "trap").await, 2.0, "counted by kind in /metrics");
}

#[tokio::test]
async fn hosts_outside_the_manifest_are_refused_before_any_connection() {
    let sim = Sim::start().await;
    let gw = misbehaving_gateway(&sim).await;
    let (status, code, message) = code_of(gw.chat(chat_body("evil-host")).await).await;
    assert_eq!((status, code.as_str()), (502, "provider_component_denied"), "{message}");
    assert!(message.contains("evil.example"), "{message}");
    assert!(!message.contains("sk-bad-secret"));
    assert!(sim.requests().await.is_empty(), "nothing left the gateway");
}

#[tokio::test]
async fn a_forged_credential_handle_is_refused() {
    let sim = Sim::start().await;
    let gw = misbehaving_gateway(&sim).await;
    let (status, code, message) = code_of(gw.chat(chat_body("forged-credential")).await).await;
    assert_eq!((status, code.as_str()), (502, "provider_component_denied"), "{message}");
    assert!(sim.requests().await.is_empty());
}

#[tokio::test]
async fn a_component_built_for_another_wit_version_is_refused_by_name() {
    let sim = Sim::start().await;
    let opts = Opts::default();
    let gw = Gateway::start_opts(&provider("good", &sim.base(), &["k"], &["m"]), opts.clone()).await;
    std::fs::copy(artifact("tests/guests/future-version.wasm"), gw.providers_dir().join("future.wasm")).unwrap();
    let providers = provider("good", &sim.base(), &["k"], &["m"])
        + &format!(
            "[[providers]]\nid = \"future\"\ncomponent = \"future\"\nbase_url = \"{}\"\nmodels = [\"x\"]\n",
            sim.base()
        );
    gw.rewrite_config(&providers, &opts);
    let seen = freeway_integration::eventually(Duration::from_secs(30), || async {
        let v: Value = gw.get("/ready").await.json().await.unwrap();
        v["problems"].to_string().contains("future")
    })
    .await;
    let v: Value = gw.get("/ready").await.json().await.unwrap();
    let problem = v["problems"].to_string();
    assert!(seen, "{problem}");
    assert!(problem.contains("freeway:gateway@0.2.0") && problem.contains("freeway:gateway@0.1.1"), "{problem}");
    assert_eq!(gw.get("/ready").await.status(), 503);
    // the rest keeps serving
    assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
}
