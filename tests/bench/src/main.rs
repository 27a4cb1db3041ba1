//! `freeway-bench`: Freeway against direct calls to the simulator, in one run.
//!
//! Starts the simulator and the gateway (release builds) as separate processes, the gateway
//! pinned to its own core (`taskset`), the simulator and this load client on the other, then
//! measures:
//! - gateway CPU time per non-streaming request and requests/s at concurrency 64
//! - added p50/p99 latency at concurrency 1 (gateway minus direct, interleaved blocks)
//! - added time to first byte for streams
//! - resident memory idle and after 256 concurrent requests
//! - the wasm cost per request (instantiate + guest calls), in-process
//! - the same figures for a bare reverse proxy (nginx, pinned to the same core) in the same
//!   rounds, and the gateway's ratios to it
//! - instructions per request under callgrind (repeatable through the noise of timings)
//!
//! Results go to stdout and `target/bench/latest.json`.
//!
//! `freeway-bench --soak [--minutes N] [--rate R]` runs the soak instead (see `soak.rs`): N
//! minutes of mixed traffic with reloads, memory and file descriptors sampled, non-zero exit
//! when they grow.
//!
//! `freeway-bench --keys` measures what checking client keys costs per request instead (see
//! `keys.rs`): one static key against 10,000 virtual keys (`target/bench/keys.json`).
//!
//! `freeway-bench --fleet` runs the fleet benchmark instead (see `fleet.rs`): quota-aware
//! routing over a simulated free fleet at 80 % and 120 % of its capacity
//! (`target/bench/fleet.json`).

mod client;
mod fleet;
mod instructions;
mod keys;
mod procs;
mod proxy;
mod routing_cost;
mod soak;
mod spread;
mod wasm;

use std::time::{Duration, Instant};

use serde_json::json;

use client::{Conn, Kind};
use procs::{Gateway, Proc};

/// A typical small chat request (the same body for direct and gateway calls).
const BODY: &str = r#"{"model":"bench-model","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about the sea, please, in a calm tone."}],"temperature":0.7,"max_tokens":12,"user":"bench"}"#;
const STREAM_BODY: &str = r#"{"model":"bench-model","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about the sea, please, in a calm tone."}],"temperature":0.7,"max_tokens":12,"user":"bench"}"#;

#[derive(Default)]
struct Rounds {
    d50: Vec<f64>,
    d99: Vec<f64>,
    g50: Vec<f64>,
    g99: Vec<f64>,
    ds50: Vec<f64>,
    gs50: Vec<f64>,
    ds99: Vec<f64>,
    gs99: Vec<f64>,
    drps: Vec<f64>,
    grps: Vec<f64>,
    cpu: Vec<f64>,
    /// the bare proxy's: added p50/p99 (its own direct run), first byte added, req/s, CPU
    p_add50: Vec<f64>,
    p_add99: Vec<f64>,
    p_fb50: Vec<f64>,
    prps: Vec<f64>,
    pcpu: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() { 0.0 } else { s[s.len() / 2] }
}

/// `median [min-max]`
fn fmt(v: &[f64], signed: bool) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let m = median(v);
    if signed {
        format!("{m:+.0} [{min:+.0}..{max:+.0}]")
    } else if m < 100.0 {
        format!("{m:.1} [{min:.1}-{max:.1}]")
    } else {
        format!("{m:.0} [{min:.0}-{max:.0}]")
    }
}

struct Opts {
    rounds: Option<usize>,
    quick: bool,
    /// only load the gateway at concurrency 64 for this many seconds (for profiling)
    load_only: Option<u64>,
    gateway_core: String,
    other_cores: String,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // index into a non-empty sorted sample; p is in [0, 1]
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Sequential requests alternating direct and gateway in blocks; latencies per target.
async fn latency(
    direct: u16,
    gateway: u16,
    body: &'static str,
    kind: Kind,
    n: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut d = Conn::open(direct).await;
    let mut g = Conn::open(gateway).await;
    for _ in 0..200 {
        d.request(body, kind).await;
        g.request(body, kind).await;
    }
    let mut dl = Vec::with_capacity(n);
    let mut gl = Vec::with_capacity(n);
    let block = 50;
    while dl.len() < n {
        for _ in 0..block {
            dl.push(d.request(body, kind).await);
        }
        for _ in 0..block {
            gl.push(g.request(body, kind).await);
        }
    }
    dl.sort();
    gl.sort();
    (dl, gl)
}

/// `concurrency` connections hammering `port` for `dur`; completed requests.
async fn throughput(port: u16, concurrency: usize, dur: Duration) -> u64 {
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(port).await;
            let mut n = 0u64;
            while Instant::now() < deadline {
                c.request(BODY, Kind::Full).await;
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total
}

fn print_row(label: &str, direct: &str, gateway: &str, added: &str) {
    println!("{label:<32} {direct:>22} {gateway:>22} {added:>22}");
}

async fn run(opts: Opts) -> Result<serde_json::Value, String> {
    let sim = Proc::sim(&opts.other_cores)?;
    let gw = Gateway::start(&opts.gateway_core, &sim)?;
    let bench_dir = procs::root().join("target/bench");
    let proxy = match proxy::Proxy::start(&opts.gateway_core, &bench_dir, sim.port) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("bare-proxy baseline: {e}");
            None
        }
    };
    let direct = sim.port;
    let gateway = gw.port;
    let n_lat = if opts.quick { 2_000 } else { 5_000 };
    let dur = Duration::from_secs(if opts.quick { 2 } else { 5 });
    let rounds = opts.rounds.unwrap_or(if opts.quick { 3 } else { 5 });
    if let Some(secs) = opts.load_only {
        println!("loading the gateway (pid {}) at concurrency 64 for {secs} s", gw.proc.pid());
        let n = throughput(gateway, 64, Duration::from_secs(secs)).await;
        println!("{n} requests");
        return Ok(json!({ "load_only_requests": n }));
    }

    // warm both paths (connections, pools, caches)
    throughput(gateway, 8, Duration::from_millis(500)).await;
    throughput(direct, 8, Duration::from_millis(500)).await;
    if let Some(p) = &proxy {
        throughput(p.port, 8, Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = gw.proc.rss_kib();

    println!(
        "\nFreeway benchmark: gateway pinned to CPU {}, simulator and client on CPU {}; {rounds} rounds, median [min-max]",
        opts.gateway_core, opts.other_cores
    );
    let mut m = Rounds::default();
    for round in 0..rounds {
        // latency at concurrency 1, direct and gateway interleaved in blocks
        let (dl, gl) = latency(direct, gateway, BODY, Kind::Full, n_lat).await;
        m.d50.push(us(percentile(&dl, 0.5)));
        m.d99.push(us(percentile(&dl, 0.99)));
        m.g50.push(us(percentile(&gl, 0.5)));
        m.g99.push(us(percentile(&gl, 0.99)));
        // streams: time to first byte
        let (ds, gs) = latency(direct, gateway, STREAM_BODY, Kind::FirstByte, n_lat / 4).await;
        m.ds50.push(us(percentile(&ds, 0.5)));
        m.gs50.push(us(percentile(&gs, 0.5)));
        m.ds99.push(us(percentile(&ds, 0.99)));
        m.gs99.push(us(percentile(&gs, 0.99)));
        // throughput and gateway CPU per request at concurrency 64 (alternating the order)
        let (direct_n, gw_n, cpu) = if round % 2 == 0 {
            let d = throughput(direct, 64, dur).await;
            let cpu0 = gw.proc.cpu_time();
            let g = throughput(gateway, 64, dur).await;
            (d, g, gw.proc.cpu_time().saturating_sub(cpu0))
        } else {
            let cpu0 = gw.proc.cpu_time();
            let g = throughput(gateway, 64, dur).await;
            let cpu = gw.proc.cpu_time().saturating_sub(cpu0);
            (throughput(direct, 64, dur).await, g, cpu)
        };
        m.drps.push(direct_n as f64 / dur.as_secs_f64());
        m.grps.push(gw_n as f64 / dur.as_secs_f64());
        m.cpu.push(us(cpu) / gw_n.max(1) as f64);
        if let Some(p) = &proxy {
            let (dl, pl) = latency(direct, p.port, BODY, Kind::Full, n_lat).await;
            m.p_add50.push(us(percentile(&pl, 0.5)) - us(percentile(&dl, 0.5)));
            m.p_add99.push(us(percentile(&pl, 0.99)) - us(percentile(&dl, 0.99)));
            let (ds, ps) = latency(direct, p.port, STREAM_BODY, Kind::FirstByte, n_lat / 4).await;
            m.p_fb50.push(us(percentile(&ps, 0.5)) - us(percentile(&ds, 0.5)));
            let cpu0 = procs::cpu_time_of(p.pid());
            let n = throughput(p.port, 64, dur).await;
            let cpu = procs::cpu_time_of(p.pid()).saturating_sub(cpu0);
            m.prps.push(n as f64 / dur.as_secs_f64());
            m.pcpu.push(us(cpu) / n.max(1) as f64);
            eprintln!(
                "  round {}, bare proxy: added p50 {:+.0} µs, p99 {:+.0} µs, first byte {:+.0} µs, {:.1} µs CPU/request, {:.0} req/s",
                round + 1,
                m.p_add50[round],
                m.p_add99[round],
                m.p_fb50[round],
                m.pcpu[round],
                m.prps[round]
            );
        }
        eprintln!(
            "  round {}: added p50 {:+.0} µs, p99 {:+.0} µs, first byte {:+.0} µs, {:.1} µs CPU/request, {:.0} req/s",
            round + 1,
            m.g50[round] - m.d50[round],
            m.g99[round] - m.d99[round],
            m.gs50[round] - m.ds50[round],
            m.cpu[round],
            m.grps[round]
        );
    }
    print_row("", "direct", "via Freeway", "added");
    let added = |g: &[f64], d: &[f64]| -> Vec<f64> { g.iter().zip(d).map(|(a, b)| a - b).collect() };
    let row = |label: &str, d: &[f64], g: &[f64], signed: bool| {
        let a = added(g, d);
        print_row(label, &fmt(d, false), &fmt(g, false), &if signed { fmt(&a, true) } else { String::new() });
    };
    row("latency p50, c=1 (µs)", &m.d50, &m.g50, true);
    row("latency p99, c=1 (µs)", &m.d99, &m.g99, true);
    row("stream first byte p50 (µs)", &m.ds50, &m.gs50, true);
    row("stream first byte p99 (µs)", &m.ds99, &m.gs99, true);
    row("requests/s, c=64", &m.drps, &m.grps, false);
    print_row("gateway CPU per request (µs)", "", &fmt(&m.cpu, false), "");
    let (d50, d99, g50, g99) = (median(&m.d50), median(&m.d99), median(&m.g50), median(&m.g99));
    let (ds50, gs50, ds99, gs99) = (median(&m.ds50), median(&m.gs50), median(&m.ds99), median(&m.gs99));
    let added_p50 = median(&added(&m.g50, &m.d50));
    let added_p99 = median(&added(&m.g99, &m.d99));
    let added_fb50 = median(&added(&m.gs50, &m.ds50));
    let added_fb99 = median(&added(&m.gs99, &m.ds99));
    let cpu_per_req = median(&m.cpu);
    let (direct_rps, gw_rps) = (median(&m.drps), median(&m.grps));

    // the gateway against the bare proxy, from the same rounds
    let vs_proxy = if proxy.is_some() {
        let (p50, p99, pfb, prps, pcpu) =
            (median(&m.p_add50), median(&m.p_add99), median(&m.p_fb50), median(&m.prps), median(&m.pcpu));
        println!("\nbare proxy (nginx, same core, same rounds):");
        print_row("  added latency p50/p99, c=1 (µs)", "", &format!("{p50:+.0} / {p99:+.0}"), "");
        print_row("  added first byte p50 (µs)", "", &format!("{pfb:+.0}"), "");
        print_row("  requests/s, c=64", "", &format!("{prps:.0}"), "");
        print_row("  CPU per request (µs)", "", &format!("{pcpu:.1}"), "");
        let ratio = |a: f64, b: f64| if b.abs() > f64::EPSILON { a / b } else { f64::NAN };
        println!("gateway ÷ bare proxy:");
        print_row("  CPU per request", "", &format!("{:.2}x", ratio(cpu_per_req, pcpu)), "target <= 2x");
        print_row("  requests/s on one core", "", &format!("{:.2}x", ratio(gw_rps, prps)), "target >= 0.5x");
        print_row("  added latency p50", "", &format!("{:.2}x", ratio(added_p50, p50)), "target <= 1.2x");
        print_row("  added latency p99", "", &format!("{:.2}x", ratio(added_p99, p99)), "target <= 1.2x");
        json!({
            "proxy": { "added_p50_us": p50, "added_p99_us": p99, "added_first_byte_us": pfb, "rps": prps, "cpu_us_per_request": pcpu },
            "gateway_to_proxy": {
                "cpu_per_request": ratio(cpu_per_req, pcpu), "rps": ratio(gw_rps, prps),
                "added_p50": ratio(added_p50, p50), "added_p99": ratio(added_p99, p99)
            }
        })
    } else {
        serde_json::Value::Null
    };
    drop(proxy);

    // memory after 256 concurrent requests (slow upstream so they overlap)
    let peak = gw.burst_rss(256).await;
    let rss_after = gw.proc.rss_kib();
    print_row("resident memory idle (MiB)", "", &format!("{:.1}", rss_idle as f64 / 1024.0), "");
    print_row("resident, 256 in flight (MiB)", "", &format!("{:.1}", peak as f64 / 1024.0), "");
    print_row("resident after the burst (MiB)", "", &format!("{:.1}", rss_after as f64 / 1024.0), "");

    // wasm cost, in-process
    let w = wasm::measure(if opts.quick { 5_000 } else { 20_000 }).await?;
    print_row("wasm per request p50 (µs)", "", &format!("{:.1}", us(w.p50)), "");
    print_row("wasm per request p99 (µs)", "", &format!("{:.1}", us(w.p99)), "");
    print_row("  fresh instance instead, p50/p99", "", &format!("{:.1}/{:.1}", us(w.fresh_p50), us(w.fresh_p99)), "");
    print_row("  of which instantiate p50 (µs)", "", &format!("{:.1}", us(w.instantiate_p50)), "");

    // policy routing, per request: classification and rank, Rust / Python / JavaScript policies
    println!(
        "\npolicy routing per request, warm (tests/eval/routing.jsonl over the catalog's free fleet, ~95 models, 16 offered to the policy):"
    );
    let routing = routing_cost::measure(if opts.quick { 5 } else { 20 })?;

    // instructions per request, under callgrind, on the configuration the gateway ran with
    drop(gw);
    let n_instr = if opts.quick { 300 } else { 1_000 };
    let instr =
        match instructions::per_request(&opts.gateway_core, &bench_dir.join("freeway.toml"), BODY, n_instr).await {
            Ok(ir) => {
                print_row("instructions per request (callgrind)", "", &format!("{ir:.0}"), "");
                Some(ir)
            }
            Err(e) => {
                eprintln!("instructions per request: {e}");
                None
            }
        };

    let result = json!({
        "bare_proxy": vs_proxy,
        "instructions_per_request": instr,
        "routing_us": routing,
        "rounds": rounds,
        "latency_c1_us": { "direct_p50": d50, "direct_p99": d99, "gateway_p50": g50, "gateway_p99": g99,
                           "added_p50": added_p50, "added_p99": added_p99 },
        "stream_first_byte_us": { "direct_p50": ds50, "gateway_p50": gs50, "added_p50": added_fb50,
                                  "direct_p99": ds99, "gateway_p99": gs99, "added_p99": added_fb99 },
        "throughput_c64_rps": { "direct": direct_rps, "gateway": gw_rps, "gateway_to_direct": gw_rps / direct_rps },
        "gateway_cpu_us_per_request": cpu_per_req,
        "rss_mib": { "idle": rss_idle as f64 / 1024.0, "in_flight_256": peak as f64 / 1024.0, "after_burst": rss_after as f64 / 1024.0 },
        "wasm_us": { "p50": us(w.p50), "p99": us(w.p99), "fresh_instance_p50": us(w.fresh_p50), "fresh_instance_p99": us(w.fresh_p99),
                     "instantiate_p50": us(w.instantiate_p50) },
    });
    drop(sim);
    Ok(result)
}

/// Only the daily-spread part of the fleet benchmark.
fn spread_main() {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else {
        eprintln!("freeway-bench --spread: cannot start a runtime");
        return;
    };
    let cores = format!("0-{}", std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1));
    if let Err(e) = rt.block_on(spread::run(&cores)) {
        eprintln!("freeway-bench --spread: {e}");
        std::process::exit(1);
    }
}

fn soak_main(minutes: Option<f64>, rate: Option<u64>) {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else {
        eprintln!("freeway-bench --soak: cannot start a runtime");
        std::process::exit(1);
    };
    let cores = format!("0-{}", std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1));
    let opts = soak::Opts { minutes: minutes.unwrap_or(10.0), rate: rate.unwrap_or(300) };
    match rt.block_on(soak::run(opts, &cores)) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("freeway-bench --soak: {e}");
            std::process::exit(1);
        }
    }
}

fn fleet_main() {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("freeway-bench: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(fleet::run()) {
        Ok(result) => {
            let dir = procs::root().join("target/bench");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join("fleet.json"), serde_json::to_string_pretty(&result).unwrap_or_default());
            println!("\nwritten to target/bench/fleet.json");
        }
        Err(e) => {
            eprintln!("freeway-bench --fleet: {e}");
            std::process::exit(1);
        }
    }
}

fn keys_main(opts: &Opts) {
    if procs::pin_self(&opts.other_cores) {
        return;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("freeway-bench --keys: cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(keys::run(&opts.gateway_core, &opts.other_cores)) {
        Ok(result) => {
            let dir = procs::root().join("target/bench");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join("keys.json"), serde_json::to_string_pretty(&result).unwrap_or_default());
            println!("\nwritten to target/bench/keys.json");
        }
        Err(e) => {
            eprintln!("freeway-bench --keys: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let opts = Opts {
        quick: args.iter().any(|a| a == "--quick"),
        rounds: value("--rounds").and_then(|v| v.parse().ok()),
        load_only: value("--load-only").and_then(|v| v.parse().ok()),
        gateway_core: value("--gateway-core").unwrap_or_else(|| "1".into()),
        other_cores: value("--other-cores").unwrap_or_else(|| "0".into()),
    };
    if args.iter().any(|a| a == "--soak") {
        soak_main(value("--minutes").and_then(|v| v.parse().ok()), value("--rate").and_then(|v| v.parse().ok()));
        return;
    }
    if args.iter().any(|a| a == "--spread") {
        spread_main();
        return;
    }
    if args.iter().any(|a| a == "--fleet") {
        fleet_main();
        return;
    }
    if args.iter().any(|a| a == "--keys") {
        keys_main(&opts);
        return;
    }
    if procs::pin_self(&opts.other_cores) {
        return;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("freeway-bench: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(opts)) {
        Ok(result) => {
            let dir = procs::root().join("target/bench");
            let _ = std::fs::create_dir_all(&dir);
            let text = serde_json::to_string_pretty(&result).unwrap_or_default();
            let _ = std::fs::write(dir.join("latest.json"), &text);
            println!("\nwritten to target/bench/latest.json");
        }
        Err(e) => {
            eprintln!("freeway-bench: {e}");
            std::process::exit(1);
        }
    }
}
