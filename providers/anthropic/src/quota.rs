//! Anthropic errors (`{"type": "error", "error": {"type", "message"}}`) -> typed errors, and
//! `anthropic-ratelimit-*` headers -> quota updates.
//!
//! Error types and their statuses: `invalid_request_error` 400, `authentication_error` 401,
//! `billing_error` 402, `permission_error` 403, `not_found_error` 404, `request_too_large` 413,
//! `rate_limit_error` 429 (with `retry-after`), `api_error` 500, `timeout_error` 504,
//! `overloaded_error` 529. Two 400s are refined by their message: "prompt is too long" (context
//! length) and "Your credit balance is too low" (payment required); reaching the workspace's
//! spend limit ("You will regain access on 2026-12-01 at 00:00 UTC") is a monthly quota.
//!
//! Rate limits are per minute: `anthropic-ratelimit-{requests,tokens,input-tokens,
//! output-tokens}-{limit,remaining,reset}`, the reset an RFC 3339 time.

use freeway_sdk::errors;
use freeway_sdk::types::{ErrorKind, Headers, LimitWindow, ProviderError, QuotaDimension, QuotaUpdate};
use serde_json::Value;

const PREFIX: &str = "anthropic-ratelimit-";

/// The kind an Anthropic error type means.
pub fn kind_for_type(kind: &str) -> Option<ErrorKind> {
    Some(match kind {
        "invalid_request_error" | "request_too_large" => ErrorKind::BadRequest,
        "authentication_error" => ErrorKind::Auth,
        "billing_error" => ErrorKind::PaymentRequired,
        "permission_error" => ErrorKind::Permission,
        "not_found_error" => ErrorKind::NotFound,
        "rate_limit_error" => ErrorKind::RateLimited,
        "api_error" => ErrorKind::Upstream,
        "timeout_error" => ErrorKind::Timeout,
        "overloaded_error" => ErrorKind::Overloaded,
        _ => return None,
    })
}

/// The HTTP status Anthropic sends with an error type (for errors inside a stream).
pub fn status_for_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// An Anthropic error response -> a typed error. `now_ms` (Unix ms) dates resets.
pub fn map_error(status: u16, headers: &Headers, body: &str, now_ms: u64) -> ProviderError {
    let parsed = errors::parse_body(body);
    let mut e = errors::from_response(status, headers, body);
    let kind = parsed.kind.as_deref().unwrap_or_default();
    let message = parsed.message.as_deref().unwrap_or_default().to_ascii_lowercase();
    let refined = e.kind;
    e.kind = match kind_for_type(kind) {
        // the message tells context length and credit apart from other bad requests
        Some(ErrorKind::BadRequest) if matches!(refined, ErrorKind::ContextLength | ErrorKind::PaymentRequired) => {
            refined
        }
        Some(ErrorKind::BadRequest) if message.contains("prompt is too long") => ErrorKind::ContextLength,
        Some(ErrorKind::BadRequest) if message.contains("content filtering policy") => ErrorKind::ContentPolicy,
        Some(k) => k,
        None => refined,
    };
    e.window = None;
    if message.contains("regain access on") || message.contains("api usage limits") {
        e.kind = ErrorKind::QuotaExhausted;
        e.window = Some(LimitWindow::Month);
        e.retry_after_ms = e.retry_after_ms.or_else(|| regain_access_at(&message).map(|at| at.saturating_sub(now_ms)));
    }
    if e.kind == ErrorKind::RateLimited {
        e.window = Some(LimitWindow::Minute);
        // without `retry-after`: wait for the exhausted limits to reset
        if e.retry_after_ms.is_none() {
            e.retry_after_ms = quota_updates(headers, now_ms)
                .iter()
                .filter(|u| u.remaining == Some(0))
                .filter_map(|u| u.reset_after_ms)
                .max();
        }
    }
    if !kind.is_empty() {
        e.code = Some(kind.to_owned());
    }
    e
}

/// An `error` object from a stream event (`{"type": "overloaded_error", "message": ...}`).
pub fn stream_error(error: &Value) -> ProviderError {
    let kind = error.get("type").and_then(Value::as_str).unwrap_or("api_error");
    let body = serde_json::json!({"type": "error", "error": error}).to_string();
    map_error(status_for_type(kind), &Vec::new(), &body, 0)
}

/// "... regain access on 2026-12-01 at 00:00 UTC" -> Unix ms.
fn regain_access_at(message: &str) -> Option<u64> {
    let (_, rest) = message.split_once("regain access on ")?;
    let date = rest.get(..10)?;
    let time = rest.get(10..)?.trim_start().strip_prefix("at ")?.get(..5)?;
    parse_rfc3339_ms(&format!("{date}T{time}:00Z"))
}

/// `anthropic-ratelimit-*` headers -> per-minute quota updates; resets are RFC 3339 times,
/// made relative to `now_ms` (Unix ms).
pub fn quota_updates(headers: &Headers, now_ms: u64) -> Vec<QuotaUpdate> {
    let mut out: Vec<QuotaUpdate> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let Some((dim, field)) = rest.rsplit_once('-') else { continue };
        let dimension = match dim {
            "requests" => QuotaDimension::Requests,
            "tokens" => QuotaDimension::Tokens,
            "input-tokens" => QuotaDimension::InputTokens,
            "output-tokens" => QuotaDimension::OutputTokens,
            _ => continue,
        };
        let idx = match out.iter().position(|u| u.dimension == dimension) {
            Some(i) => i,
            None => {
                out.push(QuotaUpdate {
                    dimension,
                    window: LimitWindow::Minute,
                    limit: None,
                    remaining: None,
                    reset_after_ms: None,
                    scope: None,
                });
                out.len() - 1
            }
        };
        let u = &mut out[idx];
        let value = value.trim();
        match field {
            "limit" => u.limit = value.parse().ok(),
            "remaining" => u.remaining = value.parse().ok(),
            "reset" => u.reset_after_ms = parse_rfc3339_ms(value).map(|at| at.saturating_sub(now_ms)),
            _ => {}
        }
    }
    out.retain(|u| u.limit.is_some() || u.remaining.is_some());
    out
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 time (`2026-11-27T10:00:30Z`, `...30.25+01:00`) -> Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms: String = frac[..digits].chars().chain("000".chars()).take(3).collect();
        millis = ms.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest.get(1..)?.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?)
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    u64::try_from(secs * 1000 + millis).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn body(kind: &str, message: &str) -> String {
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011"}).to_string()
    }

    const NOW: u64 = 1_795_766_400_000; // 2026-11-27T08:00:00Z

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("2026-11-27T08:00:00Z"), Some(NOW));
        assert_eq!(parse_rfc3339_ms("2026-11-27T08:00:30.25Z"), Some(NOW + 30_250));
        assert_eq!(parse_rfc3339_ms("2026-11-27T09:00:00+01:00"), Some(NOW));
        assert_eq!(parse_rfc3339_ms("2026-11-27t07:30:00-00:30"), Some(NOW));
        assert_eq!(parse_rfc3339_ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(parse_rfc3339_ms("2026-11-27T08:00:00"), None);
        assert_eq!(parse_rfc3339_ms("2026-13-27T08:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("soon"), None);
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), None);
    }

    #[test]
    fn rate_limit_headers_become_per_minute_updates() {
        let headers = h(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2026-11-27T08:00:01Z"),
            ("anthropic-ratelimit-tokens-limit", "20000"),
            ("anthropic-ratelimit-tokens-remaining", "19000"),
            ("anthropic-ratelimit-tokens-reset", "2026-11-27T08:00:03.5Z"),
            ("Anthropic-RateLimit-Input-Tokens-Limit", "30000"),
            ("anthropic-ratelimit-input-tokens-remaining", "29500"),
            ("anthropic-ratelimit-input-tokens-reset", "2026-11-27T07:59:59Z"),
            ("anthropic-ratelimit-output-tokens-limit", "8000"),
            ("anthropic-ratelimit-output-tokens-remaining", "7500"),
            ("anthropic-ratelimit-unified-status", "allowed"),
            ("retry-after", "3"),
        ]);
        let u = quota_updates(&headers, NOW);
        assert_eq!(u.len(), 4);
        assert!(u.iter().all(|u| u.window == LimitWindow::Minute && u.scope.is_none()));
        let find = |d: QuotaDimension| u.iter().find(|x| x.dimension == d).unwrap();
        let r = find(QuotaDimension::Requests);
        assert_eq!((r.limit, r.remaining, r.reset_after_ms), (Some(50), Some(49), Some(1000)));
        assert_eq!(find(QuotaDimension::Tokens).reset_after_ms, Some(3500));
        // a reset in the past is now
        assert_eq!(find(QuotaDimension::InputTokens).reset_after_ms, Some(0));
        let out = find(QuotaDimension::OutputTokens);
        assert_eq!((out.limit, out.remaining, out.reset_after_ms), (Some(8000), Some(7500), None));
        assert!(quota_updates(&h(&[("x-ratelimit-limit-requests", "5")]), NOW).is_empty());
    }

    #[test]
    fn errors_by_type() {
        let e = map_error(
            429,
            &h(&[("retry-after", "12")]),
            &body("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
            NOW,
        );
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after_ms, Some(12_000));
        assert_eq!(e.window, Some(LimitWindow::Minute));
        assert_eq!(e.code.as_deref(), Some("rate_limit_error"));
        assert_eq!(e.status, 429);
        assert!(e.message.starts_with("Number of request tokens"));

        // no retry-after: the exhausted limit's reset
        let e = map_error(
            429,
            &h(&[
                ("anthropic-ratelimit-requests-remaining", "0"),
                ("anthropic-ratelimit-requests-reset", "2026-11-27T08:00:20Z"),
                ("anthropic-ratelimit-tokens-remaining", "100"),
                ("anthropic-ratelimit-tokens-reset", "2026-11-27T08:00:50Z"),
            ]),
            &body("rate_limit_error", "rate limited"),
            NOW,
        );
        assert_eq!(e.retry_after_ms, Some(20_000));

        let kinds = [
            (401, "authentication_error", "invalid x-api-key", ErrorKind::Auth),
            (
                403,
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
                ErrorKind::Permission,
            ),
            (404, "not_found_error", "model: claude-9", ErrorKind::NotFound),
            (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", ErrorKind::BadRequest),
            (500, "api_error", "Internal server error", ErrorKind::Upstream),
            (529, "overloaded_error", "Overloaded", ErrorKind::Overloaded),
            (504, "timeout_error", "Request timed out", ErrorKind::Timeout),
            (402, "billing_error", "payment method declined", ErrorKind::PaymentRequired),
            (
                400,
                "invalid_request_error",
                "prompt is too long: 215000 tokens > 200000 maximum",
                ErrorKind::ContextLength,
            ),
            (
                400,
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
                ErrorKind::PaymentRequired,
            ),
            (400, "invalid_request_error", "max_tokens: Field required", ErrorKind::BadRequest),
            (400, "invalid_request_error", "Output blocked by content filtering policy", ErrorKind::ContentPolicy),
        ];
        for (status, kind, message, want) in kinds {
            let e = map_error(status, &Vec::new(), &body(kind, message), NOW);
            assert_eq!(e.kind, want, "{kind}: {message}");
            assert_eq!(e.code.as_deref(), Some(kind));
            assert_eq!(e.message, message);
            assert_eq!(e.window, None, "{kind}");
        }
        // an overloaded 529 without a body
        assert_eq!(map_error(529, &Vec::new(), "", NOW).kind, ErrorKind::Overloaded);
        assert_eq!(map_error(502, &Vec::new(), "<html>bad gateway</html>", NOW).kind, ErrorKind::Upstream);
    }

    #[test]
    fn the_spend_limit_is_a_monthly_quota() {
        let e = map_error(
            400,
            &Vec::new(),
            &body(
                "invalid_request_error",
                "You have reached your specified API usage limits. You will regain access on 2026-12-01 at 00:00 UTC.",
            ),
            NOW,
        );
        assert_eq!(e.kind, ErrorKind::QuotaExhausted);
        assert_eq!(e.window, Some(LimitWindow::Month));
        assert_eq!(e.retry_after_ms, Some(4 * 86_400_000 - 8 * 3_600_000));
    }

    #[test]
    fn stream_errors() {
        let e = stream_error(&json!({"type": "overloaded_error", "message": "Overloaded"}));
        assert_eq!((e.kind, e.status, e.message.as_str()), (ErrorKind::Overloaded, 529, "Overloaded"));
        assert_eq!(e.code.as_deref(), Some("overloaded_error"));
        assert_eq!(stream_error(&json!({"message": "boom"})).kind, ErrorKind::Upstream);
    }
}
