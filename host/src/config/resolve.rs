//! Configured providers resolved against the catalog: what the file says wins, the catalog
//! fills the rest (component, base URL, settings, models, limits), then built-in defaults.

use std::collections::BTreeMap;

use super::catalog::{Catalog, CatalogProvider};
use super::{Config, ModelSpec, Rotation, SecretString};
use crate::vault::Record;

/// One account's credential, from the configuration or the vault.
#[derive(Debug, Clone)]
pub struct ResolvedKey {
    /// the vault's id, or `provider#n` for keys in the configuration
    pub id: String,
    pub secret: SecretString,
    pub label: String,
    /// `None`: a pool of its own
    pub pool: Option<String>,
    pub settings: BTreeMap<String, String>,
    pub enabled: bool,
    pub from_vault: bool,
}

/// A provider ready to be built into the routing table.
#[derive(Debug, Clone)]
pub struct ResolvedProvider {
    pub id: String,
    /// built-in component name or `.wasm` path
    pub component: String,
    /// `None`: the component's default
    pub base_url: Option<String>,
    pub keys: Vec<ResolvedKey>,
    /// catalog settings overlaid with the configuration's
    pub settings: BTreeMap<String, String>,
    /// models the configuration lists explicitly (always routed)
    pub models: Vec<ModelSpec>,
    pub catalog: Option<CatalogProvider>,
    pub discover_models: bool,
    pub poll_limits: bool,
    /// `/v1/completions` is passed through (the configuration's or the catalog's word)
    pub legacy_completions: bool,
    /// a local server found by probing: unreachable is not a configuration problem
    pub local: bool,
    pub rotation: Rotation,
    /// the configuration's limits (the catalog's apply when `None`)
    pub limits: Option<super::catalog::Limits>,
}

fn config_keys(id: &str, keys: &[super::ApiKey]) -> Vec<ResolvedKey> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let key_id = format!("{id}#{}", i + 1);
            ResolvedKey {
                label: k.label.clone().unwrap_or_else(|| key_id.clone()),
                id: key_id,
                secret: k.key.clone(),
                pool: None,
                settings: k.settings.clone(),
                enabled: true,
                from_vault: false,
            }
        })
        .collect()
}

fn vault_key(r: &Record, secret: &SecretString) -> ResolvedKey {
    ResolvedKey {
        id: r.id.clone(),
        secret: secret.clone(),
        label: r.label.clone(),
        pool: Some(r.pool.clone()),
        settings: r.settings.clone(),
        enabled: r.enabled,
        from_vault: true,
    }
}

/// The enabled providers of `config` (with their vault accounts), catalog providers that only
/// the vault has accounts for, and the local servers `[discovery] local` asks to look for.
/// A listed provider without `api_keys` takes its key from the catalog's key variable (`lookup`
/// reads the environment).
pub fn resolve(
    config: &Config,
    catalog: &Catalog,
    vault: &[(Record, SecretString)],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<ResolvedProvider> {
    let mut out: Vec<ResolvedProvider> = Vec::new();
    for p in config.providers.iter().filter(|p| p.enabled) {
        let id = p.id.get_ref().clone();
        let entry = catalog.provider(p.catalog.as_deref().unwrap_or(&id)).cloned();
        let mut keys = config_keys(&id, &p.api_keys);
        keys.extend(vault.iter().filter(|(r, _)| r.provider == id).map(|(r, s)| vault_key(r, s)));
        if p.api_keys.is_empty()
            && let Some(e) = &entry
            && let Some(secret) = super::auto::catalog_key(e, lookup)
            && !keys.iter().any(|k| k.secret.expose() == secret.expose())
        {
            let var = e.key_env.iter().find(|v| lookup(v).is_some_and(|k| !k.trim().is_empty())).cloned();
            keys.push(ResolvedKey {
                id: format!("{id}#env"),
                secret,
                label: var.unwrap_or_else(|| format!("{id}#env")),
                pool: None,
                settings: BTreeMap::new(),
                enabled: true,
                from_vault: false,
            });
        }
        let mut settings = entry.as_ref().map(|e| e.settings.clone()).unwrap_or_default();
        settings.extend(p.settings.iter().map(|(k, v)| (k.clone(), v.0.clone())));
        out.push(ResolvedProvider {
            component: p
                .component
                .as_ref()
                .map(|c| c.get_ref().clone())
                .or_else(|| entry.as_ref().map(|e| e.component.clone()))
                .unwrap_or_else(|| "openai-compat".to_owned()),
            base_url: p.base_url.as_ref().map(|u| u.0.clone()).or_else(|| entry.as_ref().map(|e| e.base_url.clone())),
            keys,
            settings,
            models: p.models.clone(),
            discover_models: p.discover_models,
            poll_limits: p.poll_limits || entry.as_ref().is_some_and(|e| e.poll_limits),
            legacy_completions: p.legacy_completions || entry.as_ref().is_some_and(|e| e.legacy_completions),
            local: entry.as_ref().is_some_and(|e| e.local),
            rotation: p.rotation,
            limits: p.limits.clone(),
            catalog: entry,
            id,
        });
    }
    // providers the vault has accounts for but the configuration does not mention
    let mut vault_only: Vec<&str> = Vec::new();
    for (r, _) in vault {
        if !config.providers.iter().any(|p| p.id.get_ref() == &r.provider) && !vault_only.contains(&r.provider.as_str())
        {
            vault_only.push(&r.provider);
        }
    }
    for provider in vault_only {
        let Some(entry) = catalog.provider(provider).filter(|e| !e.local) else {
            tracing::warn!("the vault has accounts for '{provider}', which is neither configured nor in the catalog");
            continue;
        };
        out.push(ResolvedProvider {
            id: entry.id.clone(),
            component: entry.component.clone(),
            base_url: Some(entry.base_url.clone()),
            keys: vault.iter().filter(|(r, _)| r.provider == provider).map(|(r, s)| vault_key(r, s)).collect(),
            settings: entry.settings.clone(),
            models: Vec::new(),
            catalog: Some(entry.clone()),
            discover_models: true,
            poll_limits: entry.poll_limits,
            legacy_completions: entry.legacy_completions,
            local: false,
            rotation: Rotation::default(),
            limits: None,
        });
    }
    for name in &config.discovery.local {
        if out.iter().any(|p| &p.id == name) {
            continue;
        }
        match catalog.provider(name).filter(|e| e.local) {
            Some(entry) => out.push(ResolvedProvider {
                id: entry.id.clone(),
                component: entry.component.clone(),
                base_url: Some(entry.base_url.clone()),
                keys: Vec::new(),
                settings: entry.settings.clone(),
                models: Vec::new(),
                catalog: Some(entry.clone()),
                discover_models: true,
                poll_limits: false,
                legacy_completions: entry.legacy_completions,
                local: true,
                rotation: Rotation::default(),
                limits: None,
            }),
            None => tracing::warn!("[discovery] local names \"{name}\", which is not a local server in the catalog"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        toml::from_str(
            r#"
[[providers]]
id = "groq"
name = "Groq"
base_url = "https://api.groq.com/openai/v1"
component = "openai-compat"
[providers.settings]
requests_window = "day"
drop_params = "logprobs"

[[providers]]
id = "gemini"
name = "Gemini"
base_url = "https://generativelanguage.googleapis.com/v1beta"
component = "gemini"

[[providers]]
id = "ollama"
name = "Ollama"
base_url = "http://localhost:11434/v1"
component = "openai-compat"
local = true
"#,
        )
        .unwrap()
    }

    fn config(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn catalog_fills_what_the_file_leaves_out() {
        let c = config(
            "[[providers]]\nid = \"groq\"\napi_keys = [\"gsk_1\"]\n[providers.settings]\ndrop_params = \"logprobs,n\"\n",
        );
        let r = resolve(&c, &catalog(), &[], &|_| None);
        assert_eq!(r[0].component, "openai-compat");
        assert_eq!(r[0].base_url.as_deref(), Some("https://api.groq.com/openai/v1"));
        assert_eq!(r[0].settings["requests_window"], "day");
        assert_eq!(r[0].settings["drop_params"], "logprobs,n", "the file wins");
    }

    #[test]
    fn a_listed_provider_without_keys_takes_its_catalog_key_variable() {
        let mut cat = catalog();
        cat.providers[0].key_env = vec!["GROQ_API_KEY".into()];
        let env = |v: &str| (v == "GROQ_API_KEY").then(|| " gsk_env ".to_owned());
        let listed = config("[[providers]]\nid = \"groq\"\n");
        let r = resolve(&listed, &cat, &[], &env);
        assert_eq!(r[0].keys.len(), 1);
        assert_eq!(r[0].keys[0].secret.expose(), "gsk_env");
        assert_eq!(r[0].keys[0].label, "GROQ_API_KEY", "labelled by its variable, never by the key");
        let with_keys = config("[[providers]]\nid = \"groq\"\napi_keys = [\"gsk_file\"]\n");
        let r = resolve(&with_keys, &cat, &[], &env);
        assert_eq!(r[0].keys.len(), 1, "listed keys are the whole list");
        assert_eq!(r[0].keys[0].secret.expose(), "gsk_file");
    }

    #[test]
    fn auto_env_is_on_unless_the_file_turns_it_off() {
        assert_eq!(Config::default().auto_env, crate::config::AutoEnv(true));
        assert_eq!(config("").auto_env, crate::config::AutoEnv(true));
        assert_eq!(config("auto_env = false\n").auto_env, crate::config::AutoEnv(false));
    }

    #[test]
    fn a_differently_named_instance_can_point_at_an_entry() {
        let c = config("[[providers]]\nid = \"gemini-work\"\ncatalog = \"gemini\"\napi_keys = [\"AIza\"]\n");
        let r = resolve(&c, &catalog(), &[], &|_| None);
        assert_eq!(r[0].component, "gemini");
        assert_eq!(r[0].id, "gemini-work");
    }

    #[test]
    fn unknown_ids_default_to_openai_compat() {
        let c = config("[[providers]]\nid = \"mine\"\nbase_url = \"http://127.0.0.1:9/v1\"\n");
        let r = resolve(&c, &catalog(), &[], &|_| None);
        assert_eq!(r[0].component, "openai-compat");
        assert!(r[0].catalog.is_none());
    }

    #[test]
    fn local_servers_are_added_when_asked_for() {
        let c = config("[discovery]\nlocal = [\"ollama\", \"groq\"]\n");
        let r = resolve(&c, &catalog(), &[], &|_| None);
        assert_eq!(r.len(), 1, "groq is not a local server");
        assert!(r[0].local && r[0].keys.is_empty());
    }

    #[test]
    fn vault_accounts_join_their_provider_or_enable_it_from_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::vault::VaultPaths { vault: dir.path().join("v.json"), key_file: dir.path().join("k") };
        let lock = crate::vault::VaultLock::exclusive(&paths.vault, crate::vault::lock::LOCK_WAIT).unwrap();
        let mut v = crate::vault::Vault::open_or_create(&paths, None, &lock).unwrap();
        for (provider, key) in
            [("groq", "gsk_vault_key_0001"), ("gemini", "AIza_vault_key_0002"), ("nowhere", "x_key_0003")]
        {
            v.add(crate::vault::NewAccount {
                provider: provider.into(),
                label: None,
                pool: Some("shared".into()),
                secret: SecretString::new(key),
                settings: BTreeMap::new(),
                tier: crate::vault::AccountTier::Free,
            })
            .unwrap();
        }
        let unsealed = v.unsealed().unwrap();
        let c = config("[[providers]]\nid = \"groq\"\napi_keys = [\"gsk_config_key\"]\n");
        let r = resolve(&c, &catalog(), &unsealed, &|_| None);
        assert_eq!(r.len(), 2, "groq configured, gemini from the catalog, 'nowhere' skipped");
        let groq = &r[0];
        assert_eq!(groq.keys.len(), 2);
        assert_eq!(groq.keys[0].id, "groq#1");
        assert!(!groq.keys[0].from_vault && groq.keys[1].from_vault);
        assert_eq!(groq.keys[1].pool.as_deref(), Some("shared"));
        assert_eq!(r[1].id, "gemini");
        assert_eq!(r[1].component, "gemini");
    }

    #[test]
    fn api_keys_take_tables_with_settings() {
        let c = config(
            "[[providers]]\nid = \"cf\"\napi_keys = [\"plain\", { key = \"tok\", label = \"work\", settings = { account_id = \"abc\" } }]\n",
        );
        let k = &c.providers[0].api_keys;
        assert_eq!(k[0].expose(), "plain");
        assert_eq!(k[1].label.as_deref(), Some("work"));
        assert_eq!(k[1].settings["account_id"], "abc");
    }
}
