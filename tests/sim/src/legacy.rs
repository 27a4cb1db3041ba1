//! Legacy completions (`POST {prefix}/completions`), as upstreams that still serve them answer:
//! the prompt's reply as `text_completion` (`choices[].text`), whole or streamed (each word an
//! event, then the finish, the usage when asked, and `[DONE]`). `max_tokens` defaults to 16.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::chat::words;
use crate::provider::{Ctx, deliver_json, response, sleep_ms, to_bytes};
use crate::script::Action;

const DEFAULT_MAX_TOKENS: u64 = 16;

pub(crate) async fn completions(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let config = &ctx.upstream.config;
    let Some(body) = ctx.json.and_then(Value::as_object) else {
        return ctx.error(StatusCode::BAD_REQUEST, "the body must be a JSON object", "invalid_request_error", None);
    };
    let (Some(model), Some(prompt)) = (body.get("model").and_then(Value::as_str), body.get("prompt")) else {
        return ctx.error(StatusCode::BAD_REQUEST, "'model' and 'prompt' are required", "invalid_request_error", None);
    };
    let prompt_tokens = (prompt.to_string().len() as u64 / 4).max(1);
    let max = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(DEFAULT_MAX_TOKENS);
    let n = u64::from(config.reply_tokens).min(max);
    let finish = if n < u64::from(config.reply_tokens) { "length" } else { "stop" };
    let text = words(n);
    let id = format!("cmpl-sim-{}", ctx.seq);
    let created = ctx.now_ms / 1000;
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n});
    sleep_ms(config.latency_ms).await;
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let whole = json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
            "usage": usage,
        });
        return deliver_json(to_bytes(&whole), Vec::new(), action.as_ref());
    }
    let chunk = |text: &str, finish: Value| {
        json!({"id": id, "object": "text_completion", "created": created, "model": model,
               "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]})
    };
    let mut events: Vec<Value> = Vec::new();
    let mut start = 0;
    for (i, _) in text.match_indices(' ') {
        events.push(chunk(&text[start..i], Value::Null));
        start = i;
    }
    events.push(chunk(&text[start..], Value::Null));
    events.push(chunk("", json!(finish)));
    if body.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool) == Some(true) {
        events.push(json!({"id": id, "object": "text_completion", "created": created, "model": model,
                           "choices": [], "usage": usage}));
    }
    let delay = Duration::from_millis(config.token_delay_ms);
    let frames =
        events.into_iter().map(|e| format!("data: {e}\n\n")).chain(std::iter::once("data: [DONE]\n\n".to_owned()));
    let stream = futures_util::stream::iter(frames).then(move |frame| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, std::convert::Infallible>(frame)
    });
    response(StatusCode::OK, HeaderValue::from_static("text/event-stream"), Body::from_stream(stream), &[])
}
