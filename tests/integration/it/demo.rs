//! `freeway demo`: with no keys and no configuration, a gateway over a simulated fleet answers
//! chats, its quota bars move, an account cools down after the provider's 429, its admin key
//! works, and Ctrl-C stops everything and removes the demo's folder.

use std::io::BufRead as _;
use std::time::Duration;

use freeway_integration::{freeway_bin, http, signal};
use serde_json::{Value, json};

/// What the demo printed once it was up.
struct Banner {
    url: String,
    admin_key: String,
    config: std::path::PathBuf,
}

fn read_banner(stdout: std::process::ChildStdout) -> (Banner, std::thread::JoinHandle<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let (mut url, mut key) = (None, None);
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
            if let Some(u) = line.strip_prefix("freeway listening on ") {
                url = Some(u.trim().to_owned());
            }
            if let Some(k) = line.trim().strip_prefix("admin key") {
                key = Some(k.trim().to_owned());
            }
            if let Some(c) = line.trim().strip_prefix("configuration")
                && let (Some(u), Some(k), Some(tx)) = (url.clone(), key.clone(), tx.take())
            {
                let _ = tx.send(Banner { url: u, admin_key: k, config: c.trim().into() });
            }
        }
        all
    });
    let banner = rx.recv_timeout(Duration::from_secs(60)).expect("the demo did not print its banner");
    (banner, reader)
}

#[tokio::test]
async fn the_demo_serves_a_simulated_fleet_with_no_keys_and_ctrl_c_stops_it() {
    let mut child = freeway_bin()
        .args(["demo", "--listen", "127.0.0.1:0", "--no-open"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (banner, reader) = read_banner(child.stdout.take().unwrap());
    assert!(banner.admin_key.starts_with("fw-demo-") && banner.admin_key.len() > 30, "{}", banner.admin_key);
    assert!(banner.config.exists());
    let page = http().get(format!("{}/ui", banner.url)).send().await.unwrap();
    assert_eq!(page.status(), 200, "the dashboard it points to is served");

    // a chat, as a person would start
    let out = tokio::process::Command::from(freeway_bin())
        .args(["chat", "-m", "Say hello", "--url", &banner.url])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());

    let status = || async {
        http()
            .get(format!("{}/admin/status", banner.url))
            .bearer_auth(&banner.admin_key)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let cerebras_rpm = |s: &Value| {
        let p = s["providers"].as_array().unwrap().iter().find(|p| p["id"] == "cerebras-sim").unwrap().clone();
        let q = p["pools"][0]["quota"].as_array().unwrap().iter().find(|q| q["name"] == "rpm").unwrap().clone();
        (q["used"].as_u64().unwrap(), q["limit"].as_u64().unwrap())
    };
    let before = status().await;
    let providers = before["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 3, "{before:#}");
    assert_eq!(providers.iter().map(|p| p["accounts"].as_array().unwrap().len()).sum::<usize>(), 4);
    // `auto` may have sent the first chat there
    let (used, limit) = cerebras_rpm(&before);
    assert_eq!(limit, 4);

    // cerebras-sim allows 4 requests a minute: past that the gateway refuses by itself
    let ask = || async {
        http()
            .post(format!("{}/v1/chat/completions", banner.url))
            .json(&json!({"model": "cerebras-sim/qwen-3-32b", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let mut statuses = Vec::new();
    for _ in used..=limit {
        statuses.push(ask().await);
    }
    let mut expected = vec![200; usize::try_from(limit - used).unwrap()];
    expected.push(429);
    assert_eq!(statuses, expected);
    assert_eq!(cerebras_rpm(&status().await), (4, 4), "the quota bar is full");

    // openrouter-sim's minute limit is not configured: a busy minute runs into its 429, and the
    // account cools down until the time the provider gave
    let cooled = |s: &Value| {
        let now = s["server"]["now_ms"].as_u64().unwrap();
        let p = s["providers"].as_array().unwrap().iter().find(|p| p["id"] == "openrouter-sim").unwrap().clone();
        let a = p["accounts"][0].clone();
        a["state"] == "cooling" && a["until_ms"].as_u64().is_some_and(|u| u.saturating_sub(now) > 10_000)
    };
    let mut cooled_down = false;
    for _ in 0..20 {
        let _ = http()
            .post(format!("{}/v1/chat/completions", banner.url))
            .json(&json!({"model": "openrouter-sim/deepseek/deepseek-chat-v3:free", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        if cooled(&status().await) {
            cooled_down = true;
            break;
        }
    }
    assert!(cooled_down, "{:#}", status().await);

    // Ctrl-C: the gateway and the simulator stop, the demo's folder goes
    signal(child.id(), "-INT");
    let code = tokio::time::timeout(Duration::from_secs(30), tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(code.code(), Some(0));
    let log = reader.join().unwrap();
    assert!(!banner.config.exists(), "the demo's folder is removed: {log}");
    assert!(http().get(format!("{}/health", banner.url)).send().await.is_err(), "nothing answers any more");
}
