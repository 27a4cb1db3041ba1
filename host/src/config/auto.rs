//! With no configuration file: every catalog provider whose key variable is set is enabled (the
//! catalog supplies its component, base URL and settings).

use super::catalog::Catalog;
use super::{ApiKey, ProviderConfig, SecretString};

/// Providers whose key variable is set, as configuration entries.
pub fn from_env(catalog: &Catalog, lookup: impl Fn(&str) -> Option<String>) -> Vec<ProviderConfig> {
    catalog
        .providers
        .iter()
        .filter(|p| !p.local)
        .filter_map(|p| {
            let key = p.key_env.iter().find_map(|v| lookup(v).filter(|k| !k.trim().is_empty()))?;
            Some(ProviderConfig {
                id: toml::Spanned::new(0..0, p.id.clone()),
                catalog: None,
                component: None,
                base_url: None,
                api_keys: vec![ApiKey::new(SecretString::new(key.trim()))],
                models: Vec::new(),
                settings: Default::default(),
                enabled: true,
                discover_models: true,
                poll_limits: false,
                rotation: Default::default(),
                limits: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_follow_their_key_variables() {
        let catalog: Catalog = toml::from_str(
            r#"
[[providers]]
id = "groq"
name = "Groq"
base_url = "https://api.groq.com/openai/v1"
component = "openai-compat"
key_env = ["GROQ_API_KEY"]
[[providers]]
id = "gemini"
name = "Gemini"
base_url = "https://generativelanguage.googleapis.com/v1beta"
component = "gemini"
key_env = ["GEMINI_API_KEY", "GOOGLE_API_KEY"]
[[providers]]
id = "mistral"
name = "Mistral"
base_url = "https://api.mistral.ai/v1"
component = "openai-compat"
key_env = ["MISTRAL_API_KEY"]
"#,
        )
        .unwrap();
        let got = from_env(&catalog, |v| match v {
            "GROQ_API_KEY" => Some("gsk_test".into()),
            "GOOGLE_API_KEY" => Some("AIza-test".into()),
            "MISTRAL_API_KEY" => Some("  ".into()),
            _ => None,
        });
        let ids: Vec<_> = got.iter().map(|p| p.id.get_ref().as_str()).collect();
        assert_eq!(ids, ["groq", "gemini"]);
        assert_eq!(got[1].api_keys[0].expose(), "AIza-test");
    }
}
