//! The gateway's Prometheus metrics: one registry per running gateway, rendered by `/metrics`
//! in the Prometheus text format (0.0.4) with `# HELP` and `# TYPE` for every family.
//!
//! What happens on the request path is recorded into handles resolved ahead of time (per
//! provider when a snapshot is built, per component when it is loaded): an atomic add, or a
//! hash lookup with labels the code already holds; never a lock that waits, never a `String`
//! made per request. What reflects state (quota, cooldowns, usage totals, instances) is read
//! from the live gateway at scrape time instead ([`super::state::Scrape`]).
//!
//! Labels stay bounded: endpoint kinds, status classes, error codes and function names are
//! fixed sets; provider ids, component names and account labels come from the configuration.
//! Histograms carry no model or client label.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::histogram::{GUEST_BUCKETS, Histogram, REQUEST_BUCKETS};

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn guest_histogram() -> Histogram {
    Histogram::new(GUEST_BUCKETS)
}

/// What kind of endpoint a request went to (the `endpoint` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    /// Anthropic Messages (and its token counting)
    Messages,
    /// legacy completions
    Completions,
    Responses,
    Embeddings,
    Models,
    Health,
    Ready,
    Metrics,
    Admin,
    Ui,
    Other,
}

impl Endpoint {
    /// The endpoint kind of a request path.
    pub fn of(path: &str) -> Self {
        let p = path.strip_prefix("/v1").filter(|rest| rest.starts_with('/')).unwrap_or(path);
        match p {
            "/chat/completions" => Self::ChatCompletions,
            "/messages" | "/messages/count_tokens" => Self::Messages,
            "/completions" => Self::Completions,
            "/responses" => Self::Responses,
            "/embeddings" => Self::Embeddings,
            "/models" => Self::Models,
            _ if p.starts_with("/models/") => Self::Models,
            "/health" => Self::Health,
            "/ready" => Self::Ready,
            "/metrics" => Self::Metrics,
            _ if path == "/admin" || path.starts_with("/admin/") => Self::Admin,
            _ if path == "/ui" || path.starts_with("/ui/") => Self::Ui,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Messages => "messages",
            Self::Completions => "completions",
            Self::Responses => "responses",
            Self::Embeddings => "embeddings",
            Self::Models => "models",
            Self::Health => "health",
            Self::Ready => "ready",
            Self::Metrics => "metrics",
            Self::Admin => "admin",
            Self::Ui => "ui",
            Self::Other => "other",
        }
    }

    /// The OpenAI API: what the access log records at info level.
    pub fn is_api(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions
                | Self::Messages
                | Self::Completions
                | Self::Responses
                | Self::Embeddings
                | Self::Models
        )
    }
}

/// `2xx`, `4xx`, ... for an HTTP status.
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    status: &'static str,
    stream: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    provider: Arc<str>,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    provider: Arc<str>,
    to: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CooldownLabels {
    provider: Arc<str>,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuestCallLabels {
    component: Arc<str>,
    function: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuestFailureLabels {
    component: Arc<str>,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    kind: &'static str,
    result: &'static str,
}

/// The families recorded while serving; shared (cheaply cloned) with the per-provider and
/// per-component handles.
#[derive(Clone)]
struct Families {
    requests: HistogramFamily<RequestLabels>,
    ttft: HistogramFamily<ProviderLabels>,
    upstream: HistogramFamily<ProviderLabels>,
    attempts: Family<AttemptLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    cooldowns: Family<CooldownLabels, Counter>,
    guest_calls: HistogramFamily<GuestCallLabels>,
    guest_failures: Family<GuestFailureLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    cache: Family<CacheLabels, Counter>,
    queue: QueueMetrics,
    webhook_deliveries: Family<WebhookLabels, Counter>,
    webhook_retries: Counter,
    webhook_dropped: Counter,
}

impl Default for Families {
    fn default() -> Self {
        Self {
            requests: Family::new_with_constructor(request_histogram),
            ttft: Family::new_with_constructor(request_histogram),
            upstream: Family::new_with_constructor(request_histogram),
            attempts: Family::default(),
            fallbacks: Family::default(),
            cooldowns: Family::default(),
            guest_calls: Family::new_with_constructor(guest_histogram),
            guest_failures: Family::default(),
            reloads: Family::default(),
            cache: Family::default(),
            queue: QueueMetrics::detached(),
            webhook_deliveries: Family::default(),
            webhook_retries: Counter::default(),
            webhook_dropped: Counter::default(),
        }
    }
}

/// The running gateway's metrics.
pub struct Metrics {
    registry: Registry,
    families: Families,
    providers: Mutex<HashMap<String, Arc<ProviderMetrics>>>,
    components: Mutex<HashMap<String, Arc<GuestMetrics>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry for one gateway; `wit` is the WIT package version the host implements.
    pub fn new(wit: &str) -> Self {
        let families = Families::default();
        let f = families.clone();
        let mut r = Registry::default();
        r.register(
            "freeway_request_duration_seconds",
            "Time from a request's arrival to the end of its response (a stream: its last byte), by endpoint kind, status class and streaming",
            f.requests,
        );
        r.register(
            "freeway_time_to_first_token_seconds",
            "Time from a streaming request's arrival to its first event reaching the client, per provider",
            f.ttft,
        );
        r.register(
            "freeway_upstream_duration_seconds",
            "Time an attempt waited for its provider (sending, reading the answer; a stream: until its first event), per provider",
            f.upstream,
        );
        r.register(
            "freeway_upstream_attempts",
            "Attempts sent to providers, by provider and outcome (ok, cancelled when a hedge lost, else the error code)",
            f.attempts,
        );
        r.register(
            "freeway_fallbacks",
            "Times a failed attempt was followed by another candidate, by the provider that failed and whether the next was another account of it or another provider",
            f.fallbacks,
        );
        r.register(
            "freeway_cooldowns",
            "Accounts sent to rest or taken out of rotation, by provider and reason",
            f.cooldowns,
        );
        r.register(
            "freeway_guest_call_duration_seconds",
            "Duration of calls into guest components, by component and function",
            f.guest_calls,
        );
        r.register(
            "freeway_guest_failures",
            "Guest calls that failed, by component and kind (cpu, wall_clock, memory, denied, busy, trap)",
            f.guest_failures,
        );
        r.register(
            "freeway_reloads",
            "Reloads of the configuration, the vault and components, by kind and result",
            f.reloads,
        );
        r.register(
            "freeway_cache_requests",
            "Requests the response cache was on for, by result: hit (answered from it), miss (answered by a provider), bypass (not read: not deterministic, or Cache-Control)",
            f.cache,
        );
        r.register(
            "freeway_queue_waiting",
            "Requests waiting for capacity in the fair queue now ([queue])",
            f.queue.waiting.clone(),
        );
        r.register(
            "freeway_queue_waited",
            "Requests that waited in the queue, by result: served, refused (their wait bound would pass first), abandoned (the client left)",
            f.queue.waited.clone(),
        );
        r.register(
            "freeway_queue_wait_seconds",
            "Time requests spent in the queue, whatever the result",
            f.queue.wait.clone(),
        );
        r.register(
            "freeway_webhook_deliveries",
            "Webhook deliveries that ended, by result: delivered (a 2xx), failed (every attempt spent)",
            f.webhook_deliveries,
        );
        r.register("freeway_webhook_retries", "Webhook attempts that failed and were retried", f.webhook_retries);
        r.register(
            "freeway_webhook_dropped",
            "Webhook events dropped because the webhook queue was full",
            f.webhook_dropped,
        );
        r.register(
            "freeway_build",
            "The running build: gateway version and WIT package version",
            Info::new(vec![
                ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
                ("wit".to_owned(), wit.to_owned()),
            ]),
        );
        Self { registry: r, families, providers: Mutex::default(), components: Mutex::default() }
    }

    /// One request's end: its endpoint kind, status, whether it streamed, how long it took.
    pub fn request(&self, endpoint: Endpoint, status: u16, stream: bool, took: Duration) {
        let labels = RequestLabels {
            endpoint: endpoint.as_str(),
            status: status_class(status),
            stream: if stream { "true" } else { "false" },
        };
        self.families.requests.get_or_create(&labels).observe(took);
    }

    /// A reload of `kind` (`config`, `vault`, `provider_component`, `policy_component`).
    pub fn reload(&self, kind: &'static str, ok: bool) {
        let labels = ReloadLabels { kind, result: if ok { "ok" } else { "error" } };
        self.families.reloads.get_or_create(&labels).inc();
    }

    /// A request the response cache was on for: `hit`, `miss` or `bypass`.
    pub fn cache(&self, result: &'static str) {
        self.families.cache.get_or_create(&CacheLabels { result }).inc();
    }

    /// The wait queue's handles.
    pub fn queue(&self) -> QueueMetrics {
        self.families.queue.clone()
    }

    /// A webhook delivery ended: delivered, or failed after its last attempt.
    pub fn webhook_delivery(&self, delivered: bool) {
        let result = if delivered { "delivered" } else { "failed" };
        self.families.webhook_deliveries.get_or_create(&WebhookLabels { result }).inc();
    }

    /// A webhook attempt failed and will be tried again.
    pub fn webhook_retry(&self) {
        self.families.webhook_retries.inc();
    }

    /// A webhook event was dropped: the queue was full.
    pub fn webhook_dropped(&self) {
        self.families.webhook_dropped.inc();
    }

    /// The handles for provider `id` (the same ones across reloads).
    pub fn provider(&self, id: &str) -> Arc<ProviderMetrics> {
        let mut providers = self.providers.lock();
        if let Some(p) = providers.get(id) {
            return p.clone();
        }
        let p = Arc::new(ProviderMetrics::new(&self.families, id));
        providers.insert(id.to_owned(), p.clone());
        p
    }

    /// The handles for guest component `name` (the same ones across reloads).
    pub fn guest(&self, name: &str) -> Arc<GuestMetrics> {
        let mut components = self.components.lock();
        if let Some(g) = components.get(name) {
            return g.clone();
        }
        let g = Arc::new(GuestMetrics::new(&self.families, name));
        components.insert(name.to_owned(), g.clone());
        g
    }

    /// The registry in the Prometheus text format, then what `scrape` read from the live
    /// gateway.
    pub fn render(&self, scrape: &super::state::Scrape) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!("rendering the metrics failed: {e}");
        }
        scrape.render(&mut out);
        out
    }
}

/// The wait queue's handles: how many wait now, how each wait ended, how long it took.
#[derive(Clone)]
pub struct QueueMetrics {
    waiting: Gauge,
    waited: Family<QueueLabels, Counter>,
    wait: Histogram,
}

impl std::fmt::Debug for QueueMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueMetrics").field("waiting", &self.waiting.get()).finish_non_exhaustive()
    }
}

impl QueueMetrics {
    /// Handles registered nowhere (tests).
    pub fn detached() -> Self {
        Self { waiting: Gauge::default(), waited: Family::default(), wait: Histogram::new(REQUEST_BUCKETS) }
    }

    /// A request joined the queue.
    pub fn joined(&self) {
        self.waiting.inc();
    }

    /// A request left the queue after `waited`: `served`, `refused` or `abandoned`.
    pub fn left(&self, result: &'static str, waited: Duration) {
        self.waiting.dec();
        self.waited.get_or_create(&QueueLabels { result }).inc();
        self.wait.observe(waited);
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> i64 {
        self.waiting.get()
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One provider's handles, resolved when its snapshot entry is built.
pub struct ProviderMetrics {
    provider: Arc<str>,
    upstream: Histogram,
    ttft: Histogram,
    ok: Counter,
    families: Families,
}

impl std::fmt::Debug for ProviderMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderMetrics").field("provider", &self.provider).finish_non_exhaustive()
    }
}

impl ProviderMetrics {
    fn new(families: &Families, id: &str) -> Self {
        let provider: Arc<str> = Arc::from(id);
        let labels = ProviderLabels { provider: provider.clone() };
        Self {
            upstream: families.upstream.get_or_create_owned(&labels),
            ttft: families.ttft.get_or_create_owned(&labels),
            ok: families.attempts.get_or_create_owned(&AttemptLabels { provider: provider.clone(), outcome: "ok" }),
            provider,
            families: families.clone(),
        }
    }

    /// Handles registered nowhere (for code that runs without a gateway, e.g. tests).
    pub fn detached(id: &str) -> Arc<Self> {
        Arc::new(Self::new(&Families::default(), id))
    }

    /// An attempt ended: `outcome` is `ok` or the error's code; `waited` the time it spent
    /// waiting for the provider (nothing when it never reached it).
    pub fn attempt(&self, outcome: &'static str, waited: Duration) {
        if outcome == "ok" {
            self.ok.inc();
        } else {
            let labels = AttemptLabels { provider: self.provider.clone(), outcome };
            self.families.attempts.get_or_create(&labels).inc();
        }
        if !waited.is_zero() {
            self.upstream.observe(waited);
        }
    }

    /// A stream's first event reached the client `after` the request arrived.
    pub fn first_token(&self, after: Duration) {
        self.ttft.observe(after);
    }

    /// After a failure here, the request moved on to another account of this provider
    /// (`other_provider` false) or to another provider.
    pub fn fallback(&self, other_provider: bool) {
        let labels =
            FallbackLabels { provider: self.provider.clone(), to: if other_provider { "provider" } else { "account" } };
        self.families.fallbacks.get_or_create(&labels).inc();
    }

    /// An account of this provider was sent to rest (or out of rotation) for `reason`.
    pub fn cooldown(&self, reason: &'static str) {
        let labels = CooldownLabels { provider: self.provider.clone(), reason };
        self.families.cooldowns.get_or_create(&labels).inc();
    }
}

/// The functions a host calls on a guest (the `function` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestFn {
    Manifest,
    Chat,
    TranslateResponse,
    TranslateEvent,
    FinishStream,
    MapError,
    ParseLimits,
    ListModels,
    Check,
    Rank,
    Embed,
    TranslateEmbeddings,
}

impl GuestFn {
    const ALL: usize = 12;

    /// The WIT name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manifest => "manifest",
            Self::Chat => "chat",
            Self::TranslateResponse => "translate-response",
            Self::TranslateEvent => "translate-event",
            Self::FinishStream => "finish-stream",
            Self::MapError => "map-error",
            Self::ParseLimits => "parse-limits",
            Self::ListModels => "list-models",
            Self::Check => "check",
            Self::Rank => "rank",
            Self::Embed => "embed",
            Self::TranslateEmbeddings => "translate-embeddings",
        }
    }
}

/// One guest component's handles, resolved when it is loaded.
pub struct GuestMetrics {
    component: Arc<str>,
    /// per function, made on its first call
    calls: [OnceLock<Histogram>; GuestFn::ALL],
    families: Families,
}

impl std::fmt::Debug for GuestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestMetrics").field("component", &self.component).finish_non_exhaustive()
    }
}

impl GuestMetrics {
    fn new(families: &Families, name: &str) -> Self {
        Self { component: Arc::from(name), calls: Default::default(), families: families.clone() }
    }

    /// Handles registered nowhere.
    pub fn detached(name: &str) -> Arc<Self> {
        Arc::new(Self::new(&Families::default(), name))
    }

    /// A call to `f` took `took` (whether or not it succeeded).
    pub fn call(&self, f: GuestFn, took: Duration) {
        let Some(slot) = self.calls.get(f as usize) else { return };
        slot.get_or_init(|| {
            let labels = GuestCallLabels { component: self.component.clone(), function: f.as_str() };
            self.families.guest_calls.get_or_create_owned(&labels)
        })
        .observe(took);
    }

    /// A call failed; `kind` as the runtime classifies it.
    pub fn failed(&self, kind: &'static str) {
        let labels = GuestFailureLabels { component: self.component.clone(), kind };
        self.families.guest_failures.get_or_create(&labels).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_a_bounded_set_of_endpoint_kinds() {
        for (path, kind) in [
            ("/v1/chat/completions", Endpoint::ChatCompletions),
            ("/chat/completions", Endpoint::ChatCompletions),
            ("/v1/messages", Endpoint::Messages),
            ("/v1/messages/count_tokens", Endpoint::Messages),
            ("/v1/completions", Endpoint::Completions),
            ("/v1/responses", Endpoint::Responses),
            ("/v1/embeddings", Endpoint::Embeddings),
            ("/v1/models", Endpoint::Models),
            ("/v1/models/groq/llama", Endpoint::Models),
            ("/models", Endpoint::Models),
            ("/health", Endpoint::Health),
            ("/ready", Endpoint::Ready),
            ("/metrics", Endpoint::Metrics),
            ("/admin/status", Endpoint::Admin),
            ("/ui", Endpoint::Ui),
            ("/ui/app.js", Endpoint::Ui),
            ("/v1/files", Endpoint::Other),
            ("/v1", Endpoint::Other),
            ("/administrator", Endpoint::Other),
        ] {
            assert_eq!(Endpoint::of(path), kind, "{path}");
        }
        assert!(Endpoint::ChatCompletions.is_api() && Endpoint::Embeddings.is_api() && Endpoint::Models.is_api());
        assert!(!Endpoint::Metrics.is_api());
    }

    #[test]
    fn handles_are_shared_across_lookups_and_recorded_into_the_registry() {
        let m = Metrics::new("0.1.0");
        let a = m.provider("groq");
        assert!(Arc::ptr_eq(&a, &m.provider("groq")), "one handle per provider, across reloads");
        a.attempt("ok", Duration::from_millis(20));
        a.attempt("upstream_rate_limited", Duration::from_millis(5));
        a.fallback(true);
        m.request(Endpoint::ChatCompletions, 200, false, Duration::from_millis(30));
        m.guest("openai-compat").call(GuestFn::Chat, Duration::from_micros(12));
        m.reload("config", false);
        let text = m.render(&super::super::state::Scrape::default());
        for want in [
            "freeway_upstream_attempts_total{provider=\"groq\",outcome=\"ok\"} 1",
            "freeway_upstream_attempts_total{provider=\"groq\",outcome=\"upstream_rate_limited\"} 1",
            "freeway_upstream_duration_seconds_count{provider=\"groq\"} 2",
            "freeway_fallbacks_total{provider=\"groq\",to=\"provider\"} 1",
            "freeway_request_duration_seconds_bucket{endpoint=\"chat_completions\",status=\"2xx\",stream=\"false\",le=\"0.05\"} 1",
            "freeway_guest_call_duration_seconds_count{component=\"openai-compat\",function=\"chat\"} 1",
            "freeway_reloads_total{kind=\"config\",result=\"error\"} 1",
            "freeway_build_info{version=\"",
            "# HELP freeway_upstream_attempts_total ",
            "# TYPE freeway_request_duration_seconds histogram",
        ] {
            assert!(text.contains(want), "missing {want}:\n{text}");
        }
        assert!(!text.contains("function=\"rank\""), "functions never called have no series");
    }
}
