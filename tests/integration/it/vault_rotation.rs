//! Key rotation never destroys the vault: the key is rotated again and again (some rotations
//! killed with SIGKILL part-way) while other processes read the vault in a loop and a running
//! gateway reloads it; every reader succeeds, and afterwards the vault opens with every secret
//! intact.

use std::time::{Duration, Instant};

use freeway_integration::{Sim, chat_body, eventually, freeway_bin, http, run_freeway};
use serde_json::json;

use crate::durability::serve;

const KEYS: [&str; 3] = ["sk-rotate-one-000000000001", "sk-rotate-two-000000000002", "sk-rotate-three-00000000003"];

/// A cheap deterministic sequence of delays (no RNG crate needed).
fn delays(seed: u64) -> impl Iterator<Item = u64> {
    let mut x = seed | 1;
    std::iter::from_fn(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Some(x % 60)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_while_readers_read_never_leaves_a_vault_that_does_not_open() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "keys": KEYS, "models": ["m"]}]})).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("providers")).unwrap();
    std::fs::copy(
        freeway_integration::artifact("providers/openai-compat.wasm"),
        d.join("providers/openai-compat.wasm"),
    )
    .unwrap();
    let config = d.join("freeway.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\nproviders_dir = \"{d}/providers\"\npolicies_dir = \"{d}/policies\"\ncache_dir = \"{d}/cache\"\nmax_instances = 16\n\n\
             [discovery]\ninterval_secs = 0\nstate_file = \"{d}/models.json\"\n\n\
             [vault]\npath = \"{d}/vault.json\"\nkey_file = \"{d}/master.key\"\naudit_log = \"{d}/audit.log\"\nhealth_file = \"{d}/health.json\"\n\n\
             [storage]\nurl = \"sqlite://{d}/freeway.db\"\n\n[quota]\nstate_file = \"{d}/quota.json\"\n\n[upstream]\negress_hosts = [\"127.0.0.1\"]\n\n\
             [[providers]]\nid = \"p\"\nbase_url = \"{base}\"\nmodels = [\"m\"]\n",
            d = d.display(),
            base = sim.base(),
        ),
    )
    .unwrap();
    let cfg = config.display().to_string();
    for key in KEYS {
        let (code, out, err) = run_freeway(&["accounts", "add", "p", "--key-stdin", "--config", &cfg], key).await;
        assert_eq!(code, 0, "{out}{err}");
    }
    let server = serve(&cfg).await;
    let port = server.port;
    let chat = || http().post(format!("http://127.0.0.1:{port}/v1/chat/completions")).json(&chat_body("m")).send();
    assert!(eventually(Duration::from_secs(20), || async { chat().await.is_ok_and(|r| r.status() == 200) }).await);

    // readers: `accounts list` in a loop from three processes at a time
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let cfg = cfg.clone();
            let stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut reads = 0u32;
                while !*stop.borrow() {
                    let (code, out, err) = run_freeway(&["accounts", "list", "--config", &cfg], "").await;
                    assert_eq!(code, 0, "a reader failed during rotations: {out}{err}");
                    assert!(out.contains("p-3"), "{out}");
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    // the rotations: every third one killed part-way
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("vault rotation seed: {seed}");
    let mut killed = 0;
    let started = Instant::now();
    for (i, delay) in delays(seed).take(12).enumerate() {
        let mut child = tokio::process::Command::from(freeway_bin())
            .args(["vault", "rotate-key", "--config", &cfg])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if i % 3 == 2 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let _ = child.start_kill();
            killed += 1;
            let _ = child.wait().await;
        } else {
            let out = child.wait_with_output().await.unwrap();
            assert!(out.status.success(), "rotation {i} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        // after every rotation, finished or killed, the vault opens and holds every key
        let paths = freeway::vault::VaultPaths { vault: d.join("vault.json"), key_file: d.join("master.key") };
        let vault = freeway::vault::Vault::open(&paths, None).unwrap_or_else(|e| panic!("after rotation {i}: {e}"));
        let mut secrets: Vec<String> =
            vault.unsealed().unwrap().into_iter().map(|(_, s)| s.expose().to_owned()).collect();
        secrets.sort();
        let mut want: Vec<String> = KEYS.iter().map(|k| (*k).to_owned()).collect();
        want.sort();
        assert_eq!(secrets, want, "after rotation {i}");
    }
    let _ = stop_tx.send(true);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    eprintln!("12 rotations ({killed} killed part-way) in {:?} while readers read {reads} times", started.elapsed());
    assert!(reads >= 3, "the readers ran: {reads}");
    // a writer after the last (maybe killed) rotation leaves no rotation half-done
    let (code, out, err) = run_freeway(&["vault", "rotate-key", "--config", &cfg], "").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!d.join("master.key.next").exists());
    // and the running gateway still serves with the rotated vault
    assert!(eventually(Duration::from_secs(10), || async { chat().await.is_ok_and(|r| r.status() == 200) }).await);
    drop(server);
}
