//! Cohere error bodies and statuses -> typed errors; trial-key headers and 429 bodies -> quota
//! updates.
//!
//! Cohere's errors are `{"id": "<request id>", "message": "..."}` (sometimes without `id`).
//! Statuses: 400 invalid request (`too many tokens` -> context length), 401 `invalid api token`
//! and 498 (invalid token) -> auth, 402 payment required, 403 forbidden, 404 unknown model, 422
//! unprocessable -> bad request, 429, 499 (request cancelled upstream) and 500 -> upstream
//! error, 503 -> overloaded, 504 -> timeout.
//!
//! 429s carry no headers. Their message names the limit: "You are using a Trial key, which is
//! limited to 1000 API calls / month. ..." is the trial key's monthly cap (quota exhausted, for
//! the month; no reset time is invented), "... limited to 20 API calls / minute." and "You are
//! past the per minute request limit, please wait and try again later." are per-minute limits
//! (rate limited; a minute's wait when no `Retry-After` came). A trial key's successful answers
//! carry `x-trial-endpoint-call-limit` / `x-trial-endpoint-call-remaining` (calls per minute on
//! the endpoint) and `x-endpoint-monthly-call-limit` (not documented by Cohere, but sent).

use freeway_sdk::errors;
use freeway_sdk::types::{ErrorKind, Headers, LimitWindow, ProviderError, QuotaDimension, QuotaUpdate};

/// How long a per-minute limit is waited out when Cohere says nothing more.
pub const MINUTE_MS: u64 = 60_000;

/// What a 429 message says about the limit it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub dimension: QuotaDimension,
    pub window: LimitWindow,
    /// the limit's size, when the message names it
    pub size: Option<u64>,
}

/// Read "limited to 1000 API calls / month", "limited to 100000 tokens / minute", "past the per
/// minute request limit".
pub fn limit_in_message(message: &str) -> Limit {
    let lower = message.to_ascii_lowercase();
    let window = if lower.contains("/ month") || lower.contains("per month") || lower.contains("monthly") {
        LimitWindow::Month
    } else if lower.contains("/ minute") || lower.contains("per minute") || lower.contains("/min") {
        LimitWindow::Minute
    } else if lower.contains("/ day") || lower.contains("per day") || lower.contains("daily") {
        LimitWindow::Day
    } else {
        LimitWindow::Unknown
    };
    let after = lower.split_once("limited to ").map(|(_, rest)| rest);
    let size = after.and_then(|rest| {
        let digits: String =
            rest.chars().take_while(|c| c.is_ascii_digit() || *c == ',').filter(|c| *c != ',').collect();
        digits.parse::<u64>().ok()
    });
    let unit = after.unwrap_or(&lower);
    let dimension = if unit.split('/').next().unwrap_or("").contains("token") {
        QuotaDimension::Tokens
    } else {
        QuotaDimension::Requests
    };
    Limit { dimension, window, size }
}

/// A Cohere error response -> a typed error.
pub fn map_error(status: u16, headers: &Headers, body: &str) -> ProviderError {
    let mut e = errors::from_response(status, headers, body);
    match status {
        401 | 498 => e.kind = ErrorKind::Auth,
        499 => e.kind = ErrorKind::Upstream,
        429 => {
            let limit = limit_in_message(&e.message);
            if limit.window == LimitWindow::Month {
                e.kind = ErrorKind::QuotaExhausted;
                e.window = Some(LimitWindow::Month);
                e.code = Some("trial_monthly_limit".to_owned());
            } else {
                e.kind = ErrorKind::RateLimited;
                e.window = Some(if limit.window == LimitWindow::Unknown { LimitWindow::Minute } else { limit.window });
                e.retry_after_ms = e.retry_after_ms.or(Some(MINUTE_MS));
                e.code = Some("rate_limited".to_owned());
            }
        }
        _ => {}
    }
    if e.kind != ErrorKind::RateLimited && e.kind != ErrorKind::QuotaExhausted {
        e.window = None;
    }
    e
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

fn number(headers: &Headers, name: &str) -> Option<u64> {
    header(headers, name).and_then(|v| v.parse::<u64>().ok())
}

/// Trial-key headers (success) and 429 bodies -> quota updates.
pub fn quota_updates(status: u16, headers: &Headers, body: Option<&str>) -> Vec<QuotaUpdate> {
    let mut out = Vec::new();
    let minute_limit = number(headers, "x-trial-endpoint-call-limit");
    let minute_remaining = number(headers, "x-trial-endpoint-call-remaining");
    if minute_limit.is_some() || minute_remaining.is_some() {
        out.push(QuotaUpdate {
            dimension: QuotaDimension::Requests,
            window: LimitWindow::Minute,
            limit: minute_limit,
            remaining: minute_remaining,
            reset_after_ms: None,
            scope: None,
        });
    }
    if let Some(limit) = number(headers, "x-endpoint-monthly-call-limit") {
        out.push(QuotaUpdate {
            dimension: QuotaDimension::Requests,
            window: LimitWindow::Month,
            limit: Some(limit),
            remaining: None,
            reset_after_ms: None,
            scope: None,
        });
    }
    if status == 429
        && let Some(body) = body
    {
        let message = errors::parse_body(body).message.unwrap_or_default();
        let limit = limit_in_message(&message);
        let window = if limit.window == LimitWindow::Unknown { LimitWindow::Minute } else { limit.window };
        out.retain(|u| !(u.dimension == limit.dimension && u.window == window));
        out.push(QuotaUpdate {
            dimension: limit.dimension,
            window,
            limit: limit.size,
            remaining: Some(0),
            reset_after_ms: (window == LimitWindow::Minute).then_some(MINUTE_MS),
            scope: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    const MONTHLY: &str = r#"{"id":"24e32f6d-b372-4853-85f2-11e65134f032","message":"You are using a Trial key, which is limited to 1000 API calls / month. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'. Contact us on 'https://discord.gg/XW44jPfYJu' or email us at support@cohere.com with any questions"}"#;
    const MINUTE: &str = r#"{"id":"a1","message":"You are using a Trial key, which is limited to 20 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'."}"#;

    #[test]
    fn trial_429s_are_told_apart() {
        let e = map_error(429, &h(&[]), MONTHLY);
        assert_eq!(e.kind, ErrorKind::QuotaExhausted);
        assert_eq!(e.window, Some(LimitWindow::Month));
        assert_eq!(e.retry_after_ms, None);
        assert_eq!(e.status, 429);
        assert!(e.message.starts_with("You are using a Trial key, which is limited to 1000 API calls / month."));
        assert_eq!(e.code.as_deref(), Some("trial_monthly_limit"));

        let e = map_error(429, &h(&[]), MINUTE);
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.window, Some(LimitWindow::Minute));
        assert_eq!(e.retry_after_ms, Some(60_000));
        let e = map_error(
            429,
            &h(&[("retry-after", "7")]),
            r#"{"message":"You are past the per minute request limit, please wait and try again later."}"#,
        );
        assert_eq!(
            (e.kind, e.retry_after_ms, e.window),
            (ErrorKind::RateLimited, Some(7000), Some(LimitWindow::Minute))
        );
        assert_eq!(map_error(429, &h(&[]), "").kind, ErrorKind::RateLimited);
    }

    #[test]
    fn statuses_and_bodies() {
        let e = map_error(401, &h(&[]), r#"{"id":"x","message":"invalid api token"}"#);
        assert_eq!((e.kind, e.message.as_str(), e.window), (ErrorKind::Auth, "invalid api token", None));
        assert_eq!(map_error(498, &h(&[]), r#"{"message":"invalid token"}"#).kind, ErrorKind::Auth);
        assert_eq!(
            map_error(402, &h(&[]), r#"{"message":"Please add a payment method"}"#).kind,
            ErrorKind::PaymentRequired
        );
        assert_eq!(map_error(403, &h(&[]), r#"{"message":"forbidden"}"#).kind, ErrorKind::Permission);
        let e = map_error(
            404,
            &h(&[]),
            r#"{"id":"x","message":"model 'nope' not found, make sure the correct model ID was used and that you have access to the model."}"#,
        );
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(map_error(422, &h(&[]), r#"{"message":"invalid request"}"#).kind, ErrorKind::BadRequest);
        let e = map_error(
            400,
            &h(&[]),
            r#"{"id":"x","message":"too many tokens: size limit exceeded by 1234 tokens. Try using shorter or fewer inputs."}"#,
        );
        assert_eq!(e.kind, ErrorKind::ContextLength);
        let e = map_error(
            400,
            &h(&[]),
            r#"{"id":"x","message":"invalid request: unknown field: parameter foo is not a valid field"}"#,
        );
        assert_eq!(e.kind, ErrorKind::BadRequest);
        assert_eq!(map_error(499, &h(&[]), r#"{"message":"request cancelled"}"#).kind, ErrorKind::Upstream);
        assert_eq!(map_error(500, &h(&[]), r#"{"message":"internal server error"}"#).kind, ErrorKind::Upstream);
        assert_eq!(map_error(503, &h(&[]), r#"{"message":"service unavailable"}"#).kind, ErrorKind::Overloaded);
        assert_eq!(map_error(504, &h(&[]), "").kind, ErrorKind::Timeout);
        assert_eq!(map_error(502, &h(&[]), "<html>bad gateway</html>").message, "<html>bad gateway</html>");
    }

    #[test]
    fn messages_name_their_limits() {
        let l = limit_in_message("You are using a Trial key, which is limited to 1,000 API calls / month.");
        assert_eq!((l.dimension, l.window, l.size), (QuotaDimension::Requests, LimitWindow::Month, Some(1000)));
        let l = limit_in_message("You are using a Trial key, which is limited to 100000 tokens / minute.");
        assert_eq!((l.dimension, l.window, l.size), (QuotaDimension::Tokens, LimitWindow::Minute, Some(100_000)));
        let l = limit_in_message("You are past the per minute request limit, please wait and try again later.");
        assert_eq!((l.dimension, l.window, l.size), (QuotaDimension::Requests, LimitWindow::Minute, None));
        assert_eq!(limit_in_message("slow down").window, LimitWindow::Unknown);
    }

    #[test]
    fn trial_headers_and_429_bodies_become_updates() {
        let headers = h(&[
            ("x-endpoint-monthly-call-limit", "1000"),
            ("x-trial-endpoint-call-limit", "20"),
            ("x-trial-endpoint-call-remaining", "19"),
        ]);
        let u = quota_updates(200, &headers, None);
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].window, u[0].limit, u[0].remaining), (LimitWindow::Minute, Some(20), Some(19)));
        assert_eq!((u[1].window, u[1].limit, u[1].remaining), (LimitWindow::Month, Some(1000), None));
        assert!(quota_updates(200, &Vec::new(), None).is_empty());

        let u = quota_updates(429, &Vec::new(), Some(MONTHLY));
        assert_eq!(u.len(), 1);
        assert_eq!(
            (u[0].dimension, u[0].window, u[0].limit, u[0].remaining),
            (QuotaDimension::Requests, LimitWindow::Month, Some(1000), Some(0))
        );
        assert_eq!(u[0].reset_after_ms, None);
        let u = quota_updates(429, &Vec::new(), Some(MINUTE));
        assert_eq!(
            (u[0].window, u[0].limit, u[0].remaining, u[0].reset_after_ms),
            (LimitWindow::Minute, Some(20), Some(0), Some(60_000))
        );
        assert!(quota_updates(400, &Vec::new(), Some(MINUTE)).is_empty());
    }
}
