//! Every provider of the catalog, configured by its catalog id, through its real component
//! against the simulator impersonating it (`SimConfig::from_catalog`): a chat and a stream reach
//! the provider's own path in its own request shape, a 429 in its own shape comes back as a 429
//! with `Retry-After`, and the quota it reports reaches the account.
//!
//! Every component the catalog names must be built (`cargo xtask build`): a missing one fails
//! the suite, naming the file.

use std::time::Duration;

use freeway::config::catalog::{self, CatalogProvider, Tier};
use freeway_integration::{Gateway, Opts, Sim, eventually, root, sse_data};
use freeway_sim::{LimitsConfig, SimConfig, catalog_prefix, catalog_profile, sim_base_url};
use serde_json::{Value, json};

const CATALOG: &str = include_str!("../../../config/catalog.toml");
/// The Cloudflare account every `account_id` setting names.
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

/// One catalog provider under test.
struct Case {
    id: String,
    component: String,
    /// the simulator's upstream prefix, e.g. `/groq/openai/v1`
    prefix: String,
    base_url: String,
    model: String,
    key: String,
    /// `account_settings` the catalog asks for
    account_settings: Vec<String>,
    /// limits the simulator counts this model against
    limits: Option<LimitsConfig>,
}

impl Case {
    /// The model pinned to this provider, so no other provider serves the request.
    fn pinned(&self) -> String {
        format!("{}/{}", self.id, self.model)
    }

    fn profile(&self) -> &'static str {
        catalog_profile(&self.id, &self.component)
    }
}

/// Remote catalog providers that offer something without paying, plus paid ones the catalog
/// lists models for (Anthropic, for users with credits).
fn selected(p: &CatalogProvider) -> bool {
    !p.local && p.tier != Tier::Local && (p.tier != Tier::Paid || !p.models.is_empty())
}

fn cases(sim_config: &SimConfig, sim: &Sim) -> Vec<Case> {
    let catalog = catalog::embedded();
    let cases: Vec<Case> = catalog
        .providers
        .iter()
        .filter(|p| selected(p))
        .map(|p| {
            let prefix = catalog_prefix(&p.base_url, &p.id);
            let upstream = sim_config
                .upstreams
                .iter()
                .find(|u| u.prefix == prefix)
                .unwrap_or_else(|| panic!("the simulator does not impersonate {} at {prefix}", p.id));
            // a free model where there is one; a provider without catalog models takes any
            let model = p
                .models
                .iter()
                .find(|m| m.free)
                .or_else(|| p.models.first())
                .map_or_else(|| format!("{}-sim-model", p.id), |m| m.id.clone());
            let limits = upstream.model_limits.get(&model).copied().or(upstream.limits);
            Case {
                id: p.id.clone(),
                component: p.component.clone(),
                base_url: sim_base_url(&p.base_url, &p.id, sim.sim.addr()),
                prefix,
                key: format!("key-{}-0123456789", p.id),
                account_settings: p.account_settings.clone(),
                limits,
                model,
            }
        })
        .collect();
    assert!(cases.len() >= 10, "the catalog lost its providers: {}", cases.len());
    cases
}

/// Fails, naming every `providers/<component>.wasm` that is not built.
fn require_components(cases: &[Case]) {
    let mut missing: Vec<String> = Vec::new();
    for case in cases {
        let rel = format!("providers/{}.wasm", case.component);
        if !root().join(&rel).exists() && !missing.iter().any(|m| m.starts_with(&rel)) {
            let users: Vec<&str> =
                cases.iter().filter(|c| c.component == case.component).map(|c| c.id.as_str()).collect();
            missing.push(format!("{rel} (catalog providers: {})", users.join(", ")));
        }
    }
    assert!(missing.is_empty(), "catalog components are not built: {}; run `cargo xtask build`", missing.join("; "));
}

/// `[[providers]]` tables: each provider by its catalog id, pointed at the simulator.
fn providers_toml(cases: &[Case]) -> String {
    let mut out = String::new();
    for c in cases {
        let settings: Vec<String> = c
            .account_settings
            .iter()
            .map(|s| format!("{s} = \"{}\"", if s == "account_id" { ACCOUNT.to_owned() } else { format!("sim-{s}") }))
            .collect();
        let key = if settings.is_empty() {
            format!("\"{}\"", c.key)
        } else {
            format!("{{ key = \"{}\", settings = {{ {} }} }}", c.key, settings.join(", "))
        };
        out.push_str(&format!(
            "[[providers]]\nid = \"{}\"\nbase_url = \"{}\"\napi_keys = [{key}]\nmodels = [\"{}\"]\n\n",
            c.id, c.base_url, c.model
        ));
    }
    out
}

/// A gateway serving `cases` (their components copied into its providers folder), with one
/// attempt per request so a 429 is not retried elsewhere.
async fn gateway(cases: &[Case]) -> Gateway {
    require_components(cases);
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = Gateway::start_opts("", opts.clone()).await;
    let mut copied: Vec<&str> = vec!["openai-compat"];
    for c in cases {
        if !copied.contains(&c.component.as_str()) {
            let file = format!("{}.wasm", c.component);
            std::fs::copy(root().join("providers").join(&file), gw.providers_dir().join(&file)).unwrap();
            copied.push(&c.component);
        }
    }
    gw.rewrite_config(&providers_toml(cases), &opts);
    let ready = eventually(Duration::from_secs(20), || async {
        let ids = gw.model_ids().await;
        cases.iter().all(|c| ids.contains(&c.model))
    })
    .await;
    let ready_body: Value = gw.get("/ready").await.json().await.unwrap_or_default();
    assert!(ready, "not every catalog provider is served: {:?}; /ready: {ready_body}", gw.model_ids().await);
    gw
}

/// Where the provider's component sends a chat, and what the body must look like there.
struct Shape {
    chat_path: String,
    stream_path: String,
    /// `stream: true` in the upstream body of a streamed chat
    stream_in_body: bool,
}

fn shape(c: &Case) -> Result<Shape, String> {
    let same = |path: String| Shape { chat_path: path.clone(), stream_path: path, stream_in_body: true };
    Ok(match c.component.as_str() {
        "openai-compat" => same(format!("{}/chat/completions", c.prefix)),
        "cloudflare" => same(format!("{}/accounts/{ACCOUNT}/ai/v1/chat/completions", c.prefix)),
        "cohere" => same(format!("{}/chat", c.prefix)),
        "anthropic" => same(format!("{}/messages", c.prefix)),
        "gemini" => Shape {
            chat_path: format!("{}/models/{}:generateContent", c.prefix, c.model),
            stream_path: format!("{}/models/{}:streamGenerateContent", c.prefix, c.model),
            stream_in_body: false,
        },
        other => return Err(format!("no expected request shape for component {other}: add one to it/catalog.rs")),
    })
}

/// The provider's own body shape.
fn check_body(c: &Case, body: &Value) -> Result<(), String> {
    let ok = match c.component.as_str() {
        "gemini" => body["contents"].is_array() && body.get("messages").is_none() && body.get("model").is_none(),
        "anthropic" => body["model"] == c.model && body["messages"].is_array() && body["max_tokens"].is_u64(),
        _ => body["model"] == c.model && body["messages"].is_array(),
    };
    if !ok {
        return Err(format!("not a {} request body: {body}", c.component));
    }
    if body.to_string().contains(&c.key) {
        return Err("the key is in the body".to_owned());
    }
    Ok(())
}

/// The last request the simulator got under the provider's prefix.
async fn last_request(sim: &Sim, c: &Case) -> Result<Value, String> {
    let under = format!("{}/", c.prefix);
    sim.requests()
        .await
        .into_iter()
        .rev()
        .find(|r| r["method"] == "POST" && r["path"].as_str().is_some_and(|p| p.starts_with(&under)))
        .ok_or_else(|| format!("the simulator saw no request under {}", c.prefix))
}

/// Quota limits Freeway can read from what a profile reports on success: the headers the
/// simulator sends for it, or OpenRouter's `GET /key`. Gemini and Cloudflare report nothing on
/// success; Mistral's request headers are named `*-req-minute`, which the generic reader skips
/// (only its token headers count).
fn readable_limits(profile: &str, limits: Option<LimitsConfig>) -> Vec<u64> {
    let Some(l) = limits else { return Vec::new() };
    let axes = match profile {
        "openai" => vec![l.rpm, l.tpm],
        "groq" | "cerebras" => vec![l.rpd, l.tpm],
        "mistral" => vec![l.tpm],
        "openrouter" => vec![l.rpd],
        // x-trial-endpoint-call-limit, x-endpoint-monthly-call-limit
        "cohere" => vec![l.rpm, l.rpd],
        // anthropic-ratelimit-requests-*, -tokens-*
        "anthropic" => vec![l.rpm, l.tpm],
        _ => Vec::new(),
    };
    axes.into_iter().flatten().collect()
}

fn content_of(v: &Value) -> &str {
    v["choices"][0]["message"]["content"].as_str().unwrap_or_default()
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

async fn chat_checks(sim: &Sim, gw: &Gateway, c: &Case) -> Result<(), String> {
    let shape = shape(c)?;
    let body = json!({"model": c.pinned(), "messages": [{"role": "user", "content": "hello there"}]});

    // a chat, in the provider's own shape at its own path
    let resp = gw.chat(body.clone()).await;
    let status = resp.status();
    let route = resp.headers().get("x-freeway-route").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = resp.text().await.unwrap_or_default();
    ensure!(status == 200, "chat: {status} {text}");
    ensure!(route.contains(&format!("provider={};", c.id)), "chat routed elsewhere: {route}");
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("chat: {e}: {text}"))?;
    ensure!(v["object"] == "chat.completion" && content_of(&v).starts_with("tok0"), "chat answer: {v}");
    let up = last_request(sim, c).await?;
    ensure!(up["path"] == shape.chat_path, "chat went to {} instead of {}", up["path"], shape.chat_path);
    ensure!(up["key"] == c.key.as_str(), "the simulator saw key {} instead of {}", up["key"], c.key);
    check_body(c, &up["body"])?;

    // a stream
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let resp = gw.chat(streamed).await;
    let status = resp.status();
    ensure!(status == 200, "stream: {status} {}", resp.text().await.unwrap_or_default());
    let data = sse_data(resp).await;
    ensure!(data.last().is_some_and(|d| d == "[DONE]"), "stream did not end with [DONE]: {data:?}");
    let words: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    ensure!(words.starts_with("tok0"), "stream content: {words:?} from {data:?}");
    let up = last_request(sim, c).await?;
    ensure!(up["path"] == shape.stream_path, "stream went to {} instead of {}", up["path"], shape.stream_path);
    ensure!(!shape.stream_in_body || up["body"]["stream"] == true, "stream: not asked upstream: {}", up["body"]);
    check_body(c, &up["body"])?;

    // the quota the provider reported reached the account (parse-limits runs off the request path)
    let want = readable_limits(c.profile(), c.limits);
    if !want.is_empty() {
        let quota = || {
            let snap = gw.app.registry.snapshot();
            snap.providers
                .iter()
                .find(|p| p.id == c.id)
                .and_then(|p| p.accounts.first())
                .map(|a| a.quota.lock().clone())
                .unwrap_or_default()
        };
        let read = eventually(Duration::from_secs(5), || async {
            quota().iter().any(|u| u.limit.is_some_and(|l| want.contains(&l)))
        })
        .await;
        ensure!(read, "no quota with a limit in {want:?} reached the account: {:?}", quota());
    }

    // a 429 in the provider's own shape: Workers AI's is the daily neuron allowance (3036), the
    // others' the minute window (only the chat path: OpenRouter's quota poll must not take it)
    let action = if c.profile() == "cloudflare" {
        json!({"type": "rate_limit", "window": "day"})
    } else {
        json!({"type": "rate_limit", "window": "minute", "retry_after_s": 30})
    };
    let rule = json!({"match": {"prefix": c.prefix, "path_suffix": shape.chat_path}, "times": 1, "action": action});
    sim.script(json!([rule])).await;
    let resp = gw.chat(body).await;
    let status = resp.status();
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = resp.text().await.unwrap_or_default();
    ensure!(status == 429, "scripted 429 came back as {status}: {text}");
    let retry_s = retry.as_deref().and_then(|r| r.parse::<u64>().ok());
    ensure!(retry_s.is_some_and(|s| (1..=86_400).contains(&s)), "Retry-After {retry:?} on {text}");
    let up = last_request(sim, c).await?;
    ensure!(up["path"] == shape.chat_path, "the 429 came from {} instead of {}", up["path"], shape.chat_path);
    Ok(())
}

#[tokio::test]
async fn every_catalog_provider_chats_streams_and_rate_limits_in_its_own_shape() {
    let sim_config = SimConfig::from_catalog(CATALOG).unwrap();
    let sim = Sim::start_with(sim_config.clone()).await;
    let cases = cases(&sim_config, &sim);
    let gw = gateway(&cases).await;
    let mut failures = Vec::new();
    for c in &cases {
        if let Err(e) = chat_checks(&sim, &gw, c).await {
            failures.push(format!("{} ({}, model {}): {e}", c.id, c.component, c.model));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} catalog providers failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn cloudflare_lists_models_through_models_search_and_runs_out_of_neurons() {
    let mut sim_config = SimConfig::from_catalog(CATALOG).unwrap();
    let prefix = "/cloudflare/client/v4";
    let upstream = sim_config.upstreams.iter_mut().find(|u| u.prefix == prefix).unwrap();
    // 14 neurons (tokens) per answer: the third chat is over the allowance
    upstream.limits.as_mut().unwrap().neurons_per_day = Some(40);
    let sim = Sim::start_with(sim_config.clone()).await;
    let entry = catalog::embedded().provider("cloudflare").unwrap();
    let case = Case {
        id: "cloudflare".into(),
        component: entry.component.clone(),
        prefix: prefix.into(),
        base_url: sim_base_url(&entry.base_url, "cloudflare", sim.sim.addr()),
        model: "@cf/meta/llama-3.1-8b-instruct-fp8".into(),
        key: "cf-token-0123456789".into(),
        account_settings: entry.account_settings.clone(),
        limits: None,
    };
    require_components(std::slice::from_ref(&case));
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = Gateway::start_opts("", opts.clone()).await;
    std::fs::copy(root().join("providers/cloudflare.wasm"), gw.providers_dir().join("cloudflare.wasm")).unwrap();
    // no `models`: the component lists them through `ai/models/search`
    let table = providers_toml(std::slice::from_ref(&case)).replace(&format!("models = [\"{}\"]\n", case.model), "");
    gw.rewrite_config(&table, &opts);
    let listed = eventually(Duration::from_secs(15), || async { gw.model_ids().await.contains(&case.model) }).await;
    assert!(listed, "{:?}", gw.model_ids().await);
    let ids = gw.model_ids().await;
    assert!(ids.iter().any(|m| m == "@cf/openai/gpt-oss-120b"), "{ids:?}");
    let search = sim
        .requests()
        .await
        .into_iter()
        .find(|r| r["path"] == format!("{prefix}/accounts/{ACCOUNT}/ai/models/search"))
        .expect("a models/search request");
    assert_eq!(search["method"], "GET");
    assert_eq!(search["key"], case.key.as_str());
    assert!(search["query"].as_str().unwrap().contains("task=Text%20Generation"), "{search}");

    let body = json!({"model": case.model, "messages": [{"role": "user", "content": "hello there"}]});
    assert_eq!(gw.chat(body.clone()).await.status(), 200);
    assert_eq!(gw.chat(body.clone()).await.status(), 200);
    let resp = gw.chat(body).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "until 00:00 UTC: {retry}");
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("neurons"), "{v}");
    // the exhausted allowance is the account's quota until midnight
    let snap = gw.app.registry.snapshot();
    let quota = snap.providers[0].accounts[0].quota.lock().clone();
    assert!(quota.iter().any(|u| u.remaining == Some(0) && u.scope.as_deref() == Some("neurons")), "{quota:?}");
}
