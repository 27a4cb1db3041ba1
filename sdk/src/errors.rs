//! Upstream error responses -> typed [`ProviderError`]s.
//!
//! Understands the shapes free tiers actually send: OpenAI's `{"error": {...}}`, a bare
//! `{"error": "text"}`, top-level `{"message", "type", "code"}` (Cerebras, Mistral), Google's
//! array-wrapped `[{"error": {...}}]` with `RetryInfo`, Cloudflare's `{"errors": [...]}` and
//! Hugging Face's `{"detail": ...}`.

use serde_json::Value;

use crate::types::{ErrorKind, Headers, LimitWindow, ProviderError};

/// The parts of an error body worth keeping.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParsedError {
    pub message: Option<String>,
    pub code: Option<String>,
    pub kind: Option<String>,
    /// from Google's `RetryInfo.retryDelay`
    pub retry_after_ms: Option<u64>,
    /// from Google's `QuotaFailure` quota ids (`...PerDay...`, `...PerMinute...`)
    pub window: Option<LimitWindow>,
    /// from Google's `ErrorInfo.reason` (e.g. `API_KEY_INVALID`)
    pub reason: Option<String>,
}

fn as_code(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Read an error body in any of the known shapes.
pub fn parse_body(body: &str) -> ParsedError {
    let Ok(mut v) = serde_json::from_str::<Value>(body) else {
        let text = body.trim();
        return ParsedError { message: (!text.is_empty()).then(|| truncate(text, 500)), ..Default::default() };
    };
    if let Value::Array(items) = &mut v {
        // Google wraps the error in an array
        v = items.first().cloned().unwrap_or(Value::Null);
    }
    let mut out = ParsedError::default();
    let obj = match v.get("error") {
        Some(Value::String(s)) => {
            out.message = Some(s.clone());
            &v
        }
        Some(e @ Value::Object(_)) => e,
        _ => &v,
    };
    if out.message.is_none() {
        out.message = obj
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| obj.get("detail").and_then(Value::as_str))
            .or_else(|| obj.get("errors").and_then(|e| e.get(0)).and_then(|e| e.get("message")).and_then(Value::as_str))
            .map(str::to_owned);
        if out.message.is_none()
            && let Some(d) = obj.get("detail")
            && !d.is_null()
        {
            out.message = Some(d.to_string());
        }
    }
    out.code = obj
        .get("code")
        .and_then(as_code)
        .or_else(|| obj.get("errors").and_then(|e| e.get(0)).and_then(|e| e.get("code")).and_then(as_code));
    out.kind = obj
        .get("type")
        .and_then(Value::as_str)
        .or_else(|| obj.get("status").and_then(Value::as_str))
        .map(str::to_owned);
    if let Some(details) = obj.get("details").and_then(Value::as_array) {
        for d in details {
            if let Some(delay) = d.get("retryDelay").and_then(Value::as_str) {
                out.retry_after_ms = crate::limits::parse_duration_ms(delay);
            }
            if let Some(reason) = d.get("reason").and_then(Value::as_str) {
                out.reason.get_or_insert_with(|| reason.to_owned());
            }
            if let Some(violations) = d.get("violations").and_then(Value::as_array) {
                for viol in violations {
                    let id = viol.get("quotaId").and_then(Value::as_str).unwrap_or_default();
                    let w = if id.contains("PerDay") {
                        Some(LimitWindow::Day)
                    } else if id.contains("PerMinute") {
                        Some(LimitWindow::Minute)
                    } else {
                        None
                    };
                    // a daily limit is the more serious one
                    if w == Some(LimitWindow::Day) || out.window.is_none() {
                        out.window = w.or(out.window);
                    }
                }
            }
        }
    }
    if out.retry_after_ms.is_none() {
        // Google without `RetryInfo`: "... Please retry in 20.04s."
        out.retry_after_ms = out.message.as_deref().and_then(retry_in_message);
    }
    out
}

/// The delay in a "Please retry in 20.04s" sentence.
fn retry_in_message(message: &str) -> Option<u64> {
    let (_, rest) = message.split_once("retry in ")?;
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.')).unwrap_or(rest.len());
    crate::limits::parse_duration_ms(rest[..end].trim_end_matches('.'))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let cut = (0..=max).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
    format!("{}…", &s[..cut])
}

/// The kind of error an HTTP status usually means.
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        400 | 413 | 415 | 422 => ErrorKind::BadRequest,
        401 => ErrorKind::Auth,
        402 => ErrorKind::PaymentRequired,
        403 => ErrorKind::Permission,
        404 => ErrorKind::NotFound,
        408 | 504 | 524 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited,
        503 | 529 => ErrorKind::Overloaded,
        _ => ErrorKind::Upstream,
    }
}

/// `retry-after-ms`, else `retry-after` (seconds or an HTTP date is not parsed; seconds only).
pub fn retry_after_ms(headers: &Headers) -> Option<u64> {
    let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(to_ms(ms));
    }
    get("retry-after").and_then(|v| v.parse::<f64>().ok()).map(|s| to_ms(s * 1000.0))
}

fn to_ms(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        // rounded-up milliseconds; the value is positive and finite
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = v.ceil() as u64;
        ms
    } else {
        0
    }
}

/// Refine a status-based kind with what the body says.
fn refine(kind: ErrorKind, parsed: &ParsedError) -> ErrorKind {
    let text = format!(
        "{} {} {}",
        parsed.code.as_deref().unwrap_or_default(),
        parsed.kind.as_deref().unwrap_or_default(),
        parsed.message.as_deref().unwrap_or_default()
    )
    .to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    // Google answers a bad key with 400 INVALID_ARGUMENT (ErrorInfo reason API_KEY_INVALID)
    if parsed.reason.as_deref().is_some_and(|r| r.starts_with("API_KEY_"))
        || has(&["api key not valid", "api key expired", "api key not found"])
    {
        return ErrorKind::Auth;
    }
    // a 429 is a rate limit even when it talks about tokens (Cerebras: "too many tokens processed")
    if kind != ErrorKind::RateLimited
        && has(&[
            "exceeds the maximum number of tokens",
            "context_length",
            "context length",
            "maximum context",
            "too many tokens",
            "prompt is too long",
            "context window",
        ])
    {
        return ErrorKind::ContextLength;
    }
    if has(&["content_policy", "content policy", "content_filter", "safety", "moderation"])
        && kind != ErrorKind::RateLimited
    {
        return ErrorKind::ContentPolicy;
    }
    if kind == ErrorKind::RateLimited
        && (parsed.window == Some(LimitWindow::Day)
            || has(&["per day", "daily", "quota exceeded", "insufficient_quota", "free-models-per-day"]))
    {
        return ErrorKind::QuotaExhausted;
    }
    if has(&["insufficient_quota", "insufficient credits", "credit balance"]) {
        return ErrorKind::PaymentRequired;
    }
    kind
}

/// A typed error from an upstream response.
pub fn from_response(status: u16, headers: &Headers, body: &str) -> ProviderError {
    let parsed = parse_body(body);
    let kind = refine(kind_for_status(status), &parsed);
    let window = parsed.window.or(match kind {
        ErrorKind::QuotaExhausted => Some(LimitWindow::Day),
        ErrorKind::RateLimited => Some(LimitWindow::Unknown),
        _ => None,
    });
    ProviderError {
        kind,
        message: parsed.message.unwrap_or_else(|| format!("upstream answered HTTP {status}")),
        status,
        code: parsed.code.or(parsed.kind),
        retry_after_ms: retry_after_ms(headers).or(parsed.retry_after_ms),
        window,
    }
}

/// An upstream answer the component could not read.
pub fn invalid_response(message: &str) -> ProviderError {
    ProviderError {
        kind: ErrorKind::InvalidResponse,
        message: message.to_owned(),
        status: 0,
        code: None,
        retry_after_ms: None,
        window: None,
    }
}

/// Something this provider does not serve (a model, an operation).
pub fn not_found(message: &str) -> ProviderError {
    ProviderError {
        kind: ErrorKind::NotFound,
        message: message.to_owned(),
        status: 404,
        code: None,
        retry_after_ms: None,
        window: None,
    }
}

/// A request this provider cannot serve as asked.
pub fn bad_request(message: &str) -> ProviderError {
    ProviderError {
        kind: ErrorKind::BadRequest,
        message: message.to_owned(),
        status: 400,
        code: None,
        retry_after_ms: None,
        window: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn openai_shape() {
        let e = from_response(
            429,
            &h(&[("retry-after", "7")]),
            r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after_ms, Some(7000));
        assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(e.message, "Rate limit reached");
    }

    #[test]
    fn top_level_shape_cerebras_mistral() {
        let e = from_response(
            400,
            &h(&[]),
            r#"{"message":"Please reduce the length of the messages or completion. context length exceeded","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}"#,
        );
        assert_eq!(e.kind, ErrorKind::ContextLength);
        let e = from_response(
            401,
            &h(&[]),
            r#"{"object":"error","message":"Unauthorized","type":"invalid_request_error","code":null}"#,
        );
        assert_eq!(e.kind, ErrorKind::Auth);
        assert_eq!(e.message, "Unauthorized");
        let e = from_response(
            429,
            &h(&[]),
            r#"{"message":"Tokens per minute limit exceeded - too many tokens processed.","type":"too_many_requests_error","param":"quota","code":"token_quota_exceeded"}"#,
        );
        assert_eq!(e.kind, ErrorKind::RateLimited, "a token quota, not the context length");
    }

    #[test]
    fn google_array_wrapped_429_with_retry_info() {
        let body = r#"[{"error":{"code":429,"message":"You exceeded your current quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}]"#;
        let e = from_response(429, &h(&[]), body);
        assert_eq!(e.kind, ErrorKind::QuotaExhausted);
        assert_eq!(e.window, Some(LimitWindow::Day));
        assert_eq!(e.retry_after_ms, Some(37_000));
        assert_eq!(e.code.as_deref(), Some("429"));
    }

    #[test]
    fn google_bad_key_context_and_retry_in_message() {
        let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        let e = from_response(400, &h(&[]), body);
        assert_eq!(e.kind, ErrorKind::Auth);
        assert_eq!(parse_body(body).reason.as_deref(), Some("API_KEY_INVALID"));
        let body = r#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(from_response(400, &h(&[]), body).kind, ErrorKind::ContextLength);
        let body = r#"[{"error":{"code":429,"message":"You exceeded your current quota. Please retry in 20.04s.","status":"RESOURCE_EXHAUSTED"}}]"#;
        assert_eq!(from_response(429, &h(&[]), body).retry_after_ms, Some(20_040));
        assert_eq!(parse_body(r#"{"message":"Please retry in a moment."}"#).retry_after_ms, None);
    }

    #[test]
    fn other_shapes_and_plain_text() {
        assert_eq!(
            from_response(500, &h(&[]), r#"{"errors":[{"code":3036,"message":"account limit"}],"success":false}"#)
                .message,
            "account limit"
        );
        assert_eq!(from_response(503, &h(&[]), r#"{"detail":"Model is loading"}"#).kind, ErrorKind::Overloaded);
        assert_eq!(from_response(502, &h(&[]), "<html>bad gateway</html>").message, "<html>bad gateway</html>");
        assert_eq!(from_response(500, &h(&[]), "").message, "upstream answered HTTP 500");
        assert_eq!(from_response(400, &h(&[]), r#"{"error":"bad thing"}"#).message, "bad thing");
    }
}
