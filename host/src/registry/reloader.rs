//! The reloader: one task that owns everything a snapshot is built from (configuration, loaded
//! components, discovered models) and rebuilds and publishes a snapshot whenever one of them
//! changes. Compilation happens here, never on the request path. A change that fails to load is
//! reported in one log line and the previous version keeps serving.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::sync::mpsc;

use super::build::{self, component_name, component_path};
use super::{Registry, Snapshot, watcher};
use crate::config::{self, LoadedConfig};
use crate::runtime::bindings::wit;
use crate::runtime::state::GuestBuckets;
use crate::runtime::{Account, PolicyComponent, ProviderComponent, Runtime};
use crate::upstream::UpstreamClient;

/// Something the reloader should react to.
#[derive(Debug)]
pub enum Event {
    ConfigChanged,
    /// a `.wasm` file was created or written
    FileChanged(PathBuf),
    FileRemoved(PathBuf),
    Discovered {
        provider: String,
        result: Result<Vec<wit::ModelInfo>, String>,
    },
}

/// How the rest of the gateway talks to the reloader.
#[derive(Clone)]
pub struct ReloaderHandle {
    pub registry: Arc<Registry>,
    tx: mpsc::Sender<Event>,
}

impl ReloaderHandle {
    pub async fn send(&self, event: Event) {
        let _ = self.tx.send(event).await;
    }
}

pub struct Reloader {
    runtime: Arc<Runtime>,
    http: UpstreamClient,
    registry: Arc<Registry>,
    config: LoadedConfig,
    components: HashMap<PathBuf, Arc<ProviderComponent>>,
    policies: HashMap<PathBuf, Arc<PolicyComponent>>,
    failures: HashMap<PathBuf, String>,
    discovered: HashMap<String, Vec<wit::ModelInfo>>,
    discovering: HashSet<String>,
    cursors: HashMap<String, Arc<AtomicUsize>>,
    accounts: HashMap<String, Arc<Account>>,
    buckets: Arc<GuestBuckets>,
    generation: u64,
    tx: mpsc::Sender<Event>,
}

const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(60);

impl Reloader {
    /// Load every component the configuration needs, publish the first snapshot, then keep
    /// reloading in the background (watching files when `runtime.watch` is on).
    pub async fn start(config: LoadedConfig, runtime: Arc<Runtime>, http: UpstreamClient) -> ReloaderHandle {
        let (tx, rx) = mpsc::channel(256);
        let registry = Arc::new(Registry::new(Snapshot::empty(Arc::new(config.config.clone()))));
        let mut this = Reloader {
            runtime,
            http,
            registry: registry.clone(),
            config,
            components: HashMap::new(),
            policies: HashMap::new(),
            failures: HashMap::new(),
            discovered: HashMap::new(),
            discovering: HashSet::new(),
            cursors: HashMap::new(),
            accounts: HashMap::new(),
            buckets: Arc::new(GuestBuckets::default()),
            generation: 0,
            tx: tx.clone(),
        };
        this.load_policies_dir().await;
        this.ensure_components().await;
        this.rebuild();
        if this.config.config.runtime.watch {
            watcher::spawn(&this.config, tx.clone());
        }
        tokio::spawn(this.run(rx));
        ReloaderHandle { registry, tx }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        while let Some(event) = rx.recv().await {
            match event {
                Event::ConfigChanged => self.reload_config().await,
                Event::FileChanged(path) => self.file_changed(&path).await,
                Event::FileRemoved(path) => {
                    if self.components.contains_key(&path) || self.policies.contains_key(&path) {
                        tracing::info!(
                            "{} was removed; the loaded version keeps serving until the configuration stops using it",
                            path.display()
                        );
                    }
                }
                Event::Discovered { provider, result } => {
                    self.discovering.remove(&provider);
                    match result {
                        Ok(models) => {
                            tracing::info!(provider = %provider, "discovered {} models", models.len());
                            self.discovered.insert(provider, models);
                            self.rebuild();
                        }
                        Err(e) => tracing::warn!(provider = %provider, "model discovery failed: {e}"),
                    }
                }
            }
        }
    }

    fn config_path(&self) -> Option<&Path> {
        self.config.path.as_deref()
    }

    async fn reload_config(&mut self) {
        let Some(path) = self.config_path().map(Path::to_owned) else { return };
        match config::load(&path) {
            Ok(new) => {
                let old = &self.config.config;
                if old.server.listen != new.config.server.listen
                    || old.runtime.providers_dir != new.config.runtime.providers_dir
                    || old.runtime.guest_memory_mib != new.config.runtime.guest_memory_mib
                    || old.runtime.max_instances != new.config.runtime.max_instances
                {
                    tracing::warn!(
                        "{}: [server] listen and [runtime] changes take effect after a restart",
                        path.display()
                    );
                }
                self.config = new;
                // providers may have changed: rediscover their models
                self.discovered.retain(|id, _| self.config.config.providers.iter().any(|p| p.id.get_ref() == id));
                self.ensure_components().await;
                self.rebuild();
                tracing::info!("configuration {} reloaded", path.display());
            }
            Err(e) => tracing::error!("configuration rejected, the previous one keeps serving: {e}"),
        }
    }

    /// Load components the configuration names that are not loaded yet.
    async fn ensure_components(&mut self) {
        let wanted: Vec<PathBuf> = self
            .config
            .config
            .providers
            .iter()
            .filter(|p| p.enabled)
            .map(|p| component_path(&self.config.config.runtime, p.component.get_ref()))
            .collect();
        for path in wanted {
            if self.components.contains_key(&path) {
                continue;
            }
            self.load_provider(&path).await;
        }
    }

    async fn load_provider(&mut self, path: &Path) -> bool {
        let name = component_name(path);
        match self.runtime.load_provider(&name, path).await {
            Ok(c) => {
                if self.components.get(path).is_some_and(|old| old.hash == c.hash) {
                    return false;
                }
                tracing::info!(
                    "loaded provider component '{}' {} from {} (sha256 {})",
                    c.manifest.id,
                    c.manifest.version,
                    path.display(),
                    &c.hash[..12]
                );
                self.components.insert(path.to_owned(), c);
                self.failures.remove(path);
                true
            }
            Err(e) => {
                if self.components.contains_key(path) {
                    tracing::error!("{e}; the previous version keeps serving");
                } else {
                    tracing::error!("{e}");
                    self.failures.insert(path.to_owned(), e.message.clone());
                }
                false
            }
        }
    }

    async fn load_policy(&mut self, path: &Path) -> bool {
        let name = component_name(path);
        match self.runtime.load_policy(&name, path).await {
            Ok(c) => {
                if self.policies.get(path).is_some_and(|old| old.hash == c.hash) {
                    return false;
                }
                tracing::info!("loaded policy component '{name}' from {} (sha256 {})", path.display(), &c.hash[..12]);
                self.policies.insert(path.to_owned(), c);
                true
            }
            Err(e) => {
                if self.policies.contains_key(path) {
                    tracing::error!("{e}; the previous version keeps serving");
                } else {
                    tracing::error!("{e}");
                }
                false
            }
        }
    }

    async fn load_policies_dir(&mut self) {
        let dir = self.config.config.runtime.policies_dir.clone();
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| is_wasm(p)).collect();
        paths.sort();
        for p in paths {
            self.load_policy(&p).await;
        }
    }

    async fn file_changed(&mut self, path: &Path) {
        if !is_wasm(path) {
            return;
        }
        let rt = &self.config.config.runtime;
        let in_policies = path.parent().is_some_and(|d| same_dir(d, &rt.policies_dir));
        let changed = if in_policies { self.load_policy(path).await } else { self.load_provider(path).await };
        if changed {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        self.generation += 1;
        let snapshot = build::snapshot(build::Inputs {
            config: &self.config.config,
            config_path: self.config.path.as_deref(),
            components: &self.components,
            failures: &self.failures,
            policies: &self.policies,
            discovered: &self.discovered,
            cursors: &mut self.cursors,
            accounts: &mut self.accounts,
            http: &self.http,
            buckets: &self.buckets,
            generation: self.generation,
        });
        for problem in &snapshot.problems {
            tracing::warn!("not ready: {problem}");
        }
        self.start_discovery(&snapshot);
        self.registry.publish(snapshot);
    }

    /// List models for providers configured without a model list.
    fn start_discovery(&mut self, snapshot: &Snapshot) {
        for p in &snapshot.providers {
            let cfg = self.config.config.providers.iter().find(|c| c.id.get_ref() == &p.id);
            let wants = cfg.is_some_and(|c| c.models.is_empty() && c.discover_models);
            if !wants || self.discovered.contains_key(&p.id) || self.discovering.contains(&p.id) {
                continue;
            }
            self.discovering.insert(p.id.clone());
            let provider = p.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let result = tokio::time::timeout(DISCOVERY_TIMEOUT, discover(&provider))
                    .await
                    .unwrap_or_else(|_| Err("timed out".to_owned()));
                let _ = tx.send(Event::Discovered { provider: provider.id.clone(), result }).await;
            });
        }
    }
}

async fn discover(p: &super::ProviderEntry) -> Result<Vec<wit::ModelInfo>, String> {
    let account = p.accounts.first().cloned();
    let mut instance =
        p.component.instantiate(Some(p.io.clone()), account.into_iter().collect()).await.map_err(|f| f.to_string())?;
    match instance.list_models(&p.wit_config, Some(0)).await {
        Ok(Ok(models)) => Ok(models),
        Ok(Err(e)) => Err(e.message),
        Err(f) => Err(f.to_string()),
    }
}

fn is_wasm(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "wasm")
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
