//! A labelled prompt, as the evaluation sets (`tests/eval/*.jsonl`) and the classifier's
//! training data (`tests/classifier/data/*.jsonl`) both write it: one JSON object per line.

use serde::{Deserialize, Serialize};

/// One earlier message of a conversation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Deserialize)]
pub struct Labelled {
    pub id: String,
    pub label: String,
    pub prompt: String,
    #[serde(default)]
    pub system: Option<String>,
    /// earlier turns of a conversation, oldest first
    #[serde(default)]
    pub history: Vec<Turn>,
    #[serde(default)]
    pub image: bool,
    #[serde(default)]
    pub tools: bool,
    #[serde(default)]
    pub json: bool,
    /// a long document is pasted after the prompt (evaluation only)
    #[serde(default)]
    pub long: bool,
    #[serde(default)]
    pub language: Option<String>,
}
