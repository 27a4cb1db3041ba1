//! Cloudflare Workers AI (`profile = "cloudflare"`), as `api.cloudflare.com/client/v4` serves it
//! under the upstream's prefix (e.g. `prefix = "/client/v4"`):
//!
//! - `POST /accounts/{account_id}/ai/v1/chat/completions`: Workers AI's OpenAI-compatible chat,
//!   JSON or SSE, answered like the `openai` profile answers `/chat/completions` (the same
//!   deterministic reply, tool calls, usage and scripted endings), without rate-limit headers;
//! - `GET /accounts/{account_id}/ai/models/search` (`task`, `search`, `page`, `per_page`): the
//!   configured models in the v4 envelope, `result: [{id, name, description, task: {name},
//!   properties: [{property_id: "context_window", value: "32000"}, {property_id:
//!   "function_calling", value: "true"}]}]` with `result_info`; ids containing `embedding` or
//!   `bge-` are `Text Embeddings` models, the others `Text Generation`;
//! - any account id is accepted (it is in the recorded path); the token is a bearer token, an
//!   unknown one gets 401 code 10000 "Authentication error", a missing one 401 code 10001;
//! - every error is Cloudflare's v4 envelope `{"success": false, "errors": [{"code",
//!   "message"}], "messages": [], "result": null}`: an unknown model (with `strict_models`) is 400
//!   code 5007 "No such model ... or task", an unknown path 404 code 7000;
//! - limits: `neurons_per_day` is Workers AI's daily free allocation, counted as one neuron per
//!   token (prompt + completion) and reset at the limits' `daily_reset` (00:00 UTC); running out
//!   is a 429 code 3036 ("You have used up your daily free allocation of 10,000 neurons ..."),
//!   a minute limit (the 300 rpm of text generation) a 429 code 3040 (out of capacity). A
//!   scripted `rate_limit` is 3036 with `window: "day"` and 3040 otherwise. No 429 carries a
//!   header: Cloudflare sends neither rate-limit headers nor `retry-after`.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::query_param;
use crate::profiles::Profile;
use crate::provider::{Ctx, bearer, deliver_json, json_response, sleep_ms, to_bytes};
use crate::script::Action;

/// `models/search` page size when `per_page` is absent (Cloudflare's default is 50).
const DEFAULT_PER_PAGE: usize = 50;
/// The context window every listed text-generation model reports.
pub const CONTEXT_WINDOW: u32 = 32_000;

/// The bearer token.
pub fn key(headers: &HeaderMap, _query: Option<&str>) -> Option<String> {
    bearer(headers).map(str::to_owned)
}

/// The body's `model` (chat requests).
pub fn model<'a>(suffix: &'a str, body: Option<&'a Value>) -> Option<&'a str> {
    // the native run endpoint names the model in its path
    if let Some((_, rest)) = account_path(suffix)
        && let Some(model) = rest.strip_prefix("run/")
    {
        return Some(model);
    }
    body?.get("model")?.as_str()
}

pub fn unauthorized(key: Option<&str>) -> Response {
    json_response(StatusCode::UNAUTHORIZED, &Profile::Cloudflare.unauthorized(key), &[])
}

/// `("abc123", "v1/chat/completions")` of `/accounts/abc123/ai/v1/chat/completions`.
pub fn account_path(suffix: &str) -> Option<(&str, &str)> {
    let rest = suffix.strip_prefix("/accounts/")?;
    let (account, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("ai/")?;
    (!account.is_empty()).then_some((account, rest))
}

pub async fn serve(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let Some((_account, rest)) = account_path(ctx.suffix()) else { return not_found(ctx) };
    match (ctx.method, rest) {
        (&Method::POST, "v1/chat/completions") => ctx.chat(action).await,
        (&Method::POST, _) if rest.starts_with("run/") => {
            crate::embed::cloudflare(ctx, &rest["run/".len()..], action).await
        }
        (&Method::GET, "models/search") => search(ctx, action).await,
        (_, "v1/chat/completions" | "models/search") => ctx.error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Method {} not allowed for {}", ctx.method, ctx.path),
            "invalid_request_error",
            None,
        ),
        _ => not_found(ctx),
    }
}

fn not_found(ctx: &Ctx<'_>) -> Response {
    ctx.error(StatusCode::NOT_FOUND, "No route for that URI", "invalid_request_error", None)
}

async fn search(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let config = &ctx.upstream.config;
    let number = |name: &str, default: usize| match query_param(ctx.query, name) {
        None => Ok(default),
        Some(v) => {
            v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| format!("{name}: must be a positive integer"))
        }
    };
    let (page, per_page) = match (number("page", 1), number("per_page", DEFAULT_PER_PAGE)) {
        (Ok(page), Ok(per_page)) => (page, per_page),
        (Err(message), _) | (_, Err(message)) => {
            return ctx.error(StatusCode::BAD_REQUEST, &message, "invalid_request_error", None);
        }
    };
    let task = query_param(ctx.query, "task");
    let search = query_param(ctx.query, "search").map(|s| s.to_lowercase());
    let matching: Vec<Value> = config
        .models
        .iter()
        .enumerate()
        .filter(|(_, id)| task.as_deref().is_none_or(|t| t.eq_ignore_ascii_case(task_of(id))))
        .filter(|(_, id)| search.as_deref().is_none_or(|s| id.to_lowercase().contains(s)))
        .map(|(i, id)| model_entry(i, id))
        .collect();
    let total = matching.len();
    let result: Vec<Value> = matching.into_iter().skip((page - 1).saturating_mul(per_page)).take(per_page).collect();
    let body = json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result": result,
        "result_info": {"page": page, "per_page": per_page, "count": result.len(), "total_count": total},
    });
    sleep_ms(config.latency_ms).await;
    deliver_json(to_bytes(&body), Vec::new(), action.as_ref())
}

fn task_of(id: &str) -> &'static str {
    if id.contains("embedding") || id.contains("bge-") { "Text Embeddings" } else { "Text Generation" }
}

/// One `models/search` result.
pub fn model_entry(index: usize, id: &str) -> Value {
    let task = task_of(id);
    let mut properties = vec![json!({"property_id": "info", "value": "https://developers.cloudflare.com/workers-ai/"})];
    if task == "Text Generation" {
        properties.push(json!({"property_id": "context_window", "value": CONTEXT_WINDOW.to_string()}));
        properties.push(json!({"property_id": "function_calling", "value": "true"}));
    }
    json!({
        "id": format!("00000000-0000-4000-8000-{index:012x}"),
        "source": 1,
        "name": id,
        "description": format!("{id} (freeway-sim)"),
        "task": {"id": format!("sim-task-{}", task.to_lowercase().replace(' ', "-")), "name": task, "description": task},
        "created_at": "2025-01-01 00:00:00.000",
        "tags": [],
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_paths_split() {
        assert_eq!(account_path("/accounts/abc/ai/v1/chat/completions"), Some(("abc", "v1/chat/completions")));
        assert_eq!(account_path("/accounts/abc/ai/models/search"), Some(("abc", "models/search")));
        assert_eq!(account_path("/accounts//ai/models/search"), None);
        assert_eq!(account_path("/accounts/abc/workers/scripts"), None);
        assert_eq!(account_path("/chat/completions"), None);
    }

    #[test]
    fn search_entries_carry_context_window_properties() {
        let entry = model_entry(3, "@cf/meta/llama-3.1-8b-instruct-fp8");
        assert_eq!(entry["name"], "@cf/meta/llama-3.1-8b-instruct-fp8");
        assert_eq!(entry["task"]["name"], "Text Generation");
        let props = entry["properties"].as_array().unwrap();
        assert!(props.contains(&json!({"property_id": "context_window", "value": "32000"})));
        assert!(entry["id"].as_str().unwrap().ends_with("000000000003"));
        let embed = model_entry(0, "@cf/baai/bge-base-en-v1.5");
        assert_eq!(embed["task"]["name"], "Text Embeddings");
        assert!(!embed.to_string().contains("context_window"));
    }

    #[test]
    fn the_model_comes_from_the_body() {
        let body = json!({"model": "@cf/x"});
        assert_eq!(model("/accounts/a/ai/v1/chat/completions", Some(&body)), Some("@cf/x"));
        assert_eq!(model("/accounts/a/ai/models/search", None), None);
    }
}
