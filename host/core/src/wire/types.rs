//! OpenAI response shapes the gateway reads. Unknown fields are kept in `extra` so a value
//! read and written again loses nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Token usage as OpenAI reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the gateway reads from a non-streaming `chat.completion` body: enough to account for it.
/// Deserialising this also validates that the body is JSON.
#[derive(Debug, Deserialize)]
pub struct CompletionPeek {
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub choices: Option<Vec<ChoicePeek>>,
}

/// What the gateway reads from each `chat.completion.chunk`.
#[derive(Debug, Deserialize)]
pub struct ChunkPeek<'a> {
    #[serde(default)]
    pub choices: Option<Vec<ChoicePeek>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default, borrow)]
    pub error: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    pub id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub created: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct ChoicePeek {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

impl ChunkPeek<'_> {
    /// The `choices: []` chunk that carries `usage` when `stream_options.include_usage` is set.
    pub fn is_usage_only(&self) -> bool {
        self.usage.is_some() && self.choices.as_ref().is_some_and(|c| c.is_empty())
    }

    pub fn finish_reason(&self) -> Option<&str> {
        self.choices.as_ref()?.iter().find_map(|c| c.finish_reason.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_keeps_unknown_fields() {
        let u: Usage = serde_json::from_str(
            r#"{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":1}}"#,
        )
        .unwrap();
        let back = serde_json::to_value(&u).unwrap();
        assert_eq!(back["prompt_tokens_details"]["cached_tokens"], 1);
    }

    #[test]
    fn chunk_peek_spots_usage_only_chunk() {
        let c: ChunkPeek = serde_json::from_str(
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        )
        .unwrap();
        assert!(c.is_usage_only());
        let c: ChunkPeek = serde_json::from_str(
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],"usage":null}"#,
        )
        .unwrap();
        assert!(!c.is_usage_only());
        assert_eq!(c.finish_reason(), None);
    }
}
