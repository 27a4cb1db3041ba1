//! The quota ledger: a candidate without room is skipped before anything is sent, the client
//! gets a 429 with an honest Retry-After, reservations are settled with the real usage,
//! counters survive a restart, and two gateway processes share one account's limits through
//! Redis.

use freeway_integration::{Gateway, Opts, Sim, artifact, chat_body, http, provider};
use serde_json::{Value, json};

use crate::durability::{metric, serve};

/// `local` over the simulator with `keys` (each its own pool), serving `m`, with `limits`.
fn limited(sim: &Sim, keys: &[&str], limits: &str) -> String {
    format!("{}limits = {{ {limits} }}\n\n", provider("local", &sim.base(), keys, &["m"]))
}

async fn chat_requests(sim: &Sim) -> usize {
    sim.requests().await.iter().filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/chat/completions"))).count()
}

fn header_u64(r: &reqwest::Response, name: &str) -> u64 {
    r.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_pool_without_room_is_skipped_before_sending_and_the_client_gets_an_honest_retry_after() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&limited(&sim, &["sk-quota-a-1111", "sk-quota-b-2222"], "rpm = 2")).await;
    for i in 0..4 {
        let r = gw.chat(chat_body("m")).await;
        assert_eq!(r.status(), 200, "request {i} fits one of the two pools");
    }
    let r = gw.chat(chat_body("m")).await;
    assert_eq!(r.status(), 429);
    let secs = header_u64(&r, "retry-after");
    let ms = header_u64(&r, "retry-after-ms");
    // the oldest request leaves the rolling minute (plus a half-second margin) in about 60 s
    assert!((59..=61).contains(&secs), "Retry-After {secs}");
    assert!((58_000..=60_600).contains(&ms), "retry-after-ms {ms}");
    let body: Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("RPM 2/2"), "{msg}");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(chat_requests(&sim).await, 4, "the fifth request never reached the provider");
}

#[tokio::test]
async fn reservations_are_settled_with_the_real_usage_and_a_request_larger_than_the_limit_is_refused() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&limited(&sim, &["sk-quota-t-3333"], "tpm = 400")).await;
    let ask =
        |max: u32| json!({ "model": "m", "max_tokens": max, "messages": [{ "role": "user", "content": "hello" }] });
    // each reserves ~10 prompt + 250 output tokens; only settling with the (small) real usage
    // leaves room for the next one within the same minute
    for i in 0..3 {
        let r = gw.chat(ask(250)).await;
        assert_eq!(r.status(), 200, "request {i}: {}", r.text().await.unwrap_or_default());
    }
    let r = gw.chat(ask(1000)).await;
    assert_eq!(r.status(), 400, "1,000 output tokens can never fit a 400 TPM limit");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["param"], "max_tokens");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("TPM 400"), "{body}");
    assert_eq!(chat_requests(&sim).await, 3);
}

#[tokio::test]
async fn streamed_requests_reserve_and_settle_too() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&limited(&sim, &["sk-quota-s-4444"], "rpm = 1")).await;
    let body = json!({ "model": "m", "stream": true, "messages": [{ "role": "user", "content": "hi" }] });
    let r = gw.chat(body.clone()).await;
    assert_eq!(r.status(), 200);
    let _ = r.text().await;
    let r = gw.chat(body).await;
    assert_eq!(r.status(), 429, "the stream counted against RPM 1");
    assert!(header_u64(&r, "retry-after") >= 59);
}

#[tokio::test]
async fn a_daily_limit_survives_a_restart_and_waits_for_the_daily_reset() {
    let sim = Sim::start().await;
    let providers = limited(&sim, &["sk-quota-d-5555"], "rpd = 2");
    let first = Gateway::start(&providers).await;
    for _ in 0..2 {
        assert_eq!(first.chat(chat_body("m")).await.status(), 200);
    }
    first.app.ledger.save().await;
    let state = first.dir.path().join("data/quota.json");
    assert!(state.exists());
    let opts = Opts { quota: format!("state_file = \"{}\"\n", state.display()), ..Opts::default() };
    let second = Gateway::start_opts(&providers, opts).await;
    let r = second.chat(chat_body("m")).await;
    assert_eq!(r.status(), 429, "the restarted gateway remembers today's two requests");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let to_midnight = 86_400 - now % 86_400;
    let secs = header_u64(&r, "retry-after");
    assert!(secs.abs_diff(to_midnight) <= 2, "Retry-After {secs} s, midnight UTC in {to_midnight} s");
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("resets 00:00 UTC"), "{body}");
    assert_eq!(chat_requests(&sim).await, 2);
}

#[tokio::test]
async fn without_redis_serving_goes_on_with_local_limits_and_says_so_in_metrics() {
    let sim = Sim::start().await;
    // nothing listens on port 1
    let opts = Opts { quota: "redis_url = \"redis://127.0.0.1:1\"\n".into(), ..Opts::default() };
    let gw = Gateway::start_opts(&limited(&sim, &["sk-quota-r-6666"], "rpm = 1"), opts).await;
    assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
    assert_eq!(gw.chat(chat_body("m")).await.status(), 429, "the local counter still holds the limit");
    let text = gw.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("freeway_redis_up 0"), "{text}");
    assert!(text.contains("freeway_quota_local_fallbacks_total 1"), "{text}");
}

/// The Redis URL for tests; without one, a loud skip (a failure under `CI=true`).
fn redis_url() -> Option<String> {
    freeway_integration::service_url("FREEWAY_TEST_REDIS_URL", "Redis")
}

#[tokio::test]
async fn two_gateway_processes_on_one_redis_respect_one_accounts_rpm_and_rpd_together() {
    let Some(redis) = redis_url() else { return };
    const KEY: &str = "sk-shared-account-7777";
    let sim =
        Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "keys": [KEY], "models": ["m", "d", "c"]}]})).await;
    // fresh key names for every run: the pool is named after the provider and its key
    let nonce = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let mut dirs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("providers")).unwrap();
        std::fs::create_dir_all(p.join("policies")).unwrap();
        std::fs::copy(artifact("providers/openai-compat.wasm"), p.join("providers/openai-compat.wasm")).unwrap();
        let config = p.join("freeway.toml");
        std::fs::write(
            &config,
            format!(
                "[runtime]\nproviders_dir = \"{p}/providers\"\npolicies_dir = \"{p}/policies\"\ncache_dir = \"{p}/cache\"\nmax_instances = 16\n\n\
                 [discovery]\ninterval_secs = 0\nstate_file = \"{p}/models.json\"\n\n\
                 [vault]\npath = \"{p}/vault.json\"\nkey_file = \"{p}/master.key\"\naudit_log = \"{p}/audit.log\"\nhealth_file = \"{p}/health.json\"\n\n\
                 [storage]\nurl = \"sqlite://{p}/freeway.db\"\n\n[quota]\nstate_file = \"{p}/quota.json\"\nredis_url = \"{redis}\"\n\n\
                 [upstream]\negress_hosts = [\"127.0.0.1\"]\n\n\
                 [[providers]]\nid = \"rpm{nonce}\"\nbase_url = \"{base}\"\napi_keys = [\"{KEY}\"]\nmodels = [\"m\"]\nlimits = {{ rpm = 4 }}\n\n\
                 [[providers]]\nid = \"rpd{nonce}\"\nbase_url = \"{base}\"\napi_keys = [\"{KEY}\"]\nmodels = [\"d\"]\nlimits = {{ rpd = 3 }}\n\n\
                 [[providers]]\nid = \"cool{nonce}\"\nbase_url = \"{base}\"\napi_keys = [\"{KEY}\"]\nmodels = [\"c\"]\n",
                p = p.display(),
                base = sim.base(),
            ),
        )
        .unwrap();
        servers.push(serve(&config.display().to_string()).await);
        dirs.push(d);
    }
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    for port in &ports {
        assert_eq!(metric(*port, "freeway_redis_up").await, 1, "gateway on {port} uses Redis");
    }
    let send = |port: u16, model: &'static str| async move {
        http()
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .json(&chat_body(model))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    for (model, limit, total) in [("m", 4, 10), ("d", 3, 8)] {
        let statuses = futures_util::future::join_all((0..total).map(|i| send(ports[i % 2], model))).await;
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let limited = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!(ok, limit, "{model}: exactly the shared limit is served across both gateways: {statuses:?}");
        assert_eq!(limited, total - limit, "{model}: the rest are refused before sending: {statuses:?}");
    }
    assert_eq!(chat_requests(&sim).await, 7, "the provider saw only what its limits allow");
    // a 429 seen by one gateway rests the pool for the other too
    sim.script(
        json!([{ "match": { "model": "c" }, "times": 1, "action": { "type": "rate_limit", "retry_after_s": 30 } }]),
    )
    .await;
    assert_eq!(send(ports[0], "c").await, 429);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let statuses = futures_util::future::join_all((0..3).map(|_| send(ports[1], "c"))).await;
    assert_eq!(statuses, [429, 429, 429], "the other gateway does not ask the resting account");
    assert_eq!(chat_requests(&sim).await, 8, "one upstream 429, nothing more");
}

#[tokio::test]
async fn client_limits_per_key_refuse_with_an_honest_retry_after_before_any_upstream_call() {
    let sim = Sim::start().await;
    let providers =
        format!("[client_limits]\nper_key_rpm = 2\n\n{}", provider("local", &sim.base(), &["sk-up-1"], &["m"]));
    let opts = Opts { server: "api_keys = [\"fw-client-one\", \"fw-client-two\"]".into(), ..Opts::default() };
    let gw = Gateway::start_opts(&providers, opts).await;
    let send = |key: &'static str| {
        let url = gw.url("/v1/chat/completions");
        async move { http().post(url).bearer_auth(key).json(&chat_body("m")).send().await.unwrap() }
    };
    assert_eq!(send("fw-client-one").await.status(), 200);
    assert_eq!(send("fw-client-one").await.status(), 200);
    let r = send("fw-client-one").await;
    assert_eq!(r.status(), 429);
    // two a minute: the next one conforms in (just under) 30 s
    let secs = header_u64(&r, "retry-after");
    assert!((29..=30).contains(&secs), "Retry-After {secs}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(send("fw-client-two").await.status(), 200, "the other key has its own allowance");
    assert_eq!(chat_requests(&sim).await, 3);
}

/// A TCP forwarder to Redis that the test can cut and restore, on a fixed port.
struct RedisLink {
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
    target: String,
}

impl RedisLink {
    async fn start(target: String) -> RedisLink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut link = RedisLink { port, task: None, target };
        link.serve(listener);
        link
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Redis goes away: the listener and every open connection close.
    fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test]
async fn when_redis_returns_the_reservations_made_without_it_are_pushed_back() {
    let Some(redis) = redis_url() else { return };
    let target = redis.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let mut link = RedisLink::start(target).await;
    let sim = Sim::start().await;
    let nonce = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let opts = Opts { quota: format!("redis_url = \"redis://127.0.0.1:{}\"\n", link.port), ..Opts::default() };
    let providers = format!(
        "{}limits = {{ rpm = 3 }}\n\n",
        provider(&format!("resync{nonce}"), &sim.base(), &["sk-resync-8888"], &["m"])
    );
    let gw = Gateway::start_opts(&providers, opts).await;
    let metric = |name: &'static str| {
        let gw = &gw;
        async move {
            let text = gw.get("/metrics").await.text().await.unwrap();
            text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse::<u64>().ok())
        }
    };
    assert_eq!(metric("freeway_redis_up").await, Some(1));
    assert_eq!(gw.chat(chat_body("m")).await.status(), 200, "counted in Redis");
    link.cut();
    assert_eq!(gw.chat(chat_body("m")).await.status(), 200, "served on local counters while Redis is away");
    assert_eq!(metric("freeway_redis_up").await, Some(0));
    assert!(metric("freeway_quota_local_fallbacks_total").await >= Some(1));
    link.restore().await;
    let back = freeway_integration::eventually(std::time::Duration::from_secs(10), || async {
        metric("freeway_redis_up").await == Some(1)
    })
    .await;
    assert!(back, "the gateway notices Redis is back");
    // Redis now holds both earlier requests: one more fits RPM 3, the next does not
    assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
    assert_eq!(gw.chat(chat_body("m")).await.status(), 429, "the request made without Redis was pushed back");
    assert_eq!(chat_requests(&sim).await, 3);
}

#[tokio::test]
async fn client_limits_are_shared_by_gateways_on_one_redis() {
    let Some(redis) = redis_url() else { return };
    let sim = Sim::start().await;
    // a fresh client key every run: Redis names its allowance by a hash of it
    let key = format!(
        "fw-shared-client-{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let providers =
        format!("[client_limits]\nper_key_rpm = 2\n\n{}", provider("local", &sim.base(), &["sk-up-9"], &["m"]));
    let opts = Opts {
        server: format!("api_keys = [\"{key}\"]"),
        quota: format!("redis_url = \"{redis}\"\n"),
        ..Opts::default()
    };
    let a = Gateway::start_opts(&providers, opts.clone()).await;
    let b = Gateway::start_opts(&providers, opts).await;
    let send = |gw: &Gateway| {
        let url = gw.url("/v1/chat/completions");
        let key = key.clone();
        async move { http().post(url).bearer_auth(key).json(&chat_body("m")).send().await.unwrap() }
    };
    assert_eq!(send(&a).await.status(), 200);
    assert_eq!(send(&b).await.status(), 200);
    let r = send(&a).await;
    assert_eq!(r.status(), 429, "two a minute across both gateways");
    let secs = header_u64(&r, "retry-after");
    assert!((29..=30).contains(&secs), "Retry-After {secs}");
    assert_eq!(send(&b).await.status(), 429);
    assert_eq!(chat_requests(&sim).await, 2);
}
