//! Building a [`Snapshot`] from the configuration and the loaded components.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use serde_json::json;

use super::{ModelEntry, ModelSource, ProviderEntry, Route, Snapshot};
use crate::config::{Config, ModelSpec, ProviderConfig, RuntimeConfig};
use crate::runtime::bindings::wit;
use crate::runtime::state::GuestBuckets;
use crate::runtime::{Account, PolicyComponent, ProviderComponent};
use crate::upstream::UpstreamClient;

/// The `.wasm` file a provider's `component` names: a built-in name is looked up in
/// `providers_dir`; anything with a `/` or ending in `.wasm` is a path (relative to the current
/// directory). Always absolute, so it compares equal to the paths the file watcher reports.
pub fn component_path(runtime: &RuntimeConfig, component: &str) -> PathBuf {
    let path = if component.contains('/') || component.ends_with(".wasm") {
        PathBuf::from(component)
    } else {
        runtime.providers_dir.join(format!("{component}.wasm"))
    };
    std::path::absolute(&path).unwrap_or(path)
}

/// A component's short name for messages: the file stem.
pub fn component_name(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// State the builder reads and the reloader keeps between builds.
pub struct Inputs<'a> {
    pub config: &'a Config,
    pub config_path: Option<&'a Path>,
    pub components: &'a HashMap<PathBuf, Arc<ProviderComponent>>,
    pub failures: &'a HashMap<PathBuf, String>,
    pub policies: &'a HashMap<PathBuf, Arc<PolicyComponent>>,
    pub discovered: &'a HashMap<String, Vec<wit::ModelInfo>>,
    pub cursors: &'a mut HashMap<String, Arc<AtomicUsize>>,
    pub accounts: &'a mut HashMap<String, Arc<Account>>,
    pub http: &'a UpstreamClient,
    pub buckets: &'a Arc<GuestBuckets>,
    pub generation: u64,
}

fn model_from_spec(spec: &ModelSpec) -> wit::ModelInfo {
    let mut caps = wit::Capabilities::STREAMING;
    let (context_window, max_output_tokens) = match spec {
        ModelSpec::Id(_) => (None, None),
        ModelSpec::Detailed(d) => {
            for (flag, cap) in [
                (d.tools, wit::Capabilities::TOOLS),
                (d.vision, wit::Capabilities::VISION),
                (d.reasoning, wit::Capabilities::REASONING),
                (d.json_mode, wit::Capabilities::JSON_MODE),
            ] {
                if flag == Some(true) {
                    caps |= cap;
                }
            }
            (d.context_window, d.max_output_tokens)
        }
    };
    wit::ModelInfo {
        id: spec.id().to_owned(),
        context_window,
        max_output_tokens,
        capabilities: caps,
        free: None,
        owned_by: None,
    }
}

fn accounts_for(p: &ProviderConfig, cache: &mut HashMap<String, Arc<Account>>) -> Vec<Arc<Account>> {
    let id = p.id.get_ref();
    if p.api_keys.is_empty() {
        let account_id = format!("{id}#keyless");
        let a = cache.entry(account_id.clone()).or_insert_with(|| Arc::new(Account::new(account_id, id.clone(), None)));
        return vec![a.clone()];
    }
    p.api_keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let account_id = format!("{id}#{}", i + 1);
            let reuse =
                cache.get(&account_id).filter(|a| a.secret.as_ref().is_some_and(|s| s.expose() == key.expose()));
            match reuse {
                Some(a) => a.clone(),
                None => {
                    let a = Arc::new(Account::new(account_id.clone(), id.clone(), Some(key.clone())));
                    cache.insert(account_id, a.clone());
                    a
                }
            }
        })
        .collect()
}

/// Build the routing table. Providers that cannot be built are left out and named in
/// `problems`.
pub fn snapshot(inp: Inputs<'_>) -> Snapshot {
    let mut problems = Vec::new();
    let mut providers = Vec::new();
    for p in inp.config.providers.iter().filter(|p| p.enabled) {
        let id = p.id.get_ref().clone();
        let path = component_path(&inp.config.runtime, p.component.get_ref());
        let Some(component) = inp.components.get(&path) else {
            let why = inp.failures.get(&path).cloned().unwrap_or_else(|| format!("{} is not loaded", path.display()));
            problems.push(format!("provider '{id}': {why}"));
            continue;
        };
        let base = p.base_url.as_ref().map(|u| u.0.clone()).or_else(|| component.manifest.default_base_url.clone());
        let Some(base) = base else {
            problems.push(format!("provider '{id}': no base_url, and component '{}' has no default", component.name));
            continue;
        };
        let base_url = match url::Url::parse(&base) {
            Ok(u) => u,
            Err(e) => {
                problems.push(format!("provider '{id}': base_url \"{base}\": {e}"));
                continue;
            }
        };
        let io = match component.io(&id, Some(&base_url), inp.http.clone(), inp.buckets.clone()) {
            Ok(io) => Arc::new(io),
            Err(e) => {
                problems.push(format!("provider '{id}': {e}"));
                continue;
            }
        };
        let settings: BTreeMap<&String, &String> = p.settings.iter().map(|(k, v)| (k, &v.0)).collect();
        let wit_config = wit::ProviderConfig {
            provider_id: id.clone(),
            base_url: base.trim_end_matches('/').to_owned(),
            settings: settings.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        let mut models: Vec<ModelEntry> =
            p.models.iter().map(|m| ModelEntry { info: model_from_spec(m), source: ModelSource::Config }).collect();
        if models.is_empty() {
            let mut seen = std::collections::HashSet::new();
            for info in component.manifest.models.iter().chain(inp.discovered.get(&id).into_iter().flatten()) {
                if seen.insert(info.id.clone()) {
                    let source = if component.manifest.models.iter().any(|m| m.id == info.id) {
                        ModelSource::Manifest
                    } else {
                        ModelSource::Discovered
                    };
                    models.push(ModelEntry { info: info.clone(), source });
                }
            }
        }
        let cursor = inp.cursors.entry(id.clone()).or_insert_with(|| Arc::new(AtomicUsize::new(0))).clone();
        providers.push(Arc::new(ProviderEntry {
            accounts: accounts_for(p, inp.accounts),
            id,
            component: component.clone(),
            wit_config,
            io,
            cursor,
            models,
        }));
    }
    if inp.config.providers.iter().all(|p| !p.enabled) {
        problems.push(if inp.config_path.is_some() {
            "no provider is enabled in the configuration".to_owned()
        } else {
            "no configuration file and no provider key variable (GROQ_API_KEY, OPENROUTER_API_KEY, ...) is set"
                .to_owned()
        });
    }

    let mut index: HashMap<String, Vec<Route>> = HashMap::new();
    for p in &providers {
        for m in &p.models {
            let route = Route { provider: p.clone(), model: m.info.id.clone() };
            index.entry(m.info.id.clone()).or_default().push(route.clone());
            let qualified = format!("{}/{}", p.id, m.info.id);
            if qualified != m.info.id {
                index.entry(qualified).or_default().push(route);
            }
        }
    }
    let models_body = render_models(&providers);
    let mut policies: Vec<_> = inp.policies.values().cloned().collect();
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    Snapshot {
        generation: inp.generation,
        config: Arc::new(inp.config.clone()),
        config_path: inp.config_path.map(Path::to_owned),
        providers,
        policies,
        index,
        models_body,
        problems,
    }
}

/// `/v1/models`: each model id once, in provider order, with the providers serving it.
fn render_models(providers: &[Arc<ProviderEntry>]) -> Bytes {
    let mut order: Vec<&str> = Vec::new();
    let mut by_id: HashMap<&str, (Vec<&str>, &wit::ModelInfo)> = HashMap::new();
    for p in providers {
        for m in &p.models {
            let e = by_id.entry(m.info.id.as_str()).or_insert_with(|| {
                order.push(m.info.id.as_str());
                (Vec::new(), &m.info)
            });
            e.0.push(p.id.as_str());
        }
    }
    let data: Vec<serde_json::Value> = order
        .iter()
        .filter_map(|id| by_id.get(id).map(|e| (id, e)))
        .map(|(id, (provs, info))| {
            let mut caps = Vec::new();
            for (flag, name) in [
                (wit::Capabilities::TOOLS, "tools"),
                (wit::Capabilities::VISION, "vision"),
                (wit::Capabilities::REASONING, "reasoning"),
                (wit::Capabilities::JSON_MODE, "json_mode"),
            ] {
                if info.capabilities.contains(flag) {
                    caps.push(name);
                }
            }
            json!({
                "id": id,
                "object": "model",
                "created": 0,
                "owned_by": provs.first().copied().unwrap_or("freeway"),
                "providers": provs,
                "context_window": info.context_window,
                "capabilities": caps,
            })
        })
        .collect();
    Bytes::from(serde_json::to_vec(&json!({ "object": "list", "data": data })).unwrap_or_default())
}
