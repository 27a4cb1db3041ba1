//! State shared by every request: the live configuration, rules, recordings and counters.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::json;

use crate::config::{LimitsConfig, SimConfig, UpstreamConfig};
use crate::limits::{Decision, Limiter, Snapshot};
use crate::record::{Recorder, Stats};
use crate::script::RuleBook;

/// `created` of every listed model.
pub const MODEL_CREATED: u64 = 1_700_000_000;

/// One configured upstream with its live counters.
#[derive(Debug)]
pub struct Upstream {
    pub config: UpstreamConfig,
    pub limiter: Option<Limiter>,
    /// One limiter per model of `model_limits`.
    pub model_limiters: HashMap<String, Limiter>,
    /// Pre-rendered `GET {prefix}/models` body.
    pub models_body: Bytes,
}

impl Upstream {
    fn new(config: UpstreamConfig) -> Self {
        let data: Vec<_> = config
            .models
            .iter()
            .map(|id| json!({"id": id, "object": "model", "created": MODEL_CREATED, "owned_by": "sim"}))
            .collect();
        let models_body = Bytes::from(serde_json::to_vec(&json!({"object": "list", "data": data})).unwrap_or_default());
        let model_limiters = config.model_limits.iter().map(|(model, l)| (model.clone(), Limiter::new(*l))).collect();
        Self { limiter: config.limits.map(Limiter::new), model_limiters, config, models_body }
    }

    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    /// The limiter that counts `key`'s requests for `model`, and the name it counts them under:
    /// the model's own (`model_limits`), else the upstream's, per key or per (key, model).
    pub fn counter<'k>(&self, key: &'k str, model: &str) -> Option<(&Limiter, Cow<'k, str>)> {
        if let Some(limiter) = self.model_limiters.get(model) {
            return Some((limiter, Cow::Borrowed(key)));
        }
        let limiter = self.limiter.as_ref()?;
        let name =
            if limiter.limits().per_model { Cow::Owned(format!("{key}\u{1f}{model}")) } else { Cow::Borrowed(key) };
        Some((limiter, name))
    }

    /// Counts one request of `tokens` tokens by `key` for `model`; `None` when nothing limits it.
    pub fn acquire(&self, key: &str, model: &str, tokens: u64, now_ms: u64) -> Option<Decision> {
        self.counter(key, model).map(|(limiter, name)| limiter.acquire(&name, tokens, now_ms))
    }

    /// The counters of `key` for `model` and the limits they count against, without counting.
    pub fn peek(&self, key: &str, model: &str, now_ms: u64) -> Option<(Snapshot, &LimitsConfig)> {
        self.counter(key, model).map(|(limiter, name)| (limiter.peek(&name, now_ms), limiter.limits()))
    }

    /// Milliseconds until `model`'s day windows start again (00:00 UTC without limits).
    pub fn until_daily_reset(&self, model: &str, now_ms: u64) -> u64 {
        match self.counter("", model) {
            Some((limiter, _)) => limiter.until_daily_reset(now_ms),
            None => crate::limits::until_utc_midnight(now_ms),
        }
    }

    /// Forgets every counter.
    pub fn reset_limits(&self) {
        self.limiter.iter().chain(self.model_limiters.values()).for_each(Limiter::reset);
    }
}

/// A configuration made live; replaced as a whole by `POST /_sim/config`.
#[derive(Debug)]
pub struct Runtime {
    pub config: SimConfig,
    /// Longest prefix first so nested prefixes route to the most specific upstream.
    pub upstreams: Vec<Upstream>,
}

impl Runtime {
    pub fn new(config: SimConfig) -> Self {
        let mut upstreams: Vec<Upstream> = config.upstreams.iter().cloned().map(Upstream::new).collect();
        upstreams.sort_by_key(|u| std::cmp::Reverse(u.prefix().len()));
        Self { config, upstreams }
    }

    /// The upstream serving `path` (prefix followed by "/" or end of path).
    pub fn route(&self, path: &str) -> Option<&Upstream> {
        self.upstreams
            .iter()
            .find(|u| path.strip_prefix(u.prefix()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
    }

    /// The first configured upstream (the one `Simulator::base_url` points at).
    pub fn default_prefix(&self) -> Option<&str> {
        self.config.upstreams.first().map(|u| u.prefix.as_str())
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Shared {
    runtime: RwLock<Arc<Runtime>>,
    pub rules: RuleBook,
    pub recorder: Recorder,
    pub stats: Stats,
    seq: AtomicU64,
}

impl Shared {
    pub fn new(config: SimConfig) -> Self {
        Self {
            runtime: RwLock::new(Arc::new(Runtime::new(config))),
            rules: RuleBook::default(),
            recorder: Recorder::default(),
            stats: Stats::default(),
            seq: AtomicU64::new(0),
        }
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.read().clone()
    }

    /// Replaces the configuration; counters start from zero.
    pub fn set_config(&self, config: SimConfig) {
        let runtime = Arc::new(Runtime::new(config));
        *self.runtime.write() = runtime;
        self.stats.reset();
    }

    /// Clears rules, counters, recorded requests and the request sequence.
    pub fn reset(&self) {
        self.rules.clear();
        self.recorder.clear();
        self.stats.reset();
        self.seq.store(0, Ordering::Relaxed);
        for upstream in &self.runtime().upstreams {
            upstream.reset_limits();
        }
    }

    /// Next request number (1, 2, ...).
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(prefixes: &[&str]) -> Runtime {
        let config = SimConfig {
            record: true,
            upstreams: prefixes
                .iter()
                .map(|p| UpstreamConfig { prefix: (*p).to_owned(), ..UpstreamConfig::default() })
                .collect(),
        };
        Runtime::new(config)
    }

    #[test]
    fn routes_by_longest_prefix_on_segment_boundaries() {
        let rt = runtime(&["/v1", "/openai/v1", "/api"]);
        assert_eq!(rt.route("/v1/chat/completions").map(Upstream::prefix), Some("/v1"));
        assert_eq!(rt.route("/openai/v1/models").map(Upstream::prefix), Some("/openai/v1"));
        assert_eq!(rt.route("/v10/models").map(Upstream::prefix), None);
        assert_eq!(rt.route("/api").map(Upstream::prefix), Some("/api"));
        assert_eq!(rt.default_prefix(), Some("/v1"));
        let root = runtime(&["", "/v1"]);
        assert_eq!(root.route("/chat/completions").map(Upstream::prefix), Some(""));
        assert_eq!(root.route("/v1/models").map(Upstream::prefix), Some("/v1"));
    }

    #[test]
    fn models_body_lists_models() {
        let rt = runtime(&["/v1"]);
        let body: serde_json::Value = serde_json::from_slice(&rt.upstreams[0].models_body).unwrap();
        assert_eq!(body["object"], "list");
        assert_eq!(body["data"][0]["id"], "sim-model");
        assert_eq!(body["data"][0]["owned_by"], "sim");
        assert_eq!(body["data"][1]["id"], "local-model");
    }

    #[test]
    fn seq_resets() {
        let shared = Shared::new(SimConfig::default());
        assert_eq!(shared.next_seq(), 1);
        assert_eq!(shared.next_seq(), 2);
        shared.reset();
        assert_eq!(shared.next_seq(), 1);
    }
}
