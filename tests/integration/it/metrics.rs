//! `/metrics` after real traffic (a success, a fallback across accounts and providers, failures,
//! a stream, a reload): Prometheus' own `promtool check metrics` accepts the scrape, every
//! family has its `# HELP` and `# TYPE`, and the series operators need are there with the
//! counts the traffic implies; quota series name accounts by label, and no key appears.

use std::collections::HashSet;
use std::time::Duration;

use freeway_integration::{Gateway, Opts, Sample, Sim, chat_body, eventually, parse_samples, promtool, sse_data};
use serde_json::json;

const SECRETS: [&str; 3] = ["sk-metrics-p1-aaaa", "sk-metrics-p1-bbbb", "sk-metrics-p2-cccc"];

/// `p1` serves `small` with two labelled accounts, `p2` serves `big`; `chat` falls back from one
/// to the other. Both have limits, so their pools have quota series.
fn fleet(sim: &Sim) -> String {
    let base = sim.base();
    format!(
        "[[routes]]\nmodel = \"chat\"\nfallback_chain = [\"p1/small\", \"p2/big\"]\n\n\
         [[providers]]\nid = \"p1\"\ncomponent = \"openai-compat\"\nbase_url = \"{base}\"\n\
         api_keys = [{{ key = \"{}\", label = \"work\" }}, {{ key = \"{}\", label = \"home\" }}]\n\
         models = [\"small\"]\nlimits = {{ rpm = 1000, rpd = 5000 }}\n\n\
         [[providers]]\nid = \"p2\"\ncomponent = \"openai-compat\"\nbase_url = \"{base}\"\n\
         api_keys = [{{ key = \"{}\", label = \"spare\" }}]\nmodels = [\"big\"]\nlimits = {{ rpm = 1000, tpd = 100000 }}\n\n",
        SECRETS[0], SECRETS[1], SECRETS[2]
    )
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.name == name && s.has(labels)).collect()
}

/// The value of the one series `name{labels...}` (labels may be a subset).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
    found[0].value
}

/// The family a sample belongs to (histograms' `_bucket`, `_sum`, `_count` series).
fn family(name: &str, histograms: &HashSet<String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && histograms.contains(base)
        {
            return base.to_owned();
        }
    }
    name.to_owned()
}

/// Run `promtool check metrics` on `text`; panics with its complaints.
fn promtool_check(promtool: &std::path::Path, text: &str) {
    let (ok, said) = promtool_run(promtool, text);
    assert!(ok && said.trim().is_empty(), "promtool check metrics: {said}\n--- scrape ---\n{text}");
}

/// `promtool check metrics` on `text`: whether it passed, and what it said.
fn promtool_run(promtool: &std::path::Path, text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write the scrape");
    let out = child.wait_with_output().expect("promtool output");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

#[tokio::test]
async fn a_scrape_after_real_traffic_passes_promtool_and_has_the_series_operators_need() {
    let sim = Sim::start().await;
    let providers = fleet(&sim);
    let gw = Gateway::start(&providers).await;

    // a success
    assert_eq!(gw.chat(chat_body("big")).await.status(), 200);
    // a fallback: both accounts of p1 fail, p2 answers
    sim.script(json!([{ "match": { "model": "small" }, "times": 2, "action": { "type": "status", "status": 503,
        "body": { "error": { "message": "overloaded", "type": "server_error" } } } }]))
        .await;
    let r = gw.chat(chat_body("chat")).await;
    assert_eq!(r.status(), 200);
    let route = r.headers()["x-freeway-route"].to_str().unwrap().to_owned();
    assert!(route.contains("provider=p2") && route.contains("attempts=3"), "{route}");
    // a stream
    let mut body = chat_body("big");
    body["stream"] = json!(true);
    let data = sse_data(gw.chat(body).await).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    // failures: a model nobody serves, and a request the provider refuses
    assert_eq!(gw.chat(chat_body("nope")).await.status(), 404);
    sim.script(json!([{ "match": { "model": "big" }, "times": 1, "action": { "type": "status", "status": 400,
        "body": { "error": { "message": "bad field", "type": "invalid_request_error" } } } }]))
        .await;
    assert_eq!(gw.chat(chat_body("big")).await.status(), 400);
    // a reload
    gw.rewrite_config(&format!("# reloaded\n{providers}"), &Opts::default());
    let reloaded = eventually(Duration::from_secs(10), || async {
        let text = gw.get("/metrics").await.text().await.unwrap();
        text.contains("freeway_reloads_total{kind=\"config\",result=\"ok\"} ")
    })
    .await;
    assert!(reloaded, "the configuration reload is counted");
    // the usage writer aggregates off the request path
    let counted = eventually(Duration::from_secs(5), || async {
        let text = gw.get("/metrics").await.text().await.unwrap();
        text.contains("freeway_requests_total{provider=\"p2\",model=\"big\",outcome=\"ok\"} 3")
    })
    .await;
    assert!(counted, "{}", gw.get("/metrics").await.text().await.unwrap());

    let resp = gw.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = resp.text().await.unwrap();

    for secret in SECRETS {
        assert!(!text.contains(secret), "a key leaked into /metrics");
    }
    if let Some(promtool) = promtool() {
        // the checker is live: it refuses what breaks its rules
        let (ok, said) =
            promtool_run(&promtool, "# HELP x_seconds A counter.\n# TYPE x_seconds counter\nx_seconds 1\n");
        assert!(!ok && said.contains("_total"), "{said}");
        promtool_check(&promtool, &text);
    }
    if let Some(dir) = std::env::var_os("FREEWAY_DUMP_METRICS") {
        std::fs::write(std::path::Path::new(&dir).join("metrics.txt"), &text).unwrap();
    }

    // every family is described and typed
    let mut typed = HashSet::new();
    let mut helped = HashSet::new();
    let mut histograms = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            typed.insert(name.to_owned());
            if kind == "histogram" {
                histograms.insert(name.to_owned());
            }
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(!help.trim().is_empty(), "{name} has an empty help");
            helped.insert(name.to_owned());
        }
    }
    let samples = parse_samples(&text);
    for s in &samples {
        let f = family(&s.name, &histograms);
        assert!(typed.contains(&f) && helped.contains(&f), "{} has no # TYPE or # HELP", s.name);
    }

    // requests, by endpoint kind, status class and streaming
    let chat_ok = [("endpoint", "chat_completions"), ("status", "2xx"), ("stream", "false")];
    let inf = [chat_ok.as_slice(), &[("le", "+Inf")]].concat();
    assert!(value(&samples, "freeway_request_duration_seconds_bucket", &inf) >= 2.0);
    assert!(value(&samples, "freeway_request_duration_seconds_count", &chat_ok) >= 2.0);
    let buckets = find(&samples, "freeway_request_duration_seconds_bucket", &chat_ok);
    assert!(buckets.len() > 10, "every bucket is there: {buckets:?}");
    let streamed = [("endpoint", "chat_completions"), ("status", "2xx"), ("stream", "true")];
    assert_eq!(value(&samples, "freeway_request_duration_seconds_count", &streamed), 1.0);
    assert!(value(&samples, "freeway_request_duration_seconds_count", &[("status", "4xx")]) >= 2.0);
    assert!(value(&samples, "freeway_request_duration_seconds_sum", &streamed) > 0.0);
    // time to first token, for the stream
    assert_eq!(value(&samples, "freeway_time_to_first_token_seconds_count", &[("provider", "p2")]), 1.0);
    let ttft_inf = value(&samples, "freeway_time_to_first_token_seconds_bucket", &[("provider", "p2"), ("le", "+Inf")]);
    assert_eq!(ttft_inf, 1.0);
    // upstream latency and attempts per provider
    assert!(value(&samples, "freeway_upstream_duration_seconds_count", &[("provider", "p1")]) >= 2.0);
    assert!(value(&samples, "freeway_upstream_duration_seconds_count", &[("provider", "p2")]) >= 4.0);
    assert_eq!(value(&samples, "freeway_upstream_attempts_total", &[("provider", "p2"), ("outcome", "ok")]), 3.0);
    let p1_failed: f64 = find(&samples, "freeway_upstream_attempts_total", &[("provider", "p1")])
        .iter()
        .filter(|s| s.label("outcome") != Some("ok"))
        .map(|s| s.value)
        .sum();
    assert_eq!(p1_failed, 2.0, "both of p1's accounts failed once");
    let refused = [("provider", "p2"), ("outcome", "upstream_rejected_request")];
    assert_eq!(value(&samples, "freeway_upstream_attempts_total", &refused), 1.0, "the 400, by its error code");
    // the fallbacks: to p1's other account, then to p2
    assert_eq!(value(&samples, "freeway_fallbacks_total", &[("provider", "p1"), ("to", "account")]), 1.0);
    assert_eq!(value(&samples, "freeway_fallbacks_total", &[("provider", "p1"), ("to", "provider")]), 1.0);
    // cooldowns: p1's accounts rest after their 503s
    assert_eq!(value(&samples, "freeway_cooldowns_total", &[("provider", "p1"), ("reason", "upstream")]), 2.0);
    assert!(value(&samples, "freeway_cooldowns_active", &[("provider", "p1")]) <= 2.0);
    assert_eq!(value(&samples, "freeway_cooldowns_active", &[("provider", "p2")]), 0.0);

    // quota per pool and dimension, named by the accounts' labels
    let work_rpm = [("provider", "p1"), ("account", "work"), ("model", "*"), ("dimension", "rpm")];
    assert_eq!(value(&samples, "freeway_quota_limit", &work_rpm), 1000.0);
    // p1's 503s are not charged (the provider did not serve them); p2 served four requests
    assert_eq!(value(&samples, "freeway_quota_remaining", &work_rpm), 1000.0);
    let spare_rpm = [("provider", "p2"), ("account", "spare"), ("dimension", "rpm")];
    let left = value(&samples, "freeway_quota_remaining", &spare_rpm);
    assert!((990.0..=996.0).contains(&left), "p2's pool was used four times: {left}");
    assert_eq!(value(&samples, "freeway_quota_limit", &[("account", "home"), ("dimension", "rpd")]), 5000.0);
    let spare_tpd = [("provider", "p2"), ("account", "spare"), ("dimension", "tpd")];
    assert_eq!(value(&samples, "freeway_quota_limit", &spare_tpd), 100_000.0);
    assert!(value(&samples, "freeway_quota_remaining", &spare_tpd) < 100_000.0, "tokens were counted");
    for s in find(&samples, "freeway_quota_limit", &[]) {
        let account = s.label("account").unwrap_or_default();
        assert!(["work", "home", "spare"].contains(&account), "{s:?}");
    }

    // guest calls per component and function: one plan per attempt (six were sent)
    let plans = [("component", "openai-compat"), ("function", "chat")];
    assert_eq!(value(&samples, "freeway_guest_call_duration_seconds_count", &plans), 6.0);
    let plans_inf = [plans.as_slice(), &[("le", "+Inf")]].concat();
    assert_eq!(value(&samples, "freeway_guest_call_duration_seconds_bucket", &plans_inf), 6.0);
    assert!(find(&samples, "freeway_guest_failures_total", &[]).iter().all(|s| s.value == 0.0));

    // reloads and the build
    assert!(value(&samples, "freeway_reloads_total", &[("kind", "config"), ("result", "ok")]) >= 1.0);
    let build = find(&samples, "freeway_build_info", &[]);
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].label("version"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(build[0].label("wit"), Some(freeway::bindings::WIT_VERSION));
    assert_eq!(build[0].value, 1.0);

    // the names that were there before the registry
    assert_eq!(
        value(&samples, "freeway_requests_total", &[("provider", "p2"), ("model", "big"), ("outcome", "ok")]),
        3.0
    );
    let completion = [("provider", "p2"), ("model", "big"), ("outcome", "ok"), ("kind", "completion")];
    assert_eq!(value(&samples, "freeway_tokens_total", &completion), 36.0);
    for name in [
        "freeway_usage_records_dropped_total",
        "freeway_usage_records_stored_total",
        "freeway_usage_store_failures_total",
        "freeway_usage_backlog",
        "freeway_usage_writer_restarts_total",
        "freeway_guest_instances_live",
        "freeway_guest_instances_idle",
        "freeway_requests_in_flight",
        "freeway_config_generation",
    ] {
        assert_eq!(find(&samples, name, &[]).len(), 1, "{name}");
    }
    assert!(value(&samples, "freeway_config_generation", &[]) >= 2.0, "a reload publishes a new snapshot");
}
