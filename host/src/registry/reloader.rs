//! The reloader: one task that owns everything a snapshot is built from (configuration, catalog,
//! loaded components, discovered models) and rebuilds and publishes a snapshot whenever one of
//! them changes. Compilation happens here, never on the request path. A change that fails to
//! load is reported in one log line and the previous version keeps serving.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::build::{self, component_name, component_path};
use super::components::{ComponentLog, Loaded};
use super::declared;
use super::{Registry, Snapshot, watcher};
use crate::accounts::Account;
use crate::accounts::SecretSet;
use crate::bindings::wit;
use crate::config::{self, Catalog, LoadedConfig, ResolvedProvider, SecretString};
use crate::registry::discovery::{self, DiscoveryState};
use crate::runtime::embedded;
use crate::runtime::state::GuestBuckets;
use crate::runtime::{PolicyComponent, ProviderComponent, Runtime};
use crate::upstream::UpstreamClient;

pub use super::event::{Event, SyncReport};
use crate::vault::{Record, Vault};

/// How the rest of the gateway talks to the reloader.
#[derive(Clone)]
pub struct ReloaderHandle {
    pub registry: Arc<Registry>,
    /// every component file seen: loads and refusals
    pub components: Arc<ComponentLog>,
    /// every account key, to scrub from what the gateway keeps or shows
    pub secrets: Arc<SecretSet>,
    tx: mpsc::Sender<Event>,
}

impl ReloaderHandle {
    pub async fn send(&self, event: Event) {
        let _ = self.tx.send(event).await;
    }

    /// List every provider's models now and wait for the result.
    pub async fn sync_models(&self) -> SyncReport {
        let (tx, rx) = oneshot::channel();
        self.send(Event::SyncModels(Some(tx))).await;
        rx.await.unwrap_or_default()
    }
}

/// A sync in progress: who is still listing, and who asked.
struct PendingSync {
    waiting: HashSet<String>,
    report: SyncReport,
    reply: oneshot::Sender<SyncReport>,
}

pub struct Reloader {
    runtime: Arc<Runtime>,
    http: UpstreamClient,
    registry: Arc<Registry>,
    config: LoadedConfig,
    /// the catalog with what drop-in components declare (see `re_resolve`)
    catalog: Arc<Catalog>,
    /// the embedded catalog and `[catalog] files`
    file_catalog: Arc<Catalog>,
    resolved: Vec<ResolvedProvider>,
    /// the vault's accounts with their secrets
    vault: Vec<(Record, SecretString)>,
    /// why the vault could not be read, if it could not
    vault_problem: Option<String>,
    components: HashMap<PathBuf, Arc<ProviderComponent>>,
    policies: HashMap<PathBuf, Arc<PolicyComponent>>,
    failures: HashMap<PathBuf, String>,
    discovered: DiscoveryState,
    discovering: HashSet<String>,
    syncs: Vec<PendingSync>,
    cursors: HashMap<String, Arc<AtomicUsize>>,
    in_flight: HashMap<String, Arc<AtomicUsize>>,
    accounts: HashMap<String, Arc<Account>>,
    buckets: Arc<GuestBuckets>,
    secrets: Arc<SecretSet>,
    ledger: Arc<crate::quota::Ledger>,
    metrics: Arc<crate::telemetry::Metrics>,
    /// `[[webhooks]]`: told of components refused on reload; their endpoints follow the
    /// configuration
    webhooks: Arc<crate::webhooks::Webhooks>,
    /// the first snapshot is out: loads from now on are reloads (counted in the metrics)
    serving: bool,
    generation: u64,
    tx: mpsc::Sender<Event>,
    log: Arc<ComponentLog>,
}

const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// The vault's accounts (none when there is no vault yet), or why it cannot be opened. On a
/// blocking thread: opening takes the vault's lock (and argon2 for a passphrase).
pub async fn load_vault(config: &LoadedConfig) -> Result<Vec<(Record, SecretString)>, String> {
    let paths = config.config.vault.paths();
    tokio::task::spawn_blocking(move || {
        if !paths.vault.exists() {
            return Ok(Vec::new());
        }
        Vault::open(&paths, None)
            .and_then(|v| v.unsealed())
            .map_err(|e| format!("vault {}: {e}", paths.vault.display()))
    })
    .await
    .map_err(|e| format!("reading the vault failed: {e}"))?
}

fn load_catalog(config: &LoadedConfig) -> Arc<Catalog> {
    match Catalog::load(&config.config.catalog.files) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!("catalog file rejected, using the embedded catalog: {e}");
            Arc::new(config::catalog::embedded().clone())
        }
    }
}

impl Reloader {
    /// Load every component the configuration needs, publish the first snapshot, then keep
    /// reloading in the background (watching files when `runtime.watch` is on).
    pub async fn start(
        config: LoadedConfig,
        runtime: Arc<Runtime>,
        http: UpstreamClient,
        ledger: Arc<crate::quota::Ledger>,
        metrics: Arc<crate::telemetry::Metrics>,
        webhooks: Arc<crate::webhooks::Webhooks>,
    ) -> ReloaderHandle {
        let (tx, rx) = mpsc::channel(256);
        let registry = Arc::new(Registry::new(Snapshot::empty(Arc::new(config.config.clone()))));
        let catalog = load_catalog(&config);
        let discovered = DiscoveryState::load(&config.config.discovery.state_file);
        let (vault, vault_problem) = match load_vault(&config).await {
            Ok(v) => (v, None),
            Err(e) => {
                tracing::error!("{e}");
                (Vec::new(), Some(e))
            }
        };
        let mut this = Reloader {
            runtime,
            http,
            registry: registry.clone(),
            resolved: Vec::new(),
            file_catalog: catalog.clone(),
            vault,
            vault_problem,
            catalog,
            config,
            components: HashMap::new(),
            policies: HashMap::new(),
            failures: HashMap::new(),
            discovered,
            discovering: HashSet::new(),
            syncs: Vec::new(),
            cursors: HashMap::new(),
            in_flight: HashMap::new(),
            accounts: HashMap::new(),
            buckets: Arc::new(GuestBuckets::default()),
            secrets: Arc::new(SecretSet::default()),
            ledger,
            metrics,
            webhooks,
            serving: false,
            generation: 0,
            tx: tx.clone(),
            log: Arc::new(ComponentLog::default()),
        };
        let this_log = this.log.clone();
        let this_secrets = this.secrets.clone();
        this.load_classifier();
        this.load_policies_dir().await;
        this.load_providers_dir().await;
        this.re_resolve();
        this.ensure_components().await;
        this.rebuild();
        this.serving = true;
        if this.config.config.runtime.watch {
            watcher::spawn(&this.config, tx.clone());
        }
        spawn_periodic_sync(this.config.config.discovery.interval_secs, tx.clone());
        tokio::spawn(this.run(rx));
        ReloaderHandle { registry, components: this_log, secrets: this_secrets, tx }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        while let Some(event) = rx.recv().await {
            match event {
                Event::ConfigChanged => self.reload_config().await,
                Event::FileChanged(path) => self.file_changed(&path).await,
                Event::FileRemoved(path) => self.file_removed(&path).await,
                Event::DiscoveryFileChanged => {
                    let state = DiscoveryState::load(&self.config.config.discovery.state_file);
                    if state != self.discovered {
                        self.discovered = state;
                        self.rebuild();
                    }
                }
                Event::VaultChanged => self.reload_vault().await,
                Event::ClassifierChanged => self.load_classifier(),
                Event::Discovered { provider, result } => self.discovered_models(provider, result),
                Event::SyncModels(reply) => self.sync_all(reply),
            }
        }
    }

    /// Count a reload of `kind` once the gateway serves (the loads at start are not reloads).
    fn reloaded(&self, kind: &'static str, ok: bool) {
        if self.serving {
            self.metrics.reload(kind, ok);
        }
    }

    /// A component refused once the gateway serves: told to the webhooks.
    fn refused(&self, kind: &str, name: &str, path: &Path, reason: &str) {
        self.log.refused(path, kind, name, self.source_of(path), reason, crate::clock::now_ms());
        if self.serving {
            self.webhooks.emit(crate::webhooks::Event::ReloadRefused {
                kind: kind.to_owned(),
                name: name.to_owned(),
                path: path.display().to_string(),
                reason: reason.chars().take(500).collect(),
            });
        }
    }

    fn discovered_models(&mut self, provider: String, result: Result<Vec<wit::ModelInfo>, String>) {
        self.discovering.remove(&provider);
        let outcome = match &result {
            Ok(models) => {
                tracing::info!(provider = %provider, "listed {} models", models.len());
                Ok(models.len())
            }
            Err(e) => {
                tracing::warn!(provider = %provider, "model listing failed: {e}");
                Err(e.clone())
            }
        };
        self.discovered.record(&provider, result);
        if let Err(e) = self.discovered.save(&self.config.config.discovery.state_file) {
            tracing::warn!("cannot save the model state {}: {e}", self.config.config.discovery.state_file.display());
        }
        for sync in &mut self.syncs {
            if sync.waiting.remove(&provider) {
                sync.report.push((provider.clone(), outcome.clone()));
            }
        }
        let (done, pending): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.syncs).into_iter().partition(|s| s.waiting.is_empty());
        self.syncs = pending;
        for sync in done {
            let _ = sync.reply.send(sync.report);
        }
        self.rebuild();
    }

    async fn reload_vault(&mut self) {
        match load_vault(&self.config).await {
            Ok(accounts) => {
                self.vault = accounts;
                self.vault_problem = None;
                self.re_resolve();
                self.ensure_components().await;
                self.rebuild();
                self.reloaded("vault", true);
                tracing::info!("vault reloaded: {} account(s)", self.vault.len());
            }
            Err(e) => {
                self.reloaded("vault", false);
                tracing::error!("{e}; the previous accounts keep serving");
                self.vault_problem = Some(e);
                self.rebuild();
            }
        }
    }

    fn config_path(&self) -> Option<&Path> {
        self.config.path.as_deref()
    }

    async fn reload_config(&mut self) {
        let Some(path) = self.config_path().map(Path::to_owned) else { return };
        match config::reload(&self.config) {
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
                let classifier_moved = old.routing.classifier_model != new.config.routing.classifier_model;
                self.config = new;
                if classifier_moved {
                    self.load_classifier();
                }
                self.webhooks.configure(&self.config.config.webhooks);
                self.file_catalog = load_catalog(&self.config);
                if let Ok(v) = load_vault(&self.config).await {
                    self.vault = v;
                }
                self.re_resolve();
                self.ensure_components().await;
                self.rebuild();
                self.reloaded("config", true);
                tracing::info!("configuration {} reloaded", path.display());
            }
            Err(e) => {
                self.reloaded("config", false);
                tracing::error!("configuration rejected, the previous one keeps serving: {e}");
            }
        }
    }

    /// Load the task classifier's model: the configured file, else the built-in one. A file
    /// that does not load leaves the model in use serving, and is reported like a refused
    /// component.
    fn load_classifier(&mut self) {
        let path = self.config.config.routing.classifier_model.clone();
        let started = std::time::Instant::now();
        match crate::routing::classifier::load(path.as_deref()) {
            Ok(model) => {
                tracing::info!(
                    "task classifier: {} ({} KiB, trained on {} prompts), loaded in {} ms",
                    path.as_deref().map_or_else(|| "built in".to_owned(), |p| p.display().to_string()),
                    model.bytes / 1024,
                    model.about.get("trained_on").and_then(serde_json::Value::as_u64).unwrap_or(0),
                    started.elapsed().as_millis()
                );
                crate::routing::classifier::install(model);
                self.reloaded("classifier", true);
            }
            Err(e) => {
                self.reloaded("classifier", false);
                tracing::error!("task classifier refused, the one in use keeps serving: {e}");
                if let Some(p) = &path {
                    self.refused("classifier", "task-classifier", p, &e);
                }
            }
        }
    }

    /// The catalog with what drop-in components declare, and the providers to serve: the
    /// configuration's, those `auto_env` enables from key variables (declared ones included),
    /// keyless declared ones, and those the vault has accounts for.
    fn re_resolve(&mut self) {
        let declared = declared::catalog(&self.components, &self.config.config.runtime.providers_dir);
        let mut catalog = (*self.file_catalog).clone();
        catalog.merge(declared.clone());
        let env = |v: &str| std::env::var(v).ok();
        let mut config = self.config.config.clone();
        if config.auto_env.0 {
            let listed: Vec<String> = config.providers.iter().map(|p| p.id.get_ref().clone()).collect();
            config::auto::merge_from_env(&mut config, &declared, env);
            for d in &declared.providers {
                if d.local && !config.providers.iter().any(|p| p.id.get_ref() == &d.id) {
                    config.providers.push(config::auto::entry(&d.id));
                }
            }
            for p in config.providers.iter_mut().filter(|p| !listed.contains(p.id.get_ref())) {
                if let Some(c) = self.components.values().find(|c| &c.manifest.id == p.id.get_ref())
                    && let Some(d) = &c.declaration
                {
                    p.discover_models = d.discover_models || d.keyless;
                }
            }
        }
        self.catalog = Arc::new(catalog);
        self.resolved = config::resolve(&config, &self.catalog, &self.vault, &env);
    }

    /// Every component file in the providers folder (drop-in providers declare themselves).
    async fn load_providers_dir(&mut self) {
        let dir = self.config.config.runtime.providers_dir.clone();
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| is_wasm(p)).collect();
        paths.sort();
        for p in paths {
            let p = std::path::absolute(&p).unwrap_or(p);
            self.load_provider(&p).await;
        }
    }

    /// Load components the configuration names that are not loaded yet.
    async fn ensure_components(&mut self) {
        let wanted: Vec<PathBuf> =
            self.resolved.iter().map(|p| component_path(&self.config.config.runtime, &p.component)).collect();
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
                self.log.loaded(
                    path,
                    &Loaded {
                        kind: "provider",
                        name: &name,
                        source: self.source_of(path),
                        wit: &c.wit,
                        declares: c.declaration.as_ref().map(|_| c.manifest.id.as_str()),
                        version: Some(c.manifest.version.as_str()),
                        sha256: &c.hash,
                        loaded_at_ms: crate::clock::unix_ms(c.loaded_at),
                    },
                );
                self.components.insert(path.to_owned(), c);
                self.failures.remove(path);
                self.reloaded("provider_component", true);
                true
            }
            Err(e) => {
                self.reloaded("provider_component", false);
                self.refused("provider", &name, path, &e.message);
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
                let loaded = Loaded {
                    kind: "policy",
                    name: &name,
                    source: self.source_of(path),
                    wit: &c.wit,
                    declares: None,
                    version: None,
                    sha256: &c.hash,
                    loaded_at_ms: crate::clock::now_ms(),
                };
                self.log.loaded(path, &loaded);
                self.policies.insert(path.to_owned(), c);
                self.reloaded("policy_component", true);
                true
            }
            Err(e) => {
                self.reloaded("policy_component", false);
                self.refused("policy", &name, path, &e.message);
                if self.policies.contains_key(path) {
                    tracing::error!("{e}; the previous version keeps serving");
                } else {
                    tracing::error!("{e}");
                }
                false
            }
        }
    }

    /// The embedded policies, then every policy file in the policies folder (a file takes the
    /// place of the embedded policy of its name).
    async fn load_policies_dir(&mut self) {
        for name in embedded::policy_names() {
            self.load_policy(&embedded::path(name)).await;
        }
        let dir = self.config.config.runtime.policies_dir.clone();
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| is_wasm(p)).collect();
        paths.sort();
        for p in paths {
            let p = std::path::absolute(&p).unwrap_or(p);
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
            if !in_policies {
                // a drop-in provider may have arrived, changed what it declares, or taken the
                // place of an embedded component
                self.re_resolve();
                self.ensure_components().await;
            }
            self.rebuild();
        }
    }

    /// Where a component comes from, for `freeway plugins` and the status view.
    fn source_of(&self, path: &Path) -> &'static str {
        let rt = &self.config.config.runtime;
        if embedded::name(path).is_some() {
            "embedded"
        } else if path.parent().is_some_and(|d| same_dir(d, &rt.providers_dir) || same_dir(d, &rt.policies_dir)) {
            "folder"
        } else {
            "path"
        }
    }

    /// A component file is gone: what it served stops (an embedded component of the same name
    /// takes its place again); requests already running finish on the instance they hold.
    async fn file_removed(&mut self, path: &Path) {
        let was_loaded = self.components.remove(path).is_some() | self.policies.remove(path).is_some();
        let had_failed = self.failures.remove(path).is_some();
        if !(was_loaded || had_failed) {
            return;
        }
        tracing::info!("{} was removed; it no longer serves", path.display());
        self.log.removed(path, crate::clock::now_ms());
        self.re_resolve();
        self.ensure_components().await;
        self.rebuild();
    }

    fn rebuild(&mut self) {
        self.generation += 1;
        let snapshot = build::snapshot(build::Inputs {
            config: &self.config.config,
            config_path: self.config.path.as_deref(),
            catalog: &self.catalog,
            providers: &self.resolved,
            components: &self.components,
            failures: &self.failures,
            policies: &self.policies,
            discovered: &self.discovered,
            cursors: &mut self.cursors,
            in_flight: &mut self.in_flight,
            accounts: &mut self.accounts,
            http: &self.http,
            buckets: &self.buckets,
            secrets: &self.secrets,
            ledger: &self.ledger,
            metrics: &self.metrics,
            generation: self.generation,
            extra_problems: self.vault_problem.iter().cloned().collect(),
        });
        for problem in &snapshot.problems {
            tracing::warn!("not ready: {problem}");
        }
        // every key in the vault and the configuration, in use or not
        let mut secrets: Vec<SecretString> = self.vault.iter().map(|(_, s)| s.clone()).collect();
        secrets.extend(self.resolved.iter().flat_map(|p| p.keys.iter().map(|k| k.secret.clone())));
        self.secrets.replace(secrets);
        self.start_discovery(&snapshot, false);
        self.registry.publish(snapshot);
    }

    /// List models of providers that have none listed yet (or of all of them, with `force`).
    /// Returns the providers whose listing started.
    fn start_discovery(&mut self, snapshot: &Snapshot, force: bool) -> HashSet<String> {
        let mut started = HashSet::new();
        for p in &snapshot.providers {
            let listed = self.discovered.providers.get(&p.id).is_some_and(|l| l.attempted_at_ms > 0);
            if !p.discover || (listed && !force) || self.discovering.contains(&p.id) {
                continue;
            }
            self.discovering.insert(p.id.clone());
            started.insert(p.id.clone());
            let provider = p.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let result = tokio::time::timeout(DISCOVERY_TIMEOUT, discovery::list(&provider))
                    .await
                    .unwrap_or_else(|_| Err("timed out".to_owned()));
                let _ = tx.send(Event::Discovered { provider: provider.id.clone(), result }).await;
            });
        }
        started
    }

    fn sync_all(&mut self, reply: Option<oneshot::Sender<SyncReport>>) {
        let snapshot = self.registry.snapshot();
        let mut waiting = self.start_discovery(&snapshot, true);
        // listings already in flight count too
        waiting.extend(
            snapshot.providers.iter().filter(|p| p.discover && self.discovering.contains(&p.id)).map(|p| p.id.clone()),
        );
        if let Some(reply) = reply {
            if waiting.is_empty() {
                let _ = reply.send(Vec::new());
            } else {
                self.syncs.push(PendingSync { waiting, report: Vec::new(), reply });
            }
        }
    }
}

/// Ask for a full model sync every `secs` (0: never).
fn spawn_periodic_sync(secs: u64, tx: mpsc::Sender<Event>) {
    if secs == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(secs));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            if tx.send(Event::SyncModels(None)).await.is_err() {
                return;
            }
        }
    });
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
