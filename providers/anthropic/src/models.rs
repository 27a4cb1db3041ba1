//! `GET {base}/models` (Anthropic's list shape: `data[]` of `{id, display_name, created_at,
//! type}`, paged with `has_more` / `last_id` / `after_id`) -> model infos.

use freeway_sdk::provider::join_url;
use freeway_sdk::provider::percent_encode;
use freeway_sdk::types::{Capabilities, ModelInfo};
use serde_json::Value;

use crate::request::model_version;

/// At most this many pages are read.
pub const MAX_PAGES: usize = 5;

/// `{base}/models?limit=1000[&after_id=...]`.
pub fn page_url(base: &str, after: Option<&str>, limit: u32) -> String {
    let mut url = join_url(base, &format!("models?limit={limit}"));
    if let Some(after) = after {
        url.push_str("&after_id=");
        url.push_str(&percent_encode(after));
    }
    url
}

/// The id to continue after, when there is another page.
pub fn next_after(page: &Value) -> Option<&str> {
    if page.get("has_more").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    page.get("last_id").and_then(Value::as_str).filter(|id| !id.is_empty())
}

/// `(context window, max output tokens)` of the model families Freeway knows.
pub fn known(model: &str) -> Option<(u32, u32)> {
    let id = model.rsplit('/').next().unwrap_or(model);
    let (major, minor) = model_version(id)?;
    let family = |f: &str| id.contains(f);
    Some(match (major, minor) {
        (3, 0) => (200_000, 4_096),
        (3, 5) => (200_000, 8_192),
        (3, 7) => (200_000, 64_000),
        (4, 0 | 1) if family("opus") => (200_000, 32_000),
        (4, 0..=5) => (200_000, 64_000),
        (4, _) if family("opus") => (1_000_000, 128_000),
        (4, _) => (1_000_000, 64_000),
        (m, _) if m >= 5 => (1_000_000, 128_000),
        _ => return None,
    })
}

fn as_u32(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

/// The models of one page.
pub fn from_page(page: &Value) -> Vec<ModelInfo> {
    page.get("data").and_then(Value::as_array).into_iter().flatten().filter_map(model_info).collect()
}

/// One entry: Claude 3 and later take tools and images; 3.7 and later think.
pub fn model_info(m: &Value) -> Option<ModelInfo> {
    let id = m.get("id").and_then(Value::as_str)?.to_owned();
    let version = model_version(&id);
    let mut caps = Capabilities::STREAMING;
    if version.is_some_and(|v| v >= (3, 0)) {
        // JSON mode is a forced tool, so it comes with tools
        caps |= Capabilities::TOOLS | Capabilities::VISION | Capabilities::JSON_MODE;
    }
    if version.is_some_and(|v| v >= (3, 7)) {
        caps |= Capabilities::REASONING;
    }
    let table = known(&id);
    Some(ModelInfo {
        context_window: as_u32(m.get("max_input_tokens")).or(table.map(|t| t.0)),
        max_output_tokens: as_u32(m.get("max_tokens")).or(table.map(|t| t.1)),
        capabilities: caps,
        free: Some(false),
        owned_by: Some("anthropic".to_owned()),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_are_read() {
        let page = json!({"data": [
            {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"},
            {"type": "model", "id": "claude-3-5-haiku-20241022", "display_name": "Claude Haiku 3.5", "created_at": "2024-10-22T00:00:00Z"},
            {"type": "model", "id": "claude-opus-5-5", "display_name": "Claude Opus 5.5", "created_at": "2026-10-01T00:00:00Z",
             "max_input_tokens": 900000},
            {"type": "model", "id": "claude-2.1", "display_name": "Claude 2.1", "created_at": "2023-11-21T00:00:00Z"},
            {"type": "model"},
        ], "has_more": true, "first_id": "claude-sonnet-4-5-20250929", "last_id": "claude-2.1"});
        let models = from_page(&page);
        assert_eq!(models.len(), 4);
        let sonnet = &models[0];
        assert_eq!(sonnet.id, "claude-sonnet-4-5-20250929");
        assert_eq!((sonnet.context_window, sonnet.max_output_tokens), (Some(200_000), Some(64_000)));
        assert!(sonnet.capabilities.contains(
            Capabilities::TOOLS
                | Capabilities::VISION
                | Capabilities::REASONING
                | Capabilities::JSON_MODE
                | Capabilities::STREAMING
        ));
        assert_eq!(sonnet.free, Some(false));
        assert_eq!(sonnet.owned_by.as_deref(), Some("anthropic"));
        assert!(!models[1].capabilities.contains(Capabilities::REASONING));
        assert!(models[1].capabilities.contains(Capabilities::VISION));
        assert_eq!(models[1].max_output_tokens, Some(8_192));
        assert_eq!((models[2].context_window, models[2].max_output_tokens), (Some(900_000), Some(128_000)));
        assert!(!models[3].capabilities.contains(Capabilities::TOOLS));
        assert_eq!(models[3].context_window, None);
        assert_eq!(next_after(&page), Some("claude-2.1"));
        assert_eq!(next_after(&json!({"data": [], "has_more": false, "last_id": "x"})), None);
    }

    #[test]
    fn urls_and_table() {
        assert_eq!(
            page_url("https://api.anthropic.com/v1/", None, 1000),
            "https://api.anthropic.com/v1/models?limit=1000"
        );
        assert_eq!(page_url("https://a/v1", Some("claude x"), 1), "https://a/v1/models?limit=1&after_id=claude%20x");
        assert_eq!(known("claude-opus-4-1-20250805"), Some((200_000, 32_000)));
        assert_eq!(known("claude-haiku-4-5"), Some((200_000, 64_000)));
        assert_eq!(known("claude-3-opus-20240229"), Some((200_000, 4_096)));
        assert_eq!(known("claude-sonnet-5"), Some((1_000_000, 128_000)));
        assert_eq!(known("mystery"), None);
    }
}
