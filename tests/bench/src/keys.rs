//! `freeway-bench --keys`: what checking client keys costs the gateway per request. Two release
//! gateways, pinned to the same core, serve the same load from the same simulator: one with a
//! static key (`[server] api_keys`), one with 10,000 virtual keys in its store, each with its own
//! limits (so the figure includes finding the key by its hash and reserving and settling in its
//! ledger pool), the load spread over 1,000 of them. Rounds alternate between the two; the
//! gateway's CPU time per request (from /proc) is compared, as a ratio and in microseconds.

use std::time::Duration;

use serde_json::json;

use crate::client::{Conn, Kind};
use crate::procs::{Proc, config, gateway_bin, root};

const KEYS: usize = 10_000;
/// keys the load uses (round robin)
const USED: usize = 1_000;
const CONNS: usize = 16;
const PER_ROUND: usize = 8_000;
const ROUNDS: usize = 7;
const STATIC_KEY: &str = "fw-bench-static-key-0123456789abcdefghijklmnopq";
const BODY: &str = r#"{"model":"bench-model","messages":[{"role":"user","content":"Write one sentence about the sea, please, in a calm tone."}],"temperature":0.7,"max_tokens":12}"#;

fn fresh_dir(name: &str) -> Result<std::path::PathBuf, String> {
    let dir = root().join("target/bench").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// 10,000 keys in the store at `dir`; the secrets of the first [`USED`].
async fn make_keys(dir: &std::path::Path) -> Result<Vec<String>, String> {
    use freeway::keys::manage::{NewKey, create};
    let store = freeway::store::Store::open(&format!("sqlite://{}/freeway.db", dir.display())).await?;
    let mut secrets = Vec::with_capacity(USED);
    let now = freeway::clock::now_ms();
    for i in 0..KEYS {
        let new = NewKey {
            name: format!("user-{i:05}"),
            models: vec!["bench-model".into(), "auto".into()],
            rpm: Some(1_000_000),
            rpd: Some(1_000_000_000),
            monthly_tokens: Some(1_000_000_000_000),
            tags: vec![format!("team-{}", i % 10)],
            ..NewKey::default()
        };
        let (_, secret) = create(&store, new, now).await.map_err(|e| e.to_string())?;
        if secrets.len() < USED {
            secrets.push(format!("Bearer {secret}"));
        }
    }
    Ok(secrets)
}

/// Gateway CPU µs per request over one round of `PER_ROUND` requests on [`CONNS`] connections,
/// the keys in `auth` taken in turn; an error when any request was not served (a refused key
/// costs less than a served one and would flatter the figure).
async fn round(gw: &Proc, auth: &[String]) -> Result<f64, String> {
    if auth.is_empty() {
        return Err("no keys to send".into());
    }
    let before = gw.cpu_time();
    let mut tasks = Vec::new();
    for c in 0..CONNS {
        let port = gw.port;
        let auth = auth.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(port).await;
            let mut refused = 0usize;
            for i in 0..PER_ROUND / CONNS {
                let a = &auth[(c + i * CONNS) % auth.len()];
                if conn.exchange(BODY, Kind::Full, a).await.1 != 200 {
                    refused += 1;
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await.map_err(|e| e.to_string())?;
    }
    let spent = gw.cpu_time().saturating_sub(before);
    if refused > 0 {
        return Err(format!("{refused} of {PER_ROUND} requests were not answered 200"));
    }
    Ok(spent.as_secs_f64() * 1e6 / PER_ROUND as f64)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub async fn run(gateway_core: &str, other_cores: &str) -> Result<serde_json::Value, String> {
    let sim = Proc::sim(other_cores)?;
    let static_dir = fresh_dir("keys-static")?;
    let virtual_dir = fresh_dir("keys-virtual")?;
    std::fs::write(
        static_dir.join("freeway.toml"),
        config(&static_dir, sim.port, &format!("api_keys = [\"{STATIC_KEY}\"]"), ""),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(virtual_dir.join("freeway.toml"), config(&virtual_dir, sim.port, "", ""))
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let secrets = make_keys(&virtual_dir).await?;
    println!("made {KEYS} virtual keys in {:.1} s", started.elapsed().as_secs_f64());
    let spawn = |dir: &std::path::Path| {
        let cfg = dir.join("freeway.toml").display().to_string();
        Proc::spawn(
            gateway_core,
            &gateway_bin(),
            &["serve", "--listen", "127.0.0.1:0", "--config", &cfg],
            "freeway listening on http://",
        )
    };
    let plain = spawn(&static_dir)?;
    let keyed = spawn(&virtual_dir)?;
    let static_auth = vec![format!("Bearer {STATIC_KEY}")];
    // warm both (connections, components, the keys' ledger pools)
    round(&plain, &static_auth).await?;
    round(&keyed, &secrets).await?;
    let (mut s, mut v) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        s.push(round(&plain, &static_auth).await?);
        v.push(round(&keyed, &secrets).await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, v) = (median(&mut s), median(&mut v));
    let ratio = if s > 0.0 { v / s } else { 0.0 };
    println!("client key checks: gateway CPU per request over {ROUNDS} alternating rounds of {PER_ROUND}");
    println!("  1 static key              {s:8.1} us");
    println!("  {KEYS} virtual keys       {v:8.1} us   ({:+.1} us, {ratio:.3}x)", v - s);
    drop(sim);
    Ok(json!({
        "virtual_keys": KEYS,
        "keys_used": USED,
        "static_cpu_us_per_request": s,
        "virtual_cpu_us_per_request": v,
        "added_cpu_us_per_request": v - s,
        "ratio": ratio,
    }))
}
