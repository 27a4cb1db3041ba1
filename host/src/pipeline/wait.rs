//! Wait: when every candidate was refused for lack of quota (a full rolling window, an account
//! resting after a rate limit) but capacity returns within the request's maximum wait, the
//! request waits in the fair queue ([`crate::queue`]) instead of being answered 429, and the
//! route and dispatch steps run again when its turn comes and capacity may be back.
//!
//! - the maximum wait: `[queue] max_wait_ms`, or the virtual key's own `max_wait_ms`; the
//!   header `x-freeway-max-wait-ms` asks for another (never more than the key's, nor than
//!   `[queue] max_wait_cap_ms`); `[queue] max_wait_ms = 0` turns waiting off
//! - only a 429 for quota with a known recovery waits; anything else is answered as it is
//! - a request whose wait would end before the earliest recovery is refused at once, with that
//!   recovery as its `Retry-After`: it does not wait just to fail
//! - while requests for the model wait, a new one queues behind them instead of taking
//!   capacity before them; the front of the queue tries when capacity returns (the recovery
//!   instant it was told), and keeps its place when there is still none
//! - a request waits before anything is sent to the client: a stream starts when its turn
//!   comes. A client that leaves while waiting drops its place (the ticket) and holds no
//!   reservation: it spends nothing

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use tokio::time::Instant;

use super::context::RequestCtx;
use crate::config::QueueConfig;
use crate::errors::{ErrorKind, GatewayError};
use crate::queue::{Left, WaitQueue};

/// The request header that asks for a maximum wait, in ms.
pub const MAX_WAIT_HEADER: &str = "x-freeway-max-wait-ms";
/// The response header saying how long the request waited, in ms.
pub const WAITED_HEADER: &str = "x-freeway-waited-ms";

/// How long a request may wait: `[queue] max_wait_ms` or the key's `max_wait_ms`, replaced by
/// the client's header when it sent one, never more than the key's own bound nor the cap; zero
/// when waiting is off.
pub fn max_wait(q: &QueueConfig, key: Option<u64>, header: Option<Duration>) -> Duration {
    if q.max_wait_ms == 0 {
        return Duration::ZERO;
    }
    let cap = Duration::from_millis(q.max_wait_cap_ms);
    let ceiling = key.map_or(cap, |k| Duration::from_millis(k).min(cap));
    let wanted = header.unwrap_or_else(|| Duration::from_millis(key.unwrap_or(q.max_wait_ms)));
    wanted.min(ceiling)
}

/// The header's value: whole milliseconds.
pub fn parse_header(v: &http::HeaderValue) -> Option<Duration> {
    v.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_millis)
}

/// When capacity returns, for an error that may be waited out: a 429 for quota or a rest with
/// a known recovery.
fn recovery(e: &GatewayError) -> Option<Instant> {
    (e.kind == ErrorKind::UpstreamRateLimited).then_some(e.retry_after).flatten().map(|d| Instant::now() + d)
}

/// The 429 for a request that cannot be served within its wait: capacity returns at `at`.
fn too_late(model: &str, max: Duration, at: Option<Instant>, waited: Option<Duration>) -> GatewayError {
    // a recovery already past (the front is trying now): try again in a second
    let after = at
        .map(|at| at.saturating_duration_since(Instant::now()))
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(1));
    let how = match waited {
        Some(w) => format!("waited {} ms in the queue", w.as_millis()),
        None => "other requests wait for it already".to_owned(),
    };
    GatewayError::new(
        ErrorKind::UpstreamRateLimited,
        format!(
            "Every account that serves `{model}` is out of quota; {how}, and capacity returns in about {:.1} s, after this request's maximum wait of {} ms.",
            after.as_secs_f64(),
            max.as_millis()
        ),
    )
    .with_retry_after(Some(after))
}

/// Run `attempt` (route and dispatch), waiting in the queue for capacity as the request's
/// maximum wait allows; the response, or the error the client gets.
pub async fn serve<F>(ctx: &RequestCtx<'_>, attempt: impl FnMut() -> F) -> Result<Response, GatewayError>
where
    F: Future<Output = Result<Response, GatewayError>>,
{
    let q = &ctx.snapshot.config.queue;
    let key_wait = ctx.principal.virtual_key().and_then(|k| k.doc.max_wait_ms);
    let plan = Plan {
        max: max_wait(q, key_wait, ctx.exchange.max_wait()),
        model: &ctx.req.model,
        // worked out only when the request joins the queue, not on every request
        client: || {
            let lane = ctx.principal.id().unwrap_or_else(|| "anyone".to_owned());
            (lane, q.weight(ctx.principal.tags(&ctx.snapshot.config.server)))
        },
        max_queued: q.max_queued,
    };
    let (result, waited) = run(ctx.services.queue, &plan, attempt).await;
    if let Some(waited) = waited {
        ctx.queued(waited);
        ctx.exchange.set_waited(waited);
        tracing::debug!(
            request_id = %ctx.request_id(), waited_ms = waited.as_millis(), served = result.is_ok(),
            "waited for capacity"
        );
    }
    result
}

/// One request's terms of waiting.
pub struct Plan<'a, C> {
    /// its maximum wait (zero: it never waits)
    pub max: Duration,
    /// the model asked for: the queue's line
    pub model: &'a str,
    /// the client key (its lane) and its weight, asked for when the request joins the queue
    pub client: C,
    /// `[queue] max_queued`
    pub max_queued: usize,
}

/// [`serve`] on a queue: the result, and how long the request waited when it joined the queue.
pub async fn run<T, F, C>(
    queue: &Arc<WaitQueue>,
    plan: &Plan<'_, C>,
    mut attempt: impl FnMut() -> F,
) -> (Result<T, GatewayError>, Option<Duration>)
where
    F: Future<Output = Result<T, GatewayError>>,
    C: Fn() -> (String, u32),
{
    let (model, max) = (plan.model, plan.max);
    if max.is_zero() {
        return (attempt().await, None);
    }
    let deadline = Instant::now() + max;
    let mut recover_at = None;
    let mut last = None;
    if queue.busy(model) {
        // queue behind the requests already waiting, unless what they wait for comes too late
        if let Some(at) = queue.recovery(model).filter(|at| *at > deadline) {
            return (Err(too_late(model, max, Some(at), None)), None);
        }
    } else {
        let e = match attempt().await {
            Ok(r) => return (Ok(r), None),
            Err(e) => e,
        };
        match recovery(&e) {
            Some(at) if at <= deadline => {
                recover_at = Some(at);
                last = Some(e);
            }
            _ => return (Err(e), None),
        }
    }
    let (lane, weight) = (plan.client)();
    let Ok(ticket) = queue.join(model, &lane, weight, plan.max_queued) else {
        tracing::debug!("the wait queue is full ({} waiting)", plan.max_queued);
        return (Err(last.unwrap_or_else(|| too_late(model, max, queue.recovery(model), None))), None);
    };
    if let Some(at) = recover_at {
        ticket.note_recovery(at);
    }
    let result = loop {
        tokio::select! {
            () = ticket.turn() => {}
            () = tokio::time::sleep_until(deadline) => {
                break Err(too_late(model, max, queue.recovery(model), Some(ticket.waited())));
            }
        }
        // at the front: when capacity comes back (never after the deadline), try
        if let Some(at) = recover_at.take() {
            tokio::time::sleep_until(at).await;
        }
        match attempt().await {
            Ok(r) => break Ok(r),
            Err(e) => match recovery(&e) {
                Some(at) if at <= deadline => {
                    ticket.note_recovery(at);
                    recover_at = Some(at);
                }
                _ => break Err(e),
            },
        }
    };
    let waited = ticket.waited();
    ticket.leave(if result.is_ok() { Left::Served } else { Left::Refused });
    (result, Some(waited))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_wait_ms: u64) -> QueueConfig {
        QueueConfig { max_wait_ms, ..QueueConfig::default() }
    }

    #[test]
    fn the_wait_is_the_default_the_keys_or_the_headers_within_the_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(max_wait(&config(10_000), None, None), ms(10_000));
        assert_eq!(max_wait(&config(10_000), Some(2_000), None), ms(2_000), "the key's own");
        assert_eq!(max_wait(&config(10_000), None, Some(ms(500))), ms(500), "the header asks for less");
        assert_eq!(max_wait(&config(10_000), None, Some(ms(30_000))), ms(30_000), "or more");
        assert_eq!(max_wait(&config(10_000), None, Some(ms(90_000))), ms(60_000), "never beyond the cap");
        assert_eq!(max_wait(&config(10_000), Some(2_000), Some(ms(5_000))), ms(2_000), "nor beyond the key's");
        assert_eq!(max_wait(&config(10_000), Some(0), None), Duration::ZERO, "a key that never waits");
        assert_eq!(max_wait(&config(0), None, Some(ms(5_000))), Duration::ZERO, "waiting is off");
    }

    #[test]
    fn only_a_quota_429_with_a_known_recovery_is_waited_out() {
        let limited = GatewayError::new(ErrorKind::UpstreamRateLimited, "x");
        assert!(recovery(&limited).is_none(), "no Retry-After: nothing to wait for");
        assert!(recovery(&limited.with_retry_after(Some(Duration::from_secs(2)))).is_some());
        let daily =
            GatewayError::new(ErrorKind::UpstreamQuotaExhausted, "x").with_retry_after(Some(Duration::from_secs(2)));
        assert!(recovery(&daily).is_none());
        let busy = GatewayError::new(ErrorKind::Overloaded, "x").with_retry_after(Some(Duration::from_secs(1)));
        assert!(recovery(&busy).is_none());
    }

    fn plan(lane: &'static str, max_ms: u64) -> Plan<'static, impl Fn() -> (String, u32)> {
        Plan { max: Duration::from_millis(max_ms), model: "m", client: move || (lane.to_owned(), 1), max_queued: 16 }
    }

    /// A pool that frees one slot at `free_at` (as a rolling window does): before, a 429 saying so.
    fn pool(
        free_at: Instant,
        slots: Arc<std::sync::atomic::AtomicU32>,
    ) -> impl FnMut() -> std::future::Ready<Result<u32, GatewayError>> {
        move || {
            let now = Instant::now();
            if now >= free_at && slots.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                return std::future::ready(Ok(slots.fetch_sub(1, std::sync::atomic::Ordering::SeqCst)));
            }
            let after = if now >= free_at { Duration::from_secs(10) } else { free_at - now };
            std::future::ready(Err(
                GatewayError::new(ErrorKind::UpstreamRateLimited, "full").with_retry_after(Some(after))
            ))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_request_is_served_when_a_slot_frees() {
        let q = WaitQueue::new(crate::telemetry::QueueMetrics::detached());
        let free_at = Instant::now() + Duration::from_secs(2);
        let slots = Arc::new(std::sync::atomic::AtomicU32::new(1));
        let (result, waited) = run(&q, &plan("a", 5_000), pool(free_at, slots)).await;
        assert!(result.is_ok());
        assert_eq!(waited, Some(Duration::from_secs(2)), "served the moment the slot freed");
        assert_eq!(q.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_whose_wait_ends_before_the_recovery_is_refused_at_once() {
        let q = WaitQueue::new(crate::telemetry::QueueMetrics::detached());
        let free_at = Instant::now() + Duration::from_secs(2);
        let slots = Arc::new(std::sync::atomic::AtomicU32::new(1));
        let t = Instant::now();
        let (result, waited) = run(&q, &plan("a", 1_000), pool(free_at, slots)).await;
        let e = result.err().unwrap();
        assert_eq!(e.retry_after, Some(Duration::from_secs(2)), "the honest Retry-After");
        assert_eq!(waited, None, "it never queued");
        assert_eq!(t.elapsed(), Duration::ZERO, "answered at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_behind_others_is_refused_when_its_wait_ends_and_keeps_nothing() {
        let q = WaitQueue::new(crate::telemetry::QueueMetrics::detached());
        let free_at = Instant::now() + Duration::from_secs(2);
        let slots = Arc::new(std::sync::atomic::AtomicU32::new(1));
        let first = {
            let (q, slots) = (q.clone(), slots.clone());
            tokio::spawn(async move { run(&q, &plan("a", 5_000), pool(free_at, slots)).await })
        };
        tokio::task::yield_now().await;
        assert!(q.busy("m"));
        // the second queues behind the first (both fit their wait), but only one slot frees
        let (second, waited) = run(&q, &plan("b", 3_000), pool(free_at, slots)).await;
        let (first, _) = first.await.unwrap();
        assert!(first.is_ok(), "the first in line took the slot");
        let e = second.err().unwrap();
        assert_eq!(e.kind, ErrorKind::UpstreamRateLimited);
        assert!(e.retry_after.is_some());
        assert!(waited.is_some());
        assert_eq!(q.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_says_when_capacity_returns() {
        let e = too_late("m", Duration::from_millis(500), Some(Instant::now() + Duration::from_secs(3)), None);
        assert_eq!(e.kind, ErrorKind::UpstreamRateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        assert!(e.message.contains("maximum wait of 500 ms"), "{}", e.message);
    }
}
