//! The other APIs clients speak, served by the one chat pipeline: the request is translated
//! into a chat body (`freeway_core::dialect`), served by [`super::chat_completions`] (so routing,
//! limits, fallback, cache and accounting are the chat request's), and its answer translated
//! back, a stream event by event as it arrives ([`relay`]). Errors keep their kind and are
//! shaped as the client's API shapes them ([`Api::error_response`]).

pub mod conversations;
pub mod relay;

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use freeway_core::dialect::{completions, messages, responses};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{Exchange, Services};
use crate::errors::GatewayError;
use crate::principal::Principal;
use crate::registry::Snapshot;

pub use conversations::Conversations;

/// The API a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    /// Anthropic Messages
    Messages,
    /// Anthropic's token counting
    CountTokens,
    /// legacy completions
    Completions,
    Responses,
    /// OpenAI embeddings (not a dialect of chat: its own pipeline entry, OpenAI's errors)
    Embeddings,
}

impl Api {
    /// The error as this API's clients expect it.
    pub fn error_response(self, e: GatewayError) -> Response {
        match self {
            Self::Messages | Self::CountTokens => {
                let (kind, status) = messages::error::kind_of(&e);
                let body = messages::error::body(kind, &e.message);
                let mut resp = e.into_response();
                *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                *resp.body_mut() = axum::body::Body::from(body.to_string());
                resp.headers_mut().remove(header::CONTENT_LENGTH);
                resp
            }
            Self::Chat | Self::Completions | Self::Responses | Self::Embeddings => e.into_response(),
        }
    }
}

fn chat_body(chat: &Value) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(chat)
        .map(Bytes::from)
        .map_err(|e| GatewayError::internal(format!("could not write the chat request: {e}")))
}

/// `POST /v1/messages`.
pub async fn messages(
    services: Services<'_>,
    snapshot: &Snapshot,
    client: Principal,
    body: Bytes,
    exchange: &Arc<Exchange>,
) -> Result<Response, GatewayError> {
    let t = translate(&body, snapshot, messages::to_chat)?;
    let resp = super::chat_completions(services, snapshot, client, chat_body(&t.chat)?, exchange).await?;
    relay::reply(resp, Box::new(messages::MessagesReply::new())).await
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens as the gateway counts them (o200k),
/// the tools' definitions included. No provider is asked.
pub fn count_tokens(snapshot: &Snapshot, body: &[u8]) -> Result<Response, GatewayError> {
    let mut with_max = body.to_vec();
    // count_tokens takes no max_tokens; the translation wants one
    if let Ok(Value::Object(mut o)) = serde_json::from_slice::<Value>(body) {
        o.entry("max_tokens").or_insert(json!(1));
        with_max = serde_json::to_vec(&o).unwrap_or(with_max);
    }
    let t = translate(&with_max, snapshot, messages::to_chat)?;
    let mut list = t.chat.get("messages").cloned().unwrap_or_else(|| json!([]));
    if let (Some(tools), Some(l)) = (t.chat.get("tools"), list.as_array_mut()) {
        l.push(json!({ "role": "system", "content": tools.to_string() }));
    }
    let raw = serde_json::value::to_raw_value(&list).map_err(|e| GatewayError::internal(e.to_string()))?;
    let tokens = crate::cpu::run(body.len(), || super::cost::count_prompt_tokens(&raw));
    Ok(json_ok(json!({ "input_tokens": tokens })))
}

/// `POST /v1/completions`.
pub async fn completions(
    services: Services<'_>,
    snapshot: &Snapshot,
    client: Principal,
    body: Bytes,
    exchange: &Arc<Exchange>,
) -> Result<Response, GatewayError> {
    let (chat, _) = translate(&body, snapshot, completions::to_chat)?;
    let resp = super::serve_chat(services, snapshot, client, chat_body(&chat)?, exchange, Some(body)).await?;
    if resp.extensions().get::<super::dispatch::LegacyAnswer>().is_some() {
        return Ok(resp);
    }
    relay::reply(resp, Box::new(completions::CompletionsReply)).await
}

/// `POST /v1/responses`; `previous_response_id` is looked up among this client's kept answers.
pub async fn responses(
    services: Services<'_>,
    snapshot: &Snapshot,
    client: Principal,
    body: Bytes,
    exchange: &Arc<Exchange>,
) -> Result<Response, GatewayError> {
    let store = services.conversations;
    let t = translate(&body, snapshot, |b| responses::to_chat(b, |id| store.get(&client, id)))?;
    let model = t.chat.get("model").and_then(Value::as_str).unwrap_or("").to_owned();
    let keep = store.keeper(&client);
    let resp = super::chat_completions(services, snapshot, client, chat_body(&t.chat)?, exchange).await?;
    relay::reply(resp, Box::new(responses::ResponsesReply::new(&model, t.echo, t.conversation, Some(keep)))).await
}

/// Bound the body's shape, then translate it (off the async worker when it is large).
fn translate<T>(
    body: &[u8],
    snapshot: &Snapshot,
    f: impl FnOnce(&[u8]) -> Result<T, GatewayError>,
) -> Result<T, GatewayError> {
    freeway_core::wire::shape::check(body, &snapshot.config.server.shape_limits())?;
    crate::cpu::run(body.len(), || f(body))
}

fn json_ok(v: Value) -> Response {
    let mut r = Response::new(axum::body::Body::from(v.to_string()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
