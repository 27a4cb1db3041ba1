//! Scripted behaviour: rules posted by a test that override how matching requests are answered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::normalize_prefix;

/// One rule: the first rule that matches a request and has `times` left answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, rename = "match")]
    pub matcher: Match,
    /// How many requests this rule answers; absent/null = forever.
    #[serde(default)]
    pub times: Option<u64>,
    pub action: Action,
}

/// Request filter; every field is optional and absent fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Match {
    /// The request body's `model`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The upstream prefix, e.g. "/v1".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The request path ends with this, e.g. "/chat/completions".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_suffix: Option<String>,
}

/// Which window a scripted 429 says is exhausted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    #[default]
    Minute,
    Day,
}

/// What to do with a matching request (`{"type": "...", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Answer `status` with `body` (JSON, or a string sent as text/plain) and extra `headers`.
    Status {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
    /// A 429 in the upstream's profile shape.
    RateLimit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_s: Option<u64>,
        #[serde(default)]
        window: Window,
    },
    /// Extra latency before the headers, then normal behaviour.
    Delay { ms: u64 },
    /// Never send headers (until the client disconnects or 10 minutes pass).
    Hang,
    /// Stream: send `chunks` events then abort the connection. Non-stream: half the JSON, then abort.
    DropAfter {
        #[serde(default)]
        chunks: usize,
    },
    /// Stream: send `chunks` events then nothing more. Non-stream: headers, then nothing.
    StallAfter {
        #[serde(default)]
        chunks: usize,
    },
    /// 200 with a body that is not JSON (stream: an event whose data is not JSON, then `[DONE]`).
    Malformed,
    /// A custom reply; every field optional.
    Reply {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finish_reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        extra: Option<Map<String, Value>>,
        /// reasoning before the answer (`reasoning_content`, as DeepSeek-style upstreams send it)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reasoning: Option<String>,
    },
    /// Stream: `chunks` normal events, then an OpenRouter-style error event, then `[DONE]`.
    MidStreamError {
        #[serde(default)]
        chunks: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<Value>,
    },
}

/// The facts of a request that rules match on.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub prefix: &'a str,
    pub path: &'a str,
    pub key: Option<&'a str>,
    pub model: Option<&'a str>,
}

impl Match {
    pub fn matches(&self, facts: &RequestFacts<'_>) -> bool {
        let field = |want: &Option<String>, have: Option<&str>| match want {
            None => true,
            Some(want) => have == Some(want.as_str()),
        };
        field(&self.model, facts.model)
            && field(&self.key, facts.key)
            && self.prefix.as_ref().is_none_or(|prefix| normalize_prefix(prefix) == facts.prefix)
            && self.path_suffix.as_ref().is_none_or(|suffix| facts.path.ends_with(suffix.as_str()))
    }
}

/// An armed rule and how many more requests it answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStatus {
    #[serde(rename = "match")]
    pub matcher: Match,
    /// Remaining uses; null = forever.
    pub remaining: Option<u64>,
    pub action: Action,
    /// Requests answered so far.
    pub hits: u64,
}

/// The rules in force, in the order they were added.
#[derive(Debug, Default)]
pub struct RuleBook {
    rules: Mutex<Vec<RuleStatus>>,
    /// Mirror of `rules.len()` so requests skip the lock when nothing is scripted.
    len: AtomicUsize,
}

impl RuleBook {
    /// Appends rules; rules with `times: 0` are dropped.
    pub fn add(&self, rules: Vec<Rule>) {
        let mut armed = self.rules.lock();
        armed.extend(rules.into_iter().filter(|r| r.times != Some(0)).map(|r| RuleStatus {
            matcher: r.matcher,
            remaining: r.times,
            action: r.action,
            hits: 0,
        }));
        self.len.store(armed.len(), Ordering::Release);
    }

    pub fn clear(&self) {
        let mut armed = self.rules.lock();
        armed.clear();
        self.len.store(0, Ordering::Release);
    }

    /// The action of the first matching rule, using up one of its `times`.
    pub fn take(&self, facts: &RequestFacts<'_>) -> Option<Action> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut armed = self.rules.lock();
        let index = armed.iter().position(|rule| rule.matcher.matches(facts))?;
        let rule = &mut armed[index];
        rule.hits += 1;
        let action = rule.action.clone();
        if let Some(remaining) = &mut rule.remaining {
            *remaining -= 1;
            if *remaining == 0 {
                armed.remove(index);
                self.len.store(armed.len(), Ordering::Release);
            }
        }
        Some(action)
    }

    /// The rules still armed.
    pub fn list(&self) -> Vec<RuleStatus> {
        self.rules.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(model: Option<&'a str>, key: Option<&'a str>) -> RequestFacts<'a> {
        RequestFacts { prefix: "/v1", path: "/v1/chat/completions", key, model }
    }

    fn rules(json: &str) -> Vec<Rule> {
        #[derive(Deserialize)]
        struct Body {
            rules: Vec<Rule>,
        }
        serde_json::from_str::<Body>(json).unwrap().rules
    }

    #[test]
    fn actions_parse_from_json() {
        let parsed = rules(
            r#"{"rules":[
            {"match":{"model":"m","key":"k","prefix":"/v1","path_suffix":"/chat/completions"},"times":2,"action":{"type":"status","status":503,"body":"down","headers":{"x-a":"b"}}},
            {"action":{"type":"rate_limit","retry_after_s":7,"window":"day"}},
            {"action":{"type":"delay","ms":300}},
            {"action":{"type":"hang"}},
            {"action":{"type":"drop_after","chunks":3}},
            {"action":{"type":"stall_after","chunks":2}},
            {"action":{"type":"malformed"}},
            {"action":{"type":"reply","content":"hi","finish_reason":"stop","usage":{"prompt_tokens":1},"extra":{"x":1}}},
            {"action":{"type":"mid_stream_error","chunks":2,"error":{"code":502,"message":"boom"}}},
            {"times":null,"action":{"type":"rate_limit"}}
        ]}"#,
        );
        assert_eq!(parsed.len(), 10);
        assert_eq!(parsed[0].times, Some(2));
        assert_eq!(parsed[0].matcher.model.as_deref(), Some("m"));
        assert!(
            matches!(&parsed[0].action, Action::Status { status: 503, body: Some(Value::String(s)), headers } if s == "down" && headers["x-a"] == "b")
        );
        assert_eq!(parsed[1].action, Action::RateLimit { retry_after_s: Some(7), window: Window::Day });
        assert_eq!(parsed[3].action, Action::Hang);
        assert_eq!(parsed[4].action, Action::DropAfter { chunks: 3 });
        assert_eq!(parsed[9].action, Action::RateLimit { retry_after_s: None, window: Window::Minute });
        assert!(parsed[9].times.is_none());
    }

    #[test]
    fn unknown_action_types_and_fields_are_rejected() {
        assert!(serde_json::from_str::<Rule>(r#"{"action":{"type":"explode"}}"#).is_err());
        assert!(serde_json::from_str::<Rule>(r#"{"action":{"type":"delay","ms":1,"x":2}}"#).is_err());
        assert!(serde_json::from_str::<Rule>(r#"{"match":{"modle":"m"},"action":{"type":"hang"}}"#).is_err());
    }

    #[test]
    fn matching_fields() {
        let m = Match {
            model: Some("m".into()),
            key: Some("k".into()),
            prefix: Some("/v1/".into()),
            path_suffix: Some("/chat/completions".into()),
        };
        assert!(m.matches(&facts(Some("m"), Some("k"))));
        assert!(!m.matches(&facts(Some("other"), Some("k"))));
        assert!(!m.matches(&facts(Some("m"), None)));
        assert!(!m.matches(&facts(None, Some("k"))));
        let mut wrong_path = facts(Some("m"), Some("k"));
        wrong_path.path = "/v1/models";
        assert!(!m.matches(&wrong_path));
        assert!(Match::default().matches(&facts(None, None)));
    }

    #[test]
    fn times_count_down_and_first_match_wins() {
        let book = RuleBook::default();
        book.add(rules(
            r#"{"rules":[
            {"match":{"model":"a"},"times":2,"action":{"type":"status","status":500}},
            {"times":1,"action":{"type":"status","status":503}},
            {"times":0,"action":{"type":"hang"}}
        ]}"#,
        ));
        assert_eq!(book.list().len(), 2);
        let status = |action: Option<Action>| match action {
            Some(Action::Status { status, .. }) => Some(status),
            _ => None,
        };
        assert_eq!(status(book.take(&facts(Some("a"), None))), Some(500));
        assert_eq!(status(book.take(&facts(Some("a"), None))), Some(500));
        assert_eq!(status(book.take(&facts(Some("a"), None))), Some(503));
        assert_eq!(book.take(&facts(Some("a"), None)), None);
        assert!(book.list().is_empty());
    }

    #[test]
    fn forever_rules_stay_and_count_hits() {
        let book = RuleBook::default();
        book.add(rules(r#"{"rules":[{"action":{"type":"delay","ms":1}}]}"#));
        for _ in 0..3 {
            assert_eq!(book.take(&facts(None, None)), Some(Action::Delay { ms: 1 }));
        }
        assert_eq!(book.list()[0].hits, 3);
        assert_eq!(book.list()[0].remaining, None);
        book.clear();
        assert_eq!(book.take(&facts(None, None)), None);
    }
}
