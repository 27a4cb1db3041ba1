//! The webhooks service with a fake sender: the queue's bound, the retry schedule (in tokio's
//! paused time), signatures on every attempt, subscriptions.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::deliver::{Request, Sender};
use super::log::State;
use super::*;
use crate::config::{Interpolated, SecretString};

fn endpoint(events: &[&str], max_attempts: u32) -> WebhookConfig {
    WebhookConfig {
        url: Interpolated("http://127.0.0.1:9/hook".into()),
        secret: SecretString::new("whsec-unit"),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        timeout_ms: 1000,
        max_attempts,
    }
}

/// Every attempt a fake sender got, and when.
type Seen = Arc<Mutex<Vec<(Instant, Request)>>>;

/// A sender that answers each attempt with the next status of `statuses` (the last one
/// after that) and records when each attempt came and what it carried.
fn scripted(statuses: Vec<u16>) -> (Sender, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let send: Sender = Arc::new(move |r: Request| -> BoxFuture<'static, Result<u16, String>> {
        let mut seen = record.lock();
        let status = statuses.get(seen.len()).or(statuses.last()).copied().unwrap_or(204);
        seen.push((Instant::now(), r));
        Box::pin(async move { Ok(status) })
    });
    (send, seen)
}

fn budget() -> Event {
    Event::KeyBudget {
        key_id: "vk_1".into(),
        key_name: "alice".into(),
        limit: "rpd",
        used: 5,
        limit_value: 5,
        percent: 100,
    }
}

fn metric(m: &Metrics, line: &str) -> Option<f64> {
    let text = m.render(&crate::telemetry::state::Scrape::default());
    text.lines().find_map(|l| l.strip_prefix(line)).and_then(|v| v.trim().parse().ok())
}

fn header<'a>(r: &'a Request, name: &str) -> &'a str {
    r.headers.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
}

#[tokio::test]
async fn a_full_queue_drops_events_and_counts_them_without_waiting() {
    let metrics = Arc::new(Metrics::new("0.1.0"));
    let (send, _) = scripted(vec![204]);
    let hooks = Webhooks::with_sender(&[endpoint(&["*"], 1)], send, metrics.clone(), 4);
    // the dispatcher cannot run in between: nothing here awaits
    for _ in 0..10 {
        hooks.emit(budget());
    }
    assert_eq!(metric(&metrics, "freeway_webhook_dropped_total "), Some(6.0));
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_is_retried_after_one_then_two_seconds_and_every_attempt_is_signed() {
    let metrics = Arc::new(Metrics::new("0.1.0"));
    let (send, seen) = scripted(vec![500, 503, 204]);
    let hooks = Webhooks::with_sender(&[endpoint(&["key.budget"], 6)], send, metrics.clone(), 16);
    let start = Instant::now();
    hooks.emit(budget());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let seen = seen.lock();
    assert_eq!(seen.len(), 3, "delivered at the third attempt");
    let at: Vec<Duration> = seen.iter().map(|(t, _)| t.duration_since(start)).collect();
    let gaps = [at[1] - at[0], at[2] - at[1]];
    assert!(at[0] < Duration::from_millis(50), "the first attempt at once: {at:?}");
    assert!(gaps[0] >= Duration::from_millis(800) && gaps[0] <= Duration::from_millis(1200), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(1600) && gaps[1] <= Duration::from_millis(2400), "{gaps:?}");
    let ids: Vec<&str> = seen.iter().map(|(_, r)| header(r, sign::DELIVERY)).collect();
    assert!(ids[0].starts_with("whd_") && ids.iter().all(|i| *i == ids[0]), "one delivery id: {ids:?}");
    for (_, r) in seen.iter() {
        let ts: u64 = header(r, sign::TIMESTAMP).parse().unwrap();
        assert!(sign::verify(b"whsec-unit", ts, &r.body, header(r, sign::SIGNATURE)));
        assert_eq!(header(r, sign::EVENT), "key.budget");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!((body["id"].as_str(), body["data"]["key_name"].as_str()), (Some(ids[0]), Some("alice")));
    }
    let log = hooks.deliveries();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].state, log[0].attempts, log[0].last_status), (State::Delivered, 3, Some(204)));
    assert_eq!(metric(&metrics, "freeway_webhook_retries_total "), Some(2.0));
    assert_eq!(metric(&metrics, "freeway_webhook_deliveries_total{result=\"delivered\"} "), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn a_delivery_fails_when_its_attempts_are_spent() {
    let metrics = Arc::new(Metrics::new("0.1.0"));
    let (send, seen) = scripted(vec![500]);
    let hooks = Webhooks::with_sender(&[endpoint(&["*"], 3)], send, metrics.clone(), 16);
    hooks.emit(budget());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(seen.lock().len(), 3);
    let log = hooks.deliveries();
    assert_eq!((log[0].state, log[0].attempts), (State::Failed, 3));
    assert_eq!(log[0].last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(metric(&metrics, "freeway_webhook_deliveries_total{result=\"failed\"} "), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_never_answers_is_cut_at_the_timeout() {
    let metrics = Arc::new(Metrics::new("0.1.0"));
    let send: Sender =
        Arc::new(|_r: Request| -> BoxFuture<'static, Result<u16, String>> { Box::pin(std::future::pending()) });
    let hooks = Webhooks::with_sender(&[endpoint(&["*"], 1)], send, metrics, 16);
    hooks.emit(budget());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hooks.deliveries()[0].state, State::Pending);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = hooks.deliveries();
    assert_eq!(log[0].state, State::Failed);
    assert!(log[0].last_error.as_deref().is_some_and(|e| e.contains("1000 ms")), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn only_subscribed_endpoints_get_an_event() {
    let metrics = Arc::new(Metrics::new("0.1.0"));
    let (send, seen) = scripted(vec![204]);
    let hooks = Webhooks::with_sender(&[endpoint(&["provider.down"], 1)], send, metrics, 16);
    hooks.emit(budget());
    hooks.provider_failed("p", "502");
    hooks.provider_failed("p", "502");
    hooks.provider_failed("p", "502");
    hooks.provider_failed("p", "502");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = seen.lock();
    assert_eq!(seen.len(), 1, "one provider.down, no key.budget");
    assert_eq!(header(&seen[0].1, sign::EVENT), "provider.down");
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_quota_window_is_told_once_then_its_reset() {
    let metrics = Arc::new(Metrics::new("0.1.0"));
    let (send, seen) = scripted(vec![204]);
    let hooks = Webhooks::with_sender(&[endpoint(&["*"], 1)], send, metrics, 16);
    let soon = crate::clock::now_ms() + 1500;
    let b = crate::quota::Blocked { until_ms: Some(soon), reason: "RPD 5/5, resets 00:00 UTC".into() };
    hooks.quota_blocked("p", "default", &b);
    hooks.quota_blocked("p", "default", &b);
    let rpm = crate::quota::Blocked { until_ms: Some(soon), reason: "RPM 5/5, frees in 2 s".into() };
    hooks.quota_blocked("p", "default", &rpm);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.lock().len(), 1, "told once; a minute's rate is not exhaustion");
    // the reset is found by the wall clock: wait for it for real
    let start = std::time::Instant::now();
    while seen.lock().len() < 2 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::advance(Duration::from_millis(100)).await;
        std::thread::sleep(Duration::from_millis(20));
    }
    let events: Vec<String> = seen.lock().iter().map(|(_, r)| header(r, sign::EVENT).to_owned()).collect();
    assert_eq!(events, ["quota.exhausted", "quota.reset"]);
}
