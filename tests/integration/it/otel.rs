//! OpenTelemetry traces, on the real binary, received by an OTLP/HTTP collector in this
//! process: one span per API request (a child of the caller's `traceparent` when it sends one),
//! with children for the classifier, the policy and its guest call, each attempt and the
//! provider component's calls; failures marked as errors with their type; no key anywhere in
//! what is exported. Disabled (`OTEL_SDK_DISABLED`) or asked for a protocol not built in,
//! nothing is sent and the gateway serves as before.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use freeway_integration::{Served, Sim, binary_config, chat_body, eventually, freeway_bin, http};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use prost::Message as _;
use serde_json::json;

const UPSTREAM_KEY: &str = "sk-otel-upstream-0123456789";
const SPARE_KEY: &str = "sk-otel-spare-9876543210";
const CLIENT_KEY: &str = "fw-otel-client-key-5555";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP trace receiver on a loopback port: every export's raw bytes and spans.
#[derive(Clone, Default)]
struct Collector {
    raw: Arc<Mutex<Vec<u8>>>,
    spans: Arc<Mutex<Vec<Span>>>,
    exports: Arc<Mutex<u32>>,
}

impl Collector {
    async fn start() -> (Collector, String) {
        let c = Collector::default();
        let app = axum::Router::new().route("/v1/traces", post(receive)).with_state(c.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (c, format!("http://{addr}"))
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    fn exports(&self) -> u32 {
        *self.exports.lock().unwrap()
    }

    /// The spans of the request whose `freeway.request_id` is `id`, once that request's span
    /// and `at_least` spans of its trace have arrived.
    async fn trace_of(&self, id: &str, at_least: usize) -> Vec<Span> {
        let found = eventually(Duration::from_secs(15), || async {
            let spans = self.spans();
            let Some(root) = spans.iter().find(|s| attr(s, "freeway.request_id").as_deref() == Some(id)) else {
                return false;
            };
            spans.iter().filter(|s| s.trace_id == root.trace_id).count() >= at_least
        })
        .await;
        let spans = self.spans();
        assert!(found, "no complete trace for {id}: {:#?}", names(&spans));
        let root = spans.iter().find(|s| attr(s, "freeway.request_id").as_deref() == Some(id)).unwrap();
        spans.iter().filter(|s| s.trace_id == root.trace_id).cloned().collect()
    }
}

async fn receive(State(c): State<Collector>, body: Bytes) -> &'static str {
    let req = ExportTraceServiceRequest::decode(body.as_ref()).expect("an OTLP protobuf export");
    c.raw.lock().unwrap().extend_from_slice(&body);
    *c.exports.lock().unwrap() += 1;
    let mut spans = c.spans.lock().unwrap();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.clone());
        assert_eq!(service, Some(Any::StringValue("freeway".into())), "service.name");
        spans.extend(rs.scope_spans.into_iter().flat_map(|ss| ss.spans));
    }
    ""
}

fn attr(span: &Span, key: &str) -> Option<String> {
    let v = span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match v {
        Any::StringValue(s) => s.clone(),
        Any::IntValue(i) => i.to_string(),
        Any::BoolValue(b) => b.to_string(),
        Any::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn named<'s>(spans: &'s [Span], name: &str) -> Vec<&'s Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'s>(spans: &'s [Span], name: &str) -> &'s Span {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name} span in {:#?}", names(spans));
    found[0]
}

fn is_error(span: &Span) -> bool {
    span.status.as_ref().is_some_and(|s| s.code == StatusCode::Error as i32)
}

fn serve_cmd(config: &str, endpoint: Option<&str>) -> std::process::Command {
    let mut cmd = freeway_bin();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config", config]);
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        cmd.env_remove(var);
    }
    for var in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME"] {
        cmd.env_remove(var);
    }
    if let Some(endpoint) = endpoint {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint).env("OTEL_BSP_SCHEDULE_DELAY", "100");
    }
    cmd
}

fn config(dir: &std::path::Path, sim: &Sim) -> String {
    let db = dir.join("usage.db");
    let extra = format!("api_keys = [{{ key = \"{UPSTREAM_KEY}\", label = \"work\" }}]\n");
    let cfg = binary_config(dir, &sim.base(), &extra, &db);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    // `q` always fails with a 500
    text.push_str(&format!(
        "\n[[providers]]\nid = \"q\"\nbase_url = \"{}\"\nmodels = [\"m\"]\n\
         api_keys = [{{ key = \"{SPARE_KEY}\", label = \"spare\" }}]\n\n[server]\napi_keys = [\"{CLIENT_KEY}\"]\n",
        sim.url("/bad")
    ));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// The simulator (`/v1` answers, `/bad` always fails), a collector, and a gateway config over
/// them.
struct Rig {
    _sim: Sim,
    _dir: tempfile::TempDir,
    collector: Collector,
    endpoint: String,
    cfg: String,
}

impl Rig {
    async fn start() -> Rig {
        let sim = Sim::start_json(json!({"upstreams": [
            {"prefix": "/v1", "token_delay_ms": 20, "reply_tokens": 5},
            {"prefix": "/bad", "error_per_mille": 1000}
        ]}))
        .await;
        let (collector, endpoint) = Collector::start().await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &sim);
        Rig { _sim: sim, _dir: dir, collector, endpoint, cfg }
    }

    /// `freeway serve` exporting to the collector.
    fn serve_cmd(&self) -> std::process::Command {
        serve_cmd(&self.cfg, Some(&self.endpoint))
    }
}

/// A chat request to `server` with the client key and the request id `id`.
fn chat(server: &Served, body: &serde_json::Value, id: &str) -> reqwest::RequestBuilder {
    http().post(server.url("/v1/chat/completions")).bearer_auth(CLIENT_KEY).header("x-request-id", id).json(body)
}

#[tokio::test]
async fn each_request_is_exported_as_a_trace_with_its_steps_and_never_a_key() {
    let rig = Rig::start().await;
    let collector = &rig.collector;
    let server = Served::spawn(rig.serve_cmd()).await;
    assert!(
        server.log().contains(&format!("exporting traces over OTLP to {}/v1/traces", rig.endpoint)),
        "{}",
        server.log()
    );
    let chat = |body: serde_json::Value, id: &str| chat(&server, &body, id);

    // `auto`, inside the caller's trace: classify, policy (its guest call), attempt (the
    // provider's guest call) under the request's span, which is the caller's span's child
    let prompt = "Write a Python function that parses ISO dates and add unit tests";
    let body = json!({ "model": "auto", "messages": [{ "role": "user", "content": prompt }] });
    let r =
        chat(body, "otel-auto").header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(r.text().await);
    let spans = collector.trace_of("otel-auto", 6).await;
    let root = one(&spans, "POST /v1/chat/completions");
    assert_eq!(hex(&root.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(hex(&root.parent_span_id), PARENT_ID, "the caller's span is the parent");
    assert_eq!(root.kind, SpanKind::Server as i32);
    let a = |k: &str| attr(root, k).unwrap_or_else(|| panic!("{k} missing on {root:#?}"));
    assert_eq!(a("http.response.status_code"), "200");
    assert_eq!(a("gen_ai.operation.name"), "chat");
    assert_eq!(a("gen_ai.request.model"), "auto");
    assert_eq!(a("gen_ai.response.model"), "m");
    assert_eq!(a("gen_ai.provider.name"), "p");
    assert_eq!(a("gen_ai.usage.output_tokens"), "5");
    assert_eq!(a("freeway.client"), "key-1");
    assert_eq!(a("freeway.account"), "work");
    assert_eq!(a("freeway.attempts"), "1");
    assert!(!is_error(root));
    let classify = one(&spans, "classify");
    assert_eq!(classify.parent_span_id, root.span_id);
    assert_eq!(attr(classify, "freeway.task").as_deref(), Some("code"));
    let policy = one(&spans, "policy");
    assert_eq!(policy.parent_span_id, root.span_id);
    assert_eq!(attr(policy, "freeway.policy").as_deref(), Some("smart"));
    let rank = one(&spans, "guest rank");
    assert_eq!(rank.parent_span_id, policy.span_id, "the policy's guest call is the policy's child");
    let attempt = one(&spans, "attempt");
    assert_eq!(attempt.parent_span_id, root.span_id);
    assert_eq!(attempt.kind, SpanKind::Client as i32);
    assert_eq!(attr(attempt, "gen_ai.provider.name").as_deref(), Some("p"));
    let plan = one(&spans, "guest chat");
    assert_eq!(plan.parent_span_id, attempt.span_id, "the provider's guest call is the attempt's child");
    assert_eq!(attr(plan, "freeway.component").as_deref(), Some("openai-compat"));
    for child in [classify, policy, attempt] {
        assert!(child.start_time_unix_nano >= root.start_time_unix_nano, "{child:#?}");
        assert!(child.end_time_unix_nano <= root.end_time_unix_nano, "{child:#?}");
    }

    // a stream's span ends with the stream and says when its first token came
    let mut body = chat_body("p/m");
    body["stream"] = json!(true);
    let r = chat(body, "otel-stream").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("[DONE]"));
    let spans = collector.trace_of("otel-stream", 3).await;
    let root = one(&spans, "POST /v1/chat/completions");
    assert_eq!(attr(root, "freeway.stream").as_deref(), Some("true"));
    assert_eq!(attr(root, "freeway.outcome").as_deref(), Some("ok"));
    assert!(attr(root, "freeway.ttft_ms").is_some(), "{root:#?}");
    assert_eq!(attr(root, "gen_ai.usage.output_tokens").as_deref(), Some("5"));
    assert_ne!(hex(&root.trace_id), TRACE_ID, "no traceparent: a trace of its own");
    assert!(root.parent_span_id.is_empty());
    // 100 ms of token delays at least, all inside the request's span
    assert!(root.end_time_unix_nano - root.start_time_unix_nano >= 100_000_000, "{root:#?}");

    // a provider that fails: every attempt an error with its type, the request too
    let r = chat(chat_body("q/m"), "otel-fail").send().await.unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    drop(r.text().await);
    let spans = collector.trace_of("otel-fail", 3).await;
    let root = one(&spans, "POST /v1/chat/completions");
    assert!(is_error(root), "{root:#?}");
    assert!(attr(root, "error.type").is_some(), "{root:#?}");
    let attempts = named(&spans, "attempt");
    assert!(!attempts.is_empty());
    for at in &attempts {
        assert!(is_error(at), "{at:#?}");
        assert_eq!(attr(at, "gen_ai.provider.name").as_deref(), Some("q"));
        assert!(attr(at, "error.type").is_some_and(|t| !t.is_empty()), "{at:#?}");
    }

    // a client mistake is a span too, with the status it was given
    let r = chat(chat_body("nope"), "otel-404").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let spans = collector.trace_of("otel-404", 1).await;
    let root = one(&spans, "POST /v1/chat/completions");
    assert_eq!(attr(root, "http.response.status_code").as_deref(), Some("404"));
    assert_eq!(attr(root, "error.type").as_deref(), Some("model_not_found"));

    let raw = collector.raw.lock().unwrap().clone();
    for secret in [UPSTREAM_KEY, SPARE_KEY, CLIENT_KEY] {
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} exported");
    }
}

#[tokio::test]
async fn traces_are_not_exported_when_disabled_or_over_a_protocol_not_built_in() {
    let rig = Rig::start().await;
    let mut disabled = rig.serve_cmd();
    disabled.env("OTEL_SDK_DISABLED", "true");
    let mut grpc = rig.serve_cmd();
    grpc.env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    for (cmd, says) in [(disabled, None), (grpc, Some("traces are not exported: OTLP protocol `grpc` is not built in"))]
    {
        let server = Served::spawn(cmd).await;
        let r = chat(&server, &chat_body("p/m"), "otel-off").send().await.unwrap();
        assert_eq!(r.status(), 200, "the gateway serves either way");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(rig.collector.exports(), 0);
        let log = server.log();
        assert!(!log.contains("exporting traces"), "{log}");
        if let Some(says) = says {
            assert!(log.contains(says), "{log}");
        }
    }
}
