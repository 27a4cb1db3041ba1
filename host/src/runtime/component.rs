//! Loading components: read, hash, compile (or take the cached compilation), check the WIT
//! version they were built against, link, and validate by calling `manifest`. All of it runs off
//! the request path; the result is an immutable, shareable `ProviderComponent`/`PolicyComponent`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

use super::cache::ArtifactCache;
use super::engine;
use super::guest::{GuestFailure, PolicyInstance, ProviderInstance};
use super::hosts::AllowedHosts;
use super::pool::{InstancePool, ProviderLease};
use super::state::{AuthStyle, GuestIo, GuestState};
use crate::accounts::Account;
use crate::bindings::embedding::exports::freeway::gateway::embeddings::{
    Guest as EmbeddingsGuest, GuestIndices as EmbeddingsIndices,
};
use crate::bindings::policy::{Policy, PolicyPre};
use crate::bindings::provider::{Provider, ProviderPre};
use crate::bindings::{WIT_PACKAGE, WIT_VERSION, wit};
use crate::config::RuntimeConfig;
use crate::telemetry::GuestMetrics;

/// A component that could not be loaded, with one clear reason.
#[derive(Debug, Clone)]
pub struct ComponentError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for ComponentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "component {} rejected: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for ComponentError {}

/// Per-call sandbox limits.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimits {
    pub max_memory: usize,
    pub cpu_budget: Duration,
    /// wall-clock time one call may take, however it spends it
    pub wall: Duration,
    pub http: super::state::HttpBounds,
    /// idle instances kept warm per component (0: a fresh instance for every request)
    pub warm_instances: usize,
}

/// The engine, the linkers with every host function, and the compilation cache.
pub struct Runtime {
    engine: Engine,
    provider_linker: Linker<GuestState>,
    policy_linker: Linker<GuestState>,
    cache: ArtifactCache,
    pub limits: GuestLimits,
    /// where each component's guest calls are counted
    metrics: Arc<crate::telemetry::Metrics>,
}

/// A loaded, validated provider component.
pub struct ProviderComponent {
    pub name: String,
    pub path: PathBuf,
    /// sha256 of the `.wasm` file
    pub hash: String,
    /// the `freeway:gateway` version it was built against
    pub wit: String,
    pub manifest: wit::ProviderManifest,
    /// the provider it declares it serves (drop-in components), checked when it loaded
    pub declaration: Option<wit::ProviderDeclaration>,
    pub auth: AuthStyle,
    pub loaded_at: std::time::SystemTime,
    pre: ProviderPre<GuestState>,
    /// where the optional `embeddings` export is, when the component has it
    embeddings: Option<EmbeddingsIndices>,
    engine: Engine,
    limits: GuestLimits,
    pool: Arc<InstancePool>,
    metrics: Arc<GuestMetrics>,
}

/// A loaded, validated policy component.
pub struct PolicyComponent {
    pub name: String,
    pub path: PathBuf,
    pub hash: String,
    /// the `freeway:gateway` version it was built against
    pub wit: String,
    pre: PolicyPre<GuestState>,
    engine: Engine,
    limits: GuestLimits,
    /// warm instances, reused across requests while they keep succeeding
    idle: parking_lot::Mutex<Vec<PolicyInstance>>,
    metrics: Arc<GuestMetrics>,
}

/// Warm policy instances kept per component (Python and JavaScript guests cost ~0.6 ms to
/// instantiate; a rank call on a warm one costs microseconds).
const POLICY_WARM: usize = 8;

/// Which world a component is expected to implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Provider,
    Policy,
}

impl World {
    fn name(self) -> &'static str {
        match self {
            World::Provider => "provider",
            World::Policy => "policy",
        }
    }

    fn interface(self) -> &'static str {
        match self {
            World::Provider => "provider-api",
            World::Policy => "policy-api",
        }
    }
}

impl Runtime {
    /// The engine for `cfg`; guest calls are counted in `metrics`.
    pub fn new(cfg: &RuntimeConfig, metrics: Arc<crate::telemetry::Metrics>) -> Result<Arc<Self>, String> {
        let engine = engine::build(cfg).map_err(|e| format!("cannot create the wasm engine: {e:#}"))?;
        engine::start_ticker(&engine);
        let mut provider_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut provider_linker).map_err(|e| format!("linking WASI: {e:#}"))?;
        Provider::add_to_linker::<GuestState, wasmtime::component::HasSelf<GuestState>>(&mut provider_linker, |s| s)
            .map_err(|e| format!("linking host functions: {e:#}"))?;
        let mut policy_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut policy_linker).map_err(|e| format!("linking WASI: {e:#}"))?;
        Policy::add_to_linker::<GuestState, wasmtime::component::HasSelf<GuestState>>(&mut policy_linker, |s| s)
            .map_err(|e| format!("linking host functions: {e:#}"))?;
        let cache = ArtifactCache::new(&cfg.cache_dir, &engine);
        let limits = GuestLimits {
            max_memory: usize::try_from(cfg.guest_memory_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX),
            cpu_budget: Duration::from_millis(cfg.guest_cpu_ms),
            wall: Duration::from_millis(cfg.guest_wall_ms.max(1)),
            http: super::state::HttpBounds { calls: cfg.guest_http_calls, bytes: cfg.guest_http_bytes },
            warm_instances: cfg.warm_instances,
        };
        Ok(Arc::new(Self { engine, provider_linker, policy_linker, cache, limits, metrics }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile (or load from cache) and check the WIT version: the component, its content hash
    /// and the `freeway:gateway` version it was built against. Blocking: call from a blocking task.
    fn compile(&self, path: &Path, world: World) -> Result<(Component, String, String), ComponentError> {
        let err = |message: String| ComponentError { path: path.to_owned(), message };
        let bytes = match super::embedded::bytes(path) {
            Some(b) => std::borrow::Cow::Borrowed(b),
            None => std::borrow::Cow::Owned(std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?),
        };
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(err("not a WebAssembly file".into()));
        }
        if bytes[4..8] == [1, 0, 0, 0] {
            return Err(err("this is a core wasm module, not a component; build for wasm32-wasip2 or run `wasm-tools component new`".into()));
        }
        let hash = hex::encode(Sha256::digest(&bytes));
        let component = match self.cache.load(&self.engine, &hash) {
            Some(c) => c,
            None => {
                let started = Instant::now();
                let c = Component::new(&self.engine, &bytes)
                    .map_err(|e| err(format!("invalid component: {}", first_line(&e))))?;
                tracing::debug!("compiled {} in {:?}", path.display(), started.elapsed());
                self.cache.store(&hash, &c);
                c
            }
        };
        let wit = check_wit_version(&component, &self.engine, world).map_err(err)?;
        Ok((component, hash, wit))
    }

    /// Load a provider component: compile, check, link and validate its manifest.
    pub async fn load_provider(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
    ) -> Result<Arc<ProviderComponent>, ComponentError> {
        let err = |message: String| ComponentError { path: path.to_owned(), message };
        let this = self.clone();
        let owned = path.to_owned();
        let (component, hash, wit) = tokio::task::spawn_blocking(move || this.compile(&owned, World::Provider))
            .await
            .map_err(|e| err(format!("compilation task failed: {e}")))??;
        let pre = self
            .provider_linker
            .instantiate_pre(&component)
            .map_err(|e| err(format!("cannot be linked: {}", first_line(&e))))?;
        let pre = ProviderPre::new(pre)
            .map_err(|e| err(format!("does not implement the provider world: {}", first_line(&e))))?;
        let mut component = ProviderComponent {
            name: name.to_owned(),
            path: path.to_owned(),
            hash,
            wit,
            manifest: empty_manifest(),
            declaration: None,
            auth: AuthStyle::None,
            loaded_at: std::time::SystemTime::now(),
            embeddings: EmbeddingsIndices::new(pre.instance_pre()).ok(),
            pre,
            engine: self.engine.clone(),
            limits: self.limits,
            pool: Arc::new(InstancePool::new(self.limits.warm_instances)),
            metrics: self.metrics.guest(name),
        };
        let mut instance = component.instantiate(None, Vec::new()).await.map_err(|f| err(f.to_string()))?;
        let manifest = instance.manifest().await.map_err(|f| err(format!("manifest() failed: {f}")))?;
        validate_manifest(&manifest).map_err(|m| err(format!("invalid manifest: {m}")))?;
        component.auth = AuthStyle::from_wit(&manifest.auth).map_err(|m| err(format!("invalid manifest auth: {m}")))?;
        component.manifest = manifest;
        component.declaration = component.declaration().await.map_err(err)?;
        if let Some(d) = &component.declaration {
            validate_declaration(&component.manifest, d).map_err(|m| err(format!("invalid declaration: {m}")))?;
        }
        Ok(Arc::new(component))
    }

    /// Load a policy component: compile, check and link.
    pub async fn load_policy(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
    ) -> Result<Arc<PolicyComponent>, ComponentError> {
        let err = |message: String| ComponentError { path: path.to_owned(), message };
        let this = self.clone();
        let owned = path.to_owned();
        let (component, hash, wit) = tokio::task::spawn_blocking(move || this.compile(&owned, World::Policy))
            .await
            .map_err(|e| err(format!("compilation task failed: {e}")))??;
        let pre = self
            .policy_linker
            .instantiate_pre(&component)
            .map_err(|e| err(format!("cannot be linked: {}", first_line(&e))))?;
        let pre =
            PolicyPre::new(pre).map_err(|e| err(format!("does not implement the policy world: {}", first_line(&e))))?;
        let policy = PolicyComponent {
            name: name.to_owned(),
            path: path.to_owned(),
            hash,
            wit,
            pre,
            engine: self.engine.clone(),
            limits: self.limits,
            idle: parking_lot::Mutex::new(Vec::new()),
            metrics: self.metrics.guest(name),
        };
        // prove it instantiates, and keep that instance warm
        let first = policy.instantiate().await.map_err(|f| err(f.to_string()))?;
        policy.idle.lock().push(first);
        Ok(Arc::new(policy))
    }
}

fn empty_manifest() -> wit::ProviderManifest {
    wit::ProviderManifest {
        id: String::new(),
        name: String::new(),
        version: String::new(),
        allowed_hosts: Vec::new(),
        auth: wit::AuthStyle::None,
        default_base_url: None,
        needs_body: false,
        limit_headers: Vec::new(),
        models: Vec::new(),
    }
}

fn validate_manifest(m: &wit::ProviderManifest) -> Result<(), String> {
    if m.id.trim().is_empty() {
        return Err("id is empty".into());
    }
    AllowedHosts::resolve(&m.allowed_hosts, None)?;
    if let Some(u) = &m.default_base_url {
        let parsed = url::Url::parse(u).map_err(|e| format!("default-base-url \"{u}\": {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("default-base-url \"{u}\" is not http(s)"));
        }
    }
    Ok(())
}

/// A drop-in provider must say where it goes and how a key reaches it.
fn validate_declaration(m: &wit::ProviderManifest, d: &wit::ProviderDeclaration) -> Result<(), String> {
    if m.default_base_url.is_none() {
        return Err("a declared provider needs the manifest's default-base-url".into());
    }
    if !d.keyless && d.key_env.is_empty() {
        return Err("a provider that needs a key must name its key variable (key-env)".into());
    }
    if matches!(m.auth, wit::AuthStyle::None) && !d.keyless {
        return Err("auth is none, so the provider is keyless: set keyless".into());
    }
    let valid_var =
        |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if let Some(bad) = d.key_env.iter().find(|v| !valid_var(v)) {
        return Err(format!("key-env \"{bad}\" is not an environment variable name (A-Z, 0-9, _)"));
    }
    if let Some(bad) = d.key_env.iter().find(|v| v.starts_with("FREEWAY_")) {
        return Err(format!("key-env \"{bad}\": FREEWAY_ variables are the gateway's own"));
    }
    if !crate::config::catalog::valid_provider_id(&m.id) {
        return Err(format!("id \"{}\" is not a provider id (letters, digits, '-', '_' and '.')", m.id));
    }
    Ok(())
}

/// The first line of an error chain, for one-line log messages.
fn first_line(e: &wasmtime::Error) -> String {
    let s = format!("{e:#}");
    s.lines().next().unwrap_or_default().to_owned()
}

/// Whether a component built against `guest` works with this host's `host` version: same major,
/// and for 0.x the same minor (semver's rule for pre-1.0 packages); from 1.0 on, a guest may not
/// need a newer minor than the host has.
pub fn compatible(guest: &str, host: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split(['.', '-', '+']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parse(guest), parse(host)) {
        (Some((gm, gn)), Some((hm, hn))) => gm == hm && if hm == 0 { gn == hn } else { gn <= hn },
        _ => false,
    }
}

/// Refuse a component built against an incompatible `freeway:gateway` version, naming both; the
/// version it was built against.
fn check_wit_version(component: &Component, engine: &Engine, world: World) -> Result<String, String> {
    let ty = component.component_type();
    let prefix = format!("{WIT_PACKAGE}/");
    let mut exports_world = false;
    let mut export_names = Vec::new();
    let mut world_version = String::new();
    let check = |name: &str| -> Result<Option<(String, String)>, String> {
        let Some(rest) = name.strip_prefix(&prefix) else { return Ok(None) };
        let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if !compatible(version, WIT_VERSION) {
            let built = if version.is_empty() {
                "an unversioned freeway:gateway".to_owned()
            } else {
                format!("{WIT_PACKAGE}@{version}")
            };
            return Err(format!(
                "it was built against {built}, but this Freeway implements {WIT_PACKAGE}@{WIT_VERSION}; rebuild it against {WIT_PACKAGE}@{}",
                compatible_range()
            ));
        }
        Ok(Some((iface.to_owned(), version.to_owned())))
    };
    for (name, _) in ty.imports(engine) {
        check(name)?;
    }
    for (name, _) in ty.exports(engine) {
        export_names.push(name.to_owned());
        if let Some((iface, version)) = check(name)?
            && iface == world.interface()
        {
            exports_world = true;
            world_version = version;
        }
    }
    if !exports_world {
        return Err(format!(
            "it does not export {WIT_PACKAGE}/{}@{WIT_VERSION}, so it is not a Freeway {} component (it exports: {})",
            world.interface(),
            world.name(),
            if export_names.is_empty() { "nothing".to_owned() } else { export_names.join(", ") }
        ));
    }
    Ok(world_version)
}

fn compatible_range() -> String {
    let mut parts = WIT_VERSION.split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    if major == "0" { format!("0.{minor}.x") } else { format!("{major}.x") }
}

/// A fresh store with limits, the CPU clock and cooperative yields wired in.
fn new_store(
    engine: &Engine,
    limits: GuestLimits,
    io: Option<Arc<GuestIo>>,
    accounts: Vec<Arc<Account>>,
) -> Store<GuestState> {
    let state = GuestState::new(io, accounts, limits.max_memory, limits.cpu_budget, limits.http);
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| match ctx.data_mut().clock.tick() {
        Some(resume) => Ok(UpdateDeadline::YieldCustom(1, Box::pin(resume))),
        None => Err(wasmtime::Error::msg("guest exceeded its CPU time budget")),
    });
    store
}

impl ProviderComponent {
    /// An instance for one request, able to name `accounts` by index: a warm one from the pool
    /// when there is one, else a fresh one. It returns to the pool when the lease is dropped.
    pub async fn acquire(
        &self,
        io: Option<Arc<GuestIo>>,
        accounts: Vec<Arc<Account>>,
    ) -> Result<ProviderLease, GuestFailure> {
        let inst = match self.pool.take() {
            Some(mut warm) => {
                warm.rebind(io, accounts);
                warm
            }
            None => self.instantiate(io, accounts).await?,
        };
        Ok(ProviderLease::new(inst, self.pool.clone()))
    }

    /// Idle warm instances.
    pub fn warm(&self) -> usize {
        self.pool.idle()
    }

    /// A fresh instance for one request, able to name `accounts` by index.
    pub async fn instantiate(
        &self,
        io: Option<Arc<GuestIo>>,
        accounts: Vec<Arc<Account>>,
    ) -> Result<ProviderInstance, GuestFailure> {
        let mut store = new_store(&self.engine, self.limits, io, accounts);
        store.data_mut().begin_call();
        let made = match tokio::time::timeout(self.limits.wall, self.instantiate_bindings(&mut store)).await {
            Ok(Ok(bindings)) => {
                return Ok(ProviderInstance::new(store, bindings, &self.name, self.limits.wall, self.metrics.clone()));
            }
            Ok(Err(e)) => GuestFailure::from_instantiate(&e, &self.name, store.data()),
            Err(_) => GuestFailure::wall_clock(&self.name, "instantiation", self.limits.wall),
        };
        self.metrics.failed(made.kind.as_str());
        Err(made)
    }

    /// An instance's provider bindings, and its optional `embeddings` export.
    async fn instantiate_bindings(
        &self,
        store: &mut Store<GuestState>,
    ) -> wasmtime::Result<(Provider, Option<EmbeddingsGuest>)> {
        let instance = self.pre.instance_pre().instantiate_async(&mut *store).await?;
        let bindings = Provider::new(&mut *store, &instance)?;
        let embeddings = match &self.embeddings {
            Some(indices) => Some(indices.load(&mut *store, &instance)?),
            None => None,
        };
        Ok((bindings, embeddings))
    }

    /// Whether the component exports `embeddings` (built against 0.1.1 or later and opting in).
    pub fn embeds(&self) -> bool {
        self.embeddings.is_some()
    }

    /// The optional `declare` export's answer (`None` for components that do not have it).
    async fn declaration(&self) -> Result<Option<wit::ProviderDeclaration>, String> {
        use crate::bindings::declared::exports::freeway::gateway::declare::GuestIndices;
        let Ok(indices) = GuestIndices::new(self.pre.instance_pre()) else { return Ok(None) };
        let mut store = new_store(&self.engine, self.limits, None, Vec::new());
        store.data_mut().begin_call();
        let call = async {
            let instance = self.pre.instance_pre().instantiate_async(&mut store).await?;
            let declare = indices.load(&mut store, &instance)?;
            declare.call_declaration(&mut store).await
        };
        match tokio::time::timeout(self.limits.wall, call).await {
            Ok(Ok(d)) => Ok(d),
            Ok(Err(e)) => Err(format!("declaration() failed: {}", first_line(&e))),
            Err(_) => Err(format!("declaration() took longer than {:?}", self.limits.wall)),
        }
    }

    /// The host's view of this component's auth and hosts for one configured provider.
    pub fn io(
        &self,
        provider_id: &str,
        base_url: Option<&url::Url>,
        http: crate::upstream::UpstreamClient,
        buckets: Arc<super::state::GuestBuckets>,
        secrets: Arc<crate::accounts::SecretSet>,
    ) -> Result<GuestIo, String> {
        Ok(GuestIo {
            provider_id: provider_id.to_owned(),
            component: self.name.clone(),
            allowed: AllowedHosts::resolve(&self.manifest.allowed_hosts, base_url)?,
            auth: self.auth.clone(),
            http,
            buckets,
            secrets,
        })
    }
}

impl PolicyComponent {
    pub async fn instantiate(&self) -> Result<PolicyInstance, GuestFailure> {
        let mut store = new_store(&self.engine, self.limits, None, Vec::new());
        store.data_mut().begin_call();
        let made = match tokio::time::timeout(self.limits.wall, self.pre.instantiate_async(&mut store)).await {
            Ok(Ok(bindings)) => {
                return Ok(PolicyInstance::new(store, bindings, &self.name, self.limits.wall, self.metrics.clone()));
            }
            Ok(Err(e)) => GuestFailure::from_instantiate(&e, &self.name, store.data()),
            Err(_) => GuestFailure::wall_clock(&self.name, "instantiation", self.limits.wall),
        };
        self.metrics.failed(made.kind.as_str());
        Err(made)
    }

    /// Rank candidates on a warm instance (or a new one). An instance that failed, or whose
    /// call was cancelled midway, is dropped, never reused.
    pub async fn rank(
        &self,
        features: &PolicyFeatures,
        candidates: &[PolicyCandidate],
        messages: bytes::Bytes,
    ) -> Result<Vec<PolicyChoice>, GuestFailure> {
        let warm = self.idle.lock().pop();
        let mut inst = match warm {
            Some(i) => i,
            None => self.instantiate().await?,
        };
        let out = inst.rank(features, candidates, messages).await;
        if !inst.is_poisoned() && inst.calls() < super::pool::MAX_CALLS {
            let mut idle = self.idle.lock();
            if idle.len() < POLICY_WARM {
                idle.push(inst);
            }
        }
        out
    }
}

pub use crate::bindings::policy::exports::freeway::gateway::policy_api::{
    Candidate as PolicyCandidate, Choice as PolicyChoice, Features as PolicyFeatures, Headroom as PolicyHeadroom,
    TaskClass,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_compatibility_follows_semver() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.0.0", "0.1.0"));
        assert!(!compatible("1.4.0", "1.0.0"));
        assert!(compatible("1.0.0", "1.4.0"));
        assert!(!compatible("", "0.1.0"));
        assert_eq!(compatible_range(), "0.1.x");
    }
}
