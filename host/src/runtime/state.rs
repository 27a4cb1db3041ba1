//! What a guest's store holds: the WASI context (no files, no network, no environment), memory
//! limits, the CPU clock for the current call, the accounts this request may use (by handle),
//! and what the guest reported back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::wit;
use super::hosts::AllowedHosts;
use super::output::GuestOutput;
use crate::config::SecretString;
use crate::upstream::UpstreamClient;

/// One upstream account: a credential the host holds for a provider.
#[derive(Debug)]
pub struct Account {
    /// stable id: the vault's (`acc_…`) or, for keys in the configuration, `provider#n`
    pub id: String,
    pub label: String,
    pub provider: String,
    /// accounts in one pool draw on one quota
    pub pool: String,
    pub secret: Option<SecretString>,
    /// non-secret per-account settings the component may read
    pub settings: BTreeMap<String, String>,
    /// the latest quota figures the provider reported for this account
    pub quota: Mutex<Vec<wit::QuotaUpdate>>,
    pub health: Arc<crate::accounts::AccountHealth>,
    pub recent: Arc<crate::accounts::RecentUse>,
    /// the ledger's counters of this account's quota pool (shared by the pool's accounts)
    pub quota_pool: Arc<crate::quota::PoolQuota>,
}

impl Account {
    pub fn new(id: String, provider: String, secret: Option<SecretString>) -> Self {
        Self {
            quota_pool: Arc::new(crate::quota::PoolQuota::new(&provider, &id)),
            label: id.clone(),
            pool: id.clone(),
            id,
            provider,
            secret,
            settings: BTreeMap::new(),
            quota: Mutex::new(Vec::new()),
            health: Arc::default(),
            recent: Arc::default(),
        }
    }
}

/// How the host attaches a secret to an upstream request (from the manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStyle {
    Bearer,
    Header(http::HeaderName),
    Query(String),
    None,
}

impl AuthStyle {
    pub fn from_wit(a: &wit::AuthStyle) -> Result<Self, String> {
        Ok(match a {
            wit::AuthStyle::Bearer => Self::Bearer,
            wit::AuthStyle::Header(h) => Self::Header(
                http::HeaderName::try_from(h.as_str()).map_err(|_| format!("\"{h}\" is not a header name"))?,
            ),
            wit::AuthStyle::Query(q) if !q.is_empty() => Self::Query(q.clone()),
            wit::AuthStyle::Query(_) => return Err("empty query parameter name".into()),
            wit::AuthStyle::None => Self::None,
        })
    }
}

/// A token bucket per (component, bucket name), for guests that pace their own calls.
#[derive(Default)]
pub struct GuestBuckets {
    buckets: Mutex<HashMap<(String, String), (f64, Instant)>>,
}

impl GuestBuckets {
    /// Take `cost` units from a bucket refilling `per_minute` a minute (capacity: one minute's
    /// worth). `Err(ms)` is the wait until enough units are back.
    pub fn acquire(&self, component: &str, bucket: &str, per_minute: u32, cost: u32) -> Result<(), u64> {
        let now = Instant::now();
        let capacity = f64::from(per_minute.max(1));
        let rate_per_ms = capacity / 60_000.0;
        let mut map = self.buckets.lock();
        if map.len() > 10_000 {
            map.clear();
        }
        let entry = map.entry((component.to_owned(), bucket.to_owned())).or_insert((capacity, now));
        let elapsed_ms = now.duration_since(entry.1).as_secs_f64() * 1000.0;
        let tokens = (entry.0 + elapsed_ms * rate_per_ms).min(capacity);
        let cost = f64::from(cost);
        if cost > capacity {
            return Err(u64::MAX);
        }
        if tokens >= cost {
            *entry = (tokens - cost, now);
            Ok(())
        } else {
            *entry = (tokens, now);
            // truncation is fine: a wait in whole milliseconds, rounded up
            #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let wait = ((cost - tokens) / rate_per_ms).ceil() as u64;
            Err(wait)
        }
    }
}

/// What the host functions of one provider need, shared by all its calls.
pub struct GuestIo {
    pub provider_id: String,
    pub component: String,
    pub allowed: AllowedHosts,
    pub auth: AuthStyle,
    pub http: UpstreamClient,
    pub buckets: Arc<GuestBuckets>,
    /// every credential the gateway holds: scrubbed from whatever the guest reads back
    pub secrets: Arc<crate::accounts::SecretSet>,
}

/// The CPU clock of the call in progress.
#[derive(Debug)]
pub struct CallClock {
    started: Instant,
    in_host: Duration,
    pub budget: Duration,
    pub exceeded: bool,
}

impl CallClock {
    pub fn begin(&mut self) {
        self.started = Instant::now();
        self.in_host = Duration::ZERO;
        self.exceeded = false;
    }

    /// Time spent in the guest itself (wall time minus time in host calls).
    pub fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.in_host)
    }

    pub fn add_host_time(&mut self, d: Duration) {
        self.in_host += d;
    }
}

/// Memory and table limits of one store; remembers whether a limit was hit.
#[derive(Debug)]
pub struct Limits {
    pub max_memory: usize,
    pub max_table_elements: usize,
    pub hit: Option<String>,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            let msg =
                format!("guest tried to grow its memory to {desired} bytes; the limit is {} bytes", self.max_memory);
            self.hit = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            let msg =
                format!("guest tried to grow a table to {desired} elements; the limit is {}", self.max_table_elements);
            self.hit = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        Ok(true)
    }
}

/// Store data of one guest instance. An instance serves one request at a time; between
/// requests it may be reused ([`GuestState::rebind`]).
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: Limits,
    pub clock: CallClock,
    /// host-function context; `None` for policies
    pub io: Option<Arc<GuestIo>>,
    /// accounts this instance may name, by handle (index)
    pub accounts: Vec<Arc<Account>>,
    /// set when the guest asked for something its manifest does not allow
    pub denied: Option<String>,
    /// policies: the `messages` JSON of the request being ranked (the `request` import)
    pub request_messages: Option<bytes::Bytes>,
    output: GuestOutput,
}

impl GuestState {
    pub fn new(io: Option<Arc<GuestIo>>, accounts: Vec<Arc<Account>>, max_memory: usize, cpu_budget: Duration) -> Self {
        let output = GuestOutput::default();
        // no preopened directories, no environment, no arguments, no sockets
        let wasi = WasiCtxBuilder::new()
            .stderr(output.clone())
            .stdout(output.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limits: Limits { max_memory, max_table_elements: 100_000, hit: None },
            clock: CallClock { started: Instant::now(), in_host: Duration::ZERO, budget: cpu_budget, exceeded: false },
            io,
            accounts,
            denied: None,
            request_messages: None,
            output,
        }
    }

    /// Point a reused instance at its next request.
    pub fn rebind(&mut self, io: Option<Arc<GuestIo>>, accounts: Vec<Arc<Account>>) {
        self.io = io;
        self.accounts = accounts;
        self.denied = None;
        self.output.clear();
    }

    pub fn account(&self, handle: u32) -> Option<&Arc<Account>> {
        self.accounts.get(usize::try_from(handle).ok()?)
    }

    /// What the guest wrote to stdout/stderr (e.g. a panic message), trimmed.
    pub fn output(&self) -> String {
        let text = self.output.take();
        let text = text.trim();
        let start = text.len().saturating_sub(1000);
        let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text[start..].to_owned()
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_and_report_the_wait() {
        let b = GuestBuckets::default();
        assert!(b.acquire("c", "poll", 2, 1).is_ok());
        assert!(b.acquire("c", "poll", 2, 1).is_ok());
        let wait = b.acquire("c", "poll", 2, 1).unwrap_err();
        assert!((29_000..=30_001).contains(&wait), "{wait}");
        // other buckets and components are independent
        assert!(b.acquire("c", "other", 2, 1).is_ok());
        assert!(b.acquire("d", "poll", 2, 1).is_ok());
        assert_eq!(b.acquire("c", "big", 2, 3), Err(u64::MAX));
    }

    #[test]
    fn memory_limit_is_enforced_and_remembered() {
        use wasmtime::ResourceLimiter;
        let mut l = Limits { max_memory: 1 << 20, max_table_elements: 10, hit: None };
        assert!(l.memory_growing(0, 1 << 19, None).unwrap());
        assert!(l.memory_growing(0, 2 << 20, None).is_err());
        assert!(l.hit.as_deref().unwrap().contains("limit"));
    }
}
