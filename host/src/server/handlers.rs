//! Thin handlers: read what the request carries, call the pipeline, log the outcome once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::json;

use crate::app::App;
use crate::errors::{Blame, ErrorKind, GatewayError};
use crate::pipeline::dialect::{self, Api};
use crate::pipeline::{self, Exchange};

/// The request's exchange (made by the edge; a detached one if a caller bypassed it).
fn exchange_of(x: Option<Extension<Arc<Exchange>>>) -> Arc<Exchange> {
    x.map_or_else(Exchange::detached, |Extension(x)| x)
}

/// Read the body up to `limit` bytes (413 beyond it) within `deadline` (408 after it).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize, deadline: Duration) -> Result<Bytes, GatewayError> {
    let too_large =
        || GatewayError::new(ErrorKind::BodyTooLarge, format!("The request body exceeds the limit of {limit} bytes."));
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(too_large());
    }
    let read = tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await.map_err(|_| {
        GatewayError::new(
            ErrorKind::RequestTimeout,
            format!("The request body did not arrive within {} ms.", deadline.as_millis()),
        )
    })?;
    read.map_err(|e| {
        let text = format!("{e}");
        if text.contains("length limit") {
            too_large()
        } else {
            GatewayError::new(ErrorKind::InvalidJson, format!("Could not read the request body: {text}"))
        }
    })
}

/// The client is authenticated from the headers before anything else: an unknown client gets
/// its 401 without the gateway reading (up to 16 MiB of) its body or taking an in-flight slot.
async fn serve(
    app: Arc<App>,
    exchange: Option<Extension<Arc<Exchange>>>,
    headers: HeaderMap,
    body: Body,
    api: Api,
) -> Response {
    let exchange = exchange_of(exchange);
    let snapshot = app.registry.snapshot();
    let server = &snapshot.config.server;
    let client = match pipeline::auth::check(server, &app.keys, &headers, crate::clock::now_ms()) {
        Ok(c) => c,
        Err(e) => return failed(&exchange, e, api),
    };
    exchange.client(client.clone());
    let permit = match app.admission.enter(Duration::from_millis(server.queue_timeout_ms)).await {
        Ok(p) => p,
        Err(e) => return failed(&exchange, e, api),
    };
    let deadline = Duration::from_millis(server.body_read_timeout_ms.max(1));
    let result = match read_body(&headers, body, server.max_body_bytes, deadline).await {
        Ok(bytes) => {
            if snapshot.config.body_log.enabled {
                exchange.keep_request_body(&bytes);
            }
            let services = app.services();
            match api {
                Api::Chat => pipeline::chat_completions(services, &snapshot, client, bytes, &exchange).await,
                Api::Messages => dialect::messages(services, &snapshot, client, bytes, &exchange).await,
                Api::CountTokens => dialect::count_tokens(&snapshot, &bytes),
                Api::Completions => dialect::completions(services, &snapshot, client, bytes, &exchange).await,
                Api::Responses => dialect::responses(services, &snapshot, client, bytes, &exchange).await,
                Api::Embeddings => pipeline::embeddings(services, &snapshot, client, bytes, &exchange).await,
            }
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => crate::admission::hold(r, permit),
        Err(e) => failed(&exchange, e, api),
    }
}

pub async fn chat_completions(
    State(app): State<Arc<App>>,
    exchange: Option<Extension<Arc<Exchange>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(app, exchange, headers, body, Api::Chat).await
}

/// Anthropic Messages.
pub async fn messages(
    State(app): State<Arc<App>>,
    exchange: Option<Extension<Arc<Exchange>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(app, exchange, headers, body, Api::Messages).await
}

pub async fn count_tokens(
    State(app): State<Arc<App>>,
    exchange: Option<Extension<Arc<Exchange>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(app, exchange, headers, body, Api::CountTokens).await
}

/// Legacy completions.
pub async fn completions(
    State(app): State<Arc<App>>,
    exchange: Option<Extension<Arc<Exchange>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(app, exchange, headers, body, Api::Completions).await
}

pub async fn responses(
    State(app): State<Arc<App>>,
    exchange: Option<Extension<Arc<Exchange>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(app, exchange, headers, body, Api::Responses).await
}

/// `POST /v1/embeddings`: the same edge as chat, then [`pipeline::embeddings`].
pub async fn embeddings(
    State(app): State<Arc<App>>,
    exchange: Option<Extension<Arc<Exchange>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(app, exchange, headers, body, Api::Embeddings).await
}

/// Log a failed request once, by who is to blame, and answer it as its API shapes errors. A
/// client's mistake is left to the access log line (at info, with its code); upstream and
/// gateway failures say more here.
fn failed(exchange: &Exchange, e: GatewayError, api: Api) -> Response {
    let code = e.kind.spec().code;
    exchange.error(code);
    let id = &exchange.id;
    match e.blame() {
        Blame::Client => tracing::debug!(code, request_id = %id, "client error: {}", e.message),
        Blame::Upstream => tracing::warn!(code, request_id = %id, "upstream failure: {}", e.message),
        Blame::Internal => tracing::error!(code, request_id = %id, "gateway failure: {}", e.message),
    }
    api.error_response(e)
}

fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

pub async fn list_models(
    State(app): State<Arc<App>>,
    exchange: Option<Extension<Arc<Exchange>>>,
    headers: HeaderMap,
) -> Response {
    let exchange = exchange_of(exchange);
    let snapshot = app.registry.snapshot();
    let client = match pipeline::auth::check(&snapshot.config.server, &app.keys, &headers, crate::clock::now_ms()) {
        Ok(client) => client,
        Err(e) => return failed(&exchange, e, Api::Chat),
    };
    // a virtual key with a model list sees what it may ask for
    let body = match client.virtual_key().filter(|k| !k.allow.is_open()) {
        Some(k) => {
            let mut list: serde_json::Value = serde_json::from_slice(&snapshot.models_body)
                .unwrap_or_else(|_| json!({ "object": "list", "data": [] }));
            if let Some(data) = list.get_mut("data").and_then(serde_json::Value::as_array_mut) {
                data.retain(|m| m.get("id").and_then(serde_json::Value::as_str).is_some_and(|id| k.allow.names(id)));
            }
            Bytes::from(list.to_string())
        }
        None => snapshot.models_body.clone(),
    };
    exchange.client(client);
    json_response(StatusCode::OK, body)
}

pub async fn get_model(
    State(app): State<Arc<App>>,
    exchange: Option<Extension<Arc<Exchange>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let exchange = exchange_of(exchange);
    let snapshot = app.registry.snapshot();
    let allowed = match pipeline::auth::check(&snapshot.config.server, &app.keys, &headers, crate::clock::now_ms()) {
        Ok(client) => {
            let allowed = client.virtual_key().is_none_or(|k| k.allow.names(&id));
            exchange.client(client);
            allowed
        }
        Err(e) => return failed(&exchange, e, Api::Chat),
    };
    let Some(routes) = snapshot.routes(&id).filter(|_| allowed) else {
        exchange.error(ErrorKind::ModelNotFound.spec().code);
        return GatewayError::new(
            ErrorKind::ModelNotFound,
            format!("The model `{id}` does not exist or you do not have access to it."),
        )
        .with_param("model")
        .into_response();
    };
    let owner = routes.first().map_or("freeway", |r| r.provider.id.as_str());
    let body = json!({ "id": id, "object": "model", "created": 0, "owned_by": owner });
    json_response(StatusCode::OK, body.to_string())
}

pub async fn health() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#)
}

pub async fn ready(State(app): State<Arc<App>>) -> Response {
    let snapshot = app.registry.snapshot();
    if app.shutting_down.load(Ordering::Relaxed) {
        return json_response(StatusCode::SERVICE_UNAVAILABLE, json!({"status": "shutting_down"}).to_string());
    }
    let body = json!({
        "status": if snapshot.ready() { "ready" } else { "not_ready" },
        "generation": snapshot.generation,
        "providers": snapshot.providers.iter().map(|p| json!({
            "id": p.id,
            "component": p.component.name,
            "component_version": p.component.manifest.version,
            "models": p.models.len(),
            "accounts": p.accounts.len(),
        })).collect::<Vec<_>>(),
        "policies": snapshot.policies.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        "problems": snapshot.problems,
    });
    let status = if snapshot.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_response(status, body.to_string())
}
