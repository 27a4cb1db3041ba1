//! Hedging (per route, `[[routes]] hedge = true`): when the first candidate has not answered by
//! its own p95 time to first byte, the next candidate is started too; whichever answers first
//! serves the request and the other is cancelled (its connection dropped). Both reservations
//! are charged honestly: the loser was sent, so it counts as a request with its prompt.

use std::time::{Duration, Instant};

use super::classify::Needs;
use super::dispatch::{Reply, attempt};
use super::walk::{Ready, Walk};
use crate::app::App;
use crate::quota::Cost;
use crate::wire::chat::ChatBody;

/// The loser of a race was sent: it counts as a request with its prompt, no output.
fn charge_loser(app: &App, mut loser: Ready<'_>) {
    loser.cand.account.health.answered();
    if let Some(r) = loser.reservation.take() {
        let e = r.estimate();
        app.ledger.settle(r, Cost { requests: 1, input_tokens: e.input_tokens, output_tokens: 0 });
    }
}

/// The side that finished first decides: its answer serves (the other is dropped and charged),
/// or, if it failed, the other side's answer is awaited. Written once for either side.
macro_rules! decide {
    ($app:ident, $walk:ident, $wait:ident, $result:ident,
     first: ($f1:ident, $c1:ident, $r1:ident, $s1:ident, $w1:ident, $t1:ident),
     other: ($f2:ident, $c2:ident, $r2:ident, $s2:ident, $w2:ident, $t2:ident)) => {{
        drop($f1);
        let first = Ready { cand: $c1, reservation: $r1, slot: $s1 };
        match $result {
            Ok(reply) => {
                drop($f2);
                $app.stats.first_byte(&$c1.route.provider.id, &$c1.route.model, $t1.elapsed());
                drop($s2);
                charge_loser($app, Ready { cand: $c2, reservation: $r2, slot: None });
                *$wait += $w1;
                Some((first, reply))
            }
            Err(e) => {
                $walk.failed($app, first, e);
                let answer = $f2.await;
                *$wait += $w2;
                let other = Ready { cand: $c2, reservation: $r2, slot: $s2 };
                match answer {
                    Ok(reply) => {
                        $app.stats.first_byte(&$c2.route.provider.id, &$c2.route.model, $t2.elapsed());
                        Some((other, reply))
                    }
                    Err(e) => {
                        $walk.failed($app, other, e);
                        None
                    }
                }
            }
        }
    }};
}

/// Run `first`; if it has not answered after `delay`, race it against the next candidate.
/// `None` when every attempt made here failed (the walk has recorded why).
#[expect(clippy::too_many_arguments, reason = "the request's whole context, borrowed")]
pub(super) async fn race<'c>(
    app: &App,
    req: &ChatBody<'_>,
    needs: &Needs,
    walk: &mut Walk<'c>,
    first: Ready<'c>,
    delay: Duration,
    started: Instant,
    upstream_wait: &mut Duration,
) -> Option<(Ready<'c>, Reply)> {
    let Ready { cand: ca, reservation: mut ra, slot: mut sa } = first;
    let mut wait_a = Duration::ZERO;
    let t = Instant::now();
    let mut fa = Box::pin(attempt(app, req, ca, started, &mut wait_a, &mut ra, &mut sa));
    let early = tokio::select! {
        r = &mut fa => Some(r),
        () = tokio::time::sleep(delay) => None,
    };
    if let Some(r) = early {
        drop(fa);
        *upstream_wait += wait_a;
        let a = Ready { cand: ca, reservation: ra, slot: sa };
        return match r {
            Ok(reply) => {
                app.stats.first_byte(&ca.route.provider.id, &ca.route.model, t.elapsed());
                Some((a, reply))
            }
            Err(e) => {
                walk.failed(app, a, e);
                None
            }
        };
    }
    // slower than usual: start the next candidate too
    let Some(second) = walk.next(app, req, needs).await else {
        let r = fa.await;
        *upstream_wait += wait_a;
        let a = Ready { cand: ca, reservation: ra, slot: sa };
        return match r {
            Ok(reply) => Some((a, reply)),
            Err(e) => {
                walk.failed(app, a, e);
                None
            }
        };
    };
    tracing::debug!(
        provider = %ca.route.provider.id, model = %ca.route.model,
        "no first byte after {} ms (p95): hedging on {}/{}",
        delay.as_millis(), second.cand.route.provider.id, second.cand.route.model
    );
    let Ready { cand: cb, reservation: mut rb, slot: mut sb } = second;
    let mut wait_b = Duration::ZERO;
    let tb = Instant::now();
    let mut fb = Box::pin(attempt(app, req, cb, started, &mut wait_b, &mut rb, &mut sb));
    let (a_first, result) = tokio::select! {
        r = &mut fa => (true, r),
        r = &mut fb => (false, r),
    };
    if a_first {
        decide!(app, walk, upstream_wait, result, first: (fa, ca, ra, sa, wait_a, t), other: (fb, cb, rb, sb, wait_b, tb))
    } else {
        decide!(app, walk, upstream_wait, result, first: (fb, cb, rb, sb, wait_b, tb), other: (fa, ca, ra, sa, wait_a, t))
    }
}
