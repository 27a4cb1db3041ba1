//! One quota pool's counters (per model, when its limits are per model): a log of what was sent
//! for rolling windows, a running total for fixed ones. Pure state; the current time (Unix ms) is
//! passed in, so every rule is tested without waiting.
//!
//! Reservations are taken before a request is sent and settled with the true usage after it;
//! a reservation never settled keeps its estimate (the safe side).
//!
//! Every sum saturates: amounts and times are `u64` that may come from a provider's headers
//! (`1e30` reads as `u64::MAX`) or a hand-edited state file, and a wrapped counter would reset a
//! window (limits silently gone) where a saturated one keeps blocking. What providers report is
//! also clamped where it enters ([`Observed::clamped`]): limits and remaining at
//! [`MAX_REPORTED`], reset times at [`MAX_RESET_AFTER_MS`], and a fixed window's end never more
//! than its length plus [`FIXED_MARGIN_MS`] ahead of now. A reported limit of 0 is ignored
//! (no working account has one: it means "not limited on this dimension" or a parsing slip), so
//! the configured or previously learned limit keeps counting; a reported `remaining` of 0 is
//! believed.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::spec::{Dim, LimitSpec, QuotaPlan, Window, short_name};
use super::{Blocked, Cost};

/// Margin added to rolling windows: a request counts a little longer here than upstream, so a
/// slot we see free has also been freed there (clocks and network delays differ by a few ms).
pub const ROLLING_MARGIN_MS: u64 = 500;

/// How far past a fixed window's length its end may lie from now (a provider's day that starts
/// an hour later than ours, daylight saving).
pub const FIXED_MARGIN_MS: u64 = 3_600_000;

/// The largest limit or remaining figure believed from a provider (a trillion: no free tier
/// comes near; larger figures are parsing accidents like `1e30`).
pub const MAX_REPORTED: u64 = 1_000_000_000_000;

/// The longest reset time believed from a provider: 400 days (a yearly quota and some slack).
pub const MAX_RESET_AFTER_MS: u64 = 400 * 86_400_000;

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

    /// The latest a fixed window may end, seen from `now`.
    fn latest_end(&self, now: u64) -> u64 {
        now.saturating_add(self.window.len_ms() + FIXED_MARGIN_MS)
    }

    /// Forget what no longer counts at `now`.
    fn expire(&mut self, plan: &QuotaPlan, now: u64) {
        if self.window.rolling() {
            let span = self.span_ms();
            while self.log.front().is_some_and(|e| e.at_ms.saturating_add(span) <= now) {
                self.log.pop_front();
            }
        } else if self.ends_ms <= now {
            self.used = 0;
            self.ends_ms = plan.window_end(self.window, now);
        } else {
            // an end pushed out by a state file from before the clamp, or a clock stepped back
            self.ends_ms = self.ends_ms.min(self.latest_end(now));
        }
    }

    pub fn used(&self) -> u64 {
        if self.window.rolling() { self.log.iter().fold(0, |sum, e| sum.saturating_add(e.amount)) } else { self.used }
    }

    /// What still counts at `now`, read without expiring anything (a saved counter seen by
    /// another process): the same rule [`Counter::expire`] applies.
    pub fn used_at(&self, now: u64) -> u64 {
        if self.window.rolling() {
            let span = self.span_ms();
            self.log
                .iter()
                .filter(|e| e.at_ms.saturating_add(span) > now)
                .fold(0, |sum, e| sum.saturating_add(e.amount))
        } else if self.ends_ms <= now {
            0
        } else {
            self.used
        }
    }

    /// When `need` more would fit (at or after `now`), if ever.
    fn fits_at(&self, need: u64, now: u64) -> Option<u64> {
        let limit = self.limit()?;
        let used = self.used();
        if used.checked_add(need).is_some_and(|total| total <= limit) {
            return Some(now);
        }
        if need > limit {
            return None;
        }
        if !self.window.rolling() {
            return Some(self.ends_ms.max(now));
        }
        // the oldest entries leave first (need <= limit, so `over` <= used)
        let mut over = used.saturating_add(need) - limit;
        let span = self.span_ms();
        for e in &self.log {
            if e.amount >= over {
                return Some(e.at_ms.saturating_add(span).max(now));
            }
            over -= e.amount;
        }
        Some(now.saturating_add(span))
    }

    fn amount(&self, cost: &Cost) -> u64 {
        match self.dim {
            Dim::Requests => cost.requests,
            Dim::Tokens => cost.input_tokens.saturating_add(cost.output_tokens),
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
            Window::Month => format!("resets on the 1st ({})", plan.month_zone_name()),
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
    /// the limit is the provider's own figure (from its headers), not the configured one
    pub learned: bool,
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
                c.used = c.used.saturating_add(amount);
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
            } else if c.ends_ms == t.window_end && c.used != u64::MAX {
                // a saturated counter stays full until its window ends: how much it lost is unknown
                c.used = c.used.saturating_add(real).saturating_sub(t.amount);
            }
        }
    }

    /// What the provider said: its limit for a dimension wins over ours, and usage it has seen
    /// that we have not is added (never removed: requests of ours still in flight are not in its
    /// figures yet). A reset time it gives moves a fixed window's end.
    pub fn observe(&mut self, o: &Observed, plan: &QuotaPlan, now: u64) {
        let o = o.clamped();
        let c = self.counter(o.dim, o.window);
        if let Some(limit) = o.limit {
            c.learned = Some(limit);
        }
        c.expire(plan, now);
        let Some(limit) = c.limit() else { return };
        if !c.window.rolling()
            && let Some(after) = o.reset_after_ms
        {
            c.ends_ms = now.saturating_add(after.max(1)).min(c.latest_end(now));
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
            let leaves = now.saturating_add(o.reset_after_ms.unwrap_or(c.window.len_ms()).min(c.window.len_ms()));
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
                    c.log.front().map_or(0, |e| e.at_ms.saturating_add(c.span_ms()).saturating_sub(now))
                } else {
                    c.ends_ms.saturating_sub(now)
                };
                Some(Headroom {
                    dim: c.dim,
                    window: c.window,
                    limit,
                    used: c.used(),
                    reset_in_ms,
                    learned: c.learned.is_some(),
                })
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

impl Observed {
    /// What of it the ledger believes: a limit of 0 is dropped (see the module docs), limits
    /// and remaining are at most [`MAX_REPORTED`], reset times at most [`MAX_RESET_AFTER_MS`].
    #[must_use]
    pub fn clamped(&self) -> Self {
        Self {
            limit: self.limit.filter(|l| *l > 0).map(|l| l.min(MAX_REPORTED)),
            remaining: self.remaining.map(|r| r.min(MAX_REPORTED)),
            reset_after_ms: self.reset_after_ms.map(|r| r.min(MAX_RESET_AFTER_MS)),
            ..*self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_795_780_800_000; // 2026-11-27 12:00 UTC

    fn plan() -> QuotaPlan {
        QuotaPlan::default()
    }

    #[test]
    fn a_saved_counter_read_later_agrees_with_expiring_it() {
        let plan = plan();
        let mut rolling = Counter::new(Dim::Requests, Window::Minute);
        rolling.log.push_back(Entry { at_ms: T0, amount: 2, rid: 1 });
        rolling.log.push_back(Entry { at_ms: T0 + 30_000, amount: 3, rid: 2 });
        let mut fixed = Counter::new(Dim::Requests, Window::Day);
        fixed.used = 7;
        fixed.ends_ms = T0 + 3_600_000;
        for now in [T0 + 1, T0 + 60_000, T0 + 61_000, T0 + 95_000, T0 + 3_600_000] {
            for c in [&rolling, &fixed] {
                let mut expired = c.clone();
                expired.expire(&plan, now);
                assert_eq!(c.used_at(now), expired.used(), "{:?} at +{} ms", c.window, now - T0);
            }
        }
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

    fn day_used_and_reset(b: &Book, now: u64) -> (u64, u64, u64) {
        let h = b.headroom(now).into_iter().find(|h| h.window == Window::Day).unwrap();
        (h.limit, h.used, h.reset_in_ms)
    }

    fn observed(window: Window, limit: Option<u64>, remaining: Option<u64>, after: Option<u64>) -> Observed {
        Observed { dim: Dim::Requests, window, limit, remaining, reset_after_ms: after }
    }

    #[test]
    fn a_reset_header_of_u64_max_keeps_the_daily_window_within_a_day() {
        // `x-ratelimit-reset: 1e30` reaches the ledger as u64::MAX
        let mut b = Book::default();
        b.prepare(&specs(30, 1000, 100_000), &plan(), T0);
        b.observe(&observed(Window::Day, Some(1000), Some(990), Some(u64::MAX)), &plan(), T0);
        let (_, used, reset_in) = day_used_and_reset(&b, T0);
        assert_eq!(used, 10);
        assert!(reset_in <= Window::Day.len_ms() + FIXED_MARGIN_MS, "{reset_in}");
        // and the window still resets: the limit does not silently stop
        let later = T0 + Window::Day.len_ms() + FIXED_MARGIN_MS;
        b.prepare(&specs(30, 1000, 100_000), &plan(), later);
        assert_eq!(day_used_and_reset(&b, later).1, 0);
    }

    #[test]
    fn a_daily_window_cannot_be_pushed_a_year_out_by_a_header() {
        let mut b = Book::default();
        b.prepare(&specs(30, 1000, 100_000), &plan(), T0);
        let year = 365 * Window::Day.len_ms();
        b.observe(&observed(Window::Day, None, Some(0), Some(year)), &plan(), T0);
        let (limit, used, reset_in) = day_used_and_reset(&b, T0);
        assert_eq!((limit, used), (1000, 1000));
        assert_eq!(reset_in, Window::Day.len_ms() + FIXED_MARGIN_MS);
    }

    #[test]
    fn a_restored_window_end_far_in_the_future_is_pulled_back() {
        // a state file written before the clamp, or edited by hand
        let mut b = Book::default();
        b.prepare(&specs(30, 1000, 100_000), &plan(), T0);
        b.counters.iter_mut().filter(|c| c.window == Window::Day).for_each(|c| c.ends_ms = u64::MAX);
        b.prepare(&specs(30, 1000, 100_000), &plan(), T0);
        assert!(day_used_and_reset(&b, T0).2 <= Window::Day.len_ms() + FIXED_MARGIN_MS);
    }

    #[test]
    fn a_limit_header_of_u64_max_is_clamped_and_counting_goes_on() {
        let mut b = Book::default();
        b.prepare(&specs(30, 1000, 100_000), &plan(), T0);
        b.observe(&observed(Window::Day, Some(u64::MAX), Some(0), None), &plan(), T0);
        assert_eq!(day_used_and_reset(&b, T0).0, MAX_REPORTED);
        assert_eq!(day_used_and_reset(&b, T0).1, MAX_REPORTED);
        assert!(b.check(&cost(1), &plan(), T0).is_err());
        // taking anyway (a reservation made through Redis) does not overflow
        b.take(&Cost { requests: u64::MAX, ..Cost::default() }, 1, T0);
        assert_eq!(day_used_and_reset(&b, T0).1, u64::MAX);
        b.observe(&observed(Window::Minute, Some(u64::MAX), Some(0), Some(u64::MAX)), &plan(), T0);
        let minute = b.headroom(T0).into_iter().find(|h| h.window == Window::Minute && h.dim == Dim::Requests).unwrap();
        assert_eq!(minute.limit, MAX_REPORTED);
        assert!(minute.reset_in_ms <= Window::Minute.len_ms() + ROLLING_MARGIN_MS);
    }

    #[test]
    fn remaining_above_the_limit_adds_no_usage() {
        let mut b = Book::default();
        b.prepare(&specs(30, 1000, 100_000), &plan(), T0);
        fill(&mut b, 2, 10, T0);
        b.observe(&observed(Window::Day, Some(1000), Some(u64::MAX), None), &plan(), T0);
        b.observe(&observed(Window::Minute, None, Some(5000), Some(1000)), &plan(), T0);
        assert_eq!(day_used_and_reset(&b, T0).1, 2);
        assert!(b.headroom(T0).iter().all(|h| h.used <= 20), "{:?}", b.headroom(T0));
    }

    #[test]
    fn a_zero_limit_header_is_ignored_and_the_configured_limit_keeps_counting() {
        let mut b = Book::default();
        b.prepare(&specs(1000, 100, 100_000), &plan(), T0);
        b.observe(&observed(Window::Day, Some(0), Some(90), None), &plan(), T0);
        let (limit, used, _) = day_used_and_reset(&b, T0);
        assert_eq!((limit, used), (100, 10));
        assert!(b.check(&cost(1), &plan(), T0).is_ok());
        fill(&mut b, 90, 1, T0);
        assert!(b.check(&cost(1), &plan(), T0).is_err(), "the configured 100 per day still holds");
        // a zero limit on a dimension nothing else limits does not create a counter that
        // refuses everything
        b.observe(
            &Observed {
                dim: Dim::OutputTokens,
                window: Window::Minute,
                limit: Some(0),
                remaining: Some(0),
                reset_after_ms: None,
            },
            &plan(),
            T0,
        );
        assert!(!b.headroom(T0).iter().any(|h| h.dim == Dim::OutputTokens));
    }

    #[test]
    fn taking_and_settling_u64_max_amounts_saturates_instead_of_overflowing() {
        let mut b = Book::default();
        b.prepare(&specs(u64::MAX, u64::MAX, u64::MAX), &plan(), T0);
        let huge = Cost { requests: u64::MAX, input_tokens: u64::MAX, output_tokens: u64::MAX };
        assert!(b.check(&huge, &plan(), T0).is_ok());
        let t1 = b.take(&huge, 1, T0);
        let t2 = b.take(&huge, 2, T0);
        assert!(b.headroom(T0).iter().all(|h| h.used == u64::MAX));
        assert!(b.check(&huge, &plan(), T0).is_err());
        b.settle(1, &t1, &huge);
        b.settle(2, &t2, &Cost::default());
        assert!(b.headroom(T0).iter().all(|h| h.used == u64::MAX), "{:?}", b.headroom(T0));
        let _ = b.remote_args(&huge, &plan(), T0);
    }

    #[test]
    fn times_near_the_end_of_u64_do_not_overflow() {
        for now in [u64::MAX, u64::MAX - 1, u64::MAX - ROLLING_MARGIN_MS, u64::MAX - Window::Month.len_ms()] {
            let mut b = Book::default();
            b.prepare(&specs(3, 3, 1000), &plan(), now);
            b.check(&cost(10), &plan(), now).unwrap();
            let taken = b.take(&cost(10), 1, now);
            fill(&mut b, 2, 10, now);
            // at the very end of time nothing can wait for later: whatever it says, no panic
            if let Err(blocked) = b.check(&cost(10), &plan(), now) {
                assert!(blocked.until_ms.is_some_and(|t| t >= now));
            }
            b.settle(1, &taken, &cost(5));
            b.observe(&observed(Window::Minute, Some(10), Some(0), Some(u64::MAX)), &plan(), now);
            b.observe(&observed(Window::Day, Some(10), Some(0), Some(u64::MAX)), &plan(), now);
            b.observe(&observed(Window::Month, Some(10), Some(0), Some(1)), &plan(), now);
            let _ = b.headroom(now);
            let _ = b.remote_args(&cost(1), &plan(), now);
            b.prepare(&specs(3, 3, 1000), &plan(), now);
        }
    }

    #[test]
    fn entries_logged_near_the_end_of_time_expire_without_overflow() {
        let mut b = Book::default();
        b.prepare(&specs(3, 3, 1000), &plan(), u64::MAX);
        b.take(&cost(10), 1, u64::MAX);
        // time going backwards (a clock step) must not panic either
        b.prepare(&specs(3, 3, 1000), &plan(), T0);
        assert!(b.check(&cost(10), &plan(), T0).is_ok());
        let _ = b.headroom(T0);
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

/// Arbitrary sequences of what the ledger does to a book, with arbitrary `u64` figures and times.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn any_dim() -> impl Strategy<Value = Dim> {
        prop_oneof![Just(Dim::Requests), Just(Dim::Tokens), Just(Dim::InputTokens), Just(Dim::OutputTokens)]
    }

    fn any_window() -> impl Strategy<Value = Window> {
        prop_oneof![Just(Window::Minute), Just(Window::Hour), Just(Window::Day), Just(Window::Month)]
    }

    /// Mostly small numbers, sometimes the edges of `u64`.
    fn figure() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => 0..2_000u64,
            1 => Just(u64::MAX),
            1 => (u64::MAX - 100_000)..=u64::MAX,
            1 => any::<u64>(),
        ]
    }

    fn any_cost() -> impl Strategy<Value = Cost> {
        (figure(), figure(), figure()).prop_map(|(requests, input_tokens, output_tokens)| Cost {
            requests,
            input_tokens,
            output_tokens,
        })
    }

    fn specs() -> impl Strategy<Value = Vec<LimitSpec>> {
        proptest::collection::vec(
            (any_dim(), any_window(), figure()).prop_map(|(dim, window, limit)| LimitSpec { dim, window, limit }),
            0..5,
        )
    }

    fn observed(limit: BoxedStrategy<Option<u64>>) -> impl Strategy<Value = Observed> {
        (any_dim(), any_window(), limit, proptest::option::of(figure()), proptest::option::of(figure())).prop_map(
            |(dim, window, limit, remaining, reset_after_ms)| Observed {
                dim,
                window,
                limit,
                remaining,
                reset_after_ms,
            },
        )
    }

    #[derive(Debug, Clone)]
    enum Op {
        Prepare,
        Check(Cost),
        /// check, and take when it passes (what `Ledger::reserve` does)
        Reserve(Cost),
        /// take without checking (a reservation Redis made, replayed locally)
        Take(Cost),
        /// settle the n-th reservation so far
        Settle(usize, Cost),
        Observe(Observed),
        /// time moves on by this much (saturating)
        Wait(u64),
        /// the clock jumps to this time (backwards too)
        Jump(u64),
    }

    fn any_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => Just(Op::Prepare),
            1 => any_cost().prop_map(Op::Check),
            3 => any_cost().prop_map(Op::Reserve),
            1 => any_cost().prop_map(Op::Take),
            1 => (any::<usize>(), any_cost()).prop_map(|(i, c)| Op::Settle(i, c)),
            2 => observed(proptest::option::of(figure()).boxed()).prop_map(Op::Observe),
            2 => figure().prop_map(Op::Wait),
            1 => any::<u64>().prop_map(Op::Jump),
        ]
    }

    /// A time: now-ish, the start of the epoch, or the end of `u64`.
    fn start() -> impl Strategy<Value = u64> {
        prop_oneof![Just(1_795_780_800_000u64), figure()]
    }

    fn config() -> ProptestConfig {
        ProptestConfig { cases: 256, max_shrink_iters: 2_000, ..ProptestConfig::default() }
    }

    /// Everything a book reports, formatted as `--explain` and the 429 message do.
    fn report(b: &Book, plan: &QuotaPlan, need: u64, now: u64) {
        for h in b.headroom(now) {
            let state = CounterState { dim: h.dim, window: h.window, limit: h.limit, used: h.used };
            let _ = state.describe(plan, need, Some(now.saturating_add(h.reset_in_ms)), now);
            let _ = state.describe(plan, need, None, now);
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_sequence_of_operations_never_panics(
            specs in specs(),
            mut now in start(),
            ops in proptest::collection::vec(any_op(), 0..40),
        ) {
            let plan = QuotaPlan::default();
            let mut book = Book::default();
            let mut taken: Vec<(u64, Vec<Taken>)> = Vec::new();
            for (rid, op) in (1u64..).zip(ops) {
                match op {
                    Op::Prepare => book.prepare(&specs, &plan, now),
                    Op::Check(c) => {
                        let _ = book.check(&c, &plan, now);
                    }
                    Op::Reserve(c) => {
                        book.prepare(&specs, &plan, now);
                        if book.check(&c, &plan, now).is_ok() {
                            taken.push((rid, book.take(&c, rid, now)));
                        }
                    }
                    Op::Take(c) => taken.push((rid, book.take(&c, rid, now))),
                    Op::Settle(i, c) => {
                        if !taken.is_empty() {
                            let (rid, t) = &taken[i % taken.len()];
                            book.settle(*rid, t, &c);
                        }
                    }
                    Op::Observe(o) => book.observe(&o, &plan, now),
                    Op::Wait(ms) => now = now.saturating_add(ms),
                    Op::Jump(t) => now = t,
                }
                report(&book, &plan, rid, now);
                let _ = book.remote_args(&Cost { requests: 1, input_tokens: rid, output_tokens: now }, &plan, now);
            }
        }

        #[test]
        fn checked_reservations_never_take_a_counter_past_its_limit(
            specs in specs(),
            mut now in start(),
            ops in proptest::collection::vec(any_op(), 0..40),
        ) {
            let plan = QuotaPlan::default();
            let mut book = Book::default();
            let mut taken: Vec<(u64, Cost, Vec<Taken>)> = Vec::new();
            for (rid, op) in (1u64..).zip(ops) {
                match op {
                    Op::Prepare | Op::Check(_) => book.prepare(&specs, &plan, now),
                    // every take follows a passing check at the same time
                    Op::Reserve(c) | Op::Take(c) => {
                        book.prepare(&specs, &plan, now);
                        if book.check(&c, &plan, now).is_ok() {
                            taken.push((rid, c, book.take(&c, rid, now)));
                        }
                    }
                    // settled at most at the estimate (a larger real cost may pass a limit,
                    // rightly), and once: a reservation is settled by value, so settling one
                    // again (back up to its estimate after the room was reused) cannot happen
                    Op::Settle(i, c) => {
                        if !taken.is_empty() {
                            let (rid, est, t) = &taken.swap_remove(i % taken.len());
                            let actual = Cost {
                                requests: c.requests.min(est.requests),
                                input_tokens: c.input_tokens.min(est.input_tokens),
                                output_tokens: c.output_tokens.min(est.output_tokens),
                            };
                            book.prepare(&specs, &plan, now);
                            book.settle(*rid, t, &actual);
                        }
                    }
                    // the provider's usage, without a limit of its own
                    Op::Observe(o) => {
                        book.prepare(&specs, &plan, now);
                        book.observe(&Observed { limit: None, ..o }, &plan, now);
                    }
                    // time only moves forward here
                    Op::Wait(ms) | Op::Jump(ms) => now = now.saturating_add(ms),
                }
                for h in book.headroom(now) {
                    prop_assert!(h.used <= h.limit, "{h:?} in {book:?}");
                }
            }
        }

        #[test]
        fn what_providers_report_is_clamped_to_sane_figures(
            o in observed(proptest::option::of(any::<u64>()).boxed()),
            now in start(),
        ) {
            let c = o.clamped();
            prop_assert!(c.limit.is_none_or(|l| (1..=MAX_REPORTED).contains(&l)));
            prop_assert!(c.remaining.is_none_or(|r| r <= MAX_REPORTED));
            prop_assert!(c.reset_after_ms.is_none_or(|r| r <= MAX_RESET_AFTER_MS));
            prop_assert_eq!(c.clamped(), c);
            let plan = QuotaPlan::default();
            let mut book = Book::default();
            book.observe(&o, &plan, now);
            for h in book.headroom(now) {
                prop_assert!(h.limit <= MAX_REPORTED);
                if !h.window.rolling() {
                    prop_assert!(h.reset_in_ms <= h.window.len_ms() + FIXED_MARGIN_MS, "{h:?}");
                }
            }
        }
    }
}
