//! The exact response cache's store: responses kept by the hash of the request that produced
//! them (the key is made by [`crate::pipeline::cache`]), in this process ([`memory`], bounded in
//! bytes and time) or in Redis ([`redis`], shared by every gateway on it, entries expiring by
//! themselves). A leaf: it knows bytes, token counts and configuration, nothing of the pipeline.
//!
//! A store that fails (Redis away) never fails a request: a read is a miss, a write is skipped.

pub mod entry;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use entry::{Entry, Stored};

use http::{HeaderMap, header};

use crate::config::{CacheBackend, Config};

/// The request's `Cache-Control` directives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_cache: bool,
    pub no_store: bool,
}

impl Directives {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut d = Self::default();
        for v in headers.get_all(header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()) {
            for token in v.split(',').map(|t| t.trim().to_ascii_lowercase()) {
                match token.as_str() {
                    "no-cache" => d.no_cache = true,
                    "no-store" => d.no_store = true,
                    _ => {}
                }
            }
        }
        d
    }
}

/// Where responses are kept.
enum Backend {
    Memory(memory::Memory),
    Redis(Arc<redis::RedisStore>),
}

/// The running gateway's response cache.
pub struct ResponseCache {
    backend: Backend,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache").field("backend", &self.backend_name()).finish()
    }
}

impl ResponseCache {
    /// The store `[cache]` names (read once, at start). A Redis backend without a URL, or with
    /// a bad one, falls back to memory, loudly.
    pub fn start(config: &Config) -> Self {
        let c = &config.cache;
        let backend = match c.backend {
            CacheBackend::Memory => {
                Backend::Memory(memory::Memory::new(c.max_bytes, Duration::from_secs(c.ttl_seconds)))
            }
            CacheBackend::Redis => match config.quota.effective_redis_url().map(|u| redis::RedisStore::start(&u)) {
                Some(Ok(r)) => Backend::Redis(r),
                Some(Err(e)) => {
                    tracing::error!("[cache] backend = \"redis\": {e}; caching in this process instead");
                    Backend::Memory(memory::Memory::new(c.max_bytes, Duration::from_secs(c.ttl_seconds)))
                }
                None => {
                    if c.enabled {
                        tracing::error!(
                            "[cache] backend = \"redis\" needs [quota] redis_url or FREEWAY_REDIS_URL; caching in this process instead"
                        );
                    }
                    Backend::Memory(memory::Memory::new(c.max_bytes, Duration::from_secs(c.ttl_seconds)))
                }
            },
        };
        Self { backend }
    }

    /// An in-memory cache (tests, benchmarks).
    pub fn in_memory(max_bytes: u64, ttl: Duration) -> Self {
        Self { backend: Backend::Memory(memory::Memory::new(max_bytes, ttl)) }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// The response stored under `key`, if any (a store that fails: none).
    pub async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        match &self.backend {
            Backend::Memory(m) => m.get(key).await,
            Backend::Redis(r) => r.get(key).await.map(Arc::new),
        }
    }

    /// Keep `entry` under `key` for `ttl` (the memory backend's TTL is the one it was built
    /// with).
    pub async fn put(&self, key: String, entry: Entry, ttl: Duration) {
        match &self.backend {
            Backend::Memory(m) => m.put(key, entry).await,
            Backend::Redis(r) => r.put(&key, &entry, ttl).await,
        }
    }

    /// Remove every entry, or those `model` answered or was asked as; how many went.
    pub async fn purge(&self, model: Option<&str>) -> Result<u64, String> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.purge(model).await),
            Backend::Redis(r) => r.purge(model).await,
        }
    }
}
