//! The exact response cache (`[cache]`): an identical deterministic request is answered from the
//! stored response (a stream replayed event for event) without a provider call or quota;
//! `x-freeway-cache: hit|miss|bypass`; `Cache-Control` honoured; one cache per client key; Redis
//! shares it between gateway processes; the admin API purges it.

use std::time::{Duration, Instant};

use freeway_integration::{Gateway, Opts, Sim, artifact, chat_body, http, provider};
use serde_json::{Value, json};

use crate::admin_api::assert_matches;
use crate::durability::{Server, serve};

const ADMIN: &str = "fw-admin-cache-1";
const ON: &str = "[cache]\nenabled = true\n\n";

async fn chat_requests(sim: &Sim) -> usize {
    sim.requests().await.iter().filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/chat/completions"))).count()
}

/// A gateway over `sim` serving `models`, with `extra` TOML before the provider table.
async fn gateway(sim: &Sim, extra: &str, models: &[&str], opts: Opts) -> Gateway {
    let providers = format!("{extra}{}", provider("p", &sim.base(), &["sk-cache-0001"], models));
    let server = if opts.server.is_empty() { format!("admin_key = \"{ADMIN}\"") } else { opts.server.clone() };
    Gateway::start_opts(&providers, Opts { server, ..opts }).await
}

fn det(model: &str, text: &str) -> Value {
    json!({ "model": model, "temperature": 0, "messages": [{ "role": "user", "content": text }] })
}

fn verdict(r: &reqwest::Response) -> Option<String> {
    r.headers().get("x-freeway-cache").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn send(url: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let mut req = http().post(url).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let (status, v) = (r.status().as_u16(), verdict(&r));
    (status, v, r.text().await.unwrap())
}

async fn metric_text(gw: &Gateway) -> String {
    http().get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

fn cache_count(metrics: &str, result: &str) -> u64 {
    let prefix = format!("freeway_cache_requests_total{{result=\"{result}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn an_identical_deterministic_request_is_a_hit_with_no_upstream_call_and_no_quota_spent() {
    let sim = Sim::start().await;
    // two requests a minute: a hit that spent one would leave no room for the third request
    let limited = format!("{ON}{}limits = {{ rpm = 2 }}\n\n", provider("p", &sim.base(), &["sk-cache-0002"], &["m"]));
    let gw = Gateway::start(&limited).await;
    let url = gw.url("/v1/chat/completions");
    let (s1, v1, first) = send(&url, &det("m", "what is two and two"), &[]).await;
    assert_eq!((s1, v1.as_deref()), (200, Some("miss")), "{first}");
    // the same request with its fields in another order, and a `user` (which does not count)
    let reordered = json!({ "messages": [{ "content": "what is two and two", "role": "user" }], "user": "u-9", "temperature": 0.0, "model": "m" });
    let (s2, v2, second) = send(&url, &reordered, &[]).await;
    assert_eq!((s2, v2.as_deref()), (200, Some("hit")), "{second}");
    assert_eq!(second, first, "a hit answers the stored body");
    assert_eq!(chat_requests(&sim).await, 1, "a hit calls no provider");
    let (s3, v3, _) = send(&url, &det("m", "another question"), &[]).await;
    assert_eq!((s3, v3.as_deref()), (200, Some("miss")), "the hit spent none of the two requests a minute");
    let (s4, _, _) = send(&url, &det("m", "a third question"), &[]).await;
    assert_eq!(s4, 429, "the limit is real: two provider calls used it up");
    let m = metric_text(&gw).await;
    assert_eq!((cache_count(&m, "hit"), cache_count(&m, "miss")), (1, 2), "{m}");
    assert!(
        m.contains("# TYPE freeway_cache_requests_total counter") && m.contains("# HELP freeway_cache_requests_total ")
    );
}

#[tokio::test]
async fn a_request_without_temperature_zero_or_a_seed_bypasses_the_cache_by_default() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, ON, &["m"], Opts::default()).await;
    let url = gw.url("/v1/chat/completions");
    for _ in 0..2 {
        let (status, v, _) = send(&url, &chat_body("m"), &[]).await;
        assert_eq!((status, v.as_deref()), (200, Some("bypass")));
    }
    let warm = json!({ "model": "m", "temperature": 0.7, "messages": [{ "role": "user", "content": "x" }] });
    assert_eq!(send(&url, &warm, &[]).await.1.as_deref(), Some("bypass"));
    let seeded =
        json!({ "model": "m", "seed": 42, "temperature": 0.7, "messages": [{ "role": "user", "content": "x" }] });
    assert_eq!(send(&url, &seeded, &[]).await.1.as_deref(), Some("miss"), "a seed makes it deterministic enough");
    assert_eq!(send(&url, &seeded, &[]).await.1.as_deref(), Some("hit"));
    assert_eq!(chat_requests(&sim).await, 4);
}

#[tokio::test]
async fn with_only_deterministic_off_every_request_is_cached() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, "[cache]\nenabled = true\nonly_deterministic = false\n\n", &["m"], Opts::default()).await;
    let url = gw.url("/v1/chat/completions");
    assert_eq!(send(&url, &chat_body("m"), &[]).await.1.as_deref(), Some("miss"));
    assert_eq!(send(&url, &chat_body("m"), &[]).await.1.as_deref(), Some("hit"));
    assert_eq!(chat_requests(&sim).await, 1);
}

#[tokio::test]
async fn cache_control_no_store_neither_reads_nor_writes_and_no_cache_refreshes_the_entry() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, ON, &["m"], Opts::default()).await;
    let url = gw.url("/v1/chat/completions");
    let body = det("m", "cache control");
    let no_store = [("cache-control", "no-store")];
    assert_eq!(send(&url, &body, &no_store).await.1.as_deref(), Some("bypass"));
    assert_eq!(send(&url, &body, &[]).await.1.as_deref(), Some("miss"), "no-store stored nothing");
    assert_eq!(send(&url, &body, &no_store).await.1.as_deref(), Some("bypass"), "no-store does not read either");
    assert_eq!(chat_requests(&sim).await, 3);
    let no_cache = [("cache-control", "no-cache")];
    assert_eq!(send(&url, &body, &no_cache).await.1.as_deref(), Some("bypass"));
    assert_eq!(chat_requests(&sim).await, 4, "no-cache went to the provider");
    assert_eq!(send(&url, &body, &[]).await.1.as_deref(), Some("hit"));
    assert_eq!(chat_requests(&sim).await, 4);
}

#[tokio::test]
async fn each_client_key_has_its_own_cache() {
    let sim = Sim::start().await;
    let opts = Opts { server: "api_keys = [\"fw-cache-client-a\", \"fw-cache-client-b\"]".into(), ..Opts::default() };
    let gw = gateway(&sim, ON, &["m"], opts).await;
    let url = gw.url("/v1/chat/completions");
    let body = det("m", "whose answer is this");
    let a = [("authorization", "Bearer fw-cache-client-a")];
    let b = [("authorization", "Bearer fw-cache-client-b")];
    assert_eq!(send(&url, &body, &a).await.1.as_deref(), Some("miss"));
    assert_eq!(send(&url, &body, &a).await.1.as_deref(), Some("hit"));
    assert_eq!(send(&url, &body, &b).await.1.as_deref(), Some("miss"), "client b never sees client a's answer");
    assert_eq!(send(&url, &body, &b).await.1.as_deref(), Some("hit"));
    assert_eq!(chat_requests(&sim).await, 2);
}

/// A streaming request's body, as the chunks the client received.
async fn stream_chunks(url: &str, body: &Value) -> (Option<String>, Vec<bytes::Bytes>) {
    let mut r = http().post(url).json(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v = verdict(&r);
    let mut chunks = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        chunks.push(c);
    }
    (v, chunks)
}

/// The SSE events of a byte stream, in order.
fn events(chunks: &[bytes::Bytes]) -> Vec<String> {
    let text: String = chunks.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    text.split_inclusive("\n\n").map(str::to_owned).collect()
}

#[tokio::test]
async fn a_stream_hit_replays_the_original_events_byte_for_byte_without_a_provider_call() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, ON, &["m"], Opts::default()).await;
    let url = gw.url("/v1/chat/completions");
    let mut body = det("m", "stream this please");
    body["stream"] = json!(true);
    let (v1, first) = stream_chunks(&url, &body).await;
    assert_eq!(v1.as_deref(), Some("miss"));
    let (v2, second) = stream_chunks(&url, &body).await;
    assert_eq!(v2.as_deref(), Some("hit"));
    assert_eq!(chat_requests(&sim).await, 1, "the replay called no provider");
    assert_eq!(second.concat(), first.concat(), "the replay is the original stream, byte for byte");
    let (e1, e2) = (events(&first), events(&second));
    assert!(e1.len() > 3 && e1.last().is_some_and(|e| e.contains("[DONE]")), "{e1:?}");
    assert_eq!(e2, e1, "the same events in the same order");
    // a stream and a JSON answer to the same messages are different entries
    body["stream"] = json!(false);
    assert_eq!(send(&url, &body, &[]).await.1.as_deref(), Some("miss"));
}

#[tokio::test]
async fn the_cache_is_off_by_default_and_a_route_can_turn_it_on_or_off() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, "", &["m"], Opts::default()).await;
    let url = gw.url("/v1/chat/completions");
    assert_eq!(send(&url, &det("m", "x"), &[]).await.1, None, "off by default: nothing said");
    assert_eq!(send(&url, &det("m", "x"), &[]).await.1, None);
    assert_eq!(chat_requests(&sim).await, 2);
    drop(gw);

    let sim = Sim::start().await;
    let routes = "[[routes]]\nmodel = \"cached\"\nfallback_chain = [\"p/m\"]\ncache = true\n\n\
                  [[routes]]\nmodel = \"fresh\"\nfallback_chain = [\"p/m\"]\ncache = false\n\n";
    let gw = gateway(&sim, routes, &["m"], Opts::default()).await;
    let url = gw.url("/v1/chat/completions");
    assert_eq!(send(&url, &det("cached", "y"), &[]).await.1.as_deref(), Some("miss"));
    assert_eq!(send(&url, &det("cached", "y"), &[]).await.1.as_deref(), Some("hit"));
    assert_eq!(send(&url, &det("fresh", "y"), &[]).await.1, None);
    assert_eq!(send(&url, &det("m", "y"), &[]).await.1, None, "[cache] itself is still off");
}

#[tokio::test]
async fn an_alias_and_the_model_it_routes_to_share_entries_keyed_after_aliases() {
    let sim = Sim::start().await;
    let routes = format!("{ON}[[routes]]\nmodel = \"chat\"\nfallback_chain = [\"p/m\"]\n\n");
    let gw = gateway(&sim, &routes, &["m", "other"], Opts::default()).await;
    let url = gw.url("/v1/chat/completions");
    assert_eq!(send(&url, &det("m", "alias"), &[]).await.1.as_deref(), Some("miss"));
    assert_eq!(send(&url, &det("chat", "alias"), &[]).await.1.as_deref(), Some("hit"), "chat reaches p/m too");
    assert_eq!(send(&url, &det("p/m", "alias"), &[]).await.1.as_deref(), Some("hit"));
    assert_eq!(
        send(&url, &det("other", "alias"), &[]).await.1.as_deref(),
        Some("miss"),
        "another model, another entry"
    );
    assert_eq!(chat_requests(&sim).await, 2);
}

async fn purge(gw: &Gateway, query: &str) -> Value {
    let r = http().delete(gw.url(&format!("/admin/cache{query}"))).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_matches("CachePurge", &v);
    v
}

#[tokio::test]
async fn the_admin_api_purges_one_model_or_everything_and_audits_it() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, ON, &["m1", "m2"], Opts::default()).await;
    let url = gw.url("/v1/chat/completions");
    for model in ["m1", "m2"] {
        assert_eq!(send(&url, &det(model, "purge me"), &[]).await.1.as_deref(), Some("miss"));
        assert_eq!(send(&url, &det(model, "purge me"), &[]).await.1.as_deref(), Some("hit"));
    }
    // the hits' usage records say so, and spent nothing upstream
    let log = |gw: &Gateway| {
        let url = gw.url("/admin/requests");
        async move { http().get(url).bearer_auth(ADMIN).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let recorded = freeway_integration::eventually(Duration::from_secs(5), || async {
        log(&gw).await["data"].as_array().is_some_and(|d| d.len() == 4)
    })
    .await;
    let requests = log(&gw).await;
    assert!(recorded, "{requests}");
    assert_matches("RequestLog", &requests);
    let hits: Vec<&Value> = requests["data"].as_array().unwrap().iter().filter(|r| r["cache_read"] == true).collect();
    assert_eq!(hits.len(), 2, "{requests}");
    assert!(hits.iter().all(|r| r["attempts"] == 0 && r["provider"] == "p" && r["outcome"] == "ok"), "{hits:?}");
    let r = http().delete(gw.url("/admin/cache")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the admin key is needed");
    let v = purge(&gw, "?model=m1").await;
    assert_eq!((v["purged"].as_u64(), v["model"].as_str()), (Some(1), Some("m1")), "{v}");
    assert_eq!(send(&url, &det("m1", "purge me"), &[]).await.1.as_deref(), Some("miss"));
    assert_eq!(send(&url, &det("m2", "purge me"), &[]).await.1.as_deref(), Some("hit"), "another model's entry stays");
    let v = purge(&gw, "").await;
    assert_eq!(v["purged"].as_u64(), Some(2), "{v}");
    assert_eq!(send(&url, &det("m2", "purge me"), &[]).await.1.as_deref(), Some("miss"));
    let audit: Value = http()
        .get(gw.url("/admin/audit?action=cache.purge"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(2), "{audit}");
}

/// A `freeway serve` process caching in `redis`, over `sim`.
async fn redis_gateway(sim: &Sim, redis: &str, dir: &std::path::Path) -> Server {
    let p = dir;
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
             [upstream]\negress_hosts = [\"127.0.0.1\"]\n\n[server]\nadmin_key = \"{ADMIN}\"\n\n\
             [cache]\nenabled = true\nbackend = \"redis\"\nttl_seconds = 60\n\n\
             [[providers]]\nid = \"p\"\nbase_url = \"{base}\"\napi_keys = [\"sk-cache-redis-1\"]\nmodels = [\"m\"]\n",
            p = p.display(),
            base = sim.base(),
        ),
    )
    .unwrap();
    serve(&config.display().to_string()).await
}

#[tokio::test]
async fn two_gateway_processes_share_the_cache_through_redis() {
    let Some(redis) = freeway_integration::service_url("FREEWAY_TEST_REDIS_URL", "Redis") else { return };
    let sim = Sim::start().await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = redis_gateway(&sim, &redis, d1.path()).await;
    let two = redis_gateway(&sim, &redis, d2.path()).await;
    // a fresh question every run: entries from an earlier run live in the same Redis
    let nonce = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let url = |port: u16| format!("http://127.0.0.1:{port}/v1/chat/completions");
    let body = det("m", &format!("shared question {nonce}"));
    assert_eq!(send(&url(one.port), &body, &[]).await.1.as_deref(), Some("miss"));
    let (status, v, _) = send(&url(two.port), &body, &[]).await;
    assert_eq!((status, v.as_deref()), (200, Some("hit")), "the second gateway answers what the first stored");
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (v1, first) = stream_chunks(&url(two.port), &streamed).await;
    let (v2, second) = stream_chunks(&url(one.port), &streamed).await;
    assert_eq!((v1.as_deref(), v2.as_deref()), (Some("miss"), Some("hit")));
    assert_eq!(second.concat(), first.concat());
    assert_eq!(chat_requests(&sim).await, 2, "one provider call per question, across both gateways");
    // purging on one gateway empties the shared store for both
    let purged: Value = http()
        .delete(format!("http://127.0.0.1:{}/admin/cache?model=p/m", two.port))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_matches("CachePurge", &purged);
    assert_eq!(purged["backend"], "redis");
    assert!(purged["purged"].as_u64().is_some_and(|n| n >= 2), "{purged}");
    assert_eq!(send(&url(one.port), &body, &[]).await.1.as_deref(), Some("miss"));
}

#[tokio::test]
async fn a_redis_cache_that_does_not_answer_is_a_miss_never_a_failed_request() {
    let sim = Sim::start().await;
    let opts = Opts { quota: "redis_url = \"redis://127.0.0.1:1\"\n".into(), ..Opts::default() };
    let gw = gateway(&sim, "[cache]\nenabled = true\nbackend = \"redis\"\n\n", &["m"], opts).await;
    let url = gw.url("/v1/chat/completions");
    for _ in 0..3 {
        let (status, v, _) = send(&url, &det("m", "is redis there"), &[]).await;
        assert_eq!((status, v.as_deref()), (200, Some("miss")));
    }
    assert_eq!(chat_requests(&sim).await, 3);
}

/// Not a timed assertion: prints how long a hit takes next to a miss, in the same run, over the
/// same gateway and one kept-alive client connection (the figure the README quotes). The
/// simulator answers at once, so a miss here is the gateway's own cost plus a loopback call:
/// the least a hit can save.
#[tokio::test]
async fn cache_hit_latency_versus_a_miss_is_printed() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, ON, &["m"], Opts::default()).await;
    let url = gw.url("/v1/chat/completions");
    let client = http();
    let timed = |body: Value| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let t = Instant::now();
            let r = client.post(&url).json(&body).send().await.unwrap();
            let v = verdict(&r);
            let _ = r.bytes().await.unwrap();
            (t.elapsed(), v)
        }
    };
    const N: usize = 200;
    // warm the connection, the component instances and the caches
    for i in 0..20 {
        timed(det("m", &format!("warm {i}"))).await;
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    for stream in [false, true] {
        let (mut miss, mut hit) = (Vec::with_capacity(N), Vec::with_capacity(N));
        for i in 0..N {
            let mut body = det("m", &format!("timed question {i}"));
            body["stream"] = json!(stream);
            let (t, v) = timed(body.clone()).await;
            assert_eq!(v.as_deref(), Some("miss"));
            miss.push(t);
            let (t, v) = timed(body).await;
            assert_eq!(v.as_deref(), Some("hit"));
            hit.push(t);
        }
        let (m, h) = (median(&mut miss), median(&mut hit));
        println!(
            "cache ({}): median hit {h:.3} ms vs miss {m:.3} ms ({N} each, same run, instant simulator upstream): a hit takes {:.0}% of a miss ({:.1}x faster)",
            if stream { "stream" } else { "json" },
            100.0 * h / m,
            m / h
        );
    }
}
