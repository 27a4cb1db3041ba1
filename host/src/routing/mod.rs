//! What policy routing knows about prompts and models, with no access to the running gateway:
//! the classifier that sorts a prompt into a task class (a learned model over the words, with
//! keywords and shapes as named evidence), the language,
//! models' quality per task, the operator's `[[routing_rules]]`, the built-in `auto` aliases, and
//! the live latency statistics. The pipeline's `decide` step turns these into ranked candidates.

pub mod classifier;
pub mod keywords;
pub mod language;
pub mod lexicon;
pub mod model;
pub mod quality;
pub mod rules;
pub mod shapes;
pub mod stats;
pub mod text;
pub mod wordpiece;

/// The built-in aliases and what they mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoKind {
    /// the classifier decides
    Any,
    /// code, whatever the prompt looks like
    Code,
    /// multi-step reasoning and math
    Reasoning,
    /// lowest latency first
    Fast,
    /// the largest context windows first
    Long,
    /// models that read images only
    Vision,
}

/// `auto`, `auto:code`, ... with one line each for `/v1/models` and the docs.
pub const AUTO_ALIASES: &[(&str, AutoKind, &str)] = &[
    ("auto", AutoKind::Any, "the best free model for this request, as the routing policy sees it"),
    ("auto:code", AutoKind::Code, "code-strong models first"),
    ("auto:reasoning", AutoKind::Reasoning, "reasoning and math-strong models first"),
    ("auto:fast", AutoKind::Fast, "lowest time to first token first"),
    ("auto:long", AutoKind::Long, "largest context windows first"),
    ("auto:vision", AutoKind::Vision, "models that accept images only"),
];

pub fn auto_kind(model: &str) -> Option<AutoKind> {
    AUTO_ALIASES.iter().find(|(name, _, _)| *name == model).map(|(_, k, _)| *k)
}
