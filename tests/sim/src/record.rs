//! What the simulator saw: the last requests (for `GET /_sim/requests`) and counters
//! (for `GET /_sim/stats`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many requests are kept.
pub const RECORD_CAPACITY: usize = 1000;

/// One received upstream request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Same number as the response's `x_sim.request` and `chatcmpl-sim-<seq>` id.
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Every received header, lowercase names; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The body as JSON, else as a (lossy UTF-8) string, null when empty.
    pub body: Value,
    /// The bearer token, if any.
    pub key: Option<String>,
    /// Unix milliseconds at receipt.
    pub at_ms: u64,
}

/// Lowercase header map; repeated headers are joined with ", ".
pub fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

/// Ring of the last [`RECORD_CAPACITY`] requests.
#[derive(Debug, Default)]
pub struct Recorder {
    requests: Mutex<VecDeque<RecordedRequest>>,
}

impl Recorder {
    pub fn push(&self, request: RecordedRequest) {
        let mut requests = self.requests.lock();
        if requests.len() == RECORD_CAPACITY {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    /// Oldest first.
    pub fn list(&self) -> Vec<RecordedRequest> {
        self.requests.lock().iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.requests.lock().clear();
    }
}

/// Counters served by `GET /_sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReport {
    pub requests: u64,
    /// Status code (as a string) -> responses.
    pub by_status: BTreeMap<String, u64>,
    /// Bearer key ("" when none) -> requests.
    pub by_key: BTreeMap<String, u64>,
    /// Requested model -> requests.
    pub by_model: BTreeMap<String, u64>,
}

/// Lock-free status counters; one short lock for the key/model maps.
#[derive(Debug)]
pub struct Stats {
    requests: AtomicU64,
    by_status: Box<[AtomicU64]>,
    maps: Mutex<KeyModelCounts>,
}

#[derive(Debug, Default)]
struct KeyModelCounts {
    by_key: HashMap<String, u64>,
    by_model: HashMap<String, u64>,
}

const STATUS_SLOTS: usize = 600;

impl Default for Stats {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            by_status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            maps: Mutex::new(KeyModelCounts::default()),
        }
    }
}

fn bump(map: &mut HashMap<String, u64>, name: &str) {
    match map.get_mut(name) {
        Some(count) => *count += 1,
        None => {
            map.insert(name.to_owned(), 1);
        }
    }
}

impl Stats {
    /// Counts a received upstream request.
    pub fn request(&self, key: Option<&str>, model: Option<&str>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut maps = self.maps.lock();
        bump(&mut maps.by_key, key.unwrap_or(""));
        if let Some(model) = model {
            bump(&mut maps.by_model, model);
        }
    }

    /// Counts a response status.
    pub fn status(&self, status: u16) {
        let slot = usize::from(status).min(STATUS_SLOTS - 1);
        self.by_status[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub fn report(&self) -> StatsReport {
        let by_status = self
            .by_status
            .iter()
            .enumerate()
            .filter_map(|(code, count)| {
                let count = count.load(Ordering::Relaxed);
                (count > 0).then(|| (code.to_string(), count))
            })
            .collect();
        let maps = self.maps.lock();
        StatsReport {
            requests: self.requests.load(Ordering::Relaxed),
            by_status,
            by_key: maps.by_key.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            by_model: maps.by_model.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    pub fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        for slot in self.by_status.iter() {
            slot.store(0, Ordering::Relaxed);
        }
        let mut maps = self.maps.lock();
        maps.by_key.clear();
        maps.by_model.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn request(seq: u64) -> RecordedRequest {
        RecordedRequest {
            seq,
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            query: None,
            headers: BTreeMap::new(),
            body: Value::Null,
            key: None,
            at_ms: 0,
        }
    }

    #[test]
    fn recorder_keeps_the_last_thousand_oldest_first() {
        let recorder = Recorder::default();
        for seq in 0..1005 {
            recorder.push(request(seq));
        }
        let list = recorder.list();
        assert_eq!(list.len(), RECORD_CAPACITY);
        assert_eq!(list[0].seq, 5);
        assert_eq!(list[999].seq, 1004);
        recorder.clear();
        assert!(recorder.list().is_empty());
    }

    #[test]
    fn headers_are_lowercase_and_joined() {
        let mut headers = HeaderMap::new();
        headers.append("X-Test", HeaderValue::from_static("a"));
        headers.append("x-test", HeaderValue::from_static("b"));
        headers.insert("Authorization", HeaderValue::from_static("Bearer k"));
        let map = header_map(&headers);
        assert_eq!(map["x-test"], "a, b");
        assert_eq!(map["authorization"], "Bearer k");
    }

    #[test]
    fn stats_count_and_reset() {
        let stats = Stats::default();
        stats.request(Some("k1"), Some("m"));
        stats.request(None, Some("m"));
        stats.request(Some("k1"), None);
        stats.status(200);
        stats.status(200);
        stats.status(429);
        let report = stats.report();
        assert_eq!(report.requests, 3);
        assert_eq!(report.by_status["200"], 2);
        assert_eq!(report.by_status["429"], 1);
        assert_eq!(report.by_key["k1"], 2);
        assert_eq!(report.by_key[""], 1);
        assert_eq!(report.by_model["m"], 2);
        stats.reset();
        assert_eq!(stats.report(), StatsReport::default());
    }
}
