//! The learned task classifier: class probabilities on `x-freeway-route` and in explanations,
//! the words that weighed, earlier turns read as context, and a model file that is replaced
//! without a restart (a damaged one is refused and the one in use keeps serving).

use std::time::Duration;

use freeway_integration::{Gateway, Opts, Sim, eventually, http, root};
use serde_json::{Value, json};

const ADMIN: &str = "fw-admin-classifier-key";

fn fleet(sim: &Sim, extra: &str) -> String {
    let base = sim.base();
    format!(
        "{extra}\n\n[[providers]]\nid = \"p1\"\ncomponent = \"openai-compat\"\nbase_url = \"{base}\"\napi_keys = [\"sk-class-p1\"]\n\
         models = [{{ id = \"llama-3.1-8b-instant\", context_window = 8192 }},\n\
                   {{ id = \"qwen-2.5-coder-32b\", context_window = 32768 }}]\n"
    )
}

fn opts() -> Opts {
    Opts {
        server: format!("admin_key = \"{ADMIN}\""),
        policies: vec![("policies/smart.wasm".into(), "smart.wasm".into())],
        ..Opts::default()
    }
}

async fn explain(gw: &Gateway, body: &Value) -> Value {
    let r = http().post(gw.url("/admin/route/explain")).bearer_auth(ADMIN).json(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The probability of `class` in a `classes=...` list.
fn probability(list: &str, class: &str) -> Option<f64> {
    list.split(", ").find_map(|item| item.strip_prefix(class)?.trim().parse().ok())
}

#[tokio::test]
async fn the_route_header_and_explanations_carry_the_class_probabilities_and_the_words_that_weighed() {
    let sim = Sim::start().await;
    let gw = Gateway::start_opts(&fleet(&sim, ""), opts()).await;
    let body = json!({ "model": "auto", "messages": [{ "role": "user",
        "content": "Write a Python function that merges two sorted lists, with unit tests." }] });
    let r = gw.chat(body.clone()).await;
    assert_eq!(r.status(), 200);
    let route = r.headers().get("x-freeway-route").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(route.contains("policy=smart; task=code; classes=code "), "{route}");
    let classes = route.split("classes=").nth(1).unwrap_or_default();
    assert!(probability(classes, "code").is_some_and(|p| p > 0.5), "{route}");

    let v = explain(&gw, &body).await;
    assert_eq!(v["task"], "code", "{v:#}");
    let p = v["probabilities"].as_object().expect("probabilities");
    let total: f64 = p.values().filter_map(Value::as_f64).sum();
    assert!(total > 0.95 && total <= 1.01, "{v:#}");
    assert_eq!(v["confidence"].as_f64(), p["code"].as_f64().map(|x| (x * 100.0).round() / 100.0), "{v:#}");
    let signals: Vec<&str> = v["signals"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(signals.iter().any(|s| s.starts_with("word \"")), "{signals:?}");
}

#[tokio::test]
async fn a_short_follow_up_is_classified_in_the_context_of_the_conversation() {
    let sim = Sim::start().await;
    let gw = Gateway::start_opts(&fleet(&sim, ""), opts()).await;
    let alone =
        explain(&gw, &json!({ "model": "auto", "messages": [{ "role": "user", "content": "now do it in go" }] })).await;
    let after_code = explain(
        &gw,
        &json!({ "model": "auto", "messages": [
            { "role": "user", "content": "write a python function that merges two sorted lists" },
            { "role": "assistant", "content": "def merge(a, b):\n    out = []\n    i = j = 0\n    while i < len(a) and j < len(b):" },
            { "role": "user", "content": "now do it in go" }] }),
    )
    .await;
    assert_eq!(after_code["task"], "code", "{after_code:#}");
    let p = |v: &Value| v["probabilities"]["code"].as_f64().unwrap_or(0.0);
    assert!(p(&after_code) > p(&alone), "{alone:#}\n{after_code:#}");
}

#[tokio::test]
async fn a_classifier_model_file_is_reloaded_when_it_changes_and_a_damaged_one_is_refused() {
    let models = tempfile::tempdir().unwrap();
    let path = models.path().join("task-classifier.fwtc");
    let built_in = std::fs::read(root().join("host/assets/task-classifier.fwtc")).unwrap();
    std::fs::write(&path, &built_in).unwrap();
    let sim = Sim::start().await;
    let opts = Opts { routing: format!("classifier_model = \"{}\"", path.display()), ..opts() };
    let gw = Gateway::start_opts(&fleet(&sim, ""), opts).await;
    let metrics = || async { http().get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let reloads = |text: &str, result: &str| {
        text.lines()
            .find(|l| l.starts_with("freeway_reloads_total") && l.contains("kind=\"classifier\"") && l.contains(result))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // a damaged file: refused, and routing goes on with the model in use
    std::fs::write(&path, &built_in[..built_in.len() / 2]).unwrap();
    let refused =
        eventually(Duration::from_secs(10), || async { reloads(&metrics().await, "result=\"error\"") >= 1 }).await;
    assert!(refused, "{}", metrics().await);
    let v = explain(&gw, &json!({ "model": "auto", "messages": [{ "role": "user", "content": "Solve 3x + 5 = 20" }] }))
        .await;
    assert_eq!(v["task"], "math", "{v:#}");
    // a good file again: loaded without a restart
    std::fs::write(&path, &built_in).unwrap();
    let loaded =
        eventually(Duration::from_secs(10), || async { reloads(&metrics().await, "result=\"ok\"") >= 1 }).await;
    assert!(loaded, "{}", metrics().await);
    let r = http().get(gw.url("/admin/status")).bearer_auth(ADMIN).send().await.unwrap();
    let log = r.text().await.unwrap();
    assert!(log.contains("task-classifier"), "{log}");
}
