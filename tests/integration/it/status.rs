//! `GET /admin/status` and `freeway status`: requests made show up in the quota counters and the
//! latency figures, a 429 from the simulator shows as a cooldown with the provider's reset, the
//! components are listed, and every answer matches the OpenAPI document.

use std::time::Duration;

use freeway_integration::{Gateway, Opts, Sim, chat_body, eventually, freeway_bin, http, provider};
use serde_json::{Value, json};

use crate::admin_api::assert_matches;

const ADMIN: &str = "fw-status-admin-key";

async fn start(sim: &Sim) -> Gateway {
    let providers = format!(
        "{}limits = {{ rpm = 30 }}\n\n{}",
        provider("steady", &sim.base(), &["sk-steady-1"], &["m"]),
        provider("limited", &sim.base(), &["sk-limited-1"], &["r"])
    );
    Gateway::start_opts(&providers, Opts { server: format!("admin_key = \"{ADMIN}\""), ..Default::default() }).await
}

async fn status(gw: &Gateway) -> Value {
    let r = http().get(gw.url("/admin/status")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn provider_of<'a>(s: &'a Value, id: &str) -> &'a Value {
    s["providers"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap_or_else(|| panic!("no {id} in {s:#}"))
}

/// A 429 with a 30-second reset for the next request to model `r`.
async fn rate_limit_r(sim: &Sim) {
    sim.script(json!([{"match": {"model": "r"}, "times": 1,
        "action": {"type": "rate_limit", "retry_after_s": 30, "window": "minute"}}]))
        .await;
}

#[tokio::test]
async fn status_counts_requests_shows_a_429_as_a_cooldown_and_matches_the_openapi_document() {
    let sim = Sim::start().await;
    let gw = start(&sim).await;
    // the admin key guards it
    let r = http().get(gw.url("/admin/status")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http().get(gw.url("/admin/status")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);

    for _ in 0..3 {
        assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
    }
    rate_limit_r(&sim).await;
    assert_eq!(gw.chat(chat_body("r")).await.status(), 429);

    // latency figures are fed by the usage writer, off the request path
    let fed = eventually(Duration::from_secs(10), || async {
        provider_of(&status(&gw).await, "steady")["models"][0]["samples"] == 3
    })
    .await;
    let s = status(&gw).await;
    assert!(fed, "{s:#}");
    assert_matches("Status", &s);
    let now = s["server"]["now_ms"].as_u64().unwrap();

    let server = &s["server"];
    assert_eq!(server["ready"], true);
    assert_eq!(server["storage"]["ok"], true, "{server:#}");
    assert!(server["config_generation"].as_u64().unwrap() >= 1);
    assert!(server.get("redis").is_none(), "no Redis configured");

    let steady = provider_of(&s, "steady");
    assert_eq!(steady["component"], "openai-compat");
    assert_eq!(steady["accounts"][0]["state"], "ok");
    let rpm = &steady["pools"][0]["quota"][0];
    assert_eq!((rpm["name"].as_str(), rpm["used"].as_u64(), rpm["limit"].as_u64()), (Some("rpm"), Some(3), Some(30)));
    assert_eq!(rpm["source"], "configured");
    let resets = rpm["resets_at_ms"].as_u64().unwrap();
    assert!(resets > now && resets <= now + 61_000, "a rolling minute: {resets} vs {now}");
    let m = &steady["models"][0];
    assert_eq!(m["model"], "m");
    assert_eq!(m["success_rate"], 1.0);
    assert!(m["latency_p50_ms"].as_f64().unwrap() > 0.0 && m["ttft_p95_ms"].as_f64().is_some(), "{m}");

    let limited = provider_of(&s, "limited");
    let account = &limited["accounts"][0];
    assert_eq!(account["state"], "cooling", "{limited:#}");
    let left = account["until_ms"].as_u64().unwrap().saturating_sub(now);
    assert!((20_000..=30_000).contains(&left), "the provider's 30 s reset, counting down: {left} ms");
    assert_eq!(limited["last_error"]["account"], account["label"]);
    assert!(limited["last_error"]["at_ms"].as_u64().unwrap() <= now);

    let components = s["components"].as_array().unwrap();
    let c = components.iter().find(|c| c["name"] == "openai-compat").unwrap_or_else(|| panic!("{s:#}"));
    assert_eq!((c["kind"].as_str(), c["loads"].as_u64()), (Some("provider"), Some(1)));
    assert!(c["version"].is_string() && c["loaded_at_ms"].as_u64().unwrap() <= now);

    // the document is served, behind the same key
    let doc: Value =
        http().get(gw.url("/admin/openapi.json")).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"]["/admin/status"]["get"].is_object());
}

#[tokio::test]
async fn a_refused_component_version_shows_beside_the_one_still_serving() {
    let sim = Sim::start().await;
    let gw = start(&sim).await;
    std::fs::write(gw.providers_dir().join("openai-compat.wasm"), b"not a component").unwrap();
    let refused = eventually(Duration::from_secs(30), || async {
        let s = status(&gw).await;
        s["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "openai-compat" && c["last_refusal"].is_object())
    })
    .await;
    let s = status(&gw).await;
    assert!(refused, "{s:#}");
    assert_matches("Status", &s);
    let c = s["components"].as_array().unwrap().iter().find(|c| c["name"] == "openai-compat").unwrap();
    assert_eq!(c["loads"], 1, "the serving version is the first one");
    assert!(c["sha256"].is_string());
    assert_eq!(gw.chat(chat_body("m")).await.status(), 200, "the previous version keeps serving");
}

/// `freeway status ARGS` with the admin key in the environment; (exit code, stdout, stderr).
async fn freeway_status(args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::from(freeway_bin());
    cmd.arg("status").args(args).env("FREEWAY_ADMIN_KEY", ADMIN).env("NO_COLOR", "1");
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.unwrap().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn freeway_status_shows_the_running_gateway_and_says_when_none_answers() {
    let sim = Sim::start().await;
    let gw = start(&sim).await;
    let url = format!("http://{}", gw.addr);
    assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
    rate_limit_r(&sim).await;
    assert_eq!(gw.chat(chat_body("r")).await.status(), 429);

    let (code, out, err) = freeway_status(&["--json", "--url", &url]).await;
    assert_eq!(code, 0, "{out}{err}");
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_matches("Status", &s);
    assert_eq!(provider_of(&s, "steady")["pools"][0]["quota"][0]["used"], 1);
    assert_eq!(provider_of(&s, "limited")["accounts"][0]["state"], "cooling");

    let (code, out, err) = freeway_status(&["--url", &url]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("at {url}: ready")), "{out}");
    assert!(out.contains("RPM") && out.contains(" 1/30, resets in "), "{out}");
    assert!(out.contains("◐ cooling down, ") && out.contains(" s left: "), "{out}");
    assert!(!out.contains('\x1b'), "no colour outside a terminal");

    // a wrong key is refused, plainly
    let mut cmd = tokio::process::Command::from(freeway_bin());
    cmd.args(["status", "--url", &url]).env("FREEWAY_ADMIN_KEY", "wrong");
    let o = cmd.output().await.unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HTTP 401"));

    // nobody there: said so, exit 1
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (code, out, err) = freeway_status(&["--url", &dead, "--config", &gw.config_path().display().to_string()]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("no gateway is answering at {dead}")), "{err}");
    assert!(out.contains("What the vault and state files hold"), "{out}");
}

#[tokio::test]
async fn a_key_the_provider_echoes_in_an_error_never_reaches_the_status_view() {
    let sim = Sim::start().await;
    let key = "sk-status-leak-check-0123456789";
    let gw = Gateway::start_opts(
        &provider("leaky", &sim.base(), &[key], &["m"]),
        Opts { server: format!("admin_key = \"{ADMIN}\""), ..Default::default() },
    )
    .await;
    sim.script(json!([{"action": {"type": "status", "status": 401, "body": {"error": {
        "message": format!("Incorrect API key provided: {key}"), "code": "invalid_api_key"}}}}]))
        .await;
    assert_ne!(gw.chat(chat_body("m")).await.status(), 200);
    let r = http().get(gw.url("/admin/status")).bearer_auth(ADMIN).send().await.unwrap();
    let text = r.text().await.unwrap();
    let s: Value = serde_json::from_str(&text).unwrap();
    let leaky = provider_of(&s, "leaky");
    assert_eq!(leaky["accounts"][0]["state"], "disabled", "a refused key is out of rotation: {leaky:#}");
    assert!(leaky["last_error"]["message"].as_str().unwrap().contains("Incorrect API key provided"));
    assert!(!text.contains(key) && !text.contains(&key[..16]), "{text}");
}
