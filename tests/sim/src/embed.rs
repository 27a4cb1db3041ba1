//! Embeddings, for every profile: deterministic vectors derived from each input's text (the same
//! text always gets the same vector, on every upstream), `embedding_dimensions` long unless the
//! request asks for fewer or more. Each request counts against the upstream's limits like a chat
//! request (one request, its inputs' words as tokens) and answers in its API's shape:
//!
//! - OpenAI-compatible profiles: `POST {prefix}/embeddings` (`input` a string or a list of
//!   strings; `encoding_format` float or base64; `dimensions`);
//! - Gemini: `POST /models/{model}:batchEmbedContents` (`requests[].content.parts[].text`,
//!   `outputDimensionality`) -> `embeddings[].values`;
//! - Cohere: `POST /embed` (`texts`, `input_type`, `embedding_types`, `output_dimension`) ->
//!   `embeddings.float` and `meta.billed_units.input_tokens`;
//! - Cloudflare: `POST /accounts/{id}/ai/run/{model}` (`text`) -> `result.data` in the v4
//!   envelope.

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::limits::Decision;
use crate::profiles::RateLimitHit;
use crate::provider::{Ctx, deliver_json, rate_limited, sleep_ms, to_bytes};
use crate::script::Action;

/// The vector of `text`: `dims` values in [-1, 1] from a hash of the text (FNV-1a seeding a
/// splitmix64 sequence).
pub fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        seed ^= u64::from(b);
        seed = seed.wrapping_mul(0x0100_0000_01b3);
    }
    (0..dims)
        .map(|i| {
            let mut z = seed.wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            // 1/1024 steps: exact in f32, so a value reads back identically from JSON
            #[expect(clippy::cast_precision_loss)]
            let x = (z % 2049) as f32 / 1024.0 - 1.0;
            x
        })
        .collect()
}

/// Tokens the sim counts for embedding `texts`: their words.
pub fn tokens(texts: &[String]) -> u64 {
    texts.iter().map(|t| t.split_whitespace().count().max(1) as u64).sum()
}

/// What every API's embeddings request carries once read.
pub struct EmbedAsk {
    pub model: String,
    pub texts: Vec<String>,
    pub dims: Option<usize>,
}

impl Ctx<'_> {
    /// The vectors for `ask`, or the response that refuses it (unknown model, limits, random
    /// errors); `action` is the scripted one still pending.
    pub(crate) async fn embed(&self, ask: &EmbedAsk) -> Result<(Vec<Vec<f32>>, u64), Response> {
        let config = &self.upstream.config;
        if ask.texts.is_empty() {
            return Err(self.error(StatusCode::BAD_REQUEST, "input must not be empty", "invalid_request_error", None));
        }
        if config.strict_models && !config.models.contains(&ask.model) {
            return Err(self.error(
                StatusCode::NOT_FOUND,
                &format!("The model `{}` does not exist or you do not have access to it.", ask.model),
                "invalid_request_error",
                Some("model_not_found"),
            ));
        }
        let used = tokens(&ask.texts);
        if let Some(Decision::Limited { axis, requested, snapshot }) =
            self.upstream.acquire(self.key.unwrap_or(""), &ask.model, used, self.now_ms)
        {
            return Err(rate_limited(
                self.profile(),
                &RateLimitHit {
                    axis,
                    snapshot: &snapshot,
                    requested,
                    model: &ask.model,
                    now_ms: self.now_ms,
                    retry_after_s: None,
                },
            ));
        }
        sleep_ms(config.latency_ms).await;
        let dims = ask.dims.unwrap_or(config.embedding_dimensions as usize).clamp(1, 8192);
        Ok((ask.texts.iter().map(|t| vector(t, dims)).collect(), used))
    }
}

/// The texts of an `input` (a string or a list of strings).
fn texts_of(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items.iter().map(|i| i.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

fn dims_of(v: Option<&Value>) -> Option<usize> {
    v.and_then(Value::as_u64).and_then(|d| usize::try_from(d).ok())
}

/// `POST {prefix}/embeddings` of the OpenAI-compatible profiles.
pub async fn openai(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let body = ctx.json;
    let model = body.and_then(|b| b.get("model")).and_then(Value::as_str).unwrap_or("");
    let Some(texts) = texts_of(body.and_then(|b| b.get("input"))) else {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "'input' must be a string or an array of strings",
            "invalid_request_error",
            None,
        );
    };
    let base64 = body.and_then(|b| b.get("encoding_format")).and_then(Value::as_str) == Some("base64");
    let ask = EmbedAsk { model: model.to_owned(), texts, dims: dims_of(body.and_then(|b| b.get("dimensions"))) };
    let (vectors, used) = match ctx.embed(&ask).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    });
    deliver_json(to_bytes(&body), Vec::new(), action.as_ref())
}

/// Gemini's `models/{model}:batchEmbedContents`.
pub async fn gemini(ctx: &Ctx<'_>, model: &str, action: Option<Action>) -> Response {
    let requests = ctx.json.and_then(|b| b.get("requests")).and_then(Value::as_array);
    let Some(requests) = requests else {
        return ctx.error(StatusCode::BAD_REQUEST, "requests: required", "", None);
    };
    let mut texts = Vec::with_capacity(requests.len());
    for r in requests {
        let text: Option<String> = r.pointer("/content/parts").and_then(Value::as_array).map(|parts| {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("")
        });
        match text {
            Some(t) => texts.push(t),
            None => return ctx.error(StatusCode::BAD_REQUEST, "requests[].content: required", "", None),
        }
    }
    let dims = requests.first().and_then(|r| dims_of(r.get("outputDimensionality")));
    let ask = EmbedAsk { model: model.to_owned(), texts, dims };
    let (vectors, _) = match ctx.embed(&ask).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let embeddings: Vec<Value> = vectors.iter().map(|v| json!({"values": v})).collect();
    deliver_json(to_bytes(&json!({"embeddings": embeddings})), Vec::new(), action.as_ref())
}

/// Cohere's v2 `/embed`.
pub async fn cohere(ctx: &Ctx<'_>, action: Option<Action>) -> Response {
    let body = ctx.json;
    let model = body.and_then(|b| b.get("model")).and_then(Value::as_str).unwrap_or("");
    let Some(texts) = texts_of(body.and_then(|b| b.get("texts"))) else {
        return ctx.error(StatusCode::BAD_REQUEST, "invalid request: texts must be a list of strings", "", None);
    };
    if body.and_then(|b| b.get("input_type")).is_none() {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "invalid request: input_type is required for embed models v3 and higher",
            "",
            None,
        );
    }
    let ask = EmbedAsk {
        model: model.to_owned(),
        texts: texts.clone(),
        dims: dims_of(body.and_then(|b| b.get("output_dimension"))),
    };
    let (vectors, used) = match ctx.embed(&ask).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = json!({
        "id": format!("sim-embed-{}", ctx.seq),
        "embeddings": {"float": vectors},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": used}},
        "response_type": "embeddings_by_type",
    });
    deliver_json(to_bytes(&body), Vec::new(), action.as_ref())
}

/// Cloudflare's `accounts/{id}/ai/run/{model}` for an embedding model.
pub async fn cloudflare(ctx: &Ctx<'_>, model: &str, action: Option<Action>) -> Response {
    let Some(texts) = texts_of(ctx.json.and_then(|b| b.get("text"))) else {
        return ctx.error(StatusCode::BAD_REQUEST, "Type mismatch of '/text'", "invalid_request_error", None);
    };
    let ask = EmbedAsk { model: model.to_owned(), texts, dims: None };
    let (vectors, _) = match ctx.embed(&ask).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let dims = vectors.first().map_or(0, Vec::len);
    let body = json!({
        "result": {"shape": [vectors.len(), dims], "data": vectors, "pooling": "cls"},
        "success": true,
        "errors": [],
        "messages": [],
    });
    deliver_json(to_bytes(&body), Vec::new(), action.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_per_text_and_sized_as_asked() {
        assert_eq!(vector("hello", 8), vector("hello", 8));
        assert_ne!(vector("hello", 8), vector("world", 8));
        assert_eq!(vector("x", 3).len(), 3);
        assert!(vector("x", 64).iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(tokens(&["a b c".to_owned(), "d".to_owned()]), 4);
    }
}
