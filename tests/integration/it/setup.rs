//! `freeway setup`: driven through a pseudo-terminal as a person would (type to find a provider,
//! space to pick it, a hidden key, Enter), and non-interactively; each new key is checked against
//! the simulator, a refused one is named and taken out, a re-run keeps what is there, and
//! `freeway serve` then serves with what setup wrote.

use std::time::Duration;

use freeway_integration::{Served, binary_config, chat_body, http, root, run_freeway};

use crate::accounts::{GROQ_KEYS, sims};

/// A configuration whose catalog puts Groq and OpenRouter at the simulator.
async fn setup_config(dir: &std::path::Path) -> (freeway_integration::Sim, String) {
    let (sim, catalog) = sims(&GROQ_KEYS).await;
    let config = binary_config(dir, &format!("http://{}/v1", sim.sim.addr()), "", &dir.join("data/freeway.db"));
    std::fs::write(dir.join("catalog.toml"), catalog).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = format!("[catalog]\nfiles = [\"{}\"]\n\n{text}", dir.join("catalog.toml").display());
    std::fs::write(&config, text).unwrap();
    (sim, config)
}

#[tokio::test]
async fn setup_in_a_terminal_then_non_interactively_checks_keys_and_keeps_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, config) = setup_config(dir.path()).await;

    // a person: finds Groq by typing, picks it, pastes a key (hidden)
    let plan = serde_json::json!([
        {"expect": "Which providers", "send": "groq"},
        {"expect": "groq", "send": " "},
        {"send": "\r"},
        {"expect": "Groq API key:", "send": format!("{}\r", GROQ_KEYS[0])},
        {"expect": "ok      groq"},
        {"expect": "freeway serve"},
        {"expect": "freeway chat"}
    ]);
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();
    let bin =
        std::env::var("FREEWAY_BIN").map_or_else(|_| root().join("target/debug/freeway"), std::path::PathBuf::from);
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(root().join("tests/integration/tools/pty_drive.py"))
            .arg(&plan_path)
            .arg("--")
            .arg(&bin)
            .args(["setup", "--config", &config])
            .env("TERM", "xterm")
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{transcript}");
    assert!(!transcript.contains(GROQ_KEYS[0]), "the key was echoed: {transcript}");

    // a script: a bad OpenRouter key and a second Groq key, from stdin
    let (code, stdout, stderr) = run_freeway(
        &["setup", "--non-interactive", "--provider", "openrouter", "--provider", "groq", "--config", &config],
        &format!("sk-or-v1-not-a-real-key-000000\n{}\n", GROQ_KEYS[1]),
    )
    .await;
    assert_eq!(code, 1, "a refused key fails a script: {stdout}{stderr}");
    assert!(stdout.contains("FAILED  openrouter") && stdout.contains("taken out"), "{stdout}");
    assert!(stdout.contains("ok      groq"), "{stdout}");
    assert!(!stdout.contains(GROQ_KEYS[1]) && !stdout.contains("not-a-real-key"), "{stdout}");

    // the first run's account is still there, the refused one is not
    let (code, list, err) = run_freeway(&["accounts", "list", "--config", &config], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(list.lines().filter(|l| l.contains(" groq ")).count(), 2, "{list}");
    assert!(!list.contains("openrouter"), "{list}");

    // and the gateway serves with it
    let mut served = Served::start(&config).await;
    let r = http()
        .post(served.url("/v1/chat/completions"))
        .json(&chat_body("groq/llama-3.1-8b-instant"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", served.log());
    assert!(served.terminate().await);
    drop(sim);
}

#[tokio::test]
async fn setup_without_a_terminal_says_how_to_script_it() {
    let (code, _, err) = run_freeway(&["setup"], "").await;
    assert_eq!(code, 2);
    assert!(err.contains("--non-interactive"), "{err}");
    let (code, _, err) = run_freeway(&["setup", "--non-interactive", "--provider", "no-such-provider"], "k\n").await;
    assert_eq!(code, 2);
    assert!(err.contains("not in the catalog"), "{err}");
}
