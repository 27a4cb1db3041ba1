//! Client mistakes: every one is a 4xx with an OpenAI error body naming what is wrong; never a
//! 5xx, never a panic, and nothing reaches the upstream.

use freeway_integration::{Gateway, Sim, http, provider};
use serde_json::Value;

async fn send_raw(gw: &Gateway, body: Vec<u8>) -> (u16, Value) {
    let r = http()
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("OpenAI-shaped JSON error body");
    (status, v)
}

fn assert_openai_error(v: &Value) {
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e["code"].is_string(), "{v}");
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_get_clear_4xx_errors() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let cases: &[(&[u8], u16, &str, Option<&str>)] = &[
        (b"{\"model\": \"m\", \"messages\": [", 400, "invalid_json", None),
        (b"not json at all", 400, "invalid_json", None),
        (b"", 400, "invalid_json", None),
        (b"[]", 400, "invalid_json", None),
        (br#"{"model":"m"}"#, 400, "missing_required_parameter", Some("messages")),
        (br#"{"messages":[{"role":"user","content":"x"}]}"#, 400, "missing_required_parameter", Some("model")),
        (br#"{"model":"m","messages":"hello"}"#, 400, "invalid_type", Some("messages")),
        (br#"{"model":["m"],"messages":[{"role":"user","content":"x"}]}"#, 400, "invalid_type", Some("model")),
        (
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
            400,
            "invalid_type",
            Some("stream"),
        ),
        (
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"lots"}"#,
            400,
            "invalid_type",
            Some("max_tokens"),
        ),
        (
            br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
            400,
            "invalid_value",
            Some("messages[0].role"),
        ),
        (
            br#"{"model":"does-not-exist","messages":[{"role":"user","content":"x"}]}"#,
            404,
            "model_not_found",
            Some("model"),
        ),
    ];
    for (body, status, code, param) in cases {
        let (s, v) = send_raw(&gw, body.to_vec()).await;
        let shown = String::from_utf8_lossy(body);
        assert_eq!(s, *status, "{shown}: {v}");
        assert_openai_error(&v);
        assert_eq!(v["error"]["code"], *code, "{shown}");
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], *p, "{shown}");
        }
    }
    assert!(sim.requests().await.is_empty(), "bad requests must not reach the upstream");
}

#[tokio::test]
async fn invalid_utf8_is_a_400() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let mut body = br#"{"model":"m","messages":[{"role":"user","content":""#.to_vec();
    body.extend_from_slice(&[0xC3, 0x28, 0xFF]);
    body.extend_from_slice(br#""}]}"#);
    let (s, v) = send_raw(&gw, body).await;
    assert_eq!(s, 400);
    assert_openai_error(&v);
    assert!(v["error"]["message"].as_str().unwrap().contains("UTF-8"));
}

#[tokio::test]
async fn oversized_body_is_a_413() {
    let sim = Sim::start().await;
    let opts = freeway_integration::Opts { server: "max_body_bytes = 4096".into(), ..Default::default() };
    let gw = Gateway::start_opts(&provider("local", &sim.base(), &["k"], &["m"]), opts).await;
    let big = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(10_000));
    let (s, v) = send_raw(&gw, big.into_bytes()).await;
    assert_eq!(s, 413);
    assert_eq!(v["error"]["code"], "request_too_large");
    // and without a content-length (chunked upload)
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![b'{'; 3000]), Ok(vec![b' '; 3000])];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = http()
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_openai_errors() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let r = gw.get("/v1/nothing-here").await;
    assert_eq!(r.status(), 404);
    assert_openai_error(&r.json().await.unwrap());
    let r = gw.get("/v1/chat/completions").await;
    assert_eq!(r.status(), 405);
    assert_openai_error(&r.json().await.unwrap());
}
