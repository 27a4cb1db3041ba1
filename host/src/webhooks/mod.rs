//! Webhooks (`[[webhooks]]`): signed JSON POSTs to operator endpoints when an account is
//! disabled or recovers, a quota pool runs out or resets, a virtual key reaches 80 % / 100 % of
//! a budget, a component is refused on reload, or a provider goes down or comes back.
//!
//! Never on a request's path: [`Webhooks::emit`] puts the event on a bounded queue without
//! waiting (a full queue drops it, counts it in `freeway_webhook_dropped_total` and logs a
//! warning); one background task delivers (deliver.rs), with retries and backoff; the last
//! deliveries are kept for `GET /admin/webhooks/deliveries` (log.rs).
//!
//! - event.rs: the events and their JSON body
//! - sign.rs: the `x-freeway-signature` HMAC
//! - deliver.rs: the dispatcher, its retries and its bounds
//! - log.rs: the deliveries log
//! - watch.rs: facts that are events only when they change (quota windows, provider streaks)

pub mod deliver;
pub mod event;
pub mod log;
pub mod sign;
pub mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

pub use event::Event;

use crate::config::WebhookConfig;
use crate::telemetry::Metrics;

/// Events waiting for the dispatcher, at most.
pub const QUEUE: usize = 1024;

/// The webhooks of one gateway.
pub struct Webhooks {
    tx: mpsc::Sender<Event>,
    endpoints: Arc<ArcSwap<Vec<Arc<WebhookConfig>>>>,
    log: Arc<log::Log>,
    metrics: Arc<Metrics>,
    watch: Arc<watch::Watch>,
    /// a full queue was warned about (until the queue takes an event again)
    warned_full: AtomicBool,
}

impl Webhooks {
    /// The gateway's webhooks: `endpoints` from `[[webhooks]]`, sent over HTTP.
    pub fn start(
        endpoints: &[WebhookConfig],
        proxy_from_env: bool,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, String> {
        Ok(Self::with_sender(endpoints, deliver::http_sender(proxy_from_env)?, metrics, QUEUE))
    }

    /// Webhooks whose attempts go through `send`, with a queue of `queue` events.
    pub fn with_sender(
        endpoints: &[WebhookConfig],
        send: deliver::Sender,
        metrics: Arc<Metrics>,
        queue: usize,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let this = Arc::new(Self {
            tx,
            endpoints: Arc::new(ArcSwap::from_pointee(Vec::new())),
            log: Arc::new(log::Log::default()),
            metrics: metrics.clone(),
            watch: Arc::new(watch::Watch::default()),
            warned_full: AtomicBool::new(false),
        });
        this.configure(endpoints);
        let dispatcher = Arc::new(deliver::Dispatcher::new(send, this.log.clone(), metrics));
        let (list, watch) = (this.endpoints.clone(), this.watch.clone());
        tokio::spawn(dispatcher.run(rx, move || list.load_full(), move || resets(&watch)));
        this
    }

    /// The endpoints after a configuration reload (deliveries under way keep theirs).
    pub fn configure(&self, endpoints: &[WebhookConfig]) {
        self.endpoints.store(Arc::new(endpoints.iter().cloned().map(Arc::new).collect()));
    }

    /// Whether any endpoint is configured.
    pub fn enabled(&self) -> bool {
        !self.endpoints.load().is_empty()
    }

    /// Hand `event` to the dispatcher without waiting; a full queue drops it (counted, warned).
    pub fn emit(&self, event: Event) {
        if !self.endpoints.load().iter().any(|w| w.wants(event.name())) {
            return;
        }
        match self.tx.try_send(event) {
            Ok(()) => {
                if self.warned_full.load(Ordering::Relaxed) {
                    self.warned_full.store(false, Ordering::Relaxed);
                }
            }
            Err(mpsc::error::TrySendError::Full(e)) => {
                self.metrics.webhook_dropped();
                if !self.warned_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "freeway::webhooks",
                        "the webhook queue is full ({QUEUE} events): {} dropped, and further ones until it drains",
                        e.name()
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.metrics.webhook_dropped(),
        }
    }

    /// The latest deliveries, oldest first.
    pub fn deliveries(&self) -> Vec<log::Record> {
        self.log.list()
    }

    /// A quota pool's candidate was refused for lack of room: `quota.exhausted` once per
    /// window (the dispatcher tells `quota.reset` when it ends). Per-minute rates are not
    /// exhaustion.
    pub fn quota_blocked(&self, provider: &str, pool: &str, blocked: &crate::quota::Blocked) {
        let (Some(until), Some(limit)) = (blocked.until_ms, watch::exhausted_limit(&blocked.reason)) else {
            return;
        };
        if !self.enabled() {
            return;
        }
        if self.watch.exhausted(provider, pool, limit, until, crate::clock::now_ms()) {
            self.emit(Event::QuotaExhausted {
                provider: provider.to_owned(),
                pool: pool.to_owned(),
                limit: limit.to_owned(),
                reason: blocked.reason.clone(),
                resets_at: Some(until),
            });
        }
    }

    /// The provider said a pool's quota is used up (its own daily quota): it rests `rest`.
    pub fn quota_used_up(&self, provider: &str, pool: &str, rest: Duration, reason: &str) {
        if !self.enabled() {
            return;
        }
        let now = crate::clock::now_ms();
        let until = now.saturating_add(u64::try_from(rest.as_millis()).unwrap_or(u64::MAX));
        if self.watch.exhausted(provider, pool, "provider", until, now) {
            self.emit(Event::QuotaExhausted {
                provider: provider.to_owned(),
                pool: pool.to_owned(),
                limit: "provider".to_owned(),
                reason: reason.chars().take(300).collect(),
                resets_at: Some(until),
            });
        }
    }

    /// An attempt on `provider` failed on the provider's side (5xx, timeout, connection):
    /// `provider.down` when that makes [`watch::DOWN_AFTER`] in a row.
    pub fn provider_failed(&self, provider: &str, error: &str) {
        if !self.enabled() {
            return;
        }
        if let Some(n) = self.watch.provider_failed(provider, crate::clock::now_ms()) {
            self.emit(Event::ProviderDown {
                provider: provider.to_owned(),
                consecutive_failures: n,
                last_error: error.chars().take(300).collect(),
            });
        }
    }

    /// An attempt on `provider` succeeded: `provider.up` when it was down.
    pub fn provider_ok(&self, provider: &str) {
        if !self.enabled() {
            return;
        }
        if let Some(down_for_ms) = self.watch.provider_ok(provider, crate::clock::now_ms()) {
            self.emit(Event::ProviderUp { provider: provider.to_owned(), down_for_ms });
        }
    }
}

/// The `quota.reset` events due now.
fn resets(watch: &watch::Watch) -> Vec<Event> {
    watch
        .resets_due(crate::clock::now_ms())
        .into_iter()
        .map(|(provider, pool, limit)| Event::QuotaReset { provider, pool, limit })
        .collect()
}

#[cfg(test)]
mod tests;
