//! The provider catalog: what Freeway knows about each provider before anyone configures it.
//! Data, not code: `config/catalog.toml` is embedded in the binary, and files named in
//! `[catalog] files` extend it or replace entries by id.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

const CATALOG_TOML: &str = include_str!("../../../config/catalog.toml");

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(default)]
    pub providers: Vec<CatalogProvider>,
}

/// One provider's facts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogProvider {
    pub id: String,
    pub name: String,
    pub base_url: String,
    /// the component that serves it (`openai-compat`, `gemini`, `cohere`, ...)
    pub component: String,
    /// environment variables holding a key, in order of preference
    #[serde(default)]
    pub key_env: Vec<String>,
    /// where a person gets a key (shown by `freeway setup`)
    #[serde(default)]
    pub keys_url: Option<String>,
    /// a server on this machine: no key, found by probing its usual port
    #[serde(default)]
    pub local: bool,
    /// free tier, paid credits, or a mix
    #[serde(default)]
    pub tier: Tier,
    /// settings handed to the component (quirks, what the rate-limit headers mean)
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// per-account settings an account of this provider needs (e.g. Cloudflare's `account_id`)
    #[serde(default)]
    pub account_settings: Vec<String>,
    /// the component reads quota through an endpoint after responses (OpenRouter's `/key`)
    #[serde(default)]
    pub poll_limits: bool,
    /// the upstream still serves legacy `/completions` next to `/chat/completions`: Freeway's
    /// `/v1/completions` requests are passed through to it instead of translated to chat
    #[serde(default)]
    pub legacy_completions: bool,
    /// what the provider's rate-limit headers mean, for people (the component reads `settings`)
    #[serde(default)]
    pub rate_limit_headers: Vec<HeaderMeaning>,
    /// free-tier limits that apply across the account (see `scope`)
    #[serde(default)]
    pub limits: Limits,
    /// when daily counters reset, e.g. `"00:00 UTC"` or `"00:00 America/Los_Angeles"`
    #[serde(default)]
    pub daily_reset: Option<String>,
    #[serde(default)]
    pub terms: Terms,
    #[serde(default)]
    pub models: Vec<CatalogModel>,
    #[serde(default)]
    pub notes: Vec<String>,
    /// where the facts come from (document and date)
    #[serde(default)]
    pub sources: Vec<String>,
}

/// What a provider id may be: letters, digits, `-`, `_` and `.`.
pub fn valid_provider_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    #[default]
    Free,
    /// free credits (trial or monthly) rather than free requests
    Credits,
    /// paid; listed for users who have credit there
    Paid,
    Local,
}

/// What a counter is keyed on.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// the whole account: more keys from one account add no capacity
    #[default]
    Account,
    Key,
    /// per model, within the account
    Model,
    Organization,
    Project,
}

/// Free-tier limits. `None` = not documented (no number is invented).
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub rpm: Option<u64>,
    #[serde(default)]
    pub rph: Option<u64>,
    #[serde(default)]
    pub rpd: Option<u64>,
    #[serde(default)]
    pub tpm: Option<u64>,
    #[serde(default)]
    pub tpd: Option<u64>,
    /// tokens per calendar month
    #[serde(default)]
    pub tokens_per_month: Option<u64>,
    /// free credits per month (provider units, see notes)
    #[serde(default)]
    pub credits_per_month: Option<f64>,
    /// Cloudflare's unit
    #[serde(default)]
    pub neurons_per_day: Option<u64>,
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none()
            && self.rph.is_none()
            && self.rpd.is_none()
            && self.tpm.is_none()
            && self.tpd.is_none()
            && self.tokens_per_month.is_none()
            && self.credits_per_month.is_none()
            && self.neurons_per_day.is_none()
    }

    /// `30 rpm, 14,400 rpd, 6,000 tpm` (documented dimensions only).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let mut push = |v: Option<u64>, unit: &str| {
            if let Some(v) = v {
                parts.push(format!("{} {unit}", group(v)));
            }
        };
        push(self.rpm, "rpm");
        push(self.rph, "rph");
        push(self.rpd, "rpd");
        push(self.tpm, "tpm");
        push(self.tpd, "tpd");
        push(self.tokens_per_month, "tokens/month");
        push(self.neurons_per_day, "neurons/day");
        if let Some(c) = self.credits_per_month {
            parts.push(format!("{c} credits/month"));
        }
        parts.join(", ")
    }
}

/// `14400` -> `14,400`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HeaderMeaning {
    pub name: String,
    pub meaning: String,
}

/// What the provider's terms say about how Freeway may use it.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    #[serde(default)]
    pub multiple_accounts: MultipleAccounts,
    /// free-tier prompts may be used to train or improve models
    #[serde(default)]
    pub trains_on_data: Option<bool>,
    /// the free tier is for evaluation/prototyping only, not production
    #[serde(default)]
    pub evaluation_only: bool,
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MultipleAccounts {
    Allowed,
    /// the terms forbid creating several accounts to get around limits
    Prohibited,
    /// not stated
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CatalogModel {
    pub id: String,
    #[serde(default)]
    pub context_window: Option<u32>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub tools: Option<bool>,
    #[serde(default)]
    pub vision: Option<bool>,
    #[serde(default)]
    pub reasoning: Option<bool>,
    #[serde(default)]
    pub json_mode: Option<bool>,
    /// an embedding model (`POST /v1/embeddings`), not a chat model
    #[serde(default)]
    pub embeddings: bool,
    /// embedding models: the length of the vectors it returns by default
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// embedding models: the most tokens one input may have
    #[serde(default)]
    pub max_input_tokens: Option<u32>,
    /// served free on this provider
    #[serde(default = "yes")]
    pub free: bool,
    /// limits of this model when they differ from the provider's (Groq, Gemini: per model)
    #[serde(default)]
    pub limits: Option<Limits>,
    #[serde(default)]
    pub notes: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Catalog {
    /// The entry for a provider id.
    pub fn provider(&self, id: &str) -> Option<&CatalogProvider> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// Add or replace entries (by id) from another catalog.
    pub fn merge(&mut self, other: Catalog) {
        for p in other.providers {
            match self.providers.iter_mut().find(|q| q.id == p.id) {
                Some(slot) => *slot = p,
                None => self.providers.push(p),
            }
        }
    }

    /// The embedded catalog plus user files.
    pub fn load(extra: &[impl AsRef<Path>]) -> Result<Catalog, String> {
        let mut c = embedded().clone();
        for path in extra {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let more: Catalog = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            c.merge(more);
        }
        Ok(c)
    }
}

/// The catalog compiled into the binary.
pub fn embedded() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| match toml::from_str(CATALOG_TOML) {
        Ok(c) => c,
        // a unit test keeps the embedded catalog valid; an empty one keeps the gateway up regardless
        Err(e) => {
            tracing::error!("embedded catalog is invalid: {e}");
            Catalog::default()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_parses() {
        let c: Catalog = toml::from_str(CATALOG_TOML).unwrap();
        assert!(!c.providers.is_empty());
        let mut ids = std::collections::HashSet::new();
        for p in &c.providers {
            assert!(ids.insert(p.id.as_str()), "{} twice", p.id);
            assert!(p.base_url.starts_with("https://") || p.local, "{}", p.id);
            let mut models = std::collections::HashSet::new();
            for m in &p.models {
                assert!(models.insert(m.id.as_str()), "{}: model {} twice", p.id, m.id);
            }
        }
    }

    #[test]
    fn merge_replaces_by_id_and_adds() {
        let mut a: Catalog = toml::from_str(
            "[[providers]]\nid = \"x\"\nname = \"X\"\nbase_url = \"https://x\"\ncomponent = \"openai-compat\"\n",
        )
        .unwrap();
        let b: Catalog = toml::from_str("[[providers]]\nid = \"x\"\nname = \"X2\"\nbase_url = \"https://x2\"\ncomponent = \"openai-compat\"\n[[providers]]\nid = \"y\"\nname = \"Y\"\nbase_url = \"https://y\"\ncomponent = \"openai-compat\"\n").unwrap();
        a.merge(b);
        assert_eq!(a.providers.len(), 2);
        assert_eq!(a.provider("x").unwrap().name, "X2");
    }

    #[test]
    fn limits_summarise_documented_numbers_only() {
        let l = Limits { rpm: Some(30), rpd: Some(14_400), tpm: Some(6_000), ..Limits::default() };
        assert_eq!(l.summary(), "30 rpm, 14,400 rpd, 6,000 tpm");
        assert!(Limits::default().is_empty());
    }
}
