//! `POST /v1/embeddings`: the second operation, through the same steps as a chat completion
//! where they apply. The body is parsed and bounded ([`crate::wire::embeddings`]); the request
//! is admitted by the gateway's client limits; its candidates are the routes whose model is an
//! embedding model of exactly the requested name (never a fallback chain's other models: another
//! model is another embedding space), each provider's accounts in rotation; the walk reserves the
//! inputs' tokens in each candidate's quota pool and moves on after a retryable failure, as for
//! chat. Each attempt asks the provider component's optional `embeddings` export to plan the
//! call (`embed`), sends it with the credential attached, types error responses with `map-error`
//! and reads the vectors (natively for OpenAI-shaped bodies, else `translate-embeddings`). The
//! host renders the OpenAI response, as floats or base64, and records one usage record.
//!
//! The walk, the quota reservation and the usage record are the chat pipeline's: they read the
//! request through a stand-in chat body whose one message holds the inputs (so the prompt's
//! tokens are counted the same way) and which reserves no output tokens.

use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde_json::{Map, Value};
use tracing::Instrument as _;

use super::attempt::{self, Ready, Reply};
use super::context::{RequestCtx, Services};
use super::exchange::Exchange;
use super::route::{self, Candidate};
use super::walk::Walk;
use crate::bindings::wit;
use crate::egress;
use crate::errors::{ErrorKind, GatewayError};
use crate::principal::Principal;
use crate::registry::{Route, Snapshot};
use crate::runtime::{EmbedRequest, ProviderLease};
use crate::telemetry::trace;
use crate::usage::{Outcome, UsageRecord};
use crate::wire::chat::ChatBody;
use crate::wire::embeddings::{EmbeddingsBody, read_openai, render};
use crate::wire::types::Usage;

/// Serve one embeddings request from an authenticated `client` on `snapshot`.
pub async fn embeddings(
    services: Services<'_>,
    snapshot: &Snapshot,
    client: Principal,
    body: Bytes,
    exchange: &std::sync::Arc<Exchange>,
) -> Result<Response, GatewayError> {
    let started = Instant::now();
    let limits = snapshot.config.server.shape_limits();
    let req = crate::cpu::run(body.len(), || EmbeddingsBody::parse_with(&body, &limits))?;
    exchange.asked(&req.model, false);
    super::route::permitted(&client, &req.model, None)?;
    let stand_in = stand_in(&req);
    let chat = ChatBody::parse_with(&stand_in, &limits)?;
    let mut needs = super::needs::needs(&chat);
    needs.max_tokens = Some(0);
    let ctx = RequestCtx::new(services, snapshot, client, &chat, needs, started, exchange);
    super::admit::admit(&ctx).await?;
    let candidates = candidates(snapshot, &req.model)?;
    let mut walk = Walk::new(&ctx, &candidates);
    while let Some(mut ready) = walk.next(&ctx).await {
        let t = Instant::now();
        let outcome = attempt(&ctx, &mut ready, &req).await;
        if let Some((mut ready, reply)) = walk.conclude(&ctx, ready, outcome, t) {
            walk.succeeded(&ctx, &mut ready, &reply);
            let attempts = u32::try_from(walk.sent).unwrap_or(u32::MAX);
            let Reply::Json { body, usage } = reply else {
                return Err(GatewayError::internal("an embeddings attempt answered with a stream"));
            };
            return Ok(respond(&ctx, body, usage, ready.cand, attempts));
        }
        if walk.stopped() {
            break;
        }
    }
    Err(walk.finish(&ctx))
}

/// The chat body the shared steps read: the inputs as one user message.
fn stand_in(req: &EmbeddingsBody) -> Vec<u8> {
    let body = serde_json::json!({
        "model": req.model,
        "messages": [{ "role": "user", "content": req.input.join("\n") }],
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Whether `route` serves exactly `model` (`model` or `provider/model`).
fn same_model(route: &Route, model: &str) -> bool {
    route.model == model
        || model.strip_prefix(route.provider.id.as_str()).and_then(|m| m.strip_prefix('/'))
            == Some(route.model.as_str())
}

/// The routes serving `model` as an embedding model, by a component that serves embeddings,
/// each with its accounts in rotation order.
pub fn candidates(snapshot: &Snapshot, model: &str) -> Result<Vec<Candidate>, GatewayError> {
    let Some(routes) = snapshot.routes(model) else { return Err(route::unknown_model(snapshot, model)) };
    let mut refused = None;
    let mut fit = Vec::new();
    for r in routes.iter().filter(|r| same_model(r, model)) {
        let p = &r.provider;
        if !p.models.iter().any(|m| m.info.id == r.model && m.embedding.is_some()) {
            refused.get_or_insert_with(|| {
                format!(
                    "`{}` on '{}' is not an embedding model (mark it with `embeddings = true` in the provider's models)",
                    r.model, p.id
                )
            });
        } else if !p.component.embeds() {
            refused.get_or_insert_with(|| {
                format!(
                    "provider '{}' does not serve embeddings (its component '{}' has no freeway:gateway/embeddings export)",
                    p.id, p.component.name
                )
            });
        } else {
            fit.push(r);
        }
    }
    if fit.is_empty() {
        let why = refused.unwrap_or_else(|| "no route serves it under that exact name".to_owned());
        return Err(GatewayError::new(
            ErrorKind::InvalidValue,
            format!("The model `{model}` cannot serve embeddings: {why}."),
        )
        .with_param("model"));
    }
    route::rotate(model, fit, refused)
}

/// One attempt: its reply (the rendered response and its usage) and the time spent upstream.
async fn attempt(
    ctx: &RequestCtx<'_>,
    ready: &mut Ready<'_>,
    req: &EmbeddingsBody,
) -> (Result<Reply, GatewayError>, Duration) {
    let mut waited = Duration::ZERO;
    let cand = ready.cand;
    let span = trace::attempt(&cand.route.provider.id, &cand.route.model, &cand.account.label);
    let result = run(ctx, ready, req, &mut waited).instrument(span.clone()).await;
    trace::finish_attempt(&span, result.as_ref().err().map(|e| (e.kind.spec().code, e.retryable())));
    (result, waited)
}

/// The OpenAI embeddings body for a passthrough plan, with the component's edits applied.
fn passthrough_body(
    model: &str,
    req: &EmbeddingsBody,
    edits: &[wit::BodyEdit],
    p: &crate::registry::ProviderEntry,
) -> Result<Bytes, GatewayError> {
    let mut body = Map::new();
    body.insert("model".into(), Value::from(model));
    body.insert("input".into(), Value::from(req.input.clone()));
    body.insert("encoding_format".into(), Value::from("float"));
    if let Some(d) = req.dimensions {
        body.insert("dimensions".into(), Value::from(d));
    }
    for e in edits {
        match e {
            wit::BodyEdit::Remove(k) => {
                body.remove(k);
            }
            wit::BodyEdit::Rename((from, to)) => {
                if let Some(v) = body.remove(from) {
                    body.insert(to.clone(), v);
                }
            }
            wit::BodyEdit::Set((k, v)) => {
                let v: Value = serde_json::from_str(v).map_err(|_| {
                    GatewayError::new(
                        ErrorKind::ComponentFailed,
                        format!("component '{}' set `{k}` to invalid JSON", p.component.name),
                    )
                    .with_provider(&p.id)
                })?;
                body.insert(k.clone(), v);
            }
        }
    }
    serde_json::to_vec(&body).map(Bytes::from).map_err(|e| GatewayError::internal(format!("embeddings body: {e}")))
}

async fn run(
    ctx: &RequestCtx<'_>,
    ready: &mut Ready<'_>,
    req: &EmbeddingsBody,
    waited: &mut Duration,
) -> Result<Reply, GatewayError> {
    let (app, cand) = (ctx.services, ready.cand);
    let p = &cand.route.provider;
    let mut lease: Option<ProviderLease> = None;
    let model = cand.route.model.as_str();
    let plan = EmbedRequest {
        config: p.wit_config.clone(),
        account: 0,
        model: model.to_owned(),
        input: req.input.clone(),
        dimensions: req.dimensions,
    };
    let planned = attempt::instance(&mut lease, cand).await?.embed(&plan).await.map_err(attempt::guest_failed(p))?;
    let call = planned.map_err(|e| attempt::provider_error(e, cand))?;
    if call.response == wit::ResponseFormat::Openai {
        lease = None;
    }
    let sender = egress::Sender {
        allowed: &p.io.allowed,
        http: app.http,
        auth: &p.io.auth,
        secret: cand.account.secret.as_ref(),
    };
    let out = egress::prepare(&sender, &call.url, &call.method, &call.headers).map_err(|r| attempt::refused(p, &r))?;
    let body = match &call.body {
        wit::RequestBody::Passthrough(edits) => passthrough_body(model, req, edits, p)?,
        wit::RequestBody::Replace(text) => Bytes::from(text.clone()),
    };
    let mut headers = out.headers;
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let builder =
        app.http.client().request(out.method, out.url).headers(headers).body(body).timeout(app.http.request_timeout);
    let resp = attempt::send(app, ready, &mut lease, builder, waited).await?;
    let t = Instant::now();
    let body = attempt::read_body(resp, app.http.max_response_bytes, &p.id).await;
    *waited += t.elapsed();
    let body = p.io.secrets.scrub_bytes(body?);
    let invalid = |what: &str| {
        GatewayError::new(ErrorKind::UpstreamInvalidResponse, format!("provider '{}' answered {what}", p.id))
            .with_provider(&p.id)
    };
    let (vectors, tokens) = match call.response {
        wit::ResponseFormat::Openai => {
            read_openai(&body).ok_or_else(|| invalid("without an embeddings `data` list"))?
        }
        wit::ResponseFormat::Translate => {
            let text = std::str::from_utf8(&body).map_err(|_| invalid("with invalid UTF-8"))?;
            let read = attempt::instance(&mut lease, cand)
                .await?
                .translate_embeddings(text)
                .await
                .map_err(attempt::guest_failed(p))?;
            let read = read.map_err(|e| attempt::provider_error(e, cand))?;
            (read.vectors, read.prompt_tokens)
        }
    };
    if vectors.len() != req.input.len() {
        return Err(invalid(&format!("{} vectors for {} inputs", vectors.len(), req.input.len())));
    }
    let tokens = tokens.unwrap_or_else(|| ctx.prompt_tokens());
    let usage = Usage { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens, extra: Map::new() };
    Ok(Reply::Json { body: Bytes::from(render(model, &vectors, req.encoding, tokens)), usage: Some(usage) })
}

fn respond(ctx: &RequestCtx<'_>, body: Bytes, usage: Option<Usage>, cand: &Candidate, attempts: u32) -> Response {
    ctx.exchange.routed(cand, attempts, usage.as_ref());
    ctx.services.usage.record(UsageRecord {
        at: SystemTime::now(),
        provider: cand.route.provider.id.clone(),
        model: cand.route.model.clone(),
        account: cand.account.id.clone(),
        usage,
        outcome: Outcome::Ok,
        stream: false,
        attempts,
        latency: ctx.started.elapsed(),
        first_byte: None,
        client: ctx.principal.clone(),
        error: None,
        policy: None,
        cache_read: false,
    });
    let route = format!(
        "provider={}; model={}; account={}; attempts={attempts}",
        cand.route.provider.id, cand.route.model, cand.account.label
    );
    let mut builder = Response::builder().status(StatusCode::OK).header(header::CONTENT_TYPE, "application/json");
    if let Ok(v) = HeaderValue::try_from(route) {
        builder = builder.header(HeaderName::from_static("x-freeway-route"), v);
    }
    if let Ok(v) = HeaderValue::try_from(format!("{:.3}", ctx.overhead().as_secs_f64() * 1000.0)) {
        builder = builder.header(HeaderName::from_static("x-freeway-overhead-ms"), v);
    }
    builder.body(Body::from(body)).unwrap_or_else(|_| Response::new(Body::empty()))
}
