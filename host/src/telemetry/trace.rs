//! The spans a request leaves for tracing: one per API request, with children for the task
//! classifier, the routing policy, each upstream attempt and each guest call. They are
//! `trace`-level on their own target, so the console log never shows them unless asked
//! (`RUST_LOG=freeway::trace=trace`) and, with no exporter running, making one costs a check of
//! a cached flag. With the `otel` feature and an OTLP endpoint configured they are exported
//! (see `telemetry::otel`).
//!
//! Attribute names follow OpenTelemetry's conventions where there is one (`http.*`,
//! `gen_ai.*`, `error.type`), `freeway.*` otherwise. No span carries a key, a prompt or an
//! answer.

use tracing::Span;
use tracing::field::Empty;

/// The target every span here is made on.
pub const TARGET: &str = "freeway::trace";

/// One API request (`POST /v1/chat/completions`, ...), from its arrival until its response's
/// last byte has gone. Filled in by [`finish_request`].
/// `route` is the endpoint's path template (the span's name), `operation` the `gen_ai`
/// operation when it is one (`chat`).
pub fn request(method: &str, route: &str, path: &str, operation: Option<&str>, request_id: &str) -> Span {
    tracing::trace_span!(
        target: TARGET,
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        url.path = path,
        freeway.request_id = request_id,
        http.response.status_code = Empty,
        gen_ai.operation.name = operation,
        gen_ai.request.model = Empty,
        gen_ai.response.model = Empty,
        gen_ai.provider.name = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        freeway.client = Empty,
        freeway.account = Empty,
        freeway.attempts = Empty,
        freeway.stream = Empty,
        freeway.ttft_ms = Empty,
        freeway.outcome = Empty,
        error.type = Empty,
    )
}

/// What a request's span says when its response has ended.
pub struct RequestEnd<'a> {
    pub status: u16,
    pub client: Option<&'a str>,
    pub model: Option<&'a str>,
    pub stream: bool,
    pub provider: Option<&'a str>,
    pub model_used: Option<&'a str>,
    pub account: Option<&'a str>,
    pub attempts: u32,
    pub ttft_ms: Option<u64>,
    /// prompt and completion tokens
    pub tokens: Option<(u64, u64)>,
    /// how a stream ended
    pub outcome: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub fn finish_request(span: &Span, end: &RequestEnd<'_>) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", end.status);
    span.record("otel.status_code", if end.status >= 500 || end.error.is_some() { "error" } else { "ok" });
    span.record("gen_ai.request.model", end.model);
    span.record("gen_ai.response.model", end.model_used);
    span.record("gen_ai.provider.name", end.provider);
    span.record("freeway.client", end.client);
    span.record("freeway.account", end.account);
    span.record("freeway.attempts", end.attempts);
    span.record("freeway.stream", end.stream);
    span.record("freeway.ttft_ms", end.ttft_ms);
    span.record("freeway.outcome", end.outcome);
    if let Some((input, output)) = end.tokens {
        span.record("gen_ai.usage.input_tokens", input);
        span.record("gen_ai.usage.output_tokens", output);
    }
    span.record("error.type", end.error);
}

/// The task classifier's work on one request.
pub fn classify() -> Span {
    tracing::trace_span!(target: TARGET, "classify", freeway.task = Empty, freeway.confidence = Empty)
}

/// The routing policy ranking the candidates.
pub fn policy(name: &str, candidates: usize) -> Span {
    tracing::trace_span!(
        target: TARGET,
        "policy",
        freeway.policy = name,
        freeway.candidates = candidates,
        freeway.policy_error = Empty,
    )
}

/// One attempt on one candidate: planning, sending, the answer's headers (a stream: its first
/// event).
pub fn attempt(provider: &str, model: &str, account: &str) -> Span {
    tracing::trace_span!(
        target: TARGET,
        "attempt",
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.provider.name = provider,
        gen_ai.request.model = model,
        freeway.account = account,
        error.type = Empty,
        freeway.retryable = Empty,
    )
}

/// An attempt's end: `Err` names the error code and whether another candidate may be tried.
pub fn finish_attempt(span: &Span, error: Option<(&str, bool)>) {
    if span.is_disabled() {
        return;
    }
    match error {
        None => span.record("otel.status_code", "ok"),
        Some((code, retryable)) => {
            span.record("otel.status_code", "error");
            span.record("error.type", code);
            span.record("freeway.retryable", retryable)
        }
    };
}

/// One call into a component (per stream event `translate-event` is not traced: it is counted
/// in `freeway_guest_call_duration_seconds`).
pub fn guest_call(component: &str, function: &'static str) -> Span {
    tracing::trace_span!(
        target: TARGET,
        "guest",
        otel.name = %format_args!("guest {function}"),
        freeway.component = component,
        freeway.function = function,
        otel.status_code = Empty,
        error.type = Empty,
    )
}

pub fn finish_guest_call(span: &Span, failure: Option<&str>) {
    if span.is_disabled() {
        return;
    }
    match failure {
        None => span.record("otel.status_code", "ok"),
        Some(kind) => {
            span.record("otel.status_code", "error");
            span.record("error.type", kind)
        }
    };
}
