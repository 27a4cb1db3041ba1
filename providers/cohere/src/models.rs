//! `GET /v1/models?endpoint=chat` (Cohere lists models on its v1 API only) -> model infos.
//!
//! The list URL is derived from the configured base URL: a trailing `/v2` becomes `/v1`
//! (`https://api.cohere.com/v2` -> `https://api.cohere.com/v1/models`), a base already ending in
//! `/v1` is kept, anything else gets `/v1` appended. Pages are followed through
//! `next_page_token`. Deprecated models and models without the chat endpoint are left out.

use freeway_sdk::provider::percent_encode;
use freeway_sdk::types::{Capabilities, ModelInfo};
use serde_json::Value;

/// At most this many pages are read.
pub const MAX_PAGES: usize = 5;

/// The v1 API root for a v2 base URL.
pub fn v1_root(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if let Some(root) = base.strip_suffix("/v2") {
        format!("{root}/v1")
    } else if base.ends_with("/v1") {
        base.to_owned()
    } else {
        format!("{base}/v1")
    }
}

/// `{v1}/models?endpoint=chat&page_size=1000[&page_token=...]`.
pub fn page_url(base: &str, token: Option<&str>) -> String {
    let mut url = format!("{}/models?endpoint=chat&page_size=1000", v1_root(base));
    if let Some(token) = token {
        url.push_str("&page_token=");
        url.push_str(&percent_encode(token));
    }
    url
}

/// The next page's token, if there is one.
pub fn next_token(page: &Value) -> Option<&str> {
    page.get("next_page_token").and_then(Value::as_str).filter(|t| !t.is_empty())
}

/// The chat models of one page.
pub fn from_page(page: &Value) -> Vec<ModelInfo> {
    page.get("models").and_then(Value::as_array).into_iter().flatten().filter_map(model_info).collect()
}

fn strings<'a>(m: &'a Value, key: &str) -> Vec<&'a str> {
    m.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

fn model_info(m: &Value) -> Option<ModelInfo> {
    let id = m.get("name").and_then(Value::as_str).filter(|n| !n.is_empty())?.to_owned();
    if m.get("is_deprecated").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let endpoints = strings(m, "endpoints");
    if m.get("endpoints").is_some() && !endpoints.contains(&"chat") {
        return None;
    }
    let features = strings(m, "features");
    let has = |names: &[&str]| features.iter().any(|f| names.contains(f));
    let mut caps = Capabilities::STREAMING;
    if has(&["tools", "strict_tools", "tool_use"]) {
        caps |= Capabilities::TOOLS;
    }
    if has(&["json_mode", "json_schema"]) {
        caps |= Capabilities::JSON_MODE;
    }
    if has(&["vision", "image_input"]) || id.contains("vision") {
        caps |= Capabilities::VISION;
    }
    if has(&["reasoning", "thinking"]) || id.contains("reasoning") {
        caps |= Capabilities::REASONING;
    }
    // `context_length` is a JSON number, sometimes written as a float
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let context_window = m
        .get("context_length")
        .and_then(Value::as_f64)
        .filter(|n| n.is_finite() && *n > 0.0 && *n <= f64::from(u32::MAX))
        .map(|n| n as u32);
    Some(ModelInfo {
        id,
        context_window,
        max_output_tokens: None,
        capabilities: caps,
        free: None,
        owned_by: Some("cohere".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_move_to_v1() {
        assert_eq!(
            page_url("https://api.cohere.com/v2", None),
            "https://api.cohere.com/v1/models?endpoint=chat&page_size=1000"
        );
        assert_eq!(v1_root("https://api.cohere.com/v2/"), "https://api.cohere.com/v1");
        assert_eq!(v1_root("http://127.0.0.1:9/v1"), "http://127.0.0.1:9/v1");
        assert_eq!(v1_root("https://proxy.example/cohere"), "https://proxy.example/cohere/v1");
        assert_eq!(
            page_url("https://api.cohere.com/v2", Some("a b/=")),
            "https://api.cohere.com/v1/models?endpoint=chat&page_size=1000&page_token=a%20b%2F%3D"
        );
    }

    #[test]
    fn chat_models_are_read() {
        let page = json!({"models": [
            {"name": "command-a-03-2025", "endpoints": ["generate", "chat", "summarize"], "finetuned": false,
             "context_length": 256000, "tokenizer_url": "https://x", "default_endpoints": [],
             "features": ["json_mode", "json_schema", "safety_modes", "strict_tools", "tools"]},
            {"name": "command-a-vision-07-2025", "endpoints": ["chat"], "context_length": 128000.0, "features": ["json_mode"]},
            {"name": "command-a-reasoning-08-2025", "endpoints": ["chat"], "context_length": 256000, "features": ["tools", "reasoning"]},
            {"name": "command-light", "endpoints": ["chat"], "is_deprecated": true},
            {"name": "embed-v4.0", "endpoints": ["embed"], "context_length": 128000},
            {"name": "c4ai-aya-expanse-32b"},
        ], "next_page_token": "t1"});
        let models = from_page(&page);
        assert_eq!(
            models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["command-a-03-2025", "command-a-vision-07-2025", "command-a-reasoning-08-2025", "c4ai-aya-expanse-32b"]
        );
        let a = &models[0];
        assert_eq!(a.context_window, Some(256_000));
        assert!(a.capabilities.contains(Capabilities::TOOLS | Capabilities::JSON_MODE | Capabilities::STREAMING));
        assert!(!a.capabilities.contains(Capabilities::VISION));
        assert_eq!(a.owned_by.as_deref(), Some("cohere"));
        assert!(models[1].capabilities.contains(Capabilities::VISION));
        assert!(!models[1].capabilities.contains(Capabilities::TOOLS));
        assert_eq!(models[1].context_window, Some(128_000));
        assert!(models[2].capabilities.contains(Capabilities::REASONING | Capabilities::TOOLS));
        assert_eq!(models[3].context_window, None);
        assert_eq!(next_token(&page), Some("t1"));
        assert_eq!(next_token(&json!({"models": [], "next_page_token": ""})), None);
    }
}
