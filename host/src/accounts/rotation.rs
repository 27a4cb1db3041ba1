//! Rotation: the order in which a provider's accounts are tried for a request.
//!
//! Always across quota pools first: keys in one pool draw on one quota (OpenRouter's free limits
//! cover the whole account), so a second key of the same pool adds no capacity and is tried only
//! after every other pool. Within that, per provider:
//! - round-robin: the next pool each request
//! - least-used: the pool that served the fewest requests recently
//! - most-headroom: the pool with the largest share of quota left (least-used while unknown)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::accounts::Account;
use crate::config::Rotation;
use crate::quota::QuotaPlan;

/// Requests an account served recently: a sliding one-minute estimate.
#[derive(Debug)]
pub struct RecentUse {
    /// (start of the current minute, count in it, count in the previous minute)
    inner: Mutex<(Instant, u64, u64)>,
}

impl Default for RecentUse {
    fn default() -> Self {
        Self { inner: Mutex::new((Instant::now(), 0, 0)) }
    }
}

impl RecentUse {
    fn roll(state: &mut (Instant, u64, u64), now: Instant) {
        let elapsed = now.saturating_duration_since(state.0).as_secs();
        if elapsed >= 120 {
            *state = (now, 0, 0);
        } else if elapsed >= 60 {
            *state = (state.0 + std::time::Duration::from_secs(60), 0, state.1);
        }
    }

    pub fn note(&self, now: Instant) {
        let mut s = self.inner.lock();
        Self::roll(&mut s, now);
        s.1 += 1;
    }

    /// Requests in the last minute (the previous minute weighted by how much of it is left).
    pub fn estimate(&self, now: Instant) -> f64 {
        let mut s = self.inner.lock();
        Self::roll(&mut s, now);
        let into = now.saturating_duration_since(s.0).as_secs_f64() / 60.0;
        // counts are small; the estimate only orders pools
        #[expect(clippy::cast_precision_loss)]
        let estimate = s.1 as f64 + s.2 as f64 * (1.0 - into.min(1.0));
        estimate
    }
}

/// The share of quota left in an account's pool for `model` (0.0-1.0) on its scarcest
/// dimension, as the quota ledger counts it (our own reservations, the limits we know and what
/// the provider reported); `None` when no limit is known.
fn headroom(account: &Account, plan: &QuotaPlan, model: &str, now_ms: u64) -> Option<f64> {
    account
        .quota_pool
        .headroom(plan, model, now_ms)
        .iter()
        .map(|h| {
            // quota figures are far below 2^52
            #[expect(clippy::cast_precision_loss)]
            let share = if h.limit == 0 { 0.0 } else { h.limit.saturating_sub(h.used) as f64 / h.limit as f64 };
            share
        })
        .reduce(f64::min)
}

/// `accounts` in the order to try them.
pub fn order(
    accounts: &[Arc<Account>],
    strategy: Rotation,
    cursor: &AtomicUsize,
    now: Instant,
    quota: (&QuotaPlan, &str),
) -> Vec<Arc<Account>> {
    if accounts.len() <= 1 {
        return accounts.to_vec();
    }
    let turn = cursor.fetch_add(1, Ordering::Relaxed);
    // pools in order of first appearance, each with its keys
    let mut pools: Vec<(&str, Vec<&Arc<Account>>)> = Vec::new();
    for a in accounts {
        match pools.iter_mut().find(|(p, _)| *p == a.pool) {
            Some((_, keys)) => keys.push(a),
            None => pools.push((a.pool.as_str(), vec![a])),
        }
    }
    let use_of = |keys: &[&Arc<Account>]| keys.iter().map(|a| a.recent.estimate(now)).sum::<f64>();
    match strategy {
        Rotation::RoundRobin => {
            let n = pools.len();
            pools.rotate_left(turn % n);
        }
        Rotation::LeastUsed => pools.sort_by(|a, b| use_of(&a.1).total_cmp(&use_of(&b.1))),
        Rotation::MostHeadroom => {
            let now_ms = crate::quota::now_ms();
            let (plan, model) = quota;
            let room =
                |keys: &[&Arc<Account>]| keys.iter().filter_map(|a| headroom(a, plan, model, now_ms)).reduce(f64::min);
            pools.sort_by(|a, b| match (room(&a.1), room(&b.1)) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => use_of(&a.1).total_cmp(&use_of(&b.1)),
            });
        }
    }
    // the keys of a pool take turns too
    for (_, keys) in &mut pools {
        let n = keys.len();
        keys.rotate_left(turn % n);
    }
    let longest = pools.iter().map(|(_, k)| k.len()).max().unwrap_or(0);
    let mut out = Vec::with_capacity(accounts.len());
    for i in 0..longest {
        for (_, keys) in &pools {
            if let Some(a) = keys.get(i) {
                out.push(Arc::clone(a));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{Cost, Dim, Ledger, LimitSpec, Observed, ScopedLimits, Window};

    fn account(id: &str, pool: &str) -> Arc<Account> {
        let mut a = Account::new(id.into(), "p".into(), None);
        a.pool = pool.into();
        Arc::new(a)
    }

    fn ids(v: &[Arc<Account>]) -> Vec<&str> {
        v.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn round_robin_spreads_over_pools_before_keys() {
        // two keys of one OpenRouter account (one pool) and a second account
        let accounts = vec![account("or-1", "acct-a"), account("or-2", "acct-a"), account("or-3", "acct-b")];
        let cursor = AtomicUsize::new(0);
        let now = Instant::now();
        let first = order(&accounts, Rotation::RoundRobin, &cursor, now, (&QuotaPlan::default(), "m"));
        assert_eq!(ids(&first), ["or-1", "or-3", "or-2"]);
        let second = order(&accounts, Rotation::RoundRobin, &cursor, now, (&QuotaPlan::default(), "m"));
        assert_eq!(ids(&second), ["or-3", "or-2", "or-1"], "the other pool first, then the pool's other key");
        // over many requests each pool leads half the time, not each key a third
        let mut leads = std::collections::HashMap::new();
        for _ in 0..100 {
            *leads
                .entry(
                    order(&accounts, Rotation::RoundRobin, &cursor, now, (&QuotaPlan::default(), "m"))[0].pool.clone(),
                )
                .or_insert(0) += 1;
        }
        assert_eq!(leads["acct-a"], 50);
        assert_eq!(leads["acct-b"], 50);
    }

    #[test]
    fn least_used_prefers_the_quiet_pool() {
        let accounts = vec![account("a", "a"), account("b", "b")];
        let now = Instant::now();
        for _ in 0..5 {
            accounts[0].recent.note(now);
        }
        accounts[1].recent.note(now);
        let cursor = AtomicUsize::new(0);
        assert_eq!(ids(&order(&accounts, Rotation::LeastUsed, &cursor, now, (&QuotaPlan::default(), "m"))), ["b", "a"]);
    }

    #[test]
    fn most_headroom_prefers_quota_left_then_falls_back_to_least_used() {
        let accounts = vec![account("a", "a"), account("b", "b"), account("c", "c")];
        let now = Instant::now();
        let ledger = Ledger::in_memory();
        let plan = Arc::new(QuotaPlan::default());
        let reported = |remaining| Observed {
            dim: Dim::Requests,
            window: Window::Day,
            limit: Some(100),
            remaining: Some(remaining),
            reset_after_ms: None,
        };
        // what the providers reported reaches rotation through the ledger
        ledger.observe(&accounts[0].quota_pool, &plan, "m", &[reported(10)]);
        ledger.observe(&accounts[1].quota_pool, &plan, "m", &[reported(90)]);
        let cursor = AtomicUsize::new(0);
        assert_eq!(ids(&order(&accounts, Rotation::MostHeadroom, &cursor, now, (&plan, "m"))), ["b", "a", "c"]);
        // nothing known: least used
        let fresh = vec![account("x", "x"), account("y", "y")];
        fresh[0].recent.note(now);
        assert_eq!(ids(&order(&fresh, Rotation::MostHeadroom, &cursor, now, (&plan, "m"))), ["y", "x"]);
    }

    #[tokio::test]
    async fn most_headroom_counts_our_own_reservations_against_known_limits() {
        let accounts = vec![account("a", "a"), account("b", "b")];
        let ledger = Ledger::in_memory();
        let plan = Arc::new(QuotaPlan {
            default: ScopedLimits {
                per_model: false,
                specs: vec![LimitSpec { dim: Dim::Requests, window: Window::Day, limit: 10 }],
            },
            ..QuotaPlan::default()
        });
        let one = Cost { requests: 1, ..Cost::default() };
        // held: a reservation dropped unsettled gives itself back
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(ledger.reserve(&accounts[0].quota_pool, &plan, "m", one).await.unwrap());
        }
        held.push(ledger.reserve(&accounts[1].quota_pool, &plan, "m", one).await.unwrap());
        let cursor = AtomicUsize::new(0);
        let order = order(&accounts, Rotation::MostHeadroom, &cursor, Instant::now(), (&plan, "m"));
        assert_eq!(ids(&order), ["b", "a"], "9 of 10 left beats 7 of 10");
    }

    #[test]
    fn recent_use_fades_over_two_minutes() {
        let r = RecentUse::default();
        let t0 = Instant::now();
        for _ in 0..10 {
            r.note(t0);
        }
        assert!((r.estimate(t0) - 10.0).abs() < 0.01);
        let later = t0 + std::time::Duration::from_secs(90);
        assert!((r.estimate(later) - 5.0).abs() < 0.1, "{}", r.estimate(later));
        assert_eq!(r.estimate(t0 + std::time::Duration::from_secs(200)), 0.0);
    }
}
