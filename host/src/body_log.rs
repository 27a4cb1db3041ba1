//! `[body_log]`: the request and response bodies of API requests, for debugging. Off by default;
//! when on, the edge keeps at most `max_bytes` of each body (a stream's events as they passed),
//! replaces the values of `redact_fields` (any depth, case-insensitive) with `[redacted]`, scrubs
//! every account key, and hands the record to a writer task that stores it in the usage store
//! off the request path and deletes what is older than `retention_hours`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::accounts::SecretSet;
use crate::config::BodyLogConfig;
use crate::store::{BodyRow, Store};

/// Records waiting for the writer; more are dropped (and logged), never waited for.
const QUEUE: usize = 256;
/// How often old bodies are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(300);
const REDACTED: &str = "[redacted]";

/// The writer's queue.
#[derive(Clone)]
pub struct BodyLog {
    tx: mpsc::Sender<(BodyRow, u64)>,
}

impl BodyLog {
    /// Start the writer over `store`.
    pub fn start(store: Store) -> BodyLog {
        let (tx, mut rx) = mpsc::channel::<(BodyRow, u64)>(QUEUE);
        tokio::spawn(async move {
            let mut pruned = tokio::time::Instant::now();
            let mut first = true;
            while let Some((row, retention_hours)) = rx.recv().await {
                if let Err(e) = store.insert_bodies(&row).await {
                    tracing::warn!("body log: cannot store request {}: {e}", row.request_id);
                }
                if first || pruned.elapsed() >= PRUNE_EVERY {
                    first = false;
                    pruned = tokio::time::Instant::now();
                    let keep_ms = i64::try_from(retention_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
                    let before = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX).saturating_sub(keep_ms);
                    if let Err(e) = store.prune_bodies(before).await {
                        tracing::warn!("body log: cannot delete old bodies: {e}");
                    }
                }
            }
        });
        BodyLog { tx }
    }

    fn send(&self, row: BodyRow, retention_hours: u64) {
        if let Err(e) = self.tx.try_send((row, retention_hours)) {
            tracing::warn!("body log: the writer is behind, a request's bodies are not kept ({e})");
        }
    }
}

/// What one request keeps while its response passes.
pub struct Capture {
    cfg: BodyLogConfig,
    secrets: Arc<SecretSet>,
    log: BodyLog,
    response: Vec<u8>,
    truncated: bool,
}

impl Capture {
    pub fn new(cfg: &BodyLogConfig, secrets: Arc<SecretSet>, log: BodyLog) -> Capture {
        Capture { cfg: cfg.clone(), secrets, log, response: Vec::new(), truncated: false }
    }

    /// A piece of the response, as it goes to the client.
    pub fn push(&mut self, data: &[u8]) {
        let room = self.cfg.max_bytes.saturating_sub(self.response.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.response.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// The response ended: redact and hand the record to the writer.
    pub fn finish(self, request_id: String, endpoint: &str, status: u16, request: Option<bytes::Bytes>) {
        let request = request.unwrap_or_default();
        let cut = request.len() > self.cfg.max_bytes;
        let request = &request[..request.len().min(self.cfg.max_bytes)];
        let row = BodyRow {
            request_id,
            at_ms: i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX),
            endpoint: endpoint.to_owned(),
            status: i64::from(status),
            request: redact(&String::from_utf8_lossy(request), &self.cfg.redact_fields, &self.secrets),
            response: redact(&String::from_utf8_lossy(&self.response), &self.cfg.redact_fields, &self.secrets),
            truncated: cut || self.truncated,
        };
        self.log.send(row, self.cfg.retention_hours);
    }
}

/// A body with the values of `fields` replaced and every account key scrubbed. JSON is redacted
/// field by field, a stream event by event (`data:` lines); anything else is only scrubbed.
pub fn redact(text: &str, fields: &[String], secrets: &SecretSet) -> String {
    let redacted = match serde_json::from_str::<Value>(text) {
        Ok(mut v) => {
            redact_value(&mut v, fields);
            v.to_string()
        }
        Err(_) => text
            .split_inclusive('\n')
            .map(|line| {
                let Some(data) = line.strip_prefix("data:") else { return line.to_owned() };
                match serde_json::from_str::<Value>(data.trim()) {
                    Ok(mut v) => {
                        redact_value(&mut v, fields);
                        let end = if line.ends_with('\n') { "\n" } else { "" };
                        format!("data: {v}{end}")
                    }
                    Err(_) => line.to_owned(),
                }
            })
            .collect(),
    };
    secrets.scrub(&redacted).into_owned()
}

fn redact_value(v: &mut Value, fields: &[String]) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if fields.iter().any(|f| f.eq_ignore_ascii_case(k)) {
                    *val = Value::String(REDACTED.to_owned());
                } else {
                    redact_value(val, fields);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact_value(i, fields)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretString;

    fn fields(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn configured_fields_are_redacted_at_any_depth_and_keys_are_scrubbed() {
        let secrets = SecretSet::default();
        secrets.replace(vec![SecretString::new("gsk_live_secret_0001")]);
        let body = r#"{"model":"m","metadata":{"Password":"hunter2","note":"uses gsk_live_secret_0001"},"messages":[{"role":"user","content":"hi","token":"t"}]}"#;
        let out = redact(body, &fields(&["password", "token"]), &secrets);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["metadata"]["Password"], REDACTED);
        assert_eq!(v["messages"][0]["token"], REDACTED);
        assert_eq!(v["messages"][0]["content"], "hi");
        assert!(!out.contains("gsk_live_secret_0001") && !out.contains("hunter2"), "{out}");
    }

    #[test]
    fn a_stream_is_redacted_event_by_event() {
        let secrets = SecretSet::default();
        let sse =
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"secret\":\"s\"}\n\n: keep-alive\ndata: [DONE]\n\n";
        let out = redact(sse, &fields(&["secret"]), &secrets);
        assert!(out.contains("\"secret\":\"[redacted]\""), "{out}");
        assert!(out.contains(": keep-alive\n") && out.contains("data: [DONE]\n"), "{out}");
    }

    #[tokio::test]
    async fn bodies_are_capped_and_marked_cut() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("b.db").display())).await.unwrap();
        let cfg = BodyLogConfig { enabled: true, max_bytes: 8, ..BodyLogConfig::default() };
        let mut c = Capture::new(&cfg, Arc::new(SecretSet::default()), BodyLog::start(store.clone()));
        c.push(b"0123");
        c.push(b"456789");
        c.finish("req-1".into(), "chat", 200, Some(bytes::Bytes::from_static(b"abc")));
        let mut row = None;
        for _ in 0..100 {
            row = store.bodies("req-1").await.unwrap();
            if row.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let row = row.unwrap();
        assert_eq!(row.response, "01234567");
        assert_eq!(row.request, "abc");
        assert!(row.truncated);
    }
}
