//! Quality tiers: how good a model is likely to be at a task, 0 (weak) - 100 (best). Read from the
//! configuration (`[routing.quality]`) or the catalog when given, otherwise estimated from the
//! model's id (known families, parameter count, "coder"/"r1"-style tags) and capabilities. The
//! estimate is deliberately coarse: it orders a 70B model above an 8B one and a coder model above
//! a general one for code, which is what routing needs.

use std::collections::BTreeMap;

use crate::bindings::wit::Capabilities;
use crate::task::Task;

/// Known model families without a size in their name: (id fragment, general quality).
#[rustfmt::skip]
const FAMILIES: &[(&str, u8)] = &[
    // more specific fragments first: the first that matches wins
    ("flash-lite", 70), ("gemini-3-flash", 86), ("gemini-3.5-flash", 88), ("gemini-2.5-pro", 92), ("gemini-3", 92), ("gemini-2.5-flash-lite", 70), ("gemini-2.5-flash", 84),
    ("gemini-2.0-flash-lite", 66), ("gemini-2.0-flash", 78), ("gemini-1.5-flash", 70), ("gemma", 55),
    ("claude-opus", 94), ("claude-sonnet", 91), ("claude-3-5-sonnet", 88), ("claude-haiku", 74), ("claude-3-haiku", 66),
    ("gpt-4o-mini", 72), ("gpt-4o", 86), ("gpt-4.1-mini", 76), ("gpt-4.1-nano", 62), ("gpt-4.1", 88), ("gpt-5", 92),
    ("o4-mini", 86), ("o3-mini", 84), ("o1", 88),
    ("deepseek-r1", 88), ("deepseek-v3", 87), ("deepseek-chat", 86), ("kimi-k2", 86), ("qwen3-coder", 86),
    ("mistral-large", 82), ("mistral-medium", 76), ("mistral-small", 66), ("ministral", 55), ("codestral", 76),
    ("devstral", 78), ("magistral", 80), ("pixtral-large", 78), ("open-mistral-nemo", 55),
    ("command-a", 80), ("command-r-plus", 76), ("command-r7b", 45), ("command-r", 66),
    ("llama-4-maverick", 80), ("llama-4-scout", 72), ("glm-4.5", 82), ("glm-4", 72), ("grok", 84),
    ("phi-4", 62), ("phi-3", 48), ("granite", 52),
];

/// Parameter count in billions, from an id such as `llama-3.3-70b-versatile` or `mixtral-8x7b`.
fn params_b(id: &str) -> Option<f32> {
    let bytes = id.as_bytes();
    let mut best: Option<f32> = None;
    for (i, _) in id.match_indices(['b', 'B']) {
        // digits (and one dot) right before the `b`, and no letter right after it
        if bytes.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let start = id[..i].rfind(|c: char| !(c.is_ascii_digit() || c == '.')).map_or(0, |p| p + 1);
        let Ok(n) = id[start..i].parse::<f32>() else { continue };
        // "8x7b" counts as 8 x 7
        let experts = id[..start]
            .strip_suffix('x')
            .and_then(|pre| pre.rsplit(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse::<f32>().ok())
            .unwrap_or(1.0);
        let total = n * experts.min(16.0);
        best = Some(best.map_or(total, |b: f32| b.max(total)));
    }
    best
}

fn from_size(b: f32) -> u8 {
    match b {
        b if b <= 2.0 => 25,
        b if b <= 4.0 => 35,
        b if b <= 9.0 => 46,
        b if b <= 15.0 => 55,
        b if b <= 35.0 => 66,
        b if b <= 80.0 => 76,
        b if b <= 150.0 => 82,
        _ => 86,
    }
}

/// The general-purpose quality of a model, from its id.
pub fn general(id: &str) -> u8 {
    let lower = id.to_ascii_lowercase();
    // an id may carry a publisher (`meta-llama/...`) and a `:free` suffix
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let name = name.split(':').next().unwrap_or(name);
    if let Some((_, q)) = FAMILIES.iter().find(|(f, _)| name.contains(f)) {
        return *q;
    }
    params_b(name).map_or(50, from_size)
}

fn tagged(name: &str, tags: &[&str]) -> bool {
    tags.iter().any(|t| name.contains(t))
}

/// Quality of a model for a task: explicit figures first, then the estimate.
pub fn for_task(id: &str, caps: Capabilities, task: Task, explicit: Option<&BTreeMap<String, u8>>) -> u8 {
    if let Some(q) = explicit.and_then(|map| map.get(task.as_str()).or_else(|| map.get("general"))) {
        return (*q).min(100);
    }
    let name = id.to_ascii_lowercase();
    let base = i32::from(general(id));
    let coder = tagged(&name, &["coder", "codestral", "devstral", "code-", "-code", "starcoder", "codegemma"]);
    let reasoner = caps.contains(Capabilities::REASONING)
        || tagged(&name, &["-r1", "r1-", "qwq", "reason", "think", "magistral", "o1", "o3", "o4", "gpt-oss"]);
    let adjusted = match task {
        Task::Code if coder => base + 15,
        Task::Code => base - if base < 60 { 8 } else { 2 },
        Task::Math | Task::Reasoning if reasoner => base + 12,
        Task::Math | Task::Reasoning => base - if base < 60 { 8 } else { 0 },
        Task::Vision if !caps.contains(Capabilities::VISION) => 0,
        Task::ToolUse if caps.contains(Capabilities::TOOLS) => base + 4,
        Task::Extraction if caps.contains(Capabilities::JSON_MODE) => base + 3,
        Task::General | Task::Creative if coder => base - 10,
        _ => base,
    };
    u8::try_from(adjusted.clamp(0, 100)).unwrap_or(50)
}

/// Quality for every task, in [`Task::ALL`] order.
pub fn all_tasks(id: &str, caps: Capabilities, explicit: Option<&BTreeMap<String, u8>>) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (slot, task) in out.iter_mut().zip(Task::ALL) {
        *slot = for_task(id, caps, task, explicit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_from_model_ids() {
        assert_eq!(params_b("llama-3.3-70b-versatile"), Some(70.0));
        assert_eq!(params_b("meta-llama/llama-3.1-8b-instruct:free"), Some(8.0));
        assert_eq!(params_b("mixtral-8x7b-32768"), Some(56.0));
        assert_eq!(params_b("qwen-2.5-coder-32b"), Some(32.0));
        assert_eq!(params_b("gpt-oss-120b"), Some(120.0));
        assert_eq!(params_b("web-browser"), None);
    }

    #[test]
    fn bigger_and_specialised_models_rank_higher_for_their_task() {
        let none = Capabilities::empty();
        assert!(general("llama-3.3-70b-versatile") > general("llama-3.1-8b-instant"));
        assert!(
            for_task("qwen-2.5-coder-32b", none, Task::Code, None)
                > for_task("llama-3.3-70b-versatile", none, Task::Code, None)
        );
        assert!(
            for_task("deepseek-r1-distill-llama-70b", none, Task::Math, None)
                > for_task("llama-3.3-70b-versatile", none, Task::Math, None)
        );
        assert_eq!(for_task("llama-3.1-8b", none, Task::Vision, None), 0);
    }

    #[test]
    fn configured_figures_win_over_the_estimate() {
        let map: BTreeMap<String, u8> = [("code".to_owned(), 97u8), ("general".to_owned(), 40)].into();
        assert_eq!(for_task("tiny-1b", Capabilities::empty(), Task::Code, Some(&map)), 97);
        assert_eq!(for_task("tiny-1b", Capabilities::empty(), Task::Math, Some(&map)), 40);
    }
}
