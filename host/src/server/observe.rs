//! The outermost layer: every request gets its id (the client's `x-request-id` when sane, else
//! a fresh one), every response carries it back, errors included, and when the response's last
//! byte has gone (a stream: when it ends, or the client leaves) the request is counted in
//! `freeway_request_duration_seconds` and, for the OpenAI API, written as one access log line
//! (target `freeway::access`, level info; other endpoints at debug). The request's
//! `Cache-Control` directives are noted on its exchange here, for the response cache of every
//! API endpoint.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::app::App;
use crate::body_log::Capture;
use crate::pipeline::Exchange;
use crate::pipeline::exchange::Served;
use crate::principal::Principal;
use crate::telemetry::request_id::HEADER;
use crate::telemetry::{Endpoint, Metrics, RequestId, trace};

pub async fn observe(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = Endpoint::of(req.uri().path());
    let exchange = Exchange::new(RequestId::from_headers(req.headers()));
    exchange.set_directives(crate::cache::Directives::from_headers(req.headers()));
    exchange.set_max_wait(
        req.headers().get(crate::pipeline::wait::MAX_WAIT_HEADER).and_then(crate::pipeline::wait::parse_header),
    );
    req.extensions_mut().insert(exchange.clone());
    let span = if endpoint.is_api() {
        let (route, operation) = match endpoint {
            Endpoint::ChatCompletions => ("/v1/chat/completions", Some("chat")),
            Endpoint::Messages => ("/v1/messages", Some("chat")),
            Endpoint::Completions => ("/v1/completions", Some("text_completion")),
            Endpoint::Responses => ("/v1/responses", Some("chat")),
            Endpoint::Embeddings => ("/v1/embeddings", Some("embeddings")),
            _ => ("/v1/models", None),
        };
        let span = trace::request(req.method().as_str(), route, req.uri().path(), operation, exchange.id.as_str());
        #[cfg(feature = "otel")]
        crate::telemetry::otel::adopt_parent(&span, req.headers());
        span
    } else {
        tracing::Span::none()
    };
    let mut resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    resp.headers_mut().insert(HEADER, exchange.id.header_value().clone());
    if let Some(waited) = exchange.waited()
        && let Ok(v) = http::HeaderValue::try_from(millis(waited).to_string())
    {
        resp.headers_mut().insert(crate::pipeline::wait::WAITED_HEADER, v);
    }
    let body_log = &app.registry.snapshot().config.body_log;
    let capture = (body_log.enabled && endpoint.is_api())
        .then(|| Capture::new(body_log, app.reloader.secrets.clone(), app.body_log.clone()));
    let end = End {
        capture,
        metrics: app.metrics.clone(),
        status: resp.status().as_u16(),
        stream: is_event_stream(resp.headers()),
        exchange,
        endpoint,
        started,
        span,
    };
    resp.map(|body| Body::new(Observed { inner: Some(body), end: Some(end) }))
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"))
}

/// What is recorded when a response ends.
struct End {
    /// the body log's copy of the response, when it is on
    capture: Option<Capture>,
    metrics: Arc<Metrics>,
    exchange: Arc<Exchange>,
    endpoint: Endpoint,
    status: u16,
    stream: bool,
    started: Instant,
    /// the request's span (disabled unless traces are exported), ended with the response
    span: tracing::Span,
}

impl End {
    fn record(mut self) {
        let took = self.started.elapsed();
        self.metrics.request(self.endpoint, self.status, self.stream, took);
        let mut served = self.exchange.take();
        if let Some(hold) = served.key_hold.take() {
            hold.settle(served.cache == Some("hit"), served.attempts, served.usage.as_ref());
        }
        if let Some(capture) = self.capture.take() {
            let request = served.request_body.take();
            capture.finish(self.exchange.id.to_string(), self.endpoint.as_str(), self.status, request);
        }
        if self.endpoint.is_api() {
            let client = served.client.as_ref().map(client_name);
            let summary = summary(&self, &served, client.as_deref());
            access_line(&self, &summary, (served.cache, served.waited), took);
            // the span ends when `End` is dropped
            trace::finish_request(&self.span, &summary);
        } else {
            tracing::debug!(
                target: "freeway::access",
                request_id = %self.exchange.id,
                endpoint = self.endpoint.as_str(),
                status = self.status,
                latency_ms = millis(took),
                "access"
            );
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The principal's public name: `key-N`, or `anyone` when no client keys are configured.
fn client_name(p: &Principal) -> String {
    p.id().unwrap_or_else(|| "anyone".to_owned())
}

/// What the access line and the request's span say, read once from what the steps learned.
fn summary<'s>(end: &End, s: &'s Served, client: Option<&'s str>) -> trace::RequestEnd<'s> {
    let route = s.route.as_ref();
    trace::RequestEnd {
        status: end.status,
        client,
        model: s.model.as_deref(),
        stream: s.stream,
        provider: route.map(|c| c.route.provider.id.as_str()),
        model_used: route.map(|c| c.route.model.as_str()),
        account: route.map(|c| c.account.label.as_str()),
        attempts: s.attempts,
        ttft_ms: s.first_byte.map(millis),
        tokens: s.usage.as_ref().map(|u| (u.prompt_tokens, u.completion_tokens)),
        outcome: s.outcome.map(crate::usage::Outcome::as_str),
        error: s.error,
    }
}

/// The access log line of one API request. Fields that do not apply (no provider for a request
/// refused before routing, no time to first token without a stream) are left out.
/// `waited_ms`: the time spent in the wait queue, when the request waited.
fn access_line(
    end: &End,
    v: &trace::RequestEnd<'_>,
    (cache, waited): (Option<&str>, Option<Duration>),
    took: Duration,
) {
    tracing::info!(
        target: "freeway::access",
        request_id = %end.exchange.id,
        client = v.client,
        model = v.model,
        stream = v.stream,
        provider = v.provider,
        model_used = v.model_used,
        account = v.account,
        status = v.status,
        attempts = v.attempts,
        latency_ms = millis(took),
        ttft_ms = v.ttft_ms,
        prompt_tokens = v.tokens.map(|t| t.0),
        completion_tokens = v.tokens.map(|t| t.1),
        outcome = v.outcome,
        error = v.error,
        cache,
        waited_ms = waited.map(millis),
        "access"
    );
}

/// A response body that records its request when it ends or is dropped.
struct Observed {
    inner: Option<Body>,
    end: Option<End>,
}

impl Observed {
    /// Drop the inner body first (a stream's relay reports how it ended when it is dropped),
    /// then record.
    fn finish(&mut self) {
        self.inner = None;
        if let Some(end) = self.end.take() {
            end.record();
        }
    }
}

impl HttpBody for Observed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        // a stream's relay works inside the request's span (which ends at its last exit)
        let entered = this.end.as_ref().filter(|e| !e.span.is_disabled()).map(|e| e.span.enter());
        let polled = Pin::new(inner).poll_frame(cx);
        drop(entered);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(capture) = this.end.as_mut().and_then(|e| e.capture.as_mut())
            && let Some(data) = frame.data_ref()
        {
            capture.push(data);
        }
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.finish();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        self.finish();
    }
}
