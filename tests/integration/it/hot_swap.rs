//! Hot swap under load: a provider component file replaced again and again while clients push
//! about 1,000 requests a second; no request fails and every new file is really swapped in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use freeway_integration::{Gateway, Opts, Sim, artifact, eventually, http, provider, sse_data};
use serde_json::json;

/// The same component with a custom section appended: equivalent code, different bytes (and
/// so a different hash).
fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
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
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

const RATE: u64 = 1_000;
const WORKERS: u64 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_component_replaced_five_times_under_a_thousand_requests_a_second_fails_nothing() {
    // the usage database outside the watched folders: see the test below for why
    let usage = tempfile::tempdir().unwrap();
    let storage_url = format!("sqlite://{}", usage.path().join("freeway.db").display());
    swap_five_times_under_load(Opts { storage_url, ..Opts::default() }).await;
}

/// The default layout keeps the usage database in the data folder, next to the vault, and the
/// watcher watches that folder for vault changes. Under steady load the database changes every
/// ~50 ms (one commit per linger); those changes must not hold back a component swap (they once
/// did: the watcher's 200 ms settle restarted on every event of any file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_commits_in_the_data_folder_do_not_hold_back_a_component_swap_under_load() {
    swap_five_times_under_load(Opts::default()).await;
}

async fn swap_five_times_under_load(opts: Opts) {
    let sim = Sim::start_json(json!({"record": false, "upstreams": [{"prefix": "/v1", "models": ["m"]}]})).await;
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    let original = std::fs::read(artifact("providers/openai-compat.wasm")).unwrap();
    let variant = with_custom_section(&original, "freeway-hot-swap", b"same code, other bytes");
    let first = gw.app.registry.snapshot();
    let hash_original = first.providers[0].component.hash.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let url = gw.url("/v1/chat/completions");
    // each worker a request every WORKERS ms: RATE a second together, one in ten a stream
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (stop, ok, failures, url) = (stop.clone(), ok.clone(), failures.clone(), url.clone());
            tokio::spawn(async move {
                let client = http();
                let mut tick = tokio::time::interval(Duration::from_millis(WORKERS * 1_000 / RATE));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let mut n = w;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    n += 1;
                    let stream = n % 10 == 0;
                    let body =
                        json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hot swap"}]});
                    let resp = client.post(&url).timeout(Duration::from_secs(10)).json(&body).send().await;
                    let outcome = match resp {
                        Ok(r) if r.status() == 200 && stream => {
                            let data = sse_data(r).await;
                            if data.last().map(String::as_str) == Some("[DONE]") {
                                Ok(())
                            } else {
                                Err(format!("stream ended without [DONE]: {:?}", data.last()))
                            }
                        }
                        Ok(r) if r.status() == 200 => match r.json::<serde_json::Value>().await {
                            Ok(v) if v["choices"][0]["message"]["content"].is_string() => Ok(()),
                            other => Err(format!("bad JSON reply: {other:?}")),
                        },
                        Ok(r) => Err(format!("{}: {}", r.status(), r.text().await.unwrap_or_default())),
                        Err(e) => Err(format!("transport: {e}")),
                    };
                    match outcome {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut hash_variant: Option<String> = None;
    let mut current = hash_original.clone();
    let mut generation = first.generation;
    for swap in 1..=5 {
        let bytes = if swap % 2 == 1 { &variant } else { &original };
        let tmp = gw.providers_dir().join("incoming.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        let (t0, ok0) = (Instant::now(), ok.load(Ordering::Relaxed));
        std::fs::rename(&tmp, gw.providers_dir().join("openai-compat.wasm")).unwrap();
        let swapped = eventually(Duration::from_secs(30), || async {
            gw.app.registry.snapshot().providers[0].component.hash != current
        })
        .await;
        assert!(swapped, "swap {swap}: the new file was never swapped in");
        let snap = gw.app.registry.snapshot();
        let hash = snap.providers[0].component.hash.clone();
        if swap % 2 == 1 {
            assert_ne!(hash, hash_original, "swap {swap}: the variant has its own hash");
            assert_eq!(hash_variant.get_or_insert_with(|| hash.clone()), &hash, "swap {swap}: the variant again");
        } else {
            assert_eq!(hash, hash_original, "swap {swap}: the original again");
        }
        assert!(snap.generation > generation, "swap {swap}: the registry generation advanced");
        println!(
            "swap {swap}: swapped in after {} ms, {} requests served meanwhile; generation {}",
            t0.elapsed().as_millis(),
            ok.load(Ordering::Relaxed) - ok0,
            snap.generation
        );
        current = hash;
        generation = snap.generation;
        // the new component serves a while before the next swap
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let served = ok.load(Ordering::Relaxed);
    let failed = std::mem::take(&mut *failures.lock().unwrap());
    println!(
        "hot swap under load: {served} requests in {elapsed:.1} s = {:.0} requests/s (target {RATE}), {} failed",
        served as f64 / elapsed,
        failed.len()
    );
    assert!(failed.is_empty(), "{} requests failed, e.g. {:?}", failed.len(), &failed[..failed.len().min(5)]);
    assert!(served > 0);
}
