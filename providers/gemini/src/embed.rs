//! Embeddings through Gemini's native `models/{model}:batchEmbedContents`: one request per
//! input (`content.parts[0].text`, `outputDimensionality` when the client asked for
//! `dimensions`), answered with `embeddings[].values` in the same order.

use freeway_sdk::errors::invalid_response;
use freeway_sdk::provider::{EmbedRequest, EmbedResponse, join_url, percent_encode, translated_embeddings};
use freeway_sdk::types::{ProviderError, UpstreamCall};
use serde_json::{Value, json};

/// The `batchEmbedContents` body for `req`.
pub fn body(req: &EmbedRequest) -> Value {
    let model = format!("models/{}", req.model);
    let requests: Vec<Value> = req
        .input
        .iter()
        .map(|text| {
            let mut r = json!({ "model": model, "content": { "parts": [{ "text": text }] } });
            if let Some(d) = req.dimensions {
                r["outputDimensionality"] = json!(d);
            }
            r
        })
        .collect();
    json!({ "requests": requests })
}

pub fn plan(req: &EmbedRequest) -> UpstreamCall {
    let url = join_url(&req.config.base_url, &format!("models/{}:batchEmbedContents", percent_encode(&req.model)));
    translated_embeddings(url, Vec::new(), body(req).to_string())
}

/// `{"embeddings": [{"values": [...]}, ...]}` -> the vectors (Gemini reports no token count here).
pub fn translate(body: &str) -> Result<EmbedResponse, ProviderError> {
    let v: Value = serde_json::from_str(body).map_err(|e| invalid_response(&format!("Gemini embeddings: {e}")))?;
    let list = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_response("Gemini embeddings: no `embeddings` list"))?;
    let mut vectors = Vec::with_capacity(list.len());
    for e in list {
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid_response("Gemini embeddings: an embedding without `values`"))?;
        // f32 vectors: the narrowing is the format's own precision
        #[expect(clippy::cast_possible_truncation)]
        let vector: Option<Vec<f32>> = values.iter().map(|x| x.as_f64().map(|f| f as f32)).collect();
        vectors.push(vector.ok_or_else(|| invalid_response("Gemini embeddings: a value is not a number"))?);
    }
    Ok(EmbedResponse { vectors, prompt_tokens: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use freeway_sdk::types::ProviderConfig;

    fn req(dimensions: Option<u32>) -> EmbedRequest {
        EmbedRequest {
            config: ProviderConfig {
                provider_id: "g".into(),
                base_url: "http://x/v1beta".into(),
                settings: Vec::new(),
            },
            account: 0,
            model: "gemini-embedding-001".into(),
            input: vec!["a".into(), "b".into()],
            dimensions,
        }
    }

    #[test]
    fn one_request_per_input_with_the_dimensions_asked() {
        let b = body(&req(Some(8)));
        assert_eq!(b["requests"].as_array().unwrap().len(), 2);
        assert_eq!(b["requests"][1]["content"]["parts"][0]["text"], "b");
        assert_eq!(b["requests"][0]["model"], "models/gemini-embedding-001");
        assert_eq!(b["requests"][0]["outputDimensionality"], 8);
        assert!(body(&req(None))["requests"][0].get("outputDimensionality").is_none());
        assert_eq!(plan(&req(None)).url, "http://x/v1beta/models/gemini-embedding-001:batchEmbedContents");
    }

    #[test]
    fn vectors_come_back_in_order() {
        let r = translate(r#"{"embeddings":[{"values":[0.5,1]},{"values":[-2]}]}"#).unwrap();
        assert_eq!(r.vectors, vec![vec![0.5, 1.0], vec![-2.0]]);
        assert!(translate(r#"{"error":{}}"#).is_err());
    }
}
