//! One attempt on one candidate: a fresh instance of the provider component plans the upstream
//! call; the host checks the URL against the component's allowed hosts, attaches the
//! credential, sends, hands error responses back to the component to type them, and relays the
//! answer as JSON or as a stream. The walk over candidates (`dispatch`) and the hedge race both
//! run attempts through here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;

use super::context::{RequestCtx, Services};
use super::limit;
use super::route::Candidate;
use super::stream::{Relay, RelayInfo};
use crate::bindings::wit;
use crate::egress;
use crate::errors::{ErrorKind, GatewayError};
use crate::quota::{Ledger, Reservation};
use crate::registry::ProviderEntry;
use crate::registry::ProviderSlot;
use crate::runtime::ProviderLease;
use crate::telemetry::trace;
use crate::upstream::transport_error;
use crate::wire::chat::{Edit, UpstreamBody};
use crate::wire::types::{CompletionPeek, Usage};
use tracing::Instrument as _;

/// Largest upstream error body read (and shown to the provider component).
pub(super) const MAX_ERROR_BODY: usize = 64 * 1024;

/// A candidate cleared to be sent: its quota reserved, its account claimed, a slot of its
/// provider's in-flight bound taken.
pub struct Ready<'c> {
    pub cand: &'c Candidate,
    pub reservation: Option<Reservation>,
    /// held until the answer is read (a stream takes it along)
    pub slot: Option<ProviderSlot>,
    /// the attempt passed a legacy completions request through: its answer is a
    /// `text_completion` already
    pub legacy: bool,
}

/// What an attempt that succeeded hands back: a whole JSON body, or a stream being relayed.
pub(super) enum Reply {
    Json { body: Bytes, usage: Option<Usage> },
    Stream(Box<Relay>),
}

pub(super) fn guest_failed(p: &ProviderEntry) -> impl Fn(crate::runtime::GuestFailure) -> GatewayError + '_ {
    move |f| f.into_gateway(&p.id)
}

/// A provider error typed by the component -> a gateway error, its message scrubbed of the
/// account's secret.
pub(super) fn provider_error(e: wit::ProviderError, cand: &Candidate) -> GatewayError {
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
pub(super) fn header_pairs(headers: &HeaderMap, cand: &Candidate, only: Option<&[String]>) -> Vec<(String, String)> {
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
pub(super) async fn read_body(resp: reqwest::Response, cap: usize, provider: &str) -> Result<Bytes, GatewayError> {
    egress::read_capped(resp, cap).await.map_err(|e| match e {
        egress::ReadError::TooLarge => GatewayError::new(
            ErrorKind::UpstreamInvalidResponse,
            format!("provider '{provider}' sent a response larger than {cap} bytes"),
        ),
        egress::ReadError::Transport(e) => transport_error(e, provider),
    })
}

/// A planned call the egress policy refused, as the request's error.
pub(super) fn refused(p: &ProviderEntry, r: &egress::Refusal) -> GatewayError {
    match r {
        // the provider itself is somewhere the gateway never goes: nothing the component did
        egress::Refusal::Forbidden { .. } | egress::Refusal::OutsideEgress { .. } => {
            GatewayError::new(ErrorKind::UpstreamUnreachable, format!("provider '{}' planned {}", p.id, r.describe()))
                .with_provider(&p.id)
        }
        egress::Refusal::NotAllowed { .. } => GatewayError::new(
            ErrorKind::ComponentDenied,
            format!("component '{}' planned {} for provider '{}'", p.component.name, r.describe(), p.id),
        )
        .with_provider(&p.id),
        egress::Refusal::Credential(e) => e.clone(),
        _ => component_error(p, format!("planned {}", r.describe())),
    }
}

/// The request's provider instance: the one it holds, or a warm one leased now.
pub(super) async fn instance<'l>(
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
pub(super) fn limit_headers(cand: &Candidate, headers: &HeaderMap) -> Option<Vec<(String, String)>> {
    let p = &cand.route.provider;
    let prefixes = &p.component.manifest.limit_headers;
    let pairs = if prefixes.is_empty() { Vec::new() } else { header_pairs(headers, cand, Some(prefixes)) };
    (!pairs.is_empty() || p.poll_limits).then_some(pairs)
}

/// Let the component read what the upstream said about the account's quota.
pub(super) async fn note_limits(
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
pub(super) fn note_limits_later(ledger: &Arc<Ledger>, cand: &Candidate, status: u16, headers: &HeaderMap) {
    let Some(pairs) = limit_headers(cand, headers) else { return };
    let cand = cand.clone();
    let ledger = ledger.clone();
    tokio::spawn(async move {
        let mut lease = None;
        if let Err(e) = note_limits(&ledger, &mut lease, &cand, status, &pairs, None).await {
            tracing::warn!(provider = %cand.route.provider.id, "reading rate limits failed: {}", e.message);
        }
    });
}

/// One attempt on `ready`'s candidate: its reply, and the time it spent waiting for the upstream
/// (sending, reading the answer, priming a stream). A stream takes the reservation and the
/// provider slot along; otherwise they stay in `ready` for the walk to settle.
pub(super) async fn attempt(ctx: &RequestCtx<'_>, ready: &mut Ready<'_>) -> (Result<Reply, GatewayError>, Duration) {
    let mut waited = Duration::ZERO;
    let cand = ready.cand;
    let span = trace::attempt(&cand.route.provider.id, &cand.route.model, &cand.account.label);
    let result = run(ctx, ready, &mut waited).instrument(span.clone()).await;
    trace::finish_attempt(&span, result.as_ref().err().map(|e| (e.kind.spec().code, e.retryable())));
    (result, waited)
}

/// A legacy completions request to a provider that still serves `/completions`, through an
/// OpenAI-format component that sends the chat body: the chat URL's `/chat/completions` ->
/// `/completions`, and the client's own body with the candidate's model (and usage asked for).
fn legacy_call(
    ctx: &RequestCtx<'_>,
    p: &ProviderEntry,
    model: &str,
    call: &wit::UpstreamCall,
) -> Option<(String, Bytes)> {
    let original = ctx.legacy.as_ref().filter(|_| p.legacy_completions)?;
    if call.response != wit::ResponseFormat::Openai || !matches!(call.body, wit::RequestBody::Passthrough(_)) {
        return None;
    }
    let at = call.url.rfind("/chat/completions")?;
    let url = format!("{}/completions{}", &call.url[..at], &call.url[at + "/chat/completions".len()..]);
    let mut body: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(original).ok()?;
    body.insert("model".into(), model.into());
    if ctx.req.stream {
        let options = body.entry("stream_options").or_insert_with(|| serde_json::json!({}));
        if let Some(o) = options.as_object_mut() {
            o.insert("include_usage".into(), true.into());
        }
    }
    Some((url, Bytes::from(serde_json::to_vec(&body).ok()?)))
}

/// Send a planned call: the reservation marked sent and the wait counted. An error status is
/// read (bounded), scrubbed of the account's secret, its limits noted, and typed by the
/// component; a success has its limit headers noted off the request path.
pub(super) async fn send(
    app: Services<'_>,
    ready: &mut Ready<'_>,
    lease: &mut Option<ProviderLease>,
    builder: reqwest::RequestBuilder,
    waited: &mut Duration,
) -> Result<reqwest::Response, GatewayError> {
    let cand = ready.cand;
    let p = &cand.route.provider;
    if let Some(r) = ready.reservation.as_mut() {
        r.mark_sent();
    }
    let sent = Instant::now();
    let resp = builder.send().await;
    *waited += sent.elapsed();
    let resp = resp.map_err(|e| transport_error(e, &p.id))?;
    let status = resp.status();
    if !status.is_success() {
        let resp_headers = resp.headers().clone();
        let t = Instant::now();
        let body = read_body(resp, MAX_ERROR_BODY, &p.id).await;
        *waited += t.elapsed();
        let body = body.unwrap_or_default();
        let text = p.io.secrets.scrub(&String::from_utf8_lossy(&body)).into_owned();
        let pairs = limit_headers(cand, &resp_headers).unwrap_or_default();
        note_limits(app.ledger, lease, cand, status.as_u16(), &pairs, Some(&text)).await?;
        let pairs = header_pairs(&resp_headers, cand, None);
        let typed = instance(lease, cand)
            .await?
            .map_error(&p.wit_config, status.as_u16(), &pairs, &text)
            .await
            .map_err(guest_failed(p))?;
        return Err(provider_error(typed, cand));
    }
    note_limits_later(app.ledger, cand, status.as_u16(), resp.headers());
    Ok(resp)
}

async fn run(ctx: &RequestCtx<'_>, ready: &mut Ready<'_>, waited: &mut Duration) -> Result<Reply, GatewayError> {
    let (app, req, cand) = (ctx.services, ctx.req, ready.cand);
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

    let sender = egress::Sender {
        allowed: &p.io.allowed,
        http: app.http,
        auth: &p.io.auth,
        secret: cand.account.secret.as_ref(),
    };
    let legacy = legacy_call(ctx, p, model, &call);
    ready.legacy = legacy.is_some();
    let url = legacy.as_ref().map_or(call.url.as_str(), |(url, _)| url.as_str());
    let out = egress::prepare(&sender, url, &call.method, &call.headers).map_err(|r| refused(p, &r))?;
    let body: Bytes = if let Some((_, body)) = legacy {
        body
    } else {
        match &call.body {
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
        }
    };

    let mut builder = app.http.client().request(out.method, out.url).headers(out.headers).body(body);
    if !req.stream {
        builder = builder.timeout(app.http.request_timeout);
    }
    let resp = send(app, ready, &mut lease, builder, waited).await?;

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
            started: ctx.started,
            idle_timeout: app.http.idle_timeout,
            bounds: app.http.stream_bounds,
            secrets: p.io.secrets.clone(),
            client: ctx.principal.clone(),
            metrics: p.metrics.clone(),
        };
        let mut relay = Relay::new(resp, call.framing, translator, info, app.usage.clone());
        let t = Instant::now();
        let primed = relay.prime().await;
        *waited += t.elapsed();
        primed?;
        if let Some(r) = ready.reservation.take() {
            relay.settle_with(r);
        }
        relay.hold(ready.slot.take());
        return Ok(Reply::Stream(Box::new(relay)));
    }

    let t = Instant::now();
    let body = read_body(resp, app.http.max_response_bytes, &p.id).await;
    *waited += t.elapsed();
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
