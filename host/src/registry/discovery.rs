//! Model discovery: each provider's model list, read through its component, kept in a state file
//! (`[discovery] state_file`) so that restarts and `freeway models` know what each provider served
//! last time. A model a provider stops listing is marked unavailable, not silently kept.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ProviderEntry;
use crate::bindings::wit;

/// One listed model, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub tools: bool,
    #[serde(default)]
    pub vision: bool,
    #[serde(default)]
    pub reasoning: bool,
    #[serde(default)]
    pub json_mode: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
}

impl From<&wit::ModelInfo> for ModelRecord {
    fn from(m: &wit::ModelInfo) -> Self {
        let c = m.capabilities;
        Self {
            id: m.id.clone(),
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
            tools: c.contains(wit::Capabilities::TOOLS),
            vision: c.contains(wit::Capabilities::VISION),
            reasoning: c.contains(wit::Capabilities::REASONING),
            json_mode: c.contains(wit::Capabilities::JSON_MODE),
            free: m.free,
            owned_by: m.owned_by.clone(),
        }
    }
}

impl ModelRecord {
    pub fn to_wit(&self) -> wit::ModelInfo {
        let mut caps = wit::Capabilities::STREAMING;
        for (on, flag) in [
            (self.tools, wit::Capabilities::TOOLS),
            (self.vision, wit::Capabilities::VISION),
            (self.reasoning, wit::Capabilities::REASONING),
            (self.json_mode, wit::Capabilities::JSON_MODE),
        ] {
            if on {
                caps |= flag;
            }
        }
        wit::ModelInfo {
            id: self.id.clone(),
            context_window: self.context_window,
            max_output_tokens: self.max_output_tokens,
            capabilities: caps,
            free: self.free,
            owned_by: self.owned_by.clone(),
        }
    }
}

/// The last listing of one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// when the last successful listing was taken (Unix ms)
    pub synced_at_ms: u64,
    pub models: Vec<ModelRecord>,
    /// the last attempt's failure, if it failed (the models are from the last success)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// when the last attempt was made (Unix ms)
    #[serde(default)]
    pub attempted_at_ms: u64,
}

impl Listing {
    pub fn succeeded(&self) -> bool {
        self.synced_at_ms > 0
    }
}

/// What discovery knows, per provider id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryState {
    #[serde(default)]
    pub providers: BTreeMap<String, Listing>,
}

pub use freeway_core::clock::now_ms;

impl DiscoveryState {
    /// The state file's content; empty when it does not exist or cannot be read (with a warning).
    pub fn load(path: &Path) -> Self {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("ignoring unreadable model state {}: {e}", path.display());
                Self::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => {
                tracing::warn!("cannot read model state {}: {e}", path.display());
                Self::default()
            }
        }
    }

    /// Write atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Record the outcome of listing one provider.
    pub fn record(&mut self, provider: &str, result: Result<Vec<wit::ModelInfo>, String>) {
        let now = now_ms();
        let entry = self.providers.entry(provider.to_owned()).or_default();
        entry.attempted_at_ms = now;
        match result {
            Ok(models) => {
                entry.models = models.iter().map(ModelRecord::from).collect();
                entry.synced_at_ms = now;
                entry.error = None;
            }
            Err(e) => entry.error = Some(e),
        }
    }
}

/// List a provider's models through its component, as its first account.
pub async fn list(p: &ProviderEntry) -> Result<Vec<wit::ModelInfo>, String> {
    let account = p.accounts.first().cloned();
    let mut instance =
        p.component.acquire(Some(p.io.clone()), account.into_iter().collect()).await.map_err(|f| f.to_string())?;
    match instance.list_models(&p.wit_config, Some(0)).await {
        Ok(Ok(models)) => Ok(models),
        Ok(Err(e)) => Err(e.message),
        Err(f) => Err(f.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str) -> wit::ModelInfo {
        wit::ModelInfo {
            id: id.into(),
            context_window: Some(8192),
            max_output_tokens: None,
            capabilities: wit::Capabilities::TOOLS | wit::Capabilities::STREAMING,
            free: Some(true),
            owned_by: None,
        }
    }

    #[test]
    fn a_failed_listing_keeps_the_last_success() {
        let mut s = DiscoveryState::default();
        s.record("p", Ok(vec![model("a"), model("b")]));
        s.record("p", Err("timeout".into()));
        let l = &s.providers["p"];
        assert_eq!(l.models.len(), 2);
        assert_eq!(l.error.as_deref(), Some("timeout"));
        assert!(l.succeeded());
        assert!(l.models[0].tools);
        assert_eq!(l.models[0].to_wit().capabilities, wit::Capabilities::TOOLS | wit::Capabilities::STREAMING);
    }

    #[test]
    fn state_survives_a_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/models.json");
        let mut s = DiscoveryState::default();
        s.record("p", Ok(vec![model("a")]));
        s.save(&path).unwrap();
        assert_eq!(DiscoveryState::load(&path), s);
        assert_eq!(DiscoveryState::load(&dir.path().join("none.json")), DiscoveryState::default());
    }
}
