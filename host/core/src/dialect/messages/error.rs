//! Anthropic-shaped errors: `{"type":"error","error":{"type":...,"message":...}}`, with the
//! status Anthropic uses (529 when overloaded).

use serde_json::{Value, json};

use crate::errors::{ErrorKind, GatewayError};

/// Anthropic's error type and status for a gateway error.
pub fn kind_of(e: &GatewayError) -> (&'static str, u16) {
    match e.kind {
        ErrorKind::UpstreamOverloaded | ErrorKind::Overloaded => ("overloaded_error", 529),
        // nothing configured to serve it: retrying will not help, so not an overload
        ErrorKind::NoProvider | ErrorKind::NotReady => ("api_error", e.status()),
        _ => by_status(e.status()),
    }
}

/// Anthropic's error type and status for an HTTP status (as a stream's error reports it).
pub fn by_status(status: u16) -> (&'static str, u16) {
    match status {
        400 | 415 | 422 => ("invalid_request_error", 400),
        401 => ("authentication_error", 401),
        402 => ("billing_error", 402),
        403 => ("permission_error", 403),
        404 | 405 => ("not_found_error", 404),
        408 | 504 => ("timeout_error", 504),
        413 => ("request_too_large", 413),
        429 => ("rate_limit_error", 429),
        503 | 529 => ("overloaded_error", 529),
        s if s < 500 => ("invalid_request_error", s),
        s => ("api_error", s),
    }
}

/// The error body.
pub fn body(r#type: &str, message: &str) -> Value {
    json!({ "type": "error", "error": { "type": r#type, "message": message } })
}

/// A stream's error event for an OpenAI error object (`type`, `code`, `message`).
pub fn from_openai(error: &Value) -> Value {
    let message = error.get("message").and_then(Value::as_str).unwrap_or("The upstream stream failed.");
    let code = error.get("code").and_then(Value::as_str).unwrap_or("");
    let t = error.get("type").and_then(Value::as_str).unwrap_or("");
    let kind = match (t, code) {
        (_, c) if c.contains("overloaded") => "overloaded_error",
        ("rate_limit_error", _) => "rate_limit_error",
        (_, c) if c.contains("timeout") => "timeout_error",
        _ => "api_error",
    };
    body(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_is_a_529_overloaded_error_and_limits_are_rate_limit_errors() {
        let e = GatewayError::new(ErrorKind::UpstreamOverloaded, "busy");
        assert_eq!(kind_of(&e), ("overloaded_error", 529));
        let e = GatewayError::new(ErrorKind::UpstreamQuotaExhausted, "spent");
        assert_eq!(kind_of(&e), ("rate_limit_error", 429));
        let e = GatewayError::new(ErrorKind::InvalidApiKey, "who");
        assert_eq!(kind_of(&e), ("authentication_error", 401));
        let e = GatewayError::new(ErrorKind::ModelNotFound, "none");
        assert_eq!(kind_of(&e), ("not_found_error", 404));
        let e = GatewayError::new(ErrorKind::MissingParameter, "max_tokens");
        assert_eq!(kind_of(&e), ("invalid_request_error", 400));
        let e = GatewayError::new(ErrorKind::NoProvider, "nothing configured");
        assert_eq!(kind_of(&e), ("api_error", 503));
        let e = GatewayError::internal("bug");
        assert_eq!(kind_of(&e), ("api_error", 500));
    }

    #[test]
    fn a_streams_error_keeps_its_kind() {
        let v = from_openai(&json!({"message": "m", "type": "upstream_error", "code": "upstream_overloaded"}));
        assert_eq!(v["error"]["type"], "overloaded_error");
        assert_eq!(v["type"], "error");
        let v = from_openai(&json!({"message": "m", "type": "upstream_error", "code": "upstream_stream_interrupted"}));
        assert_eq!(v["error"]["type"], "api_error");
    }
}
