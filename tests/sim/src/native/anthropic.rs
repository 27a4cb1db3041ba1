//! Anthropic's Messages API (`profile = "anthropic"`), as `api.anthropic.com/v1` serves it under
//! the upstream's prefix:
//!
//! - `POST /messages` -> a `Message` (`{id, type: "message", role, model, content: [...],
//!   stop_reason, stop_sequence, usage}`); with `"stream": true`, SSE events with their names
//!   (`message_start`, `ping`, `content_block_start` / `_delta` / `_stop` per block,
//!   `message_delta` with the stop reason and output tokens, `message_stop`), no `[DONE]`;
//! - `GET /models` (`limit`, default 20; `after_id`; `data[]` of `{type, id, display_name,
//!   created_at}`, `has_more`, `first_id`, `last_id`) and `GET /models/{id}`;
//! - the key in `x-api-key` (recorded as the request's key); an unknown or missing key is a 401
//!   `authentication_error`; `anthropic-version` is required too;
//! - requests are checked as strictly as Anthropic checks them: `model`, `max_tokens` and
//!   `messages` are required, an unknown field anywhere is a 400 `invalid_request_error`
//!   naming it ("... Extra inputs are not permitted"), roles are `user` / `assistant` and must
//!   alternate, text blocks must not be empty, every `tool_use` needs its `tool_result` in the
//!   next message (results first) and the other way round, tool blocks need `tools`,
//!   `temperature` is 0..1, `thinking` needs a budget of at least 1024 below `max_tokens` and
//!   refuses forced tool choices and sampling changes;
//! - the reply: `tok0 tok1 ...` as a text block; with `tools` and "call a tool" in the last
//!   user turn's text, or a forced `tool_choice` (`any`, `tool`), a `tool_use` block (input
//!   `{"sim": true}`); with `thinking`, a signed thinking block first;
//! - limits: rpm counts requests and tpm prompt + completion tokens; every success carries
//!   `anthropic-ratelimit-requests-*` / `-tokens-*` (`-limit`, `-remaining`, `-reset` as an
//!   RFC 3339 time) for the configured axes; a 429 is a `rate_limit_error` with `retry-after`;
//! - scripted `reply`: OpenAI finish reasons are translated (`stop` -> `end_turn`, `length` ->
//!   `max_tokens`, `tool_calls` -> `tool_use`, `content_filter` -> `refusal`; others as is),
//!   `usage` in OpenAI terms too (other keys, e.g. `cache_read_input_tokens`, are added);
//!   `extra` is merged into the message; a scripted `status` 529 is an `overloaded_error`;
//! - scripted `mid_stream_error`: an `event: error` (default `overloaded_error`), then the
//!   stream ends; without a stream it is the error response itself (529).

use axum::http::header::HeaderValue;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Frames, Framing, query_param, stream_shape};
use crate::chat::{self, Custom, TOOL_ARGUMENTS, TOOL_TRIGGER};
use crate::limits::{Axis, Decision, Snapshot};
use crate::profiles::{Header, RateLimitHit};
use crate::provider::{Ctx, deliver_json, json_response, rate_limited, response, sleep_ms, to_bytes};
use crate::script::Action;
use crate::state::MODEL_CREATED;

/// What `key` reports when `anthropic-version` is missing: `Ctx` carries no headers, so the
/// version check rides on the key (a request without the header never authenticates).
const NO_VERSION: &str = "\u{0}anthropic-version missing";

const REQUEST_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "output_config",
    "container",
    "mcp_servers",
    "context_management",
    "inference_geo",
];
const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The key in `x-api-key` (when `anthropic-version` came too).
pub fn key(headers: &HeaderMap, _query: Option<&str>) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let key = header("x-api-key")?;
    if header("anthropic-version").is_none() {
        return Some(NO_VERSION.to_owned());
    }
    Some(key.to_owned())
}

/// The `model` of a `/messages` body, or the id of `/models/{id}`.
pub fn model<'a>(suffix: &'a str, body: Option<&'a Value>) -> Option<&'a str> {
    if let Some(id) = suffix.strip_prefix("/models/") {
        return (!id.is_empty()).then_some(id);
    }
    body.and_then(|b| b.get("model")).and_then(Value::as_str)
}

/// Anthropic's error type for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    }
}

/// `{"type": "error", "error": {"type", "message"}}`.
pub fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// The 401 body for a missing or unknown key (never echoing it).
pub fn auth_error(key: Option<&str>) -> Value {
    let message = if key.is_some() { "invalid x-api-key" } else { "x-api-key header is required" };
    error_body(401, message)
}

/// The 429 body of a limited axis.
pub fn rate_limit_body(axis: Axis, limit: u64, model: &str) -> Value {
    let what = match axis {
        Axis::Rpm => "requests per minute",
        Axis::Rpd => "requests per day",
        Axis::Tpm => "tokens per minute",
        Axis::Tpd => "tokens per day",
    };
    let message = format!(
        "This request would exceed the rate limit for your organization (sim-org) of {limit} {what} for {model}. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later."
    );
    error_body(429, &message)
}

pub fn unauthorized(key: Option<&str>) -> Response {
    if key == Some(NO_VERSION) {
        return json_response(StatusCode::BAD_REQUEST, &error_body(400, "anthropic-version: header is required"), &[]);
    }
    json_response(StatusCode::UNAUTHORIZED, &auth_error(key), &[])
}

pub async fn serve(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    if ctx.key == Some(NO_VERSION) {
        return invalid(ctx, "anthropic-version: header is required");
    }
    let suffix = ctx.suffix();
    let get = *ctx.method == Method::GET;
    match suffix {
        "/messages" if *ctx.method == Method::POST => messages(ctx, action).await,
        "/models" | "/models/" if get => list(ctx, action).await,
        _ if get && suffix.starts_with("/models/") => get_model(ctx, &suffix["/models/".len()..], action).await,
        _ => ctx.error(StatusCode::NOT_FOUND, "Not Found", "not_found_error", None),
    }
}

fn invalid(ctx: &Ctx<'_>, message: &str) -> Response {
    ctx.error(StatusCode::BAD_REQUEST, message, "invalid_request_error", None)
}

// ---------------------------------------------------------------------------------------------
// request checks

fn extra_input(at: &str) -> String {
    format!("{at}: Extra inputs are not permitted")
}

fn known_fields(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) if at.is_empty() => Err(extra_input(k)),
        Some(k) => Err(extra_input(&format!("{at}.{k}"))),
        None => Ok(()),
    }
}

fn number_in(req: &Map<String, Value>, name: &str, min: f64, max: f64) -> Result<Option<f64>, String> {
    match req.get(name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if n < min => Err(format!("{name}: Input should be greater than or equal to {min}")),
            Some(n) if n > max => Err(format!("{name}: Input should be less than or equal to {max}")),
            Some(n) => Ok(Some(n)),
            None => Err(format!("{name}: Input should be a valid number")),
        },
    }
}

fn check_text_block(block: &Map<String, Value>, at: &str) -> Result<(), String> {
    known_fields(block, &["type", "text", "cache_control", "citations"], at)?;
    match block.get("text").and_then(Value::as_str) {
        Some("") => Err("messages: text content blocks must be non-empty".to_owned()),
        Some(_) => Ok(()),
        None => Err(format!("{at}.text: Field required")),
    }
}

fn check_source(source: Option<&Value>, at: &str, base64_types: &[&str]) -> Result<(), String> {
    let Some(source) = source.and_then(Value::as_object) else { return Err(format!("{at}.source: Field required")) };
    let at = format!("{at}.source");
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            known_fields(source, &["type", "media_type", "data"], &format!("{at}.base64"))?;
            let media = source.get("media_type").and_then(Value::as_str).unwrap_or_default();
            if !base64_types.contains(&media) {
                return Err(format!(
                    "{at}.base64.media_type: Input should be {}",
                    base64_types.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
                ));
            }
            if source.get("data").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(format!("{at}.base64.data: Field required"));
            }
            Ok(())
        }
        Some("url") => {
            known_fields(source, &["type", "url"], &format!("{at}.url"))?;
            match source.get("url").and_then(Value::as_str) {
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => Ok(()),
                _ => Err(format!("{at}.url.url: Input should be a valid URL")),
            }
        }
        Some("text") if base64_types.contains(&"application/pdf") => {
            known_fields(source, &["type", "media_type", "data"], &format!("{at}.text"))
        }
        _ => Err(format!("{at}: Input tag does not match any of the expected tags: 'base64', 'url'")),
    }
}

/// One content block of a message with `role`; returns the block type.
fn check_block<'a>(block: &'a Value, role: &str, at: &str) -> Result<&'a str, String> {
    let Some(obj) = block.as_object() else { return Err(format!("{at}: Input should be a valid dictionary")) };
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or_default();
    match (kind, role) {
        ("text", _) => check_text_block(obj, at)?,
        ("image", "user") => {
            known_fields(obj, &["type", "source", "cache_control"], at)?;
            check_source(obj.get("source"), at, IMAGE_TYPES)?;
        }
        ("document", "user") => {
            known_fields(obj, &["type", "source", "cache_control", "title", "context", "citations"], at)?;
            check_source(obj.get("source"), at, &["application/pdf"])?;
        }
        ("tool_use", "assistant") => {
            known_fields(obj, &["type", "id", "name", "input", "cache_control"], at)?;
            let id = obj.get("id").and_then(Value::as_str).unwrap_or_default();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(format!("{at}.id: String should match pattern '^[a-zA-Z0-9_-]+$'"));
            }
            if obj.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(format!("{at}.name: Field required"));
            }
            if !obj.get("input").is_some_and(Value::is_object) {
                return Err(format!("{at}.input: Input should be a valid dictionary"));
            }
        }
        ("tool_result", "user") => {
            known_fields(obj, &["type", "tool_use_id", "content", "is_error", "cache_control"], at)?;
            if obj.get("tool_use_id").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(format!("{at}.tool_use_id: Field required"));
            }
            match obj.get("content") {
                None | Some(Value::String(_)) => {}
                Some(Value::Array(parts)) => {
                    for (k, part) in parts.iter().enumerate() {
                        let at = format!("{at}.content.{k}");
                        let kind = check_block(part, "user", &at)?;
                        if !matches!(kind, "text" | "image" | "document") {
                            return Err(format!("{at}.type: tool results hold text, image and document blocks"));
                        }
                    }
                }
                Some(_) => return Err(format!("{at}.content: Input should be a valid string or list")),
            }
        }
        ("thinking", "assistant") => {
            known_fields(obj, &["type", "thinking", "signature"], at)?;
            if obj.get("signature").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(format!("{at}.signature: Field required"));
            }
        }
        ("redacted_thinking", "assistant") => known_fields(obj, &["type", "data"], at)?,
        ("image" | "document" | "tool_result", _) | ("tool_use" | "thinking" | "redacted_thinking", _) => {
            return Err(format!("{at}: `{kind}` blocks are not allowed in `{role}` messages"));
        }
        _ => {
            return Err(format!(
                "{at}: Input tag '{kind}' found using 'type' does not match any of the expected tags: 'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'"
            ));
        }
    }
    Ok(kind)
}

fn ids_of<'a>(blocks: &'a [Value], kind: &str, field: &str) -> Vec<&'a str> {
    blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some(kind))
        .filter_map(|b| b.get(field).and_then(Value::as_str))
        .collect()
}

fn check_messages(messages: &[Value]) -> Result<bool, String> {
    if messages.is_empty() {
        return Err("messages: at least one message is required".to_owned());
    }
    let mut uses_tools = false;
    let mut previous: Option<(&str, Vec<String>)> = None;
    let last = messages.len() - 1;
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages.{i}");
        let Some(obj) = message.as_object() else { return Err(format!("{at}: Input should be a valid dictionary")) };
        known_fields(obj, &["role", "content"], &at)?;
        let role = match obj.get("role").and_then(Value::as_str) {
            Some(r @ ("user" | "assistant")) => r,
            Some("system") => {
                return Err(format!(
                    "{at}.role: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role."
                ));
            }
            _ => return Err(format!("{at}.role: Input should be 'user' or 'assistant'")),
        };
        if let Some((prev_role, _)) = &previous
            && *prev_role == role
        {
            return Err(format!(
                "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{role}\" roles in a row"
            ));
        }
        let blocks: Vec<Value> = match obj.get("content") {
            Some(Value::String(s)) if s.is_empty() => {
                return Err("messages: text content blocks must be non-empty".to_owned());
            }
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            Some(Value::Array(blocks)) => blocks.clone(),
            _ => return Err(format!("{at}.content: Field required")),
        };
        if blocks.is_empty() && !(i == last && role == "assistant") {
            return Err(format!(
                "{at}: all messages must have non-empty content except for the optional final assistant message"
            ));
        }
        let mut seen_other = false;
        for (j, block) in blocks.iter().enumerate() {
            let kind = check_block(block, role, &format!("{at}.content.{j}"))?;
            if kind == "tool_result" {
                if seen_other {
                    return Err(format!("{at}: `tool_result` blocks must come before any other content"));
                }
            } else {
                seen_other = true;
            }
        }
        let results = ids_of(&blocks, "tool_result", "tool_use_id");
        let uses = ids_of(&blocks, "tool_use", "id");
        uses_tools |= !results.is_empty() || !uses.is_empty();
        let asked: Vec<&str> = match &previous {
            Some(("assistant", uses)) => uses.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        if let Some(unexpected) = results.iter().find(|id| !asked.contains(id)) {
            return Err(format!(
                "{at}.content: unexpected `tool_use_id` found in `tool_result` blocks: {unexpected}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            ));
        }
        let unanswered: Vec<&str> = asked.iter().copied().filter(|id| !results.contains(id)).collect();
        if !unanswered.is_empty() {
            return Err(format!(
                "{at}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                unanswered.join(", ")
            ));
        }
        previous = Some((role, uses.into_iter().map(str::to_owned).collect()));
    }
    Ok(uses_tools)
}

fn check_tools(tools: &Value) -> Result<Vec<&str>, String> {
    let Some(tools) = tools.as_array() else { return Err("tools: Input should be a valid list".to_owned()) };
    let mut names = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools.{i}.custom");
        let Some(obj) = tool.as_object() else { return Err(format!("tools.{i}: Input should be a valid dictionary")) };
        known_fields(obj, &["type", "name", "description", "input_schema", "cache_control", "strict"], &at)?;
        let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty()
            || name.len() > 128
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"));
        }
        match obj.get("input_schema") {
            Some(Value::Object(schema)) if schema.get("type").and_then(Value::as_str) == Some("object") => {}
            Some(Value::Object(_)) => return Err(format!("{at}.input_schema.type: Input should be 'object'")),
            _ => return Err(format!("{at}.input_schema: Field required")),
        }
        if names.contains(&name) {
            return Err("tools: Tool names must be unique.".to_owned());
        }
        names.push(name);
    }
    Ok(names)
}

/// Check a Messages request the way Anthropic does; the error message it would send.
pub fn validate(body: Option<&Value>) -> Result<(), String> {
    let Some(Value::Object(req)) = body else {
        return Err("The request body is not valid JSON.".to_owned());
    };
    known_fields(req, REQUEST_FIELDS, "")?;
    if !req.get("model").is_some_and(Value::is_string) {
        return Err("model: Field required".to_owned());
    }
    let max_tokens = match req.get("max_tokens") {
        None => return Err("max_tokens: Field required".to_owned()),
        Some(v) => v.as_u64().filter(|n| *n >= 1).ok_or("max_tokens: Input should be greater than or equal to 1")?,
    };
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return Err("messages: Field required".to_owned());
    };
    let uses_tools = check_messages(messages)?;
    match req.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                let at = format!("system.{i}");
                let obj = b.as_object().ok_or_else(|| format!("{at}: Input should be a valid dictionary"))?;
                if obj.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(format!("{at}.type: Input should be 'text'"));
                }
                check_text_block(obj, &at)?;
            }
        }
        Some(_) => return Err("system: Input should be a valid string or list".to_owned()),
    }
    let names = match req.get("tools") {
        Some(tools) => check_tools(tools)?,
        None => Vec::new(),
    };
    if uses_tools && req.get("tools").is_none() {
        return Err("Requests which include `tool_use` or `tool_result` blocks must define tools.".to_owned());
    }
    let mut forced = false;
    if let Some(choice) = req.get("tool_choice") {
        let obj = choice.as_object().ok_or("tool_choice: Input should be a valid dictionary")?;
        let kind = obj.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "auto" | "any" | "none" => known_fields(obj, &["type", "disable_parallel_tool_use"], "tool_choice")?,
            "tool" => {
                known_fields(obj, &["type", "name", "disable_parallel_tool_use"], "tool_choice")?;
                let name = obj.get("name").and_then(Value::as_str).ok_or("tool_choice.tool.name: Field required")?;
                if !names.contains(&name) {
                    return Err(format!("tool_choice: Tool '{name}' not found in provided tools"));
                }
            }
            _ => {
                return Err(
                    "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
                        .to_owned(),
                );
            }
        }
        forced = matches!(kind, "any" | "tool");
    }
    let temperature = number_in(req, "temperature", 0.0, 1.0)?;
    let top_p = number_in(req, "top_p", 0.0, 1.0)?;
    if let Some(k) = req.get("top_k")
        && k.as_u64().is_none()
    {
        return Err("top_k: Input should be a valid integer".to_owned());
    }
    if let Some(stops) = req.get("stop_sequences") {
        let stops = stops.as_array().ok_or("stop_sequences: Input should be a valid list")?;
        if stops.iter().any(|s| s.as_str().is_none_or(|s| s.trim().is_empty())) {
            return Err("stop_sequences: each stop sequence must contain non-whitespace".to_owned());
        }
    }
    if let Some(meta) = req.get("metadata") {
        let obj = meta.as_object().ok_or("metadata: Input should be a valid dictionary")?;
        known_fields(obj, &["user_id"], "metadata")?;
    }
    if let Some(stream) = req.get("stream")
        && !stream.is_boolean()
    {
        return Err("stream: Input should be a valid boolean".to_owned());
    }
    if let Some(config) = req.get("output_config") {
        let obj = config.as_object().ok_or("output_config: Input should be a valid dictionary")?;
        known_fields(obj, &["effort", "format"], "output_config")?;
        if let Some(effort) = obj.get("effort")
            && !matches!(effort.as_str(), Some("low" | "medium" | "high" | "max"))
        {
            return Err("output_config.effort: Input should be 'low', 'medium', 'high' or 'max'".to_owned());
        }
    }
    if let Some(thinking) = req.get("thinking") {
        let obj = thinking.as_object().ok_or("thinking: Input should be a valid dictionary")?;
        match obj.get("type").and_then(Value::as_str) {
            Some("enabled") => {
                known_fields(obj, &["type", "budget_tokens", "display"], "thinking.enabled")?;
                let budget = obj
                    .get("budget_tokens")
                    .and_then(Value::as_u64)
                    .ok_or("thinking.enabled.budget_tokens: Field required")?;
                if budget < 1024 {
                    return Err(
                        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024".to_owned()
                    );
                }
                if max_tokens <= budget {
                    return Err("`max_tokens` must be greater than `thinking.budget_tokens`.".to_owned());
                }
            }
            Some("adaptive") => known_fields(obj, &["type", "display"], "thinking.adaptive")?,
            Some("disabled") => known_fields(obj, &["type"], "thinking.disabled")?,
            _ => {
                return Err(
                    "thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'"
                        .to_owned(),
                );
            }
        }
        if obj.get("type").and_then(Value::as_str) != Some("disabled") {
            if forced {
                return Err("Thinking may not be enabled when tool_choice forces tool use.".to_owned());
            }
            if temperature.is_some_and(|t| t != 1.0) {
                return Err("`temperature` may only be set to 1 when thinking is enabled.".to_owned());
            }
            if req.contains_key("top_k") {
                return Err("`top_k` cannot be set when thinking is enabled.".to_owned());
            }
            if top_p.is_some_and(|p| p < 0.95) {
                return Err(
                    "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled.".to_owned()
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// messages

/// The parts of a (valid) request the reply depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Messages<'a> {
    pub model: &'a str,
    pub stream: bool,
    pub max_tokens: Option<u64>,
    pub prompt_tokens: u64,
    /// The tool to call: a forced `tool_choice`, or the first tool when the last user turn
    /// asks for one.
    pub tool: Option<&'a str>,
    pub thinking: bool,
}

fn text_chars(content: Option<&Value>) -> usize {
    match content {
        Some(Value::String(s)) => s.chars().count(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(|b| match b.get("type").and_then(Value::as_str) {
                Some("tool_result") => text_chars(b.get("content")),
                _ => b.get("text").and_then(Value::as_str).map_or(0, |t| t.chars().count()),
            })
            .sum(),
        _ => 0,
    }
}

fn has_trigger(content: Option<&Value>) -> bool {
    match content {
        Some(Value::String(s)) => s.contains(TOOL_TRIGGER),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .any(|t| t.contains(TOOL_TRIGGER)),
        _ => false,
    }
}

/// Read a (valid) request.
pub fn parse(body: &Value) -> Messages<'_> {
    let messages: &[Value] = body.get("messages").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    let chars = text_chars(body.get("system")) + messages.iter().map(|m| text_chars(m.get("content"))).sum::<usize>();
    let tools: Vec<&str> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect();
    let choice = body.get("tool_choice");
    let choice_type = choice.and_then(|c| c.get("type")).and_then(Value::as_str);
    let last_user = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user"));
    let tool = match choice_type {
        Some("none") => None,
        Some("tool") => choice.and_then(|c| c.get("name")).and_then(Value::as_str),
        Some("any") => tools.first().copied(),
        _ => tools.first().copied().filter(|_| last_user.is_some_and(|m| has_trigger(m.get("content")))),
    };
    let thinking = body.pointer("/thinking/type").and_then(Value::as_str).is_some_and(|t| t != "disabled");
    Messages {
        model: body.get("model").and_then(Value::as_str).unwrap_or_default(),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        max_tokens: body.get("max_tokens").and_then(Value::as_u64),
        prompt_tokens: (chars as u64 / 4).max(1),
        tool,
        thinking,
    }
}

/// An OpenAI finish reason (as the planner and scripts write it) -> Anthropic's stop reason.
pub fn stop_reason(reason: &str) -> String {
    match reason {
        "stop" => "end_turn".to_owned(),
        "length" => "max_tokens".to_owned(),
        "tool_calls" => "tool_use".to_owned(),
        "content_filter" => "refusal".to_owned(),
        other => other.to_owned(),
    }
}

/// The planner's (OpenAI-named) usage -> Anthropic's.
pub fn usage(usage: &Value) -> Value {
    let n = |k: &str| usage.get(k).cloned().unwrap_or(json!(0));
    let mut out = json!({
        "input_tokens": n("prompt_tokens"),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": n("completion_tokens"),
    });
    if let (Some(usage), Value::Object(out)) = (usage.as_object(), &mut out) {
        for (k, v) in usage {
            if !matches!(k.as_str(), "prompt_tokens" | "completion_tokens" | "total_tokens") {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

const THINKING: &str = "The user wants an answer; a short one will do.";

fn thinking_signature(seq: u64) -> String {
    format!("sim-thinking-signature-{seq}")
}

/// The reply's content blocks.
fn content(reply: &chat::Reply, thinking: bool) -> Vec<Value> {
    let mut out = Vec::new();
    if thinking {
        out.push(json!({"type": "thinking", "thinking": THINKING, "signature": thinking_signature(reply.seq)}));
    }
    match &reply.tool_call {
        Some(call) => {
            let input: Value = serde_json::from_str(TOOL_ARGUMENTS).unwrap_or_else(|_| json!({}));
            let id = format!("toolu_sim_{}", reply.seq);
            out.push(json!({"type": "tool_use", "id": id, "name": call.name, "input": input}));
        }
        None => out.push(json!({"type": "text", "text": reply.content})),
    }
    out
}

fn message_json(reply: &chat::Reply, content: Vec<Value>, stop: Value, usage: Value) -> Value {
    let mut v = json!({
        "id": format!("msg_sim_{}", reply.seq),
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage,
        "x_sim": {"request": reply.seq},
    });
    if let (Some(extra), Value::Object(map)) = (&reply.extra, &mut v) {
        map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    v
}

/// The whole answer.
pub fn response_body(reply: &chat::Reply, thinking: bool) -> Value {
    message_json(reply, content(reply, thinking), json!(stop_reason(&reply.finish_reason)), usage(&reply.usage))
}

/// The stream's events, `(name, data)`, in Anthropic's order.
pub fn stream_events(reply: &chat::Reply, thinking: bool) -> Vec<(&'static str, Value)> {
    let final_usage = usage(&reply.usage);
    let mut start_usage = final_usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": message_json(reply, Vec::new(), Value::Null, start_usage)}),
        ),
        ("ping", json!({"type": "ping"})),
    ];
    let mut index = 0;
    let delta = |index: usize, delta: Value| {
        ("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": delta}))
    };
    let stop = |index: usize| ("content_block_stop", json!({"type": "content_block_stop", "index": index}));
    if thinking {
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
                   "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ));
        events.push(delta(index, json!({"type": "thinking_delta", "thinking": THINKING})));
        events.push(delta(index, json!({"type": "signature_delta", "signature": thinking_signature(reply.seq)})));
        events.push(stop(index));
        index += 1;
    }
    match &reply.tool_call {
        Some(call) => {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": format!("toolu_sim_{}", reply.seq), "name": call.name, "input": {}}}),
            ));
            let half = TOOL_ARGUMENTS.len() / 2;
            for piece in ["", &TOOL_ARGUMENTS[..half], &TOOL_ARGUMENTS[half..]] {
                events.push(delta(index, json!({"type": "input_json_delta", "partial_json": piece})));
            }
        }
        None => {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
            ));
            for range in chat::pieces(&reply.content) {
                let text = reply.content.get(range).unwrap_or_default();
                events.push(delta(index, json!({"type": "text_delta", "text": text})));
            }
        }
    }
    events.push(stop(index));
    events.push((
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason(&reply.finish_reason), "stop_sequence": null},
               "usage": {"output_tokens": final_usage["output_tokens"]}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    events
}

/// `event: <name>\ndata: <json>\n\n`.
pub fn named_frame(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// A scripted error as Anthropic's `{"type": "error", "error": {...}}`: a whole body, an
/// `{"error": {...}}`, a bare `{type, message}` or an OpenAI-ish `{code, message}`.
pub fn error_event(error: &Value) -> Value {
    if error.get("type").and_then(Value::as_str) == Some("error") && error.get("error").is_some() {
        return error.clone();
    }
    if let Some(inner) = error.get("error").filter(|e| e.is_object()) {
        return json!({"type": "error", "error": inner});
    }
    let message = error.get("message").and_then(Value::as_str).unwrap_or("Overloaded");
    let kind = match error.get("type").and_then(Value::as_str) {
        Some(kind) => kind,
        None => error
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .map_or("overloaded_error", error_type),
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

fn default_error() -> Value {
    error_body(529, "Overloaded")
}

/// Anthropic's status for an error type.
fn status_of(kind: &str) -> StatusCode {
    let status = match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    };
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

struct Sse;

impl Framing for Sse {
    fn error(&self, error: &Value) -> Vec<Bytes> {
        vec![named_frame("error", &error_event(error))]
    }
    fn malformed(&self) -> Bytes {
        Bytes::from_static(
            b"event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"delta\": {\"type\": \"text_del\n\n",
        )
    }
    fn done(&self) -> Option<Bytes> {
        None
    }
}

/// `(milliseconds since the epoch)` -> `2026-11-27T08:00:01Z` (rounded up to the second).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms.div_ceil(1000);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // civil from days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// `anthropic-ratelimit-*` headers for the configured per-minute axes.
pub fn rate_limit_headers(snapshot: &Snapshot, now_ms: u64) -> Vec<Header> {
    let mut out = Vec::new();
    let axes: [(Axis, [&'static str; 3]); 2] = [
        (
            Axis::Rpm,
            [
                "anthropic-ratelimit-requests-limit",
                "anthropic-ratelimit-requests-remaining",
                "anthropic-ratelimit-requests-reset",
            ],
        ),
        (
            Axis::Tpm,
            [
                "anthropic-ratelimit-tokens-limit",
                "anthropic-ratelimit-tokens-remaining",
                "anthropic-ratelimit-tokens-reset",
            ],
        ),
    ];
    for (axis, [limit, remaining, reset]) in axes {
        if let Some(usage) = snapshot.get(axis) {
            out.push((limit, usage.limit.to_string()));
            out.push((remaining, usage.remaining().to_string()));
            out.push((reset, rfc3339(now_ms + usage.reset_ms)));
        }
    }
    out
}

async fn messages(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let upstream = ctx.upstream;
    let config = &upstream.config;
    if let Err(message) = validate(ctx.json) {
        return invalid(ctx, &message);
    }
    let Some(body) = ctx.json else { return invalid(ctx, "The request body is not valid JSON.") };
    let request = parse(body);
    let model = request.model;
    if config.strict_models && !config.models.iter().any(|m| m == model) {
        return ctx.error(StatusCode::NOT_FOUND, &format!("model: {model}"), "not_found_error", None);
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
        model,
        stream: request.stream,
        include_usage: true,
        max_tokens: request.max_tokens,
        prompt_tokens: request.prompt_tokens,
        tool: request.tool,
    };
    let reply = chat::plan(&planned, config.reply_tokens, ctx.seq, ctx.now_ms / 1000, custom);
    let mut headers = Vec::new();
    match upstream.acquire(ctx.key.unwrap_or(""), model, reply.tokens, ctx.now_ms) {
        Some(Decision::Allowed(snapshot)) => headers = rate_limit_headers(&snapshot, ctx.now_ms),
        Some(Decision::Limited { axis, requested, snapshot }) => {
            let hit =
                RateLimitHit { axis, snapshot: &snapshot, requested, model, now_ms: ctx.now_ms, retry_after_s: None };
            let mut limited = rate_limited(ctx.profile(), &hit);
            for (name, value) in rate_limit_headers(&snapshot, ctx.now_ms) {
                if let Ok(value) = HeaderValue::try_from(value) {
                    limited.headers_mut().insert(HeaderName::from_static(name), value);
                }
            }
            return limited;
        }
        None => {}
    }
    sleep_ms(config.latency_ms).await;
    if request.stream {
        let frames: Vec<Bytes> =
            stream_events(&reply, request.thinking).iter().map(|(name, data)| named_frame(name, data)).collect();
        let delay = std::time::Duration::from_millis(config.token_delay_ms);
        let shape = stream_shape(action, default_error);
        let body = Frames::new(frames, delay, shape, &Sse).into_body();
        return response(StatusCode::OK, HeaderValue::from_static("text/event-stream; charset=utf-8"), body, &headers);
    }
    if let Some(Action::MidStreamError { error, .. }) = &action {
        // without a stream, the error is the answer
        let error = error_event(&error.clone().unwrap_or_else(default_error));
        let status = status_of(error.pointer("/error/type").and_then(Value::as_str).unwrap_or_default());
        return json_response(status, &error, &headers);
    }
    deliver_json(to_bytes(&response_body(&reply, request.thinking)), headers, action.as_ref())
}

// ---------------------------------------------------------------------------------------------
// models

/// `claude-3-5-haiku-20241022` -> `Claude 3.5 Haiku`.
fn display_name(id: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut version: Vec<&str> = Vec::new();
    let flush = |version: &mut Vec<&str>, words: &mut Vec<String>| {
        if !version.is_empty() {
            words.push(version.join("."));
            version.clear();
        }
    };
    for token in id.split('-') {
        if token.chars().all(|c| c.is_ascii_digit()) {
            if token.len() <= 2 {
                version.push(token);
            }
            continue;
        }
        flush(&mut version, &mut words);
        let mut chars = token.chars();
        words.push(chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default());
    }
    flush(&mut version, &mut words);
    words.join(" ")
}

/// One entry of `GET /models`.
pub fn model_entry(id: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": display_name(id), "created_at": rfc3339(MODEL_CREATED * 1000)})
}

/// A page of `GET /models`: `limit` (default 20, 1..=1000) after `after_id`.
pub fn models_page(models: &[String], limit: Option<&str>, after: Option<&str>) -> Result<Value, String> {
    let limit = match limit {
        None => 20,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            Ok(0) => return Err("limit: Input should be greater than or equal to 1".to_owned()),
            Ok(_) => return Err("limit: Input should be less than or equal to 1000".to_owned()),
            Err(_) => return Err("limit: Input should be a valid integer".to_owned()),
        },
    };
    let start = match after.filter(|a| !a.is_empty()) {
        None => 0,
        Some(id) => {
            models.iter().position(|m| m == id).map(|i| i + 1).ok_or_else(|| format!("after_id: unknown model {id}"))?
        }
    };
    let end = start.saturating_add(limit).min(models.len());
    let page: Vec<Value> = models.get(start..end).unwrap_or_default().iter().map(|m| model_entry(m)).collect();
    let first = page.first().map(|m| m["id"].clone()).unwrap_or(Value::Null);
    let last = page.last().map(|m| m["id"].clone()).unwrap_or(Value::Null);
    Ok(json!({"data": page, "has_more": end < models.len(), "first_id": first, "last_id": last}))
}

async fn list(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let config = &ctx.upstream.config;
    let limit = query_param(ctx.query, "limit");
    let after = query_param(ctx.query, "after_id");
    match models_page(&config.models, limit.as_deref(), after.as_deref()) {
        Ok(body) => {
            sleep_ms(config.latency_ms).await;
            deliver_json(to_bytes(&body), Vec::new(), action.as_ref())
        }
        Err(message) => invalid(ctx, &message),
    }
}

async fn get_model(ctx: &Ctx<'_>, id: &str, action: Option<Action>) -> Response {
    let config = &ctx.upstream.config;
    if config.strict_models && !config.models.iter().any(|m| m == id) {
        return ctx.error(StatusCode::NOT_FOUND, &format!("model: {id}"), "not_found_error", None);
    }
    sleep_ms(config.latency_ms).await;
    deliver_json(to_bytes(&model_entry(id)), Vec::new(), action.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::plan;
    use crate::limits::Usage;

    fn request() -> Value {
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 3,
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": "please call a tool"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "text", "text": "thanks"}]},
            ],
            "tools": [{"name": "get_weather",
                       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        })
    }

    #[test]
    fn keys_versions_and_models() {
        let mut headers = HeaderMap::new();
        assert_eq!(key(&headers, None), None);
        headers.insert("x-api-key", HeaderValue::from_static("sk-ant-1"));
        assert_eq!(key(&headers, None).as_deref(), Some(NO_VERSION));
        headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        assert_eq!(key(&headers, None).as_deref(), Some("sk-ant-1"));
        let body = json!({"model": "claude-haiku-4-5"});
        assert_eq!(model("/messages", Some(&body)), Some("claude-haiku-4-5"));
        assert_eq!(model("/models/claude-opus-4-1", None), Some("claude-opus-4-1"));
        assert_eq!(model("/models", None), None);
    }

    #[test]
    fn requests_are_checked_like_anthropic_checks_them() {
        assert_eq!(validate(Some(&request())), Ok(()));
        let with = |f: &dyn Fn(&mut Value)| {
            let mut r = request();
            f(&mut r);
            validate(Some(&r)).unwrap_err()
        };
        assert_eq!(with(&|r| r["response_format"] = json!({})), "response_format: Extra inputs are not permitted");
        assert_eq!(
            with(&|r| {
                r.as_object_mut().unwrap().remove("max_tokens");
            }),
            "max_tokens: Field required"
        );
        assert!(with(&|r| r["messages"][0]["role"] = json!("system")).contains("top-level `system`"));
        assert!(with(&|r| r["messages"][0]["name"] = json!("x")).contains("messages.0.name: Extra inputs"));
        assert!(with(&|r| r["messages"][2]["role"] = json!("assistant")).contains("roles must alternate"));
        assert!(with(&|r| r["messages"][0]["content"] = json!("")).contains("non-empty"));
        assert!(
            with(&|r| r["messages"][2]["content"][0]["tool_use_id"] = json!("toolu_9"))
                .contains("unexpected `tool_use_id`")
        );
        assert!(with(&|r| r["messages"][2]["content"] = json!("no results")).contains("without `tool_result`"));
        let e = with(&|r| {
            let content = r["messages"][2]["content"].as_array_mut().unwrap();
            content.reverse();
        });
        assert!(e.contains("must come before"), "{e}");
        assert!(
            with(&|r| {
                r.as_object_mut().unwrap().remove("tools");
            })
            .contains("must define tools")
        );
        assert!(with(&|r| r["tools"][0]["input_schema"]["type"] = json!("array")).contains("Input should be 'object'"));
        assert!(with(&|r| r["tools"][0]["parameters"] = json!({})).contains("tools.0.custom.parameters"));
        assert!(with(&|r| r["temperature"] = json!(1.5)).contains("less than or equal to 1"));
        assert!(with(&|r| r["tool_choice"] = json!({"type": "tool", "name": "nope"})).contains("not found"));
        assert!(with(&|r| r["tool_choice"] = json!({"type": "required"})).contains("tool_choice"));
        assert!(
            with(&|r| r["messages"][0]["content"] = json!([{"type": "image_url", "image_url": {}}]))
                .contains("'image_url'")
        );
        let e = with(&|r| {
            r["messages"][0]["content"] =
                json!([{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}])
        });
        assert!(e.contains("media_type"), "{e}");
        assert!(with(&|r| r["stop_sequences"] = json!([" "])).contains("non-whitespace"));
        assert!(with(&|r| r["metadata"] = json!({"user": "x"})).contains("metadata.user"));
        // thinking
        let e = with(&|r| r["thinking"] = json!({"type": "enabled", "budget_tokens": 1024}));
        assert!(e.contains("`max_tokens` must be greater"), "{e}");
        let e = with(&|r| r["thinking"] = json!({"type": "enabled", "budget_tokens": 100}));
        assert!(e.contains("1024"), "{e}");
        let e = with(&|r| {
            r["max_tokens"] = json!(4096);
            r["thinking"] = json!({"type": "adaptive"});
            r["temperature"] = json!(0.5);
        });
        assert!(e.contains("`temperature` may only be set to 1"), "{e}");
        let e = with(&|r| {
            r["thinking"] = json!({"type": "adaptive"});
            r["tool_choice"] = json!({"type": "any"});
        });
        assert!(e.contains("forces tool use"), "{e}");
        let mut ok = request();
        ok["max_tokens"] = json!(2048);
        ok["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
        ok["system"] = json!([{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]);
        ok["messages"][0]["content"] = json!([
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]);
        assert_eq!(validate(Some(&ok)), Ok(()));
        assert!(validate(None).is_err());
    }

    #[test]
    fn the_reply_depends_on_the_last_user_turn_and_the_tool_choice() {
        let r = request();
        let m = parse(&r);
        assert_eq!((m.model, m.max_tokens, m.stream, m.thinking), ("claude-sonnet-4-5", Some(3), false, false));
        assert_eq!(m.prompt_tokens, 11); // 9 + 18 + 9 + 5 + 6 = 47 chars
        assert_eq!(m.tool, None, "the last user turn holds the results");
        let mut first = request();
        first["messages"] = json!([{"role": "user", "content": [{"type": "text", "text": "please call a tool"}]}]);
        assert_eq!(parse(&first).tool, Some("get_weather"));
        first["tool_choice"] = json!({"type": "none"});
        assert_eq!(parse(&first).tool, None);
        let mut forced = request();
        forced["tool_choice"] = json!({"type": "tool", "name": "get_weather"});
        assert_eq!(parse(&forced).tool, Some("get_weather"));
        forced["tool_choice"] = json!({"type": "any"});
        assert_eq!(parse(&forced).tool, Some("get_weather"));
    }

    fn reply(tool: Option<&str>, tokens: u32) -> chat::Reply {
        let req = chat::ChatRequest {
            model: "claude-sonnet-4-5",
            stream: true,
            include_usage: true,
            max_tokens: None,
            prompt_tokens: 4,
            tool,
        };
        plan(&req, tokens, 7, 100, None)
    }

    #[test]
    fn messages_in_anthropic_shape() {
        let body = response_body(&reply(None, 3), false);
        assert_eq!(body["id"], "msg_sim_7");
        assert_eq!(body["type"], "message");
        assert_eq!(body["role"], "assistant");
        assert_eq!(body["content"], json!([{"type": "text", "text": "tok0 tok1 tok2"}]));
        assert_eq!(body["stop_reason"], "end_turn");
        assert_eq!(
            body["usage"],
            json!({"input_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                   "output_tokens": 3})
        );
        assert_eq!(body["x_sim"]["request"], 7);
        let call = response_body(&reply(Some("get_weather"), 3), true);
        assert_eq!(call["content"][0]["type"], "thinking");
        assert_eq!(call["content"][0]["signature"], "sim-thinking-signature-7");
        assert_eq!(
            call["content"][1],
            json!({"type": "tool_use", "id": "toolu_sim_7", "name": "get_weather", "input": {"sim": true}})
        );
        assert_eq!(call["stop_reason"], "tool_use");
        assert_eq!(stop_reason("length"), "max_tokens");
        assert_eq!(stop_reason("content_filter"), "refusal");
        assert_eq!(stop_reason("pause_turn"), "pause_turn");
        let cached = usage(&json!({"prompt_tokens": 1, "completion_tokens": 2, "cache_read_input_tokens": 5}));
        assert_eq!(cached["cache_read_input_tokens"], 5);
    }

    #[test]
    fn stream_events_follow_anthropics_order() {
        let events = stream_events(&reply(None, 3), false);
        let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        for (name, data) in &events {
            assert_eq!(data["type"], *name);
        }
        assert_eq!(events[0].1["message"]["content"], json!([]));
        assert!(events[0].1["message"]["stop_reason"].is_null());
        assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 4);
        let text: String = events[3..6].iter().map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_owned()).collect();
        assert_eq!(text, "tok0 tok1 tok2");
        assert_eq!(events[7].1["delta"]["stop_reason"], "end_turn");
        assert_eq!(events[7].1["usage"]["output_tokens"], 3);

        let events = stream_events(&reply(Some("f"), 3), true);
        assert_eq!(events[2].1["content_block"]["type"], "thinking");
        assert_eq!(events[4].1["delta"]["type"], "signature_delta");
        assert_eq!(
            events[6].1["content_block"],
            json!({"type": "tool_use", "id": "toolu_sim_7", "name": "f", "input": {}})
        );
        let json: String = events
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(json, TOOL_ARGUMENTS);
        assert!(
            events.iter().filter(|(n, _)| *n == "content_block_delta").all(|(_, d)| d["index"] == 1 || d["index"] == 0)
        );
        assert_eq!(events[events.len() - 2].1["delta"]["stop_reason"], "tool_use");

        let frames = Frames::new(
            vec![named_frame("ping", &json!({"type": "ping"}))],
            std::time::Duration::ZERO,
            stream_shape(Some(Action::MidStreamError { chunks: 1, error: None }), default_error),
            &Sse,
        );
        assert_eq!(frames.frames().len(), 2);
        let frame = std::str::from_utf8(&frames.frames()[1]).unwrap();
        let data: Value = serde_json::from_str(frame.strip_prefix("event: error\ndata: ").unwrap().trim()).unwrap();
        assert_eq!(data["error"]["type"], "overloaded_error");
        assert_eq!(error_event(&json!({"code": 500, "message": "boom"}))["error"]["type"], "api_error");
        assert_eq!(error_event(&json!({"type": "api_error", "message": "x"}))["error"]["type"], "api_error");
        assert_eq!(error_event(&json!({"error": {"type": "overloaded_error", "message": "x"}}))["type"], "error");
    }

    #[test]
    fn rate_limit_headers_and_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_766_400_000), "2026-11-27T08:00:00Z");
        assert_eq!(rfc3339(1_795_766_400_001), "2026-11-27T08:00:01Z");
        assert_eq!(rfc3339(1_709_164_800_000 + 86_399_000), "2024-02-29T23:59:59Z");
        let mut snap = Snapshot::default();
        snap.set(Axis::Rpm, Usage { limit: 50, used: 1, reset_ms: 1_000 });
        snap.set(Axis::Tpm, Usage { limit: 20_000, used: 300, reset_ms: 60_000 });
        snap.set(Axis::Rpd, Usage { limit: 9, used: 1, reset_ms: 1 });
        let h = rate_limit_headers(&snap, 1_795_766_400_000);
        assert_eq!(h.len(), 6);
        assert!(h.contains(&("anthropic-ratelimit-requests-limit", "50".to_owned())));
        assert!(h.contains(&("anthropic-ratelimit-requests-remaining", "49".to_owned())));
        assert!(h.contains(&("anthropic-ratelimit-requests-reset", "2026-11-27T08:00:01Z".to_owned())));
        assert!(h.contains(&("anthropic-ratelimit-tokens-remaining", "19700".to_owned())));
        assert!(h.contains(&("anthropic-ratelimit-tokens-reset", "2026-11-27T08:01:00Z".to_owned())));
        assert!(rate_limit_headers(&Snapshot::default(), 0).is_empty());
        let body = rate_limit_body(Axis::Rpm, 50, "claude-x");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert!(body["error"]["message"].as_str().unwrap().contains("50 requests per minute"));
        assert_eq!(
            auth_error(Some("k"))["error"],
            json!({"type": "authentication_error", "message": "invalid x-api-key"})
        );
        assert_eq!(error_body(529, "Overloaded")["error"]["type"], "overloaded_error");
    }

    #[test]
    fn model_pages() {
        let models: Vec<String> = ["claude-sonnet-4-5", "claude-3-5-haiku-20241022", "claude-opus-4-1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let page = models_page(&models, Some("2"), None).unwrap();
        assert_eq!(page["data"].as_array().unwrap().len(), 2);
        assert_eq!(
            (page["has_more"].as_bool(), page["last_id"].as_str()),
            (Some(true), Some("claude-3-5-haiku-20241022"))
        );
        assert_eq!(page["data"][1]["display_name"], "Claude 3.5 Haiku");
        assert_eq!(page["data"][0]["display_name"], "Claude Sonnet 4.5");
        assert_eq!(page["data"][0]["type"], "model");
        assert_eq!(page["data"][0]["created_at"], "2023-11-14T22:13:20Z");
        let rest = models_page(&models, Some("2"), Some("claude-3-5-haiku-20241022")).unwrap();
        assert_eq!(rest["data"][0]["id"], "claude-opus-4-1");
        assert_eq!(rest["has_more"], false);
        assert_eq!(models_page(&models, None, None).unwrap()["data"].as_array().unwrap().len(), 3);
        assert!(models_page(&models, Some("0"), None).is_err());
        assert!(models_page(&models, Some("1001"), None).is_err());
        assert!(models_page(&models, None, Some("nope")).is_err());
        let empty = models_page(&[], None, None).unwrap();
        assert!(empty["first_id"].is_null() && empty["has_more"] == false);
    }

    mod over_http {
        use super::*;
        use crate::{SimConfig, Simulator};

        async fn sim_with(limits: Value) -> Simulator {
            let config: SimConfig = serde_json::from_value(json!({"upstreams": [{
                "prefix": "/v1", "profile": "anthropic", "keys": ["sk-ant-good"],
                "models": ["claude-sonnet-4-5", "claude-haiku-4-5"], "strict_models": true,
                "reply_tokens": 4, "limits": limits,
            }]}))
            .unwrap();
            Simulator::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
        }

        fn body() -> Value {
            json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
                   "messages": [{"role": "user", "content": "Hello there, Claude"}]})
        }

        async fn post(sim: &Simulator, key: Option<&str>, body: &Value) -> reqwest::Response {
            let mut r = reqwest::Client::new()
                .post(sim.url("/v1/messages"))
                .json(body)
                .header("anthropic-version", "2023-06-01");
            if let Some(key) = key {
                r = r.header("x-api-key", key);
            }
            r.send().await.unwrap()
        }

        #[tokio::test]
        async fn messages_stream_and_list() {
            let sim = sim_with(Value::Null).await;
            let r = post(&sim, Some("sk-ant-good"), &body()).await;
            assert_eq!(r.status(), 200);
            assert!(r.headers().get("anthropic-ratelimit-requests-limit").is_none(), "no limits, no headers");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["content"][0]["text"], "tok0 tok1 tok2 tok3");
            assert_eq!(v["usage"]["output_tokens"], 4);

            let mut streamed = body();
            streamed["stream"] = json!(true);
            let r = post(&sim, Some("sk-ant-good"), &streamed).await;
            assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
            let text = r.text().await.unwrap();
            let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
            assert!(events[0].starts_with("event: message_start\ndata: {"));
            assert!(events.last().unwrap().starts_with("event: message_stop"));
            assert!(!text.contains("[DONE]"));
            assert_eq!(events.iter().filter(|e| e.contains("text_delta")).count(), 4);

            let listed: Value = reqwest::Client::new()
                .get(sim.url("/v1/models?limit=1"))
                .header("x-api-key", "sk-ant-good")
                .header("anthropic-version", "2023-06-01")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(listed["data"][0]["id"], "claude-sonnet-4-5");
            assert_eq!(listed["has_more"], true);

            let requests = sim.requests();
            assert_eq!(requests[0].key.as_deref(), Some("sk-ant-good"));
            assert_eq!(sim.stats().by_model["claude-sonnet-4-5"], 2);

            let mut unknown = body();
            unknown["model"] = json!("claude-9");
            let r = post(&sim, Some("sk-ant-good"), &unknown).await;
            assert_eq!(r.status(), 404);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["type"], "not_found_error");
            let r = post(&sim, Some("sk-ant-good"), &json!({"model": "claude-sonnet-4-5", "messages": []})).await;
            assert_eq!(r.status(), 400);
            let v: Value = r.json().await.unwrap();
            assert_eq!(
                v,
                json!({"type": "error",
                       "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}})
            );
            // no anthropic-version
            let r = reqwest::Client::new()
                .post(sim.url("/v1/messages"))
                .header("x-api-key", "sk-ant-good")
                .json(&body())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400);
            assert!(r.text().await.unwrap().contains("anthropic-version"));
            sim.shutdown().await;
        }

        #[tokio::test]
        async fn keys_limits_and_scripts() {
            let sim = sim_with(json!({"rpm": 2, "tpm": 10000})).await;
            let r = post(&sim, Some("sk-ant-bad"), &body()).await;
            assert_eq!(r.status(), 401);
            let text = r.text().await.unwrap();
            assert!(text.contains("authentication_error") && !text.contains("sk-ant-bad"), "{text}");
            assert_eq!(post(&sim, None, &body()).await.status(), 401);

            let r = post(&sim, Some("sk-ant-good"), &body()).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["anthropic-ratelimit-requests-limit"], "2");
            assert_eq!(r.headers()["anthropic-ratelimit-requests-remaining"], "1");
            assert!(r.headers()["anthropic-ratelimit-tokens-reset"].to_str().unwrap().ends_with('Z'));
            assert_eq!(post(&sim, Some("sk-ant-good"), &body()).await.status(), 200);
            let r = post(&sim, Some("sk-ant-good"), &body()).await;
            assert_eq!(r.status(), 429);
            assert!(r.headers().get("retry-after").is_some());
            assert_eq!(r.headers()["anthropic-ratelimit-requests-remaining"], "0");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["type"], "rate_limit_error");

            sim.shutdown().await;

            // scripts, without limits
            let sim = sim_with(Value::Null).await;
            sim.add_rules(
                serde_json::from_value(json!([
                    {"times": 1, "action": {"type": "rate_limit", "retry_after_s": 7}},
                    {"times": 1, "action": {"type": "status", "status": 529}},
                    {"times": 1, "action": {"type": "mid_stream_error", "chunks": 3}},
                    {"times": 1, "action": {"type": "mid_stream_error", "chunks": 3}},
                    {"times": 1, "action": {"type": "reply", "content": "hi there", "finish_reason": "length"}},
                ]))
                .unwrap(),
            );
            let r = post(&sim, Some("sk-ant-good"), &body()).await;
            assert_eq!(r.status(), 429);
            assert_eq!(r.headers()["retry-after"], "7");
            assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_error");
            let r = post(&sim, Some("sk-ant-good"), &body()).await;
            assert_eq!(r.status(), 529);
            assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "overloaded_error");
            let mut streamed = body();
            streamed["stream"] = json!(true);
            let text = post(&sim, Some("sk-ant-good"), &streamed).await.text().await.unwrap();
            let last = text.trim_end().rsplit("\n\n").next().unwrap();
            let data = last.strip_prefix("event: error\ndata: ").expect("an error event last");
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
            let r = post(&sim, Some("sk-ant-good"), &body()).await;
            assert_eq!(r.status(), 529);
            let v: Value = post(&sim, Some("sk-ant-good"), &body()).await.json().await.unwrap();
            assert_eq!(v["content"][0]["text"], "hi there");
            assert_eq!(v["stop_reason"], "max_tokens");
            sim.shutdown().await;
        }
    }
}
