//! The provider API: every request outside `/_sim` lands here and is routed to an upstream by
//! path prefix, authenticated, matched against the scripted rules, rate limited and answered.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::chat::{self, ChatRequest, Custom};
use crate::config::CONTROL_PREFIX;
use crate::limits::{Decision, Usage};
use crate::native::Api;
use crate::profiles::{ApiError, Header, Profile, RateLimitHit, default_limit, mask_key};
use crate::record::{RecordedRequest, header_map};
use crate::script::{Action, RequestFacts, Window};
use crate::state::{MODEL_CREATED, Shared, Upstream, now_ms};
use crate::stream::{HOLD, Shape, StreamPlan, broken_body, default_stream_error};

/// Largest request body read.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

pub(crate) fn json_type() -> HeaderValue {
    HeaderValue::from_static("application/json")
}
const MALFORMED_JSON: &[u8] = b"{\"id\":\"chatcmpl-sim\",\"object\":\"chat.completion\",\"choices\":[{not json";

/// Fallback handler: the provider API of every upstream.
pub async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    if path == CONTROL_PREFIX || path.starts_with("/_sim/") {
        return openai_error(StatusCode::NOT_FOUND, &unknown_url(&parts.method, path), "unknown_url");
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return openai_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large or unreadable.",
                "request_too_large",
            );
        }
    };
    let json: Option<Value> = if bytes.is_empty() { None } else { serde_json::from_slice(&bytes).ok() };
    let runtime = shared.runtime();
    let upstream = runtime.route(path);
    // native APIs carry the key and the model their own way
    let native = upstream.and_then(|u| Api::of(u.config.profile).map(|api| (api, u.prefix().len())));
    let native_key = native.and_then(|(api, _)| api.key(&parts.headers, parts.uri.query()));
    let (key, model) = match native {
        Some((api, prefix_len)) => {
            (native_key.as_deref(), api.model(path.get(prefix_len..).unwrap_or(""), json.as_ref()))
        }
        None => (bearer(&parts.headers), json.as_ref().and_then(|v| v.get("model")).and_then(Value::as_str)),
    };
    let seq = shared.next_seq();
    let now = now_ms();
    if runtime.config.record {
        shared.recorder.push(RecordedRequest {
            seq,
            method: parts.method.to_string(),
            path: path.to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: header_map(&parts.headers),
            body: match &json {
                Some(json) => json.clone(),
                None if bytes.is_empty() => Value::Null,
                None => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
            },
            key: key.map(str::to_owned),
            at_ms: now,
        });
    }
    shared.stats.request(key, model);
    let response = match upstream {
        None => openai_error(StatusCode::NOT_FOUND, &unknown_url(&parts.method, path), "unknown_url"),
        Some(upstream) => {
            let ctx = Ctx {
                shared: &shared,
                upstream,
                method: &parts.method,
                path,
                query: parts.uri.query(),
                key,
                model,
                json: json.as_ref(),
                seq,
                now_ms: now,
            };
            ctx.serve().await
        }
    };
    shared.stats.status(response.status().as_u16());
    response
}

/// A reproducible number in 0..1000 for request `seq` (splitmix64).
fn random_per_mille(seq: u64) -> u32 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    u32::try_from(z % 1000).unwrap_or(0)
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// One request being served by one upstream.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Shared,
    pub upstream: &'a Upstream,
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The caller's key (bearer token, or where a native API carries it).
    pub key: Option<&'a str>,
    pub model: Option<&'a str>,
    pub json: Option<&'a Value>,
    pub seq: u64,
    pub now_ms: u64,
}

impl Ctx<'_> {
    pub fn profile(&self) -> Profile {
        self.upstream.config.profile
    }

    /// The path after the upstream prefix, e.g. "/chat/completions".
    pub fn suffix(&self) -> &str {
        self.path.get(self.upstream.prefix().len()..).unwrap_or("")
    }

    async fn serve(&self) -> Response {
        let config = &self.upstream.config;
        let native = Api::of(self.profile());
        if !config.keys.is_empty() && !self.key.is_some_and(|key| config.keys.iter().any(|k| k == key)) {
            if let Some(api) = native {
                return api.unauthorized(self.key);
            }
            return json_response(StatusCode::UNAUTHORIZED, &self.profile().unauthorized(self.key), &[]);
        }
        let facts = RequestFacts { prefix: self.upstream.prefix(), path: self.path, key: self.key, model: self.model };
        let action = match self.shared.rules.take(&facts) {
            Some(Action::Status { status, body, headers }) => {
                return self.scripted_status(status, body, &headers);
            }
            Some(Action::RateLimit { retry_after_s, window }) => {
                return self.scripted_rate_limit(retry_after_s, window);
            }
            Some(Action::Hang) => {
                tokio::time::sleep(HOLD).await;
                return self.error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Simulated hang timed out.",
                    "server_error",
                    Some("timeout"),
                );
            }
            Some(Action::Delay { ms }) => {
                sleep_ms(ms).await;
                None
            }
            other => other,
        };
        if let Some(api) = native {
            return api.serve(self, action).await;
        }
        let suffix = self.suffix();
        match (self.method, suffix) {
            (&Method::POST, "/chat/completions") => self.chat(action).await,
            (&Method::POST, "/embeddings") => crate::embed::openai(self, action).await,
            (&Method::POST, "/completions") => crate::legacy::completions(self, action).await,
            (&Method::GET, "/models") => {
                sleep_ms(config.latency_ms).await;
                deliver_json(self.upstream.models_body.clone(), Vec::new(), action.as_ref())
            }
            (&Method::GET, _) if suffix.starts_with("/models/") => {
                let id = &suffix["/models/".len()..];
                if config.strict_models && !config.models.iter().any(|m| m == id) {
                    return self.model_not_found(id);
                }
                sleep_ms(config.latency_ms).await;
                let body = json!({"id": id, "object": "model", "created": MODEL_CREATED, "owned_by": "sim"});
                deliver_json(to_bytes(&body), Vec::new(), action.as_ref())
            }
            (&Method::GET, "/key") if self.profile() == Profile::OpenRouter => {
                deliver_json(to_bytes(&self.key_info()), Vec::new(), action.as_ref())
            }
            (_, "/chat/completions" | "/models") => self.error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("Method {} not allowed for {}", self.method, self.path),
                "invalid_request_error",
                Some("method_not_allowed"),
            ),
            _ => self.error(
                StatusCode::NOT_FOUND,
                &unknown_url(self.method, self.path),
                "invalid_request_error",
                Some("unknown_url"),
            ),
        }
    }

    /// `POST .../chat/completions` (also Cloudflare's `/ai/v1/chat/completions`).
    pub(crate) async fn chat(&self, action: Option<Action>) -> Response {
        let config = &self.upstream.config;
        let request = match chat::parse(self.json) {
            Ok(request) => request,
            Err(message) => {
                return self.error(StatusCode::BAD_REQUEST, &message, "invalid_request_error", None);
            }
        };
        if config.strict_models && !config.models.iter().any(|m| m == request.model) {
            return self.model_not_found(request.model);
        }
        let custom = match &action {
            Some(Action::Reply { content, finish_reason, usage, extra, reasoning }) => Some(Custom {
                reasoning: reasoning.as_deref(),
                content: content.as_deref(),
                finish_reason: finish_reason.as_deref(),
                usage: usage.as_ref(),
                extra: extra.as_ref(),
            }),
            _ => None,
        };
        if config.error_per_mille > 0 && random_per_mille(self.seq) < config.error_per_mille {
            sleep_ms(config.latency_ms).await;
            return self.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Simulated random server error.",
                "server_error",
                Some("internal_error"),
            );
        }
        let mut reply = chat::plan(&request, config.reply_tokens, self.seq, self.now_ms / 1000, custom);
        let mut headers = Vec::new();
        if let Some(decision) = self.upstream.acquire(self.key.unwrap_or(""), request.model, reply.tokens, self.now_ms)
        {
            match decision {
                Decision::Allowed(snapshot) => headers = self.profile().rate_limit_headers(&snapshot),
                Decision::Limited { axis, requested, snapshot } => {
                    return rate_limited(
                        self.profile(),
                        &RateLimitHit {
                            axis,
                            snapshot: &snapshot,
                            requested,
                            model: request.model,
                            now_ms: self.now_ms,
                            retry_after_s: None,
                        },
                    );
                }
            }
        }
        sleep_ms(config.latency_ms).await;
        if request.stream {
            let shape = match action {
                Some(Action::DropAfter { chunks }) => Shape::DropAfter(chunks),
                Some(Action::StallAfter { chunks }) => Shape::StallAfter(chunks),
                Some(Action::MidStreamError { chunks, error }) => {
                    Shape::MidStreamError(chunks, error.unwrap_or_else(default_stream_error))
                }
                Some(Action::Malformed) => Shape::Malformed,
                _ => Shape::Normal,
            };
            let delay = Duration::from_millis(config.token_delay_ms);
            let body = StreamPlan::new(reply, request.include_usage, delay, shape).into_body();
            return response(StatusCode::OK, HeaderValue::from_static("text/event-stream"), body, &headers);
        }
        if let Some(Action::MidStreamError { error, .. }) = &action {
            // Without a stream the error rides in the (200) body, as OpenRouter does.
            reply.finish_reason = "error".to_owned();
            let error = error.clone().unwrap_or_else(default_stream_error);
            reply.extra.get_or_insert_with(Default::default).insert("error".to_owned(), error);
        }
        deliver_json(chat::completion_body(&reply), headers, action.as_ref())
    }

    fn scripted_status(
        &self,
        status: u16,
        body: Option<Value>,
        headers: &std::collections::BTreeMap<String, String>,
    ) -> Response {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (content_type, bytes) = match body {
            None => (json_type(), to_bytes(&self.profile().status_error(status.as_u16()))),
            Some(Value::String(text)) => (HeaderValue::from_static("text/plain; charset=utf-8"), Bytes::from(text)),
            Some(value) => (json_type(), to_bytes(&value)),
        };
        let mut response = response(status, content_type, Body::from(bytes), &[]);
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
            {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }

    fn scripted_rate_limit(&self, retry_after_s: Option<u64>, window: Window) -> Response {
        let profile = self.profile();
        let axis = profile.scripted_axis(window);
        let model = self.model.unwrap_or("");
        let reset_ms = match (retry_after_s, window) {
            (Some(seconds), _) => seconds.saturating_mul(1000),
            (None, Window::Minute) => 60_000,
            (None, Window::Day) => self.upstream.until_daily_reset(model, self.now_ms),
        };
        let key = self.key.unwrap_or("");
        let (mut snapshot, limit) = match self.upstream.peek(key, model, self.now_ms) {
            Some((snapshot, limits)) => (snapshot, axis.limit_in(limits)),
            None => (Default::default(), None),
        };
        let limit = limit.unwrap_or_else(|| default_limit(axis));
        snapshot.set(axis, Usage { limit, used: limit, reset_ms });
        let requested = if axis.is_requests() {
            1
        } else {
            chat::parse(self.json).map_or(1, |r| estimated_tokens(&r, self.upstream.config.reply_tokens))
        };
        rate_limited(
            profile,
            &RateLimitHit {
                axis,
                snapshot: &snapshot,
                requested,
                model,
                now_ms: self.now_ms,
                retry_after_s: Some(retry_after_s.unwrap_or_else(|| reset_ms.div_ceil(1000))),
            },
        )
    }

    /// OpenRouter's `GET /key`, with the free-model daily counters.
    fn key_info(&self) -> Value {
        let key = self.key.unwrap_or("");
        let (limit, used) = match &self.upstream.limiter {
            Some(limiter) => (limiter.limits().rpd, limiter.day_requests(key, self.now_ms)),
            None => (None, 0),
        };
        json!({"data": {
            "label": mask_key(key),
            "limit": null,
            "limit_remaining": null,
            "limit_reset": null,
            "usage": 0,
            "usage_daily": 0,
            "usage_weekly": 0,
            "usage_monthly": 0,
            "byok_usage": 0,
            "is_free_tier": true,
            "is_provisioning_key": false,
            "free_model_daily_requests": {
                "limit": limit,
                "remaining": limit.map(|l| l.saturating_sub(used)),
                "used": used,
            },
        }})
    }

    fn model_not_found(&self, model: &str) -> Response {
        if self.profile() == Profile::Cloudflare {
            // Workers AI: 400 with code 5007
            let message = format!("No such model {model} or task");
            return self.error(StatusCode::BAD_REQUEST, &message, "invalid_request_error", Some("model_not_found"));
        }
        self.error(
            StatusCode::NOT_FOUND,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            Some("model_not_found"),
        )
    }

    /// An error in this profile's shape.
    pub fn error(&self, status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
        let body = self.profile().error_body(&ApiError { status: status.as_u16(), message, kind, code, param: None });
        json_response(status, &body, &[])
    }
}

fn estimated_tokens(request: &ChatRequest<'_>, reply_tokens: u32) -> u64 {
    let completion = u64::from(reply_tokens);
    request.prompt_tokens + request.max_tokens.map_or(completion, |max| max.min(completion))
}

pub(crate) fn rate_limited(profile: Profile, hit: &RateLimitHit<'_>) -> Response {
    let (headers, body) = profile.too_many_requests(hit);
    json_response(StatusCode::TOO_MANY_REQUESTS, &body, &headers)
}

/// A 200 JSON body, or its scripted breakage.
pub(crate) fn deliver_json(bytes: Bytes, headers: Vec<Header>, action: Option<&Action>) -> Response {
    let body = match action {
        Some(Action::Malformed) => Body::from(Bytes::from_static(MALFORMED_JSON)),
        Some(Action::DropAfter { .. }) => broken_body(bytes.slice(..bytes.len() / 2), false),
        Some(Action::StallAfter { .. }) => broken_body(Bytes::new(), true),
        _ => Body::from(bytes),
    };
    response(StatusCode::OK, json_type(), body, &headers)
}

fn unknown_url(method: &Method, path: &str) -> String {
    format!(
        "Unknown request URL: {method} {path}. Please check the URL for typos, or see the docs at https://platform.openai.com/docs/api-reference/."
    )
}

fn openai_error(status: StatusCode, message: &str, code: &str) -> Response {
    let body = Profile::OpenAi.error_body(&ApiError {
        status: status.as_u16(),
        message,
        kind: "invalid_request_error",
        code: Some(code),
        param: None,
    });
    json_response(status, &body, &[])
}

pub(crate) fn to_bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

pub(crate) fn json_response(status: StatusCode, body: &Value, headers: &[Header]) -> Response {
    response(status, json_type(), Body::from(to_bytes(body)), headers)
}

pub(crate) fn response(status: StatusCode, content_type: HeaderValue, body: Body, headers: &[Header]) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let map = response.headers_mut();
    map.insert(CONTENT_TYPE, content_type);
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::try_from(value.as_str()) {
            map.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

pub(crate) async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-1"));
        assert_eq!(bearer(&headers), Some("sk-1"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  sk-2 "));
        assert_eq!(bearer(&headers), Some("sk-2"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }
}
