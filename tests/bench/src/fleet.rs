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
//! served: it is not early). Those probes may not wait (`x-freeway-max-wait-ms: 0`).
//!
//! The outage scenario: 80 % of capacity for `OUTAGE_RUN`, provider `b` down (503s) for a minute
//! of it, once with waiting off (`[queue] max_wait_ms = 0`), once with the default bound and once
//! with a 30 s bound: the client-visible refusals of each, and the latency waiting adds.

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
/// The outage scenario: a two-minute run with `b` down for its middle minute.
const OUTAGE_RUN: Duration = Duration::from_secs(120);
const LONG_OUTAGE: (u64, u64) = (30, 90);
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

/// One run's shape: how long, when `b` is down, and the gateway's `[queue]` lines.
struct Scenario {
    run: Duration,
    outage: (u64, u64),
    queue: &'static str,
}

const STANDARD: Scenario = Scenario { run: RUN, outage: OUTAGE, queue: "" };

fn gateway_config(dir: &std::path::Path, sim_port: u16, queue: &str) -> String {
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
         [upstream]\negress_hosts = [\"127.0.0.1\"]\nmax_attempts = 6\n\n[queue]\n{queue}\n\n\
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
    /// `x-freeway-waited-ms`: the time it waited in the gateway's queue
    waited_ms: Option<u64>,
}

/// Send one request; `may_wait` false: with `x-freeway-max-wait-ms: 0`.
async fn send(client: &reqwest::Client, port: u16, start: Instant, may_wait: bool) -> Outcome {
    let t = Instant::now();
    let mut req = client
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(BODY)
        .timeout(Duration::from_secs(75));
    if !may_wait {
        req = req.header("x-freeway-max-wait-ms", "0");
    }
    let r = req.send().await;
    let header = |r: &reqwest::Response, name: &str| {
        r.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok())
    };
    match r {
        Ok(r) => {
            let status = r.status().as_u16();
            let (retry_after_ms, retry_after_s) = (header(&r, "retry-after-ms"), header(&r, "retry-after"));
            let waited_ms = header(&r, "x-freeway-waited-ms");
            let _ = r.bytes().await;
            Outcome { status, latency: t.elapsed(), at: start.elapsed(), retry_after_ms, retry_after_s, waited_ms }
        }
        Err(_) => Outcome {
            status: 0,
            latency: t.elapsed(),
            at: start.elapsed(),
            retry_after_ms: None,
            retry_after_s: None,
            waited_ms: None,
        },
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
async fn level(factor: f64, cores: &str, scenario: &Scenario) -> Result<Value, String> {
    let Scenario { run, outage: down, queue } = *scenario;
    let dir = root().join("target/bench/fleet");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policies")).map_err(|e| e.to_string())?;
    let (sim, gw) = Proc::sim_and_gateway(cores, &dir, &sim_config(), |port| gateway_config(&dir, port, queue))?;
    let client =
        reqwest::Client::builder().no_proxy().pool_max_idle_per_host(256).build().map_err(|e| e.to_string())?;
    let total = (capacity() as f64 * factor * run.as_secs_f64() / 60.0).round() as u64;
    let interval = run.div_f64(total as f64);
    println!(
        "\nfleet at {:.0} % of capacity: {total} requests over {} s ({:.1}/s); capacity {} requests/min ({} pools x RPM {RPM}); b down from {} s to {} s; [queue] {}",
        factor * 100.0,
        run.as_secs(),
        total as f64 / run.as_secs_f64(),
        capacity(),
        PROVIDERS.len() * POOLS_PER_PROVIDER,
        down.0,
        down.1,
        if queue.is_empty() { "defaults" } else { queue }
    );

    let start = Instant::now();
    let (sim_port, gw_port) = (sim.port, gw.port);
    let outage = {
        let client = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(down.0)).await;
            let rule = json!({ "rules": [{ "match": { "prefix": "/b/v1" },
                "action": { "type": "status", "status": 503,
                            "body": { "error": { "message": "Service temporarily unavailable", "type": "server_error" } } } }] });
            let _ = client
                .post(format!("http://127.0.0.1:{sim_port}/_sim/script"))
                .header("content-type", "application/json")
                .body(rule.to_string())
                .send()
                .await;
            tokio::time::sleep(Duration::from_secs(down.1.saturating_sub(down.0))).await;
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
                early_probe = Some(send(&client, gw_port, start, false).await.status);
            }
            let at_due = due + Duration::from_millis(50);
            if at_due > start.elapsed() {
                tokio::time::sleep(at_due - start.elapsed()).await;
            }
            let due_probe = send(&client, gw_port, start, false).await.status;
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
            let o = send(&client, gw_port, start, true).await;
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
    let mut waited: Vec<Duration> = outcomes.iter().filter_map(|o| o.waited_ms).map(Duration::from_millis).collect();
    waited.sort();
    let refused_429 = rejected.iter().filter(|o| o.status == 429).count();
    // the fleet's capacity over the run (a run of two minutes has two minutes' worth)
    let run_capacity = (capacity() as f64 * run.as_secs_f64() / 60.0).round() as u64;
    let goodput = ok.len() as f64 / run_capacity.max(1) as f64;
    let success = ok.len() as f64 / outcomes.len().max(1) as f64;
    let per_1000 = upstream_429 as f64 * 1000.0 / outcomes.len().max(1) as f64;

    let probe = probe.await.unwrap_or(Value::Null);
    drop(gw);
    drop(sim);

    let other: Vec<u16> = rejected.iter().filter(|o| o.status != 429).map(|o| o.status).collect();
    println!("  client-visible success       {:>7.2} % ({} of {})", success * 100.0, ok.len(), outcomes.len());
    println!("  goodput / capacity           {:>7.1} % ({} of {})", goodput * 100.0, ok.len(), run_capacity);
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
    println!(
        "  waited in the queue          {:>7} requests (p50 / p99 {:.0} / {:.0} ms)",
        waited.len(),
        percentile(&waited, 0.5).as_secs_f64() * 1e3,
        percentile(&waited, 0.99).as_secs_f64() * 1e3
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
        "refused_429": refused_429,
        "waited": { "requests": waited.len(), "p50_ms": percentile(&waited, 0.5).as_secs_f64() * 1e3, "p99_ms": percentile(&waited, 0.99).as_secs_f64() * 1e3 },
        "queue": queue,
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
    let low = level(0.8, &cores, &STANDARD).await?;
    let high = level(1.2, &cores, &STANDARD).await?;
    let outage = outage(&cores).await?;
    let spread = crate::spread::run(&cores).await?;
    Ok(json!({ "at_80_percent": low, "at_120_percent": high, "outage": outage, "daily_spread": spread }))
}

/// 80 % of capacity with `b` down for a minute: waiting off, the default bound, a 30 s bound;
/// the refusals of each and the latency waiting added (against waiting off).
async fn outage(cores: &str) -> Result<Value, String> {
    println!(
        "\nOutage: 80 % of capacity for {} s, provider b down from {} s to {} s; waiting off, default, 30 s",
        OUTAGE_RUN.as_secs(),
        LONG_OUTAGE.0,
        LONG_OUTAGE.1
    );
    let mut variants = Vec::new();
    for (name, queue) in [("off", "max_wait_ms = 0"), ("default", ""), ("30s", "max_wait_ms = 30000")] {
        let r = level(0.8, cores, &Scenario { run: OUTAGE_RUN, outage: LONG_OUTAGE, queue }).await?;
        variants.push((name, r));
    }
    let p = |v: &Value, q: &str| v["latency_ms"][q].as_f64().unwrap_or(0.0);
    let off = variants.first().map(|(_, v)| v.clone()).unwrap_or(Value::Null);
    println!("\n  variant    refused (429)   served   latency p50 / p99 (ms)   added p50 / p99 (ms)");
    let mut out = serde_json::Map::new();
    for (name, v) in variants {
        let added = json!({ "p50": p(&v, "p50") - p(&off, "p50"), "p99": p(&v, "p99") - p(&off, "p99") });
        println!(
            "  {name:<10} {:>13}   {:>6}   {:>10.1} / {:<10.1}   {:>8.1} / {:.1}",
            v["refused_429"].as_u64().unwrap_or(0),
            v["served"].as_u64().unwrap_or(0),
            p(&v, "p50"),
            p(&v, "p99"),
            added["p50"].as_f64().unwrap_or(0.0),
            added["p99"].as_f64().unwrap_or(0.0)
        );
        let mut v = v;
        v["added_latency_ms"] = added;
        out.insert(name.to_owned(), v);
    }
    Ok(Value::Object(out))
}
