//! The cache in this process: moka, bounded by the bytes its entries hold (`[cache] max_bytes`;
//! the least useful go first, TinyLFU) and by their age (`ttl_seconds`).

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use super::Entry;

pub struct Memory {
    cache: Cache<String, Arc<Entry>>,
}

impl Memory {
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Arc<Entry>| u32::try_from(k.len() + v.weight()).unwrap_or(u32::MAX))
            .time_to_live(ttl.max(Duration::from_secs(1)))
            .build();
        Self { cache }
    }

    pub async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.cache.get(key).await
    }

    pub async fn put(&self, key: String, entry: Entry) {
        self.cache.insert(key, Arc::new(entry)).await;
    }

    /// Remove every entry, or those tagged `model`; how many went.
    pub async fn purge(&self, model: Option<&str>) -> u64 {
        let doomed: Vec<Arc<String>> =
            self.cache.iter().filter(|(_, e)| model.is_none_or(|m| e.tagged(m))).map(|(k, _)| k).collect();
        for k in &doomed {
            self.cache.invalidate(k.as_str()).await;
        }
        doomed.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::Stored;
    use super::*;

    fn entry(model: &str, size: usize) -> Entry {
        Entry {
            stored: Stored::Json(Bytes::from(vec![b'x'; size])),
            provider: "p".into(),
            model: model.into(),
            usage: None,
            tags: vec![model.to_owned()],
        }
    }

    #[tokio::test]
    async fn purge_by_model_takes_only_that_model_s_entries() {
        let m = Memory::new(1 << 20, Duration::from_secs(60));
        m.put("a".into(), entry("one", 10)).await;
        m.put("b".into(), entry("two", 10)).await;
        m.put("c".into(), entry("one", 10)).await;
        assert_eq!(m.purge(Some("one")).await, 2);
        assert!(m.get("a").await.is_none() && m.get("c").await.is_none());
        assert!(m.get("b").await.is_some());
        assert_eq!(m.purge(None).await, 1);
        assert!(m.get("b").await.is_none());
    }

    #[tokio::test]
    async fn the_bytes_held_are_bounded() {
        let m = Memory::new(10_000, Duration::from_secs(60));
        for i in 0..100 {
            m.put(format!("k{i}"), entry("m", 1000)).await;
        }
        m.cache.run_pending_tasks().await;
        assert!(m.cache.weighted_size() <= 10_000, "{}", m.cache.weighted_size());
    }
}
