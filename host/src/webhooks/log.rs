//! The deliveries log: the last [`CAPACITY`] deliveries in memory, newest last, for
//! `GET /admin/webhooks/deliveries`. It holds where a delivery went (without credentials) and
//! how it went, never the secret nor the body.

use std::collections::VecDeque;

use parking_lot::Mutex;
use serde::Serialize;

pub const CAPACITY: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// not delivered yet: an attempt is out or a retry is due
    Pending,
    Delivered,
    /// every attempt failed
    Failed,
}

/// One delivery of one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub id: String,
    pub event: &'static str,
    /// the endpoint, without user info, query or fragment
    pub url: String,
    pub state: State,
    pub attempts: u32,
    /// the last attempt's HTTP status, if it got one
    pub last_status: Option<u16>,
    /// why the last attempt failed, if it did
    pub last_error: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// when the next attempt is due (pending deliveries waiting to retry)
    pub next_attempt_at_ms: Option<u64>,
}

/// The ring of the latest deliveries.
#[derive(Default)]
pub struct Log {
    ring: Mutex<VecDeque<Record>>,
}

/// How an attempt ended, for the log.
pub struct Attempt<'a> {
    pub status: Option<u16>,
    pub error: Option<&'a str>,
    pub state: State,
    pub next_attempt_at_ms: Option<u64>,
}

impl Log {
    /// A new delivery, pending; the oldest one goes when the ring is full.
    pub fn begin(&self, id: &str, event: &'static str, url: &str, now_ms: u64) {
        let mut ring = self.ring.lock();
        if ring.len() >= CAPACITY {
            ring.pop_front();
        }
        ring.push_back(Record {
            id: id.to_owned(),
            event,
            url: shown_url(url),
            state: State::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            next_attempt_at_ms: None,
        });
    }

    /// An attempt of delivery `id` ended (a delivery pushed out of the ring is not brought back).
    pub fn attempted(&self, id: &str, a: &Attempt<'_>, now_ms: u64) {
        let mut ring = self.ring.lock();
        if let Some(r) = ring.iter_mut().rev().find(|r| r.id == id) {
            r.attempts += 1;
            r.last_status = a.status;
            r.last_error = a.error.map(|e| e.chars().take(300).collect());
            r.state = a.state;
            r.updated_at_ms = now_ms;
            r.next_attempt_at_ms = a.next_attempt_at_ms;
        }
    }

    /// Every delivery held, oldest first.
    pub fn list(&self) -> Vec<Record> {
        self.ring.lock().iter().cloned().collect()
    }
}

/// The URL as the log shows it: no user info, query or fragment (where credentials hide).
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(invalid URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_latest_deliveries() {
        let log = Log::default();
        for i in 0..(CAPACITY + 10) {
            log.begin(&format!("whd_{i}"), "key.budget", "http://127.0.0.1:1/h", 1);
        }
        let all = log.list();
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].id, "whd_10");
        assert_eq!(all[CAPACITY - 1].id, format!("whd_{}", CAPACITY + 9));
    }

    #[test]
    fn attempts_update_their_delivery() {
        let log = Log::default();
        log.begin("whd_a", "provider.down", "http://u:p@127.0.0.1:1/h?token=t#f", 1);
        let fail =
            Attempt { status: Some(500), error: Some("HTTP 500"), state: State::Pending, next_attempt_at_ms: Some(9) };
        log.attempted("whd_a", &fail, 2);
        let ok = Attempt { status: Some(204), error: None, state: State::Delivered, next_attempt_at_ms: None };
        log.attempted("whd_a", &ok, 3);
        let r = &log.list()[0];
        assert_eq!((r.attempts, r.last_status, r.state, r.updated_at_ms), (2, Some(204), State::Delivered, 3));
        assert_eq!(r.url, "http://127.0.0.1:1/h", "no credentials shown");
    }
}
