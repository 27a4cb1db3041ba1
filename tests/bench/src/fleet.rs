//! `freeway-bench --fleet`: a free fleet under load, through Freeway.
//!
//! The simulator runs three providers with two accounts (quota pools) each, every account
//! limited to `RPM` requests per rolling minute, `RPD` per day and `TPM` tokens per minute
//! (enforced by the simulator with real 429s), with `LATENCY_MS` of latency and 2 % random 500s;
//! provider `b` answers 503 to everything from `OUTAGE.0` to `OUTAGE.1` seconds into each run.
//! Freeway is configured with the same limits. For each load level (a fraction of the fleet's
//! capacity, `6 × RPM` per minute) requests are sent open-loop at a fixed rate for `RUN` and the
//! report says: the client-visible success rate, upstream 429s per 1,000 requests, goodput as a
//! fraction of capacity, p50/p99 latency, and whether every rejection was a 429 with a
//! Retry-After — and, for the first rejection, probes one second before the Retry-After it gave
//! (must still be refused: it is not more than a second late) and just after it (must be
//! served: it is not early).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::procs::{Proc, root};

const PROVIDERS: [&str; 3] = ["a", "b", "c"];
const POOLS_PER_PROVIDER: usize = 2;
const RPM: u64 = 40;
const RPD: u64 = 2_000;
const TPM: u64 = 4_000;
const LATENCY_MS: u64 = 40;
const ERROR_PER_MILLE: u32 = 20;
const RUN: Duration = Duration::from_secs(60);
const OUTAGE: (u64, u64) = (20, 35);
const BODY: &str = r#"{"model":"fleet-model","messages":[{"role":"user","content":"Say one short thing about the sea."}],"max_tokens":20}"#;

/// The fleet's capacity over one run: every pool's requests per minute.
fn capacity() -> u64 {
    PROVIDERS.len() as u64 * POOLS_PER_PROVIDER as u64 * RPM
}

fn key(provider: &str, pool: usize) -> String {
    format!("sk-fleet-{provider}{pool}")
}

fn sim_config() -> Value {
    let upstreams: Vec<Value> = PROVIDERS
        .iter()
        .map(|p| {
            json!({
                "prefix": format!("/{p}/v1"),
                "keys": (1..=POOLS_PER_PROVIDER).map(|i| key(p, i)).collect::<Vec<_>>(),
                "models": ["fleet-model"],
                "latency_ms": LATENCY_MS,
                "reply_tokens": 20,
                "error_per_mille": ERROR_PER_MILLE,
                "limits": { "rpm": RPM, "rpd": RPD, "tpm": TPM },
            })
        })
        .collect();
    json!({ "record": false, "upstreams": upstreams })
}

fn gateway_config(dir: &std::path::Path, sim_port: u16) -> String {
    let mut providers = String::new();
    for p in PROVIDERS {
        let keys: Vec<String> = (1..=POOLS_PER_PROVIDER).map(|i| format!("\"{}\"", key(p, i))).collect();
        providers.push_str(&format!(
            "[[providers]]\nid = \"{p}\"\ncomponent = \"openai-compat\"\nbase_url = \"http://127.0.0.1:{sim_port}/{p}/v1\"\n\
             api_keys = [{}]\nmodels = [\"fleet-model\"]\nlimits = {{ rpm = {RPM}, rpd = {RPD}, tpm = {TPM}, scope = \"key\" }}\n\n",
            keys.join(", ")
        ));
    }
    format!(
        "[runtime]\nproviders_dir = \"{root}/providers\"\npolicies_dir = \"{dir}/policies\"\ncache_dir = \"{dir}/component-cache\"\nwatch = false\n\n\
         [discovery]\ninterval_secs = 0\nstate_file = \"{dir}/models.json\"\n\n\
         [storage]\nurl = \"sqlite://{dir}/freeway.db\"\n\n[quota]\nstate_file = \"{dir}/quota.json\"\n\n\
         [upstream]\negress_hosts = [\"127.0.0.1\"]\nmax_attempts = 6\n\n\
         [vault]\npath = \"{dir}/vault.json\"\nkey_file = \"{dir}/master.key\"\naudit_log = \"{dir}/audit.log\"\nhealth_file = \"{dir}/health.json\"\n\n\
         {providers}",
        root = root().display(),
        dir = dir.display(),
    )
}

/// One client request's fate.
struct Outcome {
    status: u16,
    latency: Duration,
    /// when the answer came, from the start of the run
    at: Duration,
    retry_after_ms: Option<u64>,
    retry_after_s: Option<u64>,
}

async fn send(client: &reqwest::Client, port: u16, start: Instant) -> Outcome {
    let t = Instant::now();
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(BODY)
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let header = |r: &reqwest::Response, name: &str| {
        r.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok())
    };
    match r {
        Ok(r) => {
            let status = r.status().as_u16();
            let (retry_after_ms, retry_after_s) = (header(&r, "retry-after-ms"), header(&r, "retry-after"));
            let _ = r.bytes().await;
            Outcome { status, latency: t.elapsed(), at: start.elapsed(), retry_after_ms, retry_after_s }
        }
        Err(_) => {
            Outcome { status: 0, latency: t.elapsed(), at: start.elapsed(), retry_after_ms: None, retry_after_s: None }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn sim_429s(client: &reqwest::Client, port: u16) -> u64 {
    let stats: Value = match client.get(format!("http://127.0.0.1:{port}/_sim/stats")).send().await {
        Ok(r) => r.bytes().await.ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default(),
        Err(_) => Value::Null,
    };
    stats["by_status"]["429"].as_u64().unwrap_or(0)
}

/// One load level: fresh simulator and gateway, `factor` × capacity over `RUN`.
#[expect(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
async fn level(factor: f64, cores: &str) -> Result<Value, String> {
    let dir = root().join("target/bench/fleet");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policies")).map_err(|e| e.to_string())?;
    let (sim, gw) = Proc::sim_and_gateway(cores, &dir, &sim_config(), |port| gateway_config(&dir, port))?;
    let client =
        reqwest::Client::builder().no_proxy().pool_max_idle_per_host(256).build().map_err(|e| e.to_string())?;
    let total = (capacity() as f64 * factor * RUN.as_secs_f64() / 60.0).round() as u64;
    let interval = RUN.div_f64(total as f64);
    println!(
        "\nfleet at {:.0} % of capacity: {total} requests over {} s ({:.1}/s); capacity {} requests/min ({} pools x RPM {RPM})",
        factor * 100.0,
        RUN.as_secs(),
        total as f64 / RUN.as_secs_f64(),
        capacity(),
        PROVIDERS.len() * POOLS_PER_PROVIDER
    );

    let start = Instant::now();
    let (sim_port, gw_port) = (sim.port, gw.port);
    let outage = {
        let client = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(OUTAGE.0)).await;
            let rule = json!({ "rules": [{ "match": { "prefix": "/b/v1" },
                "action": { "type": "status", "status": 503,
                            "body": { "error": { "message": "Service temporarily unavailable", "type": "server_error" } } } }] });
            let _ = client
                .post(format!("http://127.0.0.1:{sim_port}/_sim/script"))
                .header("content-type", "application/json")
                .body(rule.to_string())
                .send()
                .await;
            tokio::time::sleep(Duration::from_secs(OUTAGE.1 - OUTAGE.0)).await;
            let _ = client.delete(format!("http://127.0.0.1:{sim_port}/_sim/script")).send().await;
        })
    };
    // is the first Retry-After honest? probe one second before it (must still be refused: it is
    // not more than a second late) and just after it (must be served: it is not early)
    let (first_429, mut first_429_rx) = tokio::sync::mpsc::unbounded_channel::<(Duration, u64)>();
    let probe = {
        let client = client.clone();
        tokio::spawn(async move {
            let Some((at, ms)) = first_429_rx.recv().await else { return Value::Null };
            let due = at + Duration::from_millis(ms);
            let before = due.saturating_sub(Duration::from_secs(1));
            let mut early_probe = None;
            if before > start.elapsed() {
                tokio::time::sleep(before - start.elapsed()).await;
                early_probe = Some(send(&client, gw_port, start).await.status);
            }
            let at_due = due + Duration::from_millis(50);
            if at_due > start.elapsed() {
                tokio::time::sleep(at_due - start.elapsed()).await;
            }
            let due_probe = send(&client, gw_port, start).await.status;
            json!({
                "refused_at_s": at.as_secs_f64(),
                "retry_after_ms": ms,
                "one_second_before": early_probe,
                "at_retry_after": due_probe,
                "not_more_than_a_second_late": early_probe.is_none_or(|s| s == 429),
                "not_early": due_probe == 200,
            })
        })
    };
    let mut tasks = Vec::with_capacity(total as usize);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..total {
        tick.tick().await;
        let client = client.clone();
        let first_429 = first_429.clone();
        tasks.push(tokio::spawn(async move {
            let o = send(&client, gw_port, start).await;
            if o.status == 429
                && let Some(ms) = o.retry_after_ms
            {
                let _ = first_429.send((o.at, ms));
            }
            o
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(o) = t.await {
            outcomes.push(o);
        }
    }
    let _ = outage.await;
    drop(first_429);

    let ok: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == 200).collect();
    let rejected: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != 200).collect();
    let honest_429s = rejected
        .iter()
        .filter(|o| {
            o.status == 429 && o.retry_after_s.is_some_and(|s| (1..=61).contains(&s)) && o.retry_after_ms.is_some()
        })
        .count();
    let upstream_429 = sim_429s(&client, sim_port).await;
    let mut lat: Vec<Duration> = ok.iter().map(|o| o.latency).collect();
    lat.sort();
    let goodput = ok.len() as f64 / capacity() as f64;
    let success = ok.len() as f64 / outcomes.len().max(1) as f64;
    let per_1000 = upstream_429 as f64 * 1000.0 / outcomes.len().max(1) as f64;

    let probe = probe.await.unwrap_or(Value::Null);
    drop(gw);
    drop(sim);

    let other: Vec<u16> = rejected.iter().filter(|o| o.status != 429).map(|o| o.status).collect();
    println!("  client-visible success       {:>7.2} % ({} of {})", success * 100.0, ok.len(), outcomes.len());
    println!("  goodput / capacity           {:>7.1} % ({} of {})", goodput * 100.0, ok.len(), capacity());
    println!("  upstream 429s per 1,000      {per_1000:>7.1} ({upstream_429} in all)");
    println!(
        "  latency p50 / p99 (ms)       {:>7.1} / {:.1}",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "  rejections                   {:>7} ({} were 429 with Retry-After; other statuses: {other:?})",
        rejected.len(),
        honest_429s
    );
    if !probe.is_null() {
        println!("  last Retry-After probe       {probe}");
    }
    Ok(json!({
        "load_factor": factor,
        "requests": outcomes.len(),
        "served": ok.len(),
        "success_rate": success,
        "goodput_of_capacity": goodput,
        "upstream_429_per_1000": per_1000,
        "latency_ms": { "p50": percentile(&lat, 0.5).as_secs_f64() * 1e3, "p99": percentile(&lat, 0.99).as_secs_f64() * 1e3 },
        "rejected": rejected.len(),
        "rejected_as_429_with_retry_after": honest_429s,
        "rejected_other_statuses": other,
        "retry_after_probe": probe,
    }))
}

/// Both load levels; the figures, also written to `target/bench/fleet.json`.
pub async fn run() -> Result<Value, String> {
    let cores = format!("0-{}", std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1));
    println!(
        "Fleet benchmark: {} providers x {POOLS_PER_PROVIDER} pools, RPM {RPM} / RPD {RPD} / TPM {TPM} each, {LATENCY_MS} ms latency, \
         {:.0} % random 500s, provider b down from {} s to {} s",
        PROVIDERS.len(),
        f64::from(ERROR_PER_MILLE) / 10.0,
        OUTAGE.0,
        OUTAGE.1
    );
    let low = level(0.8, &cores).await?;
    let high = level(1.2, &cores).await?;
    let spread = crate::spread::run(&cores).await?;
    Ok(json!({ "at_80_percent": low, "at_120_percent": high, "daily_spread": spread }))
}
