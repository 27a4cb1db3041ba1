//! `GET /admin/stats` and `freeway stats`: the requests made show up per provider, model, account
//! and client, a 429 everywhere is counted under its error class, the quota pool's busiest minute
//! is measured against its limit, and the answer matches the OpenAPI document.

use std::time::Duration;

use freeway_integration::{Gateway, Opts, Sim, chat_body, eventually, freeway_bin, http, provider};
use serde_json::{Value, json};

use crate::admin_api::assert_matches;

const ADMIN: &str = "fw-stats-admin-key";

async fn stats(gw: &Gateway, since: &str) -> reqwest::Response {
    http().get(gw.url(&format!("/admin/stats?since={since}"))).bearer_auth(ADMIN).send().await.unwrap()
}

fn group<'a>(groups: &'a Value, key: &str) -> &'a Value {
    groups.as_array().unwrap().iter().find(|g| g["key"] == key).unwrap_or_else(|| panic!("no {key} in {groups:#}"))
}

#[tokio::test]
async fn stats_count_requests_errors_and_the_busiest_quota_window() {
    let sim = Sim::start().await;
    let providers = format!(
        "{}limits = {{ rpm = 30 }}\n\n{}",
        provider("steady", &sim.base(), &["sk-steady-9"], &["m"]),
        provider("limited", &sim.base(), &["sk-limited-9"], &["r"])
    );
    let gw = Gateway::start_opts(&providers, Opts { server: format!("admin_key = \"{ADMIN}\""), ..Default::default() })
        .await;
    for _ in 0..3 {
        assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
    }
    sim.script(json!([{"match": {"model": "r"}, "times": 1,
        "action": {"type": "rate_limit", "retry_after_s": 30, "window": "minute"}}]))
        .await;
    assert_eq!(gw.chat(chat_body("r")).await.status(), 429);

    // usage is written off the request path
    let stored = eventually(Duration::from_secs(10), || async {
        stats(&gw, "1h").await.json::<Value>().await.unwrap()["total"]["requests"] == 4
    })
    .await;
    let r: Value = stats(&gw, "1h").await.json().await.unwrap();
    assert!(stored, "{r:#}");
    assert_matches("Report", &r);
    assert_eq!((r["total"]["ok"].as_u64(), r["truncated"].as_bool()), (Some(3), Some(false)));
    assert_eq!(r["hourly"].as_array().unwrap().iter().map(|h| h["requests"].as_u64().unwrap()).sum::<u64>(), 4);

    let steady = group(&r["by_provider"], "steady");
    assert_eq!((steady["requests"].as_u64(), steady["success_rate"].as_f64()), (Some(3), Some(1.0)));
    assert!(steady["latency_p95_ms"].as_u64().is_some() && steady["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(group(&r["by_model"], "steady/m")["requests"], 3);
    assert_eq!(group(&r["by_account"], "steady/steady#1")["requests"], 3);
    assert_eq!(group(&r["by_client"], "anyone")["requests"], 4);
    assert_eq!(group(&r["by_provider"], "limited")["success_rate"], 0.0);

    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0]["error"].as_str(), errors[0]["requests"].as_u64()), (Some("upstream_rate_limited"), Some(1)));

    let rpm = r["quota"].as_array().unwrap().iter().find(|q| q["provider"] == "steady" && q["name"] == "rpm").unwrap();
    assert_eq!(rpm["limit"], 30);
    // three requests in one clock minute, or split by a minute that turned during the test
    let peak = rpm["peak"].as_u64().unwrap();
    assert!((2..=3).contains(&peak), "{rpm}");
    assert!((rpm["share"].as_f64().unwrap() - peak as f64 / 30.0).abs() < 1e-9);

    // a period that is not one is the client's mistake
    let bad = stats(&gw, "fortnight").await;
    assert_eq!(bad.status(), 400);
    let e: Value = bad.json().await.unwrap();
    assert_eq!(e["error"]["param"], "since");
    assert_matches("Error", &e);
    let r = http().get(gw.url("/admin/stats")).send().await.unwrap();
    assert_eq!(r.status(), 401, "behind the admin key");

    // the same through the CLI
    let url = format!("http://{}", gw.addr);
    let run = |args: Vec<String>| {
        let mut cmd = tokio::process::Command::from(freeway_bin());
        cmd.arg("stats").args(args).env("FREEWAY_ADMIN_KEY", ADMIN);
        async move { cmd.output().await.unwrap() }
    };
    let out = run(vec!["--json".into(), "--since".into(), "1h".into(), "--url".into(), url.clone()]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total"]["requests"], 4);
    let out = run(vec!["--url".into(), url.clone()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("4 requests, 75.0 % succeeded"), "{text}");
    assert!(text.contains("upstream_rate_limited") && text.contains("RPM 30"), "{text}");
    let out = run(vec!["--since".into(), "soon".into(), "--url".into(), url]).await;
    assert_eq!(out.status.code(), Some(2));
}
