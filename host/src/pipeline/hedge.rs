//! Hedging (per route, `[[routes]] hedge = true`): when the first candidate has not answered by
//! its own p95 time to first byte, the next candidate is started too; whichever answers first
//! serves the request and the other is cancelled (its connection dropped). Both reservations
//! are charged honestly: the loser was sent, so it counts as a request with its prompt.

use std::time::{Duration, Instant};

use super::attempt::{Ready, Reply, attempt};
use super::context::RequestCtx;
use super::walk::Walk;
use crate::quota::Cost;

/// The loser of a race was sent: it counts as a request with its prompt, no output.
fn charge_loser(ctx: &RequestCtx<'_>, mut loser: Ready<'_>) {
    loser.cand.account.health.answered();
    loser.cand.route.provider.metrics.attempt("cancelled", Duration::ZERO);
    loser.slot = None;
    if let Some(r) = loser.reservation.take() {
        let e = r.estimate();
        ctx.services.ledger.settle(r, Cost { requests: 1, input_tokens: e.input_tokens, output_tokens: 0 });
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
        return walk.conclude(ctx, a, r, ta);
    }
    // slower than usual: start the next candidate too
    let Some(mut b) = walk.next(ctx).await else {
        let r = fa.await;
        return walk.conclude(ctx, a, r, ta);
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
            return walk.conclude(ctx, a, r, ta);
        }
        walk.conclude(ctx, a, r, ta);
        let rb = fb.await;
        walk.conclude(ctx, b, rb, tb)
    } else {
        drop(fb);
        if r.0.is_ok() {
            drop(fa);
            charge_loser(ctx, a);
            return walk.conclude(ctx, b, r, tb);
        }
        walk.conclude(ctx, b, r, tb);
        let ra = fa.await;
        walk.conclude(ctx, a, ra, ta)
    }
}
