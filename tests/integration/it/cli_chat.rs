//! `freeway chat` against a gateway over the simulator, as a script uses it: `-m` or a prompt on
//! stdin prints only the answer; a refusal is said on stderr with a non-zero exit.

use std::time::Duration;

use freeway_integration::{Gateway, Sim, freeway_bin, provider};
use serde_json::json;

async fn chat(args: &[&str], stdin: &str) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::from(freeway_bin())
        .arg("chat")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn chat_m_prints_only_the_streamed_answer_and_reads_stdin_too() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["sk-chat-1"], &["m"])).await;
    let url = format!("http://{}", gw.addr);
    let answer = "Paris is the capital of France, on the Seine.";
    sim.script(json!([{"match": {"model": "m"}, "action": {"type": "reply", "content": answer}}])).await;

    let (code, out, err) = chat(&["-m", "What is the capital of France?", "--model", "m", "--url", &url], "").await;
    assert_eq!((code, out.as_str()), (0, format!("{answer}\n").as_str()), "{err}");
    let (code, out, err) = chat(&["--model", "m", "--url", &url], "What is the capital of France?\n").await;
    assert_eq!((code, out.as_str()), (0, format!("{answer}\n").as_str()), "{err}");

    // what reached the provider: the prompt, streamed
    let asked = sim.requests().await;
    let last = asked.iter().rev().find(|r| r["body"]["messages"].is_array()).unwrap();
    assert_eq!(last["body"]["messages"][0]["content"], "What is the capital of France?", "{last}");
    assert_eq!(last["body"]["stream"], true);
}

#[tokio::test]
async fn chat_m_says_why_on_stderr_when_the_gateway_refuses() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["sk-chat-2"], &["m"])).await;
    let url = format!("http://{}", gw.addr);
    let (code, out, err) = chat(&["-m", "hi", "--model", "no-such-model", "--url", &url], "").await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("HTTP 404") && err.contains("no-such-model"), "{err}");
    let (code, _, err) = chat(&["-m", "hi", "--url", "http://127.0.0.1:9"], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("connection failed"), "{err}");
}

/// Run `freeway chat ARGS` in a pseudo-terminal, typing as `plan` says (see
/// `tools/pty_drive.py`); (met every expectation, transcript).
async fn chat_in_a_terminal(args: &[&str], env: &[(&str, &str)], plan: &serde_json::Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();
    let bin = std::env::var("FREEWAY_BIN")
        .map_or_else(|_| freeway_integration::root().join("target/debug/freeway"), std::path::PathBuf::from);
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(freeway_integration::root().join("tests/integration/tools/pty_drive.py"))
        .arg(&plan_path)
        .arg("--")
        .arg(bin)
        .arg("chat")
        .args(args)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.unwrap().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn the_interactive_chat_streams_shows_the_route_and_ctrl_c_stops_only_the_answer() {
    let sim = Sim::start().await;
    let opts = freeway_integration::Opts { server: "admin_key = \"fw-chat-admin\"".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["sk-chat-3"], &["m"]), opts).await;
    let url = format!("http://{}", gw.addr);
    sim.script(json!([
        {"match": {"model": "m"}, "times": 1, "action": {"type": "reply", "content": "The answer is 42."}},
        {"match": {"model": "m"}, "times": 1, "action": {"type": "stall_after", "chunks": 3}}
    ]))
    .await;
    let plan = json!([
        {"expect": "you> ", "send": "what is six times seven?\r"},
        {"expect": "The answer is 42."},
        // the line after the answer: where it went and how fast
        {"expect": "local · m · account "},
        {"expect": "first token "},
        {"expect": "you> ", "send": "/route\r"},
        // a model asked for by name is not ranked by a policy: the gateway says so
        {"expect": "not routed by a policy"},
        {"expect": "answered by local/m (account local#1, 1 attempt(s))"},
        {"expect": "you> ", "send": "and what about eight?\r"},
        // the stalled answer has begun: Ctrl-C stops it, the session goes on
        {"expect": "tok0", "send": "\u{3}"},
        {"expect": "stopped"},
        {"expect": "you> ", "send": "/model auto:code\r"},
        {"expect": "model: auto:code"},
        {"expect": "you> ", "send": "\u{4}"}
    ]);
    let (ok, transcript) =
        chat_in_a_terminal(&["--model", "m", "--url", &url], &[("FREEWAY_ADMIN_KEY", "fw-chat-admin")], &plan).await;
    assert!(ok, "{transcript}");
    // the conversation went to the provider with its history
    let asked: Vec<serde_json::Value> =
        sim.requests().await.into_iter().filter(|r| r["body"]["messages"].is_array()).collect();
    let second = &asked.last().unwrap()["body"]["messages"];
    assert_eq!(second.as_array().unwrap().len(), 3, "{second}");
    assert_eq!(second[1]["content"], "The answer is 42.");
}
