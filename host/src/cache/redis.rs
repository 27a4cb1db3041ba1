//! The cache in Redis, shared by every gateway on the same server: one string per entry,
//! `fwc:e:<key>`, written with `SET … EX ttl`; and per model name a set of the entries it tags,
//! `fwc:m:<model>`, so that purging a model is `SMEMBERS` + `UNLINK` (purging all is a `SCAN` of
//! `fwc:*`). Values larger than the entry bound are never written.
//!
//! Redis failing (down, slow past a short timeout) is a miss, or a write skipped: never a failed
//! request. It is logged at warn once per burst, and for a second after a failure the cache
//! is not asked at all, so a Redis that hangs costs requests at most one timeout a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Entry;

/// How long a cache call may take before it counts as a miss.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// At most one warning per this many ms while Redis keeps failing.
const WARN_EVERY_MS: u64 = 30_000;
/// After a failure, Redis is left alone this long (reads miss, writes are skipped).
const REST_MS: u64 = 1_000;
const PREFIX: &str = "fwc:";

pub struct RedisStore {
    conn: ConnectionManager,
    last_warning_ms: AtomicU64,
    /// Unix ms before which Redis is not asked (it just failed)
    resting_until_ms: AtomicU64,
}

fn entry_key(key: &str) -> String {
    format!("{PREFIX}e:{key}")
}

fn model_key(model: &str) -> String {
    format!("{PREFIX}m:{model}")
}

impl RedisStore {
    /// A lazy connection to `url` (a server not up yet is not an error: reads miss until it is).
    pub fn start(url: &str) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(url).map_err(|e| format!("Redis URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| format!("Redis: {e}"))?;
        tracing::info!("response cache shared through Redis");
        Ok(Arc::new(Self { conn, last_warning_ms: AtomicU64::new(0), resting_until_ms: AtomicU64::new(0) }))
    }

    fn resting(&self) -> bool {
        crate::clock::now_ms() < self.resting_until_ms.load(Ordering::Relaxed)
    }

    fn failed(&self, what: &str, e: &redis::RedisError) {
        let now = crate::clock::now_ms();
        self.resting_until_ms.store(now.saturating_add(REST_MS), Ordering::Relaxed);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_EVERY_MS
            && self.last_warning_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!("response cache: Redis {what} failed ({e}); serving without the cache meanwhile");
        }
    }

    pub async fn get(&self, key: &str) -> Option<Entry> {
        if self.resting() {
            return None;
        }
        let mut conn = self.conn.clone();
        let r: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("GET").arg(entry_key(key)).query_async(&mut conn).await;
        match r {
            Ok(bytes) => Entry::decode(&bytes?),
            Err(e) => {
                self.failed("read", &e);
                None
            }
        }
    }

    pub async fn put(&self, key: &str, entry: &Entry, ttl: Duration) {
        if self.resting() {
            return;
        }
        let secs = ttl.as_secs().max(1);
        let ek = entry_key(key);
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(&ek).arg(entry.encode()).arg("EX").arg(secs).ignore();
        for tag in &entry.tags {
            let mk = model_key(tag);
            pipe.cmd("SADD").arg(&mk).arg(&ek).ignore();
            // the index lives as long as its newest entry
            pipe.cmd("EXPIRE").arg(&mk).arg(secs).ignore();
        }
        let mut conn = self.conn.clone();
        let r: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        if let Err(e) = r {
            self.failed("write", &e);
        }
    }

    /// Remove every entry, or those tagged `model`; how many went.
    pub async fn purge(&self, model: Option<&str>) -> Result<u64, String> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = match model {
            Some(m) => {
                let mk = model_key(m);
                let mut members: Vec<String> =
                    redis::cmd("SMEMBERS").arg(&mk).query_async(&mut conn).await.map_err(|e| format!("Redis: {e}"))?;
                members.push(mk);
                members
            }
            None => {
                let mut out = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{PREFIX}*"))
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| format!("Redis: {e}"))?;
                    out.extend(batch);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                out
            }
        };
        let entries = keys.iter().filter(|k| k.starts_with(&format!("{PREFIX}e:"))).count() as u64;
        let mut removed: u64 = 0;
        for batch in keys.chunks(500) {
            let n: u64 =
                redis::cmd("UNLINK").arg(batch).query_async(&mut conn).await.map_err(|e| format!("Redis: {e}"))?;
            removed += n;
        }
        // entries already expired are not counted
        Ok(removed.min(entries))
    }
}
