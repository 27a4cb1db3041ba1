//! Embeddings through Cohere's v2 `/embed`: `texts`, an `input_type` (the provider's
//! `embed_input_type` setting, default `search_document`), `embedding_types: ["float"]` and
//! `output_dimension` when the client asked for `dimensions`; answered with
//! `embeddings.float` in input order and the billed input tokens in `meta.billed_units`.

use freeway_sdk::errors::{bad_request, invalid_response};
use freeway_sdk::provider::{EmbedRequest, EmbedResponse, join_url, setting, translated_embeddings};
use freeway_sdk::types::{ProviderError, UpstreamCall};
use serde_json::{Value, json};

/// The most texts one Cohere embed call takes.
pub const MAX_TEXTS: usize = 96;

pub fn body(req: &EmbedRequest) -> Value {
    let input_type = setting(&req.config, "embed_input_type").unwrap_or("search_document");
    let mut b = json!({
        "model": req.model,
        "texts": req.input,
        "input_type": input_type,
        "embedding_types": ["float"],
    });
    if let Some(d) = req.dimensions {
        b["output_dimension"] = json!(d);
    }
    b
}

pub fn plan(req: &EmbedRequest) -> Result<UpstreamCall, ProviderError> {
    if req.input.len() > MAX_TEXTS {
        return Err(bad_request(&format!(
            "Cohere embeds at most {MAX_TEXTS} inputs per request, got {}",
            req.input.len()
        )));
    }
    Ok(translated_embeddings(join_url(&req.config.base_url, "embed"), Vec::new(), body(req).to_string()))
}

pub fn translate(body: &str) -> Result<EmbedResponse, ProviderError> {
    let v: Value = serde_json::from_str(body).map_err(|e| invalid_response(&format!("Cohere embed: {e}")))?;
    let list = v
        .pointer("/embeddings/float")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_response("Cohere embed: no `embeddings.float` list"))?;
    let mut vectors = Vec::with_capacity(list.len());
    for e in list {
        // f32 vectors: the narrowing is the format's own precision
        #[expect(clippy::cast_possible_truncation)]
        let vector: Option<Vec<f32>> =
            e.as_array().and_then(|xs| xs.iter().map(|x| x.as_f64().map(|f| f as f32)).collect());
        vectors.push(vector.ok_or_else(|| invalid_response("Cohere embed: an embedding is not a list of numbers"))?);
    }
    let prompt_tokens = v.pointer("/meta/billed_units/input_tokens").and_then(Value::as_u64);
    Ok(EmbedResponse { vectors, prompt_tokens })
}

#[cfg(test)]
mod tests {
    use super::*;
    use freeway_sdk::types::ProviderConfig;

    fn req(n: usize, dimensions: Option<u32>) -> EmbedRequest {
        EmbedRequest {
            config: ProviderConfig { provider_id: "c".into(), base_url: "http://x/v2".into(), settings: Vec::new() },
            account: 0,
            model: "embed-v4.0".into(),
            input: vec!["t".into(); n],
            dimensions,
        }
    }

    #[test]
    fn texts_go_with_an_input_type_and_float_embeddings() {
        let b = body(&req(2, Some(256)));
        assert_eq!((b["texts"].as_array().unwrap().len(), &b["input_type"]), (2, &json!("search_document")));
        assert_eq!((&b["embedding_types"], &b["output_dimension"]), (&json!(["float"]), &json!(256)));
        assert_eq!(plan(&req(1, None)).unwrap().url, "http://x/v2/embed");
        assert!(plan(&req(MAX_TEXTS + 1, None)).is_err());
    }

    #[test]
    fn float_embeddings_and_billed_tokens_are_read() {
        let r =
            translate(r#"{"embeddings":{"float":[[1,2],[3]]},"meta":{"billed_units":{"input_tokens":5}}}"#).unwrap();
        assert_eq!((r.vectors, r.prompt_tokens), (vec![vec![1.0, 2.0], vec![3.0]], Some(5)));
        assert!(translate(r#"{"embeddings":{"int8":[[1]]}}"#).is_err());
    }
}
