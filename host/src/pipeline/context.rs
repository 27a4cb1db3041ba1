//! One request, one context: what every step of the pipeline reads, made once when the request
//! arrives and handed to each step instead of a list of parameters.
//!
//! The configuration is the snapshot the request started under: no step reads the registry
//! again, so a hot reload in the middle of a request never mixes two configurations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::account::UsageSink;
use super::client_limits::ClientLimits;
use super::exchange::Exchange;
use super::needs::Needs;
use crate::principal::Principal;
use crate::quota::Ledger;
use crate::registry::Snapshot;
use crate::routing::stats::Stats;
use crate::telemetry::Metrics;
use crate::upstream::UpstreamClient;
use crate::wire::chat::ChatBody;

/// The running gateway's parts that the steps use, borrowed for one request. The pipeline
/// never sees the whole application.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    pub http: &'a UpstreamClient,
    pub usage: &'a UsageSink,
    /// every quota pool's counters
    pub ledger: &'a Arc<Ledger>,
    /// the gateway's limits on its own clients
    pub client_limits: &'a ClientLimits,
    /// live latency / speed / success per (provider, model)
    pub stats: &'a Arc<Stats>,
    /// what `/metrics` shows (most of it through the handles on each provider entry)
    pub metrics: &'a Metrics,
    /// the Responses API's kept answers
    pub conversations: &'a super::dialect::Conversations,
    /// the exact response cache (`[cache]`)
    pub cache: &'a Arc<crate::cache::ResponseCache>,
    /// where virtual keys' budget levels are told
    pub key_alerts: &'a Arc<crate::keys::budget::Alerts>,
    /// requests waiting for capacity (`[queue]`)
    pub queue: &'a Arc<crate::queue::WaitQueue>,
    /// where events for `[[webhooks]]` go (never waited for)
    pub webhooks: &'a crate::webhooks::Webhooks,
}

/// How much a request may spend on attempts, fixed when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// attempts sent, at most (`[upstream] max_attempts`, at least 1)
    pub attempts: usize,
    /// no attempt starts after this much time (`[upstream] retry_budget_ms`)
    pub retry: Duration,
    /// requests in flight per provider, at most (`[upstream] max_in_flight_per_provider`)
    pub in_flight_per_provider: usize,
    /// the output tokens reserved when the request does not say (`[quota] default_output_tokens`)
    pub default_output_tokens: u32,
}

impl Budget {
    pub fn of(snapshot: &Snapshot) -> Self {
        let up = &snapshot.config.upstream;
        Self {
            attempts: usize::try_from(up.max_attempts).unwrap_or(usize::MAX).max(1),
            retry: Duration::from_millis(up.retry_budget_ms),
            in_flight_per_provider: up.max_in_flight_per_provider.max(1),
            default_output_tokens: snapshot.config.quota.default_output_tokens,
        }
    }
}

/// One request as it travels through the steps.
pub struct RequestCtx<'a> {
    pub services: Services<'a>,
    /// the configuration the request started under
    pub snapshot: &'a Snapshot,
    pub principal: Principal,
    /// the parsed body (borrowing the bytes the client sent)
    pub req: &'a ChatBody<'a>,
    /// what the request needs from the model that serves it
    pub needs: Needs,
    pub budget: Budget,
    pub started: Instant,
    /// the request's id, and what its access log line will say
    pub exchange: &'a Arc<Exchange>,
    /// nanoseconds spent waiting for upstreams (sending, reading, priming a stream), so that the
    /// gateway's own overhead can be told apart
    upstream_wait_ns: AtomicU64,
    /// nanoseconds spent in the wait queue (not the gateway's overhead either)
    queued_ns: AtomicU64,
    /// the prompt's tokens, counted the first time a step needs them
    prompt_tokens: OnceLock<u64>,
    /// the client's body when it came as a legacy completions request (`/v1/completions`):
    /// passed through as it is to providers that still serve `/completions`
    pub legacy: Option<bytes::Bytes>,
}

impl<'a> RequestCtx<'a> {
    pub fn new(
        services: Services<'a>,
        snapshot: &'a Snapshot,
        principal: Principal,
        req: &'a ChatBody<'a>,
        needs: Needs,
        started: Instant,
        exchange: &'a Arc<Exchange>,
    ) -> Self {
        Self {
            services,
            snapshot,
            principal,
            req,
            needs,
            budget: Budget::of(snapshot),
            started,
            exchange,
            upstream_wait_ns: AtomicU64::new(0),
            queued_ns: AtomicU64::new(0),
            prompt_tokens: OnceLock::new(),
            legacy: None,
        }
    }

    /// The request's id (`x-request-id`).
    pub fn request_id(&self) -> &crate::telemetry::RequestId {
        &self.exchange.id
    }

    /// The prompt's tokens, counted with the tokenizer once per request (bounded work whatever
    /// its length; a long prompt is counted off the async worker).
    pub fn prompt_tokens(&self) -> u64 {
        let messages = self.req.messages;
        *self
            .prompt_tokens
            .get_or_init(|| crate::cpu::run(messages.get().len(), || super::cost::count_prompt_tokens(messages)))
    }

    /// Count `d` as time spent waiting for an upstream.
    pub fn waited(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.upstream_wait_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Time spent waiting for upstreams so far.
    pub fn upstream_wait(&self) -> Duration {
        Duration::from_nanos(self.upstream_wait_ns.load(Ordering::Relaxed))
    }

    /// Count `d` as time spent in the wait queue.
    pub fn queued(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.queued_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The gateway's own time so far: everything but the upstream waits and the time spent
    /// waiting in the queue.
    pub fn overhead(&self) -> Duration {
        let queued = Duration::from_nanos(self.queued_ns.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(self.upstream_wait()).saturating_sub(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_read_once_from_the_snapshot_the_request_started_under() {
        let mut config = crate::config::Config::default();
        config.upstream.max_attempts = 0;
        config.upstream.retry_budget_ms = 1234;
        config.upstream.max_in_flight_per_provider = 7;
        config.quota.default_output_tokens = 99;
        let snapshot = Snapshot::empty(Arc::new(config));
        let b = Budget::of(&snapshot);
        assert_eq!(b.attempts, 1, "at least one attempt");
        assert_eq!(b.retry, Duration::from_millis(1234));
        assert_eq!(b.in_flight_per_provider, 7);
        assert_eq!(b.default_output_tokens, 99);
    }
}
