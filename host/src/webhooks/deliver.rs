//! The dispatcher: one background task takes events off the queue and starts one delivery per
//! subscribed endpoint. A delivery POSTs the signed body with the endpoint's deadline; a 2xx is
//! delivered, anything else is retried after a backoff (1 s doubling to 60 s, with jitter) until
//! the endpoint's `max_attempts` are spent. At most [`MAX_DELIVERIES`] deliveries are under way
//! at once (sending or waiting to retry) and at most [`PER_ENDPOINT`] attempts are out to one
//! endpoint; when every slot is taken the dispatcher waits, the queue fills up and further
//! events are dropped (and counted) by [`super::Webhooks::emit`], never waited for.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::event::{Event, delivery_id};
use super::log::{Attempt, Log, State};
use super::sign;
use crate::config::WebhookConfig;
use crate::telemetry::Metrics;

/// Deliveries under way at once, all endpoints together.
pub const MAX_DELIVERIES: usize = 32;
/// Attempts out to one endpoint at once.
pub const PER_ENDPOINT: usize = 4;
/// The pause after a first failed attempt; it doubles after each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One HTTP attempt, as handed to the sender.
#[derive(Debug, Clone)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    pub timeout: Duration,
}

/// Sends one attempt: the response's status, or why there was none.
pub type Sender = Arc<dyn Fn(Request) -> BoxFuture<'static, Result<u16, String>> + Send + Sync>;

/// The sender of the running gateway: a reqwest client (rustls), no redirects followed, the
/// proxy from the environment only when `[upstream] proxy_from_env` says so.
pub fn http_sender(proxy_from_env: bool) -> Result<Sender, String> {
    let mut builder = reqwest::Client::builder();
    if !proxy_from_env {
        builder = builder.no_proxy();
    }
    let client = builder
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(PER_ENDPOINT)
        .tcp_nodelay(true)
        .user_agent(concat!("freeway-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the webhook HTTP client: {}", e.without_url()))?;
    let send: Sender = Arc::new(move |r: Request| -> BoxFuture<'static, Result<u16, String>> {
        let client = client.clone();
        Box::pin(async move {
            let mut req = client.post(&r.url).timeout(r.timeout).body(r.body);
            for (name, value) in r.headers {
                req = req.header(name, value);
            }
            match req.send().await {
                Ok(resp) => Ok(resp.status().as_u16()),
                Err(e) if e.is_timeout() => Err(format!("no answer within {} ms", r.timeout.as_millis())),
                Err(e) => Err(e.without_url().to_string()),
            }
        })
    });
    Ok(send)
}

/// The pause after `failed` failed attempts (1, 2, ...): [`FIRST_BACKOFF`] doubling, at most
/// [`MAX_BACKOFF`], scaled by `jitter` (0.8 to 1.2, so endpoints that failed together do not
/// all come back at once) and still at most [`MAX_BACKOFF`].
pub fn backoff(failed: u32, jitter: f64) -> Duration {
    let base = FIRST_BACKOFF.saturating_mul(1 << failed.saturating_sub(1).min(10)).min(MAX_BACKOFF);
    base.mul_f64(jitter.clamp(0.8, 1.2)).min(MAX_BACKOFF)
}

fn jitter() -> f64 {
    0.8 + rand::random::<f64>() * 0.4
}

/// The dispatcher's shared parts.
pub(super) struct Dispatcher {
    pub send: Sender,
    pub log: Arc<Log>,
    pub metrics: Arc<Metrics>,
    total: Arc<Semaphore>,
    per_endpoint: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// One event on its way to one endpoint.
struct Job {
    id: String,
    event: &'static str,
    body: Bytes,
    endpoint: Arc<WebhookConfig>,
}

impl Dispatcher {
    pub fn new(send: Sender, log: Arc<Log>, metrics: Arc<Metrics>) -> Self {
        Self {
            send,
            log,
            metrics,
            total: Arc::new(Semaphore::new(MAX_DELIVERIES)),
            per_endpoint: Mutex::new(HashMap::new()),
        }
    }

    /// Take events off the queue until every sender is gone; `tick` is called every second
    /// (for events found by time, like a quota's reset).
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Event>,
        endpoints: impl Fn() -> Arc<Vec<Arc<WebhookConfig>>> + Send + 'static,
        tick: impl Fn() -> Vec<Event> + Send + 'static,
    ) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let events = tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => vec![e],
                    None => return,
                },
                _ = every.tick() => tick(),
            };
            for e in events {
                let list = endpoints();
                self.fan_out(&e, &list).await;
            }
        }
    }

    /// Start a delivery of `event` to every endpoint that wants it (waiting for a slot).
    async fn fan_out(self: &Arc<Self>, event: &Event, endpoints: &[Arc<WebhookConfig>]) {
        for endpoint in endpoints.iter().filter(|w| w.wants(event.name())) {
            let id = delivery_id();
            let now = crate::clock::now_ms();
            let body = Bytes::from(event.body(&id, now));
            self.log.begin(&id, event.name(), &endpoint.url, now);
            let Ok(slot) = self.total.clone().acquire_owned().await else { return };
            let job = Job { id, event: event.name(), body, endpoint: endpoint.clone() };
            tokio::spawn(self.clone().deliver(job, slot));
        }
    }

    fn endpoint_slots(&self, url: &str) -> Arc<Semaphore> {
        self.per_endpoint.lock().entry(url.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(PER_ENDPOINT))).clone()
    }

    /// Attempt `job` until it is delivered or its attempts are spent.
    async fn deliver(self: Arc<Self>, job: Job, _slot: OwnedSemaphorePermit) {
        let slots = self.endpoint_slots(&job.endpoint.url);
        let max = job.endpoint.max_attempts.max(1);
        let timeout = Duration::from_millis(job.endpoint.timeout_ms.max(1));
        for attempt in 1..=max {
            let timestamp = crate::clock::now_ms() / 1000;
            let signature = sign::signature(job.endpoint.secret.expose().as_bytes(), timestamp, &job.body);
            let request = Request {
                url: job.endpoint.url.0.clone(),
                headers: vec![
                    ("content-type", "application/json".to_owned()),
                    (sign::EVENT, job.event.to_owned()),
                    (sign::DELIVERY, job.id.clone()),
                    (sign::TIMESTAMP, timestamp.to_string()),
                    (sign::SIGNATURE, signature),
                ],
                body: job.body.clone(),
                timeout,
            };
            let result = {
                let Ok(_out) = slots.acquire().await else { return };
                // the sender's own deadline, and this one for a sender that has none
                match tokio::time::timeout(timeout + Duration::from_millis(100), (self.send)(request)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                }
            };
            let now = crate::clock::now_ms();
            let (status, error) = match result {
                Ok(s) if (200..300).contains(&s) => {
                    let done =
                        Attempt { status: Some(s), error: None, state: State::Delivered, next_attempt_at_ms: None };
                    self.log.attempted(&job.id, &done, now);
                    self.metrics.webhook_delivery(true);
                    return;
                }
                Ok(s) => (Some(s), format!("HTTP {s}")),
                Err(e) => (None, e),
            };
            if attempt == max {
                let failed = Attempt { status, error: Some(&error), state: State::Failed, next_attempt_at_ms: None };
                self.log.attempted(&job.id, &failed, now);
                self.metrics.webhook_delivery(false);
                tracing::warn!(
                    target: "freeway::webhooks",
                    delivery = %job.id, event = job.event, url = %super::log::shown_url(&job.endpoint.url),
                    "webhook not delivered after {attempt} attempt(s): {error}"
                );
                return;
            }
            let wait = backoff(attempt, jitter());
            let next = now.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
            let pending =
                Attempt { status, error: Some(&error), state: State::Pending, next_attempt_at_ms: Some(next) };
            self.log.attempted(&job.id, &pending, now);
            self.metrics.webhook_retry();
            tracing::debug!(target: "freeway::webhooks", delivery = %job.id, "attempt {attempt} failed ({error}); again in {wait:?}");
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_one_second_to_a_minute_with_bounded_jitter() {
        let plain: Vec<u64> = (1..=8).map(|n| backoff(n, 1.0).as_secs()).collect();
        assert_eq!(plain, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(1, 0.8), Duration::from_millis(800));
        assert_eq!(backoff(2, 1.2), Duration::from_millis(2400));
        assert_eq!(backoff(9, 1.2), MAX_BACKOFF, "never beyond a minute");
        assert_eq!(backoff(1, 5.0), Duration::from_millis(1200), "jitter is bounded");
        assert_eq!(backoff(u32::MAX, 1.0), MAX_BACKOFF);
    }
}
