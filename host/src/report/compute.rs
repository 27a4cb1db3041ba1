//! Turning usage records into a report: totals and percentiles per provider, model, account and
//! client key; an hourly trend; errors by class; and each quota pool's busiest window against
//! its limits (the pools and limits of the routing table in use).

use std::collections::{BTreeMap, HashMap};

use super::view::{ErrorClass, Group, Hour, QuotaPeak, Report};
use crate::quota::spec::{Dim, Window, code, next_month_start};
use crate::registry::Snapshot;
use crate::store::UsageFact;

const HOUR_MS: u64 = 3_600_000;

/// Figures of one group while they are gathered.
#[derive(Default)]
struct Tally {
    group: Group,
    latency: Vec<u64>,
    ttft: Vec<u64>,
}

fn positive(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Tally {
    fn add(&mut self, f: &UsageFact) {
        let g = &mut self.group;
        g.requests += 1;
        match f.outcome.as_str() {
            "ok" => g.ok += 1,
            "client_gone" => g.client_gone += 1,
            _ => {}
        }
        g.prompt_tokens += positive(f.prompt_tokens);
        g.completion_tokens += positive(f.completion_tokens);
        if f.outcome == "ok" {
            self.latency.push(positive(f.latency_ms));
        }
        if let Some(t) = f.first_byte_ms {
            self.ttft.push(positive(t));
        }
    }

    fn finish(mut self, key: String) -> Group {
        let mut g = self.group;
        g.key = key;
        let decided = g.requests - g.client_gone;
        #[allow(clippy::cast_precision_loss)]
        let rate = (decided > 0).then(|| g.ok as f64 / decided as f64);
        g.success_rate = rate;
        g.latency_p50_ms = percentile(&mut self.latency, 50);
        g.latency_p95_ms = percentile(&mut self.latency, 95);
        g.ttft_p50_ms = percentile(&mut self.ttft, 50);
        g.ttft_p95_ms = percentile(&mut self.ttft, 95);
        g
    }
}

/// The nearest-rank percentile.
fn percentile(values: &mut [u64], pct: usize) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let i = (values.len() * pct).div_ceil(100).saturating_sub(1);
    values.get(i).copied()
}

fn groups(facts: &[UsageFact], key: impl Fn(&UsageFact) -> String) -> Vec<Group> {
    let mut by: BTreeMap<String, Tally> = BTreeMap::new();
    for f in facts {
        by.entry(key(f)).or_default().add(f);
    }
    let mut out: Vec<Group> = by.into_iter().map(|(k, t)| t.finish(k)).collect();
    out.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.key.cmp(&b.key)));
    out
}

/// The report on `facts` (newest first, as read) for the period `since_ms..until_ms`.
pub fn report(facts: &[UsageFact], since_ms: u64, until_ms: u64, truncated: bool, snapshot: &Snapshot) -> Report {
    let mut total = Tally::default();
    for f in facts {
        total.add(f);
    }
    Report {
        since_ms,
        until_ms,
        records: facts.len(),
        truncated,
        total: total.finish("all".to_owned()),
        by_provider: groups(facts, |f| f.provider.clone()),
        by_model: groups(facts, |f| format!("{}/{}", f.provider, f.model)),
        by_account: groups(facts, |f| format!("{}/{}", f.provider, f.account)),
        by_client: groups(facts, |f| if f.client.is_empty() { "anyone".to_owned() } else { f.client.clone() }),
        hourly: hourly(facts, since_ms, until_ms),
        errors: errors(facts),
        quota: quota(facts, snapshot),
        key: None,
    }
}

fn hourly(facts: &[UsageFact], since_ms: u64, until_ms: u64) -> Vec<Hour> {
    let first = since_ms / HOUR_MS;
    let last = until_ms.saturating_sub(1) / HOUR_MS;
    let mut hours: Vec<Hour> =
        (first..=last.max(first)).map(|h| Hour { start_ms: h * HOUR_MS, requests: 0, ok: 0, tokens: 0 }).collect();
    for f in facts {
        let h = positive(f.at_ms) / HOUR_MS;
        let Some(slot) = h.checked_sub(first).and_then(|i| usize::try_from(i).ok()).and_then(|i| hours.get_mut(i))
        else {
            continue;
        };
        slot.requests += 1;
        slot.ok += u64::from(f.outcome == "ok");
        slot.tokens += positive(f.prompt_tokens) + positive(f.completion_tokens);
    }
    hours
}

fn errors(facts: &[UsageFact]) -> Vec<ErrorClass> {
    let mut by: HashMap<&str, ErrorClass> = HashMap::new();
    for f in facts.iter().filter(|f| f.outcome == "upstream_error") {
        let code = f.error.as_deref().unwrap_or("upstream_error");
        let e = by.entry(code).or_insert_with(|| ErrorClass { error: code.to_owned(), requests: 0, last_at_ms: 0 });
        e.requests += 1;
        e.last_at_ms = e.last_at_ms.max(positive(f.at_ms));
    }
    let mut out: Vec<ErrorClass> = by.into_values().collect();
    out.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.error.cmp(&b.error)));
    out
}

/// The end of the window of `window` that holds `at` (minutes and hours clock-aligned).
fn window_end(plan: &crate::quota::QuotaPlan, window: Window, at: u64) -> u64 {
    match window {
        Window::Minute | Window::Hour => (at / window.len_ms() + 1) * window.len_ms(),
        Window::Day => plan.daily_reset.next_after(at),
        Window::Month => next_month_start(at),
    }
}

fn quota(facts: &[UsageFact], snapshot: &Snapshot) -> Vec<QuotaPeak> {
    // (provider, pool, scope, dim, window) -> window end -> used
    type Key = (String, String, String, Dim, Window);
    let mut used: BTreeMap<Key, (u64, HashMap<u64, u64>)> = BTreeMap::new();
    let providers: HashMap<&str, &crate::registry::ProviderEntry> =
        snapshot.providers.iter().map(|p| (p.id.as_str(), p.as_ref())).collect();
    // every pool with limits shows, used or not
    for p in &snapshot.providers {
        let mut pools: Vec<&str> = p.accounts.iter().map(|a| a.pool.as_str()).collect();
        pools.extend(p.disabled_accounts.iter().map(|(_, _, pool)| pool.as_str()));
        pools.sort_unstable();
        pools.dedup();
        let limits = &p.quota_plan.default;
        let scope = if limits.per_model { None } else { Some("*") };
        for pool in pools {
            for s in limits.specs.iter().filter(|_| scope.is_some()) {
                used.entry((p.id.clone(), pool.to_owned(), "*".to_owned(), s.dim, s.window))
                    .or_insert_with(|| (s.limit, HashMap::new()));
            }
        }
    }
    // a cache hit spent no quota
    for f in facts.iter().filter(|f| !f.cache_read) {
        let Some(p) = providers.get(f.provider.as_str()) else { continue };
        let pool = p
            .accounts
            .iter()
            .find(|a| a.id == f.account)
            .map(|a| a.pool.clone())
            .or_else(|| p.disabled_accounts.iter().find(|(id, _, _)| *id == f.account).map(|(_, _, pool)| pool.clone()))
            .unwrap_or_else(|| f.account.clone());
        let limits = p.quota_plan.for_model(&f.model);
        let scope = if limits.per_model { f.model.clone() } else { "*".to_owned() };
        let at = positive(f.at_ms);
        for s in &limits.specs {
            let amount = match s.dim {
                Dim::Requests => 1,
                Dim::Tokens => positive(f.prompt_tokens) + positive(f.completion_tokens),
                Dim::InputTokens => positive(f.prompt_tokens),
                Dim::OutputTokens => positive(f.completion_tokens),
            };
            let entry = used
                .entry((p.id.clone(), pool.clone(), scope.clone(), s.dim, s.window))
                .or_insert_with(|| (s.limit, HashMap::new()));
            *entry.1.entry(window_end(&p.quota_plan, s.window, at)).or_default() += amount;
        }
    }
    let mut out: Vec<QuotaPeak> = used
        .into_iter()
        .map(|((provider, pool, scope, dim, window), (limit, windows))| {
            let (end, peak) = windows.into_iter().max_by_key(|(end, n)| (*n, *end)).unwrap_or((0, 0));
            #[allow(clippy::cast_precision_loss)]
            let share = if limit == 0 { 0.0 } else { peak as f64 / limit as f64 };
            QuotaPeak {
                provider,
                pool,
                scope,
                name: code(dim, window).to_owned(),
                limit,
                peak,
                peak_window_end_ms: end,
                share,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.share.total_cmp(&a.share).then_with(|| (&a.provider, &a.pool, &a.name).cmp(&(&b.provider, &b.pool, &b.name)))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(at_ms: i64, provider: &str, account: &str, outcome: &str, latency: i64) -> UsageFact {
        UsageFact {
            at_ms,
            provider: provider.into(),
            model: "m".into(),
            account: account.into(),
            client: String::new(),
            outcome: outcome.into(),
            error: (outcome == "upstream_error").then(|| "upstream_rate_limited".to_owned()),
            prompt_tokens: 10,
            completion_tokens: 5,
            latency_ms: latency,
            first_byte_ms: Some(latency / 2),
            attempts: 1,
            stream: false,
            policy: None,
            cache_read: false,
        }
    }

    #[test]
    fn groups_count_success_tokens_and_percentiles() {
        let mut facts: Vec<UsageFact> = (1..=20).map(|i| fact(i * 1000, "p", "a", "ok", i * 10)).collect();
        facts.push(fact(30_000, "p", "a", "upstream_error", 999));
        facts.push(fact(31_000, "q", "b", "client_gone", 5));
        let g = groups(&facts, |f| f.provider.clone());
        let p = &g[0];
        assert_eq!((p.key.as_str(), p.requests, p.ok), ("p", 21, 20));
        assert_eq!(p.success_rate, Some(20.0 / 21.0));
        assert_eq!((p.latency_p50_ms, p.latency_p95_ms), (Some(100), Some(190)), "successful answers only");
        assert_eq!(p.prompt_tokens, 210);
        let q = &g[1];
        assert_eq!((q.requests, q.client_gone, q.success_rate), (1, 1, None), "a client that left decides nothing");
        let e = errors(&facts);
        assert_eq!((e[0].error.as_str(), e[0].requests, e[0].last_at_ms), ("upstream_rate_limited", 1, 30_000));
    }

    #[test]
    fn the_hourly_trend_has_every_hour_of_the_period() {
        let facts = vec![fact(10, "p", "a", "ok", 1), fact(2 * 3_600_000 + 5, "p", "a", "ok", 1)];
        let h = hourly(&facts, 0, 3 * 3_600_000);
        assert_eq!(h.iter().map(|h| h.requests).collect::<Vec<_>>(), [1, 0, 1]);
        assert_eq!(h[2].tokens, 15);
        assert_eq!(hourly(&[], 3_600_000, 3_600_000).len(), 1);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&mut [], 50), None);
        assert_eq!(percentile(&mut [7], 95), Some(7));
        assert_eq!(percentile(&mut [5, 1, 3, 2, 4], 50), Some(3));
    }
}
