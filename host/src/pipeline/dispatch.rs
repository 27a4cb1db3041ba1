//! Dispatch: try candidates in order until one answers. Per attempt, a fresh instance of the
//! provider component plans the upstream call; the host checks the URL against the component's
//! allowed hosts, attaches the credential, sends, and hands error responses back to the
//! component to type them. Retryable failures move on to the next candidate as long as nothing
//! has reached the client.

use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use url::Url;

use super::account::{Outcome, UsageRecord};
use super::classify::Needs;
use super::limit;
use super::route::Candidate;
use super::stream::{Relay, RelayInfo};
use super::walk::{Ready, Walk};
use crate::app::App;
use crate::errors::{ErrorKind, GatewayError};
use crate::registry::{ProviderEntry, Snapshot};
use crate::runtime::ProviderLease;
use crate::runtime::bindings::wit;
use crate::upstream::{attach_auth, forbidden_header, transport_error};
use crate::wire::chat::{ChatBody, Edit, UpstreamBody};
use crate::wire::types::{CompletionPeek, Usage};

/// Largest upstream error body read (and shown to the provider component).
const MAX_ERROR_BODY: usize = 64 * 1024;

pub(super) enum Reply {
    Json { body: Bytes, usage: Option<Usage> },
    Stream(Box<Relay>),
}

/// Try the candidates; the response of the first that answers. On a hedged route the first
/// attempt races a second one once it is slower than its usual time to first byte.
pub async fn run(
    app: &App,
    snapshot: &Snapshot,
    req: &ChatBody<'_>,
    needs: &Needs,
    candidates: &[Candidate],
    started: Instant,
    policy: Option<&str>,
) -> Result<Response, GatewayError> {
    let mut walk = Walk::new(snapshot, candidates);
    let hedged = snapshot.hedged(&req.model);
    let mut upstream_wait = Duration::ZERO;
    while let Some(ready) = walk.next(app, req, needs).await {
        let delay = if hedged && walk.sent == 1 {
            app.stats.p95(&ready.cand.route.provider.id, &ready.cand.route.model)
        } else {
            None
        };
        let won = match delay {
            Some(delay) => {
                super::hedge::race(app, req, needs, &mut walk, ready, delay, started, &mut upstream_wait).await
            }
            None => single(app, req, &mut walk, ready, started, &mut upstream_wait).await,
        };
        if let Some((mut ready, reply)) = won {
            Walk::succeeded(app, &mut ready, &reply);
            let attempts = u32::try_from(walk.sent).unwrap_or(u32::MAX);
            return Ok(respond(app, reply, ready.cand, attempts, started, upstream_wait, policy));
        }
        if walk.stopped() {
            break;
        }
    }
    Err(walk.finish(app, req, started))
}

/// One attempt on its own; `None` when it failed (the walk has recorded why).
async fn single<'c>(
    app: &App,
    req: &ChatBody<'_>,
    walk: &mut Walk<'c>,
    mut ready: Ready<'c>,
    started: Instant,
    upstream_wait: &mut Duration,
) -> Option<(Ready<'c>, Reply)> {
    let t = Instant::now();
    match attempt(app, req, ready.cand, started, upstream_wait, &mut ready.reservation, &mut ready.slot).await {
        Ok(reply) => {
            app.stats.first_byte(&ready.cand.route.provider.id, &ready.cand.route.model, t.elapsed());
            Some((ready, reply))
        }
        Err(e) => {
            walk.failed(app, ready, e);
            None
        }
    }
}

fn guest_failed(p: &ProviderEntry) -> impl Fn(crate::runtime::GuestFailure) -> GatewayError + '_ {
    move |f| f.into_gateway(&p.id)
}

/// A provider error typed by the component -> a gateway error, its message scrubbed of the
/// account's secret.
fn provider_error(e: wit::ProviderError, cand: &Candidate) -> GatewayError {
    use wit::ErrorKind as K;
    let kind = match e.kind {
        K::BadRequest => ErrorKind::UpstreamBadRequest,
        K::Auth | K::Permission => ErrorKind::UpstreamAuth,
        K::NotFound => ErrorKind::UpstreamNotFound,
        K::PaymentRequired => ErrorKind::UpstreamPaymentRequired,
        K::RateLimited => ErrorKind::UpstreamRateLimited,
        K::QuotaExhausted => ErrorKind::UpstreamQuotaExhausted,
        K::ContextLength => ErrorKind::ContextLengthExceeded,
        K::ContentPolicy => ErrorKind::ContentPolicy,
        K::Upstream => ErrorKind::UpstreamServerError,
        K::Overloaded => ErrorKind::UpstreamOverloaded,
        K::Timeout => ErrorKind::UpstreamTimeout,
        K::InvalidResponse => ErrorKind::UpstreamInvalidResponse,
    };
    let provider = &cand.route.provider.id;
    let message = cand.route.provider.io.secrets.scrub(&e.message);
    let status = if e.status > 0 { format!(" (HTTP {})", e.status) } else { String::new() };
    GatewayError::new(kind, format!("provider '{provider}'{status}: {message}"))
        .with_provider(provider)
        .with_retry_after(e.retry_after_ms.map(Duration::from_millis))
}

fn component_error(p: &ProviderEntry, message: String) -> GatewayError {
    GatewayError::new(
        ErrorKind::ComponentFailed,
        format!("component '{}' for provider '{}': {message}", p.component.name, p.id),
    )
    .with_provider(&p.id)
}

/// Response headers as (lower-case name, value) pairs, secrets scrubbed.
fn header_pairs(headers: &HeaderMap, cand: &Candidate, only: Option<&[String]>) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| {
            only.is_none_or(|prefixes| {
                prefixes.iter().any(|p| k.as_str().starts_with(p.as_str())) || k.as_str() == "retry-after"
            })
        })
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes());
            (k.as_str().to_owned(), cand.route.provider.io.secrets.scrub(&value).into_owned())
        })
        .collect()
}

/// Read a response body up to `cap` bytes.
async fn read_body(resp: reqwest::Response, cap: usize, provider: &str) -> Result<Bytes, GatewayError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(GatewayError::new(
            ErrorKind::UpstreamInvalidResponse,
            format!("provider '{provider}' sent a response larger than {cap} bytes"),
        ));
    }
    let mut buf = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| transport_error(e, provider))?;
        if buf.len() + chunk.len() > cap {
            return Err(GatewayError::new(
                ErrorKind::UpstreamInvalidResponse,
                format!("provider '{provider}' sent a response larger than {cap} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The request's provider instance: the one it holds, or a warm one leased now.
async fn instance<'l>(
    lease: &'l mut Option<ProviderLease>,
    cand: &Candidate,
) -> Result<&'l mut ProviderLease, GatewayError> {
    if lease.is_none() {
        let p = &cand.route.provider;
        *lease =
            Some(p.component.acquire(Some(p.io.clone()), vec![cand.account.clone()]).await.map_err(guest_failed(p))?);
    }
    lease.as_mut().ok_or_else(|| GatewayError::internal("no provider instance"))
}

/// The rate-limit headers worth showing the component, or `None` when there is nothing to read
/// (no matching header, and the provider does not poll its quota).
fn limit_headers(cand: &Candidate, headers: &HeaderMap) -> Option<Vec<(String, String)>> {
    let p = &cand.route.provider;
    let prefixes = &p.component.manifest.limit_headers;
    let pairs = if prefixes.is_empty() { Vec::new() } else { header_pairs(headers, cand, Some(prefixes)) };
    (!pairs.is_empty() || p.poll_limits).then_some(pairs)
}

/// Let the component read what the upstream said about the account's quota.
async fn note_limits(
    ledger: &crate::quota::Ledger,
    lease: &mut Option<ProviderLease>,
    cand: &Candidate,
    status: u16,
    pairs: &Vec<(String, String)>,
    body: Option<&str>,
) -> Result<(), GatewayError> {
    let p = &cand.route.provider;
    let inst = instance(lease, cand).await?;
    match inst.parse_limits(&p.wit_config, 0, status, pairs, body).await {
        Ok(updates) if !updates.is_empty() => {
            limit::observe(ledger, cand, &updates);
            let mut q = cand.account.quota.lock();
            for u in updates.into_iter().take(32) {
                q.retain(|old| !(old.dimension == u.dimension && old.window == u.window && old.scope == u.scope));
                q.push(u);
            }
        }
        Ok(_) => {}
        Err(f) => tracing::warn!(provider = %p.id, "parse-limits failed: {f}"),
    }
    Ok(())
}

/// After a success, read the quota news off the request path.
fn note_limits_later(app: &App, cand: &Candidate, status: u16, headers: &HeaderMap) {
    let Some(pairs) = limit_headers(cand, headers) else { return };
    let cand = cand.clone();
    let ledger = app.ledger.clone();
    tokio::spawn(async move {
        let mut lease = None;
        if let Err(e) = note_limits(&ledger, &mut lease, &cand, status, &pairs, None).await {
            tracing::warn!(provider = %cand.route.provider.id, "reading rate limits failed: {}", e.message);
        }
    });
}

pub(super) async fn attempt(
    app: &App,
    req: &ChatBody<'_>,
    cand: &Candidate,
    started: Instant,
    upstream_wait: &mut Duration,
    reservation: &mut Option<crate::quota::Reservation>,
    slot: &mut Option<crate::registry::ProviderSlot>,
) -> Result<Reply, GatewayError> {
    let p = &cand.route.provider;
    let mut lease: Option<ProviderLease> = None;
    let model = cand.route.model.as_str();
    let chat_req = wit::ChatRequest {
        config: p.wit_config.clone(),
        account: 0,
        model: model.to_owned(),
        streaming: req.stream,
        params: req.keys().map(str::to_owned).collect(),
        body: if p.component.manifest.needs_body { Some(req.to_upstream_string(model)?) } else { None },
    };
    let call = match instance(&mut lease, cand).await?.chat(&chat_req).await.map_err(guest_failed(p))? {
        Ok(call) => call,
        Err(e) => return Err(provider_error(e, cand)),
    };
    if call.response == wit::ResponseFormat::Openai {
        // nothing more for the guest on the success path: back to the pool while upstream works
        lease = None;
    }

    let mut url = Url::parse(&call.url).map_err(|e| component_error(p, format!("planned an invalid URL: {e}")))?;
    if !p.io.allowed.allows(&url) {
        return Err(GatewayError::new(
            ErrorKind::ComponentDenied,
            format!(
                "component '{}' planned a call to {}, which its manifest does not allow for provider '{}'",
                p.component.name,
                url.host_str().unwrap_or("?"),
                p.id
            ),
        )
        .with_provider(&p.id));
    }
    if !app.http.permits(&url) {
        let why = crate::upstream::forbidden_destination(&url).unwrap_or("not in [upstream] egress_hosts");
        return Err(GatewayError::new(
            ErrorKind::UpstreamUnreachable,
            format!("provider '{}' is at {}, which is never reached: {why}", p.id, url.host_str().unwrap_or("?")),
        )
        .with_provider(&p.id));
    }
    let method = Method::from_bytes(call.method.as_bytes())
        .map_err(|_| component_error(p, format!("planned an invalid method {:?}", call.method)))?;
    let mut headers = HeaderMap::with_capacity(call.headers.len() + 1);
    for (k, v) in &call.headers {
        let name = HeaderName::try_from(k.as_str())
            .map_err(|_| component_error(p, format!("planned an invalid header name {k:?}")))?;
        if forbidden_header(&name) {
            continue;
        }
        let value = HeaderValue::try_from(v.as_str())
            .map_err(|_| component_error(p, format!("planned an invalid value for header {k}")))?;
        headers.append(name, value);
    }
    attach_auth(&mut url, &mut headers, &p.io.auth, cand.account.secret.as_ref())?;
    let body: Bytes = match &call.body {
        wit::RequestBody::Passthrough(edits) => {
            let edits: Vec<Edit> = edits
                .iter()
                .map(|e| match e {
                    wit::BodyEdit::Remove(k) => Edit::Remove(k.clone()),
                    wit::BodyEdit::Rename((a, b)) => Edit::Rename(a.clone(), b.clone()),
                    wit::BodyEdit::Set((k, v)) => Edit::Set(k.clone(), v.clone()),
                })
                .collect();
            let inject_usage =
                req.stream && !edits.iter().any(|e| matches!(e, Edit::Remove(k) if k == "stream_options"));
            let mut out = Vec::with_capacity(req.messages.get().len() + 512);
            req.write_upstream(&UpstreamBody { model, inject_usage, edits: &edits }, &mut out)?;
            Bytes::from(out)
        }
        wit::RequestBody::Replace(text) => Bytes::from(text.clone()),
    };

    let mut builder = app.http.client().request(method, url).headers(headers).body(body);
    if !req.stream {
        builder = builder.timeout(app.http.request_timeout);
    }
    let sent = Instant::now();
    let resp = builder.send().await;
    *upstream_wait += sent.elapsed();
    let resp = resp.map_err(|e| transport_error(e, &p.id))?;
    let status = resp.status();

    if !status.is_success() {
        let resp_headers = resp.headers().clone();
        let t = Instant::now();
        let body = read_body(resp, MAX_ERROR_BODY, &p.id).await;
        *upstream_wait += t.elapsed();
        let body = body.unwrap_or_default();
        let text = p.io.secrets.scrub(&String::from_utf8_lossy(&body)).into_owned();
        let pairs = limit_headers(cand, &resp_headers).unwrap_or_default();
        note_limits(&app.ledger, &mut lease, cand, status.as_u16(), &pairs, Some(&text)).await?;
        let pairs = header_pairs(&resp_headers, cand, None);
        let typed = instance(&mut lease, cand)
            .await?
            .map_error(&p.wit_config, status.as_u16(), &pairs, &text)
            .await
            .map_err(guest_failed(p))?;
        return Err(provider_error(typed, cand));
    }
    note_limits_later(app, cand, status.as_u16(), resp.headers());

    if req.stream {
        let translator = match call.response {
            wit::ResponseFormat::Translate => {
                instance(&mut lease, cand).await?;
                lease.take()
            }
            wit::ResponseFormat::Openai => None,
        };
        let info = RelayInfo {
            provider: p.id.clone(),
            model: model.to_owned(),
            account: cand.account.id.clone(),
            client_wants_usage: req.include_usage,
            started,
            idle_timeout: app.http.idle_timeout,
            bounds: app.http.stream_bounds,
            secrets: p.io.secrets.clone(),
        };
        let mut relay = Relay::new(resp, call.framing, translator, info, app.usage.clone());
        let t = Instant::now();
        let primed = relay.prime().await;
        *upstream_wait += t.elapsed();
        primed?;
        if let Some(r) = reservation.take() {
            relay.settle_with(app.ledger.clone(), r);
        }
        relay.hold(slot.take());
        return Ok(Reply::Stream(Box::new(relay)));
    }

    let t = Instant::now();
    let body = read_body(resp, app.http.max_response_bytes, &p.id).await;
    *upstream_wait += t.elapsed();
    // nothing an upstream sends reaches the client (or the component) unscrubbed
    let body = p.io.secrets.scrub_bytes(body?);
    let body = match call.response {
        wit::ResponseFormat::Openai => body,
        wit::ResponseFormat::Translate => {
            let text = std::str::from_utf8(&body).map_err(|_| {
                GatewayError::new(
                    ErrorKind::UpstreamInvalidResponse,
                    format!("provider '{}' answered with invalid UTF-8", p.id),
                )
            })?;
            match instance(&mut lease, cand).await?.translate_response(text).await.map_err(guest_failed(p))? {
                Ok(json) => Bytes::from(json),
                Err(e) => return Err(provider_error(e, cand)),
            }
        }
    };
    let peek: CompletionPeek = serde_json::from_slice(&body).map_err(|e| {
        GatewayError::new(
            ErrorKind::UpstreamInvalidResponse,
            format!("provider '{}' answered with invalid JSON: {e}", p.id),
        )
        .with_provider(&p.id)
    })?;
    if peek.choices.is_none() {
        return Err(GatewayError::new(
            ErrorKind::UpstreamInvalidResponse,
            format!("provider '{}' answered without `choices`", p.id),
        )
        .with_provider(&p.id));
    }
    Ok(Reply::Json { body, usage: peek.usage })
}

fn respond(
    app: &App,
    reply: Reply,
    cand: &Candidate,
    attempts: u32,
    started: Instant,
    upstream_wait: Duration,
    policy: Option<&str>,
) -> Response {
    let overhead = started.elapsed().saturating_sub(upstream_wait);
    let mut route = format!(
        "provider={}; model={}; account={}; attempts={attempts}",
        cand.route.provider.id, cand.route.model, cand.account.label
    );
    if let Some(p) = policy {
        route.push_str("; policy=");
        route.push_str(p);
    }
    let mut builder = Response::builder().status(StatusCode::OK);
    if let Some(h) = builder.headers_mut() {
        if let Ok(v) = HeaderValue::try_from(route) {
            h.insert(HeaderName::from_static("x-freeway-route"), v);
        }
        if let Ok(v) = HeaderValue::try_from(format!("{:.3}", overhead.as_secs_f64() * 1000.0)) {
            h.insert(HeaderName::from_static("x-freeway-overhead-ms"), v);
        }
    }
    let response = match reply {
        Reply::Json { body, usage } => {
            app.usage.record(UsageRecord {
                at: SystemTime::now(),
                provider: cand.route.provider.id.clone(),
                model: cand.route.model.clone(),
                account: cand.account.id.clone(),
                usage,
                outcome: Outcome::Ok,
                // a JSON reply answers a request that did not stream
                stream: false,
                attempts,
                latency: started.elapsed(),
                first_byte: None,
            });
            builder.header(header::CONTENT_TYPE, "application/json").body(Body::from(body))
        }
        Reply::Stream(mut relay) => {
            relay.set_attempts(attempts);
            builder
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .header("x-accel-buffering", "no")
                .body(relay.into_body())
        }
    };
    response.unwrap_or_else(|_| Response::new(Body::empty()))
}
