//! Secrets stay secret: a whole session with debug logging (accounts added, used, failing with an
//! upstream that echoes the key, checked, listed, removed) through the real binaries, then every
//! log line, CLI output, error body, metric and file the gateway wrote is searched for the keys.
//! A guest that reports everything it can see through the host functions never sees one either.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::Duration;

use freeway_integration::{Sim, artifact, chat_body, eventually, freeway_bin, http, run_freeway};
use serde_json::json;

const GROQ_KEY: &str = "gsk_secretsecretsecret_0123456789";
const OTHER_KEY: &str = "sk-mis-secretsecretsecret-98765";
const ADMIN_KEY: &str = "fw-admin-secretsecret-55555";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn no_key_in_logs_errors_metrics_files_cli_output_or_guest_view() {
    let sim = Sim::start_json(json!({"upstreams": [
        {"prefix": "/groq/openai/v1", "profile": "groq", "keys": [GROQ_KEY], "models": ["llama-3.1-8b-instant"]},
        {"prefix": "/v1", "keys": [OTHER_KEY], "models": ["ok", "observe"]},
    ]}))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("providers")).unwrap();
    std::fs::copy(artifact("providers/openai-compat.wasm"), d.join("providers/openai-compat.wasm")).unwrap();
    std::fs::copy(artifact("tests/guests/misbehave.wasm"), d.join("providers/misbehave.wasm")).unwrap();
    let base = format!("http://{}", sim.sim.addr());
    std::fs::write(
        d.join("catalog.toml"),
        format!("[[providers]]\nid = \"groq\"\nname = \"Groq\"\nbase_url = \"{base}/groq/openai/v1\"\ncomponent = \"openai-compat\"\n[[providers.models]]\nid = \"llama-3.1-8b-instant\"\n"),
    )
    .unwrap();
    let config = d.join("freeway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nadmin_key = \"${{FREEWAY_TEST_ADMIN_KEY:-the-cli-does-not-use-it}}\"\n\n[runtime]\nproviders_dir = \"{p}\"\npolicies_dir = \"{pol}\"\ncache_dir = \"{cache}\"\nmax_instances = 16\n\n\
             [upstream]\nmax_attempts = 1\negress_hosts = [\"127.0.0.1\"]\n\n[discovery]\ninterval_secs = 0\nstate_file = \"{data}/models.json\"\n\n\
             [vault]\npath = \"{data}/vault.json\"\nkey_file = \"{data}/master.key\"\naudit_log = \"{data}/audit.log\"\nhealth_file = \"{data}/health.json\"\n\n[storage]\nurl = \"sqlite://{data}/freeway.db\"\n\n[quota]\nstate_file = \"{data}/quota.json\"\n\n\
             [catalog]\nfiles = [\"{cat}\"]\n\n\
             [[providers]]\nid = \"mis\"\ncomponent = \"misbehave\"\nbase_url = \"{base}/v1\"\nmodels = [\"ok\", \"observe\"]\n",
            p = d.join("providers").display(),
            pol = d.join("policies").display(),
            cache = d.join("cache").display(),
            data = d.join("data").display(),
            cat = d.join("catalog.toml").display(),
        ),
    )
    .unwrap();
    let cfg = config.display().to_string();
    let mut outputs: Vec<String> = Vec::new();

    // accounts, added with the CLI
    for (provider, key) in [("groq", GROQ_KEY), ("mis", OTHER_KEY)] {
        let (code, out, err) =
            run_freeway(&["accounts", "add", provider, "--key-stdin", "--config", &cfg], &format!("{key}\n")).await;
        assert_eq!(code, 0, "{out}{err}");
        outputs.extend([out, err]);
    }

    // the gateway, logging at debug level to files
    let log = std::fs::File::create(d.join("gateway.log")).unwrap();
    let log2 = log.try_clone().unwrap();
    let mut child = freeway_bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--config", &cfg])
        .env("RUST_LOG", "debug")
        .env("FREEWAY_TEST_ADMIN_KEY", ADMIN_KEY)
        .stdout(Stdio::piped())
        .stderr(log2)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let port = tokio::task::spawn_blocking(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        let mut log = log;
        loop {
            let n = stdout.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return None;
            }
            std::io::Write::write_all(&mut log, &buf[..n]).unwrap();
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some(rest) = seen.split("freeway listening on http://127.0.0.1:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if rest.len() > port.len() {
                    let port = port.parse::<u16>().ok();
                    // keep copying the rest of stdout into the log
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut stdout, &mut log);
                    });
                    return port;
                }
            }
        }
    })
    .await
    .unwrap()
    .expect("the gateway did not start");
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    assert!(
        eventually(Duration::from_secs(10), || async {
            http().get(url("/ready")).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await
    );

    let mut bodies: Vec<String> = Vec::new();
    let post = |body: serde_json::Value| http().post(url("/v1/chat/completions")).json(&body).send();
    // used: a completion and a stream
    let r = post(chat_body("groq/llama-3.1-8b-instant")).await.unwrap();
    assert_eq!(r.status(), 200);
    bodies.push(r.text().await.unwrap());
    let mut stream = chat_body("groq/llama-3.1-8b-instant");
    stream["stream"] = json!(true);
    bodies.push(post(stream).await.unwrap().text().await.unwrap());
    // an upstream that echoes the key in its error, whole and in part
    sim.script(json!([{"match": {"prefix": "/groq/openai/v1"}, "times": 1, "action": {"type": "status", "status": 401,
        "body": {"error": {"message": format!("Invalid API Key: {GROQ_KEY} (starts {})", &GROQ_KEY[..14]), "code": "invalid_api_key"}}}}]))
    .await;
    let r = post(chat_body("groq/llama-3.1-8b-instant")).await.unwrap();
    assert_eq!(r.status(), 502);
    bodies.push(r.text().await.unwrap());
    // a guest reporting everything it can see through the host, including the simulator's
    // record of the requests (which carries the keys in their Authorization headers)
    let r = post(chat_body("observe")).await.unwrap();
    let observed = r.text().await.unwrap();
    assert!(observed.contains("observed label="), "{observed}");
    assert!(observed.contains("[redacted]"), "the host scrubbed the key from what the guest read: {observed}");
    bodies.push(observed);
    // metrics, models, readiness, the admin view
    for p in ["/metrics", "/v1/models", "/ready"] {
        bodies.push(http().get(url(p)).send().await.unwrap().text().await.unwrap());
    }
    bodies.push(http().get(url("/admin/accounts")).bearer_auth(ADMIN_KEY).send().await.unwrap().text().await.unwrap());
    bodies.push(http().get(url("/admin/audit")).bearer_auth(ADMIN_KEY).send().await.unwrap().text().await.unwrap());
    let r = http().get(url("/admin/accounts")).bearer_auth("wrong").send().await.unwrap();
    bodies.push(r.text().await.unwrap());

    // checked, listed, removed with the CLI
    for args in [
        vec!["accounts", "check", "--config", &cfg],
        vec!["accounts", "list", "--config", &cfg],
        vec!["providers", "--config", &cfg],
        vec!["models", "--config", &cfg],
        vec!["accounts", "remove", "mis-1", "--config", &cfg],
    ] {
        let (_, out, err) = run_freeway(&args, "").await;
        outputs.extend([out, err]);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    drop(server);

    let logs = std::fs::read_to_string(d.join("gateway.log")).unwrap();
    assert!(logs.contains("DEBUG"), "the run logged at debug level");
    let mut haystacks: Vec<(String, String)> = vec![("gateway log".into(), logs)];
    haystacks.extend(bodies.into_iter().map(|b| ("response body".to_owned(), b)));
    haystacks.extend(outputs.into_iter().map(|o| ("CLI output".to_owned(), o)));
    // every file the gateway and the CLI wrote (vault, audit log, health, model state, cache)
    for entry in walk(d) {
        if entry.ends_with("freeway.toml") || entry.ends_with("catalog.toml") {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap();
        haystacks.push((entry.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    for (what, text) in &haystacks {
        for key in [GROQ_KEY, OTHER_KEY] {
            assert!(!text.contains(key), "a plaintext key in {what}");
            assert!(!text.contains(&key[4..20]), "part of a key in {what}");
        }
        assert!(!text.contains(ADMIN_KEY), "the admin key in {what}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}
