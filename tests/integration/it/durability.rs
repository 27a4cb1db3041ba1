//! Nothing is lost: usage records and credentials survive `kill -9` and a restart.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::Duration;

use freeway_integration::{Sim, artifact, chat_body, eventually, freeway_bin, http, run_freeway};
use serde_json::json;

const KEY: &str = "sk-durable-0000000000000000";

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `freeway serve` and wait for its port.
pub(crate) async fn serve(config: &str) -> Server {
    let mut child = freeway_bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--config", config])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let port = tokio::task::spawn_blocking(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = stdout.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return None;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some(rest) = seen.split("listening on http://127.0.0.1:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if rest.len() > port.len() {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
                    });
                    return port.parse().ok();
                }
            }
        }
    })
    .await
    .unwrap()
    .expect("the gateway did not start");
    Server { child, port }
}

pub(crate) async fn metric(port: u16, name: &str) -> u64 {
    let text = http().get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// A config over one simulated provider whose account is in the vault; returns its path.
async fn setup(sim: &Sim, d: &std::path::Path) -> String {
    std::fs::create_dir_all(d.join("providers")).unwrap();
    std::fs::create_dir_all(d.join("policies")).unwrap();
    std::fs::copy(artifact("providers/openai-compat.wasm"), d.join("providers/openai-compat.wasm")).unwrap();
    let config = d.join("freeway.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\nproviders_dir = \"{p}\"\npolicies_dir = \"{pol}\"\ncache_dir = \"{data}/cache\"\nmax_instances = 16\n\n\
             [discovery]\ninterval_secs = 0\nstate_file = \"{data}/models.json\"\n\n\
             [vault]\npath = \"{data}/vault.json\"\nkey_file = \"{data}/master.key\"\naudit_log = \"{data}/audit.log\"\nhealth_file = \"{data}/health.json\"\n\n\
             [storage]\nurl = \"sqlite://{data}/freeway.db\"\n\n[quota]\nstate_file = \"{data}/quota.json\"\n\n[upstream]\negress_hosts = [\"127.0.0.1\"]\n\n\
             [[providers]]\nid = \"p\"\nbase_url = \"{base}\"\nmodels = [\"m\"]\n",
            p = d.join("providers").display(),
            pol = d.join("policies").display(),
            data = d.join("data").display(),
            base = sim.base(),
        ),
    )
    .unwrap();
    let cfg = config.display().to_string();
    let (code, out, err) =
        run_freeway(&["accounts", "add", "p", "--key-stdin", "--config", &cfg], &format!("{KEY}\n")).await;
    assert_eq!(code, 0, "{out}{err}");
    cfg
}

#[tokio::test]
async fn usage_records_and_accounts_survive_kill_dash_nine() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "keys": [KEY], "models": ["m"]}]})).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&sim, dir.path()).await;

    let server = serve(&cfg).await;
    let port = server.port;
    let chat = || http().post(format!("http://127.0.0.1:{port}/v1/chat/completions")).json(&chat_body("m")).send();
    assert!(eventually(Duration::from_secs(10), || async { chat().await.is_ok_and(|r| r.status() == 200) }).await);
    for _ in 0..9 {
        assert_eq!(chat().await.unwrap().status(), 200);
    }
    // committed (the gateway says so), then killed without any chance to flush
    assert!(
        eventually(Duration::from_secs(5), || async { metric(port, "freeway_usage_records_stored_total").await == 10 })
            .await
    );
    let mut server = server;
    nix_kill(server.child.id());
    let _ = server.child.wait();

    // restarted: the accounts and the records are all there
    let server = serve(&cfg).await;
    let port = server.port;
    let chat = || http().post(format!("http://127.0.0.1:{port}/v1/chat/completions")).json(&chat_body("m")).send();
    assert!(eventually(Duration::from_secs(10), || async { chat().await.is_ok_and(|r| r.status() == 200) }).await);
    assert!(
        eventually(Duration::from_secs(5), || async { metric(port, "freeway_usage_records_stored_total").await == 1 })
            .await
    );
    drop(server);
    let (code, out, err) = run_freeway(&["usage", "--config", &cfg], "").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("11 requests"), "{out}");
    let (_, out, _) = run_freeway(&["accounts", "list", "--config", &cfg], "").await;
    assert!(out.contains("p-1"), "{out}");
}

#[tokio::test]
async fn a_graceful_stop_commits_the_usage_records_still_queued() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "keys": [KEY], "models": ["m"]}]})).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&sim, dir.path()).await;
    let mut server = serve(&cfg).await;
    let port = server.port;
    let chat = || http().post(format!("http://127.0.0.1:{port}/v1/chat/completions")).json(&chat_body("m")).send();
    assert!(eventually(Duration::from_secs(10), || async { chat().await.is_ok_and(|r| r.status() == 200) }).await);
    for _ in 0..4 {
        assert_eq!(chat().await.unwrap().status(), 200);
    }
    // SIGTERM at once: the records may still be waiting in the writer's queue
    signal(server.child.id(), "-TERM");
    let status = tokio::task::spawn_blocking(move || server.child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "{status:?}");
    let (code, out, err) = run_freeway(&["usage", "--config", &cfg], "").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("5 requests"), "{out}");
}

/// SIGKILL, as `kill -9` sends it.
fn nix_kill(pid: u32) {
    signal(pid, "-9");
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
    assert!(status.success());
}
