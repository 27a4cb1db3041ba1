//! Cache: an identical request answered from the response stored for it
//! ([`crate::cache`]), without a provider, a quota reservation or an upstream call.
//!
//! - **When**: `[cache] enabled = true`, or `[[routes]] cache = true` for the name asked for
//!   (`cache = false` there turns it off for that name); with `only_deterministic` (the
//!   default) only requests asking for a repeatable answer: `temperature` 0 or a `seed`.
//! - **Key**: SHA-256 of the client's scope (a hash of its client key; every client is one
//!   scope when no keys are configured) and the request as it reaches a provider: the model
//!   after aliases (the `provider/model` list the name routes to; a policy route by its name),
//!   then every other top-level field with object keys sorted and numbers normalised (`0` and
//!   `0.0` are one), so the order a client writes its JSON in does not matter. `stream` and
//!   `stream_options` count (a stream is stored as a stream); `user`, `metadata` and `store`
//!   do not (they do not change the answer).
//! - **Cache-Control** (request): `no-store` neither reads nor writes; `no-cache` does not read
//!   but stores the fresh answer (it refreshes the entry). Both answer `bypass`.
//! - **Header**: `x-freeway-cache: hit | miss | bypass` on every answer to a request the
//!   cache is on for (not on errors); counted in `freeway_cache_requests_total{result}`.
//! - **What is stored**: a JSON answer that succeeded; a stream's events exactly as they were
//!   relayed, one chunk each, recorded while the client receives them (never buffered in front
//!   of it), stored only when the stream ended cleanly (`[DONE]`) within `max_entry_bytes`
//!   (past it the recording is dropped). A hit replays them with the same chunking, at once.
//! - **A hit** spends no quota: its usage record says `cache_read` and carries the tokens the
//!   stored answer took (what the hit saved), the provider and model that produced it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderName, HeaderValue, StatusCode, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::context::RequestCtx;
pub use crate::cache::Directives;
use crate::cache::{Entry, ResponseCache, Stored};
use crate::principal::Principal;
use crate::registry::Snapshot;
use crate::usage::{Outcome, UsageRecord};
use crate::wire::chat::ChatBody;
use crate::wire::types::{ChunkPeek, Usage};

pub const HEADER: HeaderName = HeaderName::from_static("x-freeway-cache");

/// Top-level fields that do not change the answer.
const IGNORED: [&str; 4] = ["model", "user", "metadata", "store"];

/// What the cache did for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Hit,
    Miss,
    Bypass,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Hit => "hit",
            Verdict::Miss => "miss",
            Verdict::Bypass => "bypass",
        }
    }
}

/// What the cache does for one request.
pub struct Plan {
    key: String,
    /// model names purging by model matches
    tags: Vec<String>,
    read: bool,
    write: bool,
    ttl: Duration,
    max_entry_bytes: usize,
}

/// Whether the cache is on for requests asking for `model`.
fn enabled(snapshot: &Snapshot, model: &str) -> bool {
    let config = &snapshot.config;
    config.routes.iter().find(|r| r.model == model).and_then(|r| r.cache).unwrap_or(config.cache.enabled)
}

/// Whether the request asks for a repeatable answer: `temperature` 0 or a `seed`.
pub fn deterministic(req: &ChatBody<'_>) -> bool {
    let zero = req.get("temperature").and_then(|v| serde_json::from_str::<f64>(v.get()).ok()).is_some_and(|t| t == 0.0);
    let seeded = req.get("seed").is_some_and(|v| v.get().trim() != "null");
    zero || seeded
}

/// The plan for a request (`None`: the cache is off for it, and says nothing).
pub fn plan(ctx: &RequestCtx<'_>, directives: Directives) -> Option<Plan> {
    let snapshot = ctx.snapshot;
    let req = ctx.req;
    if !enabled(snapshot, &req.model) {
        return None;
    }
    let config = &snapshot.config.cache;
    let cacheable = !config.only_deterministic || deterministic(req);
    let read = cacheable && !directives.no_cache && !directives.no_store;
    let write = cacheable && !directives.no_store;
    let (model, tags) = model_identity(snapshot, &req.model);
    let scope = scope(&ctx.principal, snapshot);
    // bounded by the body's size limits; a large body is hashed off the async worker
    let size = req.messages.get().len();
    let key = if write || read { crate::cpu::run(size, || key(&scope, &model, req)) } else { String::new() };
    Some(Plan {
        key,
        tags,
        read,
        write,
        ttl: Duration::from_secs(config.ttl_seconds.max(1)),
        max_entry_bytes: config.max_entry_bytes,
    })
}

/// The model as the cache keys it (after aliases) and the names purging by model matches.
fn model_identity(snapshot: &Snapshot, model: &str) -> (String, Vec<String>) {
    let mut tags = vec![model.to_owned()];
    if super::decide::policy_route(snapshot, model).is_some() {
        return (format!("policy:{model}"), tags);
    }
    let Some(routes) = snapshot.routes(model) else { return (format!("name:{model}"), tags) };
    let mut ids = Vec::with_capacity(routes.len());
    for r in routes {
        let full = format!("{}/{}", r.provider.id, r.model);
        for t in [r.model.clone(), full.clone()] {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        ids.push(full);
    }
    (format!("routes:{}", ids.join(",")), tags)
}

/// The client's scope: a hash of its static key (so reordering `[server] api_keys` never hands
/// one client another's answers), a virtual key's id (the same across rotations), or `anyone`.
fn scope(principal: &Principal, snapshot: &Snapshot) -> String {
    if let Some(k) = principal.virtual_key() {
        return format!("vk:{}", k.id);
    }
    match principal.key(&snapshot.config.server) {
        Some(k) => hex::encode(Sha256::digest(k.expose().as_bytes())),
        None => "anyone".to_owned(),
    }
}

/// The cache key: the scope, the model after aliases and the normalised body.
pub fn key(scope: &str, model: &str, req: &ChatBody<'_>) -> String {
    let mut fields: Vec<(&str, Value)> = req
        .keys()
        .filter(|k| !IGNORED.contains(k))
        .filter_map(|k| Some((k, serde_json::from_str::<Value>(req.get(k)?.get()).ok()?)))
        .collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    h.update(b"freeway-cache-v1\0");
    h.update(scope.as_bytes());
    h.update(b"\0");
    h.update(model.as_bytes());
    h.update(b"\0");
    let mut out = String::new();
    for (k, v) in &fields {
        canonical(&Value::String((*k).to_owned()), &mut out);
        out.push(':');
        canonical(v, &mut out);
        out.push(',');
    }
    h.update(out.as_bytes());
    hex::encode(h.finalize())
}

/// JSON with object keys sorted and integral numbers written as integers.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => out.push_str(&format!("{}", f as i64)),
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

impl Plan {
    /// The stored answer, if the plan reads and there is one of the request's kind.
    pub async fn lookup(&self, cache: &ResponseCache, stream: bool) -> Option<Arc<Entry>> {
        if !self.read {
            return None;
        }
        let hit = cache.get(&self.key).await?;
        (matches!(hit.stored, Stored::Stream(_)) == stream).then_some(hit)
    }

    /// What the cache says of a request it did not answer.
    pub fn verdict(&self) -> Verdict {
        if self.read { Verdict::Miss } else { Verdict::Bypass }
    }

    /// The response dispatch produced, with its `x-freeway-cache` header, teed into the cache
    /// when the plan writes: a JSON answer now, a stream as it is relayed.
    pub async fn keep(self, ctx: &RequestCtx<'_>, cache: &Arc<ResponseCache>, response: Response) -> Response {
        let verdict = self.verdict();
        ctx.exchange.cache(verdict.as_str());
        ctx.services.metrics.cache(verdict.as_str());
        let (mut parts, body) = response.into_parts();
        parts.headers.insert(HEADER, HeaderValue::from_static(verdict.as_str()));
        // a passed-through legacy answer is not a chat answer: it is not what a hit replays
        let legacy = parts.extensions.get::<super::dispatch::LegacyAnswer>().is_some();
        if !self.write || legacy || parts.status != StatusCode::OK {
            return Response::from_parts(parts, body);
        }
        let stream = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if stream {
            let tee = Tee::new(body, self, cache.clone(), ctx.exchange.clone());
            return Response::from_parts(parts, Body::new(tee));
        }
        // a JSON reply is already whole in memory
        if body.size_hint().exact().is_none_or(|n| n > self.max_entry_bytes as u64) {
            return Response::from_parts(parts, body);
        }
        let Ok(bytes) = axum::body::to_bytes(body, self.max_entry_bytes).await else {
            return Response::from_parts(parts, Body::empty());
        };
        let (provider, model, usage) = ctx.exchange.answered().unwrap_or_default();
        let entry = self.entry(Stored::Json(bytes.clone()), provider, model, usage);
        cache.put(self.key, entry, self.ttl).await;
        Response::from_parts(parts, Body::from(bytes))
    }

    fn entry(&self, stored: Stored, provider: String, model: String, usage: Option<Usage>) -> Entry {
        let mut tags = self.tags.clone();
        for t in [model.clone(), format!("{provider}/{model}")] {
            if !model.is_empty() && !tags.contains(&t) {
                tags.push(t);
            }
        }
        Entry { stored, provider, model, usage, tags }
    }
}

/// Answer from a stored response: no route, no quota, no upstream call.
pub fn hit(ctx: &RequestCtx<'_>, entry: &Entry) -> Response {
    let stream = matches!(entry.stored, Stored::Stream(_));
    ctx.exchange.cache(Verdict::Hit.as_str());
    ctx.exchange.cached_usage(entry.usage.as_ref());
    ctx.services.metrics.cache(Verdict::Hit.as_str());
    ctx.services.usage.record(UsageRecord {
        at: SystemTime::now(),
        provider: entry.provider.clone(),
        model: entry.model.clone(),
        account: String::new(),
        usage: entry.usage.clone(),
        outcome: Outcome::Ok,
        stream,
        attempts: 0,
        latency: ctx.started.elapsed(),
        first_byte: None,
        client: ctx.principal.clone(),
        error: None,
        policy: None,
        cache_read: true,
    });
    let builder = Response::builder().status(StatusCode::OK).header(HEADER, Verdict::Hit.as_str());
    let response = match &entry.stored {
        Stored::Json(b) => builder.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.clone())),
        Stored::Stream(parts) => {
            let parts: Vec<Result<Bytes, std::io::Error>> = parts.iter().cloned().map(Ok).collect();
            builder
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .header("x-accel-buffering", "no")
                .body(Body::from_stream(futures_util::stream::iter(parts)))
        }
    };
    response.unwrap_or_else(|_| Response::new(Body::empty()))
}

/// A stream's body on its way to the client, recorded chunk by chunk; when its `[DONE]` event
/// comes (a clean end) the recording is stored before that last event is passed on, so a client
/// that has read the whole stream finds it in the cache.
struct Tee {
    inner: Body,
    plan: Option<Plan>,
    cache: Arc<ResponseCache>,
    exchange: Arc<super::Exchange>,
    recorded: Vec<Bytes>,
    bytes: usize,
    /// the store in progress, and the frame held back until it is done
    storing: Option<(BoxFuture<'static, ()>, Frame<Bytes>)>,
}

impl Tee {
    fn new(inner: Body, plan: Plan, cache: Arc<ResponseCache>, exchange: Arc<super::Exchange>) -> Self {
        Self { inner, plan: Some(plan), cache, exchange, recorded: Vec::new(), bytes: 0, storing: None }
    }

    /// Record `data`; the store to run when it ends the stream cleanly.
    fn record(&mut self, data: &Bytes) -> Option<BoxFuture<'static, ()>> {
        let plan = self.plan.as_ref()?;
        self.bytes = self.bytes.saturating_add(data.len());
        if self.bytes > plan.max_entry_bytes {
            self.plan = None;
            self.recorded = Vec::new();
            return None;
        }
        self.recorded.push(data.clone());
        if !is_done(data) {
            return None;
        }
        let plan = self.plan.take()?;
        let parts = std::mem::take(&mut self.recorded);
        let usage = stream_usage(&parts);
        let (provider, model, _) = self.exchange.answered().unwrap_or_default();
        let entry = plan.entry(Stored::Stream(parts), provider, model, usage);
        let cache = self.cache.clone();
        Some(Box::pin(async move { cache.put(plan.key, entry, plan.ttl).await }))
    }
}

fn is_done(event: &[u8]) -> bool {
    let text = String::from_utf8_lossy(event);
    text.lines().any(|l| l.strip_prefix("data:").is_some_and(|d| d.trim() == "[DONE]"))
}

/// The usage a stream reported (its usage chunk, when the client asked for one).
fn stream_usage(parts: &[Bytes]) -> Option<Usage> {
    parts.iter().rev().take(4).find_map(|p| {
        let text = std::str::from_utf8(p).ok()?;
        let data = text.lines().find_map(|l| l.strip_prefix("data:"))?.trim();
        serde_json::from_str::<ChunkPeek<'_>>(data).ok()?.usage
    })
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Some((store, _)) = this.storing.as_mut() {
            if store.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let held = this.storing.take().map(|(_, frame)| frame);
            return Poll::Ready(held.map(Ok));
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && let Some(mut store) = this.record(data)
        {
            let Poll::Ready(Some(Ok(frame))) = polled else { return Poll::Ready(None) };
            if store.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Ok(frame)));
            }
            this.storing = Some((store, frame));
            return Poll::Pending;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.storing.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(body: &str) -> String {
        let req = ChatBody::parse(body.as_bytes()).unwrap();
        key("anyone", "routes:p/m", &req)
    }

    const MSG: &str = r#"[{"role":"user","content":"hi"}]"#;

    #[test]
    fn the_key_ignores_field_order_spacing_and_number_spelling() {
        let a = k(&format!(
            r#"{{"model":"m","messages":{MSG},"temperature":0,"response_format":{{"type":"json_object","x":1}}}}"#
        ));
        let b = k(&format!(
            r#"{{ "temperature": 0.0, "response_format": {{"x":1.0, "type":"json_object"}}, "messages": {MSG}, "model": "m" }}"#
        ));
        assert_eq!(a, b);
    }

    #[test]
    fn the_key_changes_with_what_changes_the_answer() {
        let base = k(&format!(r#"{{"model":"m","messages":{MSG},"temperature":0}}"#));
        for other in [
            format!(r#"{{"model":"m","messages":{MSG},"temperature":0.5}}"#),
            r#"{"model":"m","messages":[{"role":"user","content":"hello"}],"temperature":0}"#.to_owned(),
            format!(r#"{{"model":"m","messages":{MSG},"temperature":0,"stream":true}}"#),
            format!(
                r#"{{"model":"m","messages":{MSG},"temperature":0,"tools":[{{"type":"function","function":{{"name":"f"}}}}]}}"#
            ),
            format!(r#"{{"model":"m","messages":{MSG},"temperature":0,"max_tokens":5}}"#),
        ] {
            assert_ne!(base, k(&other), "{other}");
        }
        // but not with what does not
        assert_eq!(
            base,
            k(&format!(r#"{{"model":"other","messages":{MSG},"temperature":0,"user":"u1","metadata":{{"a":"b"}}}}"#))
        );
    }

    #[test]
    fn the_key_is_scoped_per_client_and_per_resolved_model() {
        let body = format!(r#"{{"model":"m","messages":{MSG},"temperature":0}}"#);
        let req = ChatBody::parse(body.as_bytes()).unwrap();
        let a = key("anyone", "routes:p/m", &req);
        assert_ne!(a, key("client-b", "routes:p/m", &req));
        assert_ne!(a, key("anyone", "routes:q/m", &req));
    }

    #[test]
    fn only_temperature_zero_or_a_seed_is_deterministic() {
        let det = |extra: &str| {
            let body = format!(r#"{{"model":"m","messages":{MSG}{extra}}}"#);
            deterministic(&ChatBody::parse(body.as_bytes()).unwrap())
        };
        assert!(det(r#","temperature":0"#));
        assert!(det(r#","temperature":0.0"#));
        assert!(det(r#","seed":7,"temperature":1"#));
        assert!(!det(""));
        assert!(!det(r#","temperature":0.2"#));
        assert!(!det(r#","seed":null"#));
    }

    #[test]
    fn cache_control_directives_are_read_case_insensitively_from_every_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(Directives::from_headers(&h), Directives::default());
        h.append(header::CACHE_CONTROL, HeaderValue::from_static("max-age=0, No-Cache"));
        h.append(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        assert_eq!(Directives::from_headers(&h), Directives { no_cache: true, no_store: true });
    }

    #[test]
    fn a_done_event_is_recognised_and_a_stream_s_usage_read() {
        assert!(is_done(b"data: [DONE]\n\n"));
        assert!(!is_done(b"data: {\"x\":\"[DONE]\"}\n\n"));
        let parts = vec![
            Bytes::from_static(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5}}\n\n"),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ];
        assert_eq!(stream_usage(&parts).map(|u| u.completion_tokens), Some(3));
    }

    #[tokio::test]
    async fn a_stream_is_stored_when_it_ends_cleanly_before_its_last_event_is_passed_on() {
        let cache = Arc::new(ResponseCache::in_memory(1 << 20, Duration::from_secs(60)));
        let events = ["data: {\"a\":1}\n\n", ": keep-alive\n\n", "data: {\"a\":2}\n\n", "data: [DONE]\n\n"];
        let tee = |max: usize, events: Vec<&'static str>| {
            let plan = Plan {
                key: "k".into(),
                tags: vec![],
                read: true,
                write: true,
                ttl: Duration::from_secs(60),
                max_entry_bytes: max,
            };
            let stream =
                futures_util::stream::iter(events.into_iter().map(|e| Ok::<_, std::io::Error>(Bytes::from(e))));
            Body::new(Tee::new(Body::from_stream(stream), plan, cache.clone(), super::super::Exchange::detached()))
        };
        let body = axum::body::to_bytes(tee(1 << 20, events.to_vec()), usize::MAX).await.unwrap();
        assert_eq!(body, events.concat());
        let stored = cache.get("k").await.expect("stored");
        assert_eq!(stored.stored, Stored::Stream(events.iter().map(|e| Bytes::from(*e)).collect()));
        // past the bound: nothing stored; a stream cut short: nothing stored
        cache.purge(None).await.unwrap();
        axum::body::to_bytes(tee(20, events.to_vec()), usize::MAX).await.unwrap();
        axum::body::to_bytes(tee(1 << 20, events[..3].to_vec()), usize::MAX).await.unwrap();
        assert!(cache.get("k").await.is_none());
    }
}
