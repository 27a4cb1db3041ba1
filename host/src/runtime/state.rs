//! What a guest's store holds: the WASI context (no files, no network, no environment), memory
//! limits, the CPU clock for the current call, the accounts this request may use (by handle),
//! and what the guest reported back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::hosts::AllowedHosts;
use super::output::GuestOutput;
use crate::accounts::Account;
use crate::bindings::wit;
pub use crate::upstream::AuthStyle;
use crate::upstream::UpstreamClient;

/// From the manifest's WIT form (the type lives with the upstream client that applies it).
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

/// The CPU clock of the call in progress: time spent running guest code, in slices. A slice
/// ends at every epoch tick (when the guest yields to other tasks) and at every host call; the
/// time a yielded guest waits in the runtime's queue, and the time spent in host calls, is not
/// counted. (Time blocked in a WASI call, a sleep say, is; the wall-clock deadline bounds the
/// call as a whole.)
#[derive(Debug)]
pub struct CallClock {
    /// guest time of the slices that ended
    used: Duration,
    /// when the running slice began, in nanoseconds since `base` ([`NOT_RUNNING`]: in a host
    /// call); shared with the future that resumes a yielded guest
    slice: Arc<AtomicU64>,
    base: Instant,
    pub budget: Duration,
    pub exceeded: bool,
}

const NOT_RUNNING: u64 = u64::MAX;

impl CallClock {
    pub fn new(budget: Duration) -> Self {
        Self { used: Duration::ZERO, slice: Arc::new(AtomicU64::new(0)), base: Instant::now(), budget, exceeded: false }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(NOT_RUNNING - 1)
    }

    pub fn begin(&mut self) {
        self.used = Duration::ZERO;
        self.exceeded = false;
        self.slice.store(self.now(), Ordering::Relaxed);
    }

    /// End the running slice, adding it to the time used.
    fn close_slice(&mut self) {
        let start = self.slice.swap(NOT_RUNNING, Ordering::Relaxed);
        if start != NOT_RUNNING {
            self.used += Duration::from_nanos(self.now().saturating_sub(start));
        }
    }

    /// Time spent in the guest itself so far.
    pub fn guest_time(&self) -> Duration {
        let start = self.slice.load(Ordering::Relaxed);
        if start == NOT_RUNNING {
            self.used
        } else {
            self.used + Duration::from_nanos(self.now().saturating_sub(start))
        }
    }

    /// The guest calls the host: its slice ends.
    pub fn enter_host(&mut self) {
        self.close_slice();
    }

    /// Back from a host call: a new slice begins.
    pub fn leave_host(&mut self) {
        self.slice.store(self.now(), Ordering::Relaxed);
    }

    /// At an epoch tick: close the slice and say whether the budget is spent. Otherwise the
    /// returned future yields to other tasks and starts the next slice when the guest resumes.
    pub fn tick(&mut self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        self.close_slice();
        if self.used > self.budget {
            self.exceeded = true;
            return None;
        }
        let slice = self.slice.clone();
        let base = self.base;
        Some(async move {
            tokio::task::yield_now().await;
            slice.store(u64::try_from(base.elapsed().as_nanos()).unwrap_or(NOT_RUNNING - 1), Ordering::Relaxed);
        })
    }
}

/// Memory and table limits of one store, for all its memories and tables together (a component
/// with many linear memories gets no more than one with a single memory); remembers whether a
/// limit was hit.
#[derive(Debug)]
pub struct Limits {
    pub max_memory: usize,
    pub max_table_elements: usize,
    /// bytes of every linear memory of the store, together
    memory_total: usize,
    table_total: usize,
    pub hit: Option<String>,
}

impl Limits {
    pub fn new(max_memory: usize, max_table_elements: usize) -> Self {
        Self { max_memory, max_table_elements, memory_total: 0, table_total: 0, hit: None }
    }
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_total.saturating_add(desired.saturating_sub(current));
        if total > self.max_memory {
            let msg = format!(
                "guest tried to grow its memories to {total} bytes in all; the limit is {} bytes",
                self.max_memory
            );
            self.hit = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        self.memory_total = total;
        Ok(true)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.table_total.saturating_add(desired.saturating_sub(current));
        if total > self.max_table_elements {
            let msg = format!(
                "guest tried to grow its tables to {total} elements in all; the limit is {}",
                self.max_table_elements
            );
            self.hit = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        self.table_total = total;
        Ok(true)
    }
}

/// What one guest call may do through `http.send`.
#[derive(Debug, Clone, Copy)]
pub struct HttpBounds {
    pub calls: u32,
    pub bytes: usize,
}

/// What the current guest call has done through `http.send`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpUse {
    pub calls: u32,
    pub bytes: usize,
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
    pub http_bounds: HttpBounds,
    /// `http.send` use of the current call
    pub http: HttpUse,
    /// log lines written by the current call
    pub log_lines: u32,
    output: GuestOutput,
}

impl GuestState {
    pub fn new(
        io: Option<Arc<GuestIo>>,
        accounts: Vec<Arc<Account>>,
        max_memory: usize,
        cpu_budget: Duration,
        http_bounds: HttpBounds,
    ) -> Self {
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
            limits: Limits::new(max_memory, 200_000),
            clock: CallClock::new(cpu_budget),
            io,
            accounts,
            denied: None,
            request_messages: None,
            http_bounds,
            http: HttpUse::default(),
            log_lines: 0,
            output,
        }
    }

    /// Start a guest call: its CPU clock, and its http and log allowances.
    pub fn begin_call(&mut self) {
        self.clock.begin();
        self.http = HttpUse::default();
        self.log_lines = 0;
        self.denied = None;
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
        let mut l = Limits::new(1 << 20, 10);
        assert!(l.memory_growing(0, 1 << 19, None).unwrap());
        assert!(l.memory_growing(0, 2 << 20, None).is_err());
        assert!(l.hit.as_deref().unwrap().contains("limit"));
    }

    #[test]
    fn the_memory_limit_holds_for_all_memories_together() {
        use wasmtime::ResourceLimiter;
        let mut l = Limits::new(32 << 20, 1000);
        // sixteen memories of 4 MiB: the first eight fit, the ninth does not
        for i in 0..8 {
            assert!(l.memory_growing(0, 4 << 20, None).unwrap(), "memory {i}");
        }
        assert!(l.memory_growing(0, 4 << 20, None).is_err());
        // growing one that exists counts only the growth
        let mut l = Limits::new(32 << 20, 1000);
        assert!(l.memory_growing(0, 16 << 20, None).unwrap());
        assert!(l.memory_growing(16 << 20, 32 << 20, None).unwrap());
        assert!(l.memory_growing(32 << 20, 33 << 20, None).is_err());
        // tables too
        assert!(l.table_growing(0, 600, None).unwrap());
        assert!(l.table_growing(0, 600, None).is_err());
    }

    #[tokio::test]
    async fn time_waiting_in_the_queue_after_a_yield_is_not_counted() {
        let mut c = CallClock::new(Duration::from_millis(50));
        c.begin();
        std::thread::sleep(Duration::from_millis(5));
        let resume = c.tick().expect("within budget");
        // the guest waits in the queue for 200 ms before it runs again
        std::thread::sleep(Duration::from_millis(200));
        resume.await;
        assert!(c.guest_time() < Duration::from_millis(50), "{:?}", c.guest_time());
        assert!(c.tick().is_some(), "still within its budget");
        // host calls are not counted either
        c.enter_host();
        std::thread::sleep(Duration::from_millis(100));
        c.leave_host();
        assert!(c.guest_time() < Duration::from_millis(50), "{:?}", c.guest_time());
        // running guest code is
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.tick().is_none());
        assert!(c.exceeded);
    }
}
