//! One quota pool's counters (per model, when its limits are per model): a log of what was sent
//! for rolling windows, a running total for fixed ones. Pure state; the current time (Unix ms) is
//! passed in, so every rule is tested without waiting.
//!
//! Reservations are taken before a request is sent and settled with the true usage after it;
//! a reservation never settled keeps its estimate (the safe side).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::spec::{Dim, LimitSpec, QuotaPlan, Window, short_name};
use super::{Blocked, Cost};

/// Margin added to rolling windows: a request counts a little longer here than upstream, so a
/// slot we see free has also been freed there (clocks and network delays differ by a few ms).
pub const ROLLING_MARGIN_MS: u64 = 500;

/// One entry of a rolling window's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at_ms: u64,
    pub amount: u64,
    /// the reservation, 0 for usage the provider reported that we had not counted
    pub rid: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub dim: Dim,
    pub window: Window,
    /// from the configuration or the catalog
    pub configured: Option<u64>,
    /// from the provider's own headers (wins)
    pub learned: Option<u64>,
    /// rolling windows: what was sent, oldest first
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub log: VecDeque<Entry>,
    /// fixed windows: used in the current window
    #[serde(default)]
    pub used: u64,
    /// fixed windows: when the current window ends (0 = not started)
    #[serde(default)]
    pub ends_ms: u64,
}

impl Counter {
    fn new(dim: Dim, window: Window) -> Self {
        Self { dim, window, configured: None, learned: None, log: VecDeque::new(), used: 0, ends_ms: 0 }
    }

    pub fn limit(&self) -> Option<u64> {
        self.learned.or(self.configured)
    }

    fn span_ms(&self) -> u64 {
        self.window.len_ms() + ROLLING_MARGIN_MS
    }

    /// Forget what no longer counts at `now`.
    fn expire(&mut self, plan: &QuotaPlan, now: u64) {
        if self.window.rolling() {
            let span = self.span_ms();
            while self.log.front().is_some_and(|e| e.at_ms + span <= now) {
                self.log.pop_front();
            }
        } else if self.ends_ms <= now {
            self.used = 0;
            self.ends_ms = plan.window_end(self.window, now);
        }
    }

    pub fn used(&self) -> u64 {
        if self.window.rolling() { self.log.iter().map(|e| e.amount).sum() } else { self.used }
    }

    /// When `need` more would fit (at or after `now`), if ever.
    fn fits_at(&self, need: u64, now: u64) -> Option<u64> {
        let limit = self.limit()?;
        let used = self.used();
        if used + need <= limit {
            return Some(now);
        }
        if need > limit {
            return None;
        }
        if !self.window.rolling() {
            return Some(self.ends_ms);
        }
        // the oldest entries leave first
        let mut over = used + need - limit;
        let span = self.span_ms();
        for e in &self.log {
            if e.amount >= over {
                return Some(e.at_ms + span);
            }
            over -= e.amount;
        }
        Some(now + span)
    }

    fn amount(&self, cost: &Cost) -> u64 {
        match self.dim {
            Dim::Requests => cost.requests,
            Dim::Tokens => cost.input_tokens + cost.output_tokens,
            Dim::InputTokens => cost.input_tokens,
            Dim::OutputTokens => cost.output_tokens,
        }
    }

    fn describe(&self, plan: &QuotaPlan, need: u64, free_at: Option<u64>, now: u64) -> String {
        let state =
            CounterState { dim: self.dim, window: self.window, limit: self.limit().unwrap_or(0), used: self.used() };
        state.describe(plan, need, free_at, now)
    }
}

/// A counter's figures, wherever they were read (here or in Redis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterState {
    pub dim: Dim,
    pub window: Window,
    pub limit: u64,
    pub used: u64,
}

impl CounterState {
    /// `RPD 50/50, resets 00:00 UTC`, `TPM 5,900/6,000 + 400 needed, frees in 12 s`.
    pub fn describe(&self, plan: &QuotaPlan, need: u64, free_at: Option<u64>, now: u64) -> String {
        let name = short_name(self.dim, self.window).to_uppercase();
        let count = |n: u64| crate::config::catalog::group(n);
        let used = self.used.min(self.limit);
        let Some(at) = free_at else {
            return format!("{name} {}: this request needs {} on its own", count(self.limit), count(need));
        };
        let when = match self.window {
            Window::Day if at == plan.daily_reset.next_after(now) => format!("resets {}", plan.daily_reset),
            Window::Month => "resets on the 1st (UTC)".to_owned(),
            _ => format!("frees in {} s", at.saturating_sub(now).div_ceil(1000)),
        };
        if self.dim == Dim::Requests {
            format!("{name} {}/{}, {when}", count(used), count(self.limit))
        } else {
            format!("{name} {}/{} + {} needed, {when}", count(used), count(self.limit), count(need))
        }
    }
}

/// A counter as Redis is asked to check and take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterArg {
    pub dim: Dim,
    pub window: Window,
    /// the limit known here (Redis may know a fresher learned one)
    pub limit: u64,
    pub amount: u64,
    /// rolling windows: how long an entry counts
    pub span_ms: u64,
    /// fixed windows: when a window starting now would end
    pub next_end: u64,
}

/// What one reservation took from one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub dim: Dim,
    pub window: Window,
    pub amount: u64,
    /// fixed windows: which window it was taken from
    pub window_end: u64,
}

/// The counters of one quota pool (and model, for per-model limits).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    pub counters: Vec<Counter>,
}

/// Headroom on one dimension, for routing and `--explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headroom {
    pub dim: Dim,
    pub window: Window,
    pub limit: u64,
    pub used: u64,
    /// milliseconds until usage next goes down (rolling) or the window ends (fixed)
    pub reset_in_ms: u64,
}

impl Book {
    fn counter(&mut self, dim: Dim, window: Window) -> &mut Counter {
        let i = match self.counters.iter().position(|c| c.dim == dim && c.window == window) {
            Some(i) => i,
            None => {
                self.counters.push(Counter::new(dim, window));
                self.counters.len() - 1
            }
        };
        &mut self.counters[i]
    }

    /// Bring the configured limits up to date (they change on reload) and expire old usage.
    pub fn prepare(&mut self, specs: &[LimitSpec], plan: &QuotaPlan, now: u64) {
        for c in &mut self.counters {
            if !specs.iter().any(|s| s.dim == c.dim && s.window == c.window) {
                c.configured = None;
            }
        }
        for s in specs {
            let c = self.counter(s.dim, s.window);
            c.configured = Some(s.limit);
        }
        for c in &mut self.counters {
            c.expire(plan, now);
        }
    }

    /// Whether `cost` fits every counter now; if not, when it will (the latest of the counters
    /// that are full) and why.
    pub fn check(&self, cost: &Cost, plan: &QuotaPlan, now: u64) -> Result<(), Blocked> {
        let mut worst: Option<(u64, String)> = None;
        for c in &self.counters {
            if c.limit().is_none() {
                continue;
            }
            let need = c.amount(cost);
            match c.fits_at(need, now) {
                Some(at) if at <= now => {}
                Some(at) => {
                    if worst.as_ref().is_none_or(|(w, _)| at > *w) {
                        worst = Some((at, c.describe(plan, need, Some(at), now)));
                    }
                }
                None => return Err(Blocked { until_ms: None, reason: c.describe(plan, need, None, now) }),
            }
        }
        match worst {
            None => Ok(()),
            Some((at, reason)) => Err(Blocked { until_ms: Some(at), reason }),
        }
    }

    /// Take `cost` from every counter with a limit (call [`Book::check`] first).
    pub fn take(&mut self, cost: &Cost, rid: u64, now: u64) -> Vec<Taken> {
        let mut taken = Vec::with_capacity(self.counters.len());
        for c in &mut self.counters {
            if c.limit().is_none() {
                continue;
            }
            let amount = c.amount(cost);
            if c.window.rolling() {
                c.log.push_back(Entry { at_ms: now, amount, rid });
            } else {
                c.used += amount;
            }
            taken.push(Taken { dim: c.dim, window: c.window, amount, window_end: c.ends_ms });
        }
        taken
    }

    /// Replace a reservation's estimate with what it really cost.
    pub fn settle(&mut self, rid: u64, taken: &[Taken], actual: &Cost) {
        for t in taken {
            let Some(c) = self.counters.iter_mut().find(|c| c.dim == t.dim && c.window == t.window) else { continue };
            let real = c.amount(actual);
            if c.window.rolling() {
                if let Some(e) = c.log.iter_mut().rev().find(|e| e.rid == rid) {
                    e.amount = real;
                }
            } else if c.ends_ms == t.window_end {
                c.used = (c.used + real).saturating_sub(t.amount);
            }
        }
    }

    /// What the provider said: its limit for a dimension wins over ours, and usage it has seen
    /// that we have not is added (never removed: requests of ours still in flight are not in its
    /// figures yet). A reset time it gives moves a fixed window's end.
    pub fn observe(&mut self, o: &Observed, plan: &QuotaPlan, now: u64) {
        let c = self.counter(o.dim, o.window);
        if let Some(limit) = o.limit {
            c.learned = Some(limit);
        }
        c.expire(plan, now);
        let Some(limit) = c.limit() else { return };
        if !c.window.rolling()
            && let Some(after) = o.reset_after_ms
        {
            c.ends_ms = now + after.max(1);
        }
        let Some(remaining) = o.remaining else { return };
        let theirs = limit.saturating_sub(remaining);
        let ours = c.used();
        if theirs <= ours {
            return;
        }
        let missing = theirs - ours;
        if c.window.rolling() {
            // counted so that it leaves when the provider says the window frees up
            let span = c.span_ms();
            let leaves = now + o.reset_after_ms.unwrap_or(c.window.len_ms()).min(c.window.len_ms());
            let at_ms = leaves.saturating_sub(span);
            let pos = c.log.iter().position(|e| e.at_ms > at_ms).unwrap_or(c.log.len());
            c.log.insert(pos, Entry { at_ms, amount: missing, rid: 0 });
        } else {
            c.used = theirs;
        }
    }

    pub fn headroom(&self, now: u64) -> Vec<Headroom> {
        self.counters
            .iter()
            .filter_map(|c| {
                let limit = c.limit()?;
                let reset_in_ms = if c.window.rolling() {
                    c.log.front().map_or(0, |e| (e.at_ms + c.span_ms()).saturating_sub(now))
                } else {
                    c.ends_ms.saturating_sub(now)
                };
                Some(Headroom { dim: c.dim, window: c.window, limit, used: c.used(), reset_in_ms })
            })
            .collect()
    }

    /// The counters with a limit, as Redis is asked to check and take `cost` from them.
    pub fn remote_args(&self, cost: &Cost, plan: &QuotaPlan, now: u64) -> Vec<CounterArg> {
        self.counters
            .iter()
            .filter_map(|c| {
                Some(CounterArg {
                    dim: c.dim,
                    window: c.window,
                    limit: c.limit()?,
                    amount: c.amount(cost),
                    span_ms: c.span_ms(),
                    next_end: if c.window.rolling() { 0 } else { plan.window_end(c.window, now) },
                })
            })
            .collect()
    }

    /// Nothing worth keeping: no learned limit and no usage.
    pub fn is_idle(&self) -> bool {
        self.counters.iter().all(|c| c.learned.is_none() && c.log.is_empty() && c.used == 0)
    }
}

/// A quota figure from the provider, in the ledger's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub dim: Dim,
    pub window: Window,
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset_after_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_795_780_800_000; // 2026-11-27 12:00 UTC

    fn plan() -> QuotaPlan {
        QuotaPlan::default()
    }

    fn specs(rpm: u64, rpd: u64, tpm: u64) -> Vec<LimitSpec> {
        vec![
            LimitSpec { dim: Dim::Requests, window: Window::Minute, limit: rpm },
            LimitSpec { dim: Dim::Requests, window: Window::Day, limit: rpd },
            LimitSpec { dim: Dim::Tokens, window: Window::Minute, limit: tpm },
        ]
    }

    fn cost(tokens: u64) -> Cost {
        Cost { requests: 1, input_tokens: tokens, output_tokens: 0 }
    }

    fn fill(book: &mut Book, n: u64, tokens: u64, now: u64) {
        for i in 0..n {
            book.check(&cost(tokens), &plan(), now).unwrap();
            book.take(&cost(tokens), i + 1, now);
        }
    }

    #[test]
    fn rpm_blocks_the_next_request_until_the_oldest_leaves_the_window() {
        let mut b = Book::default();
        b.prepare(&specs(3, 100, 1_000_000), &plan(), T0);
        fill(&mut b, 1, 10, T0);
        fill(&mut b, 2, 10, T0 + 10_000);
        let blocked = b.check(&cost(10), &plan(), T0 + 20_000).unwrap_err();
        assert_eq!(blocked.until_ms, Some(T0 + 60_000 + ROLLING_MARGIN_MS));
        assert!(blocked.reason.starts_with("RPM 3/3"), "{}", blocked.reason);
        // once the first has left, one fits
        b.prepare(&specs(3, 100, 1_000_000), &plan(), T0 + 60_000 + ROLLING_MARGIN_MS);
        assert!(b.check(&cost(10), &plan(), T0 + 60_000 + ROLLING_MARGIN_MS).is_ok());
    }

    #[test]
    fn rpd_blocks_until_the_daily_reset_and_says_so() {
        let mut b = Book::default();
        b.prepare(&specs(100, 2, 1_000_000), &plan(), T0);
        fill(&mut b, 2, 10, T0);
        let blocked = b.check(&cost(10), &plan(), T0 + 1000).unwrap_err();
        assert_eq!(blocked.until_ms, Some(T0 + 12 * 3_600_000));
        assert_eq!(blocked.reason, "RPD 2/2, resets 00:00 UTC");
        let next_day = T0 + 12 * 3_600_000;
        b.prepare(&specs(100, 2, 1_000_000), &plan(), next_day);
        assert!(b.check(&cost(10), &plan(), next_day).is_ok());
    }

    #[test]
    fn tokens_wait_for_enough_old_entries_to_leave() {
        let mut b = Book::default();
        b.prepare(&specs(100, 100, 1000), &plan(), T0);
        fill(&mut b, 1, 400, T0);
        fill(&mut b, 1, 400, T0 + 5_000);
        fill(&mut b, 1, 100, T0 + 9_000);
        // 900 used; 600 more needs the first two entries (800) gone, not just the first
        let blocked = b.check(&cost(600), &plan(), T0 + 10_000).unwrap_err();
        assert_eq!(blocked.until_ms, Some(T0 + 5_000 + 60_000 + ROLLING_MARGIN_MS));
        assert!(blocked.reason.contains("TPM 900/1,000 + 600 needed"), "{}", blocked.reason);
        // a request bigger than the whole limit never fits
        assert_eq!(b.check(&cost(5000), &plan(), T0).unwrap_err().until_ms, None);
    }

    #[test]
    fn settling_replaces_the_estimate_with_the_real_usage() {
        let mut b = Book::default();
        b.prepare(&[LimitSpec { dim: Dim::Tokens, window: Window::Minute, limit: 1000 }], &plan(), T0);
        let est = Cost { requests: 1, input_tokens: 100, output_tokens: 500 };
        let taken = b.take(&est, 7, T0);
        assert_eq!(b.headroom(T0)[0].used, 600);
        b.settle(7, &taken, &Cost { requests: 1, input_tokens: 100, output_tokens: 20 });
        assert_eq!(b.headroom(T0)[0].used, 120);
    }

    #[test]
    fn the_provider_counting_more_than_us_is_believed_until_its_reset() {
        let mut b = Book::default();
        b.prepare(&specs(30, 1000, 100_000), &plan(), T0);
        fill(&mut b, 2, 10, T0);
        // another client of the same account used 20 more; the minute frees in 15 s
        let o = Observed {
            dim: Dim::Requests,
            window: Window::Minute,
            limit: Some(30),
            remaining: Some(8),
            reset_after_ms: Some(15_000),
        };
        b.observe(&o, &plan(), T0);
        assert_eq!(b.headroom(T0).iter().find(|h| h.window == Window::Minute).unwrap().used, 22);
        // that outside usage leaves when the provider said
        b.prepare(&specs(30, 1000, 100_000), &plan(), T0 + 15_000);
        let h = b.headroom(T0 + 15_000);
        assert_eq!(h.iter().find(|h| h.window == Window::Minute && h.dim == Dim::Requests).unwrap().used, 2);
        // counting less than us changes nothing (ours may still be in flight)
        let o = Observed { remaining: Some(29), ..o };
        b.observe(&o, &plan(), T0 + 15_000);
        let h = b.headroom(T0 + 15_000);
        assert_eq!(h.iter().find(|h| h.window == Window::Minute && h.dim == Dim::Requests).unwrap().used, 2);
    }

    #[test]
    fn a_learned_limit_wins_and_a_daily_reset_header_moves_the_window() {
        let mut b = Book::default();
        b.prepare(&specs(30, 1000, 100_000), &plan(), T0);
        let o = Observed {
            dim: Dim::Requests,
            window: Window::Day,
            limit: Some(14_400),
            remaining: Some(14_000),
            reset_after_ms: Some(60_000),
        };
        b.observe(&o, &plan(), T0);
        let day = b.headroom(T0).into_iter().find(|h| h.window == Window::Day).unwrap();
        assert_eq!((day.limit, day.used, day.reset_in_ms), (14_400, 400, 60_000));
        // limits unknown to the configuration are learned too
        let o = Observed {
            dim: Dim::InputTokens,
            window: Window::Minute,
            limit: Some(5000),
            remaining: Some(5000),
            reset_after_ms: None,
        };
        b.observe(&o, &plan(), T0);
        assert!(b.headroom(T0).iter().any(|h| h.dim == Dim::InputTokens && h.limit == 5000));
    }

    #[test]
    fn a_reload_that_drops_a_limit_stops_counting_it() {
        let mut b = Book::default();
        b.prepare(&specs(1, 100, 1000), &plan(), T0);
        fill(&mut b, 1, 10, T0);
        assert!(b.check(&cost(10), &plan(), T0).is_err());
        b.prepare(&[], &plan(), T0);
        assert!(b.check(&cost(10), &plan(), T0).is_ok());
    }
}
