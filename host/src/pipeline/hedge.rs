//! Hedging (per route, `[[routes]] hedge = true`): when the first candidate has not answered by
//! its own p95 time to first byte, the next candidate is started too; whichever answers first
//! serves the request and the other is cancelled (its connection dropped). Both reservations
//! are charged honestly: the loser was sent, so it counts as a request with its prompt.

use std::time::{Duration, Instant};

use super::attempt::{Ready, Reply, attempt};
use super::context::RequestCtx;
use super::walk::Walk;
use crate::errors::GatewayError;
use crate::quota::Cost;

/// The loser of a race was sent: it counts as a request with its prompt, no output.
fn charge_loser(ctx: &RequestCtx<'_>, mut loser: Ready<'_>) {
    loser.cand.account.health.answered();
    loser.slot = None;
    if let Some(r) = loser.reservation.take() {
        let e = r.estimate();
        ctx.services.ledger.settle(r, Cost { requests: 1, input_tokens: e.input_tokens, output_tokens: 0 });
    }
}

/// The end of one side's attempt: recorded in the walk (its wait and first byte on success,
/// the failure otherwise); the side back on success.
fn conclude<'c>(
    ctx: &RequestCtx<'_>,
    walk: &mut Walk<'c>,
    side: Ready<'c>,
    (result, waited): (Result<Reply, GatewayError>, Duration),
    started: Instant,
) -> Option<(Ready<'c>, Reply)> {
    ctx.waited(waited);
    match result {
        Ok(reply) => {
            ctx.services.stats.first_byte(&side.cand.route.provider.id, &side.cand.route.model, started.elapsed());
            Some((side, reply))
        }
        Err(e) => {
            walk.failed(ctx, side, e);
            None
        }
    }
}

/// Run `first`; if it has not answered after `delay`, race it against the next candidate.
/// `None` when every attempt made here failed (the walk has recorded why).
pub(super) async fn race<'c>(
    ctx: &RequestCtx<'_>,
    walk: &mut Walk<'c>,
    first: Ready<'c>,
    delay: Duration,
) -> Option<(Ready<'c>, Reply)> {
    let mut a = first;
    let ca = a.cand;
    let ta = Instant::now();
    let mut fa = Box::pin(attempt(ctx, &mut a));
    let early = tokio::select! {
        r = &mut fa => Some(r),
        () = tokio::time::sleep(delay) => None,
    };
    if let Some(r) = early {
        drop(fa);
        return conclude(ctx, walk, a, r, ta);
    }
    // slower than usual: start the next candidate too
    let Some(mut b) = walk.next(ctx).await else {
        let r = fa.await;
        return conclude(ctx, walk, a, r, ta);
    };
    tracing::debug!(
        provider = %ca.route.provider.id, model = %ca.route.model,
        "no first byte after {} ms (p95): hedging on {}/{}",
        delay.as_millis(), b.cand.route.provider.id, b.cand.route.model
    );
    let tb = Instant::now();
    let mut fb = Box::pin(attempt(ctx, &mut b));
    let (a_first, r) = tokio::select! {
        r = &mut fa => (true, r),
        r = &mut fb => (false, r),
    };
    // the side that finished first decides: its answer serves (the other is cancelled, its
    // connection dropped, and charged as sent), or, if it failed, the other side is awaited
    if a_first {
        drop(fa);
        if r.0.is_ok() {
            drop(fb);
            charge_loser(ctx, b);
            return conclude(ctx, walk, a, r, ta);
        }
        conclude(ctx, walk, a, r, ta);
        let rb = fb.await;
        conclude(ctx, walk, b, rb, tb)
    } else {
        drop(fb);
        if r.0.is_ok() {
            drop(fa);
            charge_loser(ctx, a);
            return conclude(ctx, walk, b, r, tb);
        }
        conclude(ctx, walk, b, r, tb);
        let ra = fa.await;
        conclude(ctx, walk, a, ra, ta)
    }
}
