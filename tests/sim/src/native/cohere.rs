//! Cohere's native API (`profile = "cohere"`), as `api.cohere.com` serves it under the
//! upstream's prefix:
//!
//! - `POST /chat` (Chat API v2; configure `prefix = "/v2"`) -> a chat response
//!   (`{id, message: {role, content: [{type: text, text}], tool_plan, tool_calls}, finish_reason,
//!   usage: {billed_units, tokens}}`); with `stream: true`, SSE events `event: <type>` /
//!   `data: {"type": <type>, ...}`: `message-start`, `content-start`, `content-delta` per word,
//!   `content-end`, `message-end` (with `finish_reason` and `usage`), and no `[DONE]`;
//! - `GET /models` (Cohere's v1 list: `models[]` with `name`, `endpoints`, `context_length`,
//!   `features`, ...; `endpoint`, `page_size` (default 20) and `page_token`) and
//!   `GET /models/{name}`. Cohere lists models under `/v1` while chat lives under `/v2`: give
//!   the simulator a second upstream with `prefix = "/v1"` and this profile (or one upstream with
//!   `prefix = ""`: paths starting with `/v1/` or `/v2/` are served under it too);
//! - the key is a bearer token; an unknown key is a 401 `{"id", "message": "invalid api
//!   token"}`, a missing one a 401 "no api key supplied";
//! - requests are checked as strictly as Cohere checks them: unknown top-level fields (an OpenAI
//!   parameter such as `top_p` or `stop` left in) are a 400 naming every one of them, roles must
//!   be `system`, `user`, `assistant` or `tool`, each role's fields are checked (`name` is
//!   refused), tool calls need string `arguments`, tool messages a `tool_call_id`,
//!   `tool_choice` is `REQUIRED` or `NONE`, at most 5 `stop_sequences`;
//! - the reply: `tok0 tok1 ...`; with `tools` and "call a tool" in the last user message (a tool
//!   result after it answers the call, so the follow-up gets text), a `tool_plan` and one
//!   `tool_calls` entry (arguments `{"sim":true}`), finish reason `TOOL_CALL`; streamed as
//!   `tool-plan-delta`s, `tool-call-start`, `tool-call-delta`s and `tool-call-end`;
//! - limits: rpm / rpd / tpm / tpd as configured. A 429 is `{"id", "message"}` with no header
//!   at all, in Cohere's trial wording: "You are using a Trial key, which is limited to N API
//!   calls / minute." for rpm, "... / month." for rpd (the simulator has no monthly window: the
//!   day window stands in for the trial key's monthly cap, and so does a scripted `rate_limit`
//!   with `window: "day"`), "... N tokens / minute." for tpm. Successful answers carry
//!   `x-trial-endpoint-call-limit` / `-remaining` (rpm) and `x-endpoint-monthly-call-limit` (rpd);
//! - scripted `reply`: OpenAI finish reasons are translated (`stop` -> `COMPLETE`, `length` ->
//!   `MAX_TOKENS`, `tool_calls` -> `TOOL_CALL`; anything else is sent as is, e.g. `ERROR`);
//!   `usage` in OpenAI terms is translated (`billed_units` / `tokens` given as such replace the
//!   computed ones); `extra` is merged into the response (not into stream events);
//! - scripted `mid_stream_error`: the stream's `chunks` events, then `message-end` with
//!   `finish_reason: "ERROR"` and the error's `message` as `delta.error` (an error with a `type`
//!   is sent as that event instead); without a stream, a 200 whose `finish_reason` is `ERROR`.

use axum::http::header::HeaderValue;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Frames, Framing, query_param, stream_shape};
use crate::chat::{self, Custom, TOOL_ARGUMENTS, TOOL_TRIGGER};
use crate::limits::{Axis, Decision, Usage};
use crate::profiles::RateLimitHit;
use crate::provider::{Ctx, bearer, deliver_json, json_response, rate_limited, response, sleep_ms, to_bytes};
use crate::script::Action;

/// Top-level fields of a v2 chat request.
const REQUEST_FIELDS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "tools",
    "strict_tools",
    "documents",
    "citation_options",
    "response_format",
    "safety_mode",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "k",
    "p",
    "logprobs",
    "tool_choice",
    "thinking",
    "priority",
];

/// The key: a bearer token.
pub fn key(headers: &HeaderMap, _query: Option<&str>) -> Option<String> {
    bearer(headers).map(str::to_owned)
}

/// The path below the API version: `/chat`, `/models`, ... (a `/v1` or `/v2` in front is
/// skipped, for upstreams mounted at the root).
fn route(suffix: &str) -> &str {
    for version in ["/v1", "/v2"] {
        if let Some(rest) = suffix.strip_prefix(version)
            && rest.starts_with('/')
        {
            return rest;
        }
    }
    suffix
}

/// The body's `model` for `POST /chat`; the name of `GET /models/{name}`.
pub fn model<'a>(suffix: &'a str, body: Option<&'a Value>) -> Option<&'a str> {
    let path = route(suffix);
    if path == "/chat" {
        return body?.get("model")?.as_str();
    }
    path.strip_prefix("/models/").filter(|m| !m.is_empty())
}

/// A request id in Cohere's (UUID) shape, derived from `seed`.
fn error_id(seed: &str) -> String {
    // FNV-1a: stable across runs, different per message
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        hash >> 32,
        (hash >> 16) & 0xffff,
        hash & 0xfff,
        (hash >> 20) & 0xfff,
        hash & 0xffff_ffff_ffff
    )
}

/// Cohere's error body: `{"id", "message"}`.
pub fn error_json(message: &str) -> Value {
    json!({"id": error_id(message), "message": message})
}

/// Status and body of Cohere's answer to an unknown or missing key.
pub fn auth_error(key: Option<&str>) -> (u16, Value) {
    let message = if key.is_some() { "invalid api token" } else { "no api key supplied" };
    (401, error_json(message))
}

/// The body of a 429, in Cohere's trial-key wording (the day axis stands in for the monthly
/// cap).
pub fn quota_error(hit: &RateLimitHit<'_>, usage: &Usage) -> Value {
    let what = match hit.axis {
        Axis::Rpm => "API calls / minute",
        Axis::Rpd => "API calls / month",
        Axis::Tpm => "tokens / minute",
        Axis::Tpd => "tokens / month",
    };
    error_json(&format!(
        "You are using a Trial key, which is limited to {} {what}. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'. Contact us on 'https://discord.gg/XW44jPfYJu' or email us at support@cohere.com with any questions",
        usage.limit
    ))
}

pub fn unauthorized(key: Option<&str>) -> Response {
    let (status, body) = auth_error(key);
    json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED), &body, &[])
}

pub async fn serve(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let path = route(ctx.suffix());
    let method = ctx.method;
    match path {
        "/chat" if *method == Method::POST => chat(ctx, action).await,
        "/embed" if *method == Method::POST => crate::embed::cohere(ctx, action).await,
        "/models" if *method == Method::GET => list(ctx, action).await,
        _ if *method == Method::GET && path.starts_with("/models/") => {
            get_model(ctx, &path["/models/".len()..], action).await
        }
        _ => ctx.error(StatusCode::NOT_FOUND, &format!("{} {} not found", ctx.method, ctx.path), "", None),
    }
}

fn invalid(ctx: &Ctx<'_>, message: &str) -> Response {
    ctx.error(StatusCode::BAD_REQUEST, message, "", None)
}

// ---------------------------------------------------------------------------------------------
// request checks

fn unknown_fields(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    let unknown: Vec<String> =
        obj.keys().filter(|k| !allowed.contains(&k.as_str())).map(|k| format!("\"{k}\"")).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let s = if unknown.len() == 1 { "" } else { "s" };
    Err(format!("invalid request: unknown field{s} {} in {at}", unknown.join(", ")))
}

fn check_parts(content: &Value, at: &str, kinds: &[&str]) -> Result<(), String> {
    let parts = match content {
        Value::String(_) => return Ok(()),
        Value::Array(parts) => parts,
        _ => return Err(format!("invalid request: {at}.content must be a string or a list of content blocks")),
    };
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
        if !kinds.contains(&kind) {
            return Err(format!(
                "invalid request: {at}.type must be one of {}, got \"{kind}\"",
                kinds.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ")
            ));
        }
        let Some(obj) = part.as_object() else { continue };
        match kind {
            "text" => {
                unknown_fields(obj, &["type", "text"], &at)?;
                if !obj.get("text").is_some_and(Value::is_string) {
                    return Err(format!("invalid request: {at}.text must be a string"));
                }
            }
            "thinking" => unknown_fields(obj, &["type", "thinking"], &at)?,
            "image_url" => {
                unknown_fields(obj, &["type", "image_url"], &at)?;
                let image = obj.get("image_url").and_then(Value::as_object);
                let Some(image) = image.filter(|i| i.get("url").is_some_and(Value::is_string)) else {
                    return Err(format!("invalid request: {at}.image_url.url is required"));
                };
                unknown_fields(image, &["url", "detail"], &format!("{at}.image_url"))?;
            }
            _ => unknown_fields(obj, &["type", "document"], &at)?,
        }
    }
    Ok(())
}

fn check_message(i: usize, m: &Value) -> Result<(), String> {
    let at = format!("messages[{i}]");
    let Some(obj) = m.as_object() else { return Err(format!("invalid request: {at} must be an object")) };
    let role = obj.get("role").and_then(Value::as_str).unwrap_or("");
    let (fields, kinds): (&[&str], &[&str]) = match role {
        "system" => (&["role", "content"], &["text"]),
        "user" => (&["role", "content"], &["text", "image_url", "document"]),
        "assistant" => (&["role", "content", "tool_calls", "tool_plan", "citations"], &["text", "thinking"]),
        "tool" => (&["role", "tool_call_id", "content"], &["text", "document"]),
        other => {
            return Err(format!(
                "invalid request: {at}.role must be one of \"system\", \"user\", \"assistant\", \"tool\", got \"{other}\""
            ));
        }
    };
    unknown_fields(obj, fields, &at)?;
    match obj.get("content") {
        Some(content) => check_parts(content, &at, kinds)?,
        None if role != "assistant" => return Err(format!("invalid request: {at}.content is required")),
        None => {}
    }
    if role == "tool" && obj.get("tool_call_id").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(format!("invalid request: {at}.tool_call_id is required"));
    }
    if role == "assistant" {
        let calls = obj.get("tool_calls");
        if obj.get("content").is_none() && calls.is_none() && obj.get("tool_plan").is_none() {
            return Err(format!("invalid request: {at} must have content or tool_calls"));
        }
        for (j, call) in calls.and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("{at}.tool_calls[{j}]");
            let Some(call) = call.as_object() else { return Err(format!("invalid request: {at} must be an object")) };
            unknown_fields(call, &["id", "type", "function"], &at)?;
            let function = call.get("function").and_then(Value::as_object);
            let Some(function) = function else { return Err(format!("invalid request: {at}.function is required")) };
            unknown_fields(function, &["name", "arguments"], &format!("{at}.function"))?;
            if !function.get("arguments").is_none_or(Value::is_string) {
                return Err(format!("invalid request: {at}.function.arguments must be a string"));
            }
        }
    }
    Ok(())
}

fn number_in(obj: &Map<String, Value>, name: &str, min: f64, max: f64) -> Result<(), String> {
    match obj.get(name) {
        None => Ok(()),
        Some(v) => match v.as_f64() {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(format!("invalid request: {name} must be a number between {min} and {max}")),
        },
    }
}

/// Check a v2 chat request the way Cohere does; the message it would send.
pub fn validate(body: Option<&Value>) -> Result<(), String> {
    let Some(Value::Object(req)) = body else {
        return Err("invalid request: the request body must be a JSON object".to_owned());
    };
    unknown_fields(req, REQUEST_FIELDS, "the request body")?;
    if !req.get("model").is_some_and(Value::is_string) {
        return Err("invalid request: model is required".to_owned());
    }
    let messages = req.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty());
    let Some(messages) = messages else { return Err("invalid request: messages must not be empty".to_owned()) };
    for (i, m) in messages.iter().enumerate() {
        check_message(i, m)?;
    }
    if !req.get("stream").is_none_or(Value::is_boolean) {
        return Err("invalid request: stream must be a boolean".to_owned());
    }
    let tools = req.get("tools").and_then(Value::as_array);
    for (i, tool) in tools.into_iter().flatten().enumerate() {
        let at = format!("tools[{i}]");
        let Some(tool) = tool.as_object() else { return Err(format!("invalid request: {at} must be an object")) };
        unknown_fields(tool, &["type", "function"], &at)?;
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(format!("invalid request: {at}.type must be \"function\""));
        }
        let function = tool.get("function").and_then(Value::as_object);
        let Some(function) = function else { return Err(format!("invalid request: {at}.function is required")) };
        unknown_fields(function, &["name", "description", "parameters"], &format!("{at}.function"))?;
        if !function.get("name").is_some_and(Value::is_string) {
            return Err(format!("invalid request: {at}.function.name is required"));
        }
    }
    match req.get("tool_choice") {
        None => {}
        Some(Value::String(c)) if c == "NONE" => {}
        Some(Value::String(c)) if c == "REQUIRED" && tools.is_none_or(Vec::is_empty) => {
            return Err("invalid request: tool_choice REQUIRED needs tools".to_owned());
        }
        Some(Value::String(c)) if c == "REQUIRED" => {}
        Some(other) => {
            return Err(format!("invalid request: tool_choice must be one of \"REQUIRED\", \"NONE\", got {other}"));
        }
    }
    if let Some(format) = req.get("response_format") {
        let Some(format) = format.as_object() else {
            return Err("invalid request: response_format must be an object".to_owned());
        };
        unknown_fields(format, &["type", "json_schema"], "response_format")?;
        match format.get("type").and_then(Value::as_str) {
            Some("text" | "json_object") => {}
            _ => return Err("invalid request: response_format.type must be \"text\" or \"json_object\"".to_owned()),
        }
    }
    if let Some(stop) = req.get("stop_sequences") {
        let ok = stop.as_array().is_some_and(|s| s.len() <= 5 && s.iter().all(Value::is_string));
        if !ok {
            return Err("invalid request: stop_sequences must be a list of at most 5 strings".to_owned());
        }
    }
    if let Some(thinking) = req.get("thinking") {
        let kind = thinking.get("type").and_then(Value::as_str);
        if !matches!(kind, Some("enabled" | "disabled")) {
            return Err("invalid request: thinking.type must be \"enabled\" or \"disabled\"".to_owned());
        }
    }
    number_in(req, "p", 0.01, 0.99)?;
    number_in(req, "k", 0.0, 500.0)?;
    number_in(req, "frequency_penalty", 0.0, 1.0)?;
    number_in(req, "presence_penalty", 0.0, 1.0)?;
    number_in(req, "temperature", 0.0, 5.0)?;
    if req.get("max_tokens").is_some_and(|m| m.as_u64().is_none_or(|n| n == 0)) {
        return Err("invalid request: max_tokens must be a positive integer".to_owned());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// chat

/// The parts of a request the reply depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat<'a> {
    pub model: &'a str,
    pub stream: bool,
    pub prompt_tokens: u64,
    pub max_tokens: Option<u64>,
    /// The function to call, when the request asks for a tool call.
    pub tool: Option<&'a str>,
}

fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

/// Read a (valid) request.
pub fn parse(body: &Value) -> Chat<'_> {
    let messages: &[Value] = body.get("messages").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    let chars: usize = messages.iter().map(|m| text_of(m.get("content")).chars().count()).sum();
    // the last user message asks for a call, unless a tool result already answers it
    let last_turn =
        messages.iter().rev().find(|m| matches!(m.get("role").and_then(Value::as_str), Some("user" | "tool")));
    let triggered = last_turn.is_some_and(|m| {
        m.get("role").and_then(Value::as_str) == Some("user") && text_of(m.get("content")).contains(TOOL_TRIGGER)
    });
    let tool = body
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .and_then(|t| t.pointer("/function/name"))
        .and_then(Value::as_str)
        .filter(|_| triggered && body.get("tool_choice").and_then(Value::as_str) != Some("NONE"));
    Chat {
        model: body.get("model").and_then(Value::as_str).unwrap_or(""),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        prompt_tokens: (chars as u64 / 4).max(1),
        max_tokens: body.get("max_tokens").and_then(Value::as_u64),
        tool,
    }
}

/// An OpenAI finish reason (as the planner and scripts write it) -> Cohere's.
pub fn finish_reason(reason: &str) -> String {
    match reason {
        "stop" => "COMPLETE".to_owned(),
        "length" => "MAX_TOKENS".to_owned(),
        "tool_calls" => "TOOL_CALL".to_owned(),
        other => other.to_owned(),
    }
}

/// The planner's (OpenAI-named) usage -> Cohere's `usage`.
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).cloned().unwrap_or(json!(0));
    let counts = json!({"input_tokens": n("prompt_tokens"), "output_tokens": n("completion_tokens")});
    let mut out = json!({"billed_units": counts, "tokens": counts});
    for key in ["billed_units", "tokens", "cached_tokens"] {
        if let Some(v) = u.get(key) {
            out[key] = v.clone();
        }
    }
    out
}

/// A response id in Cohere's (UUID) shape.
fn response_id(seq: u64) -> String {
    format!("00000000-0000-4000-8000-{seq:012x}")
}

fn tool_plan(name: &str) -> String {
    format!("I will call {name} to answer the request.")
}

/// The tool call's id, in Cohere's `{name}_{suffix}` style.
fn call_id(name: &str, seq: u64) -> String {
    format!("{name}_sim{seq}")
}

/// The whole answer.
pub fn response_body(reply: &chat::Reply) -> Value {
    let message = match &reply.tool_call {
        Some(call) => json!({
            "role": "assistant",
            "tool_plan": tool_plan(&call.name),
            "tool_calls": [{"id": call_id(&call.name, reply.seq), "type": "function",
                "function": {"name": call.name, "arguments": TOOL_ARGUMENTS}}],
        }),
        None if reply.content.is_empty() => json!({"role": "assistant", "content": []}),
        None => json!({"role": "assistant", "content": [{"type": "text", "text": reply.content}]}),
    };
    let mut v = json!({
        "id": response_id(reply.seq),
        "message": message,
        "finish_reason": finish_reason(&reply.finish_reason),
        "usage": usage(&reply.usage),
        "x_sim": {"request": reply.seq},
    });
    if let (Some(extra), Value::Object(map)) = (&reply.extra, &mut v) {
        map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    v
}

/// `text` cut into the pieces a stream sends.
fn split(text: &str) -> Vec<&str> {
    chat::pieces(text).into_iter().filter_map(|r| text.get(r)).collect()
}

/// The stream's events, in order.
pub fn stream_events(reply: &chat::Reply) -> Vec<Value> {
    let mut events = vec![json!({
        "id": response_id(reply.seq),
        "type": "message-start",
        "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}},
    })];
    match &reply.tool_call {
        Some(call) => {
            let plan = tool_plan(&call.name);
            for piece in split(&plan) {
                events.push(json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}}));
            }
            events.push(json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
                "id": call_id(&call.name, reply.seq), "type": "function",
                "function": {"name": call.name, "arguments": ""}}}}}));
            // the arguments in two fragments, as Cohere streams them
            let cut = TOOL_ARGUMENTS.len() / 2;
            for fragment in [&TOOL_ARGUMENTS[..cut], &TOOL_ARGUMENTS[cut..]] {
                events.push(json!({"type": "tool-call-delta", "index": 0,
                    "delta": {"message": {"tool_calls": {"function": {"arguments": fragment}}}}}));
            }
            events.push(json!({"type": "tool-call-end", "index": 0}));
        }
        None => {
            events.push(
                json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
            );
            for piece in split(&reply.content) {
                events.push(json!({"type": "content-delta", "index": 0,
                    "delta": {"message": {"content": {"text": piece}}}, "logprobs": null}));
            }
            events.push(json!({"type": "content-end", "index": 0}));
        }
    }
    events.push(json!({"type": "message-end", "delta": {
        "finish_reason": finish_reason(&reply.finish_reason),
        "usage": usage(&reply.usage),
    }}));
    events
}

/// `event: <type>` + `data: <json>`.
fn frame(event: &Value) -> Bytes {
    let kind = event.get("type").and_then(Value::as_str).unwrap_or("message");
    Bytes::from(format!("event: {kind}\ndata: {event}\n\n"))
}

/// A scripted error as the event Cohere ends a failed stream with.
pub fn error_event(error: &Value) -> Value {
    if error.get("type").is_some() {
        return error.clone();
    }
    let message = error
        .get("message")
        .or_else(|| error.pointer("/error/message"))
        .and_then(Value::as_str)
        .unwrap_or("internal server error");
    json!({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": message}})
}

fn default_error() -> Value {
    json!({"message": "internal server error"})
}

struct Sse;

impl Framing for Sse {
    fn error(&self, error: &Value) -> Vec<Bytes> {
        vec![frame(&error_event(error))]
    }
    fn malformed(&self) -> Bytes {
        Bytes::from_static(
            b"event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"tok0\n\n",
        )
    }
    fn done(&self) -> Option<Bytes> {
        None
    }
}

async fn chat(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let upstream = ctx.upstream;
    let config = &upstream.config;
    if let Err(message) = validate(ctx.json) {
        return invalid(ctx, &message);
    }
    let Some(body) = ctx.json else { return invalid(ctx, "invalid request: the request body must be a JSON object") };
    let request = parse(body);
    if config.strict_models && !config.models.iter().any(|m| m == request.model) {
        let message = format!(
            "model '{}' not found, make sure the correct model ID was used and that you have access to the model.",
            request.model
        );
        return ctx.error(StatusCode::NOT_FOUND, &message, "", None);
    }
    let custom = match &action {
        Some(Action::Reply { content, finish_reason, usage, extra, .. }) => Some(Custom {
            reasoning: None,
            content: content.as_deref(),
            finish_reason: finish_reason.as_deref(),
            usage: usage.as_ref(),
            extra: extra.as_ref(),
        }),
        _ => None,
    };
    let planned = chat::ChatRequest {
        model: request.model,
        stream: request.stream,
        include_usage: true,
        max_tokens: request.max_tokens,
        prompt_tokens: request.prompt_tokens,
        tool: request.tool,
    };
    let mut reply = chat::plan(&planned, config.reply_tokens, ctx.seq, ctx.now_ms / 1000, custom);
    let mut headers = Vec::new();
    if let Some(decision) = upstream.acquire(ctx.key.unwrap_or(""), request.model, reply.tokens, ctx.now_ms) {
        match decision {
            Decision::Allowed(snapshot) => headers = ctx.profile().rate_limit_headers(&snapshot),
            Decision::Limited { axis, requested, snapshot } => {
                let hit = RateLimitHit {
                    axis,
                    snapshot: &snapshot,
                    requested,
                    model: request.model,
                    now_ms: ctx.now_ms,
                    retry_after_s: None,
                };
                return rate_limited(ctx.profile(), &hit);
            }
        }
    }
    sleep_ms(config.latency_ms).await;
    if request.stream {
        let frames: Vec<Bytes> = stream_events(&reply).iter().map(frame).collect();
        let delay = std::time::Duration::from_millis(config.token_delay_ms);
        let body = Frames::new(frames, delay, stream_shape(action, default_error), &Sse).into_body();
        return response(StatusCode::OK, HeaderValue::from_static("text/event-stream"), body, &headers);
    }
    if let Some(Action::MidStreamError { .. }) = &action {
        // without a stream, the generation failed: a 200 that says so
        reply.finish_reason = "ERROR".to_owned();
        reply.content.clear();
        reply.tool_call = None;
    }
    deliver_json(to_bytes(&response_body(&reply)), headers, action.as_ref())
}

// ---------------------------------------------------------------------------------------------
// models

fn endpoints(name: &str) -> Vec<&'static str> {
    if name.contains("embed") {
        vec!["embed"]
    } else if name.contains("rerank") {
        vec!["rerank"]
    } else {
        vec!["generate", "chat", "summarize"]
    }
}

/// One entry of `GET /models`.
pub fn model_entry(name: &str) -> Value {
    let chat = endpoints(name).contains(&"chat");
    let vision = name.contains("vision");
    let command = name.starts_with("command");
    let context_length = if !chat {
        512
    } else if name.starts_with("c4ai-aya-vision") {
        16_384
    } else if command && !vision && !name.contains("r7b") {
        256_000
    } else {
        128_000
    };
    let mut features: Vec<&str> = Vec::new();
    if chat {
        features.extend(["json_mode", "json_schema"]);
        if command && !vision {
            features.extend(["safety_modes", "strict_tools", "tools"]);
        }
        if vision {
            features.push("vision");
        }
        if name.contains("reasoning") {
            features.push("reasoning");
        }
    }
    json!({
        "name": name,
        "endpoints": endpoints(name),
        "finetuned": false,
        "context_length": context_length,
        "tokenizer_url": format!("https://storage.googleapis.com/cohere-public/tokenizers/{name}.json"),
        "default_endpoints": [],
        "features": features,
        "is_deprecated": false,
    })
}

/// A page of `GET /models`: `endpoint` filter, `page_size` (default 20, at most 1000) from the
/// `page_token` offset.
pub fn models_page(
    models: &[String],
    endpoint: Option<&str>,
    page_size: Option<&str>,
    page_token: Option<&str>,
) -> Result<Value, String> {
    let size = match page_size {
        None => 20,
        Some(s) => s.parse::<usize>().map_err(|_| format!("invalid request: page_size must be an integer, got {s}"))?,
    };
    let size = if size == 0 { 20 } else { size.min(1000) };
    let matching: Vec<&String> = models.iter().filter(|m| endpoint.is_none_or(|e| endpoints(m).contains(&e))).collect();
    let offset = match page_token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .strip_prefix("offset=")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| "invalid request: invalid page_token".to_owned())?,
    };
    let end = offset.saturating_add(size).min(matching.len());
    let page: Vec<Value> = matching.get(offset..end).unwrap_or_default().iter().map(|m| model_entry(m)).collect();
    let mut body = json!({"models": page});
    if end < matching.len() {
        body["next_page_token"] = json!(format!("offset={end}"));
    }
    Ok(body)
}

async fn list(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let config = &ctx.upstream.config;
    let endpoint = query_param(ctx.query, "endpoint");
    let size = query_param(ctx.query, "page_size");
    let token = query_param(ctx.query, "page_token");
    match models_page(&config.models, endpoint.as_deref(), size.as_deref(), token.as_deref()) {
        Ok(body) => {
            sleep_ms(config.latency_ms).await;
            deliver_json(to_bytes(&body), Vec::new(), action.as_ref())
        }
        Err(message) => invalid(ctx, &message),
    }
}

async fn get_model(ctx: &Ctx<'_>, name: &str, action: Option<Action>) -> Response {
    let config = &ctx.upstream.config;
    if config.strict_models && !config.models.iter().any(|m| m == name) {
        return ctx.error(StatusCode::NOT_FOUND, &format!("model '{name}' not found"), "", None);
    }
    sleep_ms(config.latency_ms).await;
    deliver_json(to_bytes(&model_entry(name)), Vec::new(), action.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatRequest, plan};
    use crate::limits::Snapshot;
    use crate::profiles::Profile;

    fn request() -> Value {
        json!({
            "model": "command-a-03-2025",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "please call a tool"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]},
                {"role": "assistant", "tool_plan": "I will.", "tool_calls": [
                    {"id": "get_weather_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "get_weather_1", "content": "{\"t\": 1}"},
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "max_tokens": 3,
            "stream": false,
            "response_format": {"type": "json_object", "json_schema": {"type": "object"}},
        })
    }

    #[test]
    fn keys_and_models_come_from_where_cohere_puts_them() {
        let mut headers = HeaderMap::new();
        assert_eq!(key(&headers, None), None);
        headers.insert("authorization", HeaderValue::from_static("Bearer co-key"));
        assert_eq!(key(&headers, None), Some("co-key".to_owned()));
        let body = json!({"model": "command-r-08-2024"});
        assert_eq!(model("/chat", Some(&body)), Some("command-r-08-2024"));
        assert_eq!(model("/v2/chat", Some(&body)), Some("command-r-08-2024"));
        assert_eq!(model("/models/command-a-03-2025", None), Some("command-a-03-2025"));
        assert_eq!(model("/v1/models/x", None), Some("x"));
        assert_eq!(model("/models", None), None);
        assert_eq!(route("/v2/chat"), "/chat");
        assert_eq!(route("/v2x/chat"), "/v2x/chat");
    }

    #[test]
    fn requests_are_checked_like_cohere_checks_them() {
        assert!(validate(Some(&request())).is_ok());
        let with = |f: &dyn Fn(&mut Value)| {
            let mut r = request();
            f(&mut r);
            validate(Some(&r)).unwrap_err()
        };
        let e = with(&|r| {
            r["top_p"] = json!(1);
            r["stop"] = json!("x");
        });
        assert!(e.contains("unknown fields") && e.contains("\"top_p\"") && e.contains("\"stop\""), "{e}");
        let e = with(&|r| r["messages"][1]["role"] = json!("developer"));
        assert!(e.contains("role must be one of") && e.contains("\"developer\""), "{e}");
        let e = with(&|r| r["messages"][1]["name"] = json!("bob"));
        assert!(e.contains("\"name\"") && e.contains("messages[1]"), "{e}");
        let e = with(&|r| r["messages"][2]["tool_calls"][0]["function"]["arguments"] = json!({"city": "Paris"}));
        assert!(e.contains("arguments must be a string"), "{e}");
        let e = with(&|r| r["messages"][3].as_object_mut().unwrap().retain(|k, _| k != "tool_call_id"));
        assert!(e.contains("tool_call_id is required"), "{e}");
        let e = with(&|r| r["messages"][1]["content"][1]["type"] = json!("input_audio"));
        assert!(e.contains("\"input_audio\""), "{e}");
        let e = with(&|r| r["tools"][0]["function"]["strict"] = json!(true));
        assert!(e.contains("\"strict\""), "{e}");
        let e = with(&|r| r["tool_choice"] = json!("required"));
        assert!(e.contains("tool_choice"), "{e}");
        let e = with(&|r| r["response_format"] = json!({"type": "json_schema"}));
        assert!(e.contains("response_format.type"), "{e}");
        let e = with(&|r| r["stop_sequences"] = json!(["a", "b", "c", "d", "e", "f"]));
        assert!(e.contains("stop_sequences"), "{e}");
        let e = with(&|r| r["p"] = json!(1.0));
        assert!(e.contains("p must be"), "{e}");
        let e = with(&|r| r["messages"] = json!([]));
        assert!(e.contains("messages must not be empty"), "{e}");
        assert!(validate(None).is_err());
    }

    #[test]
    fn the_reply_depends_on_the_last_user_turn() {
        let r = request();
        let c = parse(&r);
        assert_eq!((c.model, c.stream, c.max_tokens), ("command-a-03-2025", false, Some(3)));
        // "Be brief." + "please call a tool" + "{\"t\": 1}" = 35 chars
        assert_eq!(c.prompt_tokens, 8);
        // a tool result answers the call: no new one
        assert_eq!(c.tool, None);
        let mut first = request();
        first["messages"] = json!([{"role": "user", "content": "please call a tool"}]);
        assert_eq!(parse(&first).tool, Some("get_weather"));
        first["tool_choice"] = json!("NONE");
        assert_eq!(parse(&first).tool, None);
    }

    fn reply(tool: Option<&str>, tokens: u32) -> chat::Reply {
        let req = ChatRequest {
            model: "command-a-03-2025",
            stream: true,
            include_usage: true,
            max_tokens: None,
            prompt_tokens: 4,
            tool,
        };
        plan(&req, tokens, 7, 100, None)
    }

    #[test]
    fn responses_in_cohere_shape() {
        let body = response_body(&reply(None, 3));
        assert_eq!(
            body["message"],
            json!({"role": "assistant", "content": [{"type": "text", "text": "tok0 tok1 tok2"}]})
        );
        assert_eq!(body["finish_reason"], "COMPLETE");
        assert_eq!(
            body["usage"],
            json!({"billed_units": {"input_tokens": 4, "output_tokens": 3}, "tokens": {"input_tokens": 4, "output_tokens": 3}})
        );
        assert_eq!(body["id"], "00000000-0000-4000-8000-000000000007");
        assert_eq!(body["x_sim"]["request"], 7);
        let call = response_body(&reply(Some("get_weather"), 3));
        assert_eq!(call["finish_reason"], "TOOL_CALL");
        assert_eq!(call["message"]["tool_plan"], "I will call get_weather to answer the request.");
        assert_eq!(
            call["message"]["tool_calls"][0],
            json!({"id": "get_weather_sim7", "type": "function", "function": {"name": "get_weather", "arguments": "{\"sim\":true}"}})
        );
        assert!(call["message"].get("content").is_none());
        assert_eq!(finish_reason("length"), "MAX_TOKENS");
        assert_eq!(finish_reason("ERROR"), "ERROR");
        assert_eq!(
            usage(&json!({"prompt_tokens": 1, "completion_tokens": 2, "tokens": {"input_tokens": 9}}))["tokens"],
            json!({"input_tokens": 9})
        );
    }

    #[test]
    fn stream_events_follow_cohere_sequence() {
        let events = stream_events(&reply(None, 3));
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "message-start",
                "content-start",
                "content-delta",
                "content-delta",
                "content-delta",
                "content-end",
                "message-end"
            ]
        );
        let text: String =
            events.iter().filter_map(|e| e.pointer("/delta/message/content/text").and_then(Value::as_str)).collect();
        assert_eq!(text, "tok0 tok1 tok2");
        assert_eq!(events[6]["delta"]["finish_reason"], "COMPLETE");
        assert_eq!(events[6]["delta"]["usage"]["tokens"]["output_tokens"], 3);
        let framed = frame(&events[2]);
        assert!(std::str::from_utf8(&framed).unwrap().starts_with("event: content-delta\ndata: {"));

        let events = stream_events(&reply(Some("f"), 3));
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "tool-plan-delta").count(), 8);
        assert!(kinds.ends_with(&[
            "tool-call-start",
            "tool-call-delta",
            "tool-call-delta",
            "tool-call-end",
            "message-end"
        ]));
        let args: String = events
            .iter()
            .filter_map(|e| e.pointer("/delta/message/tool_calls/function/arguments").and_then(Value::as_str))
            .collect();
        assert_eq!(args, TOOL_ARGUMENTS);
        assert_eq!(events.last().unwrap()["delta"]["finish_reason"], "TOOL_CALL");

        let frames = Frames::new(
            vec![frame(&events[0])],
            std::time::Duration::ZERO,
            stream_shape(Some(Action::MidStreamError { chunks: 1, error: None }), default_error),
            &Sse,
        );
        assert_eq!(frames.frames().len(), 2);
        let last = std::str::from_utf8(&frames.frames()[1]).unwrap();
        assert!(last.starts_with("event: message-end\n") && last.contains("\"finish_reason\":\"ERROR\""), "{last}");
        assert_eq!(error_event(&json!({"message": "boom"}))["delta"]["error"], "boom");
        assert_eq!(error_event(&json!({"type": "x"})), json!({"type": "x"}));
    }

    #[test]
    fn errors_and_429s_in_cohere_shape() {
        let (status, body) = auth_error(Some("co-wrong"));
        assert_eq!(status, 401);
        assert_eq!(body["message"], "invalid api token");
        assert!(!body.to_string().contains("co-wrong"));
        assert_eq!(auth_error(None).1["message"], "no api key supplied");
        assert_eq!(Profile::Cohere.unauthorized(Some("k")), body);
        assert_eq!(error_json("x")["id"].as_str().unwrap().len(), 36);
        assert_ne!(error_json("x")["id"], error_json("y")["id"]);
        let status = Profile::Cohere.status_error(503);
        assert!(status["message"].as_str().unwrap().contains("503"));
        assert!(status.get("error").is_none());

        let mut snapshot = Snapshot::default();
        snapshot.set(Axis::Rpd, Usage { limit: 1000, used: 1000, reset_ms: 5_000 });
        let hit = RateLimitHit {
            axis: Axis::Rpd,
            snapshot: &snapshot,
            requested: 1,
            model: "m",
            now_ms: 0,
            retry_after_s: Some(60),
        };
        let (headers, body) = Profile::Cohere.too_many_requests(&hit);
        assert!(headers.is_empty(), "{headers:?}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("You are using a Trial key, which is limited to 1000 API calls / month."),
            "{message}"
        );
        snapshot.set(Axis::Rpm, Usage { limit: 20, used: 3, reset_ms: 5_000 });
        let headers = Profile::Cohere.rate_limit_headers(&snapshot);
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("x-trial-endpoint-call-limit"), Some("20"));
        assert_eq!(get("x-trial-endpoint-call-remaining"), Some("17"));
        assert_eq!(get("x-endpoint-monthly-call-limit"), Some("1000"));
    }

    #[test]
    fn model_list_pages_and_filters() {
        let models: Vec<String> =
            ["command-a-03-2025", "command-a-vision-07-2025", "embed-v4.0", "c4ai-aya-expanse-32b"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        let page = models_page(&models, Some("chat"), Some("2"), None).unwrap();
        assert_eq!(page["models"].as_array().unwrap().len(), 2);
        assert_eq!(page["next_page_token"], "offset=2");
        let rest = models_page(&models, Some("chat"), Some("2"), Some("offset=2")).unwrap();
        assert_eq!(rest["models"][0]["name"], "c4ai-aya-expanse-32b");
        assert!(rest.get("next_page_token").is_none());
        let all = models_page(&models, None, None, None).unwrap();
        assert_eq!(all["models"].as_array().unwrap().len(), 4);
        assert_eq!(all["models"][2]["endpoints"], json!(["embed"]));
        let a = &all["models"][0];
        assert_eq!(a["context_length"], 256_000);
        assert!(a["features"].as_array().unwrap().contains(&json!("tools")));
        assert!(all["models"][1]["features"].as_array().unwrap().contains(&json!("vision")));
        assert!(models_page(&models, None, None, Some("garbage")).is_err());
        assert!(models_page(&models, None, Some("x"), None).is_err());
    }

    mod over_http {
        use super::*;
        use crate::{SimConfig, Simulator};

        const KEY: &str = "co-good";

        async fn sim(limits: Value) -> Simulator {
            let upstream = |prefix: &str| {
                json!({"prefix": prefix, "profile": "cohere", "keys": [KEY],
                    "models": ["command-a-03-2025", "embed-v4.0"], "strict_models": true,
                    "reply_tokens": 4, "limits": limits})
            };
            let config: SimConfig =
                serde_json::from_value(json!({"upstreams": [upstream("/v2"), upstream("/v1")]})).unwrap();
            Simulator::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
        }

        fn body(stream: bool) -> Value {
            json!({"model": "command-a-03-2025", "stream": stream,
                "messages": [{"role": "user", "content": "Hello there, Cohere"}]})
        }

        async fn post(sim: &Simulator, key: Option<&str>, body: &Value) -> reqwest::Response {
            let mut r = reqwest::Client::new().post(sim.url("/v2/chat")).json(body);
            if let Some(key) = key {
                r = r.bearer_auth(key);
            }
            r.send().await.unwrap()
        }

        fn events(text: &str) -> Vec<(String, Value)> {
            text.split("\n\n")
                .filter(|e| !e.is_empty())
                .map(|e| {
                    let (event, data) = e.split_once('\n').unwrap();
                    (event["event: ".len()..].to_owned(), serde_json::from_str(&data["data: ".len()..]).unwrap())
                })
                .collect()
        }

        #[tokio::test]
        async fn chat_stream_and_list() {
            let sim = sim(Value::Null).await;
            let r = post(&sim, Some(KEY), &body(false)).await;
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["message"]["content"][0]["text"], "tok0 tok1 tok2 tok3");
            assert_eq!(v["usage"]["tokens"]["output_tokens"], 4);
            assert_eq!(v["finish_reason"], "COMPLETE");

            let r = post(&sim, Some(KEY), &body(true)).await;
            assert_eq!(r.headers()["content-type"], "text/event-stream");
            let text = r.text().await.unwrap();
            assert!(!text.contains("[DONE]"));
            let events = events(&text);
            assert_eq!(events.len(), 8);
            assert!(events.iter().all(|(name, data)| data["type"] == name.as_str()));
            assert_eq!(events[7].1["delta"]["finish_reason"], "COMPLETE");

            let listed: Value = reqwest::Client::new()
                .get(sim.url("/v1/models?endpoint=chat"))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(listed["models"].as_array().unwrap().len(), 1);
            assert_eq!(listed["models"][0]["name"], "command-a-03-2025");

            let requests = sim.requests();
            assert_eq!(requests[0].key.as_deref(), Some(KEY));
            assert_eq!(sim.stats().by_model["command-a-03-2025"], 2);

            let mut unknown = body(false);
            unknown["model"] = json!("command-x");
            let r = post(&sim, Some(KEY), &unknown).await;
            assert_eq!(r.status(), 404);
            let mut openai = body(false);
            openai["top_p"] = json!(0.5);
            openai["n"] = json!(1);
            let r = post(&sim, Some(KEY), &openai).await;
            assert_eq!(r.status(), 400);
            let v: Value = r.json().await.unwrap();
            let message = v["message"].as_str().unwrap();
            assert!(message.contains("\"top_p\"") && message.contains("\"n\""), "{message}");
            assert!(v["id"].is_string());
            sim.shutdown().await;
        }

        #[tokio::test]
        async fn tool_calls_stream_as_cohere_events() {
            let sim = sim(Value::Null).await;
            let mut b = body(true);
            b["messages"][0]["content"] = json!("please call a tool");
            b["tools"] = json!([{"type": "function", "function": {"name": "get_weather"}}]);
            let text = post(&sim, Some(KEY), &b).await.text().await.unwrap();
            let events = events(&text);
            let start = events.iter().find(|(name, _)| name == "tool-call-start").unwrap();
            assert_eq!(start.1["delta"]["message"]["tool_calls"]["function"]["name"], "get_weather");
            assert_eq!(events.last().unwrap().1["delta"]["finish_reason"], "TOOL_CALL");
            sim.shutdown().await;
        }

        #[tokio::test]
        async fn keys_limits_and_scripts() {
            let sim = sim(json!({"rpm": 1})).await;
            let r = post(&sim, Some("co-bad"), &body(false)).await;
            assert_eq!(r.status(), 401);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["message"], "invalid api token");
            let r = post(&sim, None, &body(false)).await;
            assert_eq!(r.status(), 401);

            let r = post(&sim, Some(KEY), &body(false)).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["x-trial-endpoint-call-limit"], "1");
            assert_eq!(r.headers()["x-trial-endpoint-call-remaining"], "0");
            let r = post(&sim, Some(KEY), &body(false)).await;
            assert_eq!(r.status(), 429);
            assert!(r.headers().get("retry-after").is_none());
            assert!(r.headers().get("x-trial-endpoint-call-remaining").is_none());
            let v: Value = r.json().await.unwrap();
            assert!(v["message"].as_str().unwrap().contains("limited to 1 API calls / minute"), "{v}");

            sim.shutdown().await;

            let sim = self::sim(Value::Null).await;
            sim.add_rules(
                serde_json::from_value(json!([
                    {"times": 1, "action": {"type": "rate_limit", "window": "day", "retry_after_s": 37}},
                    {"times": 1, "action": {"type": "status", "status": 500}},
                    {"times": 1, "action": {"type": "mid_stream_error", "chunks": 2, "error": {"message": "model crashed"}}},
                    {"times": 1, "action": {"type": "mid_stream_error"}},
                    {"times": 1, "action": {"type": "reply", "content": "custom words", "finish_reason": "length"}},
                ]))
                .unwrap(),
            );
            let r = post(&sim, Some(KEY), &body(false)).await;
            assert_eq!(r.status(), 429);
            assert!(r.headers().get("retry-after").is_none());
            let v: Value = r.json().await.unwrap();
            assert!(v["message"].as_str().unwrap().contains("API calls / month"), "{v}");
            let r = post(&sim, Some(KEY), &body(false)).await;
            assert_eq!(r.status(), 500);
            let v: Value = r.json().await.unwrap();
            assert!(v["message"].as_str().unwrap().contains("500"));
            let text = post(&sim, Some(KEY), &body(true)).await.text().await.unwrap();
            let events = events(&text);
            assert_eq!(events.len(), 3);
            assert_eq!(events[2].1["delta"], json!({"finish_reason": "ERROR", "error": "model crashed"}));
            let v: Value = post(&sim, Some(KEY), &body(false)).await.json().await.unwrap();
            assert_eq!(v["finish_reason"], "ERROR");
            let v: Value = post(&sim, Some(KEY), &body(false)).await.json().await.unwrap();
            assert_eq!(v["message"]["content"][0]["text"], "custom words");
            assert_eq!(v["finish_reason"], "MAX_TOKENS");
            sim.shutdown().await;
        }
    }
}
