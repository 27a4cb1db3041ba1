//! With no configuration file: every catalog provider whose key variable is set is enabled (the
//! catalog supplies its component, base URL and settings). Paid providers are left out unless
//! `FREEWAY_PAID_PROVIDERS` names them (`anthropic,together`, or `*`): a key in the environment
//! is not a decision to spend money. A provider that needs an account setting reads it from
//! `<ID>_<SETTING>` (`CLOUDFLARE_ACCOUNT_ID`), and is left out, with a warning, without it.

use super::catalog::{Catalog, Tier};
use super::{ApiKey, ProviderConfig, SecretString};

/// The variable that lets paid providers be enabled from their key variables.
pub const PAID_OPT_IN: &str = "FREEWAY_PAID_PROVIDERS";

/// Providers whose key variable is set, as configuration entries.
pub fn from_env(catalog: &Catalog, lookup: impl Fn(&str) -> Option<String>) -> Vec<ProviderConfig> {
    let paid_ok = lookup(PAID_OPT_IN).unwrap_or_default();
    let paid_ok: Vec<&str> = paid_ok.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    catalog
        .providers
        .iter()
        .filter(|p| !p.local)
        .filter_map(|p| {
            let key = p.key_env.iter().find_map(|v| lookup(v).filter(|k| !k.trim().is_empty()))?;
            if p.tier == Tier::Paid && !paid_ok.iter().any(|id| *id == "*" || *id == p.id) {
                tracing::info!(
                    "{} is paid: not enabled from {} (add it to {PAID_OPT_IN} or configure it)",
                    p.id,
                    p.key_env.join("/")
                );
                return None;
            }
            let mut account = ApiKey::new(SecretString::new(key.trim()));
            for setting in &p.account_settings {
                let var = format!("{}_{}", p.id.to_uppercase().replace('-', "_"), setting.to_uppercase());
                match lookup(&var).filter(|v| !v.trim().is_empty()) {
                    Some(v) => {
                        account.settings.insert(setting.clone(), v.trim().to_owned());
                    }
                    None => {
                        tracing::warn!("{} has a key but no {var}: not enabled", p.id);
                        return None;
                    }
                }
            }
            Some(ProviderConfig {
                id: toml::Spanned::new(0..0, p.id.clone()),
                catalog: None,
                component: None,
                base_url: None,
                api_keys: vec![account],
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

    fn ids(catalog: &Catalog, env: &[(&str, &str)]) -> Vec<String> {
        from_env(catalog, |v| env.iter().find(|(k, _)| *k == v).map(|(_, x)| (*x).to_owned()))
            .iter()
            .map(|p| p.id.get_ref().clone())
            .collect()
    }

    #[test]
    fn paid_providers_need_an_opt_in_and_account_settings_come_from_their_variable() {
        let catalog = crate::config::catalog::embedded();
        let env = [("ANTHROPIC_API_KEY", "sk-ant-x"), ("GROQ_API_KEY", "gsk_x")];
        assert_eq!(ids(catalog, &env), ["groq"], "a paid key alone enables nothing");
        let opted = [("ANTHROPIC_API_KEY", "sk-ant-x"), ("FREEWAY_PAID_PROVIDERS", "together, anthropic")];
        assert_eq!(ids(catalog, &opted), ["anthropic"]);
        assert_eq!(ids(catalog, &[("ANTHROPIC_API_KEY", "sk-ant-x"), ("FREEWAY_PAID_PROVIDERS", "*")]), ["anthropic"]);

        assert!(ids(catalog, &[("CLOUDFLARE_API_TOKEN", "cf-x")]).is_empty(), "no account id: left out");
        let cf = from_env(catalog, |v| match v {
            "CLOUDFLARE_API_TOKEN" => Some("cf-x".into()),
            "CLOUDFLARE_ACCOUNT_ID" => Some(" 0123abcd ".into()),
            _ => None,
        });
        assert_eq!(cf.len(), 1);
        assert_eq!(cf[0].api_keys[0].settings.get("account_id").map(String::as_str), Some("0123abcd"));
    }
}
