//! Gateway errors: what went wrong (kind), who is to blame, whether another attempt may help.
//!
//! Errors stay typed through the pipeline and become HTTP responses only at the edge
//! (`server::edge`), through the single table in [`ErrorKind::spec`].

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Who caused a failure. Decides logging level and whether the client can fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Client,
    Upstream,
    Internal,
}

/// Every failure the gateway can report. The table in [`ErrorKind::spec`] maps each to an HTTP
/// status, an OpenAI error `type` and `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    // client mistakes
    InvalidJson,
    MissingParameter,
    InvalidType,
    InvalidValue,
    /// a parameter the gateway understands but does not serve (an API's feature it lacks)
    UnsupportedParameter,
    ModelNotFound,
    BodyTooLarge,
    InvalidApiKey,
    RouteNotFound,
    MethodNotAllowed,
    ClientRateLimited,
    /// a virtual key spent a daily or monthly budget of its own
    KeyBudgetExhausted,
    /// a virtual key may not use the model it asked for
    ModelNotAllowed,
    AccountNotFound,
    /// a record the admin API was asked for (kept bodies of a request) is not there
    RecordNotFound,
    Conflict,
    AdminOff,
    /// the body's JSON is nested too deep or has too many keys or elements
    RequestTooComplex,
    /// a body that is not declared as JSON
    UnsupportedMediaType,
    /// a `Host` the gateway does not answer to (DNS rebinding)
    UnknownHost,
    /// the body did not arrive in time
    RequestTimeout,
    // upstream failures (after the provider component typed them)
    UpstreamBadRequest,
    ContextLengthExceeded,
    ContentPolicy,
    UpstreamAuth,
    UpstreamNotFound,
    UpstreamPaymentRequired,
    UpstreamRateLimited,
    UpstreamQuotaExhausted,
    UpstreamServerError,
    UpstreamOverloaded,
    UpstreamTimeout,
    UpstreamUnreachable,
    UpstreamInvalidResponse,
    UpstreamStreamInterrupted,
    // gateway-side
    ComponentFailed,
    ComponentTimeout,
    ComponentMemory,
    ComponentDenied,
    ComponentBusy,
    /// more requests in flight than the gateway (or a provider) takes at once
    Overloaded,
    NoProvider,
    NotReady,
    Internal,
}

/// HTTP status, OpenAI `type` and `code` for a kind.
pub struct Spec {
    pub status: u16,
    pub r#type: &'static str,
    pub code: &'static str,
    pub blame: Blame,
    /// whether trying another candidate (or later) may succeed
    pub retryable: bool,
}

const fn spec(status: u16, r#type: &'static str, code: &'static str, blame: Blame, retryable: bool) -> Spec {
    Spec { status, r#type, code, blame, retryable }
}

impl ErrorKind {
    /// The one table from error kind to wire representation.
    pub const fn spec(self) -> Spec {
        use Blame::{Client, Internal as Gw, Upstream};
        use ErrorKind::*;
        const INV: &str = "invalid_request_error";
        const UP: &str = "upstream_error";
        const GW: &str = "gateway_error";
        match self {
            InvalidJson => spec(400, INV, "invalid_json", Client, false),
            MissingParameter => spec(400, INV, "missing_required_parameter", Client, false),
            InvalidType => spec(400, INV, "invalid_type", Client, false),
            InvalidValue => spec(400, INV, "invalid_value", Client, false),
            UnsupportedParameter => spec(400, INV, "unsupported_parameter", Client, false),
            ModelNotFound => spec(404, INV, "model_not_found", Client, false),
            BodyTooLarge => spec(413, INV, "request_too_large", Client, false),
            InvalidApiKey => spec(401, INV, "invalid_api_key", Client, false),
            RouteNotFound => spec(404, INV, "unknown_url", Client, false),
            MethodNotAllowed => spec(405, INV, "method_not_allowed", Client, false),
            ClientRateLimited => spec(429, "rate_limit_error", "rate_limit_exceeded", Client, false),
            KeyBudgetExhausted => spec(429, "insufficient_quota", "insufficient_quota", Client, false),
            ModelNotAllowed => spec(403, "permission_error", "model_not_allowed", Client, false),
            AccountNotFound => spec(404, INV, "account_not_found", Client, false),
            RecordNotFound => spec(404, INV, "not_found", Client, false),
            Conflict => spec(409, INV, "conflict", Client, false),
            AdminOff => spec(404, INV, "admin_api_disabled", Client, false),
            RequestTooComplex => spec(400, INV, "request_too_complex", Client, false),
            UnsupportedMediaType => spec(415, INV, "unsupported_media_type", Client, false),
            UnknownHost => spec(421, INV, "unknown_host", Client, false),
            RequestTimeout => spec(408, INV, "request_timeout", Client, false),
            UpstreamBadRequest => spec(400, INV, "upstream_rejected_request", Client, false),
            ContextLengthExceeded => spec(400, INV, "context_length_exceeded", Client, true),
            ContentPolicy => spec(400, INV, "content_policy_violation", Client, false),
            UpstreamAuth => spec(502, UP, "upstream_auth_failed", Upstream, true),
            UpstreamNotFound => spec(502, UP, "upstream_not_found", Upstream, true),
            UpstreamPaymentRequired => spec(502, UP, "upstream_payment_required", Upstream, true),
            UpstreamRateLimited => spec(429, "rate_limit_error", "upstream_rate_limited", Upstream, true),
            UpstreamQuotaExhausted => spec(429, "rate_limit_error", "upstream_quota_exhausted", Upstream, true),
            UpstreamServerError => spec(502, UP, "upstream_server_error", Upstream, true),
            UpstreamOverloaded => spec(503, UP, "upstream_overloaded", Upstream, true),
            UpstreamTimeout => spec(504, UP, "upstream_timeout", Upstream, true),
            UpstreamUnreachable => spec(502, UP, "upstream_unreachable", Upstream, true),
            UpstreamInvalidResponse => spec(502, UP, "upstream_invalid_response", Upstream, true),
            UpstreamStreamInterrupted => spec(502, UP, "upstream_stream_interrupted", Upstream, true),
            ComponentFailed => spec(502, GW, "provider_component_failed", Gw, true),
            ComponentTimeout => spec(504, GW, "provider_component_timeout", Gw, true),
            ComponentMemory => spec(502, GW, "provider_component_out_of_memory", Gw, true),
            ComponentDenied => spec(502, GW, "provider_component_denied", Gw, true),
            ComponentBusy => spec(503, GW, "provider_component_busy", Gw, true),
            Overloaded => spec(503, GW, "gateway_overloaded", Gw, true),
            NoProvider => spec(503, GW, "no_provider_available", Gw, false),
            NotReady => spec(503, GW, "not_ready", Gw, true),
            Internal => spec(500, GW, "internal_error", Gw, false),
        }
    }
}

/// A failure on its way to the edge.
#[derive(Debug, Clone)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: Cow<'static, str>,
    /// the request parameter at fault, for client errors
    pub param: Option<Cow<'static, str>>,
    /// when the client (or the failing account) may try again
    pub retry_after: Option<Duration>,
    /// the provider the failure came from
    pub provider: Option<String>,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self { kind, message: message.into(), param: None, retry_after: None, provider: None }
    }

    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    pub fn with_provider(mut self, provider: &str) -> Self {
        self.provider = Some(provider.to_owned());
        self
    }

    pub fn blame(&self) -> Blame {
        self.kind.spec().blame
    }

    pub fn retryable(&self) -> bool {
        self.kind.spec().retryable
    }

    pub fn status(&self) -> u16 {
        self.kind.spec().status
    }

    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The OpenAI-shaped JSON body: `{"error": {"message", "type", "param", "code"}}`.
    pub fn to_body(&self) -> Vec<u8> {
        let spec = self.kind.spec();
        let body = serde_json::json!({
            "error": {
                "message": self.message,
                "type": spec.r#type,
                "param": self.param,
                "code": spec.code,
            }
        });
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":{\"message\":\"internal error\",\"type\":\"gateway_error\",\"param\":null,\"code\":\"internal_error\"}}".to_vec())
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.spec().code)
    }
}

impl std::error::Error for GatewayError {}

pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

/// The HTTP response for an error (behind the `http` feature): status and OpenAI-shaped body
/// from the one table, `Retry-After` (and `retry-after-ms`) when known.
#[cfg(feature = "http")]
pub fn error_response(e: &GatewayError) -> axum_core::response::Response {
    use http::{HeaderValue, StatusCode, header};
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = axum_core::response::Response::new(axum_core::body::Body::from(e.to_body()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(after) = e.retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::try_from(secs.max(1).to_string()) {
            h.insert(header::RETRY_AFTER, v);
        }
        if let Ok(v) = HeaderValue::try_from(after.as_millis().max(1).to_string()) {
            h.insert(http::HeaderName::from_static("retry-after-ms"), v);
        }
    }
    resp
}

#[cfg(feature = "http")]
impl axum_core::response::IntoResponse for GatewayError {
    fn into_response(self) -> axum_core::response::Response {
        error_response(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_4xx_and_not_retryable() {
        for kind in
            [ErrorKind::InvalidJson, ErrorKind::MissingParameter, ErrorKind::ModelNotFound, ErrorKind::BodyTooLarge]
        {
            let s = kind.spec();
            assert!((400..500).contains(&s.status), "{kind:?}");
            assert_eq!(s.blame, Blame::Client);
            assert!(!s.retryable);
        }
    }

    #[test]
    fn upstream_failures_map_to_gateway_statuses() {
        assert_eq!(ErrorKind::UpstreamServerError.spec().status, 502);
        assert_eq!(ErrorKind::UpstreamOverloaded.spec().status, 503);
        assert_eq!(ErrorKind::UpstreamTimeout.spec().status, 504);
        assert!(ErrorKind::UpstreamServerError.spec().retryable);
    }

    #[test]
    fn body_is_openai_shaped() {
        let e = GatewayError::new(ErrorKind::MissingParameter, "Missing required parameter: 'messages'.")
            .with_param("messages");
        let v: serde_json::Value = serde_json::from_slice(&e.to_body()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "missing_required_parameter");
        assert_eq!(v["error"]["param"], "messages");
        assert!(v["error"]["message"].as_str().unwrap().contains("messages"));
    }
}
