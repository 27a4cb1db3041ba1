//! Accounting: one usage record per request, handed off without waiting (a full queue drops the
//! record and counts it); a background writer commits batches to the store (SQLite or
//! PostgreSQL) and keeps running totals for `/metrics`.
//!
//! A batch the store refuses (busy, disk full, unreachable) stays in memory and is retried with
//! backoff; at most `QUEUE` records wait like that, older ones beyond it are dropped and counted.
//! The writer is supervised: if it panics, it is restarted on the same queue and backlog (the
//! records it held at that moment are dropped and counted).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::store::{Store, StoreError};
pub use crate::usage::Outcome;
use crate::usage::UsageRecord;

/// Running totals per (provider, model, outcome).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Default)]
struct Shared {
    totals: Mutex<BTreeMap<(String, String, Outcome), Totals>>,
    /// records dropped: the queue was full, the retry backlog overflowed, or the writer
    /// panicked while holding them
    dropped: AtomicU64,
    /// records accepted into the queue
    queued: AtomicU64,
    /// records aggregated into the totals
    recorded: AtomicU64,
    /// records taken from the queue and lost before they were aggregated (writer panics)
    abandoned: AtomicU64,
    /// records committed to the store
    stored: AtomicU64,
    /// commits the store refused (the records stay counted in memory and are retried)
    store_failures: AtomicU64,
    /// aggregated records waiting for their commit
    backlog: AtomicU64,
    /// times the writer was restarted after a panic
    writer_restarts: AtomicU64,
    /// wakes a writer waiting out its backoff (a flush wants the backlog committed now)
    retry_now: Notify,
    #[cfg(test)]
    hooks: TestHooks,
}

/// Test-only faults the writer obeys.
#[cfg(test)]
#[derive(Default)]
struct TestHooks {
    /// the next batch taken from the queue panics the writer
    panic_next_batch: std::sync::atomic::AtomicBool,
    /// this many more commits are refused as if the store were busy
    refuse_commits: AtomicU64,
}

/// Where the pipeline drops usage records.
#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<UsageRecord>,
    shared: Arc<Shared>,
}

const QUEUE: usize = 16_384;
/// Most records committed at once.
const BATCH: usize = 2048;
/// How long a batch may wait to fill: the most a record waits before it is durable.
const LINGER: Duration = Duration::from_millis(50);
/// First wait before a refused commit is tried again; doubled per failure up to `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What the writer works on. It lives outside the writer task, so a writer restarted after a
/// panic carries on with the same queue and the same backlog.
struct WriterState {
    rx: mpsc::Receiver<UsageRecord>,
    /// taken from the queue, not aggregated yet
    fresh: Vec<UsageRecord>,
    /// aggregated, waiting for their commit (oldest first)
    backlog: VecDeque<UsageRecord>,
    /// records at the front of `backlog` the commit in progress holds
    committing: usize,
}

/// The writer's fixed parts.
struct Writer {
    store: Option<Store>,
    stats: Option<Arc<crate::routing::stats::Stats>>,
    shared: Arc<Shared>,
    /// most records kept for a retry
    backlog_limit: usize,
}

/// Why the writer is waking up.
enum Wake {
    /// records arrived (or none will: the queue is closed and empty)
    Records { closed: bool },
    /// time to retry the backlog
    Retry,
}

impl Writer {
    /// Run until the queue is closed and drained. Only returns then (or panics).
    async fn run(&self, st: &mut WriterState) {
        let mut backoff = RETRY_FIRST;
        // set while the store refuses: when to try the backlog again
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            let wake = if !st.fresh.is_empty() {
                // left by a writer that stopped before aggregating them (cannot happen today)
                Wake::Records { closed: false }
            } else if let Some(at) = retry_at {
                tokio::select! {
                    n = st.rx.recv_many(&mut st.fresh, BATCH) => Wake::Records { closed: n == 0 },
                    () = tokio::time::sleep_until(at) => Wake::Retry,
                    () = self.shared.retry_now.notified() => Wake::Retry,
                }
            } else {
                let n = st.rx.recv_many(&mut st.fresh, BATCH).await;
                Wake::Records { closed: n == 0 }
            };
            let closed = matches!(wake, Wake::Records { closed: true });
            if !st.fresh.is_empty() {
                // under load, let a batch fill for a moment: one commit per LINGER, not per record
                if st.fresh.len() < BATCH {
                    tokio::time::sleep(LINGER).await;
                    while st.fresh.len() < BATCH {
                        match st.rx.try_recv() {
                            Ok(r) => st.fresh.push(r),
                            Err(_) => break,
                        }
                    }
                }
                #[cfg(test)]
                if self.shared.hooks.panic_next_batch.swap(false, Ordering::Relaxed) {
                    panic!("test hook: a usage batch panics the writer");
                }
                self.aggregate(&st.fresh);
                let n = st.fresh.len() as u64;
                if self.store.is_some() {
                    st.backlog.extend(st.fresh.drain(..));
                    self.bound_backlog(st);
                } else {
                    st.fresh.clear();
                }
                // the backlog first: a flush that sees these records through also sees them
                // waiting for their commit
                self.shared.backlog.store(st.backlog.len() as u64, Ordering::SeqCst);
                self.shared.recorded.fetch_add(n, Ordering::SeqCst);
            }
            // waiting out a backoff: new records only join the backlog
            let due = matches!(wake, Wake::Retry) || retry_at.is_none() || closed;
            if due && let Some(store) = &self.store {
                match self.commit(store, st).await {
                    Ok(()) => {
                        if retry_at.take().is_some() {
                            tracing::info!(
                                "usage store {} accepts writes again: the backlog is committed",
                                store.describe()
                            );
                        }
                        backoff = RETRY_FIRST;
                    }
                    Err(e) => {
                        self.shared.store_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            "usage records not stored: {e}; {} kept in memory, retrying in {} ms",
                            st.backlog.len(),
                            backoff.as_millis()
                        );
                        retry_at = Some(tokio::time::Instant::now() + backoff);
                        backoff = (backoff * 2).min(RETRY_MAX);
                    }
                }
            }
            self.shared.backlog.store(st.backlog.len() as u64, Ordering::SeqCst);
            if closed {
                if !st.backlog.is_empty() {
                    tracing::error!("usage writer stopping with {} records not stored", st.backlog.len());
                }
                return;
            }
        }
    }

    /// Commit the backlog, `BATCH` records per transaction, oldest first; stops at the first
    /// refusal (what was not committed stays in the backlog).
    async fn commit(&self, store: &Store, st: &mut WriterState) -> Result<(), StoreError> {
        while !st.backlog.is_empty() {
            let n = st.backlog.len().min(BATCH);
            st.committing = n;
            let result = match self.refused_by_test_hook(store) {
                Some(refused) => Err(refused),
                None => store.insert_usage(&st.backlog.make_contiguous()[..n]).await,
            };
            st.committing = 0;
            result?;
            st.backlog.drain(..n);
            self.shared.stored.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    #[cfg(test)]
    fn refused_by_test_hook(&self, store: &Store) -> Option<StoreError> {
        let refuse = &self.shared.hooks.refuse_commits;
        let left = refuse.load(Ordering::Relaxed);
        (left > 0).then(|| {
            refuse.store(left - 1, Ordering::Relaxed);
            StoreError {
                failure: crate::store::Failure::Busy,
                database: store.describe(),
                detail: "test hook: commit refused".into(),
            }
        })
    }

    #[cfg(not(test))]
    fn refused_by_test_hook(&self, _store: &Store) -> Option<StoreError> {
        None
    }

    /// Keep at most `backlog_limit` records waiting; the oldest beyond it are dropped.
    fn bound_backlog(&self, st: &mut WriterState) {
        let over = st.backlog.len().saturating_sub(self.backlog_limit);
        if over > 0 {
            st.backlog.drain(..over);
            self.shared.dropped.fetch_add(over as u64, Ordering::Relaxed);
            tracing::error!(
                "usage store still refusing writes: {over} usage records dropped (at most {} are kept for a retry)",
                self.backlog_limit
            );
        }
    }

    /// Running totals, live statistics and the debug log line of each record (the caller
    /// counts them as recorded).
    fn aggregate(&self, batch: &[UsageRecord]) {
        let mut totals = self.shared.totals.lock();
        for r in batch {
            tracing::debug!(
                provider = %r.provider, model = %r.model, account = %r.account, outcome = r.outcome.as_str(),
                attempts = r.attempts, latency_ms = r.latency.as_millis() as u64,
                prompt_tokens = r.usage.as_ref().map_or(0, |u| u.prompt_tokens),
                completion_tokens = r.usage.as_ref().map_or(0, |u| u.completion_tokens),
                "usage"
            );
            // a cache hit called no provider: it says nothing of one, and spent none of its tokens
            if r.cache_read {
                continue;
            }
            if let Some(stats) = self.stats.as_ref().filter(|_| r.outcome == Outcome::Ok) {
                let tokens = r.usage.as_ref().map(|u| u.completion_tokens);
                stats.finished(&r.provider, &r.model, r.latency, r.first_byte, tokens);
            }
            let t = totals.entry((r.provider.clone(), r.model.clone(), r.outcome)).or_default();
            t.requests += 1;
            if let Some(u) = &r.usage {
                t.prompt_tokens += u.prompt_tokens;
                t.completion_tokens += u.completion_tokens;
            }
        }
    }
}

/// Run the writer; restart it whenever it panics or ends while its queue is still open.
async fn supervise(writer: Arc<Writer>, state: Arc<tokio::sync::Mutex<WriterState>>) {
    loop {
        let task = {
            let (writer, state) = (writer.clone(), state.clone());
            tokio::spawn(async move {
                let mut st = state.lock_owned().await;
                writer.run(&mut st).await;
            })
        };
        let why = match task.await {
            Ok(()) => {
                let st = state.lock().await;
                if st.rx.is_closed() && st.rx.is_empty() {
                    return;
                }
                "it ended with its queue still open".to_owned()
            }
            // the runtime is shutting down
            Err(e) if e.is_cancelled() => return,
            Err(e) => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                format!("it panicked: {message}")
            }
        };
        // the records the writer held when it failed are dropped: one of them may be what made
        // it fail, and retrying it would fail the same way
        let mut st = state.lock().await;
        let fresh = st.fresh.len();
        st.fresh.clear();
        let committing = st.committing.min(st.backlog.len());
        st.backlog.drain(..committing);
        st.committing = 0;
        writer.shared.backlog.store(st.backlog.len() as u64, Ordering::SeqCst);
        drop(st);
        let lost = (fresh + committing) as u64;
        writer.shared.dropped.fetch_add(lost, Ordering::Relaxed);
        writer.shared.abandoned.fetch_add(fresh as u64, Ordering::Relaxed);
        writer.shared.writer_restarts.fetch_add(1, Ordering::Relaxed);
        tracing::error!("usage writer restarted: {why}; {lost} usage records it held were dropped");
    }
}

impl UsageSink {
    /// Start the background writer; with a store, every batch is also committed there.
    pub fn start(store: Option<Store>, stats: Option<Arc<crate::routing::stats::Stats>>) -> Self {
        Self::start_with(store, stats, QUEUE)
    }

    fn start_with(
        store: Option<Store>,
        stats: Option<Arc<crate::routing::stats::Stats>>,
        backlog_limit: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<UsageRecord>(QUEUE);
        let shared = Arc::new(Shared::default());
        let writer = Arc::new(Writer { store, stats, shared: shared.clone(), backlog_limit });
        let state = WriterState { rx, fresh: Vec::with_capacity(BATCH), backlog: VecDeque::new(), committing: 0 };
        tokio::spawn(supervise(writer, Arc::new(tokio::sync::Mutex::new(state))));
        Self { tx, shared }
    }

    /// Never waits: a full queue drops the record.
    pub fn record(&self, r: UsageRecord) {
        if self.tx.try_send(r).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared.queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wait (at most `deadline`) until every queued record has been through the writer and
    /// the store has taken every record waiting for a retry; false if some were still waiting.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let start = tokio::time::Instant::now();
        let s = &self.shared;
        // a writer waiting out a backoff tries again now
        s.retry_now.notify_one();
        loop {
            let through = s.recorded.load(Ordering::SeqCst) + s.abandoned.load(Ordering::SeqCst)
                >= s.queued.load(Ordering::SeqCst);
            if through && s.backlog.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if start.elapsed() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn totals(&self) -> Vec<((String, String, Outcome), Totals)> {
        self.shared.totals.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn recorded(&self) -> u64 {
        self.shared.recorded.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    pub fn stored(&self) -> u64 {
        self.shared.stored.load(Ordering::Relaxed)
    }

    pub fn store_failures(&self) -> u64 {
        self.shared.store_failures.load(Ordering::Relaxed)
    }

    /// Records waiting for a retry because the store refused them.
    pub fn backlog(&self) -> u64 {
        self.shared.backlog.load(Ordering::Relaxed)
    }

    /// Times the writer was restarted after a panic.
    pub fn writer_restarts(&self) -> u64 {
        self.shared.writer_restarts.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::types::Usage;
    use std::time::SystemTime;

    fn record(outcome: Outcome) -> UsageRecord {
        UsageRecord {
            at: SystemTime::now(),
            provider: "p".into(),
            model: "m".into(),
            account: "p#1".into(),
            usage: Some(Usage { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, extra: Default::default() }),
            outcome,
            stream: false,
            attempts: 1,
            latency: Duration::from_millis(1),
            first_byte: None,
            client: crate::principal::Principal::Anyone,
            error: None,
            policy: None,
            cache_read: false,
        }
    }

    async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
        Store::open(&format!("sqlite://{}", dir.path().join("usage.db").display())).await.unwrap()
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn records_are_aggregated_off_the_caller() {
        let sink = UsageSink::start(None, None);
        for outcome in [Outcome::Ok, Outcome::Ok, Outcome::UpstreamError] {
            sink.record(record(outcome));
        }
        assert!(sink.flush(Duration::from_secs(5)).await);
        assert_eq!(sink.recorded(), 3);
        let totals = sink.totals();
        let ok = totals.iter().find(|(k, _)| k.2 == Outcome::Ok).unwrap();
        assert_eq!(ok.1, Totals { requests: 2, prompt_tokens: 6, completion_tokens: 8 });
        assert_eq!(sink.dropped(), 0);
    }

    #[tokio::test]
    async fn a_batch_the_store_refuses_is_retried_and_committed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let sink = UsageSink::start(Some(store.clone()), None);
        sink.shared.hooks.refuse_commits.store(2, Ordering::Relaxed);
        for _ in 0..5 {
            sink.record(record(Outcome::Ok));
        }
        until("two refused commits", || sink.store_failures() == 2).await;
        assert!(sink.flush(Duration::from_secs(5)).await, "the backlog was committed on the third try");
        assert_eq!(store.usage_count().await.unwrap(), 5, "every record once: nothing lost, nothing doubled");
        assert_eq!((sink.stored(), sink.dropped(), sink.backlog()), (5, 0, 0));
        // the totals counted the records when they arrived, whatever the store said
        assert_eq!(sink.totals()[0].1.requests, 5);
    }

    #[tokio::test]
    async fn records_waiting_for_a_refusing_store_are_bounded_and_the_excess_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let sink = UsageSink::start_with(Some(store.clone()), None, 4);
        sink.shared.hooks.refuse_commits.store(u64::MAX, Ordering::Relaxed);
        for _ in 0..10 {
            sink.record(record(Outcome::Ok));
        }
        until("the writer to take all ten", || sink.recorded() == 10).await;
        assert_eq!((sink.backlog(), sink.dropped()), (4, 6));
        assert!(!sink.flush(Duration::from_millis(300)).await, "a refusing store is not flushed");
        sink.shared.hooks.refuse_commits.store(0, Ordering::Relaxed);
        assert!(sink.flush(Duration::from_secs(10)).await);
        assert_eq!(store.usage_count().await.unwrap(), 4);
    }

    #[tokio::test]
    async fn a_writer_that_panics_is_restarted_and_later_records_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let sink = UsageSink::start(Some(store.clone()), None);
        sink.shared.hooks.panic_next_batch.store(true, Ordering::Relaxed);
        for _ in 0..3 {
            sink.record(record(Outcome::Ok));
        }
        until("the writer's restart", || sink.writer_restarts() == 1).await;
        assert_eq!(sink.dropped(), 3, "the records the panicking batch held are counted as dropped");
        for _ in 0..4 {
            sink.record(record(Outcome::Ok));
        }
        assert!(sink.flush(Duration::from_secs(5)).await, "a flush is not stuck on the lost records");
        assert_eq!(store.usage_count().await.unwrap(), 4);
        assert_eq!(sink.stored(), 4);
    }
}
