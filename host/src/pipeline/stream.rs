//! Streaming: the upstream's SSE relayed to the client event by event, as it arrives.
//!
//! OpenAI-format upstreams pass through as raw bytes (each event is only peeked at for usage,
//! `finish_reason` and errors); other upstreams are translated per event by the provider
//! instance that planned the call. Nothing reaches the client until the first event is ready
//! ([`Relay::prime`]), so a failure before it can still fall back to another candidate. After
//! that, a failure ends the stream with a chunk whose `finish_reason` is `"error"` and an error
//! event (which the OpenAI SDKs raise), never a clean-looking end.
//!
//! Every event is scrubbed of the gateway's secrets before anything else reads it, and a stream
//! is bounded: an event larger than `[upstream] max_event_bytes`, a stream past
//! `max_stream_bytes`, or no data event within `first_event_timeout_ms` (keep-alive comments do
//! not count) ends it as an upstream failure.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::account::UsageSink;
use super::exchange::Exchange;
use crate::accounts::SecretSet;
use crate::bindings::wit;
use crate::errors::{ErrorKind, GatewayError};
use crate::runtime::ProviderLease;
use crate::telemetry::ProviderMetrics;
use crate::upstream::StreamBounds;
use crate::usage::{Outcome, UsageRecord};
use crate::wire::sse::{self, Event, SseFramer};
use crate::wire::types::{ChunkPeek, Usage};

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// What the client sees of a stream so far.
#[derive(Default)]
struct Tracker {
    done: bool,
    finished: bool,
    usage: Option<Usage>,
    id: Option<String>,
    model: Option<String>,
    created: Option<u64>,
    events: u64,
}

impl Tracker {
    fn observe(&mut self, peek: &ChunkPeek<'_>) {
        if self.id.is_none() {
            self.id = peek.id.as_deref().map(str::to_owned);
            self.model = peek.model.as_deref().map(str::to_owned);
            self.created = peek.created;
        }
        if let Some(u) = &peek.usage {
            self.usage = Some(u.clone());
        }
        if peek.finish_reason().is_some() {
            self.finished = true;
        }
    }
}

/// One streaming response in flight.
pub struct Relay {
    upstream: Upstream,
    framer: SseFramer,
    ndjson: bool,
    translator: Option<ProviderLease>,
    client_wants_usage: bool,
    tracker: Tracker,
    out: VecDeque<Bytes>,
    /// the upstream side is over (done, failed or exhausted)
    ended: bool,
    /// a data event is ready for the client
    data_ready: bool,
    /// the response has been committed to the client; failures are now in-band
    committed: bool,
    prime_error: Option<GatewayError>,
    outcome: Outcome,
    /// the error code of a stream that failed
    error: Option<&'static str>,
    provider: String,
    idle_timeout: Duration,
    bounds: StreamBounds,
    /// bytes received from upstream so far
    received: u64,
    secrets: Arc<SecretSet>,
    // accounting
    sink: UsageSink,
    record: Option<UsageRecord>,
    started: Instant,
    first_byte: Option<Duration>,
    /// settled with the usage the stream reports when it ends
    reservation: Option<crate::quota::Reservation>,
    /// the provider's in-flight slot, released when the stream ends
    _slot: Option<crate::registry::ProviderSlot>,
    /// the provider's metrics (time to first token)
    metrics: Arc<ProviderMetrics>,
    /// the request's exchange, told how the stream ended (the winning attempt's relay only)
    exchange: Option<Arc<Exchange>>,
}

/// What the relay needs to know about the request it serves.
pub struct RelayInfo {
    pub provider: String,
    pub model: String,
    pub account: String,
    pub client_wants_usage: bool,
    pub started: Instant,
    pub idle_timeout: Duration,
    pub bounds: StreamBounds,
    /// every event is scrubbed of these before it is read or relayed
    pub secrets: Arc<SecretSet>,
    pub client: crate::principal::Principal,
    pub metrics: Arc<ProviderMetrics>,
}

impl Relay {
    pub fn new(
        upstream: reqwest::Response,
        framing: wit::StreamFraming,
        translator: Option<ProviderLease>,
        info: RelayInfo,
        sink: UsageSink,
    ) -> Self {
        let ndjson = framing == wit::StreamFraming::Ndjson;
        let record = UsageRecord {
            at: SystemTime::now(),
            provider: info.provider.clone(),
            model: info.model,
            account: info.account,
            usage: None,
            outcome: Outcome::ClientGone,
            stream: true,
            attempts: 1,
            latency: Duration::ZERO,
            first_byte: None,
            client: info.client,
            error: None,
            policy: None,
            cache_read: false,
        };
        Self {
            upstream: Box::pin(upstream.bytes_stream()),
            framer: if ndjson { SseFramer::ndjson() } else { SseFramer::new() },
            ndjson,
            translator,
            client_wants_usage: info.client_wants_usage,
            tracker: Tracker::default(),
            out: VecDeque::new(),
            ended: false,
            data_ready: false,
            committed: false,
            prime_error: None,
            outcome: Outcome::ClientGone,
            error: None,
            provider: info.provider,
            idle_timeout: info.idle_timeout,
            bounds: info.bounds,
            received: 0,
            secrets: info.secrets,
            sink,
            record: Some(record),
            started: info.started,
            first_byte: None,
            reservation: None,
            _slot: None,
            metrics: info.metrics,
            exchange: None,
        }
    }

    /// Tell `exchange` (the request's access log line) how the stream ends.
    pub fn report_to(&mut self, exchange: Arc<Exchange>) {
        self.exchange = Some(exchange);
    }

    /// Keep the provider's in-flight slot until the stream ends.
    pub fn hold(&mut self, slot: Option<crate::registry::ProviderSlot>) {
        self._slot = slot;
    }

    /// Settle `r` in `ledger` with the stream's usage when it ends (an unreported usage keeps
    /// the estimate).
    pub fn settle_with(&mut self, r: crate::quota::Reservation) {
        self.reservation = Some(r);
    }

    pub fn set_attempts(&mut self, attempts: u32) {
        if let Some(r) = &mut self.record {
            r.attempts = attempts;
        }
    }

    /// The routing policy that chose this candidate, for the usage record.
    pub fn set_policy(&mut self, policy: Option<&str>) {
        if let Some(r) = &mut self.record {
            r.policy = policy.map(str::to_owned);
        }
    }

    /// Read until the first event for the client is ready. An error here means nothing was
    /// sent: the caller may try another candidate.
    pub async fn prime(&mut self) -> Result<(), GatewayError> {
        let first_event = self.bounds.first_event;
        let primed = tokio::time::timeout(first_event, async {
            while !self.data_ready && !self.ended {
                self.pull().await;
            }
        })
        .await;
        if primed.is_err() {
            self.ended = true;
            self.outcome = Outcome::UpstreamError;
            self.error = Some(ErrorKind::UpstreamTimeout.spec().code);
            self.out.clear();
            self.prime_error = Some(
                GatewayError::new(
                    ErrorKind::UpstreamTimeout,
                    format!(
                        "provider '{}' sent no data event within {} ms (keep-alive comments do not count)",
                        self.provider,
                        first_event.as_millis()
                    ),
                )
                .with_provider(&self.provider),
            );
        }
        if let Some(e) = self.prime_error.take() {
            // this attempt never reached the client: the request's record is written by whoever
            // serves it in the end
            self.record = None;
            return Err(e);
        }
        self.committed = true;
        Ok(())
    }

    /// The response body.
    pub fn into_body(self) -> axum::body::Body {
        let stream = futures_util::stream::unfold(self, |mut relay| async move {
            let next = relay.next_bytes().await?;
            Some((Ok::<Bytes, std::io::Error>(next), relay))
        });
        axum::body::Body::from_stream(stream)
    }

    async fn next_bytes(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.out.pop_front() {
                if self.first_byte.is_none() {
                    let first = self.started.elapsed();
                    self.first_byte = Some(first);
                    self.metrics.first_token(first);
                }
                return Some(b);
            }
            if self.ended {
                return None;
            }
            self.pull().await;
        }
    }

    /// Read one upstream chunk and turn the events it completes into output.
    async fn pull(&mut self) {
        match self.upstream.next().await {
            Some(Ok(chunk)) => {
                self.received = self.received.saturating_add(chunk.len() as u64);
                if self.received > self.bounds.max_stream_bytes {
                    let max = self.bounds.max_stream_bytes;
                    self.fail(format!("provider '{}' sent a stream larger than {max} bytes", self.provider));
                    return;
                }
                self.framer.push(&chunk);
                while let Some(raw) = self.framer.next_event() {
                    self.handle(raw).await;
                    if self.ended {
                        return;
                    }
                }
                if self.framer.pending().len() > self.bounds.max_event_bytes {
                    let max = self.bounds.max_event_bytes;
                    self.fail(format!("provider '{}' sent a stream event larger than {max} bytes", self.provider));
                }
            }
            Some(Err(e)) => {
                let msg = if e.is_timeout() {
                    format!("provider '{}' sent nothing for {} s", self.provider, self.idle_timeout.as_secs())
                } else {
                    format!("provider '{}' broke off the stream: {}", self.provider, e.without_url())
                };
                self.fail(msg);
            }
            None => self.end_of_upstream().await,
        }
    }

    async fn handle(&mut self, raw: Bytes) {
        if raw.len() > self.bounds.max_event_bytes {
            let max = self.bounds.max_event_bytes;
            self.fail(format!("provider '{}' sent a stream event larger than {max} bytes", self.provider));
            return;
        }
        let raw = self.secrets.scrub_bytes(raw);
        let event = if self.ndjson { Event::from_line(&raw) } else { Event::parse(&raw) };
        if !event.has_data {
            // comments and keep-alives pass through untouched
            if self.translator.is_none() && !self.ndjson {
                self.out.push_back(raw);
            }
            return;
        }
        self.tracker.events += 1;
        if self.translator.is_some() {
            let wit_event = wit::SseEvent { event: event.event.map(str::to_owned), data: event.data.into_owned() };
            self.translate(&wit_event).await;
            return;
        }
        if event.data.trim() == "[DONE]" {
            self.tracker.done = true;
            self.push_data(raw);
            self.ended = true;
            self.outcome = Outcome::Ok;
            return;
        }
        let peek: ChunkPeek = match serde_json::from_str(&event.data) {
            Ok(p) => p,
            Err(e) => {
                self.fail(format!("provider '{}' sent a malformed stream event: {e}", self.provider));
                return;
            }
        };
        if let Some(err) = peek.error {
            let message = serde_json::from_str::<serde_json::Value>(err.get())
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| err.get().to_owned());
            self.fail(format!("provider '{}' reported an error mid-stream: {message}", self.provider));
            return;
        }
        self.tracker.observe(&peek);
        if peek.is_usage_only() && !self.client_wants_usage {
            return;
        }
        self.push_data(raw);
    }

    fn push_data(&mut self, event: Bytes) {
        self.data_ready = true;
        self.out.push_back(event);
    }

    async fn translate(&mut self, event: &wit::SseEvent) {
        let Some(t) = self.translator.as_mut() else { return };
        match t.translate_event(event).await {
            Ok(Ok(chunks)) => self.emit_translated(chunks),
            Ok(Err(e)) => {
                self.fail(format!("provider '{}' reported an error mid-stream: {}", self.provider, e.message))
            }
            Err(f) => self.fail(f.message),
        }
    }

    fn emit_translated(&mut self, chunks: Vec<String>) {
        for chunk in chunks {
            match serde_json::from_str::<ChunkPeek>(&chunk) {
                Ok(peek) => {
                    self.tracker.observe(&peek);
                    if peek.is_usage_only() && !self.client_wants_usage {
                        continue;
                    }
                }
                Err(e) => {
                    self.fail(format!("provider component '{}' produced an invalid chunk: {e}", self.provider));
                    return;
                }
            }
            self.push_data(sse::data_event(&chunk));
        }
    }

    async fn end_of_upstream(&mut self) {
        if let Some(rest) = self.framer.finish() {
            self.handle(rest).await;
            if self.ended {
                return;
            }
        }
        if let Some(t) = self.translator.as_mut() {
            match t.finish_stream().await {
                Ok(Ok(chunks)) => self.emit_translated(chunks),
                Ok(Err(e)) => {
                    self.fail(format!(
                        "provider '{}' reported an error at the end of the stream: {}",
                        self.provider, e.message
                    ));
                    return;
                }
                Err(f) => {
                    self.fail(f.message);
                    return;
                }
            }
            if self.ended {
                return;
            }
        }
        if self.tracker.done || self.tracker.finished {
            if !self.tracker.done {
                self.push_data(Bytes::from_static(sse::DONE));
            }
            self.ended = true;
            self.outcome = Outcome::Ok;
        } else {
            self.fail(format!("provider '{}' ended the stream before the response was complete", self.provider));
        }
    }

    /// End the stream because the upstream failed.
    fn fail(&mut self, message: String) {
        self.ended = true;
        self.outcome = Outcome::UpstreamError;
        self.error = Some(ErrorKind::UpstreamStreamInterrupted.spec().code);
        tracing::warn!(provider = %self.provider, "stream failed: {message}");
        if !self.committed {
            self.out.clear();
            self.prime_error =
                Some(GatewayError::new(ErrorKind::UpstreamStreamInterrupted, message).with_provider(&self.provider));
            return;
        }
        let chunk = serde_json::json!({
            "id": self.tracker.id.as_deref().unwrap_or("chatcmpl-freeway-error"),
            "object": "chat.completion.chunk",
            "created": self.tracker.created.unwrap_or(0),
            "model": self.tracker.model.as_deref().unwrap_or_default(),
            "choices": [{ "index": 0, "delta": {}, "finish_reason": "error" }],
        });
        let spec = ErrorKind::UpstreamStreamInterrupted.spec();
        let error = serde_json::json!({
            "error": { "message": message, "type": spec.r#type, "param": null, "code": spec.code }
        });
        self.out.push_back(sse::data_event(&chunk.to_string()));
        self.out.push_back(sse::data_event(&error.to_string()));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // a stream that ended is charged what it reported, or the estimate; one cut short
        // without a report is charged by the reservation itself as a request with its prompt
        if let Some(reservation) = self.reservation.take()
            && (self.ended || self.tracker.usage.is_some())
        {
            let estimate = reservation.estimate();
            reservation.settle(super::cost::actual(self.tracker.usage.as_ref(), estimate));
        }
        if let Some(x) = self.exchange.take() {
            let outcome = if self.ended { self.outcome } else { Outcome::ClientGone };
            x.stream_ended(self.tracker.usage.clone(), self.first_byte, outcome, self.error);
        }
        if let Some(mut r) = self.record.take() {
            r.usage = self.tracker.usage.take();
            r.outcome = self.outcome;
            r.latency = self.started.elapsed();
            r.first_byte = self.first_byte;
            r.error = self.error;
            // a stream dropped before it ended: the client went away
            if !self.ended {
                r.outcome = Outcome::ClientGone;
            }
            self.sink.record(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream stream: each part after its delay; `None` = the connection breaks.
    fn upstream(parts: Vec<(u64, Option<&'static str>)>) -> reqwest::Response {
        let stream = futures_util::stream::unfold(parts.into_iter(), |mut parts| async move {
            let (delay, part) = parts.next()?;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let item: Result<Bytes, std::io::Error> = match part {
                Some(text) => Ok(Bytes::from_static(text.as_bytes())),
                None => Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset")),
            };
            Some((item, parts))
        });
        reqwest::Response::from(http::Response::new(reqwest::Body::wrap_stream(stream)))
    }

    const BOUNDS: StreamBounds =
        StreamBounds { max_event_bytes: 4096, max_stream_bytes: 64 * 1024, first_event: Duration::from_secs(30) };

    fn relay(parts: Vec<(u64, Option<&'static str>)>) -> Relay {
        relay_with(parts, BOUNDS, Arc::default())
    }

    fn relay_with(parts: Vec<(u64, Option<&'static str>)>, bounds: StreamBounds, secrets: Arc<SecretSet>) -> Relay {
        let info = RelayInfo {
            provider: "p".into(),
            model: "m".into(),
            account: "a".into(),
            client_wants_usage: false,
            started: Instant::now(),
            idle_timeout: Duration::from_secs(60),
            bounds,
            secrets,
            client: crate::principal::Principal::Anyone,
            metrics: ProviderMetrics::detached("p"),
        };
        Relay::new(upstream(parts), wit::StreamFraming::Sse, None, info, UsageSink::start(None, None))
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    const CHUNK: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n";

    #[tokio::test(start_paused = true)]
    async fn an_error_before_the_first_event_fails_the_attempt_so_the_next_candidate_can_serve() {
        let mut r = relay(vec![(5_000, Some("data: {\"error\":{\"message\":\"overloaded\"}}\n\n"))]);
        let e = r.prime().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::UpstreamStreamInterrupted);
        assert!(e.retryable(), "nothing reached the client: dispatch may fall back");
        let mut r = relay(vec![(5_000, None)]);
        assert!(r.prime().await.is_err(), "a connection broken before the first event, too");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_after_the_first_byte_ends_with_an_error_chunk_and_event_never_a_clean_end() {
        let mut r = relay(vec![(10, Some(CHUNK)), (30_000, None)]);
        r.prime().await.unwrap();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 3, "{text}");
        assert!(events[0].contains("\"content\":\"Hi\""));
        assert!(events[1].contains("\"finish_reason\":\"error\""), "{}", events[1]);
        assert!(events[2].contains("\"code\":\"upstream_stream_interrupted\""), "{}", events[2]);
        assert!(!text.contains("[DONE]"), "a broken stream never looks finished");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_of_only_comments_fails_at_the_first_event_deadline() {
        let parts: Vec<(u64, Option<&'static str>)> = (0..1000).map(|_| (1_000, Some(": keep-alive\n\n"))).collect();
        let mut r = relay(parts);
        let started = tokio::time::Instant::now();
        let e = r.prime().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::UpstreamTimeout);
        assert!(e.message.contains("no data event"), "{}", e.message);
        assert!(started.elapsed() <= Duration::from_secs(31), "{:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_larger_than_its_bound_fails_the_stream() {
        // one endless event, never terminated
        let huge = leak(format!("data: {}", "x".repeat(1000)));
        let mut r = relay((0..10).map(|_| (1, Some(huge))).collect());
        let e = r.prime().await.unwrap_err();
        assert!(e.message.contains("event larger than 4096 bytes"), "{}", e.message);
        // and a whole one that is too big
        let whole = leak(format!("data: {{\"x\":\"{}\"}}\n\n", "y".repeat(5000)));
        let mut r = relay(vec![(1, Some(whole))]);
        assert!(r.prime().await.unwrap_err().message.contains("event larger than"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_larger_than_its_bound_ends_with_an_error_event() {
        let mut parts = vec![(1, Some(CHUNK))];
        parts.extend((0..1000).map(|_| (1, Some(CHUNK))));
        let mut r = relay(parts);
        r.prime().await.unwrap();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("stream larger than 65536 bytes"), "{}", &text[text.len().saturating_sub(400)..]);
        assert!(!text.contains("[DONE]"));
    }

    #[tokio::test(start_paused = true)]
    async fn secrets_in_stream_events_never_reach_the_client() {
        let secrets = Arc::new(SecretSet::default());
        secrets.replace(vec![crate::config::SecretString::new("sk-echoed-0123456789abcdef")]);
        let echo = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"your key is sk-echoed-0123456789abcdef\"},\"finish_reason\":null}]}\n\n";
        let mut r = relay_with(vec![(1, Some(echo)), (1, Some("data: [DONE]\n\n"))], BOUNDS, secrets);
        r.prime().await.unwrap();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("your key is [redacted]"), "{text}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_clean_stream_passes_through_event_by_event() {
        let mut r = relay(vec![(10, Some(CHUNK)), (2_000, Some(CHUNK)), (10, Some("data: [DONE]\n\n"))]);
        r.prime().await.unwrap();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(text.matches("\"content\":\"Hi\"").count(), 2);
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
}
