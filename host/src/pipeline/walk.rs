//! The walk over a request's candidates: which one to try next (skipping models that refused
//! the request, pools without quota, accounts another request is probing), pacing retries, and
//! what each failure means for the account and for the answer the client finally gets.

use std::time::{Duration, Instant, SystemTime};

use super::attempt::{Ready, Reply};
use super::context::RequestCtx;
use super::limit;
use super::retry::Pacer;
use super::route::Candidate;
use crate::accounts::Trouble;
use crate::errors::{ErrorKind, GatewayError};
use crate::quota::Blocked;
use crate::usage::{Outcome, UsageRecord};

pub struct Walk<'c> {
    candidates: &'c [Candidate],
    next: usize,
    budget: usize,
    /// attempts sent so far
    pub sent: usize,
    failures: Vec<GatewayError>,
    blocked: Vec<(String, Blocked)>,
    probing: usize,
    /// providers passed over at their in-flight bound
    busy: Vec<String>,
    max_in_flight: usize,
    refused_models: Vec<(&'c str, &'c str)>,
    context_floor: Option<u32>,
    pacer: Pacer,
    stop: bool,
    fallback_on_content_policy: bool,
    /// the last candidate sent
    last: Option<&'c Candidate>,
    /// a candidate whose attempt failed, until the next one is sent (a fallback)
    failed_last: Option<&'c Candidate>,
}

impl<'c> Walk<'c> {
    pub fn new(ctx: &RequestCtx<'_>, candidates: &'c [Candidate]) -> Self {
        Self {
            candidates,
            next: 0,
            budget: ctx.budget.attempts,
            sent: 0,
            failures: Vec::new(),
            blocked: Vec::new(),
            probing: 0,
            busy: Vec::new(),
            max_in_flight: ctx.budget.in_flight_per_provider,
            refused_models: Vec::new(),
            context_floor: None,
            pacer: Pacer::new(ctx.budget.retry),
            stop: false,
            fallback_on_content_policy: ctx.snapshot.config.upstream.fallback_on_content_policy,
            last: None,
            failed_last: None,
        }
    }

    /// A failure that ends the walk (not retryable) or a spent budget.
    pub fn stopped(&self) -> bool {
        self.stop || self.sent >= self.budget
    }

    /// The next candidate to send, reserved and claimed (after any backoff), or `None`.
    pub async fn next(&mut self, ctx: &RequestCtx<'_>) -> Option<Ready<'c>> {
        let app = ctx.services;
        while !self.stopped() {
            let cand = self.candidates.get(self.next)?;
            self.next += 1;
            if self.refused_models.iter().any(|(p, m)| *p == cand.route.provider.id && *m == cand.route.model)
                || self.context_floor.is_some_and(|floor| context_window(cand).is_some_and(|w| w <= floor))
            {
                continue;
            }
            let Some(slot) = cand.route.provider.try_slot(self.max_in_flight) else {
                if !self.busy.contains(&cand.route.provider.id) {
                    self.busy.push(cand.route.provider.id.clone());
                }
                continue;
            };
            let cost = super::cost::estimate(ctx, &cand.route.provider, &cand.route.model);
            let reservation = match limit::reserve(app.ledger, cand, cost).await {
                Ok(r) => r,
                Err(b) => {
                    tracing::debug!(
                        provider = %cand.route.provider.id, account = %cand.account.label,
                        "skipped before sending: {}", b.reason
                    );
                    app.webhooks.quota_blocked(&cand.route.provider.id, &cand.account.quota_pool.pool, &b);
                    self.blocked.push((format!("{}/{}", cand.route.provider.id, cand.account.label), b));
                    continue;
                }
            };
            // half-open: the first request after an account's rest probes it alone
            if !cand.account.health.begin(Instant::now()) {
                if let Some(r) = reservation {
                    app.ledger.release(r);
                }
                self.probing += 1;
                continue;
            }
            if !self.pacer.before(&cand.route.provider.id).await {
                if let Some(r) = reservation {
                    app.ledger.release(r);
                }
                self.stop = true;
                return None;
            }
            self.sent += 1;
            if let Some(failed) = self.failed_last.take() {
                let p = &failed.route.provider;
                p.metrics.fallback(p.id != cand.route.provider.id);
            }
            self.last = Some(cand);
            return Some(Ready { cand, reservation, slot: Some(slot), legacy: false });
        }
        None
    }

    /// The attempt answered: the account is well, its reservation settled with the real usage
    /// (a stream settles its own when it ends).
    pub(super) fn succeeded(&self, ctx: &RequestCtx<'_>, ready: &mut Ready<'c>, reply: &Reply) {
        let app = ctx.services;
        ready.cand.account.health.success();
        ready.cand.account.recent.note(Instant::now());
        app.webhooks.provider_ok(&ready.cand.route.provider.id);
        if let (Reply::Json { usage, .. }, Some(r)) = (reply, ready.reservation.take()) {
            let estimate = r.estimate();
            app.ledger.settle(r, super::cost::actual(usage.as_ref(), estimate));
        }
    }

    /// The end of an attempt started at `started`: its upstream wait counted, and its time to
    /// first byte (success) or its failure recorded; the candidate and its reply on success.
    pub(super) fn conclude(
        &mut self,
        ctx: &RequestCtx<'_>,
        ready: Ready<'c>,
        (result, waited): (Result<Reply, GatewayError>, Duration),
        started: Instant,
    ) -> Option<(Ready<'c>, Reply)> {
        ctx.waited(waited);
        let metrics = &ready.cand.route.provider.metrics;
        match result {
            Ok(reply) => {
                metrics.attempt("ok", waited);
                let route = &ready.cand.route;
                ctx.services.stats.first_byte(&route.provider.id, &route.model, started.elapsed());
                Some((ready, reply))
            }
            Err(e) => {
                metrics.attempt(e.kind.spec().code, waited);
                self.failed(ctx, ready, e);
                None
            }
        }
    }

    /// The attempt failed: settle its reservation, tell the account's health, remember why.
    pub fn failed(&mut self, ctx: &RequestCtx<'_>, ready: Ready<'c>, e: GatewayError) {
        let app = ctx.services;
        let cand = ready.cand;
        limit::settle_failed(app.ledger, ready.reservation, &e);
        note_trouble(app, cand, &e);
        if matches!(
            e.kind,
            ErrorKind::UpstreamServerError
                | ErrorKind::UpstreamOverloaded
                | ErrorKind::UpstreamTimeout
                | ErrorKind::UpstreamUnreachable
                | ErrorKind::UpstreamInvalidResponse
        ) {
            app.stats.failure(&cand.route.provider.id, &cand.route.model);
            app.webhooks.provider_failed(&cand.route.provider.id, &e.message);
        }
        self.pacer.failed(&cand.route.provider.id, &e);
        tracing::warn!(
            request_id = %ctx.request_id(), provider = %cand.route.provider.id, model = %cand.route.model,
            account = %cand.account.label, code = e.kind.spec().code, "attempt {} failed: {}", self.sent, e.message
        );
        // a model that refused the request itself: its other accounts would too; after a
        // context-window refusal only models with a larger (or unknown) window are tried
        let moves_model = e.kind == ErrorKind::ContextLengthExceeded
            || (e.kind == ErrorKind::ContentPolicy && self.fallback_on_content_policy);
        if moves_model {
            self.refused_models.push((cand.route.provider.id.as_str(), cand.route.model.as_str()));
            if e.kind == ErrorKind::ContextLengthExceeded {
                let w = context_window(cand).unwrap_or(0);
                self.context_floor = Some(self.context_floor.map_or(w, |f| f.max(w)));
            }
        }
        if !(e.retryable() || moves_model) {
            self.stop = true;
        }
        self.failed_last = Some(cand);
        self.failures.push(e);
    }

    /// Nothing answered: the error for the client (and a usage record when attempts were made).
    pub fn finish(self, ctx: &RequestCtx<'_>) -> GatewayError {
        let (app, req) = (ctx.services, ctx.req);
        let tried = (self.sent > 0)
            .then(|| self.candidates.first())
            .flatten()
            .map(|f| (f.route.provider.id.clone(), f.route.model.clone(), f.account.id.clone()));
        let attempts = u32::try_from(self.sent).unwrap_or(u32::MAX);
        let last = self.last;
        let e = self.verdict(ctx);
        ctx.exchange.failed(last, attempts, e.kind.spec().code);
        if let Some((provider, model, account)) = tried {
            app.usage.record(UsageRecord {
                at: SystemTime::now(),
                provider,
                model,
                account,
                usage: None,
                outcome: Outcome::UpstreamError,
                stream: req.stream,
                attempts,
                latency: ctx.started.elapsed(),
                first_byte: None,
                client: ctx.principal.clone(),
                error: Some(e.kind.spec().code),
                policy: None,
                cache_read: false,
            });
        }
        e
    }

    /// The one error that tells the client why nothing answered.
    fn verdict(self, ctx: &RequestCtx<'_>) -> GatewayError {
        let req = ctx.req;
        // candidates without quota: unless the client made a mistake, the honest answer is
        // "retry when quota frees up", whatever the ones that were tried said
        if !self.blocked.is_empty() {
            let e = limit::exhausted(&req.model, &self.blocked);
            let client_mistake = self.failures.iter().any(|f| f.blame() == crate::errors::Blame::Client);
            if self.failures.is_empty() || (e.kind == ErrorKind::UpstreamRateLimited && !client_mistake) {
                if let Some(last) = self.failures.last() {
                    tracing::debug!("answering 429 (quota) after: {}", last.message);
                }
                return e;
            }
        }
        if self.failures.is_empty() && !self.busy.is_empty() {
            return GatewayError::new(
                ErrorKind::Overloaded,
                format!(
                    "Every provider that serves `{}` has its maximum of requests in flight ({}); try again shortly.",
                    req.model,
                    self.busy.join(", ")
                ),
            )
            .with_retry_after(Some(Duration::from_secs(1)));
        }
        if self.failures.is_empty() && self.probing > 0 {
            return GatewayError::new(
                ErrorKind::UpstreamRateLimited,
                format!(
                    "Every account that serves `{}` is being re-checked after a rest ({} probe(s) out); try again in a moment.",
                    req.model, self.probing
                ),
            )
            .with_retry_after(Some(Duration::from_secs(1)));
        }
        summarize(self.failures)
    }
}

/// How long a pool rests after its daily quota ran out: what the provider said, else until the
/// provider's day starts again.
fn daily_rest(said: Option<Duration>, plan: &crate::quota::QuotaPlan, now_ms: u64) -> Duration {
    said.unwrap_or_else(|| Duration::from_millis(plan.daily_reset.next_after(now_ms).saturating_sub(now_ms)))
}

/// Free credit is renewed with the calendar month (UTC).
fn until_month_start(now_ms: u64) -> Duration {
    Duration::from_millis(crate::quota::spec::next_month_start(now_ms).saturating_sub(now_ms))
}

/// The candidate model's context window, when known.
fn context_window(cand: &Candidate) -> Option<u32> {
    cand.route.provider.models.iter().find(|m| m.info.id == cand.route.model).and_then(|m| m.info.context_window)
}

/// What a failed attempt says about the account: a refused credential disables it, a rate
/// limit rests its whole quota pool, upstream trouble rests it briefly. Client mistakes and
/// component failures say nothing about the account. An account disabled, or a daily quota the
/// provider says is used up, is told to the webhooks.
fn note_trouble(app: super::Services<'_>, cand: &Candidate, e: &GatewayError) {
    let ledger = app.ledger;
    let trouble = match e.kind {
        ErrorKind::UpstreamAuth => Trouble::Rejected,
        ErrorKind::UpstreamPaymentRequired => Trouble::OutOfCredit(until_month_start(crate::quota::now_ms())),
        ErrorKind::UpstreamRateLimited => Trouble::RateLimited(e.retry_after),
        // a daily quota used up: rest until the provider's day starts again, unless it said
        ErrorKind::UpstreamQuotaExhausted => Trouble::RateLimited(Some(daily_rest(
            e.retry_after,
            &cand.route.provider.quota_plan,
            crate::quota::now_ms(),
        ))),
        ErrorKind::UpstreamServerError
        | ErrorKind::UpstreamOverloaded
        | ErrorKind::UpstreamTimeout
        | ErrorKind::UpstreamUnreachable
        | ErrorKind::UpstreamInvalidResponse
        | ErrorKind::UpstreamStreamInterrupted => Trouble::Upstream,
        _ => {
            cand.account.health.answered();
            return;
        }
    };
    let now = Instant::now();
    let account = &cand.account;
    let metrics = &cand.route.provider.metrics;
    match trouble {
        Trouble::RateLimited(after) => {
            let reason = if e.kind == ErrorKind::UpstreamQuotaExhausted { "quota_exhausted" } else { "rate_limited" };
            for a in cand.route.provider.pool_of(account) {
                a.health.failure(trouble, &e.message, now);
                metrics.cooldown(reason);
            }
            // and every gateway sharing Redis rests the pool too
            let rest = after.unwrap_or(crate::accounts::health::DEFAULT_RATE_LIMIT);
            let p = &cand.route.provider;
            ledger.cool_down(&account.quota_pool, &p.quota_plan, &cand.route.model, rest, &e.message);
            if e.kind == ErrorKind::UpstreamQuotaExhausted {
                app.webhooks.quota_used_up(&p.id, &account.quota_pool.pool, rest, &e.message);
            }
        }
        Trouble::Rejected | Trouble::OutOfCredit(_) => {
            if account.health.failure(trouble, &e.message, now).newly_disabled {
                app.webhooks.emit(crate::webhooks::Event::AccountDisabled {
                    provider: cand.route.provider.id.clone(),
                    account_id: account.id.clone(),
                    account: account.label.clone(),
                    reason: e.message.chars().take(300).collect(),
                });
            }
            metrics.cooldown(if matches!(trouble, Trouble::Rejected) { "rejected" } else { "out_of_credit" });
            tracing::warn!(
                provider = %cand.route.provider.id, account = %account.label,
                "account taken out of rotation until a re-check passes: {}", e.message
            );
        }
        Trouble::Upstream => {
            account.health.failure(trouble, &e.message, now);
            metrics.cooldown("upstream");
        }
    }
}

/// The error to show when every attempt failed: a client mistake wins; if every attempt was
/// rate-limited, a 429 with the earliest retry time; otherwise the last failure.
fn summarize(mut failures: Vec<GatewayError>) -> GatewayError {
    if let Some(pos) = failures.iter().position(|e| e.blame() == crate::errors::Blame::Client) {
        return failures.swap_remove(pos);
    }
    let limited = |k: ErrorKind| matches!(k, ErrorKind::UpstreamRateLimited | ErrorKind::UpstreamQuotaExhausted);
    if !failures.is_empty() && failures.iter().all(|e| limited(e.kind)) {
        let soonest = failures.iter().filter_map(|e| e.retry_after).min();
        let kind = if failures.iter().all(|e| e.kind == ErrorKind::UpstreamQuotaExhausted) {
            ErrorKind::UpstreamQuotaExhausted
        } else {
            ErrorKind::UpstreamRateLimited
        };
        let n = failures.len();
        let last = failures.pop().map(|e| e.message).unwrap_or_default();
        return GatewayError::new(kind, format!("All {n} candidate(s) are rate-limited upstream; last: {last}"))
            .with_retry_after(soonest);
    }
    failures.pop().unwrap_or_else(|| GatewayError::new(ErrorKind::NoProvider, "No candidate could be tried."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{DailyReset, QuotaPlan};

    #[test]
    fn a_used_up_daily_quota_rests_until_the_providers_day_starts_again() {
        // 2026-11-27 12:00 UTC; Pacific midnight is 08:00 UTC the next day
        let now = 1_795_780_800_000;
        let plan =
            QuotaPlan { daily_reset: DailyReset::parse("00:00 America/Los_Angeles").unwrap(), ..QuotaPlan::default() };
        assert_eq!(daily_rest(None, &plan, now), Duration::from_secs(20 * 3600));
        assert_eq!(daily_rest(None, &QuotaPlan::default(), now), Duration::from_secs(12 * 3600), "UTC by default");
        assert_eq!(
            daily_rest(Some(Duration::from_secs(90)), &plan, now),
            Duration::from_secs(90),
            "the provider's word wins"
        );
    }

    #[test]
    fn out_of_credit_waits_for_the_first_of_the_month() {
        // 2026-11-27 12:00 UTC -> 2026-12-01 00:00 UTC
        assert_eq!(until_month_start(1_795_780_800_000), Duration::from_secs(3 * 86_400 + 12 * 3600));
    }
}
