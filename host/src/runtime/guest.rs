//! Calling into a guest instance under its limits, and turning what went wrong into a typed
//! failure: CPU budget exceeded, memory limit hit, a refused host call, or a trap (with whatever
//! the guest printed, e.g. its panic message). A failed instance is never used again.

use std::fmt;
use std::sync::Arc;

use wasmtime::Store;

use super::state::GuestState;
use crate::bindings::embedding::exports::freeway::gateway::embeddings as wembed;
use crate::bindings::policy::Policy;
use crate::bindings::policy::exports::freeway::gateway::policy_api as wpolicy;
use crate::bindings::provider::Provider;
use crate::bindings::wit;
use crate::errors::{ErrorKind, GatewayError};
use crate::telemetry::{GuestFn, GuestMetrics};
pub use wembed::{EmbedRequest, EmbedResponse};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// ran past its CPU budget
    Timeout,
    /// ran past its wall-clock deadline (sleeping or waiting counts)
    WallClock,
    /// hit its memory (or table) limit
    Memory,
    /// asked for a host or credential its manifest does not allow
    Denied,
    /// no free instance slot
    Busy,
    /// trapped (panic, unreachable, bad cast, ...)
    Trap,
}

impl FailureKind {
    /// The `kind` label of `freeway_guest_failures_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "cpu",
            FailureKind::WallClock => "wall_clock",
            FailureKind::Memory => "memory",
            FailureKind::Denied => "denied",
            FailureKind::Busy => "busy",
            FailureKind::Trap => "trap",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GuestFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl fmt::Display for GuestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl GuestFailure {
    pub(crate) fn from_instantiate(e: &wasmtime::Error, component: &str, state: &GuestState) -> Self {
        if let Some(hit) = &state.limits.hit {
            return Self {
                kind: FailureKind::Memory,
                message: format!("component '{component}' could not be instantiated: {hit}"),
            };
        }
        let text = format!("{e:#}");
        let busy = text.contains("maximum concurrent") || text.contains("pooling") || text.contains("limit of");
        Self {
            kind: if busy { FailureKind::Busy } else { FailureKind::Trap },
            message: format!(
                "component '{component}' could not be instantiated: {}",
                text.lines().next().unwrap_or_default()
            ),
        }
    }

    /// A call (or instantiation) stopped at its wall-clock deadline.
    pub(crate) fn wall_clock(component: &str, what: &str, wall: std::time::Duration) -> Self {
        Self {
            kind: FailureKind::WallClock,
            message: format!(
                "component '{component}' exceeded its wall-clock deadline of {} ms in {what} ([runtime] guest_wall_ms)",
                wall.as_millis()
            ),
        }
    }

    pub fn into_gateway(self, provider: &str) -> GatewayError {
        let kind = match self.kind {
            FailureKind::Timeout | FailureKind::WallClock => ErrorKind::ComponentTimeout,
            FailureKind::Memory => ErrorKind::ComponentMemory,
            FailureKind::Denied => ErrorKind::ComponentDenied,
            FailureKind::Busy => ErrorKind::ComponentBusy,
            FailureKind::Trap => ErrorKind::ComponentFailed,
        };
        GatewayError::new(kind, self.message).with_provider(provider)
    }
}

/// Guest instances alive (provider and policy, in use or idle): `/metrics` shows it, so a slot
/// leak would show as a count that only grows.
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn live_instances() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts one live instance while it exists.
struct Alive;

impl Alive {
    fn new() -> Self {
        LIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Alive
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Classify a failed call from the store's own records.
fn classify(store: &Store<GuestState>, e: &wasmtime::Error, component: &str, func: &str) -> GuestFailure {
    let data = store.data();
    if data.clock.exceeded {
        return GuestFailure {
            kind: FailureKind::Timeout,
            message: format!(
                "component '{component}' exceeded its CPU budget of {} ms in {func}()",
                data.clock.budget.as_millis()
            ),
        };
    }
    if let Some(hit) = &data.limits.hit {
        return GuestFailure {
            kind: FailureKind::Memory,
            message: format!("component '{component}' ran out of memory in {func}(): {hit}"),
        };
    }
    if let Some(msg) = &data.denied {
        return GuestFailure { kind: FailureKind::Denied, message: msg.clone() };
    }
    let out = data.output();
    let trap = e.downcast_ref::<wasmtime::Trap>().map_or_else(|| format!("{e}"), |t| t.to_string());
    let mut message = format!("component '{component}' failed in {func}(): {trap}");
    if !out.is_empty() {
        message.push_str(" — guest output: ");
        message.push_str(&out);
    }
    GuestFailure { kind: FailureKind::Trap, message }
}

/// A provider component instance, serving one request at a time.
pub struct ProviderInstance {
    store: Store<GuestState>,
    bindings: Provider,
    /// the optional `embeddings` export (components built against 0.1.1 or later)
    embeddings: Option<Arc<wembed::Guest>>,
    component: String,
    poisoned: bool,
    /// wall-clock deadline of each call
    wall: std::time::Duration,
    _alive: Alive,
    /// guest calls made so far (instances are retired after a while)
    pub(crate) calls: u32,
    metrics: Arc<GuestMetrics>,
}

macro_rules! guest_call {
    ($self:ident, $f:expr, |$b:ident, $s:ident| $call:expr) => {{
        let f: GuestFn = $f;
        if $self.poisoned {
            return Err(GuestFailure {
                kind: FailureKind::Trap,
                message: format!("component '{}' instance was already failed", $self.component),
            });
        }
        $self.store.data_mut().begin_call();
        $self.note_call();
        // a call whose future is dropped midway (client gone, hedge lost, wall clock) leaves the
        // instance marked failed, so it is never reused half-way through a call
        $self.poisoned = true;
        let wall = $self.wall;
        // a stream's per-event translation is counted, not traced (one span per chunk)
        let span = if matches!(f, GuestFn::TranslateEvent) {
            tracing::Span::none()
        } else {
            crate::telemetry::trace::guest_call(&$self.component, f.as_str())
        };
        let started = std::time::Instant::now();
        let result = {
            let $b = &$self.bindings;
            let $s = &mut $self.store;
            tracing::Instrument::instrument(tokio::time::timeout(wall, $call), span.clone()).await
        };
        $self.metrics.call(f, started.elapsed());
        let Ok(result) = result else {
            $self.metrics.failed(FailureKind::WallClock.as_str());
            crate::telemetry::trace::finish_guest_call(&span, Some(FailureKind::WallClock.as_str()));
            return Err(GuestFailure::wall_clock(&$self.component, &format!("{}()", f.as_str()), wall));
        };
        $self.poisoned = false;
        let outcome = match result {
            Ok(v) => match $self.store.data_mut().denied.take() {
                Some(msg) => Err(GuestFailure { kind: FailureKind::Denied, message: msg }),
                None => Ok(v),
            },
            Err(e) => {
                $self.poisoned = true;
                Err(classify(&$self.store, &e, &$self.component, f.as_str()))
            }
        };
        if let Err(failure) = &outcome {
            $self.metrics.failed(failure.kind.as_str());
        }
        crate::telemetry::trace::finish_guest_call(&span, outcome.as_ref().err().map(|e| e.kind.as_str()));
        outcome
    }};
}

impl ProviderInstance {
    pub(crate) fn new(
        store: Store<GuestState>,
        (bindings, embeddings): (Provider, Option<wembed::Guest>),
        component: &str,
        wall: std::time::Duration,
        metrics: Arc<GuestMetrics>,
    ) -> Self {
        Self {
            store,
            bindings,
            embeddings: embeddings.map(Arc::new),
            component: component.to_owned(),
            poisoned: false,
            wall,
            _alive: Alive::new(),
            calls: 0,
            metrics,
        }
    }

    pub fn component(&self) -> &str {
        &self.component
    }

    fn note_call(&mut self) {
        self.calls = self.calls.saturating_add(1);
    }

    /// Whether the instance may serve another request: it never failed and never asked for
    /// something it was not allowed.
    pub fn reusable(&self) -> bool {
        !self.poisoned && self.store.data().denied.is_none()
    }

    pub(crate) fn rebind(
        &mut self,
        io: Option<std::sync::Arc<super::state::GuestIo>>,
        accounts: Vec<std::sync::Arc<crate::accounts::Account>>,
    ) {
        self.store.data_mut().rebind(io, accounts);
    }

    pub async fn manifest(&mut self) -> Result<wit::ProviderManifest, GuestFailure> {
        guest_call!(self, GuestFn::Manifest, |b, s| b.freeway_gateway_provider_api().call_manifest(s))
    }

    pub async fn chat(
        &mut self,
        req: &wit::ChatRequest,
    ) -> Result<Result<wit::UpstreamCall, wit::ProviderError>, GuestFailure> {
        guest_call!(self, GuestFn::Chat, |b, s| b.freeway_gateway_provider_api().call_chat(s, req))
    }

    pub async fn translate_response(&mut self, body: &str) -> Result<Result<String, wit::ProviderError>, GuestFailure> {
        guest_call!(self, GuestFn::TranslateResponse, |b, s| b
            .freeway_gateway_provider_api()
            .call_translate_response(s, body))
    }

    pub async fn translate_event(
        &mut self,
        event: &wit::SseEvent,
    ) -> Result<Result<Vec<String>, wit::ProviderError>, GuestFailure> {
        guest_call!(self, GuestFn::TranslateEvent, |b, s| b
            .freeway_gateway_provider_api()
            .call_translate_event(s, event))
    }

    pub async fn finish_stream(&mut self) -> Result<Result<Vec<String>, wit::ProviderError>, GuestFailure> {
        guest_call!(self, GuestFn::FinishStream, |b, s| b.freeway_gateway_provider_api().call_finish_stream(s))
    }

    pub async fn map_error(
        &mut self,
        config: &wit::ProviderConfig,
        status: u16,
        headers: &Vec<(String, String)>,
        body: &str,
    ) -> Result<wit::ProviderError, GuestFailure> {
        guest_call!(self, GuestFn::MapError, |b, s| b
            .freeway_gateway_provider_api()
            .call_map_error(s, config, status, headers, body))
    }

    pub async fn parse_limits(
        &mut self,
        config: &wit::ProviderConfig,
        account: wit::Credential,
        status: u16,
        headers: &Vec<(String, String)>,
        body: Option<&str>,
    ) -> Result<Vec<wit::QuotaUpdate>, GuestFailure> {
        guest_call!(self, GuestFn::ParseLimits, |b, s| b
            .freeway_gateway_provider_api()
            .call_parse_limits(s, config, account, status, headers, body))
    }

    pub async fn list_models(
        &mut self,
        config: &wit::ProviderConfig,
        account: Option<wit::Credential>,
    ) -> Result<Result<Vec<wit::ModelInfo>, wit::ProviderError>, GuestFailure> {
        guest_call!(self, GuestFn::ListModels, |b, s| b
            .freeway_gateway_provider_api()
            .call_list_models(s, config, account))
    }

    pub async fn check(
        &mut self,
        config: &wit::ProviderConfig,
        account: wit::Credential,
    ) -> Result<Result<(), wit::ProviderError>, GuestFailure> {
        guest_call!(self, GuestFn::Check, |b, s| b.freeway_gateway_provider_api().call_check(s, config, account))
    }

    /// Whether the component exports `embeddings`.
    pub fn embeds(&self) -> bool {
        self.embeddings.is_some()
    }

    fn no_embeddings(&self) -> GuestFailure {
        GuestFailure {
            kind: FailureKind::Trap,
            message: format!("component '{}' does not export freeway:gateway/embeddings", self.component),
        }
    }

    pub async fn embed(
        &mut self,
        req: &wembed::EmbedRequest,
    ) -> Result<Result<wit::UpstreamCall, wit::ProviderError>, GuestFailure> {
        let Some(e) = self.embeddings.clone() else { return Err(self.no_embeddings()) };
        guest_call!(self, GuestFn::Embed, |_b, s| e.call_embed(s, req))
    }

    pub async fn translate_embeddings(
        &mut self,
        body: &str,
    ) -> Result<Result<wembed::EmbedResponse, wit::ProviderError>, GuestFailure> {
        let Some(e) = self.embeddings.clone() else { return Err(self.no_embeddings()) };
        guest_call!(self, GuestFn::TranslateEmbeddings, |_b, s| e.call_translate_embeddings(s, body))
    }
}

/// A policy component instance.
pub struct PolicyInstance {
    store: Store<GuestState>,
    bindings: Policy,
    component: String,
    poisoned: bool,
    wall: std::time::Duration,
    _alive: Alive,
    calls: u32,
    metrics: Arc<GuestMetrics>,
}

impl PolicyInstance {
    pub(crate) fn new(
        store: Store<GuestState>,
        bindings: Policy,
        component: &str,
        wall: std::time::Duration,
        metrics: Arc<GuestMetrics>,
    ) -> Self {
        Self {
            store,
            bindings,
            component: component.to_owned(),
            poisoned: false,
            wall,
            _alive: Alive::new(),
            calls: 0,
            metrics,
        }
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    pub fn calls(&self) -> u32 {
        self.calls
    }

    fn note_call(&mut self) {
        self.calls = self.calls.saturating_add(1);
    }

    pub async fn rank(
        &mut self,
        features: &wpolicy::Features,
        candidates: &[wpolicy::Candidate],
        messages: bytes::Bytes,
    ) -> Result<Vec<wpolicy::Choice>, GuestFailure> {
        self.store.data_mut().request_messages = Some(messages);
        let out =
            guest_call!(self, GuestFn::Rank, |b, s| b.freeway_gateway_policy_api().call_rank(s, features, candidates));
        self.store.data_mut().request_messages = None;
        out
    }
}
