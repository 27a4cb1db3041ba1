//! The wasm cost of one request, measured in-process on the real component: a fresh instance
//! from the pooled `InstancePre`, `chat` (plan), and `parse-limits` on typical rate-limit
//! headers — what the gateway runs per OpenAI-compatible request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use freeway::config::{RuntimeConfig, UpstreamConfig};
use freeway::runtime::Runtime;
use freeway::runtime::bindings::wit;
use freeway::runtime::state::GuestBuckets;
use freeway::upstream::UpstreamClient;

pub struct WasmCost {
    /// warm instance from the pool (what the gateway does per request)
    pub p50: Duration,
    pub p99: Duration,
    /// a fresh instance every time
    pub fresh_p50: Duration,
    pub fresh_p99: Duration,
    pub instantiate_p50: Duration,
}

pub async fn measure(n: usize) -> Result<WasmCost, String> {
    let root = super::procs::root();
    let cfg = RuntimeConfig { cache_dir: root.join("target/bench/component-cache"), ..RuntimeConfig::default() };
    let metrics = Arc::new(freeway::telemetry::Metrics::new(freeway::bindings::WIT_VERSION));
    let runtime = Runtime::new(&cfg, metrics)?;
    let component = runtime
        .load_provider("openai-compat", &root.join("providers/openai-compat.wasm"))
        .await
        .map_err(|e| e.to_string())?;
    let http = UpstreamClient::new(&UpstreamConfig::default()).map_err(|e| e.message.into_owned())?;
    let base = url::Url::parse("http://127.0.0.1:9/v1").map_err(|e| e.to_string())?;
    let io = Arc::new(component.io("sim", Some(&base), http, Arc::new(GuestBuckets::default()), Arc::default())?);
    let account = Arc::new(freeway::runtime::Account::new(
        "sim#1".into(),
        "sim".into(),
        Some(freeway::config::SecretString::new("sk-bench-1")),
    ));
    let config = wit::ProviderConfig {
        provider_id: "sim".into(),
        base_url: "http://127.0.0.1:9/v1".into(),
        settings: Vec::new(),
    };
    let params: Vec<String> =
        ["model", "messages", "temperature", "max_tokens", "user"].iter().map(|s| (*s).to_owned()).collect();
    let headers: Vec<(String, String)> = vec![
        ("x-ratelimit-limit-requests".into(), "30".into()),
        ("x-ratelimit-remaining-requests".into(), "29".into()),
        ("x-ratelimit-reset-requests".into(), "2s".into()),
        ("x-ratelimit-limit-tokens".into(), "6000".into()),
        ("x-ratelimit-remaining-tokens".into(), "5900".into()),
        ("x-ratelimit-reset-tokens".into(), "1s".into()),
    ];
    let req = wit::ChatRequest {
        config: config.clone(),
        account: 0,
        model: "bench-model".into(),
        streaming: false,
        params,
        body: None,
    };
    let mut warm = Vec::with_capacity(n);
    let mut fresh = Vec::with_capacity(n);
    let mut inst_times = Vec::with_capacity(n);
    for i in 0..n + 500 {
        // per request, as the gateway does it: plan (chat), then read the rate-limit headers
        let started = Instant::now();
        let mut lease = component.acquire(Some(io.clone()), vec![account.clone()]).await.map_err(|f| f.to_string())?;
        let call = lease.chat(&req).await.map_err(|f| f.to_string())?.map_err(|e| e.message)?;
        std::hint::black_box(call);
        drop(lease);
        let mut lease = component.acquire(Some(io.clone()), vec![account.clone()]).await.map_err(|f| f.to_string())?;
        std::hint::black_box(lease.parse_limits(&config, 0, 200, &headers, None).await.map_err(|f| f.to_string())?);
        drop(lease);
        let warm_t = started.elapsed();

        let started = Instant::now();
        let mut inst =
            component.instantiate(Some(io.clone()), vec![account.clone()]).await.map_err(|f| f.to_string())?;
        let instantiated = started.elapsed();
        std::hint::black_box(inst.chat(&req).await.map_err(|f| f.to_string())?.map_err(|e| e.message)?);
        std::hint::black_box(inst.parse_limits(&config, 0, 200, &headers, None).await.map_err(|f| f.to_string())?);
        drop(inst);
        if i >= 500 {
            warm.push(warm_t);
            fresh.push(started.elapsed());
            inst_times.push(instantiated);
        }
    }
    warm.sort();
    fresh.sort();
    inst_times.sort();
    let p = super::percentile;
    Ok(WasmCost {
        p50: p(&warm, 0.5),
        p99: p(&warm, 0.99),
        fresh_p50: p(&fresh, 0.5),
        fresh_p99: p(&fresh, 0.99),
        instantiate_p50: p(&inst_times, 0.5),
    })
}
