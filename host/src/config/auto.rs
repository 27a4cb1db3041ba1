//! With no configuration file: every catalog provider whose key variable is set is enabled (the
//! catalog supplies its component, base URL and settings). Paid providers are left out unless
//! `FREEWAY_PAID_PROVIDERS` names them (`anthropic,together`, or `*`): a key in the environment
//! is not a decision to spend money. A provider that needs an account setting reads it from
//! `<ID>_<SETTING>` (`CLOUDFLARE_ACCOUNT_ID`), and is left out, with a warning, without it;
//! `<ID>_BASE_URL` points a provider somewhere else (a proxy, a self-hosted mirror).

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
                let var = format!("{}_{}", env_prefix(&p.id), setting.to_uppercase());
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
            let mut entry = entry(&p.id);
            entry.api_keys.push(account);
            let var = format!("{}_BASE_URL", env_prefix(&p.id));
            if let Some(url) = lookup(&var).map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()) {
                match url::Url::parse(&url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                        entry.base_url = Some(super::Interpolated(url));
                    }
                    _ => tracing::warn!("{var} is not an http(s) URL with a host: {} keeps its own base URL", p.id),
                }
            }
            Some(entry)
        })
        .collect()
}

/// The prefix of a provider's own variables: `CLOUDFLARE` for `CLOUDFLARE_ACCOUNT_ID`,
/// `GITHUB_MODELS` for `github-models`.
pub fn env_prefix(id: &str) -> String {
    id.to_uppercase().replace(['-', '.'], "_")
}

/// An enabled provider entry that leaves everything to the catalog.
pub fn entry(id: &str) -> ProviderConfig {
    ProviderConfig {
        id: toml::Spanned::new(0..0, id.to_owned()),
        catalog: None,
        component: None,
        base_url: None,
        api_keys: Vec::new(),
        models: Vec::new(),
        settings: Default::default(),
        enabled: true,
        discover_models: true,
        poll_limits: false,
        legacy_completions: false,
        rotation: Default::default(),
        limits: None,
    }
}

/// `auto_env`: providers enabled from their key variables join those the configuration lists
/// (a listed provider keeps its entry).
pub fn merge_from_env(config: &mut super::Config, catalog: &Catalog, lookup: impl Fn(&str) -> Option<String>) {
    for p in from_env(catalog, lookup) {
        if !config.providers.iter().any(|c| c.id.get_ref() == p.id.get_ref()) {
            config.providers.push(p);
        }
    }
}

/// The key a listed provider without `api_keys` takes from its catalog key variable.
pub fn catalog_key(entry: &super::CatalogProvider, lookup: impl Fn(&str) -> Option<String>) -> Option<SecretString> {
    entry.key_env.iter().find_map(|v| lookup(v).filter(|k| !k.trim().is_empty())).map(|k| SecretString::new(k.trim()))
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

    #[test]
    fn a_base_url_variable_moves_a_provider_enabled_from_its_key() {
        let catalog = crate::config::catalog::embedded();
        let env = |env: &'static [(&'static str, &'static str)]| {
            from_env(catalog, move |v| env.iter().find(|(k, _)| *k == v).map(|(_, x)| (*x).to_owned()))
        };
        let moved = env(&[("GROQ_API_KEY", "gsk_x"), ("GROQ_BASE_URL", " http://127.0.0.1:9000/v1 ")]);
        assert_eq!(moved[0].base_url.as_ref().map(|u| u.0.as_str()), Some("http://127.0.0.1:9000/v1"));
        let refused = env(&[("GROQ_API_KEY", "gsk_x"), ("GROQ_BASE_URL", "file:///etc/passwd")]);
        assert!(refused[0].base_url.is_none(), "not an http(s) URL: ignored");
        assert!(env(&[("GROQ_BASE_URL", "http://127.0.0.1:9000/v1")]).is_empty(), "a base URL alone enables nothing");
    }

    #[test]
    fn listed_providers_keep_their_entry_and_the_environment_adds_the_rest() {
        let catalog = crate::config::catalog::embedded();
        let mut config: crate::config::Config =
            toml::from_str("[[providers]]\nid = \"groq\"\napi_keys = [\"gsk_file\"]\n").unwrap();
        merge_from_env(&mut config, catalog, |v| match v {
            "GROQ_API_KEY" => Some("gsk_env".into()),
            "CEREBRAS_API_KEY" => Some("csk_env".into()),
            _ => None,
        });
        let ids: Vec<&str> = config.providers.iter().map(|p| p.id.get_ref().as_str()).collect();
        assert_eq!(ids, ["groq", "cerebras"]);
        assert_eq!(config.providers[0].api_keys.len(), 1, "the listed entry is left as written");
        assert_eq!(config.providers[0].api_keys[0].expose(), "gsk_file");
    }
}
