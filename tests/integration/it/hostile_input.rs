//! Hostile input under load: bodies built to cost the gateway as much as possible (100k keys in
//! 1 MiB, 10k-deep nesting, a million-element array, a 16 MiB string, one endless word, invalid
//! UTF-8), several at once, sent to the real binary while `/health` is asked every 10 ms. Each
//! gets a clear 4xx (or, for the long prompt, a normal answer), and `/health` keeps answering
//! within 100 ms throughout.

use std::time::{Duration, Instant};

use freeway_integration::{Sim, artifact, http};
use serde_json::{Value, json};

use crate::durability::serve;

const KEY: &str = "sk-hostile-input-0000000001";

fn config(sim: &Sim, d: &std::path::Path) -> String {
    std::fs::create_dir_all(d.join("providers")).unwrap();
    std::fs::copy(artifact("providers/openai-compat.wasm"), d.join("providers/openai-compat.wasm")).unwrap();
    let config = d.join("freeway.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\nproviders_dir = \"{d}/providers\"\npolicies_dir = \"{d}/policies\"\ncache_dir = \"{d}/cache\"\nmax_instances = 32\n\n\
             [discovery]\ninterval_secs = 0\nstate_file = \"{d}/models.json\"\n\n\
             [vault]\npath = \"{d}/vault.json\"\nkey_file = \"{d}/master.key\"\naudit_log = \"{d}/audit.log\"\nhealth_file = \"{d}/health.json\"\n\n\
             [storage]\nurl = \"sqlite://{d}/freeway.db\"\n\n[quota]\nstate_file = \"{d}/quota.json\"\n\n[upstream]\negress_hosts = [\"127.0.0.1\"]\n\n\
             [[providers]]\nid = \"p\"\nbase_url = \"{base}\"\napi_keys = [\"{KEY}\"]\nmodels = [\"m\"]\n",
            d = d.display(),
            base = sim.base(),
        ),
    )
    .unwrap();
    config.display().to_string()
}

/// One `GET /health` on a fresh connection, read to its end.
fn health(port: u16) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    if answer.starts_with("HTTP/1.1 200") { Ok(()) } else { Err(answer) }
}

fn with_messages(extra: &str) -> Vec<u8> {
    format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#).into_bytes()
}

/// The hostile bodies, each with the status it must get.
fn bodies() -> Vec<(&'static str, Vec<u8>, u16)> {
    let mut keys = String::new();
    for i in 0..100_000 {
        keys.push_str(&format!(",\"k{i:05}\":1"));
    }
    let deep = format!(",\"x\":{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let array = format!(",\"x\":[{}0]", "0,".repeat(1_000_000));
    let string = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#, "a b ".repeat(4 << 20));
    let word = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(4 << 20));
    let mut invalid = br#"{"model":"m","messages":[{"role":"user","content":""#.to_vec();
    invalid.extend(std::iter::repeat_n(0xffu8, 1 << 20));
    invalid.extend_from_slice(br#""}]}"#);
    vec![
        ("100k keys in 1 MiB", with_messages(&keys), 400),
        ("10k-deep nesting", with_messages(&deep), 400),
        ("a million-element array", with_messages(&array), 400),
        // 16 MiB of text in one string: over the body limit
        ("a 16 MiB string", string.into_bytes(), 413),
        // 4 MiB of one word: accepted, counted with bounded work, answered
        ("one 4 MiB word", word.into_bytes(), 200),
        ("invalid UTF-8", invalid, 400),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_clear_errors_while_health_keeps_answering_within_100_ms() {
    let _heavy = freeway_integration::HEAVY.lock().await;
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "keys": [KEY], "models": ["m"]}]})).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path());
    let server = serve(&cfg).await;
    let port = server.port;
    let base = format!("http://127.0.0.1:{port}");
    let ready = freeway_integration::eventually(Duration::from_secs(20), || async {
        http().get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "the gateway did not become ready");

    // the prober runs on its own thread with plain blocking sockets, so what it measures is the
    // gateway (a separate process), not this test process's own scheduling
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            let mut samples = 0u32;
            let mut failures = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                match health(port) {
                    Ok(()) => {}
                    Err(e) => failures.push(e),
                }
                worst = worst.max(t.elapsed());
                samples += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            (worst, samples, failures)
        })
    };

    for (what, body, want) in bodies() {
        let started = Instant::now();
        // several at once, several rounds: two such requests used to freeze the server
        for _round in 0..4 {
            let sends = (0..3).map(|_| {
                http()
                    .post(format!("{base}/v1/chat/completions"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .timeout(Duration::from_secs(60))
                    .send()
            });
            for r in futures_util::future::join_all(sends).await {
                // a body over the limit is answered 413 from its Content-Length and the connection
                // closed without reading the rest; a client still sending may see the close first
                let r = match r {
                    Err(e) if want == 413 && (e.is_request() || e.is_body()) => continue,
                    r => r.unwrap_or_else(|e| panic!("{what}: {e}")),
                };
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                assert_eq!(status, want, "{what}: {}", &text[..text.len().min(300)]);
                if want != 200 {
                    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
                    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {text}");
                }
            }
        }
        eprintln!("{what}: {status} x12 in {:?}", started.elapsed(), status = want);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst, samples, failures) = prober.join().unwrap();
    eprintln!("/health: {samples} answers, slowest {worst:?}");
    assert!(failures.is_empty(), "/health failed under hostile input: {failures:?}");
    assert!(samples > 10, "{samples}");
    assert!(worst < Duration::from_millis(100), "/health took {worst:?} while the gateway was under hostile input");
}
