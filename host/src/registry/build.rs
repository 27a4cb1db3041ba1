//! Building a [`Snapshot`] from the configuration and the loaded components.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use serde_json::json;

use super::discovery::DiscoveryState;
use super::{Availability, ModelEntry, ModelSource, ProviderEntry, Route, Snapshot};
use crate::accounts::Account;
use crate::bindings::wit;
use crate::config::{Catalog, CatalogModel, Config, ModelSpec, ResolvedProvider, RuntimeConfig};
use crate::runtime::embedded;
use crate::runtime::state::GuestBuckets;
use crate::runtime::{PolicyComponent, ProviderComponent};
use crate::upstream::UpstreamClient;

/// The `.wasm` file a provider's `component` names: a built-in name is looked up in
/// `providers_dir`, then among the components embedded in the binary; anything with a `/` or
/// ending in `.wasm` is a path (relative to the current directory). Always absolute (or an
/// `embedded:` path), so it compares equal to the paths the file watcher reports.
pub fn component_path(runtime: &RuntimeConfig, component: &str) -> PathBuf {
    let path = if component.contains('/') || component.ends_with(".wasm") {
        PathBuf::from(component)
    } else {
        let file = runtime.providers_dir.join(format!("{component}.wasm"));
        if !file.exists() && embedded::provider(component).is_some() {
            return embedded::path(component);
        }
        file
    };
    std::path::absolute(&path).unwrap_or(path)
}

/// A component's short name for messages: the file stem, or the embedded component's name.
pub fn component_name(path: &Path) -> String {
    if let Some(name) = embedded::name(path) {
        return name.to_owned();
    }
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// State the builder reads and the reloader keeps between builds.
pub struct Inputs<'a> {
    pub config: &'a Config,
    pub config_path: Option<&'a Path>,
    pub catalog: &'a Arc<Catalog>,
    pub providers: &'a [ResolvedProvider],
    pub components: &'a HashMap<PathBuf, Arc<ProviderComponent>>,
    pub failures: &'a HashMap<PathBuf, String>,
    pub policies: &'a HashMap<PathBuf, Arc<PolicyComponent>>,
    pub discovered: &'a DiscoveryState,
    pub cursors: &'a mut HashMap<String, Arc<AtomicUsize>>,
    /// requests in flight per provider id, kept across reloads
    pub in_flight: &'a mut HashMap<String, Arc<AtomicUsize>>,
    pub accounts: &'a mut HashMap<String, Arc<Account>>,
    pub http: &'a UpstreamClient,
    pub buckets: &'a Arc<GuestBuckets>,
    pub secrets: &'a Arc<crate::accounts::SecretSet>,
    pub ledger: &'a Arc<crate::quota::Ledger>,
    pub metrics: &'a crate::telemetry::Metrics,
    pub generation: u64,
    /// problems found outside the build (an unreadable vault)
    pub extra_problems: Vec<String>,
}

fn model_from_spec(spec: &ModelSpec, catalog: Option<&CatalogModel>) -> wit::ModelInfo {
    let mut info = catalog.map_or_else(|| bare(spec.id()), model_from_catalog);
    info.id = spec.id().to_owned();
    if let ModelSpec::Detailed(d) = spec {
        for (flag, cap) in [
            (d.tools, wit::Capabilities::TOOLS),
            (d.vision, wit::Capabilities::VISION),
            (d.reasoning, wit::Capabilities::REASONING),
            (d.json_mode, wit::Capabilities::JSON_MODE),
        ] {
            match flag {
                Some(true) => info.capabilities |= cap,
                Some(false) => info.capabilities &= !cap,
                None => {}
            }
        }
        info.context_window = d.context_window.or(info.context_window);
        info.max_output_tokens = d.max_output_tokens.or(info.max_output_tokens);
    }
    info
}

fn bare(id: &str) -> wit::ModelInfo {
    wit::ModelInfo {
        id: id.to_owned(),
        context_window: None,
        max_output_tokens: None,
        capabilities: wit::Capabilities::STREAMING,
        free: None,
        owned_by: None,
    }
}

fn model_from_catalog(m: &CatalogModel) -> wit::ModelInfo {
    let mut info = bare(&m.id);
    for (flag, cap) in [
        (m.tools, wit::Capabilities::TOOLS),
        (m.vision, wit::Capabilities::VISION),
        (m.reasoning, wit::Capabilities::REASONING),
        (m.json_mode, wit::Capabilities::JSON_MODE),
    ] {
        if flag == Some(true) {
            info.capabilities |= cap;
        }
    }
    info.context_window = m.context_window;
    info.max_output_tokens = m.max_output_tokens;
    info.free = Some(m.free);
    info
}

/// A listed model, with the catalog's facts where the listing is silent.
fn merge_listed(listed: &wit::ModelInfo, catalog: Option<&CatalogModel>) -> wit::ModelInfo {
    let mut info = listed.clone();
    if let Some(c) = catalog {
        let known = model_from_catalog(c);
        info.capabilities |= known.capabilities;
        info.context_window = info.context_window.or(known.context_window);
        info.max_output_tokens = info.max_output_tokens.or(known.max_output_tokens);
        info.free = info.free.or(known.free);
    }
    info
}

/// The provider's models: the configuration's when it lists them; otherwise what the provider
/// last listed (catalog models it no longer lists are unavailable), or, before any listing,
/// the catalog's and the component's models.
fn models_for(p: &ResolvedProvider, component: &ProviderComponent, discovered: &DiscoveryState) -> Vec<ModelEntry> {
    let catalog_model = |id: &str| p.catalog.as_ref().and_then(|c| c.models.iter().find(|m| m.id == id));
    if !p.models.is_empty() {
        return p
            .models
            .iter()
            .map(|m| ModelEntry {
                quality: [0; 8],
                info: model_from_spec(m, catalog_model(m.id())),
                source: ModelSource::Config,
                availability: Availability::Available,
                catalog: catalog_model(m.id()).cloned(),
                embedding: super::EmbeddingModel::of_spec(m, catalog_model(m.id())),
            })
            .collect();
    }
    let mut out: Vec<ModelEntry> = Vec::new();
    let listing = discovered.providers.get(&p.id).filter(|l| l.succeeded() && p.discover_models);
    if let Some(listing) = listing {
        for m in &listing.models {
            let info = merge_listed(&m.to_wit(), catalog_model(&m.id));
            out.push(ModelEntry {
                quality: [0; 8],
                info,
                source: ModelSource::Discovered,
                availability: Availability::Available,
                catalog: catalog_model(&m.id).cloned(),
                embedding: catalog_model(&m.id).and_then(super::EmbeddingModel::of_catalog),
            });
        }
    }
    let listed = |id: &str| out.iter().any(|m| m.info.id == id);
    let mut extra = Vec::new();
    for m in p.catalog.iter().flat_map(|c| &c.models) {
        if !listed(&m.id) {
            // components list chat models only: an embedding model missing from a listing is
            // still assumed served
            let unlisted = listing.is_some() && !m.embeddings;
            extra.push(ModelEntry {
                quality: [0; 8],
                info: model_from_catalog(m),
                source: ModelSource::Catalog,
                availability: if unlisted { Availability::Unavailable } else { Availability::Assumed },
                catalog: Some(m.clone()),
                embedding: super::EmbeddingModel::of_catalog(m),
            });
        }
    }
    for m in &component.manifest.models {
        if !listed(&m.id) && !extra.iter().any(|e: &ModelEntry| e.info.id == m.id) {
            extra.push(ModelEntry {
                quality: [0; 8],
                info: merge_listed(m, catalog_model(&m.id)),
                source: ModelSource::Manifest,
                availability: if listing.is_some() { Availability::Unavailable } else { Availability::Assumed },
                catalog: catalog_model(&m.id).cloned(),
                embedding: catalog_model(&m.id).and_then(super::EmbeddingModel::of_catalog),
            });
        }
    }
    if p.local && listing.is_none() {
        // a local server that was never reached serves nothing (yet)
        return out;
    }
    out.extend(extra);
    out
}

/// The provider's enabled accounts. An account that is unchanged keeps its object; one whose
/// label, pool or settings changed is rebuilt but keeps its health, recent use and quota news.
fn accounts_for(
    p: &ResolvedProvider,
    cache: &mut HashMap<String, Arc<Account>>,
    ledger: &crate::quota::Ledger,
) -> Vec<Arc<Account>> {
    let id = &p.id;
    if p.keys.is_empty() {
        let account_id = format!("{id}#keyless");
        let a = cache.entry(account_id.clone()).or_insert_with(|| {
            let mut a = Account::new(account_id.clone(), id.clone(), None);
            a.quota_pool = ledger.pool(id, &account_id);
            Arc::new(a)
        });
        return vec![a.clone()];
    }
    p.keys
        .iter()
        .filter(|k| k.enabled)
        .map(|key| {
            let pool = key.pool.clone().unwrap_or_else(|| key.id.clone());
            let old =
                cache.get(&key.id).filter(|a| a.secret.as_ref().is_some_and(|s| s.expose() == key.secret.expose()));
            if let Some(a) = old.filter(|a| a.label == key.label && a.pool == pool && a.settings == key.settings) {
                return a.clone();
            }
            let mut account = Account::new(key.id.clone(), id.clone(), Some(key.secret.clone()));
            account.label = key.label.clone();
            account.pool = pool;
            account.settings = key.settings.clone();
            account.quota_pool = ledger.pool(id, &account.pool);
            if let Some(old) = old {
                account.health = old.health.clone();
                account.recent = old.recent.clone();
                *account.quota.lock() = old.quota.lock().clone();
            }
            let a = Arc::new(account);
            cache.insert(key.id.clone(), a.clone());
            a
        })
        .collect()
}

/// Build the routing table. Providers that cannot be built are left out and named in
/// `problems`.
pub fn snapshot(inp: Inputs<'_>) -> Snapshot {
    let mut problems = inp.extra_problems.clone();
    let mut providers = Vec::new();
    for p in inp.providers {
        let id = p.id.clone();
        let path = component_path(&inp.config.runtime, &p.component);
        let Some(component) = inp.components.get(&path) else {
            let why = inp.failures.get(&path).cloned().unwrap_or_else(|| format!("{} is not loaded", path.display()));
            problems.push(format!("provider '{id}': {why}"));
            continue;
        };
        let base = p.base_url.clone().or_else(|| component.manifest.default_base_url.clone());
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
        let io = match component.io(&id, Some(&base_url), inp.http.clone(), inp.buckets.clone(), inp.secrets.clone()) {
            Ok(io) => Arc::new(io),
            Err(e) => {
                problems.push(format!("provider '{id}': {e}"));
                continue;
            }
        };
        let wit_config = wit::ProviderConfig {
            provider_id: id.clone(),
            base_url: base.trim_end_matches('/').to_owned(),
            settings: p.settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        let mut models = models_for(p, component, inp.discovered);
        for m in &mut models {
            let explicit = inp.config.routing.quality.get(&m.info.id);
            m.quality = crate::routing::quality::all_tasks(&m.info.id, m.info.capabilities, explicit);
        }
        let quota_plan = match crate::quota::QuotaPlan::build(p.limits.as_ref(), p.catalog.as_ref()) {
            Ok(plan) => Arc::new(plan),
            Err(e) => {
                problems.push(format!("provider '{id}': {e}"));
                continue;
            }
        };
        let cursor = inp.cursors.entry(id.clone()).or_insert_with(|| Arc::new(AtomicUsize::new(0))).clone();
        let in_flight = inp.in_flight.entry(id.clone()).or_insert_with(|| Arc::new(AtomicUsize::new(0))).clone();
        let metrics = inp.metrics.provider(&id);
        providers.push(Arc::new(ProviderEntry {
            accounts: accounts_for(p, inp.accounts, inp.ledger),
            disabled_accounts: p
                .keys
                .iter()
                .filter(|k| !k.enabled)
                .map(|k| (k.id.clone(), k.label.clone(), k.pool.clone().unwrap_or_else(|| k.id.clone())))
                .collect(),
            quota_plan,
            id,
            component: component.clone(),
            wit_config,
            io,
            cursor,
            in_flight,
            models,
            poll_limits: p.poll_limits,
            legacy_completions: p.legacy_completions,
            catalog: p.catalog.clone(),
            local: p.local,
            discover: p.models.is_empty() && p.discover_models,
            rotation: p.rotation,
            metrics,
        }));
    }
    if inp.providers.is_empty() {
        problems.push(if inp.config_path.is_some() {
            "no provider is enabled in the configuration".to_owned()
        } else {
            "no configuration file and no provider key variable (GROQ_API_KEY, OPENROUTER_API_KEY, ...) is set"
                .to_owned()
        });
    }

    let mut index: HashMap<String, Vec<Route>> = HashMap::new();
    for p in &providers {
        for m in p.models.iter().filter(|m| m.routable()) {
            let route = Route { provider: p.clone(), model: m.info.id.clone() };
            index.entry(m.info.id.clone()).or_default().push(route.clone());
            let qualified = format!("{}/{}", p.id, m.info.id);
            if qualified != m.info.id {
                index.entry(qualified).or_default().push(route);
            }
        }
    }
    // [[routes]]: a name's own routes, then its fallback chain's, in order (each route once)
    for r in inp.config.routes.iter().filter(|r| r.to.is_none()) {
        let mut list: Vec<Route> = index.get(&r.model).cloned().unwrap_or_default();
        for m in &r.fallback_chain {
            let Some(routes) = index.get(m) else {
                tracing::warn!("[[routes]] `{}`: `{m}` in its fallback chain is not served by any provider", r.model);
                continue;
            };
            for route in routes {
                if !list.iter().any(|x| Arc::ptr_eq(&x.provider, &route.provider) && x.model == route.model) {
                    list.push(route.clone());
                }
            }
        }
        if list.is_empty() {
            problems.push(format!("[[routes]] `{}`: nothing in its fallback chain is served", r.model));
        } else {
            index.insert(r.model.clone(), list);
        }
    }
    let models_body = render_models(&providers, &inp.config.routes);
    // a policy file in the policies folder takes the place of the embedded one of its name
    let from_folder: HashSet<&str> =
        inp.policies.iter().filter(|(path, _)| embedded::name(path).is_none()).map(|(_, p)| p.name.as_str()).collect();
    let mut policies: Vec<_> = inp
        .policies
        .iter()
        .filter(|(path, p)| embedded::name(path).is_none() || !from_folder.contains(p.name.as_str()))
        .map(|(_, p)| p.clone())
        .collect();
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    let fleet = super::fleet::fleet_of(&providers, inp.config.routing.free_only);
    Snapshot {
        fleet,
        generation: inp.generation,
        config: Arc::new(inp.config.clone()),
        catalog: inp.catalog.clone(),
        config_path: inp.config_path.map(Path::to_owned),
        providers,
        policies,
        rules: inp.config.routing_rules.iter().filter_map(|r| crate::routing::rules::Rule::compile(r).ok()).collect(),
        index,
        models_body,
        problems,
    }
}

/// `/v1/models`: each model id once, in provider order, with the providers serving it.
fn render_models(providers: &[Arc<ProviderEntry>], routes: &[crate::config::RouteConfig]) -> Bytes {
    let mut order: Vec<&str> = Vec::new();
    let mut by_id: HashMap<&str, (Vec<&str>, &ModelEntry)> = HashMap::new();
    for p in providers {
        for m in p.models.iter().filter(|m| m.routable()) {
            let e = by_id.entry(m.info.id.as_str()).or_insert_with(|| {
                order.push(m.info.id.as_str());
                (Vec::new(), m)
            });
            e.0.push(p.id.as_str());
        }
    }
    let mut data: Vec<serde_json::Value> = order
        .iter()
        .filter_map(|id| by_id.get(id).map(|e| (id, e)))
        .map(|(id, (provs, entry))| {
            let info = &entry.info;
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
            let mut m = json!({
                "id": id,
                "object": "model",
                "created": 0,
                "owned_by": provs.first().copied().unwrap_or("freeway"),
                "providers": provs,
                "context_window": info.context_window,
                "free": info.free,
                "capabilities": caps,
            });
            if let Some(e) = &entry.embedding {
                // an embedding model: served on /v1/embeddings only
                m["embeddings"] = json!({ "dimensions": e.dimensions, "max_input_tokens": e.max_input_tokens });
            }
            m
        })
        .collect();
    for r in routes.iter().filter(|r| r.to.is_none() && !by_id.contains_key(r.model.as_str())) {
        data.push(json!({
            "id": r.model,
            "object": "model",
            "created": 0,
            "owned_by": "freeway",
            "fallback_chain": r.fallback_chain,
            "policy": r.policy,
        }));
    }
    // the built-in policy aliases, when there is anything to route to
    if !providers.is_empty() {
        for (alias, _, what) in crate::routing::AUTO_ALIASES {
            if by_id.contains_key(alias) || routes.iter().any(|r| r.model == *alias) {
                continue;
            }
            data.push(json!({
                "id": alias,
                "object": "model",
                "created": 0,
                "owned_by": "freeway",
                "description": what,
            }));
        }
    }
    Bytes::from(serde_json::to_vec(&json!({ "object": "list", "data": data })).unwrap_or_default())
}
