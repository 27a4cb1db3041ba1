//! Configured providers resolved against the catalog: what the file says wins, the catalog
//! fills the rest (component, base URL, settings, models, limits), then built-in defaults.

use std::collections::BTreeMap;

use super::catalog::{Catalog, CatalogProvider};
use super::{ApiKey, Config, ModelSpec};

/// A provider ready to be built into the routing table.
#[derive(Debug, Clone)]
pub struct ResolvedProvider {
    pub id: String,
    /// built-in component name or `.wasm` path
    pub component: String,
    /// `None`: the component's default
    pub base_url: Option<String>,
    pub keys: Vec<ApiKey>,
    /// catalog settings overlaid with the configuration's
    pub settings: BTreeMap<String, String>,
    /// models the configuration lists explicitly (always routed)
    pub models: Vec<ModelSpec>,
    pub catalog: Option<CatalogProvider>,
    pub discover_models: bool,
    pub poll_limits: bool,
    /// a local server found by probing: unreachable is not a configuration problem
    pub local: bool,
}

/// The enabled providers of `config`, plus the local servers `[discovery] local` asks to look
/// for (unless configured explicitly).
pub fn resolve(config: &Config, catalog: &Catalog) -> Vec<ResolvedProvider> {
    let mut out: Vec<ResolvedProvider> = Vec::new();
    for p in config.providers.iter().filter(|p| p.enabled) {
        let id = p.id.get_ref().clone();
        let entry = catalog.provider(p.catalog.as_deref().unwrap_or(&id)).cloned();
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
            keys: p.api_keys.clone(),
            settings,
            models: p.models.clone(),
            discover_models: p.discover_models,
            poll_limits: p.poll_limits || entry.as_ref().is_some_and(|e| e.poll_limits),
            local: entry.as_ref().is_some_and(|e| e.local),
            catalog: entry,
            id,
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
                local: true,
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
        let r = resolve(&c, &catalog());
        assert_eq!(r[0].component, "openai-compat");
        assert_eq!(r[0].base_url.as_deref(), Some("https://api.groq.com/openai/v1"));
        assert_eq!(r[0].settings["requests_window"], "day");
        assert_eq!(r[0].settings["drop_params"], "logprobs,n", "the file wins");
    }

    #[test]
    fn a_differently_named_instance_can_point_at_an_entry() {
        let c = config("[[providers]]\nid = \"gemini-work\"\ncatalog = \"gemini\"\napi_keys = [\"AIza\"]\n");
        let r = resolve(&c, &catalog());
        assert_eq!(r[0].component, "gemini");
        assert_eq!(r[0].id, "gemini-work");
    }

    #[test]
    fn unknown_ids_default_to_openai_compat() {
        let c = config("[[providers]]\nid = \"mine\"\nbase_url = \"http://127.0.0.1:9/v1\"\n");
        let r = resolve(&c, &catalog());
        assert_eq!(r[0].component, "openai-compat");
        assert!(r[0].catalog.is_none());
    }

    #[test]
    fn local_servers_are_added_when_asked_for() {
        let c = config("[discovery]\nlocal = [\"ollama\", \"groq\"]\n");
        let r = resolve(&c, &catalog());
        assert_eq!(r.len(), 1, "groq is not a local server");
        assert!(r[0].local && r[0].keys.is_empty());
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
