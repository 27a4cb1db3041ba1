//! Gemini's native API (`profile = "gemini"`), as `generativelanguage.googleapis.com/v1beta`
//! serves it under the upstream's prefix:
//!
//! - `POST /models/{model}:generateContent` -> a `GenerateContentResponse`;
//!   `POST /models/{model}:streamGenerateContent?alt=sse` -> SSE `data: {GenerateContentResponse}`
//!   events, the last with `finishReason` and the final `usageMetadata`, no `[DONE]` (without
//!   `alt=sse`: one JSON array of the same responses);
//! - `GET /models` (`pageSize`, default 50; `pageToken`) and `GET /models/{id}`, in Gemini's
//!   shape (`name: "models/{id}"`, `supportedGenerationMethods`, `inputTokenLimit`,
//!   `outputTokenLimit`, `thinking`); ids containing `embedding` only `embedContent`;
//! - the key in `x-goog-api-key` or `?key=`; an unknown key is a 400 `INVALID_ARGUMENT` "API key
//!   not valid. Please pass a valid API key." (`ErrorInfo` reason `API_KEY_INVALID`), a missing
//!   one a 403 `PERMISSION_DENIED`;
//! - requests are checked as strictly as Gemini checks them: an unknown field (an OpenAI
//!   parameter left in, `additionalProperties` in a schema) is a 400 naming it, roles must be
//!   `user` or `model`, parts must not be empty and hold exactly one kind of data;
//! - limits: rpm / rpd count requests, tpm / tpd count input tokens (Gemini's free-tier metric);
//!   a 429 is `RESOURCE_EXHAUSTED` with `QuotaFailure` (`...PerMinute...` / `...PerDay...`) and
//!   `RetryInfo`, without any header;
//! - the reply: `tok0 tok1 ...` as text parts; with `tools` and "call a tool" in the last user
//!   turn, a `functionCall` part (args `{"sim": true}`) carrying a `thoughtSignature`;
//! - scripted `reply`: `finish_reason` in OpenAI terms is translated (`stop` -> `STOP`,
//!   `length` -> `MAX_TOKENS`, `content_filter` -> `SAFETY`; anything else is sent as is);
//!   `usage` in OpenAI terms is translated and other keys (`thoughtsTokenCount`) are added to
//!   `usageMetadata`; `extra` is merged into every response;
//! - scripted `mid_stream_error`: `data: {"error": {...}}` (default 503 `UNAVAILABLE`), then the
//!   stream ends; without a stream it is the error response itself.

use axum::http::header::HeaderValue;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Frames, Framing, query_param, sse_frame, stream_shape};
use crate::chat::{self, Custom, TOOL_ARGUMENTS, TOOL_TRIGGER};
use crate::limits::Decision;
use crate::profiles::{RateLimitHit, gemini_auth_error, grpc_status};
use crate::provider::{Ctx, deliver_json, json_response, rate_limited, response, sleep_ms, to_bytes};
use crate::script::Action;
use crate::state::Upstream;

/// Fields a `GenerateContentRequest` may have (camelCase; snake_case is accepted too).
const REQUEST_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
    "labels",
];
const GENERATION_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "mediaResolution",
];
const CONTENT_FIELDS: &[&str] = &["role", "parts"];
/// The `data` one-of of a part, and the fields that may sit beside it.
const PART_DATA: &[&str] =
    &["text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"];
const PART_META: &[&str] = &["thought", "thoughtSignature", "videoMetadata", "partMetadata"];
const TOOL_FIELDS: &[&str] =
    &["functionDeclarations", "googleSearchRetrieval", "codeExecution", "googleSearch", "urlContext", "computerUse"];
const DECLARATION_FIELDS: &[&str] =
    &["name", "description", "behavior", "parameters", "parametersJsonSchema", "response", "responseJsonSchema"];
const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// The key in `x-goog-api-key`, else `?key=`.
pub fn key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let header = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty());
    match header {
        Some(k) => Some(k.to_owned()),
        None => query_param(query, "key").filter(|k| !k.is_empty()).map(|k| k.into_owned()),
    }
}

/// `gemini-2.5-flash` of `/models/gemini-2.5-flash:generateContent` (or of `/models/{id}`).
pub fn model<'a>(suffix: &'a str, _body: Option<&'a Value>) -> Option<&'a str> {
    let name = suffix.strip_prefix("/models/")?;
    let model = name.split(':').next().unwrap_or(name);
    (!model.is_empty()).then_some(model)
}

pub fn unauthorized(key: Option<&str>) -> Response {
    let (status, body) = gemini_auth_error(key);
    json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), &body, &[])
}

pub async fn serve(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let suffix = ctx.suffix();
    let post = *ctx.method == Method::POST;
    let get = *ctx.method == Method::GET;
    match suffix.strip_prefix("/models") {
        Some("") | Some("/") if get => list(ctx, action).await,
        Some(rest) if rest.starts_with('/') => {
            let name = &rest[1..];
            match name.split_once(':') {
                None if get => get_model(ctx, name, action).await,
                Some((model, "generateContent")) if post => generate(ctx, model, false, action).await,
                Some((model, "streamGenerateContent")) if post => generate(ctx, model, true, action).await,
                Some((model, "batchEmbedContents")) if post => crate::embed::gemini(ctx, model, action).await,
                _ => not_found(ctx),
            }
        }
        _ => not_found(ctx),
    }
}

fn not_found(ctx: &Ctx<'_>) -> Response {
    let message = format!("Method not found: {} {}", ctx.method, ctx.path);
    ctx.error(StatusCode::NOT_FOUND, &message, "", None)
}

fn invalid(ctx: &Ctx<'_>, message: &str) -> Response {
    ctx.error(StatusCode::BAD_REQUEST, message, "", None)
}

fn model_not_found(ctx: &Ctx<'_>, model: &str) -> Response {
    let message = format!(
        "models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."
    );
    ctx.error(StatusCode::NOT_FOUND, &message, "", None)
}

// ---------------------------------------------------------------------------------------------
// request checks

/// `systemInstruction` for `system_instruction` (the JSON parser takes both spellings).
fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn unknown_field(name: &str, at: &str) -> String {
    if at.is_empty() {
        format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field.")
    } else {
        format!("Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field.")
    }
}

fn known_fields(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    for name in obj.keys() {
        if !allowed.contains(&camel(name).as_str()) {
            return Err(unknown_field(name, at));
        }
    }
    Ok(())
}

fn field<'a>(obj: &'a Map<String, Value>, camel_name: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| camel(k) == camel_name).map(|(_, v)| v)
}

fn check_schema(schema: &Value, at: &str) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Err(format!("Invalid value at '{at}': a schema must be an object"));
    };
    known_fields(obj, SCHEMA_FIELDS, at)?;
    if let Some(props) = field(obj, "properties").and_then(Value::as_object) {
        for (name, prop) in props {
            check_schema(prop, &format!("{at}.properties[{name}].value"))?;
        }
    }
    if let Some(items) = field(obj, "items") {
        check_schema(items, &format!("{at}.items"))?;
    }
    for (i, variant) in field(obj, "anyOf").and_then(Value::as_array).into_iter().flatten().enumerate() {
        check_schema(variant, &format!("{at}.any_of[{i}]"))?;
    }
    Ok(())
}

/// Check a `GenerateContentRequest` the way Gemini does; the error message it would send.
pub fn validate(body: Option<&Value>) -> Result<(), String> {
    let Some(Value::Object(req)) = body else {
        return Err("Invalid JSON payload received. Expected an object.".to_owned());
    };
    known_fields(req, REQUEST_FIELDS, "")?;
    let contents = field(req, "contents").and_then(Value::as_array).filter(|c| !c.is_empty());
    let Some(contents) = contents else {
        return Err("* GenerateContentRequest.contents: contents is not specified\n".to_owned());
    };
    let mut turns: Vec<(&str, &Value)> = contents.iter().map(|c| ("contents", c)).collect();
    if let Some(system) = field(req, "systemInstruction") {
        turns.push(("system_instruction", system));
    }
    for (i, (kind, content)) in turns.iter().enumerate() {
        let at = if *kind == "contents" { format!("contents[{i}]") } else { (*kind).to_owned() };
        let Some(content) = content.as_object() else {
            return Err(format!("Invalid value at '{at}': expected an object"));
        };
        known_fields(content, CONTENT_FIELDS, &at)?;
        if *kind == "contents"
            && let Some(role) = field(content, "role").and_then(Value::as_str)
            && role != "user"
            && role != "model"
        {
            return Err("Please use a valid role: user, model.".to_owned());
        }
        let parts = field(content, "parts").and_then(Value::as_array).filter(|p| !p.is_empty());
        let Some(parts) = parts else {
            return Err(format!("* GenerateContentRequest.{at}.parts: contents.parts must not be empty.\n"));
        };
        for (j, part) in parts.iter().enumerate() {
            let at = format!("{at}.parts[{j}]");
            let Some(part) = part.as_object() else {
                return Err(format!("Invalid value at '{at}': expected an object"));
            };
            for name in part.keys() {
                let name_camel = camel(name);
                if !PART_DATA.contains(&name_camel.as_str()) && !PART_META.contains(&name_camel.as_str()) {
                    return Err(unknown_field(name, &at));
                }
            }
            let data = part.keys().filter(|k| PART_DATA.contains(&camel(k).as_str())).count();
            if data != 1 {
                return Err(format!(
                    "* GenerateContentRequest.{at}.data: required oneof field 'data' must have one initialized field\n"
                ));
            }
            if let Some(inline) = field(part, "inlineData")
                && (inline.get("mimeType").is_none() || inline.get("data").is_none())
            {
                return Err(format!("* GenerateContentRequest.{at}.inline_data: mime_type and data are required\n"));
            }
        }
    }
    if let Some(config) = field(req, "generationConfig") {
        let Some(config) = config.as_object() else {
            return Err("Invalid value at 'generation_config': expected an object".to_owned());
        };
        known_fields(config, GENERATION_FIELDS, "generation_config")?;
        if let Some(schema) = field(config, "responseSchema") {
            check_schema(schema, "generation_config.response_schema")?;
        }
    }
    for (i, tool) in field(req, "tools").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("tools[{i}]");
        let Some(tool) = tool.as_object() else {
            return Err(format!("Invalid value at '{at}': expected an object"));
        };
        known_fields(tool, TOOL_FIELDS, &at)?;
        for (j, decl) in field(tool, "functionDeclarations").and_then(Value::as_array).into_iter().flatten().enumerate()
        {
            let at = format!("{at}.function_declarations[{j}]");
            let Some(decl) = decl.as_object() else {
                return Err(format!("Invalid value at '{at}': expected an object"));
            };
            known_fields(decl, DECLARATION_FIELDS, &at)?;
            if let Some(params) = field(decl, "parameters") {
                check_schema(params, &format!("{at}.parameters"))?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// generateContent

/// The parts of a request the reply depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generate<'a> {
    pub prompt_tokens: u64,
    pub max_tokens: Option<u64>,
    /// The function to call, when the request asks for a tool call.
    pub tool: Option<&'a str>,
}

fn text_chars(content: &Value) -> usize {
    content
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .map(|t| t.chars().count())
        .sum()
}

/// Read a (valid) request.
pub fn parse(body: &Value) -> Generate<'_> {
    let obj = body.as_object();
    let get = |name: &str| obj.and_then(|o| field(o, name));
    let contents: &[Value] = get("contents").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    let chars = contents.iter().map(text_chars).sum::<usize>() + get("systemInstruction").map_or(0, text_chars);
    let max_tokens = get("generationConfig")
        .and_then(Value::as_object)
        .and_then(|g| field(g, "maxOutputTokens"))
        .and_then(Value::as_u64);
    // the last user turn (a turn of function responses counts: it asks for no new call)
    let last_user = contents.iter().rev().find(|c| c.get("role").and_then(Value::as_str).is_none_or(|r| r == "user"));
    let triggered = last_user.is_some_and(|c| {
        c.get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .any(|t| t.contains(TOOL_TRIGGER))
    });
    let tool = get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_object().and_then(|t| field(t, "functionDeclarations")).and_then(Value::as_array))
        .flatten()
        .find_map(|d| d.get("name").and_then(Value::as_str))
        .filter(|_| triggered);
    Generate { prompt_tokens: (chars as u64 / 4).max(1), max_tokens, tool }
}

/// An OpenAI finish reason (as the planner and scripts write it) -> Gemini's.
pub fn finish_reason(reason: &str) -> String {
    match reason {
        "stop" | "tool_calls" => "STOP".to_owned(),
        "length" => "MAX_TOKENS".to_owned(),
        "content_filter" => "SAFETY".to_owned(),
        other => other.to_owned(),
    }
}

/// The planner's (OpenAI-named) usage -> `usageMetadata`.
pub fn usage_metadata(usage: &Value) -> Value {
    let n = |k: &str| usage.get(k).cloned().unwrap_or(json!(0));
    let mut meta = json!({
        "promptTokenCount": n("prompt_tokens"),
        "candidatesTokenCount": n("completion_tokens"),
        "totalTokenCount": n("total_tokens"),
    });
    if let (Some(usage), Value::Object(meta)) = (usage.as_object(), &mut meta) {
        for (k, v) in usage {
            if !matches!(k.as_str(), "prompt_tokens" | "completion_tokens" | "total_tokens") {
                meta.insert(k.clone(), v.clone());
            }
        }
    }
    meta
}

fn reply_parts(reply: &chat::Reply, text: &str) -> Vec<Value> {
    match &reply.tool_call {
        Some(call) => {
            let args: Value = serde_json::from_str(TOOL_ARGUMENTS).unwrap_or_else(|_| json!({}));
            vec![json!({
                "functionCall": {"name": call.name, "args": args},
                "thoughtSignature": format!("sim-signature-{}", reply.seq),
            })]
        }
        None => vec![json!({"text": text})],
    }
}

/// One `GenerateContentResponse`.
fn response_json(reply: &chat::Reply, parts: Vec<Value>, finish: Option<String>, usage: Value) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = Value::String(finish);
    }
    let mut v = json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": reply.model,
        "responseId": format!("sim-{}", reply.seq),
        "x_sim": {"request": reply.seq},
    });
    if let (Some(extra), Value::Object(map)) = (&reply.extra, &mut v) {
        map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    v
}

/// The whole answer.
pub fn response_body(reply: &chat::Reply) -> Value {
    let parts = reply_parts(reply, &reply.content);
    response_json(reply, parts, Some(finish_reason(&reply.finish_reason)), usage_metadata(&reply.usage))
}

/// The stream's responses: one per text piece (or one function call), the last with the
/// finish reason and the final usage, the earlier ones with the prompt's usage only.
pub fn stream_events(reply: &chat::Reply) -> Vec<Value> {
    let usage = usage_metadata(&reply.usage);
    let prompt = usage.get("promptTokenCount").cloned().unwrap_or(json!(0));
    let partial = json!({"promptTokenCount": prompt, "totalTokenCount": prompt});
    let finish = finish_reason(&reply.finish_reason);
    let pieces = chat::pieces(&reply.content);
    if reply.tool_call.is_some() || pieces.is_empty() {
        return vec![response_json(reply, reply_parts(reply, &reply.content), Some(finish), usage)];
    }
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, range)| {
            let text = reply.content.get(range).unwrap_or_default();
            if i == last {
                response_json(reply, reply_parts(reply, text), Some(finish.clone()), usage.clone())
            } else {
                response_json(reply, reply_parts(reply, text), None, partial.clone())
            }
        })
        .collect()
}

/// A scripted error as Gemini's `{"error": {...}}` (a bare `{code, message}` is wrapped).
pub fn error_object(error: &Value) -> Value {
    if error.get("error").is_some() {
        return error.clone();
    }
    let code = error.get("code").and_then(Value::as_u64).unwrap_or(503);
    let message =
        error.get("message").and_then(Value::as_str).unwrap_or("The model is overloaded. Please try again later.");
    let status = u16::try_from(code).map_or("UNAVAILABLE", grpc_status);
    json!({"error": {"code": code, "message": message, "status": status}})
}

fn default_error() -> Value {
    json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}})
}

/// `alt=sse`: `data: {...}` events, nothing at the end.
struct Sse;

impl Framing for Sse {
    fn error(&self, error: &Value) -> Vec<Bytes> {
        vec![sse_frame(error_object(error).to_string().as_bytes())]
    }
    fn malformed(&self) -> Bytes {
        Bytes::from_static(b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"tok0\n\n")
    }
    fn done(&self) -> Option<Bytes> {
        None
    }
}

/// Without `alt=sse`: the responses as one JSON array, sent piece by piece.
struct JsonArray;

impl Framing for JsonArray {
    fn error(&self, error: &Value) -> Vec<Bytes> {
        vec![Bytes::from(format!(",\r\n{}", error_object(error)))]
    }
    fn malformed(&self) -> Bytes {
        Bytes::from_static(b"[{\"candidates\": [{not json")
    }
    fn done(&self) -> Option<Bytes> {
        Some(Bytes::from_static(b"]"))
    }
}

async fn generate(ctx: &Ctx<'_>, model: &str, stream: bool, action: Option<Action>) -> Response {
    let upstream: &Upstream = ctx.upstream;
    let config = &upstream.config;
    if let Err(message) = validate(ctx.json) {
        return invalid(ctx, &message);
    }
    if config.strict_models && !config.models.iter().any(|m| m == model) {
        return model_not_found(ctx, model);
    }
    let Some(body) = ctx.json else { return invalid(ctx, "Invalid JSON payload received.") };
    let request = parse(body);
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
        stream,
        include_usage: true,
        max_tokens: request.max_tokens,
        prompt_tokens: request.prompt_tokens,
        tool: request.tool,
    };
    let reply = chat::plan(&planned, config.reply_tokens, ctx.seq, ctx.now_ms / 1000, custom);
    // Gemini's token quotas count input tokens (per project and model: `model_limits`)
    if let Some(Decision::Limited { axis, requested, snapshot }) =
        upstream.acquire(ctx.key.unwrap_or(""), model, request.prompt_tokens, ctx.now_ms)
    {
        return rate_limited(
            ctx.profile(),
            &RateLimitHit { axis, snapshot: &snapshot, requested, model, now_ms: ctx.now_ms, retry_after_s: None },
        );
    }
    sleep_ms(config.latency_ms).await;
    if stream {
        let sse = query_param(ctx.query, "alt").as_deref() == Some("sse");
        let events = stream_events(&reply);
        let frames: Vec<Bytes> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                if sse {
                    sse_frame(e.to_string().as_bytes())
                } else {
                    let open = if i == 0 { "[" } else { ",\r\n" };
                    Bytes::from(format!("{open}{e}"))
                }
            })
            .collect();
        let delay = std::time::Duration::from_millis(config.token_delay_ms);
        let shape = stream_shape(action, default_error);
        let framing: &dyn Framing = if sse { &Sse } else { &JsonArray };
        let content_type = if sse { "text/event-stream" } else { "application/json; charset=UTF-8" };
        let body = Frames::new(frames, delay, shape, framing).into_body();
        return response(StatusCode::OK, HeaderValue::from_static(content_type), body, &[]);
    }
    if let Some(Action::MidStreamError { error, .. }) = &action {
        // without a stream, the error is the answer
        let error = error_object(&error.clone().unwrap_or_else(default_error));
        let status = error
            .pointer("/error/code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return json_response(status, &error, &[]);
    }
    deliver_json(to_bytes(&response_body(&reply)), Vec::new(), action.as_ref())
}

// ---------------------------------------------------------------------------------------------
// models

/// One entry of `GET /models`.
pub fn model_entry(id: &str) -> Value {
    let embedding = id.contains("embedding");
    let gemma = id.starts_with("gemma");
    let thinking = id.starts_with("gemini-") && !id.starts_with("gemini-1") && !id.starts_with("gemini-2.0");
    let (methods, input, output) = if embedding {
        (json!(["embedContent", "countTextTokens"]), 2048, 1)
    } else if gemma {
        (json!(["generateContent", "countTokens"]), 131_072, 8192)
    } else {
        (json!(["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]), 1_048_576, 65_536)
    };
    let mut entry = json!({
        "name": format!("models/{id}"),
        "version": "001",
        "displayName": id,
        "description": "A model served by freeway-sim.",
        "inputTokenLimit": input,
        "outputTokenLimit": output,
        "supportedGenerationMethods": methods,
    });
    if !embedding {
        entry["temperature"] = json!(1.0);
        entry["topP"] = json!(0.95);
        entry["topK"] = json!(64);
        entry["maxTemperature"] = json!(2.0);
        entry["thinking"] = json!(thinking);
    }
    entry
}

/// A page of `GET /models`: `pageSize` (default 50, at most 1000) from the `pageToken` offset.
pub fn models_page(models: &[String], page_size: Option<&str>, page_token: Option<&str>) -> Result<Value, String> {
    let size = match page_size {
        None => 50,
        Some(s) => s.parse::<usize>().map_err(|_| format!("Invalid value at 'page_size' (TYPE_INT32), \"{s}\""))?,
    };
    let size = if size == 0 { 50 } else { size.min(1000) };
    let offset = match page_token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .strip_prefix("offset=")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| "The page token is not valid.".to_owned())?,
    };
    let end = offset.saturating_add(size).min(models.len());
    let page: Vec<Value> = models.get(offset..end).unwrap_or_default().iter().map(|m| model_entry(m)).collect();
    let mut body = json!({"models": page});
    if end < models.len() {
        body["nextPageToken"] = json!(format!("offset={end}"));
    }
    Ok(body)
}

async fn list(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let config = &ctx.upstream.config;
    let size = query_param(ctx.query, "pageSize");
    let token = query_param(ctx.query, "pageToken");
    match models_page(&config.models, size.as_deref(), token.as_deref()) {
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
        let message = format!("Model is not found: models/{id} for api version v1beta");
        return ctx.error(StatusCode::NOT_FOUND, &message, "", None);
    }
    sleep_ms(config.latency_ms).await;
    deliver_json(to_bytes(&model_entry(id)), Vec::new(), action.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatRequest, plan};

    fn request() -> Value {
        json!({
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "please call a tool"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "s"}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 1}}}]},
            ],
            "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}],
            "generationConfig": {"maxOutputTokens": 3, "responseMimeType": "application/json"},
        })
    }

    #[test]
    fn keys_and_models_come_from_where_gemini_puts_them() {
        let mut headers = HeaderMap::new();
        assert_eq!(key(&headers, Some("alt=sse&key=AIza-q")), Some("AIza-q".to_owned()));
        headers.insert("x-goog-api-key", HeaderValue::from_static("AIza-h"));
        assert_eq!(key(&headers, Some("key=AIza-q")), Some("AIza-h".to_owned()));
        assert_eq!(key(&HeaderMap::new(), None), None);
        assert_eq!(model("/models/gemini-2.5-flash:streamGenerateContent", None), Some("gemini-2.5-flash"));
        assert_eq!(model("/models/gemma-3-27b-it", None), Some("gemma-3-27b-it"));
        assert_eq!(model("/models", None), None);
    }

    #[test]
    fn requests_are_checked_like_gemini_checks_them() {
        assert!(validate(Some(&request())).is_ok());
        let with = |f: &dyn Fn(&mut Value)| {
            let mut r = request();
            f(&mut r);
            validate(Some(&r)).unwrap_err()
        };
        let e = with(&|r| r["temperature"] = json!(1));
        assert!(e.contains("Unknown name \"temperature\""), "{e}");
        let e =
            with(&|r| r["tools"][0]["functionDeclarations"][0]["parameters"]["additionalProperties"] = json!(false));
        assert!(
            e.contains("Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters'"),
            "{e}"
        );
        let e = with(&|r| r["contents"][0]["role"] = json!("assistant"));
        assert_eq!(e, "Please use a valid role: user, model.");
        let e = with(&|r| r["contents"][0]["parts"] = json!([]));
        assert!(e.contains("must not be empty"), "{e}");
        let e = with(&|r| {
            r["contents"][0]["parts"][0] = json!({"text": "a", "inlineData": {"mimeType": "x", "data": "y"}})
        });
        assert!(e.contains("oneof field 'data'"), "{e}");
        let e = with(&|r| r["generationConfig"]["max_tokens"] = json!(1));
        assert!(e.contains("Unknown name \"max_tokens\" at 'generation_config'"), "{e}");
        let e = with(&|r| r["contents"] = json!([]));
        assert!(e.contains("contents is not specified"), "{e}");
        // snake_case spellings are accepted
        let mut r = request();
        r["system_instruction"] = r["systemInstruction"].take();
        r.as_object_mut().unwrap().remove("systemInstruction");
        assert!(validate(Some(&r)).is_ok());
        assert!(validate(None).is_err());
    }

    #[test]
    fn the_reply_depends_on_the_last_user_turn() {
        let r = request();
        let g = parse(&r);
        assert_eq!(g.max_tokens, Some(3));
        assert_eq!(g.prompt_tokens, 6); // "Be brief." + "please call a tool" = 27 chars
        // the last user turn holds function responses: no new call
        assert_eq!(g.tool, None);
        let mut first = request();
        first["contents"] = json!([{"role": "user", "parts": [{"text": "please call a tool"}]}]);
        assert_eq!(parse(&first).tool, Some("get_weather"));
    }

    fn reply(tool: Option<&str>, tokens: u32) -> chat::Reply {
        let req = ChatRequest {
            model: "gemini-2.5-flash",
            stream: true,
            include_usage: true,
            max_tokens: None,
            prompt_tokens: 4,
            tool,
        };
        plan(&req, tokens, 7, 100, None)
    }

    #[test]
    fn responses_in_gemini_shape() {
        let body = response_body(&reply(None, 3));
        assert_eq!(body["candidates"][0]["content"], json!({"parts": [{"text": "tok0 tok1 tok2"}], "role": "model"}));
        assert_eq!(body["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            body["usageMetadata"],
            json!({"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7})
        );
        assert_eq!(body["modelVersion"], "gemini-2.5-flash");
        assert_eq!(body["x_sim"]["request"], 7);
        let call = response_body(&reply(Some("get_weather"), 3));
        let part = &call["candidates"][0]["content"]["parts"][0];
        assert_eq!(part["functionCall"], json!({"name": "get_weather", "args": {"sim": true}}));
        assert_eq!(part["thoughtSignature"], "sim-signature-7");
        assert_eq!(call["candidates"][0]["finishReason"], "STOP");
        assert_eq!(finish_reason("length"), "MAX_TOKENS");
        assert_eq!(finish_reason("content_filter"), "SAFETY");
        assert_eq!(finish_reason("RECITATION"), "RECITATION");
        assert_eq!(
            usage_metadata(
                &json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 5, "thoughtsTokenCount": 2})
            ),
            json!({"promptTokenCount": 1, "candidatesTokenCount": 2, "totalTokenCount": 5, "thoughtsTokenCount": 2})
        );
    }

    #[test]
    fn stream_events_end_with_finish_and_usage() {
        let events = stream_events(&reply(None, 3));
        assert_eq!(events.len(), 3);
        let text: String = events
            .iter()
            .map(|e| e["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(text, "tok0 tok1 tok2");
        assert!(events[0]["candidates"][0].get("finishReason").is_none());
        assert_eq!(events[0]["usageMetadata"], json!({"promptTokenCount": 4, "totalTokenCount": 4}));
        assert_eq!(events[2]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(events[2]["usageMetadata"]["totalTokenCount"], 7);
        let events = stream_events(&reply(Some("f"), 3));
        assert_eq!(events.len(), 1);
        assert!(events[0]["candidates"][0]["content"]["parts"][0].get("functionCall").is_some());
        let frames = Frames::new(
            vec![sse_frame(b"{}")],
            std::time::Duration::ZERO,
            stream_shape(Some(Action::MidStreamError { chunks: 1, error: None }), default_error),
            &Sse,
        );
        assert_eq!(frames.frames().len(), 2);
        assert!(std::str::from_utf8(&frames.frames()[1]).unwrap().contains("\"UNAVAILABLE\""));
        assert_eq!(error_object(&json!({"code": 500, "message": "boom"}))["error"]["status"], "INTERNAL");
    }

    mod over_http {
        use super::*;
        use crate::{SimConfig, Simulator};

        async fn sim(limits: Value) -> Simulator {
            let config: SimConfig = serde_json::from_value(json!({"upstreams": [{
                "prefix": "/v1beta", "profile": "gemini", "keys": ["AIza-good"],
                "models": ["gemini-2.5-flash", "text-embedding-004"], "strict_models": true,
                "reply_tokens": 4, "limits": limits,
            }]}))
            .unwrap();
            Simulator::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
        }

        fn body() -> Value {
            json!({"contents": [{"role": "user", "parts": [{"text": "Hello there, Gemini"}]}]})
        }

        async fn post(sim: &Simulator, path: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
            let mut r = reqwest::Client::new().post(sim.url(path)).json(body);
            if let Some(key) = key {
                r = r.header("x-goog-api-key", key);
            }
            r.send().await.unwrap()
        }

        #[tokio::test]
        async fn generate_stream_and_list() {
            let sim = sim(Value::Null).await;
            let r = post(&sim, "/v1beta/models/gemini-2.5-flash:generateContent", Some("AIza-good"), &body()).await;
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], "tok0 tok1 tok2 tok3");
            assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 4);

            let r =
                post(&sim, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", Some("AIza-good"), &body())
                    .await;
            assert_eq!(r.headers()["content-type"], "text/event-stream");
            let text = r.text().await.unwrap();
            let events: Vec<Value> =
                text.split("\n\n").filter(|e| !e.is_empty()).map(|e| serde_json::from_str(&e[6..]).unwrap()).collect();
            assert_eq!(events.len(), 4);
            assert!(!text.contains("[DONE]"));
            assert_eq!(events[3]["candidates"][0]["finishReason"], "STOP");

            // without alt=sse: one JSON array
            let r =
                post(&sim, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?key=AIza-good", None, &body()).await;
            let arr: Value = r.json().await.unwrap();
            assert_eq!(arr.as_array().unwrap().len(), 4);

            let listed: Value = reqwest::Client::new()
                .get(sim.url("/v1beta/models?pageSize=1"))
                .header("x-goog-api-key", "AIza-good")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(listed["models"][0]["name"], "models/gemini-2.5-flash");
            assert_eq!(listed["nextPageToken"], "offset=1");

            let requests = sim.requests();
            assert_eq!(requests[0].key.as_deref(), Some("AIza-good"));
            assert_eq!(requests[2].key.as_deref(), Some("AIza-good"), "the ?key= form is recorded too");
            assert_eq!(sim.stats().by_model["gemini-2.5-flash"], 3);

            let unknown = post(&sim, "/v1beta/models/gemini-9:generateContent", Some("AIza-good"), &body()).await;
            assert_eq!(unknown.status(), 404);
            let bad = post(
                &sim,
                "/v1beta/models/gemini-2.5-flash:generateContent",
                Some("AIza-good"),
                &json!({"model": "x", "messages": []}),
            )
            .await;
            assert_eq!(bad.status(), 400);
            let v: Value = bad.json().await.unwrap();
            assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
            sim.shutdown().await;
        }

        #[tokio::test]
        async fn keys_limits_and_scripts() {
            let sim = sim(json!({"rpm": 1})).await;
            let path = "/v1beta/models/gemini-2.5-flash:generateContent";
            let r = post(&sim, path, Some("AIza-bad"), &body()).await;
            assert_eq!(r.status(), 400);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");
            assert_eq!(post(&sim, path, None, &body()).await.status(), 403);

            assert_eq!(post(&sim, path, Some("AIza-good"), &body()).await.status(), 200);
            let r = post(&sim, path, Some("AIza-good"), &body()).await;
            assert_eq!(r.status(), 429);
            assert!(r.headers().get("retry-after").is_none());
            let v: Value = r.json().await.unwrap();
            assert!(v["error"]["details"][0]["violations"][0]["quotaId"].as_str().unwrap().contains("PerMinute"));

            sim.reset();
            sim.add_rules(
                serde_json::from_value(json!([
                    {"times": 1, "action": {"type": "rate_limit", "window": "day", "retry_after_s": 37}},
                    {"times": 1, "action": {"type": "status", "status": 500}},
                    {"times": 1, "action": {"type": "mid_stream_error", "chunks": 1}},
                ]))
                .unwrap(),
            );
            let r = post(&sim, path, Some("AIza-good"), &body()).await;
            assert_eq!(r.status(), 429);
            assert!(r.headers().get("retry-after").is_none());
            let v: Value = r.json().await.unwrap();
            assert!(v["error"]["details"][0]["violations"][0]["quotaId"].as_str().unwrap().contains("PerDay"));
            assert_eq!(v["error"]["details"][2]["retryDelay"], "37s");
            let r = post(&sim, path, Some("AIza-good"), &body()).await;
            assert_eq!(r.status(), 500);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["status"], "INTERNAL");
            let r =
                post(&sim, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", Some("AIza-good"), &body())
                    .await;
            let text = r.text().await.unwrap();
            assert!(text.ends_with("\"status\":\"UNAVAILABLE\"}}\n\n"), "{text}");
            sim.shutdown().await;
        }
    }

    #[test]
    fn model_list_pages() {
        let models: Vec<String> =
            ["gemini-2.5-flash", "gemma-3-27b-it", "text-embedding-004"].iter().map(|s| (*s).to_owned()).collect();
        let page = models_page(&models, Some("2"), None).unwrap();
        assert_eq!(page["models"].as_array().unwrap().len(), 2);
        assert_eq!(page["nextPageToken"], "offset=2");
        let rest = models_page(&models, Some("2"), Some("offset=2")).unwrap();
        assert_eq!(rest["models"][0]["name"], "models/text-embedding-004");
        assert_eq!(rest["models"][0]["supportedGenerationMethods"], json!(["embedContent", "countTextTokens"]));
        assert!(rest.get("nextPageToken").is_none());
        let all = models_page(&models, None, None).unwrap();
        assert_eq!(all["models"][0]["thinking"], true);
        assert_eq!(all["models"][0]["inputTokenLimit"], 1_048_576);
        assert_eq!(all["models"][1]["thinking"], false);
        assert!(models_page(&models, None, Some("garbage")).is_err());
    }
}
