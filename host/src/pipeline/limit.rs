//! Limits: before a candidate is tried, its quota pool must have room for the request. The
//! estimated cost (one request, the prompt's tokens counted with a real tokenizer, plus
//! `max_tokens` or a default) is reserved in the ledger; a candidate that would break any of
//! its provider's limits is skipped before anything is sent. After the response the reservation
//! is settled with the true usage. When no candidate has room, the client gets a 429 whose
//! `Retry-After` is the earliest moment one will.

use std::sync::Arc;
use std::time::Duration;

use super::route::Candidate;
use crate::bindings::wit;
use crate::errors::{ErrorKind, GatewayError};
use crate::quota::{Blocked, Cost, Dim, Ledger, Observed, Reservation, Window, now_ms};

/// Reserve the request's cost in the candidate's pool.
pub async fn reserve(ledger: &Arc<Ledger>, cand: &Candidate, cost: Cost) -> Result<Option<Reservation>, Blocked> {
    // nothing to count: only a shared Redis may still hold a rest for the pool
    if cost == Cost::default() && ledger.remote().is_none_or(|r| !r.is_up()) {
        return Ok(None);
    }
    let p = &cand.route.provider;
    ledger.reserve(&cand.account.quota_pool, &p.quota_plan, &cand.route.model, cost).await
}

/// Settle after an attempt that failed: a request the provider never received, or failed on its
/// own side (5xx), costs nothing; one it refused or that timed out counts as a request (its
/// tokens were not spent).
pub fn settle_failed(ledger: &Ledger, r: Option<Reservation>, e: &GatewayError) {
    let Some(r) = r else { return };
    let not_counted = matches!(
        e.kind,
        ErrorKind::UpstreamUnreachable
            | ErrorKind::ComponentFailed
            | ErrorKind::ComponentDenied
            | ErrorKind::UpstreamServerError
            | ErrorKind::UpstreamOverloaded
    );
    if not_counted {
        ledger.release(r);
    } else {
        ledger.settle(r, Cost { requests: 1, ..Cost::default() });
    }
}

fn dim(d: wit::QuotaDimension) -> Option<Dim> {
    match d {
        wit::QuotaDimension::Requests => Some(Dim::Requests),
        wit::QuotaDimension::Tokens => Some(Dim::Tokens),
        wit::QuotaDimension::InputTokens => Some(Dim::InputTokens),
        wit::QuotaDimension::OutputTokens => Some(Dim::OutputTokens),
        wit::QuotaDimension::Credits => None,
    }
}

fn window(w: wit::LimitWindow) -> Option<Window> {
    match w {
        wit::LimitWindow::Minute => Some(Window::Minute),
        wit::LimitWindow::Hour => Some(Window::Hour),
        wit::LimitWindow::Day => Some(Window::Day),
        wit::LimitWindow::Month => Some(Window::Month),
        wit::LimitWindow::Second | wit::LimitWindow::Unknown => None,
    }
}

/// Hand what a component read from the provider's headers or error body to the ledger.
pub fn observe(ledger: &crate::quota::Ledger, cand: &Candidate, updates: &[wit::QuotaUpdate]) {
    let p = &cand.route.provider;
    let mut pool_wide = Vec::new();
    for u in updates {
        let (Some(dim), Some(window)) = (dim(u.dimension), window(u.window)) else { continue };
        let o = Observed { dim, window, limit: u.limit, remaining: u.remaining, reset_after_ms: u.reset_after_ms };
        match &u.scope {
            Some(model) => ledger.observe(&cand.account.quota_pool, &p.quota_plan, model, &[o]),
            None => pool_wide.push(o),
        }
    }
    ledger.observe(&cand.account.quota_pool, &p.quota_plan, &cand.route.model, &pool_wide);
}

/// Every candidate was skipped for lack of quota: a 429 with the earliest time one has room, or
/// a 400 when the request is larger than every candidate's limit.
pub fn exhausted(model: &str, blocked: &[(String, Blocked)]) -> GatewayError {
    let now = now_ms();
    let soonest = blocked.iter().filter_map(|(_, b)| b.until_ms).min();
    let reasons: Vec<String> = blocked.iter().take(4).map(|(who, b)| format!("{who}: {}", b.reason)).collect();
    let more = if blocked.len() > 4 { format!(" (and {} more)", blocked.len() - 4) } else { String::new() };
    match soonest {
        Some(at) => {
            let wait = Duration::from_millis(at.saturating_sub(now).max(1));
            GatewayError::new(
                ErrorKind::UpstreamRateLimited,
                format!(
                    "Every account that serves `{model}` has used its free quota for now; the first frees up in {:.1} s. {}{more}",
                    wait.as_secs_f64(),
                    reasons.join("; ")
                ),
            )
            .with_retry_after(Some(wait))
        }
        None => GatewayError::new(
            ErrorKind::InvalidValue,
            format!(
                "This request is larger than any limit of the accounts that serve `{model}`: {}{more}",
                reasons.join("; ")
            ),
        )
        .with_param("max_tokens"),
    }
}
