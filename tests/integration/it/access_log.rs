//! The access log and the request id, on the real binary: one info line per API request
//! (success, stream, client mistakes, a refused key), written when the response has ended (a
//! stream's at its end, not when its headers went), with the request id the client sent (when
//! sane) or a generated one, echoed in `x-request-id` on every response; no key in any line.

use std::collections::HashMap;
use std::time::Duration;

use freeway_integration::{Served, Sim, binary_config, chat_body, eventually, http};
use serde_json::json;

const UPSTREAM_KEY: &str = "sk-access-upstream-0123456789";
const CLIENT_KEY: &str = "fw-access-client-key-9876";

/// The fields of one access line (`... INFO access request_id=... client="key-1" ...`).
fn fields(line: &str) -> HashMap<String, String> {
    let rest = line.split_once(" access ").map_or("", |(_, r)| r);
    let mut out = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ' ').collect();
        }
        out.insert(key, value);
    }
}

fn access_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" INFO ") && l.contains(" access request_id=")).collect()
}

/// The access line of request `id`, once it is there (exactly one).
async fn line_of(server: &Served, id: &str) -> HashMap<String, String> {
    let needle = format!(" access request_id={id} ");
    let found = eventually(Duration::from_secs(5), || async { server.log().contains(&needle) }).await;
    let log = server.log();
    assert!(found, "no access line for {id}:\n{log}");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&needle)).collect();
    assert_eq!(lines.len(), 1, "one line per request: {lines:?}");
    assert!(lines[0].contains(" INFO "), "{}", lines[0]);
    fields(lines[0])
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn one_access_line_per_api_request_with_its_request_id_and_never_a_key() {
    // slow tokens (streams only), so that a stream's end comes well after its headers
    let sim =
        Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "token_delay_ms": 150, "reply_tokens": 6}]})).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("usage.db");
    let extra = format!("api_keys = [{{ key = \"{UPSTREAM_KEY}\", label = \"work\" }}]\n");
    let cfg = binary_config(dir.path(), &sim.base(), &extra, &db);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("\n[server]\napi_keys = [\"{CLIENT_KEY}\"]\n"));
    std::fs::write(&cfg, text).unwrap();
    let server = Served::start(&cfg).await;
    let chat =
        |body: serde_json::Value| http().post(server.url("/v1/chat/completions")).bearer_auth(CLIENT_KEY).json(&body);

    // a sane id is kept and echoed
    let r = chat(chat_body("m")).header("x-request-id", "client-req-0001").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(request_id(&r), "client-req-0001");
    drop(r.text().await);
    let f = line_of(&server, "client-req-0001").await;
    assert_eq!(f["client"], "key-1");
    assert_eq!(f["model"], "m");
    assert_eq!(f["provider"], "p");
    assert_eq!(f["model_used"], "m");
    assert_eq!(f["account"], "work");
    assert_eq!(f["status"], "200");
    assert_eq!(f["attempts"], "1");
    assert_eq!(f["stream"], "false");
    assert_eq!(f["completion_tokens"], "6");
    assert!(f["prompt_tokens"].parse::<u64>().unwrap() > 0);
    assert!(f["latency_ms"].parse::<u64>().is_ok(), "{f:?}");
    assert!(!f.contains_key("ttft_ms") && !f.contains_key("error"), "{f:?}");

    // none sent, or an insane one: a fresh id, echoed and logged
    let r = chat(chat_body("m")).send().await.unwrap();
    let fresh = request_id(&r);
    assert!(is_generated(&fresh), "{fresh}");
    drop(r.text().await);
    assert_eq!(line_of(&server, &fresh).await["status"], "200");
    let r = chat(chat_body("m")).header("x-request-id", "two words").send().await.unwrap();
    let replaced = request_id(&r);
    assert!(is_generated(&replaced) && replaced != fresh, "{replaced}");
    drop(r.text().await);
    line_of(&server, &replaced).await;

    // a stream is logged when it ends, not when its headers are sent
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    let r = chat(body).header("x-request-id", "stream-1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(request_id(&r), "stream-1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!server.log().contains("request_id=stream-1 "), "logged before the stream ended");
    let streamed = r.text().await.unwrap();
    assert!(streamed.contains("[DONE]"));
    let f = line_of(&server, "stream-1").await;
    assert_eq!(f["stream"], "true");
    assert_eq!(f["status"], "200");
    assert_eq!(f["outcome"], "ok");
    assert_eq!(f["completion_tokens"], "6");
    let ttft: u64 = f["ttft_ms"].parse().unwrap();
    let latency: u64 = f["latency_ms"].parse().unwrap();
    assert!(ttft < latency && latency >= 700, "first token {ttft} ms, end {latency} ms");

    // failures carry the id too, and say why
    let r = chat(chat_body("nope")).header("x-request-id", "missing-model").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(request_id(&r), "missing-model");
    let f = line_of(&server, "missing-model").await;
    assert_eq!((f["status"].as_str(), f["error"].as_str(), f["model"].as_str()), ("404", "model_not_found", "nope"));
    assert!(!f.contains_key("provider"), "{f:?}");
    let r = http()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth("fw-wrong-key")
        .header("x-request-id", "wrong-key")
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(request_id(&r), "wrong-key");
    let f = line_of(&server, "wrong-key").await;
    assert_eq!((f["status"].as_str(), f["error"].as_str()), ("401", "invalid_api_key"));
    assert!(!f.contains_key("client"), "an unauthenticated request has no client: {f:?}");

    // the models list is API too; health checks are not logged at info
    let r = http()
        .get(server.url("/v1/models"))
        .bearer_auth(CLIENT_KEY)
        .header("x-request-id", "list")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(line_of(&server, "list").await["client"], "key-1");
    let r = http().get(server.url("/health")).header("x-request-id", "health-1").send().await.unwrap();
    assert_eq!(request_id(&r), "health-1", "every response carries the id");
    let r = http().get(server.url("/no/such/route")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(is_generated(&request_id(&r)));

    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log();
    assert!(!log.contains("request_id=health-1 "), "{log}");
    assert_eq!(access_lines(&log).len(), 7, "seven API requests:\n{log}");
    assert!(!log.contains(UPSTREAM_KEY) && !log.contains(CLIENT_KEY), "a key reached the log:\n{log}");
}
