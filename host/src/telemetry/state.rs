//! Metrics that reflect state, read from the live gateway at scrape time rather than updated on
//! the request path: usage totals, the usage writer, Redis, guest instances, requests in
//! flight, the configuration generation, quota per pool and dimension, cooldowns. The server
//! fills a [`Scrape`] from the running gateway; it is rendered after the registry, in a
//! registry of its own made for that scrape (series that disappeared are simply gone).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Requests and tokens per (provider, model, outcome), from the usage writer's totals.
#[derive(Debug, Clone, Default)]
pub struct UsageTotal {
    pub provider: String,
    pub model: String,
    pub outcome: &'static str,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One limit of one quota pool, as the ledger counts it now.
#[derive(Debug, Clone, Default)]
pub struct QuotaSample {
    pub provider: String,
    pub pool: String,
    /// the labels of the pool's accounts (never a key)
    pub account: String,
    /// the model the counter is kept for, `*` for the whole pool
    pub model: String,
    /// `rpm`, `tpd`, ... as the quota module names the dimension and window
    pub dimension: &'static str,
    pub limit: u64,
    pub used: u64,
}

/// The usage writer's counters.
#[derive(Debug, Clone, Default)]
pub struct UsageWriter {
    pub dropped: u64,
    pub stored: u64,
    pub store_failures: u64,
    pub backlog: u64,
    pub writer_restarts: u64,
}

/// What one scrape read from the running gateway.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub usage: Vec<UsageTotal>,
    pub writer: UsageWriter,
    /// (up, local fallbacks) when quota counters are shared through Redis
    pub redis: Option<(bool, u64)>,
    pub guest_instances_live: u64,
    pub guest_instances_idle: u64,
    pub requests_in_flight: u64,
    pub config_generation: u64,
    pub quota: Vec<QuotaSample>,
    /// accounts resting now, per provider
    pub cooldowns_active: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UsageLabels {
    provider: String,
    model: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: String,
    model: String,
    outcome: &'static str,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    provider: String,
    pool: String,
    account: String,
    model: String,
    dimension: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

impl Scrape {
    /// Append this scrape's families to `out` in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut r = Registry::default();
        let requests = Family::<UsageLabels, Counter>::default();
        let tokens = Family::<TokenLabels, Counter>::default();
        for u in &self.usage {
            let labels = UsageLabels { provider: u.provider.clone(), model: u.model.clone(), outcome: u.outcome };
            requests.get_or_create(&labels).inc_by(u.requests);
            for (kind, n) in [("prompt", u.prompt_tokens), ("completion", u.completion_tokens)] {
                let labels =
                    TokenLabels { provider: u.provider.clone(), model: u.model.clone(), outcome: u.outcome, kind };
                tokens.get_or_create(&labels).inc_by(n);
            }
        }
        r.register(
            "freeway_requests",
            "Requests finished, by provider, model and outcome (from the usage records)",
            requests,
        );
        r.register("freeway_tokens", "Tokens the providers reported, by provider, model, outcome and kind", tokens);
        let w = &self.writer;
        r.register(
            "freeway_usage_records_dropped",
            "Usage records dropped (queue full, backlog overflowed, writer failed)",
            counter(w.dropped),
        );
        r.register("freeway_usage_records_stored", "Usage records committed to the usage store", counter(w.stored));
        r.register(
            "freeway_usage_store_failures",
            "Commits the usage store refused (the records are kept and retried)",
            counter(w.store_failures),
        );
        r.register("freeway_usage_backlog", "Usage records the store refused, waiting to be retried", gauge(w.backlog));
        r.register(
            "freeway_usage_writer_restarts",
            "Times the usage writer was restarted after a panic",
            counter(w.writer_restarts),
        );
        if let Some((up, fallbacks)) = self.redis {
            r.register(
                "freeway_redis_up",
                "Whether the Redis that shares quota counters answers (1) or not (0)",
                gauge(u64::from(up)),
            );
            r.register(
                "freeway_quota_local_fallbacks",
                "Times quota counting fell back to this process' own counters because Redis was away",
                counter(fallbacks),
            );
        }
        r.register(
            "freeway_guest_instances_live",
            "Guest component instances alive (in use or idle)",
            gauge(self.guest_instances_live),
        );
        r.register(
            "freeway_guest_instances_idle",
            "Provider instances kept warm for reuse",
            gauge(self.guest_instances_idle),
        );
        r.register("freeway_requests_in_flight", "API requests being served", gauge(self.requests_in_flight));
        r.register(
            "freeway_config_generation",
            "Snapshots of the configuration published since start",
            gauge(self.config_generation),
        );

        let limit = Family::<QuotaLabels, Gauge>::default();
        let remaining = Family::<QuotaLabels, Gauge>::default();
        for q in &self.quota {
            let labels = QuotaLabels {
                provider: q.provider.clone(),
                pool: q.pool.clone(),
                account: q.account.clone(),
                model: q.model.clone(),
                dimension: q.dimension,
            };
            limit.get_or_create(&labels).set(i64::try_from(q.limit).unwrap_or(i64::MAX));
            let left = q.limit.saturating_sub(q.used);
            remaining.get_or_create(&labels).set(i64::try_from(left).unwrap_or(i64::MAX));
        }
        r.register(
            "freeway_quota_limit",
            "A quota pool's limit per dimension (rpm, rpd, tpm, ...), the provider's figure when it reported one",
            limit,
        );
        r.register(
            "freeway_quota_remaining",
            "What a quota pool has left per dimension, reservations in flight counted as used",
            remaining,
        );
        let cooling = Family::<ProviderLabels, Gauge>::default();
        for (provider, n) in &self.cooldowns_active {
            let labels = ProviderLabels { provider: provider.clone() };
            cooling.get_or_create(&labels).set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        r.register(
            "freeway_cooldowns_active",
            "Accounts resting now (cooling down or out of rotation), per provider",
            cooling,
        );
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(out, &r) {
            tracing::error!("rendering the metrics failed: {e}");
        }
    }
}
