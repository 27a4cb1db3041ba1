//! Simulator configuration: a TOML or JSON document, every field optional.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::daily::DailyReset;
use crate::profiles::Profile;

/// Path prefix of the default upstream.
pub const DEFAULT_PREFIX: &str = "/v1";
/// Prefix reserved for the control endpoints.
pub const CONTROL_PREFIX: &str = "/_sim";

/// The whole simulator configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Keep the last 1000 upstream requests for `GET /_sim/requests` (turn off for benchmarks).
    pub record: bool,
    /// Emulated providers, each under its own path prefix.
    pub upstreams: Vec<UpstreamConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { record: true, upstreams: vec![UpstreamConfig::default()] }
    }
}

/// One emulated provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Path prefix, e.g. "/v1", "/openai/v1" (groq), "/api/v1" (openrouter).
    pub prefix: String,
    /// Rate-limit header and error body style.
    pub profile: Profile,
    /// Accepted bearer keys; empty = any key (or none) is accepted.
    pub keys: Vec<String>,
    /// Models listed by `GET {prefix}/models`.
    pub models: Vec<String>,
    /// Reject chat requests for models not in `models` with 404 `model_not_found`.
    pub strict_models: bool,
    /// Delay before response headers.
    pub latency_ms: u64,
    /// Delay between stream events.
    pub token_delay_ms: u64,
    /// Completion length unless `max_tokens` / `max_completion_tokens` is smaller.
    pub reply_tokens: u32,
    /// Per-key limits; absent = unlimited.
    pub limits: Option<LimitsConfig>,
    /// Answer this many chat requests per thousand with a 500 (pseudo-random, reproducible;
    /// they do not count against the limits).
    #[serde(skip_serializing_if = "is_zero")]
    pub error_per_mille: u32,
    /// Per-model limits, by model id: a model listed here is counted per (key, model) against
    /// these limits instead of `limits`, and its responses' rate-limit headers report them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub model_limits: BTreeMap<String, LimitsConfig>,
    /// Length of the embedding vectors returned when a request does not ask for one.
    pub embedding_dimensions: u32,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            profile: Profile::default(),
            keys: Vec::new(),
            models: vec!["sim-model".to_owned(), "local-model".to_owned()],
            strict_models: false,
            latency_ms: 0,
            token_delay_ms: 0,
            reply_tokens: 12,
            limits: None,
            error_per_mille: 0,
            model_limits: BTreeMap::new(),
            embedding_dimensions: 8,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Per-key limits of one upstream; each absent axis is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per rolling minute.
    pub rpm: Option<u64>,
    /// Requests per UTC day.
    pub rpd: Option<u64>,
    /// Tokens (prompt + completion) per rolling minute.
    pub tpm: Option<u64>,
    /// Tokens per day.
    pub tpd: Option<u64>,
    /// Cloudflare's daily neuron allowance, counted as one neuron per token on the day's token
    /// counter (with `tpd` too, the lower of the two applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neurons_per_day: Option<u64>,
    /// Count per (key, model) instead of per key: every model has its own counters (a catalog
    /// `scope = "model"`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub per_model: bool,
    /// When rpd, tpd and neurons start again, e.g. "00:00 America/Los_Angeles"; default "00:00 UTC".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_reset: Option<DailyReset>,
}

/// A configuration that could not be read or is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl SimConfig {
    /// Parses a JSON document (not yet normalized).
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(text).map_err(|e| ConfigError(format!("invalid JSON config: {e}")))
    }

    /// Parses a TOML document (not yet normalized).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(format!("invalid TOML config: {e}")))
    }

    /// Reads a file: `.json` as JSON, `.toml` as TOML, anything else JSON first then TOML.
    /// The result is normalized.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        let parsed = match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Self::from_json(&text),
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Self::from_toml(&text),
            _ => Self::from_json(&text).or_else(|_| Self::from_toml(&text)),
        }?;
        parsed.normalized()
    }

    /// Normalizes prefixes ("v1/" -> "/v1", "/" -> "") and rejects duplicate or reserved ones.
    pub fn normalized(mut self) -> Result<Self, ConfigError> {
        let mut seen: Vec<String> = Vec::with_capacity(self.upstreams.len());
        for upstream in &mut self.upstreams {
            let prefix = normalize_prefix(&upstream.prefix);
            if prefix == CONTROL_PREFIX || prefix.starts_with("/_sim/") {
                return Err(ConfigError(format!("upstream prefix {prefix:?} collides with the control endpoints")));
            }
            if seen.contains(&prefix) {
                return Err(ConfigError(format!("duplicate upstream prefix {prefix:?}")));
            }
            seen.push(prefix.clone());
            upstream.prefix = prefix;
        }
        Ok(self)
    }
}

/// "/v1/" -> "/v1", "v1" -> "/v1", "/" or "" -> "" (the root).
pub fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_one_openai_upstream() {
        let config = SimConfig::from_json("{}").unwrap();
        assert_eq!(config, SimConfig::default());
        assert!(config.record);
        let up = &config.upstreams[0];
        assert_eq!(up.prefix, "/v1");
        assert_eq!(up.profile, Profile::OpenAi);
        assert!(up.keys.is_empty());
        assert_eq!(up.models, ["sim-model", "local-model"]);
        assert_eq!(up.reply_tokens, 12);
        assert!(up.limits.is_none());
    }

    #[test]
    fn toml_document_parses_with_partial_upstreams() {
        let text = r#"
            record = false
            [[upstreams]]
            prefix = "/openai/v1/"
            profile = "groq"
            keys = ["sk-1", "sk-2"]
            [upstreams.limits]
            rpm = 20
            tpd = 100000
            [[upstreams]]
            prefix = "api/v1"
            profile = "gemini-openai"
        "#;
        let config = SimConfig::from_toml(text).unwrap().normalized().unwrap();
        assert!(!config.record);
        assert_eq!(config.upstreams.len(), 2);
        let groq = &config.upstreams[0];
        assert_eq!(groq.prefix, "/openai/v1");
        assert_eq!(groq.profile, Profile::Groq);
        assert_eq!(groq.reply_tokens, 12);
        let limits = groq.limits.unwrap();
        assert_eq!((limits.rpm, limits.rpd, limits.tpm, limits.tpd), (Some(20), None, None, Some(100000)));
        assert_eq!(config.upstreams[1].prefix, "/api/v1");
        assert_eq!(config.upstreams[1].profile, Profile::GeminiOpenAi);
    }

    #[test]
    fn json_document_parses() {
        let config = SimConfig::from_json(
            r#"{"upstreams":[{"profile":"cerebras","strict_models":true,"models":["m"],"limits":{"rpd":5}}]}"#,
        )
        .unwrap();
        assert_eq!(config.upstreams[0].profile, Profile::Cerebras);
        assert!(config.upstreams[0].strict_models);
        assert_eq!(config.upstreams[0].limits.unwrap().rpd, Some(5));
    }

    #[test]
    fn unknown_fields_and_profiles_are_rejected() {
        assert!(SimConfig::from_json(r#"{"upstreams":[{"profil":"groq"}]}"#).is_err());
        assert!(SimConfig::from_json(r#"{"upstreams":[{"profile":"nope"}]}"#).is_err());
    }

    #[test]
    fn duplicate_and_reserved_prefixes_are_rejected() {
        let dup = SimConfig::from_json(r#"{"upstreams":[{"prefix":"/v1"},{"prefix":"/v1/"}]}"#).unwrap();
        assert!(dup.normalized().is_err());
        let reserved = SimConfig::from_json(r#"{"upstreams":[{"prefix":"/_sim"}]}"#).unwrap();
        assert!(reserved.normalized().is_err());
    }

    #[test]
    fn prefixes_normalize() {
        assert_eq!(normalize_prefix("/v1/"), "/v1");
        assert_eq!(normalize_prefix("v1"), "/v1");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix(""), "");
    }
}
