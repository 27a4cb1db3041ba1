//! The embedded provider catalog, and providers enabled from their usual key variables when no
//! configuration file exists.

use std::sync::OnceLock;

use serde::Deserialize;

use super::{Interpolated, ProviderConfig, SecretString};

const CATALOG_TOML: &str = include_str!("../../../config/catalog.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub providers: Vec<CatalogProvider>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogProvider {
    pub id: String,
    pub name: String,
    pub base_url: String,
    pub component: String,
    /// environment variables holding a key, in order of preference
    #[serde(default)]
    pub key_env: Vec<String>,
}

/// The catalog compiled into the binary.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| match toml::from_str(CATALOG_TOML) {
        Ok(c) => c,
        // the catalog is checked by a unit test; an empty one keeps the gateway up regardless
        Err(e) => {
            tracing::error!("embedded catalog is invalid: {e}");
            Catalog { providers: Vec::new() }
        }
    })
}

/// Providers whose key variable is set, as configuration entries.
pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Vec<ProviderConfig> {
    catalog()
        .providers
        .iter()
        .filter_map(|p| {
            let key = p.key_env.iter().find_map(|v| lookup(v).filter(|k| !k.trim().is_empty()))?;
            Some(ProviderConfig {
                id: toml::Spanned::new(0..0, p.id.clone()),
                component: toml::Spanned::new(0..0, p.component.clone()),
                base_url: Some(Interpolated(p.base_url.clone())),
                api_keys: vec![SecretString::new(key.trim())],
                models: Vec::new(),
                settings: Default::default(),
                enabled: true,
                discover_models: true,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_parses_and_covers_the_main_free_tiers() {
        let c: Catalog = toml::from_str(CATALOG_TOML).unwrap();
        for id in ["openrouter", "groq", "cerebras", "gemini", "mistral"] {
            assert!(c.providers.iter().any(|p| p.id == id), "{id} missing");
        }
        for p in &c.providers {
            assert!(p.base_url.starts_with("https://"), "{}", p.id);
        }
    }

    #[test]
    fn providers_follow_their_key_variables() {
        let got = from_env(|v| match v {
            "GROQ_API_KEY" => Some("gsk_test".into()),
            "GOOGLE_API_KEY" => Some("AIza-test".into()),
            "MISTRAL_API_KEY" => Some("  ".into()),
            _ => None,
        });
        let ids: Vec<_> = got.iter().map(|p| p.id.get_ref().as_str()).collect();
        assert_eq!(ids, ["groq", "gemini"]);
        assert_eq!(got[0].base_url.as_deref(), Some("https://api.groq.com/openai/v1"));
        assert_eq!(got[1].api_keys[0].expose(), "AIza-test");
    }
}
