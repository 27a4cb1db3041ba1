//! Gemini error bodies (`{"error": {"code", "message", "status", "details"}}`, also wrapped in an
//! array) -> typed errors, and 429 bodies -> quota updates.
//!
//! Gemini sends no rate-limit headers: a 429 `RESOURCE_EXHAUSTED` says which quota ran out in
//! `google.rpc.QuotaFailure` (`quotaId` like `GenerateRequestsPerMinutePerProjectPerModel-FreeTier`
//! or `...PerDay...`, `quotaValue`, `quotaDimensions.model`) and when to come back in
//! `google.rpc.RetryInfo.retryDelay` (`"37s"`).

use freeway_sdk::errors;
use freeway_sdk::types::{ErrorKind, Headers, LimitWindow, ProviderError, QuotaDimension, QuotaUpdate};
use serde_json::Value;

/// The `error` object of a Gemini error body.
fn error_object(body: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(body).ok()?;
    let v = match v {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    };
    v.get("error").cloned()
}

/// A Gemini error response -> a typed error.
pub fn map_error(status: u16, headers: &Headers, body: &str) -> ProviderError {
    let parsed = errors::parse_body(body);
    let mut e = errors::from_response(status, headers, body);
    let google_status = parsed.kind.as_deref().unwrap_or_default();
    let message = parsed.message.as_deref().unwrap_or_default().to_ascii_lowercase();
    let quota = status == 429 || google_status == "RESOURCE_EXHAUSTED";
    if quota {
        // the window decides: a per-minute quota comes back soon, a per-day one tomorrow; a
        // quota of 0 (a model the free tier does not include) never comes back
        let zero = quota_updates(429, body).iter().any(|u| u.limit == Some(0));
        e.kind = match parsed.window {
            _ if zero => ErrorKind::QuotaExhausted,
            Some(LimitWindow::Day) => ErrorKind::QuotaExhausted,
            _ => ErrorKind::RateLimited,
        };
        e.window = Some(parsed.window.unwrap_or(if zero { LimitWindow::Day } else { LimitWindow::Unknown }));
    } else {
        e.window = None;
        match google_status {
            "UNAUTHENTICATED" => e.kind = ErrorKind::Auth,
            "PERMISSION_DENIED" => e.kind = ErrorKind::Permission,
            "NOT_FOUND" => e.kind = ErrorKind::NotFound,
            "UNAVAILABLE" => e.kind = ErrorKind::Overloaded,
            "DEADLINE_EXCEEDED" => e.kind = ErrorKind::Timeout,
            "INTERNAL" | "UNKNOWN" => e.kind = ErrorKind::Upstream,
            // the project's region cannot use the API: another provider may serve it
            "FAILED_PRECONDITION" if message.contains("location is not supported") => {
                e.kind = ErrorKind::Permission;
            }
            // "Invalid value at 'safety_settings[0]'" is a bad request, not a refusal
            "INVALID_ARGUMENT" if e.kind == ErrorKind::ContentPolicy && message.contains("safety_settings") => {
                e.kind = ErrorKind::BadRequest;
            }
            _ => {}
        }
    }
    e.code = parsed.reason.clone().or_else(|| (!google_status.is_empty()).then(|| google_status.to_owned())).or(e.code);
    e
}

fn window_of(quota_id: &str) -> LimitWindow {
    if quota_id.contains("PerDay") {
        LimitWindow::Day
    } else if quota_id.contains("PerMinute") {
        LimitWindow::Minute
    } else if quota_id.contains("PerHour") {
        LimitWindow::Hour
    } else {
        LimitWindow::Unknown
    }
}

/// A 429 body -> one "remaining 0" update per violated quota.
pub fn quota_updates(status: u16, body: &str) -> Vec<QuotaUpdate> {
    let Some(err) = error_object(body) else { return Vec::new() };
    let exhausted = status == 429 || err.get("status").and_then(Value::as_str) == Some("RESOURCE_EXHAUSTED");
    if !exhausted {
        return Vec::new();
    }
    let retry = errors::parse_body(body).retry_after_ms;
    let mut out = Vec::new();
    for detail in err.get("details").and_then(Value::as_array).into_iter().flatten() {
        for v in detail.get("violations").and_then(Value::as_array).into_iter().flatten() {
            let id = v.get("quotaId").and_then(Value::as_str).unwrap_or_default();
            let metric = v.get("quotaMetric").and_then(Value::as_str).unwrap_or_default();
            if id.is_empty() && metric.is_empty() {
                continue;
            }
            let names = format!("{id} {metric}").to_ascii_lowercase();
            let dimension = if names.contains("input_token") || names.contains("inputtoken") {
                QuotaDimension::InputTokens
            } else if names.contains("token") {
                QuotaDimension::Tokens
            } else {
                QuotaDimension::Requests
            };
            let limit = match v.get("quotaValue") {
                Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
                Some(n) => n.as_u64(),
                None => None,
            };
            out.push(QuotaUpdate {
                dimension,
                window: window_of(id),
                limit,
                remaining: Some(0),
                reset_after_ms: retry,
                scope: v.pointer("/quotaDimensions/model").and_then(Value::as_str).map(str::to_owned),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn quota_body(quota_id: &str, retry: &str, wrapped: bool) -> String {
        let error = json!({"error": {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing details.\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 5, model: gemini-2.5-flash\nPlease retry in 36.2s.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                    "quotaValue": "5"}]},
                {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry},
            ],
        }});
        if wrapped { json!([error]).to_string() } else { error.to_string() }
    }

    #[test]
    fn per_minute_and_per_day_429s() {
        let minute = quota_body("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "37s", false);
        let e = map_error(429, &Vec::new(), &minute);
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.window, Some(LimitWindow::Minute));
        assert_eq!(e.retry_after_ms, Some(37_000));
        assert_eq!(e.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
        assert_eq!(e.status, 429);
        assert!(e.message.starts_with("You exceeded your current quota"));

        let day = quota_body("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "2s", true);
        let e = map_error(429, &Vec::new(), &day);
        assert_eq!(e.kind, ErrorKind::QuotaExhausted);
        assert_eq!(e.window, Some(LimitWindow::Day));
        assert_eq!(e.retry_after_ms, Some(2_000));

        // a quota of 0: the model is not in the free tier
        let zero = minute.replace("\"quotaValue\":\"5\"", "\"quotaValue\":\"0\"");
        assert_ne!(zero, minute);
        assert_eq!(map_error(429, &Vec::new(), &zero).kind, ErrorKind::QuotaExhausted);

        // no details: the delay in the message, the window unknown
        let bare = json!({"error": {"code": 429, "message": "Resource exhausted. Please retry in 12s.", "status": "RESOURCE_EXHAUSTED"}});
        let e = map_error(429, &Vec::new(), &bare.to_string());
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.window, Some(LimitWindow::Unknown));
        assert_eq!(e.retry_after_ms, Some(12_000));
    }

    #[test]
    fn quota_updates_name_the_window_and_model() {
        let u = quota_updates(429, &quota_body("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "37s", true));
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].dimension, QuotaDimension::Requests);
        assert_eq!(u[0].window, LimitWindow::Day);
        assert_eq!((u[0].limit, u[0].remaining, u[0].reset_after_ms), (Some(5), Some(0), Some(37_000)));
        assert_eq!(u[0].scope.as_deref(), Some("gemini-2.5-flash"));
        let u = quota_updates(429, &quota_body("GenerateContentInputTokensPerModelPerMinute-FreeTier", "5s", false));
        assert_eq!((u[0].dimension, u[0].window), (QuotaDimension::InputTokens, LimitWindow::Minute));
        assert!(quota_updates(400, r#"{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}"#).is_empty());
        assert!(quota_updates(429, "not json").is_empty());
    }

    #[test]
    fn bad_key_not_found_and_others() {
        let bad_key = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT", "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                 "metadata": {"service": "generativelanguage.googleapis.com"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": "API key not valid. Please pass a valid API key."}]}});
        let e = map_error(400, &Vec::new(), &bad_key.to_string());
        assert_eq!(e.kind, ErrorKind::Auth);
        assert_eq!(e.code.as_deref(), Some("API_KEY_INVALID"));
        assert_eq!(e.window, None);

        let not_found = json!({"error": {"code": 404, "message": "models/gemini-9 is not found for API version v1beta, or is not supported for generateContent.", "status": "NOT_FOUND"}});
        let e = map_error(404, &Vec::new(), &not_found.to_string());
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.code.as_deref(), Some("NOT_FOUND"));

        let context = json!({"error": {"code": 400, "message": "The input token count (1500000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}});
        assert_eq!(map_error(400, &Vec::new(), &context.to_string()).kind, ErrorKind::ContextLength);

        let overloaded = json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}});
        assert_eq!(map_error(503, &Vec::new(), &overloaded.to_string()).kind, ErrorKind::Overloaded);

        let denied = json!({"error": {"code": 403, "message": "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", "status": "PERMISSION_DENIED"}});
        assert_eq!(map_error(403, &Vec::new(), &denied.to_string()).kind, ErrorKind::Permission);

        let location = json!({"error": {"code": 400, "message": "User location is not supported for the API use.", "status": "FAILED_PRECONDITION"}});
        assert_eq!(map_error(400, &Vec::new(), &location.to_string()).kind, ErrorKind::Permission);

        let safety_setting = json!({"error": {"code": 400, "message": "Invalid value at 'safety_settings[0].threshold'", "status": "INVALID_ARGUMENT"}});
        assert_eq!(map_error(400, &Vec::new(), &safety_setting.to_string()).kind, ErrorKind::BadRequest);

        let plain = map_error(500, &Vec::new(), "upstream exploded");
        assert_eq!(plain.kind, ErrorKind::Upstream);
        assert_eq!(plain.message, "upstream exploded");
    }
}
