//! Accounting: one usage record per request, handed off without waiting (a full queue drops the
//! record and counts it); a background task commits batches to the store (SQLite or
//! PostgreSQL) and keeps running totals for `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::wire::types::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// the upstream failed (after fallbacks, or mid-stream)
    UpstreamError,
    /// the client went away before the end
    ClientGone,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::ClientGone => "client_gone",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub at: SystemTime,
    pub provider: String,
    pub model: String,
    pub account: String,
    pub usage: Option<Usage>,
    pub outcome: Outcome,
    pub stream: bool,
    pub attempts: u32,
    pub latency: Duration,
    pub first_byte: Option<Duration>,
}

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
    dropped: AtomicU64,
    /// records accepted into the queue
    queued: AtomicU64,
    recorded: AtomicU64,
    /// records committed to the store
    stored: AtomicU64,
    /// batches the store refused (the records stay counted in memory)
    store_failures: AtomicU64,
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

impl UsageSink {
    /// Start the background aggregator; with a store, every batch is also committed there.
    pub fn start(store: Option<crate::store::Store>, stats: Option<Arc<crate::routing::stats::Stats>>) -> Self {
        let (tx, mut rx) = mpsc::channel::<UsageRecord>(QUEUE);
        let shared = Arc::new(Shared::default());
        let agg = shared.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                // under load, let a batch fill for a moment: one commit per LINGER, not per record
                if batch.len() < BATCH {
                    tokio::time::sleep(LINGER).await;
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                }
                if let Some(store) = &store {
                    match store.insert_usage(&batch).await {
                        Ok(()) => {
                            agg.stored.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        }
                        Err(e) => {
                            agg.store_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!("usage records not stored ({} lost from the store): {e}", batch.len());
                        }
                    }
                }
                let mut totals = agg.totals.lock();
                for r in batch.drain(..) {
                    tracing::debug!(
                        provider = %r.provider, model = %r.model, account = %r.account, outcome = r.outcome.as_str(),
                        attempts = r.attempts, latency_ms = r.latency.as_millis() as u64,
                        prompt_tokens = r.usage.as_ref().map_or(0, |u| u.prompt_tokens),
                        completion_tokens = r.usage.as_ref().map_or(0, |u| u.completion_tokens),
                        "usage"
                    );
                    if let Some(stats) = stats.as_ref().filter(|_| r.outcome == Outcome::Ok) {
                        let tokens = r.usage.as_ref().map(|u| u.completion_tokens);
                        stats.finished(&r.provider, &r.model, r.latency, r.first_byte, tokens);
                    }
                    let t = totals.entry((r.provider, r.model, r.outcome)).or_default();
                    t.requests += 1;
                    if let Some(u) = r.usage {
                        t.prompt_tokens += u.prompt_tokens;
                        t.completion_tokens += u.completion_tokens;
                    }
                    agg.recorded.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
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

    /// Wait (at most `deadline`) until every queued record has been through the writer;
    /// false if some were still waiting.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let start = tokio::time::Instant::now();
        loop {
            if self.shared.recorded.load(Ordering::Relaxed) >= self.shared.queued.load(Ordering::Relaxed) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_are_aggregated_off_the_caller() {
        let sink = UsageSink::start(None, None);
        for outcome in [Outcome::Ok, Outcome::Ok, Outcome::UpstreamError] {
            sink.record(UsageRecord {
                at: SystemTime::now(),
                provider: "p".into(),
                model: "m".into(),
                account: "p#1".into(),
                usage: Some(Usage {
                    prompt_tokens: 3,
                    completion_tokens: 4,
                    total_tokens: 7,
                    extra: Default::default(),
                }),
                outcome,
                stream: false,
                attempts: 1,
                latency: Duration::from_millis(1),
                first_byte: None,
            });
        }
        assert!(sink.flush(Duration::from_secs(5)).await);
        assert_eq!(sink.recorded(), 3);
        let totals = sink.totals();
        let ok = totals.iter().find(|(k, _)| k.2 == Outcome::Ok).unwrap();
        assert_eq!(ok.1, Totals { requests: 2, prompt_tokens: 6, completion_tokens: 8 });
        assert_eq!(sink.dropped(), 0);
    }
}
