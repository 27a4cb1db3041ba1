//! `freeway-bench --soak [--minutes N] [--rate R]`: does the gateway stay the same size over time?
//!
//! The release gateway over the release simulator for N minutes (default 10) of mixed traffic,
//! R requests a second (default 300, one in four a stream), with the provider component
//! replaced and the configuration rewritten every 30 s. Every 10 s it samples the gateway's
//! resident memory (`VmRSS`), its open file descriptors (`/proc/PID/fd`) and, when `/metrics`
//! has them, the guest instance gauges (`freeway_guest_instances_live` / `_idle`), and prints a
//! row. After the first minute's warm-up the figures may grow by at most `RSS_GROWTH` and
//! `FD_GROWTH`; more, a failed request or a reload that never took effect exits non-zero.
//! Results also go to `target/bench/soak.json`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::procs::{Proc, root};

/// Allowed resident memory growth from the end of the warm-up to the end (fraction).
const RSS_GROWTH: f64 = 0.25;
/// Allowed growth in open file descriptors over the same span.
const FD_GROWTH: i64 = 16;
const WARM_UP: Duration = Duration::from_secs(60);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const RELOAD_EVERY: Duration = Duration::from_secs(30);
const WORKERS: u64 = 16;

const JSON_BODY: &str = r#"{"model":"soak-model","messages":[{"role":"user","content":"Write one sentence about the sea, please."}],"max_tokens":12}"#;
const STREAM_BODY: &str = r#"{"model":"soak-model","stream":true,"messages":[{"role":"user","content":"Write one sentence about the sea, please."}],"max_tokens":12}"#;

pub struct Opts {
    pub minutes: f64,
    pub rate: u64,
}

fn sim_config() -> Value {
    json!({ "record": false, "upstreams": [
        { "prefix": "/v1", "keys": ["sk-soak"], "models": ["soak-model"], "reply_tokens": 12, "token_delay_ms": 5, "latency_ms": 2 },
    ] })
}

/// The gateway's configuration; `round` varies a harmless detail (an extra model) so each
/// rewrite is a real change the gateway has to apply.
fn gateway_config(dir: &std::path::Path, sim_port: u16, round: u64) -> String {
    let extra = if round % 2 == 1 { format!(", \"soak-extra-{round}\"") } else { String::new() };
    // the usage database sits outside the watched folders (the data folder is watched for the
    // vault): a commit every 50 ms there would keep the watcher from ever settling, and no
    // reload would happen while traffic flows (see tests/integration/it/hot_swap.rs)
    format!(
        "[runtime]\nproviders_dir = \"{dir}/providers\"\npolicies_dir = \"{dir}/policies\"\ncache_dir = \"{dir}/component-cache\"\n\n\
         [discovery]\ninterval_secs = 0\nstate_file = \"{dir}/data/models.json\"\n\n\
         [storage]\nurl = \"sqlite://{dir}/usage/freeway.db\"\n\n[quota]\nstate_file = \"{dir}/data/quota.json\"\n\n\
         [routing]\nstats_file = \"{dir}/data/route-stats.json\"\n\n\
         [upstream]\negress_hosts = [\"127.0.0.1\"]\n\n\
         [vault]\npath = \"{dir}/data/vault.json\"\nkey_file = \"{dir}/data/master.key\"\naudit_log = \"{dir}/data/audit.log\"\nhealth_file = \"{dir}/data/health.json\"\n\n\
         [[providers]]\nid = \"sim\"\ncomponent = \"openai-compat\"\nbase_url = \"http://127.0.0.1:{sim_port}/v1\"\n\
         api_keys = [\"sk-soak\"]\nmodels = [\"soak-model\"{extra}]\n",
        dir = dir.display(),
    )
}

/// The same component with a custom section appended: equivalent code, another hash.
fn with_custom_section(wasm: &[u8], payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"freeway-soak";
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Replace `dest` in one step (write aside, rename), as an operator's deploy would.
fn replace(dest: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = dest.with_extension("incoming");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dest).map_err(|e| format!("{}: {e}", dest.display()))
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    failed: AtomicU64,
    /// the first few failure messages
    first_failures: std::sync::Mutex<Vec<String>>,
}

impl Counters {
    fn failure(&self, message: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut v) = self.first_failures.lock()
            && v.len() < 10
        {
            v.push(message);
        }
    }
}

/// One client: a request every `WORKERS / rate` seconds, one in four a stream read to its end.
async fn client(worker: u64, port: u16, rate: u64, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    let Ok(http) = reqwest::Client::builder().no_proxy().build() else { return };
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let mut tick = tokio::time::interval(Duration::from_secs_f64(WORKERS as f64 / rate.max(1) as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n = worker;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        n += 1;
        let stream = n.is_multiple_of(4);
        let sent = http
            .post(&url)
            .header("content-type", "application/json")
            .body(if stream { STREAM_BODY } else { JSON_BODY })
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let outcome = match sent {
            Ok(r) if r.status().is_success() => match r.text().await {
                Ok(text) if !stream || text.trim_end().ends_with("data: [DONE]") => Ok(()),
                Ok(text) => Err(format!("stream without [DONE]: ...{}", &text[text.len().saturating_sub(120)..])),
                Err(e) => Err(format!("body: {e}")),
            },
            Ok(r) => Err(format!("{}: {}", r.status(), r.text().await.unwrap_or_default())),
            Err(e) => Err(format!("transport: {e}")),
        };
        match outcome {
            Ok(()) => {
                counters.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => counters.failure(e),
        }
    }
}

fn open_fds(pid: u32) -> i64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(-1, |d| d.count() as i64)
}

/// The sum of every sample of `name` (with or without labels); `None` when there is none.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.trim().parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

async fn generation(http: &reqwest::Client, port: u16) -> Option<u64> {
    let r = http.get(format!("http://127.0.0.1:{port}/ready")).send().await.ok()?;
    let text = r.text().await.ok()?;
    serde_json::from_str::<Value>(&text).ok()?["generation"].as_u64()
}

/// Wait (at most 15 s) for the generation to pass `before`.
async fn applied(http: &reqwest::Client, port: u16, before: u64) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if generation(http, port).await.is_some_and(|g| g > before) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

struct Sample {
    at: Duration,
    ok: u64,
    failed: u64,
    rss_kib: u64,
    fds: i64,
    live: Option<f64>,
    idle: Option<f64>,
    generation: u64,
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
}

/// Take a sample, print its row and keep it.
async fn sample(http: &reqwest::Client, gw: &Proc, counters: &Counters, at: Duration, samples: &mut Vec<Sample>) {
    let metrics = match http.get(format!("http://127.0.0.1:{}/metrics", gw.port)).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let s = Sample {
        at,
        ok: counters.ok.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        rss_kib: gw.rss_kib(),
        fds: open_fds(gw.pid()),
        live: gauge(&metrics, "freeway_guest_instances_live"),
        idle: gauge(&metrics, "freeway_guest_instances_idle"),
        generation: generation(http, gw.port).await.unwrap_or(0),
    };
    let (prev_ok, prev_at) = samples.last().map_or((0, Duration::ZERO), |p| (p.ok, p.at));
    let rate = (s.ok - prev_ok) as f64 / (s.at - prev_at).as_secs_f64().max(0.001);
    println!(
        "{:>6.0} {:>10} {:>7} {:>8.0} {:>9.1} {:>5} {:>10} {:>10} {:>4}",
        s.at.as_secs_f64(),
        s.ok,
        s.failed,
        rate,
        s.rss_kib as f64 / 1024.0,
        s.fds,
        opt(s.live),
        opt(s.idle),
        s.generation
    );
    samples.push(s);
}

pub async fn run(opts: Opts, cores: &str) -> Result<bool, String> {
    let dir = root().join("target/bench/soak");
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["providers", "policies", "data", "usage"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
    }
    let original = std::fs::read(root().join("providers/openai-compat.wasm"))
        .map_err(|e| format!("providers/openai-compat.wasm: {e} (run `cargo xtask build --release`)"))?;
    let variant = with_custom_section(&original, b"soak: same code, other bytes");
    let component = dir.join("providers/openai-compat.wasm");
    replace(&component, &original)?;
    let config_path = dir.join("freeway.toml");
    let (sim, gw) = Proc::sim_and_gateway(cores, &dir, &sim_config(), |port| gateway_config(&dir, port, 0))?;
    let sim_port = sim.port;
    let pid = gw.pid();
    let http = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
    let duration = Duration::from_secs_f64(opts.minutes * 60.0);
    println!(
        "\nsoak: {:.1} min, {} requests/s (one in four a stream), a component and a configuration reload every {} s; gateway pid {pid}",
        opts.minutes,
        opts.rate,
        RELOAD_EVERY.as_secs()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let clients: Vec<_> =
        (0..WORKERS).map(|w| tokio::spawn(client(w, gw.port, opts.rate, stop.clone(), counters.clone()))).collect();

    println!(
        "{:>6} {:>10} {:>7} {:>8} {:>9} {:>5} {:>10} {:>10} {:>4}",
        "t (s)", "requests", "failed", "req/s", "RSS MiB", "fds", "guest live", "guest idle", "gen"
    );
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = SAMPLE_EVERY;
    let mut next_reload = RELOAD_EVERY;
    let (mut reloads, mut reloads_missed, mut reload_times) = (0u64, 0u64, Vec::new());
    let mut round = 0u64;
    while start.elapsed() < duration {
        let now = start.elapsed();
        if now >= next_reload {
            next_reload += RELOAD_EVERY;
            round += 1;
            // the component, then the configuration, each waited for before the next
            let before = generation(&http, gw.port).await.unwrap_or(0);
            replace(&component, if round % 2 == 1 { &variant } else { &original })?;
            match applied(&http, gw.port, before).await {
                Some(t) => {
                    reloads += 1;
                    reload_times.push(t);
                }
                None => reloads_missed += 1,
            }
            let before = generation(&http, gw.port).await.unwrap_or(0);
            replace(&config_path, gateway_config(&dir, sim_port, round).as_bytes())?;
            match applied(&http, gw.port, before).await {
                Some(t) => {
                    reloads += 1;
                    reload_times.push(t);
                }
                None => reloads_missed += 1,
            }
            continue;
        }
        if now >= next_sample {
            next_sample += SAMPLE_EVERY;
            sample(&http, &gw, &counters, now, &mut samples).await;
            continue;
        }
        let wait = next_sample.min(next_reload).saturating_sub(now).min(duration.saturating_sub(now));
        tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
    }
    // the end figures, taken at the end
    sample(&http, &gw, &counters, start.elapsed(), &mut samples).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    drop(gw);
    drop(sim);

    // the verdict: the first sample after the warm-up against the last
    let Some(last) = samples.last() else { return Err("the soak ended before its first sample".into()) };
    let base = samples.iter().find(|s| s.at >= WARM_UP).unwrap_or(&samples[0]);
    let rss_growth = last.rss_kib as f64 / base.rss_kib.max(1) as f64 - 1.0;
    let fd_growth = last.fds - base.fds;
    let first = &samples[0];
    println!("\n{:<34} {:>12} {:>12} {:>12}", "", "first sample", "after warm-up", "end");
    println!(
        "{:<34} {:>12.1} {:>12.1} {:>12.1}",
        "resident memory (MiB)",
        first.rss_kib as f64 / 1024.0,
        base.rss_kib as f64 / 1024.0,
        last.rss_kib as f64 / 1024.0
    );
    println!("{:<34} {:>12} {:>12} {:>12}", "open file descriptors", first.fds, base.fds, last.fds);
    println!("{:<34} {:>12} {:>12} {:>12}", "guest instances live", opt(first.live), opt(base.live), opt(last.live));
    println!("{:<34} {:>12} {:>12} {:>12}", "guest instances idle", opt(first.idle), opt(base.idle), opt(last.idle));
    let mean_reload = reload_times.iter().map(Duration::as_secs_f64).sum::<f64>() / reload_times.len().max(1) as f64;
    println!(
        "requests: {} ok, {} failed ({:.0}/s); reloads applied: {reloads} (mean {:.0} ms), not applied within 15 s: {reloads_missed}",
        last.ok,
        last.failed,
        last.ok as f64 / last.at.as_secs_f64().max(0.001),
        mean_reload * 1000.0
    );
    let failures = counters.first_failures.lock().map(|v| v.clone()).unwrap_or_default();
    for f in &failures {
        println!("  failure: {f}");
    }
    let mut problems = Vec::new();
    if rss_growth > RSS_GROWTH {
        problems.push(format!(
            "resident memory grew {:.1} % after the warm-up (bound {:.0} %)",
            rss_growth * 100.0,
            RSS_GROWTH * 100.0
        ));
    }
    if fd_growth > FD_GROWTH {
        problems.push(format!("open file descriptors grew by {fd_growth} after the warm-up (bound {FD_GROWTH})"));
    }
    if last.failed > 0 {
        problems.push(format!("{} requests failed", last.failed));
    }
    if reloads_missed > 0 {
        problems.push(format!("{reloads_missed} reloads never took effect"));
    }
    let result = json!({
        "minutes": opts.minutes, "rate": opts.rate,
        "requests_ok": last.ok, "requests_failed": last.failed,
        "reloads_applied": reloads, "reloads_missed": reloads_missed, "reload_mean_ms": mean_reload * 1000.0,
        "rss_mib": { "first": first.rss_kib as f64 / 1024.0, "after_warm_up": base.rss_kib as f64 / 1024.0, "end": last.rss_kib as f64 / 1024.0 },
        "fds": { "first": first.fds, "after_warm_up": base.fds, "end": last.fds },
        "guest_instances_live": { "first": first.live, "after_warm_up": base.live, "end": last.live },
        "guest_instances_idle": { "first": first.idle, "after_warm_up": base.idle, "end": last.idle },
        "samples": samples.iter().map(|s| json!({
            "t_s": s.at.as_secs_f64(), "ok": s.ok, "failed": s.failed, "rss_kib": s.rss_kib, "fds": s.fds,
            "guest_live": s.live, "guest_idle": s.idle, "generation": s.generation,
        })).collect::<Vec<_>>(),
        "problems": problems,
    });
    let out = root().join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("soak.json"), serde_json::to_string_pretty(&result).unwrap_or_default());
    println!(
        "bounds after the {} s warm-up: resident memory +{:.0} %, file descriptors +{FD_GROWTH}; measured {:+.1} %, {fd_growth:+}",
        WARM_UP.as_secs(),
        RSS_GROWTH * 100.0,
        rss_growth * 100.0
    );
    if problems.is_empty() {
        println!("soak passed (written to target/bench/soak.json)");
        Ok(true)
    } else {
        for p in &problems {
            println!("SOAK FAILED: {p}");
        }
        Ok(false)
    }
}
