//! `GET {base}/models` (Gemini's list shape, paginated) -> model infos.

use freeway_sdk::provider::percent_encode;
use freeway_sdk::types::{Capabilities, ModelInfo};
use serde_json::Value;

/// At most this many pages are read.
pub const MAX_PAGES: usize = 5;

/// `{base}/models?pageSize=1000[&pageToken=...]`.
pub fn page_url(base: &str, token: Option<&str>) -> String {
    let mut url = freeway_sdk::provider::join_url(base, "models?pageSize=1000");
    if let Some(token) = token {
        url.push_str("&pageToken=");
        url.push_str(&percent_encode(token));
    }
    url
}

/// The next page's token, if there is one.
pub fn next_token(page: &Value) -> Option<&str> {
    page.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty())
}

fn as_u32(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

/// The chat models of one page: those that support `generateContent`.
pub fn from_page(page: &Value) -> Vec<ModelInfo> {
    page.get("models").and_then(Value::as_array).into_iter().flatten().filter_map(model_info).collect()
}

fn model_info(m: &Value) -> Option<ModelInfo> {
    let generates = m
        .get("supportedGenerationMethods")
        .and_then(Value::as_array)
        .is_some_and(|methods| methods.iter().any(|x| x == "generateContent"));
    if !generates {
        return None;
    }
    let name = m.get("name").and_then(Value::as_str)?;
    let id = name.strip_prefix("models/").unwrap_or(name).to_owned();
    let mut caps = Capabilities::STREAMING | Capabilities::JSON_MODE;
    let gemini = id.starts_with("gemini-");
    // text-to-speech and image-generation variants answer generateContent but are not chat models
    let special = id.contains("-tts") || id.contains("-image") || id.contains("embedding");
    if gemini && !special {
        caps |= Capabilities::TOOLS;
    }
    // every Gemini takes images; Gemma 3 does from 4B up (1B and the 3n edge models are text only)
    let multimodal_gemma = id.starts_with("gemma-3-") && !id.starts_with("gemma-3-1b");
    if (gemini && !id.contains("-tts")) || multimodal_gemma {
        caps |= Capabilities::VISION;
    }
    if m.get("thinking").and_then(Value::as_bool) == Some(true) {
        caps |= Capabilities::REASONING;
    }
    Some(ModelInfo {
        id,
        context_window: as_u32(m.get("inputTokenLimit")),
        max_output_tokens: as_u32(m.get("outputTokenLimit")),
        capabilities: caps,
        free: None,
        owned_by: Some("google".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_models_are_read_and_others_skipped() {
        let page = json!({"models": [
            {"name": "models/gemini-2.5-flash", "version": "001", "displayName": "Gemini 2.5 Flash",
             "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
             "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
             "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": true},
            {"name": "models/gemma-3-27b-it", "inputTokenLimit": 131072, "outputTokenLimit": 8192,
             "supportedGenerationMethods": ["generateContent", "countTokens"]},
            {"name": "models/gemma-3-1b-it", "inputTokenLimit": 32768, "outputTokenLimit": 8192,
             "supportedGenerationMethods": ["generateContent", "countTokens"]},
            {"name": "models/text-embedding-004", "inputTokenLimit": 2048, "outputTokenLimit": 1,
             "supportedGenerationMethods": ["embedContent"]},
        ], "nextPageToken": "abc/+="});
        let models = from_page(&page);
        assert_eq!(
            models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["gemini-2.5-flash", "gemma-3-27b-it", "gemma-3-1b-it"]
        );
        let flash = &models[0];
        assert_eq!((flash.context_window, flash.max_output_tokens), (Some(1_048_576), Some(65_536)));
        assert!(flash.capabilities.contains(
            Capabilities::TOOLS
                | Capabilities::VISION
                | Capabilities::REASONING
                | Capabilities::JSON_MODE
                | Capabilities::STREAMING
        ));
        assert_eq!(flash.free, None);
        assert_eq!(flash.owned_by.as_deref(), Some("google"));
        assert!(models[1].capabilities.contains(Capabilities::VISION));
        assert!(!models[1].capabilities.contains(Capabilities::TOOLS));
        assert!(!models[1].capabilities.contains(Capabilities::REASONING));
        assert!(!models[2].capabilities.contains(Capabilities::VISION));
        assert_eq!(next_token(&page), Some("abc/+="));
        assert_eq!(next_token(&json!({"models": []})), None);
        assert_eq!(
            page_url("https://g/v1beta/", Some("abc/+=")),
            "https://g/v1beta/models?pageSize=1000&pageToken=abc%2F%2B%3D"
        );
        assert_eq!(page_url("https://g/v1beta", None), "https://g/v1beta/models?pageSize=1000");
    }
}
