//! A virtual key's model allow-list. Entries are names as clients send them (a model, an
//! alias, `provider/model`, `auto`, `auto:code`), each may hold `*` globs (`auto:*`,
//! `llama-*`). An empty list allows everything.
//!
//! - a request names an allowed model when its name (or the name a `[[routes]] to` renames it
//!   to) matches an entry
//! - what `auto` (and any policy route) may pick is held to the list's model entries (those
//!   not starting with `auto`): a candidate is allowed when its model id or `provider/model`
//!   matches one; a list with only `auto` entries lets `auto` pick any model

use crate::config::glob_match;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    /// every entry, as written
    entries: Vec<String>,
    /// the entries that are not `auto` ones: what a policy route may pick
    models: Vec<String>,
}

fn is_auto(entry: &str) -> bool {
    entry == "auto" || entry.starts_with("auto:") || entry == "auto*"
}

impl Allow {
    pub fn new(entries: &[String]) -> Self {
        let entries: Vec<String> = entries.iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
        let models = entries.iter().filter(|e| !is_auto(e)).cloned().collect();
        Self { entries, models }
    }

    /// Every model is allowed.
    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a request may name `model`.
    pub fn names(&self, model: &str) -> bool {
        self.is_open() || self.entries.iter().any(|e| glob_match(e, model))
    }

    /// Whether a policy route (`auto`, ...) may pick `provider`'s `model`.
    pub fn picks(&self, provider: &str, model: &str) -> bool {
        if self.models.is_empty() {
            return true;
        }
        self.models.iter().any(|e| {
            glob_match(e, model)
                || e.split_once('/').is_some_and(|(p, m)| glob_match(p, provider) && glob_match(m, model))
        })
    }

    pub fn entries(&self) -> &[String] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(e: &[&str]) -> Allow {
        Allow::new(&e.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn an_empty_list_allows_every_name_and_pick() {
        let a = allow(&[]);
        assert!(a.is_open() && a.names("anything") && a.picks("groq", "llama"));
    }

    #[test]
    fn names_match_exactly_or_by_glob() {
        let a = allow(&["llama-3.3-70b", "auto:*", "fast"]);
        assert!(a.names("llama-3.3-70b") && a.names("auto:code") && a.names("fast"));
        assert!(!a.names("auto"), "auto:* is not auto");
        assert!(!a.names("gpt-4o") && !a.names("llama-3.3-70b-x"));
    }

    #[test]
    fn auto_may_pick_only_the_listed_models_when_there_are_some() {
        let a = allow(&["auto", "llama-*", "groq/qwen*"]);
        assert!(a.picks("cerebras", "llama-3.3-70b"));
        assert!(a.picks("groq", "qwen3-32b"));
        assert!(!a.picks("cerebras", "qwen3-32b"), "qwen only from groq");
        assert!(!a.picks("google", "gemini-2.5-flash"));
        let only_auto = allow(&["auto:*"]);
        assert!(only_auto.picks("google", "gemini-2.5-flash"));
    }
}
