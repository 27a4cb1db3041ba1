//! Matching `[[routing_rules]]` (configured in `config::rules`) against a request: every
//! condition a rule states must hold; a matching rule's actions apply (earlier rules win where two
//! set the same thing).

use regex::Regex;

use crate::config::RoutingRuleConfig;
use crate::task::Task;

/// A rule ready to match: its regex compiled, its task parsed, its keywords lower-cased.
#[derive(Debug, Clone)]
pub struct Rule {
    pub cfg: RoutingRuleConfig,
    regex: Option<Regex>,
    task: Option<Task>,
    keywords: Vec<String>,
}

impl Rule {
    pub fn compile(cfg: &RoutingRuleConfig) -> Result<Rule, String> {
        let (regex, task) = cfg.parsed()?;
        Ok(Rule { cfg: cfg.clone(), regex, task, keywords: cfg.keywords.iter().map(|k| k.to_lowercase()).collect() })
    }
}

/// What a request looks like to the rules.
pub struct Subject<'a> {
    /// the prompt text, lower-cased
    pub text_lower: &'a str,
    pub text: &'a str,
    pub tokens: u32,
    pub tools: bool,
    pub images: bool,
    pub alias: &'a str,
    pub client_tags: &'a [String],
}

/// The combined actions of the rules that matched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actions {
    pub matched: Vec<String>,
    pub task: Option<Task>,
    pub prefer_providers: Vec<String>,
    pub prefer_models: Vec<String>,
    pub fallback_chain: Vec<String>,
}

impl Actions {
    /// Position of a (provider, model) in the preference the rules asked for: models first, then
    /// providers, then the fallback chain's order.
    pub fn preference(&self, provider: &str, model: &str) -> Option<u32> {
        let pos = |list: &[String], x: &str| list.iter().position(|m| m == x);
        let qualified = |list: &[String]| list.iter().position(|m| m.split_once('/') == Some((provider, model)));
        let n = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        if let Some(i) = pos(&self.prefer_models, model).or_else(|| qualified(&self.prefer_models)) {
            return Some(n(i));
        }
        let base = self.prefer_models.len();
        if let Some(i) = pos(&self.prefer_providers, provider) {
            return Some(n(base + i));
        }
        let base = base + self.prefer_providers.len();
        pos(&self.fallback_chain, model).or_else(|| qualified(&self.fallback_chain)).map(|i| n(base + i))
    }
}

fn matches(rule: &Rule, s: &Subject<'_>) -> bool {
    let c = &rule.cfg;
    (rule.keywords.is_empty() || rule.keywords.iter().any(|k| s.text_lower.contains(k.as_str())))
        && rule.regex.as_ref().is_none_or(|r| r.is_match(s.text))
        && c.min_tokens.is_none_or(|m| s.tokens >= m)
        && c.max_tokens.is_none_or(|m| s.tokens <= m)
        && c.tools.is_none_or(|t| t == s.tools)
        && c.images.is_none_or(|i| i == s.images)
        && (c.alias.is_empty() || c.alias.iter().any(|a| a == s.alias))
        && (c.client_tags.is_empty() || c.client_tags.iter().any(|t| s.client_tags.contains(t)))
}

/// Apply the rules in order.
pub fn evaluate(rules: &[Rule], s: &Subject<'_>) -> Actions {
    let mut out = Actions::default();
    for rule in rules.iter().filter(|r| matches(r, s)) {
        out.matched.push(rule.cfg.name.clone());
        if out.task.is_none() {
            out.task = rule.task;
        }
        let c = &rule.cfg;
        if out.prefer_providers.is_empty() {
            out.prefer_providers.clone_from(&c.prefer_providers);
        }
        if out.prefer_models.is_empty() {
            out.prefer_models.clone_from(&c.prefer_models);
        }
        if out.fallback_chain.is_empty() {
            out.fallback_chain.clone_from(&c.fallback_chain);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> Rule {
        let cfg: RoutingRuleConfig = toml::from_str(toml_text).unwrap();
        Rule::compile(&cfg).unwrap()
    }

    fn subject<'a>(text_lower: &'a str, alias: &'a str, tags: &'a [String]) -> Subject<'a> {
        Subject { text_lower, text: text_lower, tokens: 100, tools: false, images: false, alias, client_tags: tags }
    }

    #[test]
    fn every_stated_condition_must_hold() {
        let r = rule(
            "name = \"sql\"\nkeywords = [\"sql\"]\nalias = [\"auto\"]\ntask = \"code\"\nprefer_models = [\"coder\"]",
        );
        let none: Vec<String> = Vec::new();
        let a = evaluate(std::slice::from_ref(&r), &subject("write sql for me", "auto", &none));
        assert_eq!(a.matched, vec!["sql"]);
        assert_eq!(a.task, Some(Task::Code));
        assert_eq!(a.preference("any", "coder"), Some(0));
        assert!(
            evaluate(std::slice::from_ref(&r), &subject("write sql for me", "auto:fast", &none)).matched.is_empty()
        );
        assert!(evaluate(&[r], &subject("write a poem", "auto", &none)).matched.is_empty());
    }

    #[test]
    fn client_tags_and_token_bounds_select_rules() {
        let r = rule("name = \"batch\"\nclient_tags = [\"batch\"]\nmax_tokens = 50\nprefer_providers = [\"local\"]");
        let tags = vec!["batch".to_owned()];
        let mut s = subject("anything", "auto", &tags);
        assert!(evaluate(std::slice::from_ref(&r), &s).matched.is_empty(), "100 tokens > max 50");
        s.tokens = 10;
        let a = evaluate(&[r], &s);
        assert_eq!(a.preference("local", "m"), Some(0));
        assert_eq!(a.preference("groq", "m"), None);
    }
}
