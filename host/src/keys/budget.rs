//! A virtual key's own limits on the request path: the request's estimated cost is reserved in
//! the key's ledger pool when it is admitted (a key over a limit gets its 429 with the instant
//! the limit frees as `Retry-After`, from the ledger's own windows), and settled with what the
//! request really used when its response has ended. Settling also tells when a key has just
//! reached 80 % or 100 % of a daily or monthly budget (once per window and level).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::record::VirtualKey;
use crate::errors::{ErrorKind, GatewayError};
use crate::quota::{Blocked, Cost, Dim, Ledger, Reservation, Window};
use crate::wire::types::Usage;

/// The ledger's scope inside a key's pool (a key's limits are not per model).
const SCOPE: &str = "*";

/// A key's cost, held from admission to the end of its response.
pub struct KeyHold {
    key: Arc<VirtualKey>,
    reservation: Reservation,
    alerts: Arc<Alerts>,
}

impl std::fmt::Debug for KeyHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyHold").field("key", &self.key.id).finish_non_exhaustive()
    }
}

/// A key that has just reached a share of a budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetCrossing {
    pub key_id: String,
    pub key_name: String,
    /// `rpd`, `tpd`, `tokens/month`
    pub limit: &'static str,
    pub used: u64,
    pub limit_value: u64,
    /// 80 or 100
    pub percent: u8,
}

/// Where crossings are told (the webhooks).
pub type CrossingSink = Arc<dyn Fn(BudgetCrossing) + Send + Sync>;

/// (key id, limit) → (the window's end, in s, the level was told in; the highest level told)
type Told = HashMap<(String, &'static str), (u64, u8)>;

/// Which levels were already told, per key and limit. One per gateway.
#[derive(Default)]
pub struct Alerts {
    told: Mutex<Told>,
    on_crossing: Mutex<Option<CrossingSink>>,
}

impl Alerts {
    /// Where crossings go (the webhooks).
    pub fn on_crossing(&self, f: CrossingSink) {
        *self.on_crossing.lock() = Some(f);
    }

    /// The crossings of `key`'s daily and monthly budgets not told yet.
    fn check(&self, key: &VirtualKey, now_ms: u64) -> Vec<BudgetCrossing> {
        let mut out = Vec::new();
        for h in key.pool.headroom(&key.plan, SCOPE, now_ms) {
            if !matches!(h.window, Window::Day | Window::Month) || h.limit == 0 {
                continue;
            }
            let percent = if h.used >= h.limit {
                100
            } else if h.used.saturating_mul(100) >= h.limit.saturating_mul(80) {
                80
            } else {
                continue;
            };
            let limit = crate::quota::spec::short_name(h.dim, h.window);
            let window_end = now_ms.saturating_add(h.reset_in_ms) / 1000;
            let mut told = self.told.lock();
            let slot = told.entry((key.id.clone(), limit)).or_insert((0, 0));
            // a new window starts the levels again
            if slot.0 != window_end && slot.0.abs_diff(window_end) > 1 {
                *slot = (window_end, 0);
            }
            if slot.1 >= percent {
                continue;
            }
            slot.1 = percent;
            out.push(BudgetCrossing {
                key_id: key.id.clone(),
                key_name: key.name.clone(),
                limit,
                used: h.used,
                limit_value: h.limit,
                percent,
            });
        }
        out
    }
}

fn refused(b: &Blocked, tokens: u64, now_ms: u64) -> GatewayError {
    let Some(wait) = b.wait(now_ms) else {
        return GatewayError::new(
            ErrorKind::InvalidValue,
            format!(
                "This request may use {tokens} tokens, more than this API key's limit allows ({}); lower max_tokens.",
                b.reason
            ),
        )
        .with_param("max_tokens");
    };
    let wait = wait.max(Duration::from_millis(1));
    let rate = b.reason.starts_with("RPM") || b.reason.starts_with("TPM");
    let kind = if rate { ErrorKind::ClientRateLimited } else { ErrorKind::KeyBudgetExhausted };
    GatewayError::new(
        kind,
        format!("This API key's limit is reached: {}. Try again in {} s.", b.reason, wait.as_secs().max(1)),
    )
    .with_retry_after(Some(wait))
}

/// Admit a request of `key` estimated at `prompt` + `output` tokens: its hold (`None` when the
/// key has no limits), or the 429 (400 when it could never fit).
pub async fn admit(
    ledger: &Arc<Ledger>,
    alerts: &Arc<Alerts>,
    key: &Arc<VirtualKey>,
    prompt: u64,
    output: u64,
) -> Result<Option<KeyHold>, GatewayError> {
    if key.plan.default.specs.is_empty() {
        return Ok(None);
    }
    let cost = Cost { requests: 1, input_tokens: prompt, output_tokens: output };
    match ledger.reserve(&key.pool, &key.plan, SCOPE, cost).await {
        Ok(Some(mut reservation)) => {
            // counted from admission: a request cut short still spent what it was sent with
            reservation.mark_sent();
            Ok(Some(KeyHold { key: key.clone(), reservation, alerts: alerts.clone() }))
        }
        Ok(None) => Ok(None),
        Err(b) => Err(refused(&b, prompt.saturating_add(output), crate::quota::now_ms())),
    }
}

impl KeyHold {
    /// Settle with what the request used: a provider's answer its tokens; a cache hit one
    /// request and no tokens; a request no provider was tried for nothing at all.
    pub fn settle(self, cache_hit: bool, attempts: u32, usage: Option<&Usage>) {
        let cost = match usage {
            _ if cache_hit => Cost { requests: 1, ..Cost::default() },
            Some(u) => Cost { requests: 1, input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens },
            None if attempts > 0 => Cost { requests: 1, ..Cost::default() },
            None => Cost::default(),
        };
        self.reservation.settle(cost);
        let crossings = self.alerts.check(&self.key, crate::quota::now_ms());
        if crossings.is_empty() {
            return;
        }
        let sink = self.alerts.on_crossing.lock().clone();
        for c in crossings {
            tracing::info!(
                target: "freeway::keys",
                key = %c.key_id,
                name = %c.key_name,
                limit = c.limit,
                used = c.used,
                of = c.limit_value,
                "client key at {} % of its {}",
                c.percent,
                c.limit
            );
            if let Some(f) = &sink {
                f(c);
            }
        }
    }
}

/// How much of each limit a key has used, as this gateway's ledger counts it.
pub fn used(key: &VirtualKey, now_ms: u64) -> Vec<(Dim, Window, u64, u64)> {
    key.pool.headroom(&key.plan, SCOPE, now_ms).into_iter().map(|h| (h.dim, h.window, h.used, h.limit)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::record::{KeyDoc, KeyLimits, KeyRow};

    fn key(ledger: &Ledger, limits: KeyLimits) -> Arc<VirtualKey> {
        let row = KeyRow {
            id: "vk_test".into(),
            name: "t".into(),
            hash: String::new(),
            doc: KeyDoc { limits, ..KeyDoc::default() },
        };
        Arc::new(VirtualKey::new(row, &jiff::tz::TimeZone::UTC, ledger))
    }

    fn usage(p: u64, c: u64) -> Usage {
        Usage { prompt_tokens: p, completion_tokens: c, total_tokens: p + c, ..Usage::default() }
    }

    #[tokio::test]
    async fn a_key_over_its_daily_requests_waits_for_its_day_to_end() {
        let ledger = Ledger::in_memory();
        let alerts = Arc::new(Alerts::default());
        let k = key(&ledger, KeyLimits { rpd: Some(2), ..KeyLimits::default() });
        for _ in 0..2 {
            admit(&ledger, &alerts, &k, 10, 10).await.unwrap().unwrap().settle(false, 1, Some(&usage(10, 5)));
        }
        let e = admit(&ledger, &alerts, &k, 10, 10).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::KeyBudgetExhausted);
        let now = crate::quota::now_ms();
        let to_midnight = crate::quota::DailyReset::default().next_after(now) - now;
        let wait = u64::try_from(e.retry_after.unwrap().as_millis()).unwrap();
        assert!(wait.abs_diff(to_midnight) < 2000, "{wait} vs {to_midnight}");
    }

    #[tokio::test]
    async fn a_rate_limit_says_when_the_minute_frees() {
        let ledger = Ledger::in_memory();
        let alerts = Arc::new(Alerts::default());
        let k = key(&ledger, KeyLimits { rpm: Some(1), ..KeyLimits::default() });
        let hold = admit(&ledger, &alerts, &k, 1, 1).await.unwrap();
        let e = admit(&ledger, &alerts, &k, 1, 1).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::ClientRateLimited);
        assert!(e.retry_after.unwrap() > Duration::from_secs(55));
        drop(hold);
    }

    #[tokio::test]
    async fn tokens_are_settled_to_what_was_used_and_a_too_large_request_is_a_400() {
        let ledger = Ledger::in_memory();
        let alerts = Arc::new(Alerts::default());
        let k = key(&ledger, KeyLimits { monthly_tokens: Some(1000), ..KeyLimits::default() });
        // reserved 900, used 100: 800 come back
        admit(&ledger, &alerts, &k, 100, 800).await.unwrap().unwrap().settle(false, 1, Some(&usage(60, 40)));
        admit(&ledger, &alerts, &k, 100, 700).await.unwrap().unwrap().settle(false, 1, Some(&usage(100, 700)));
        assert_eq!(used(&k, crate::quota::now_ms())[0].2, 900);
        let e = admit(&ledger, &alerts, &k, 100, 5000).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidValue);
        // a cache hit spends no tokens; a request never tried spends nothing
        admit(&ledger, &alerts, &k, 50, 50).await.unwrap().unwrap().settle(true, 0, Some(&usage(50, 50)));
        admit(&ledger, &alerts, &k, 50, 50).await.unwrap().unwrap().settle(false, 0, None);
        assert_eq!(used(&k, crate::quota::now_ms())[0].2, 900);
    }

    #[tokio::test]
    async fn budget_levels_are_told_once_each() {
        let ledger = Ledger::in_memory();
        let alerts = Arc::new(Alerts::default());
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        alerts.on_crossing(Arc::new(move |c| sink.lock().push(c)));
        let k = key(&ledger, KeyLimits { tpd: Some(100), ..KeyLimits::default() });
        let spend = |n| {
            let (ledger, alerts, k) = (ledger.clone(), alerts.clone(), k.clone());
            async move { admit(&ledger, &alerts, &k, 1, 1).await.unwrap().unwrap().settle(false, 1, Some(&usage(n, 0))) }
        };
        spend(50).await;
        assert!(told.lock().is_empty());
        spend(30).await; // 80
        spend(5).await; // 85: already told
        spend(15).await; // 100
        let levels: Vec<(u8, u64)> = told.lock().iter().map(|c| (c.percent, c.used)).collect();
        assert_eq!(levels, [(80, 80), (100, 100)]);
        assert_eq!(told.lock()[0].limit, "tpd");
    }

    #[tokio::test]
    async fn a_key_without_limits_reserves_nothing() {
        let ledger = Ledger::in_memory();
        let k = key(&ledger, KeyLimits::default());
        assert!(admit(&ledger, &Arc::new(Alerts::default()), &k, 1, 1).await.unwrap().is_none());
    }
}
