//! Dispatch: try candidates in order until one answers (each try is an [`attempt`](super::attempt)),
//! racing two on a hedged route; retryable failures move on to the next candidate as long as
//! nothing has reached the client. The winner's reply becomes the client's response.

use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderName, HeaderValue, StatusCode, header};

use super::attempt::{Ready, Reply, attempt};
use super::context::RequestCtx;
use super::route::Candidate;
use super::walk::Walk;
use crate::errors::GatewayError;
use crate::usage::{Outcome, UsageRecord};

/// Try the candidates; the response of the first that answers. On a hedged route the first
/// attempt races a second one once it is slower than its usual time to first byte.
/// `policy`: the routing policy's label and the classifier's summary (`task=...; classes=...`)
/// when a policy ranked the candidates.
pub async fn run(
    ctx: &RequestCtx<'_>,
    candidates: &[Candidate],
    policy: Option<(&str, &str)>,
) -> Result<Response, GatewayError> {
    let mut walk = Walk::new(ctx, candidates);
    let hedged = ctx.snapshot.hedged(&ctx.req.model);
    while let Some(ready) = walk.next(ctx).await {
        let delay = if hedged && walk.sent == 1 {
            ctx.services.stats.p95(&ready.cand.route.provider.id, &ready.cand.route.model)
        } else {
            None
        };
        let won = match delay {
            Some(delay) => super::hedge::race(ctx, &mut walk, ready, delay).await,
            None => single(ctx, &mut walk, ready).await,
        };
        if let Some((mut ready, reply)) = won {
            walk.succeeded(ctx, &mut ready, &reply);
            let attempts = u32::try_from(walk.sent).unwrap_or(u32::MAX);
            return Ok(respond(ctx, reply, &ready, attempts, policy));
        }
        if walk.stopped() {
            break;
        }
    }
    Err(walk.finish(ctx))
}

/// One attempt on its own; `None` when it failed (the walk has recorded why).
async fn single<'c>(ctx: &RequestCtx<'_>, walk: &mut Walk<'c>, mut ready: Ready<'c>) -> Option<(Ready<'c>, Reply)> {
    let t = Instant::now();
    let outcome = attempt(ctx, &mut ready).await;
    walk.conclude(ctx, ready, outcome, t)
}

fn respond(
    ctx: &RequestCtx<'_>,
    reply: Reply,
    ready: &Ready<'_>,
    attempts: u32,
    routed: Option<(&str, &str)>,
) -> Response {
    let policy = routed.map(|(p, _)| p);
    let cand = ready.cand;
    let overhead = ctx.overhead();
    let mut route = format!(
        "provider={}; model={}; account={}; attempts={attempts}",
        cand.route.provider.id, cand.route.model, cand.account.label
    );
    if let Some((p, classes)) = routed {
        route.push_str("; policy=");
        route.push_str(p);
        if !classes.is_empty() {
            route.push_str("; ");
            route.push_str(classes);
        }
    }
    let mut builder = Response::builder().status(StatusCode::OK);
    if let Some(h) = builder.headers_mut() {
        if let Ok(v) = HeaderValue::try_from(route) {
            h.insert(HeaderName::from_static("x-freeway-route"), v);
        }
        if let Ok(v) = HeaderValue::try_from(format!("{:.3}", overhead.as_secs_f64() * 1000.0)) {
            h.insert(HeaderName::from_static("x-freeway-overhead-ms"), v);
        }
    }
    let response = match reply {
        Reply::Json { body, usage } => {
            ctx.exchange.routed(cand, attempts, usage.as_ref());
            ctx.services.usage.record(UsageRecord {
                at: SystemTime::now(),
                provider: cand.route.provider.id.clone(),
                model: cand.route.model.clone(),
                account: cand.account.id.clone(),
                usage,
                outcome: Outcome::Ok,
                // a JSON reply answers a request that did not stream
                stream: false,
                attempts,
                latency: ctx.started.elapsed(),
                first_byte: None,
                client: ctx.principal.clone(),
                error: None,
                policy: policy.map(str::to_owned),
                cache_read: false,
            });
            builder.header(header::CONTENT_TYPE, "application/json").body(Body::from(body))
        }
        Reply::Stream(mut relay) => {
            ctx.exchange.routed(cand, attempts, None);
            relay.set_attempts(attempts);
            relay.set_policy(policy);
            relay.report_to(ctx.exchange.clone());
            builder
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .header("x-accel-buffering", "no")
                .body(relay.into_body())
        }
    };
    let mut response = response.unwrap_or_else(|_| Response::new(Body::empty()));
    if ready.legacy {
        response.extensions_mut().insert(LegacyAnswer);
    }
    response
}

/// Marks a response whose answer is a legacy `text_completion` already: the request was passed
/// through to a provider that serves `/completions` (see `attempt::legacy_call`).
#[derive(Debug, Clone, Copy)]
pub struct LegacyAnswer;
