//! Policy routing: for `auto`, `auto:*` and `[[routes]]` with a `policy`, the host classifies the
//! request, applies the operator's `[[routing_rules]]`, drops every (provider, model, pool) that
//! cannot serve it (a missing capability, a context window too small, no account, a quota that
//! would break, a rule's restriction) and asks the policy component to order the rest. The
//! order becomes the walk's candidates (each pool's accounts in rotation order). Everything it
//! decided is kept in a [`Decision`], which `--explain` and `POST /admin/route/explain` show.

pub mod classify;
pub mod decide;
pub mod decision;
pub mod explain;
pub mod language;
pub mod lexicon;
pub mod quality;
pub mod rules;
pub mod stats;
pub mod text;

pub use decide::{Call, decide, policy_route};
pub use decision::{Decision, Dropped};

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
