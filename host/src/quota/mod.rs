//! The quota ledger: what every quota pool has left, on every dimension its provider limits
//! (requests and tokens per minute, hour, day, month), with the provider's window semantics.
//!
//! - limits come from the configuration and the catalog ([`spec::QuotaPlan`]) and are corrected
//!   live by what providers report (`parse-limits` quota updates, [`book::Observed`])
//! - before a request is sent, its estimated cost is **reserved** in the candidate's pool; a
//!   candidate whose reservation would break any limit is skipped before sending, and the
//!   earliest time it would fit becomes the client's `Retry-After` when nothing fits
//! - after the response the reservation is **settled** with the true usage
//! - counters are kept in memory and written to a state file (local mode), or live in Redis
//!   when several gateways share the accounts ([`remote`]); if Redis goes away the local
//!   counters carry on and the gap is pushed back when it returns

pub mod book;
pub mod persist;
pub mod remote;
pub mod spec;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

pub use book::{Book, Headroom, Observed, Taken};
pub use spec::{DailyReset, Dim, LimitSpec, QuotaPlan, ScopedLimits, Window};

/// What a request costs (or is estimated to cost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A candidate that cannot take the request now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// when it would fit (Unix ms); `None` = never (the request is larger than a limit)
    pub until_ms: Option<u64>,
    /// e.g. `RPD 50/50, resets 00:00 UTC`
    pub reason: String,
}

impl Blocked {
    /// How long from `now_ms` until it fits.
    pub fn wait(&self, now_ms: u64) -> Option<Duration> {
        self.until_ms.map(|t| Duration::from_millis(t.saturating_sub(now_ms)))
    }
}

pub use freeway_core::clock::now_ms;

/// The counters of one quota pool: one book for the pool, or one per model when its limits are
/// per model. Shared by every account (key) of the pool.
#[derive(Debug)]
pub struct PoolQuota {
    pub provider: String,
    pub pool: String,
    books: Mutex<HashMap<String, Book>>,
}

/// The book of models whose limits are not per model.
const POOL_WIDE: &str = "*";

impl PoolQuota {
    pub fn new(provider: &str, pool: &str) -> Self {
        Self { provider: provider.to_owned(), pool: pool.to_owned(), books: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn scope<'a>(limits: &ScopedLimits, model: &'a str) -> &'a str {
        if limits.per_model { model } else { POOL_WIDE }
    }

    /// Run `f` on the book that counts `model`, brought up to date.
    fn with_book<R>(&self, plan: &QuotaPlan, model: &str, now: u64, f: impl FnOnce(&mut Book) -> R) -> R {
        let limits = plan.for_model(model);
        let scope = Self::scope(limits, model);
        let mut books = self.books.lock();
        let book = match books.get_mut(scope) {
            Some(b) => b,
            None => books.entry(scope.to_owned()).or_default(),
        };
        book.prepare(&limits.specs, plan, now);
        f(book)
    }

    /// Headroom on every dimension with a limit, for routing and explanations.
    pub fn headroom(&self, plan: &QuotaPlan, model: &str, now: u64) -> Vec<Headroom> {
        self.with_book(plan, model, now, |b| b.headroom(now))
    }

    /// Every book of the pool with a limit, with its headroom: the pool-wide one (`*`) and the
    /// per-model ones that have counted something, in scope order (for the status view).
    pub fn books(&self, plan: &QuotaPlan, now: u64) -> Vec<(String, Vec<Headroom>)> {
        let mut books = self.books.lock();
        if !plan.default.per_model && !plan.default.specs.is_empty() && !books.contains_key(POOL_WIDE) {
            books.insert(POOL_WIDE.to_owned(), Book::default());
        }
        let mut out: Vec<(String, Vec<Headroom>)> = books
            .iter_mut()
            .filter_map(|(scope, book)| {
                let limits = if scope == POOL_WIDE { &plan.default } else { plan.for_model(scope) };
                book.prepare(&limits.specs, plan, now);
                let h = book.headroom(now);
                (!h.is_empty()).then(|| (scope.clone(), h))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Whether `cost` would fit now (nothing is taken).
    pub fn check(&self, plan: &QuotaPlan, model: &str, cost: &Cost, now: u64) -> Result<(), Blocked> {
        self.with_book(plan, model, now, |b| b.check(cost, plan, now))
    }

    /// The book's scope and its counters as Redis is asked to check and take `cost`.
    fn remote_args(&self, plan: &QuotaPlan, model: &str, cost: &Cost, now: u64) -> (String, Vec<book::CounterArg>) {
        let scope = Self::scope(plan.for_model(model), model).to_owned();
        let args = self.with_book(plan, model, now, |b| b.remote_args(cost, plan, now));
        (scope, args)
    }

    fn snapshot(&self) -> HashMap<String, Book> {
        self.books.lock().iter().filter(|(_, b)| !b.is_idle()).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// A cost taken from a pool, to be settled with the real usage. It cannot leak: dropped without
/// being settled (a request cancelled at any await point, a panic), it settles itself — given
/// back if the request never reached the provider, else charged as one request with its prompt
/// (what the provider counts for a request cut short).
pub struct Reservation {
    ledger: Arc<Ledger>,
    pool: Arc<PoolQuota>,
    plan: Arc<QuotaPlan>,
    model: String,
    rid: u64,
    taken: Vec<Taken>,
    estimate: Cost,
    /// also taken in Redis
    remote: bool,
    /// the request was sent to the provider
    sent: bool,
    settled: bool,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("model", &self.model)
            .field("rid", &self.rid)
            .field("estimate", &self.estimate)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    pub fn estimate(&self) -> Cost {
        self.estimate
    }

    /// The request is on its way to the provider: from now on it counts even if cut short.
    pub fn mark_sent(&mut self) {
        self.sent = true;
    }

    /// Replace the estimate with the real cost.
    pub fn settle(mut self, actual: Cost) {
        self.apply(&actual);
    }

    /// Give the reservation back: the request never reached the provider.
    pub fn release(self) {
        self.settle(Cost::default());
    }

    fn apply(&mut self, actual: &Cost) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let now = now_ms();
        self.pool.with_book(&self.plan, &self.model, now, |b| b.settle(self.rid, &self.taken, actual));
        self.ledger.dirty.store(true, Ordering::Relaxed);
        if self.remote
            && let Some(remote) = &self.ledger.remote
        {
            remote.settle(&self.pool, &self.plan, &self.model, self.rid, &self.taken, actual);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let cost = if self.sent {
            Cost { requests: 1, input_tokens: self.estimate.input_tokens, output_tokens: 0 }
        } else {
            Cost::default()
        };
        self.apply(&cost);
    }
}

/// Every pool's counters.
pub struct Ledger {
    pools: Mutex<HashMap<(String, String), Arc<PoolQuota>>>,
    next_rid: AtomicU64,
    dirty: AtomicBool,
    state_file: Option<PathBuf>,
    remote: Option<Arc<remote::Remote>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("state_file", &self.state_file).finish_non_exhaustive()
    }
}

impl Ledger {
    /// A ledger kept in memory only (tests, CLI views).
    pub fn in_memory() -> Arc<Self> {
        Arc::new(Self::new(None, None))
    }

    fn new(state_file: Option<PathBuf>, remote: Option<Arc<remote::Remote>>) -> Self {
        Self {
            pools: Mutex::new(HashMap::new()),
            next_rid: AtomicU64::new(1),
            dirty: AtomicBool::new(false),
            state_file,
            remote,
        }
    }

    /// The ledger of a running gateway: counters restored from `state_file`, saved back there
    /// every few seconds; in Redis too when `redis_url` is set.
    pub async fn start(state_file: Option<PathBuf>, redis_url: Option<String>) -> Arc<Self> {
        let remote = match redis_url {
            Some(url) => match remote::Remote::start(&url).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!("{e}: quota limits are counted by this process alone");
                    None
                }
            },
            None => None,
        };
        let ledger = Arc::new(Self::new(state_file, remote));
        if let Some(path) = &ledger.state_file {
            match persist::load(path) {
                Ok(saved) => ledger.restore(saved),
                Err(e) => tracing::warn!("quota state {} not restored: {e}", path.display()),
            }
            let weak = Arc::downgrade(&ledger);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(persist::SAVE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(ledger) = weak.upgrade() else { return };
                    ledger.save().await;
                }
            });
        }
        ledger
    }

    /// The shared counters of `provider`'s pool `pool`.
    pub fn pool(&self, provider: &str, pool: &str) -> Arc<PoolQuota> {
        let mut pools = self.pools.lock();
        pools
            .entry((provider.to_owned(), pool.to_owned()))
            .or_insert_with(|| Arc::new(PoolQuota::new(provider, pool)))
            .clone()
    }

    pub fn remote(&self) -> Option<&Arc<remote::Remote>> {
        self.remote.as_ref()
    }

    /// Reserve `cost` in `pool` for `model`: `Ok(None)` when nothing limits it (nothing to
    /// settle), `Err` when some limit would break, with when it would fit.
    pub async fn reserve(
        self: &Arc<Self>,
        pool: &Arc<PoolQuota>,
        plan: &Arc<QuotaPlan>,
        model: &str,
        cost: Cost,
    ) -> Result<Option<Reservation>, Blocked> {
        let now = now_ms();
        let rid = self.next_rid.fetch_add(1, Ordering::Relaxed);
        if let Some(remote) = self.remote.as_ref().filter(|r| r.is_up()) {
            match remote.reserve(pool, plan, model, &cost, rid).await {
                Ok(taken) => {
                    // mirrored locally so that a Redis outage starts from what was known
                    let local = pool.with_book(plan, model, now, |b| b.take(&cost, rid, now));
                    let taken = if taken.is_empty() { local } else { taken };
                    return Ok((!taken.is_empty()).then(|| Reservation {
                        pool: pool.clone(),
                        plan: plan.clone(),
                        model: model.to_owned(),
                        rid,
                        taken,
                        estimate: cost,
                        remote: true,
                        ledger: self.clone(),
                        sent: false,
                        settled: false,
                    }));
                }
                Err(remote::Failure::Blocked(b)) => return Err(b),
                Err(remote::Failure::Down) => {}
            }
        }
        let taken = pool.with_book(plan, model, now, |b| {
            b.check(&cost, plan, now)?;
            Ok(b.take(&cost, rid, now))
        })?;
        if taken.is_empty() {
            return Ok(None);
        }
        self.dirty.store(true, Ordering::Relaxed);
        if let Some(remote) = &self.remote {
            remote.note_offline(pool, plan, model, &cost, rid, now);
        }
        Ok(Some(Reservation {
            pool: pool.clone(),
            plan: plan.clone(),
            model: model.to_owned(),
            rid,
            taken,
            estimate: cost,
            remote: false,
            ledger: self.clone(),
            sent: false,
            settled: false,
        }))
    }

    /// A provider rate-limited `pool`: with Redis, every gateway rests it too (locally the
    /// accounts' health does).
    pub fn cool_down(&self, pool: &Arc<PoolQuota>, plan: &Arc<QuotaPlan>, model: &str, rest: Duration, reason: &str) {
        if let Some(remote) = &self.remote {
            remote.cool_down(pool, plan, model, rest, reason);
        }
    }

    /// Replace a reservation's estimate with the real cost.
    pub fn settle(&self, r: Reservation, actual: Cost) {
        r.settle(actual);
    }

    /// Give a reservation back: the request never reached the provider.
    pub fn release(&self, r: Reservation) {
        r.release();
    }

    /// What the provider said about `pool`'s quota for `model`.
    pub fn observe(&self, pool: &Arc<PoolQuota>, plan: &Arc<QuotaPlan>, model: &str, updates: &[Observed]) {
        // clamped once here, so Redis is told the same figures as the local book
        let updates: Vec<Observed> = updates.iter().map(Observed::clamped).collect();
        if updates.is_empty() {
            return;
        }
        let now = now_ms();
        pool.with_book(plan, model, now, |b| {
            for o in &updates {
                b.observe(o, plan, now);
            }
        });
        self.dirty.store(true, Ordering::Relaxed);
        if let Some(remote) = &self.remote {
            remote.observe(pool, plan, model, &updates);
        }
    }

    /// Headroom of `pool` for `model`, as this process counts it (with Redis, every
    /// reservation this process made plus what providers reported; the authoritative check is
    /// the reservation itself).
    pub fn headroom(&self, pool: &Arc<PoolQuota>, plan: &Arc<QuotaPlan>, model: &str) -> Vec<Headroom> {
        pool.headroom(plan, model, now_ms())
    }

    fn restore(&self, saved: persist::Saved) {
        let mut pools = self.pools.lock();
        for p in saved.pools {
            let pool = pools
                .entry((p.provider.clone(), p.pool.clone()))
                .or_insert_with(|| Arc::new(PoolQuota::new(&p.provider, &p.pool)))
                .clone();
            pool.books.lock().extend(p.books);
        }
        let max_rid = saved.next_rid.max(1);
        self.next_rid.fetch_max(max_rid, Ordering::Relaxed);
    }

    /// Write the counters to the state file if they changed (off the request path).
    pub async fn save(&self) {
        let Some(path) = self.state_file.clone() else { return };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let pools: Vec<Arc<PoolQuota>> = self.pools.lock().values().cloned().collect();
        let saved = persist::Saved {
            next_rid: self.next_rid.load(Ordering::Relaxed),
            pools: pools
                .iter()
                .map(|p| persist::SavedPool { provider: p.provider.clone(), pool: p.pool.clone(), books: p.snapshot() })
                .filter(|p| !p.books.is_empty())
                .collect(),
        };
        let result = tokio::task::spawn_blocking(move || persist::store(&path, &saved)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.dirty.store(true, Ordering::Relaxed);
                tracing::warn!("quota state not saved: {e}");
            }
            Err(e) => tracing::warn!("quota state not saved: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rpm: u64) -> Arc<QuotaPlan> {
        Arc::new(QuotaPlan {
            default: ScopedLimits {
                per_model: false,
                specs: vec![LimitSpec { dim: Dim::Requests, window: Window::Minute, limit: rpm }],
            },
            ..QuotaPlan::default()
        })
    }

    #[tokio::test]
    async fn keys_of_one_pool_share_its_counters() {
        let ledger = Ledger::in_memory();
        let plan = plan(2);
        let a = ledger.pool("p", "acct");
        let b = ledger.pool("p", "acct");
        assert!(Arc::ptr_eq(&a, &b));
        let one = Cost { requests: 1, ..Cost::default() };
        // held: a reservation dropped unsettled gives itself back
        let ra = ledger.reserve(&a, &plan, "m", one).await.unwrap();
        let rb = ledger.reserve(&b, &plan, "m", one).await.unwrap();
        assert!(ra.is_some() && rb.is_some());
        let blocked = ledger.reserve(&a, &plan, "m", one).await.unwrap_err();
        assert!(blocked.reason.starts_with("RPM 2/2"));
        // another pool is not affected
        let other = ledger.pool("p", "other");
        assert!(ledger.reserve(&other, &plan, "m", one).await.is_ok());
    }

    #[tokio::test]
    async fn books_show_the_pool_wide_limits_before_any_use_and_reservations_count() {
        let ledger = Ledger::in_memory();
        let plan = plan(5);
        let pool = ledger.pool("p", "acct");
        let now = now_ms();
        let fresh = pool.books(&plan, now);
        assert_eq!(fresh.len(), 1);
        assert_eq!((fresh[0].0.as_str(), fresh[0].1[0].used, fresh[0].1[0].limit), ("*", 0, 5));
        let one = Cost { requests: 1, ..Cost::default() };
        let held = ledger.reserve(&pool, &plan, "m", one).await.unwrap();
        let books = pool.books(&plan, now_ms());
        assert_eq!(books[0].1[0].used, 1, "a reservation in flight is counted");
        assert!(!books[0].1[0].learned);
        assert!(books[0].1[0].reset_in_ms > 0 && books[0].1[0].reset_in_ms <= 61_000 + book::ROLLING_MARGIN_MS);
        drop(held);
        assert!(pool.books(&QuotaPlan::default(), now_ms()).is_empty(), "no limit, no book");
    }

    #[tokio::test]
    async fn nothing_is_reserved_where_no_limit_is_known() {
        let ledger = Ledger::in_memory();
        let pool = ledger.pool("p", "a");
        let r = ledger.reserve(&pool, &Arc::new(QuotaPlan::default()), "m", Cost::default()).await.unwrap();
        assert!(r.is_none());
    }

    #[tokio::test]
    async fn a_released_reservation_gives_its_tokens_back() {
        let ledger = Ledger::in_memory();
        let plan = Arc::new(QuotaPlan {
            default: ScopedLimits {
                per_model: true,
                specs: vec![LimitSpec { dim: Dim::Tokens, window: Window::Minute, limit: 1000 }],
            },
            ..QuotaPlan::default()
        });
        let pool = ledger.pool("p", "a");
        let cost = Cost { requests: 1, input_tokens: 600, output_tokens: 100 };
        let r = ledger.reserve(&pool, &plan, "m1", cost).await.unwrap().unwrap();
        assert!(ledger.reserve(&pool, &plan, "m1", cost).await.is_err());
        // per-model limits: another model has its own counter
        assert!(ledger.reserve(&pool, &plan, "m2", cost).await.is_ok());
        ledger.release(r);
        assert!(ledger.reserve(&pool, &plan, "m1", cost).await.is_ok());
    }

    #[tokio::test]
    async fn counters_survive_a_restart_through_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quota.json");
        let plan = plan(2);
        let one = Cost { requests: 1, ..Cost::default() };
        // held past the restart: a reservation dropped unsettled gives itself back
        let mut held = Vec::new();
        {
            let ledger = Ledger::start(Some(path.clone()), None).await;
            let pool = ledger.pool("p", "a");
            held.push(ledger.reserve(&pool, &plan, "m", one).await.unwrap());
            held.push(ledger.reserve(&pool, &plan, "m", one).await.unwrap());
            ledger.save().await;
        }
        let ledger = Ledger::start(Some(path), None).await;
        let pool = ledger.pool("p", "a");
        assert!(ledger.reserve(&pool, &plan, "m", one).await.is_err(), "the two requests still count");
        drop(held);
    }

    #[tokio::test]
    async fn a_reservation_dropped_unsettled_is_given_back_or_charged_as_sent() {
        let ledger = Ledger::in_memory();
        let plan = plan(2);
        let pool = ledger.pool("p", "acct");
        let one = Cost { requests: 1, ..Cost::default() };
        for _ in 0..5 {
            // never sent: given back, so the limit of 2 is never reached
            drop(ledger.reserve(&pool, &plan, "m", one).await.unwrap());
        }
        let mut sent = ledger.reserve(&pool, &plan, "m", one).await.unwrap().unwrap();
        sent.mark_sent();
        drop(sent);
        let _held = ledger.reserve(&pool, &plan, "m", one).await.unwrap();
        assert!(ledger.reserve(&pool, &plan, "m", one).await.is_err(), "the sent one and the held one count: 2 of 2");
    }
}
