//! The edge, tried as a hostile web page, a slow client and a crowd would: bodies must be JSON
//! (415), `Host` must be one the gateway answers to (421), CORS stays off unless configured,
//! unknown clients are refused before their body is read, slow clients are cut off, connections
//! and requests in flight are bounded (503 + Retry-After), and a non-loopback address without
//! client keys is refused at start.

use std::time::{Duration, Instant};

use freeway_integration::{Gateway, Opts, Sim, chat_body, http, provider, run_freeway};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#;

/// Send raw bytes on a fresh connection and read what comes back until the server closes it or
/// `wait` passes; (bytes read, whether the server closed the connection).
async fn raw(gw: &Gateway, bytes: &[u8], wait: Duration) -> (String, bool) {
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    read_for(&mut tcp, wait).await
}

async fn read_for(tcp: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

async fn code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (status, v["error"]["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_refused_with_415_and_never_reaches_upstream() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    // what a web page can send cross-origin without asking first (no preflight)
    for ct in
        [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data; boundary=x"), None]
    {
        let mut req = http().post(gw.url("/v1/chat/completions")).body(CHAT);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let (status, code) = code(req.send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (415, "unsupported_media_type"), "{ct:?}");
    }
    assert!(sim.requests().await.is_empty(), "nothing reached the provider");
    let ok = http().post(gw.url("/v1/chat/completions")).header("content-type", "application/json; charset=utf-8");
    assert_eq!(ok.body(CHAT).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_unknown_host_name_gets_421_and_loopback_names_addresses_and_allowed_names_pass() {
    let sim = Sim::start().await;
    let opts = Opts { server: "allowed_hosts = [\"gw.example.test\"]".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    let port = gw.addr.port();
    // a DNS-rebinding page reaches 127.0.0.1 under its own name
    for path in ["/v1/models", "/ready", "/metrics", "/health"] {
        let head = format!("GET {path} HTTP/1.1\r\nHost: rebind.attacker.example:{port}\r\nConnection: close\r\n\r\n");
        let (text, _) = raw(&gw, head.as_bytes(), Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 421"), "{path}: {text}");
        assert!(text.contains("unknown_host") && text.contains("allowed_hosts"), "{text}");
    }
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: rebind.attacker.example\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{CHAT}",
        CHAT.len()
    );
    let (text, _) = raw(&gw, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 421"), "{text}");
    assert!(sim.requests().await.is_empty());
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), "gw.example.test".into(), "[::1]".into()] {
        let head = format!("GET /v1/models HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (text, _) = raw(&gw, head.as_bytes(), Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{host}: {text}");
    }
}

#[tokio::test]
async fn cors_is_off_unless_the_origin_is_configured() {
    let sim = Sim::start().await;
    let opts = Opts { server: "cors_origins = [\"https://chat.example.test\"]".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    let preflight = |origin: &'static str| {
        http()
            .request(reqwest::Method::OPTIONS, gw.url("/v1/chat/completions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, authorization")
            .send()
    };
    let evil = preflight("https://evil.example.test").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none(), "{:?}", evil.headers());
    let good = preflight("https://chat.example.test").await.unwrap();
    assert_eq!(good.headers()["access-control-allow-origin"], "https://chat.example.test");
    let methods = good.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let get = |origin: &'static str| http().get(gw.url("/v1/models")).header("origin", origin).send();
    assert!(get("https://evil.example.test").await.unwrap().headers().get("access-control-allow-origin").is_none());
    assert!(get("https://chat.example.test").await.unwrap().headers().get("access-control-allow-origin").is_some());

    // and with nothing configured, no origin is allowed
    let plain = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let r = http()
        .request(reqwest::Method::OPTIONS, plain.url("/v1/chat/completions"))
        .header("origin", "https://chat.example.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn an_unknown_client_is_refused_before_its_body_is_read() {
    let sim = Sim::start().await;
    let opts = Opts { server: "api_keys = [\"fw-client-key-1\"]".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    // announces 10 MiB and sends none of it: the answer comes from the headers alone
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n";
    let started = Instant::now();
    let (text, _) = raw(&gw, head.as_bytes(), Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // with the key, the same request waits for its body
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer fw-client-key-1\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n";
    let (text, _) = raw(&gw, head.as_bytes(), Duration::from_millis(500)).await;
    assert!(text.is_empty(), "{text}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let sim = Sim::start().await;
    let opts = Opts { server: "body_read_timeout_ms = 300".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":";
    let (text, _) = raw(&gw, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_at_the_header_timeout() {
    let sim = Sim::start().await;
    let opts = Opts { server: "header_read_timeout_ms = 400".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    // slow loris: a header line every 150 ms, never finished
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    let started = Instant::now();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    let mut closed = false;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if tcp.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
            closed = true;
            break;
        }
        let (_, gone) = read_for(&mut tcp, Duration::from_millis(1)).await;
        if gone {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow client was never cut off");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // a connection that never sends anything is closed too
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    let (_, gone) = read_for(&mut idle, Duration::from_secs(3)).await;
    assert!(gone, "an idle connection is closed");
    assert_eq!(gw.get("/health").await.status(), 200);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let sim = Sim::start().await;
    let opts = Opts { server: "max_connections = 2".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    let hold_a = TcpStream::connect(gw.addr).await.unwrap();
    let hold_b = TcpStream::connect(gw.addr).await.unwrap();
    // the third connection is accepted by the kernel but not served while two are open
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    third.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let (text, _) = read_for(&mut third, Duration::from_millis(500)).await;
    assert!(text.is_empty(), "served beyond the cap: {text}");
    drop(hold_a);
    let (text, _) = read_for(&mut third, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    drop(hold_b);
}

#[tokio::test]
async fn requests_beyond_the_in_flight_bound_wait_then_get_503_with_retry_after() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "latency_ms": 1500}]})).await;
    let opts = Opts { server: "max_in_flight = 2\nqueue_timeout_ms = 200".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    let send = || http().post(gw.url("/v1/chat/completions")).json(&chat_body("m")).send();
    let (a, b) = (tokio::spawn(send()), tokio::spawn(send()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shed = send().await.unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let (_, c) = code(shed).await;
    assert_eq!(c, "gateway_overloaded");
    // the server itself keeps answering
    assert_eq!(gw.get("/health").await.status(), 200);
    assert_eq!(a.await.unwrap().unwrap().status(), 200);
    assert_eq!(b.await.unwrap().unwrap().status(), 200);
    // slots come back when responses are done
    assert_eq!(send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_provider_at_its_in_flight_bound_is_passed_over_for_the_next() {
    let slow = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "latency_ms": 1500}]})).await;
    let fast = Sim::start().await;
    let opts = Opts { upstream: "max_in_flight_per_provider = 1".into(), ..Default::default() };
    let providers = provider("slow", &slow.base(), &["k"], &["m"]) + &provider("fast", &fast.base(), &["k"], &["m"]);
    let gw = Gateway::start_opts(&providers, opts).await;
    let first = tokio::spawn(http().post(gw.url("/v1/chat/completions")).json(&chat_body("m")).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // `slow` holds its one slot: the next request goes to `fast` at once
    let started = Instant::now();
    let second = gw.chat(chat_body("m")).await;
    assert_eq!(second.status(), 200);
    assert!(second.headers()["x-freeway-route"].to_str().unwrap().contains("provider=fast"));
    assert!(started.elapsed() < Duration::from_millis(1000));
    let first = first.await.unwrap().unwrap();
    assert!(first.headers()["x-freeway-route"].to_str().unwrap().contains("provider=slow"));

    // one provider only, busy: 503 with Retry-After, not a wait
    let gw = Gateway::start_opts(
        &provider("slow", &slow.base(), &["k"], &["m"]),
        Opts { upstream: "max_in_flight_per_provider = 1".into(), ..Default::default() },
    )
    .await;
    let first = tokio::spawn(http().post(gw.url("/v1/chat/completions")).json(&chat_body("m")).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = gw.chat(chat_body("m")).await;
    assert_eq!(busy.status(), 503);
    assert!(busy.headers().contains_key("retry-after"));
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
}

#[tokio::test]
async fn a_non_loopback_address_without_client_keys_is_refused_unless_explicitly_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("freeway.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\nproviders_dir = \"{d}/providers\"\npolicies_dir = \"{d}/policies\"\ncache_dir = \"{d}/cache\"\n[discovery]\ninterval_secs = 0\nstate_file = \"{d}/models.json\"\n[vault]\npath = \"{d}/vault.json\"\nkey_file = \"{d}/master.key\"\naudit_log = \"{d}/audit.log\"\nhealth_file = \"{d}/health.json\"\n[storage]\nurl = \"sqlite://{d}/freeway.db\"\n[quota]\nstate_file = \"{d}/quota.json\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let cfg = config.display().to_string();
    let (status, out, err) = run_freeway(&["serve", "--listen", "0.0.0.0:0", "--config", &cfg], "").await;
    assert_eq!(status, 2, "{out}{err}");
    assert!(err.contains("--insecure-no-auth") && err.contains("FREEWAY_API_KEY"), "{err}");
    assert!(!out.contains("listening"), "{out}");

    // the explicit opt-in starts, and says so loudly
    for (flag, env) in [(Some("--insecure-no-auth"), None), (None, Some(("FREEWAY_API_KEY", "fw-from-env-1")))] {
        let mut cmd = freeway_integration::freeway_bin();
        cmd.args(["serve", "--listen", "0.0.0.0:0", "--config", &cfg]);
        if let Some(f) = flag {
            cmd.arg(f);
        }
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let mut child = tokio::process::Command::from(cmd)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 512];
        let started = Instant::now();
        while !seen.contains("listening") && started.elapsed() < Duration::from_secs(30) {
            match tokio::time::timeout(Duration::from_secs(30), stdout.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => break,
            }
        }
        assert!(seen.contains("listening"), "{flag:?} {env:?}: {seen}");
        // the serve log (on stdout) warns before it listens
        assert_eq!(seen.contains("NO client authentication"), flag.is_some(), "{seen}");
        child.kill().await.unwrap();
        let _ = child.wait().await;
    }
}

#[tokio::test]
async fn keys_echoed_in_successful_answers_and_streams_never_reach_the_client() {
    const KEY: &str = "sk-echoed-by-upstream-0123456789";
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "keys": [KEY], "models": ["m"]}]})).await;
    let gw = Gateway::start(&provider("local", &sim.base(), &[KEY], &["m"])).await;
    let echo = format!("your key is {KEY} and its tail {}", &KEY[10..]);
    sim.script(json!([{"times": 2, "action": {"type": "reply", "content": echo}}])).await;
    let text = gw.chat(chat_body("m")).await.text().await.unwrap();
    assert!(text.contains("[redacted]"), "{text}");
    assert!(!text.contains(&KEY[10..]), "{text}");
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    let text = gw.chat(body).await.text().await.unwrap();
    assert!(text.contains("[redacted]"), "{text}");
    assert!(!text.contains(&KEY[10..]), "{text}");
    // and an error event mid-stream
    sim.script(json!([{"action": {"type": "mid_stream_error", "chunks": 1, "error": {"code": 502, "message": format!("bad key {KEY}")}}}]))
        .await;
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    let text = gw.chat(body).await.text().await.unwrap();
    assert!(!text.contains(&KEY[10..]), "{text}");
}

#[tokio::test]
async fn admin_vault_work_waits_for_the_lock_off_the_async_workers_and_gives_up_with_a_clear_error() {
    let sim = Sim::start().await;
    let opts = Opts { server: "admin_key = \"fw-admin-edge-123\"".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    // another process is in the middle of a change and holds the vault's lock
    let vault = gw.dir.path().join("data/vault.json");
    let held = freeway::vault::VaultLock::exclusive(&vault, Duration::from_secs(1)).unwrap();
    let add = http()
        .post(gw.url("/admin/accounts"))
        .bearer_auth("fw-admin-edge-123")
        .json(&json!({"provider": "local", "key": "sk-added-while-locked-0001"}))
        .timeout(Duration::from_secs(30))
        .send();
    let waiting = tokio::spawn(add);
    // the server (on this test's single-threaded runtime) keeps answering meanwhile
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        assert_eq!(gw.get("/health").await.status(), 200);
        assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
    }
    // given up after the lock wait, with a message that says why
    let resp = waiting.await.unwrap().unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("locked by another process"), "{text}");
    drop(held);
    let ok = http()
        .post(gw.url("/admin/accounts"))
        .bearer_auth("fw-admin-edge-123")
        .json(&json!({"provider": "local", "key": "sk-added-after-unlock-0001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201, "{}", ok.text().await.unwrap());
}
