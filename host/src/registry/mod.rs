//! The live routing table: configured providers bound to their loaded components, their accounts
//! and models, published as one immutable [`Snapshot`] that is swapped atomically on every reload.
//! Requests take the current snapshot once and finish on it, whatever reloads meanwhile.

mod build;
pub mod components;
mod declared;
pub mod discovery;
mod event;
mod fleet;
pub mod recheck;
mod reloader;
mod watcher;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;

pub use reloader::{Event, Reloader, ReloaderHandle, SyncReport};

use crate::accounts::Account;
use crate::bindings::wit;
use crate::config::Config;
use crate::runtime::{GuestIo, PolicyComponent, ProviderComponent};

/// A configured provider, ready to serve.
pub struct ProviderEntry {
    pub id: String,
    pub component: Arc<ProviderComponent>,
    /// what the component is told about this provider on every call
    pub wit_config: wit::ProviderConfig,
    pub io: Arc<GuestIo>,
    pub accounts: Vec<Arc<Account>>,
    /// accounts an operator disabled: (id, label, pool), never used
    pub disabled_accounts: Vec<(String, String, String)>,
    /// round-robin position, kept across reloads
    pub cursor: Arc<AtomicUsize>,
    /// requests in flight to this provider, kept across reloads
    pub in_flight: Arc<AtomicUsize>,
    pub models: Vec<ModelEntry>,
    /// call `parse-limits` after every success (see `ProviderConfig::poll_limits`)
    pub poll_limits: bool,
    /// `/v1/completions` is passed through (see `ProviderConfig::legacy_completions`)
    pub legacy_completions: bool,
    /// the catalog entry, when the provider has one
    pub catalog: Option<crate::config::CatalogProvider>,
    /// a local server found by probing
    pub local: bool,
    /// list models through the component (no explicit `models`)
    pub discover: bool,
    pub rotation: crate::config::Rotation,
    /// the free-tier limits the ledger counts for this provider's pools
    pub quota_plan: Arc<crate::quota::QuotaPlan>,
    /// where its attempts, upstream latency, fallbacks and cooldowns are counted
    pub metrics: Arc<crate::telemetry::ProviderMetrics>,
}

impl ProviderEntry {
    /// Accounts in the order to try them for the next request (see `accounts::rotation`).
    pub fn accounts_in_order(&self, model: &str, now: std::time::Instant) -> Vec<Arc<Account>> {
        crate::accounts::rotation::order(&self.accounts, self.rotation, &self.cursor, now, (&self.quota_plan, model))
    }

    /// One of this provider's `max` in-flight slots, if one is free.
    pub fn try_slot(&self, max: usize) -> Option<ProviderSlot> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ProviderSlot(self.in_flight.clone()))
    }

    /// The accounts sharing `account`'s quota pool (itself included).
    pub fn pool_of<'a>(&'a self, account: &'a Account) -> impl Iterator<Item = &'a Arc<Account>> {
        self.accounts.iter().filter(move |a| a.pool == account.pool)
    }
}

/// A request in flight to a provider; the slot is given back when dropped.
#[derive(Debug)]
pub struct ProviderSlot(Arc<AtomicUsize>);

impl Drop for ProviderSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where a model entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// listed in the configuration file
    Config,
    /// known to the provider component
    Manifest,
    /// known to the catalog
    Catalog,
    /// listed by the provider (discovery)
    Discovered,
}

/// Whether a model can be routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// configured, or listed by the provider's last model listing
    Available,
    /// not listed yet (no successful listing so far): assumed available
    Assumed,
    /// the provider's last listing does not have it
    Unavailable,
}

#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub info: wit::ModelInfo,
    pub source: ModelSource,
    pub availability: Availability,
    /// the catalog's facts about this model (limits, notes)
    pub catalog: Option<crate::config::CatalogModel>,
    /// quality 0-100 per task (`routing::classifier::Task` order), computed once per reload
    pub quality: [u8; 8],
    /// set for an embedding model (served on `/v1/embeddings`, never to chat requests)
    pub embedding: Option<EmbeddingModel>,
}

/// What is known of an embedding model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbeddingModel {
    /// the length of its vectors, when known
    pub dimensions: Option<u32>,
    /// the most tokens one input may have, when known
    pub max_input_tokens: Option<u32>,
}

impl EmbeddingModel {
    /// From the catalog's entry, when it marks an embedding model.
    pub fn of_catalog(m: &crate::config::CatalogModel) -> Option<Self> {
        m.embeddings.then_some(Self { dimensions: m.dimensions, max_input_tokens: m.max_input_tokens })
    }

    /// From a configuration entry (its own facts first, the catalog's after), or the catalog's.
    pub fn of_spec(spec: &crate::config::ModelSpec, catalog: Option<&crate::config::CatalogModel>) -> Option<Self> {
        let known = catalog.and_then(Self::of_catalog);
        match spec {
            crate::config::ModelSpec::Detailed(d) => match d.embeddings {
                Some(false) => None,
                Some(true) => Some(Self {
                    dimensions: d.dimensions.or(known.and_then(|k| k.dimensions)),
                    max_input_tokens: d.max_input_tokens.or(known.and_then(|k| k.max_input_tokens)),
                }),
                None => known,
            },
            crate::config::ModelSpec::Id(_) => known,
        }
    }
}

impl ModelEntry {
    pub fn routable(&self) -> bool {
        self.availability != Availability::Unavailable
    }
}

/// One way to serve a model: a provider and the model's id there.
#[derive(Clone)]
pub struct Route {
    pub provider: Arc<ProviderEntry>,
    pub model: String,
}

/// Everything a request needs, immutable.
pub struct Snapshot {
    pub generation: u64,
    pub config: Arc<Config>,
    pub catalog: Arc<crate::config::Catalog>,
    pub config_path: Option<PathBuf>,
    pub providers: Vec<Arc<ProviderEntry>>,
    pub policies: Vec<Arc<PolicyComponent>>,
    /// `[[routing_rules]]`, compiled
    pub rules: Vec<crate::routing::rules::Rule>,
    /// what `auto` ranges over: every free chat model (with its index in its provider's models)
    pub fleet: Vec<(Route, usize)>,
    index: HashMap<String, Vec<Route>>,
    /// the `/v1/models` response, rendered once per reload
    pub models_body: Bytes,
    /// why the gateway is not ready, if it is not
    pub problems: Vec<String>,
}

impl Snapshot {
    /// Routes for a requested model: `model` served by any provider, or `provider/model`.
    pub fn routes(&self, model: &str) -> Option<&[Route]> {
        self.index.get(model).map(Vec::as_slice)
    }

    /// The model a request for `model` is served as, when a `[[routes]]` entry with `to`
    /// renames it (the first that matches).
    pub fn renamed(&self, model: &str) -> Option<&str> {
        self.config.routes.iter().find(|r| r.to.is_some() && r.matches(model)).and_then(|r| r.to.as_deref())
    }

    /// Whether requests for `model` are hedged (`[[routes]] hedge = true`).
    pub fn hedged(&self, model: &str) -> bool {
        !self.config.routes.is_empty() && self.config.routes.iter().any(|r| r.hedge && r.model == model)
    }

    pub fn ready(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn empty(config: Arc<Config>) -> Self {
        Self {
            generation: 0,
            config,
            catalog: Arc::new(crate::config::catalog::embedded().clone()),
            config_path: None,
            providers: Vec::new(),
            policies: Vec::new(),
            rules: Vec::new(),
            fleet: Vec::new(),
            index: HashMap::new(),
            models_body: Bytes::from_static(b"{\"object\":\"list\",\"data\":[]}"),
            problems: vec!["starting".to_owned()],
        }
    }
}

/// The current snapshot, swapped atomically.
pub struct Registry {
    current: ArcSwap<Snapshot>,
}

impl Registry {
    pub fn new(initial: Snapshot) -> Self {
        Self { current: ArcSwap::from_pointee(initial) }
    }

    /// The snapshot to use for one request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn publish(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}
