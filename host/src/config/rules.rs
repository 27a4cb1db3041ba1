//! `[[routing_rules]]`: operator rules evaluated on every policy-routed request, in order. Every
//! condition a rule states must hold; a matching rule's actions apply (earlier rules win where
//! two set the same thing). Matching lives in `routing::rules`; this is what the file says.
//!
//! ```toml
//! [[routing_rules]]
//! name = "sql goes to coder models"
//! keywords = ["sql", "postgres"]      # any of these words (case-insensitive)
//! regex = "(?i)select .* from"         # and this pattern
//! min_tokens = 0                       # estimated prompt tokens at least / at most
//! max_tokens = 100000
//! tools = true                         # the request has tools (false: has none)
//! images = false
//! alias = ["auto", "auto:code"]        # the model/alias the client asked for
//! client_tags = ["batch"]              # the client key carries one of these tags
//! # actions
//! task = "code"                        # override the classifier
//! prefer_providers = ["groq"]          # candidates of these providers first, in this order
//! prefer_models = ["qwen-2.5-coder-32b"]
//! fallback_chain = ["qwen-2.5-coder-32b", "llama-3.3-70b-versatile"]   # only these, in order
//! ```

use regex::Regex;
use serde::Deserialize;

use crate::task::Task;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RoutingRuleConfig {
    pub name: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub min_tokens: Option<u32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub tools: Option<bool>,
    #[serde(default)]
    pub images: Option<bool>,
    #[serde(default)]
    pub alias: Vec<String>,
    #[serde(default)]
    pub client_tags: Vec<String>,
    #[serde(default)]
    pub task: Option<String>,
    #[serde(default)]
    pub prefer_providers: Vec<String>,
    #[serde(default)]
    pub prefer_models: Vec<String>,
    #[serde(default)]
    pub fallback_chain: Vec<String>,
}

impl RoutingRuleConfig {
    /// The rule's pattern compiled and its task parsed, or what is wrong with them (checked when
    /// the configuration loads, so a running gateway only ever compiles rules that are valid).
    pub fn parsed(&self) -> Result<(Option<Regex>, Option<Task>), String> {
        let regex = match &self.regex {
            Some(r) => Some(Regex::new(r).map_err(|e| format!("routing rule `{}`: regex: {e}", self.name))?),
            None => None,
        };
        let task = match &self.task {
            Some(t) => Some(Task::parse(t).ok_or_else(|| {
                format!(
                    "routing rule `{}`: task \"{t}\" is not one of general, code, math, reasoning, creative, extraction, vision, tool-use",
                    self.name
                )
            })?),
            None => None,
        };
        Ok((regex, task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_task_or_regex_is_a_clear_error() {
        let cfg: RoutingRuleConfig = toml::from_str("name = \"x\"\ntask = \"poetry\"").unwrap();
        assert!(cfg.parsed().unwrap_err().contains("not one of"));
        let cfg: RoutingRuleConfig = toml::from_str("name = \"y\"\nregex = \"(\"").unwrap();
        assert!(cfg.parsed().unwrap_err().contains("regex"));
        let cfg: RoutingRuleConfig = toml::from_str("name = \"z\"\ntask = \"tool_use\"\nregex = \"a+\"").unwrap();
        let (regex, task) = cfg.parsed().unwrap();
        assert!(regex.is_some_and(|r| r.is_match("aa")));
        assert_eq!(task, Some(Task::ToolUse));
    }
}
