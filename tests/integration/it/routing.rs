//! Policy routing: `auto` aliases ranked by the `smart` policy component, routing rules,
//! `--explain` and the admin explain endpoint, policies written in Python and JavaScript
//! (hot-reloaded), and policies that misbehave.

use std::time::Duration;

use freeway_integration::{Gateway, Opts, Sim, eventually, http, run_freeway};
use serde_json::{Value, json};

const ADMIN: &str = "fw-admin-routing-key";

/// p1: a small 8k model with tools, a coder model and a small vision model; p2: a 128k
/// generalist with tools (one request a day).
fn fleet(sim: &Sim, extra: &str) -> String {
    let base = sim.base();
    format!(
        "{extra}\n\n[[providers]]\nid = \"p1\"\ncomponent = \"openai-compat\"\nbase_url = \"{base}\"\napi_keys = [\"sk-route-p1\"]\n\
         models = [{{ id = \"llama-3.1-8b-instant\", context_window = 8192, tools = true, vision = false }},\n\
                   {{ id = \"qwen-2.5-coder-32b\", context_window = 32768, tools = true, vision = false }},\n\
                   {{ id = \"llava-13b-vision\", context_window = 8192, tools = false, vision = true }}]\n\n\
         [[providers]]\nid = \"p2\"\ncomponent = \"openai-compat\"\nbase_url = \"{base}\"\napi_keys = [\"sk-route-p2\"]\n\
         limits = {{ rpd = 1 }}\n\
         models = [{{ id = \"llama-3.3-70b-versatile\", context_window = 131072, tools = true, vision = false }}]\n\n"
    )
}

fn opts() -> Opts {
    Opts {
        server: format!("admin_key = \"{ADMIN}\""),
        policies: vec![("policies/smart.wasm".into(), "smart.wasm".into())],
        ..Opts::default()
    }
}

fn route_of(r: &reqwest::Response) -> String {
    r.headers().get("x-freeway-route").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn user(model: &str, text: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": text }] })
}

fn tools() -> Value {
    json!([{ "type": "function", "function": { "name": "get_weather", "description": "weather for a city",
        "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } }])
}

async fn explain(gw: &Gateway, body: &Value) -> Value {
    let r = http().post(gw.url("/admin/route/explain")).bearer_auth(ADMIN).json(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Prose of about `tokens` tokens.
fn long_text(tokens: usize) -> String {
    "The committee reviewed the regional budget figures in detail. ".repeat(tokens / 10)
}

#[tokio::test]
async fn auto_sends_code_to_the_coder_long_prompts_to_long_context_and_images_to_vision() {
    let sim = Sim::start().await;
    let gw = Gateway::start_opts(&fleet(&sim, ""), opts()).await;

    let r = gw.chat(user("auto", "Write a Python function that parses ISO dates and add unit tests")).await;
    assert_eq!(r.status(), 200);
    let route = route_of(&r);
    assert!(route.contains("model=qwen-2.5-coder-32b") && route.contains("policy=smart"), "{route}");
    assert!(r.headers().contains_key("x-freeway-overhead-ms"));

    // 40k tokens: only the 128k model holds it
    let long = format!("Summarise the main decisions in the minutes below.\n\n{}", long_text(40_000));
    let r = gw.chat(user("auto", &long)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    assert!(route_of(&r).contains("model=llama-3.3-70b-versatile"), "{}", route_of(&r));

    let image = json!({ "model": "auto", "messages": [{ "role": "user", "content": [
        { "type": "text", "text": "What is in this picture?" },
        { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw0KGgo=" } } ] }] });
    let r = gw.chat(image).await;
    assert_eq!(r.status(), 200);
    assert!(route_of(&r).contains("model=llava-13b-vision"), "{}", route_of(&r));

    // tools: never the vision model, which cannot call them; auto:code forces the coder
    let mut body = user("auto", "What's the weather in Oslo?");
    body["tools"] = tools();
    let r = gw.chat(body).await;
    assert_eq!(r.status(), 200);
    assert!(!route_of(&r).contains("llava"), "{}", route_of(&r));
    let r = gw.chat(user("auto:code", "hello, how are you?")).await;
    assert!(route_of(&r).contains("model=qwen-2.5-coder-32b"), "{}", route_of(&r));

    let models: Vec<String> = gw.all_model_ids().await;
    assert!(models.iter().any(|m| m == "auto") && models.iter().any(|m| m == "auto:code"), "{models:?}");
}

#[tokio::test]
async fn explain_shows_every_candidate_its_score_and_why_the_others_were_dropped() {
    let sim = Sim::start().await;
    let gw = Gateway::start_opts(&fleet(&sim, ""), opts()).await;
    // a request that can be served: ranked candidates carry a score and a reason
    let v = explain(&gw, &user("auto", "tell me a joke")).await;
    let first = &v["candidates"][0];
    assert_eq!(first["rank"], 1);
    assert!(first["score"].is_number() && first["reason"].as_str().is_some_and(|r| r.contains('q')), "{v:#}");
    assert!(sim.requests().await.is_empty(), "explaining sends nothing");

    // spend p2's one request of the day, and make the coder rest after a 429
    assert_eq!(gw.chat(user("llama-3.3-70b-versatile", "hi")).await.status(), 200);
    sim.script(json!([{ "match": { "model": "qwen-2.5-coder-32b" }, "times": 1,
        "action": { "type": "rate_limit", "retry_after_s": 30, "window": "minute" } }]))
        .await;
    let _ = gw.chat(user("qwen-2.5-coder-32b", "hi")).await;

    // 10k tokens with tools
    let mut body = user("auto", &format!("Check these notes and call the tool if needed.\n\n{}", long_text(10_000)));
    body["tools"] = tools();
    let v = explain(&gw, &body).await;
    // the class is the classifier's call (notes pasted with tools on offer); what the request
    // needs decides which candidates are left
    assert_eq!(v["needs"]["tools"], true, "{v:#}");
    assert!(v["probabilities"]["tool-use"].as_f64().is_some_and(|p| p > 0.0), "{v:#}");
    assert_eq!(v["policy"], "smart");
    let why = |model: &str| -> String {
        v["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["model"] == model)
            .map(|c| c["dropped"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    assert!(why("llama-3.1-8b-instant").starts_with("context 8,192 < 1"), "{v:#}");
    assert_eq!(why("llava-13b-vision"), "no tool calling support");
    assert!(why("llama-3.3-70b-versatile").starts_with("RPD 1/1, resets 00:00 UTC"), "{v:#}");
    assert!(why("qwen-2.5-coder-32b").starts_with("cooldown "), "{v:#}");
    assert!(v["error"].as_str().unwrap_or("").contains("free quota"), "{v:#}");

    // nothing was sent for the explanation, and the same request really is refused
    let before = sim.requests().await.len();
    let r = gw.chat(body).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(sim.requests().await.len(), before);

    // the admin surface is behind its key
    let r = http().post(gw.url("/admin/route/explain")).json(&user("auto", "x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_cli_explains_a_prompt_without_a_running_server_and_names_the_task() {
    let sim = Sim::start().await;
    let gw = Gateway::start_opts(&fleet(&sim, ""), opts()).await;
    let config = gw.config_path();
    let (code, out, err) =
        run_freeway(&["route", "--explain", "--config", config.to_str().unwrap(), "Solve x^2 - 5x + 6 = 0"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("task      math"), "{out}");
    assert!(out.contains("policy `smart`") && out.contains(" 1. p"), "{out}");
    assert!(out.contains("dropped: no image input support") || out.contains("score"), "{out}");
    let (code, out, _) = run_freeway(
        &[
            "route",
            "--explain",
            "--json",
            "--config",
            config.to_str().unwrap(),
            "--model",
            "auto:vision",
            "describe it",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let ranked: Vec<&Value> = v["candidates"].as_array().unwrap().iter().filter(|c| c["rank"].is_number()).collect();
    assert_eq!(ranked.len(), 1, "only the vision model: {v:#}");
    assert_eq!(ranked[0]["model"], "llava-13b-vision");
    assert!(sim.requests().await.is_empty(), "a dry run sends nothing");
}

#[tokio::test]
async fn routing_rules_override_the_task_and_lead_with_their_preferred_model() {
    let sim = Sim::start().await;
    let rules = "[[routing_rules]]\nname = \"sql-on-the-small-model\"\nkeywords = [\"sql\"]\ntask = \"code\"\n\
                 prefer_models = [\"llama-3.1-8b-instant\"]\n";
    let gw = Gateway::start_opts(&fleet(&sim, rules), opts()).await;
    let r = gw.chat(user("auto", "Write SQL that counts orders per day")).await;
    assert_eq!(r.status(), 200);
    assert!(route_of(&r).contains("model=llama-3.1-8b-instant"), "{}", route_of(&r));
    let v = explain(&gw, &user("auto", "Write SQL that counts orders per day")).await;
    assert_eq!(v["rules"], json!(["sql-on-the-small-model"]));
    assert_eq!(v["task"], "code");
    let r = gw.chat(user("auto", "Write a Rust function that sorts a vector")).await;
    assert!(route_of(&r).contains("model=qwen-2.5-coder-32b"), "rules apply only where they match: {}", route_of(&r));
}

/// `alpha` (strong, 10 requests a day) and `beta` (small, no daily limit); `auto-custom` is
/// ranked by whatever `custom.wasm` in the policies folder is.
fn two_models(sim: &Sim) -> String {
    let base = sim.base();
    format!(
        "[[routes]]\nmodel = \"auto-custom\"\npolicy = \"custom\"\n\n\
         [[providers]]\nid = \"pa\"\ncomponent = \"openai-compat\"\nbase_url = \"{base}\"\napi_keys = [\"sk-pa\"]\n\
         limits = {{ rpd = 10 }}\nmodels = [{{ id = \"alpha-70b\", context_window = 32768 }}]\n\n\
         [[providers]]\nid = \"pb\"\ncomponent = \"openai-compat\"\nbase_url = \"{base}\"\napi_keys = [\"sk-pb\"]\n\
         models = [{{ id = \"beta-8b\", context_window = 32768 }}]\n\n"
    )
}

#[tokio::test]
async fn policies_written_in_python_and_javascript_route_requests_and_are_hot_reloaded() {
    let sim = Sim::start().await;
    let opts = Opts {
        server: format!("admin_key = \"{ADMIN}\""),
        policies: vec![("tests/guests/python-example.wasm".into(), "custom.wasm".into())],
        ..Opts::default()
    };
    let gw = Gateway::start_opts(&two_models(&sim), opts).await;
    // beta answers slowly: once both times to first token are known, alpha is the faster one
    sim.script(json!([{ "match": { "model": "beta-8b" }, "action": { "type": "delay", "ms": 250 } }])).await;
    // half of alpha's daily quota spent; alpha's time to first token is now known
    for _ in 0..5 {
        assert_eq!(gw.chat(user("alpha-70b", "hi")).await.status(), 200);
    }
    // Python: the most daily headroom first -> beta (no daily limit) before alpha (5/10 left)
    let r = gw.chat(user("auto-custom", "hello")).await;
    assert_eq!(r.status(), 200);
    assert!(route_of(&r).contains("model=beta-8b") && route_of(&r).contains("policy=custom"), "{}", route_of(&r));
    let v = explain(&gw, &user("auto-custom", "hello")).await;
    assert!(v["candidates"][0]["reason"].as_str().unwrap().starts_with("python-example: "), "{v:#}");

    // replace the file with the JavaScript policy: the fastest known time to first token first
    // (beta's is known too now, and 250 ms slower)
    let tmp = gw.dir.path().join("custom.wasm.tmp");
    std::fs::copy(freeway_integration::artifact("tests/guests/js-example.wasm"), &tmp).unwrap();
    std::fs::rename(&tmp, gw.dir.path().join("policies/custom.wasm")).unwrap();
    let switched = eventually(Duration::from_secs(90), || async {
        let v = explain(&gw, &user("auto-custom", "hello")).await;
        v["candidates"][0]["reason"].as_str().is_some_and(|r| r.starts_with("js-example: "))
    })
    .await;
    assert!(switched, "the JavaScript policy was not picked up");
    let r = gw.chat(user("auto-custom", "hello")).await;
    assert_eq!(r.status(), 200);
    assert!(route_of(&r).contains("model=alpha-70b"), "{}", route_of(&r));
}

#[tokio::test]
async fn a_policy_that_loops_traps_hoards_memory_or_answers_garbage_fails_over_to_the_host_order() {
    let sim = Sim::start().await;
    let mut config = String::new();
    for alias in ["auto-loop", "auto-trap", "auto-alloc", "auto-garbage", "auto-ok"] {
        config.push_str(&format!("[[routes]]\nmodel = \"{alias}\"\npolicy = \"bad\"\n\n"));
    }
    config.push_str(&fleet(&sim, ""));
    let opts = Opts {
        policies: vec![
            ("tests/guests/bad-policy.wasm".into(), "bad.wasm".into()),
            ("policies/smart.wasm".into(), "smart.wasm".into()),
        ],
        ..Opts::default()
    };
    let gw = Gateway::start_opts(&config, opts).await;
    for alias in ["auto-loop", "auto-trap", "auto-alloc", "auto-garbage"] {
        let r = gw.chat(user(alias, "Write a Python function")).await;
        assert_eq!(r.status(), 200, "{alias}");
        let route = route_of(&r);
        assert!(route.contains("policy=bad (failed; host order)"), "{alias}: {route}");
        // the host's order: the highest quality for the task first
        assert!(route.contains("model=qwen-2.5-coder-32b"), "{alias}: {route}");
    }
    // the same component keeps serving well-behaved calls, and so does everything else
    let r = gw.chat(user("auto-ok", "hello")).await;
    assert_eq!(r.status(), 200);
    assert!(route_of(&r).contains("policy=bad;") || route_of(&r).ends_with("policy=bad"), "{}", route_of(&r));
    assert_eq!(gw.chat(user("auto", "hello")).await.status(), 200);
}

#[tokio::test]
async fn the_labelled_prompt_set_is_classified_at_least_90_percent_right_and_auto_always_picks_a_capable_model() {
    let (code, out, err) = run_freeway(&["eval-routing", "--min-accuracy", "0.9"], "").await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("auto put a capable model first (tools, images, context): "), "{out}");
    let line = out.lines().find(|l| l.starts_with("classifier accuracy (creative/general")).unwrap_or_default();
    assert!(line.contains('%'), "{out}");
}

#[tokio::test]
async fn the_request_log_names_the_policy_that_ranked_an_auto_request() {
    let sim = Sim::start().await;
    let gw = Gateway::start_opts(&fleet(&sim, ""), opts()).await;
    assert_eq!(gw.chat(user("auto", "Write a Python function that reverses a list")).await.status(), 200);
    assert_eq!(gw.chat(user("llama-3.1-8b-instant", "hello")).await.status(), 200);
    let logged = freeway_integration::eventually(std::time::Duration::from_secs(10), || async {
        let v: Value =
            http().get(gw.url("/admin/requests")).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
        v["data"].as_array().is_some_and(|d| d.len() == 2)
    })
    .await;
    let v: Value = http().get(gw.url("/admin/requests")).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    assert!(logged, "{v:#}");
    crate::admin_api::assert_matches("RequestLog", &v);
    // newest first: the model asked for by name, then the auto request
    assert_eq!(v["data"][0]["policy"], Value::Null, "{v:#}");
    assert_eq!(
        (v["data"][1]["model"].as_str(), v["data"][1]["policy"].as_str()),
        (Some("qwen-2.5-coder-32b"), Some("smart"))
    );
}
