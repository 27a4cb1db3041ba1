//! Per-key request and token counters: a rolling minute (rpm, tpm) and a fixed day (rpd, tpd;
//! Cloudflare's `neurons_per_day` counts on the tpd counter, one neuron per token) that starts at
//! the limits' `daily_reset` (default 00:00 UTC). All functions take the current time as Unix
//! milliseconds so tests can drive the clock.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use crate::config::LimitsConfig;
use crate::daily::DailyReset;

/// Length of the rolling minute window.
pub const MINUTE_MS: u64 = 60_000;
/// Length of a UTC day.
pub const DAY_MS: u64 = 86_400_000;

/// One limit axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Axis {
    /// Requests per rolling minute.
    Rpm,
    /// Requests per UTC day.
    Rpd,
    /// Tokens per rolling minute.
    Tpm,
    /// Tokens per UTC day.
    Tpd,
}

impl Axis {
    /// Every axis, in `Snapshot` index order.
    pub const ALL: [Axis; 4] = [Axis::Rpm, Axis::Rpd, Axis::Tpm, Axis::Tpd];

    fn index(self) -> usize {
        match self {
            Axis::Rpm => 0,
            Axis::Rpd => 1,
            Axis::Tpm => 2,
            Axis::Tpd => 3,
        }
    }

    /// Counts requests (rather than tokens).
    pub fn is_requests(self) -> bool {
        matches!(self, Axis::Rpm | Axis::Rpd)
    }

    /// Uses the rolling minute (rather than the UTC day).
    pub fn is_minute(self) -> bool {
        matches!(self, Axis::Rpm | Axis::Tpm)
    }

    /// The configured limit of this axis.
    pub fn limit_in(self, limits: &LimitsConfig) -> Option<u64> {
        match self {
            Axis::Rpm => limits.rpm,
            Axis::Rpd => limits.rpd,
            Axis::Tpm => limits.tpm,
            // neurons are counted as tokens: the lower of the two day budgets applies
            Axis::Tpd => match (limits.tpd, limits.neurons_per_day) {
                (Some(tpd), Some(neurons)) => Some(tpd.min(neurons)),
                (tpd, neurons) => tpd.or(neurons),
            },
        }
    }
}

/// State of one axis for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub limit: u64,
    pub used: u64,
    /// Milliseconds until usage on this axis next goes down (0 when nothing is used).
    pub reset_ms: u64,
}

impl Usage {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// The configured axes of one key at one moment, plus the cost of the current request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    axes: [Option<Usage>; 4],
    /// Tokens charged for the request this snapshot was taken for.
    pub cost: u64,
}

impl Snapshot {
    pub fn get(&self, axis: Axis) -> Option<Usage> {
        self.axes[axis.index()]
    }

    pub fn set(&mut self, axis: Axis, usage: Usage) {
        self.axes[axis.index()] = Some(usage);
    }
}

/// Outcome of [`Limiter::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Counted; the snapshot includes this request.
    Allowed(Snapshot),
    /// Over `axis`; nothing was counted. The axis' `reset_ms` is the wait until the request fits.
    Limited { axis: Axis, requested: u64, snapshot: Snapshot },
}

/// Per-key counters of one upstream.
#[derive(Debug)]
pub struct Limiter {
    limits: LimitsConfig,
    keys: Mutex<HashMap<String, KeyWindow>>,
}

impl Limiter {
    pub fn new(limits: LimitsConfig) -> Self {
        Self { limits, keys: Mutex::new(HashMap::new()) }
    }

    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    /// Counts one request of `tokens` tokens for `key` unless an axis would go over its limit.
    /// Day axes are checked first so a client is told about the longest wait.
    pub fn acquire(&self, key: &str, tokens: u64, now_ms: u64) -> Decision {
        let mut keys = self.keys.lock();
        let window = match keys.get_mut(key) {
            Some(window) => window,
            None => keys.entry(key.to_owned()).or_default(),
        };
        window.roll(now_ms, self.daily_reset());
        for axis in [Axis::Rpd, Axis::Tpd, Axis::Rpm, Axis::Tpm] {
            let Some(limit) = axis.limit_in(&self.limits) else {
                continue;
            };
            let requested = if axis.is_requests() { 1 } else { tokens };
            if window.used(axis).saturating_add(requested) > limit {
                let mut snapshot = window.snapshot(&self.limits, now_ms);
                snapshot.cost = tokens;
                snapshot.set(
                    axis,
                    Usage {
                        limit,
                        used: window.used(axis),
                        reset_ms: window.wait_until_fits(axis, requested, limit, now_ms, self.daily_reset()),
                    },
                );
                return Decision::Limited { axis, requested, snapshot };
            }
        }
        window.record(tokens, now_ms);
        let mut snapshot = window.snapshot(&self.limits, now_ms);
        snapshot.cost = tokens;
        Decision::Allowed(snapshot)
    }

    /// The current state of `key` without counting anything.
    pub fn peek(&self, key: &str, now_ms: u64) -> Snapshot {
        let mut keys = self.keys.lock();
        match keys.get_mut(key) {
            Some(window) => {
                window.roll(now_ms, self.daily_reset());
                window.snapshot(&self.limits, now_ms)
            }
            None => KeyWindow::default().snapshot(&self.limits, now_ms),
        }
    }

    /// Requests counted today for `key` (whether or not rpd is configured).
    pub fn day_requests(&self, key: &str, now_ms: u64) -> u64 {
        let mut keys = self.keys.lock();
        keys.get_mut(key).map_or(0, |window| {
            window.roll(now_ms, self.daily_reset());
            window.day_requests
        })
    }

    /// When the day windows start again (the limits' `daily_reset`, default 00:00 UTC).
    pub fn daily_reset(&self) -> DailyReset {
        self.limits.daily_reset.unwrap_or_default()
    }

    /// Milliseconds from `now_ms` until the day windows start again.
    pub fn until_daily_reset(&self, now_ms: u64) -> u64 {
        self.daily_reset().until_next(now_ms)
    }

    /// Forgets every counter.
    pub fn reset(&self) {
        self.keys.lock().clear();
    }
}

/// Milliseconds from `now_ms` to the next UTC midnight.
pub fn until_utc_midnight(now_ms: u64) -> u64 {
    DAY_MS - now_ms % DAY_MS
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    at_ms: u64,
    requests: u64,
    tokens: u64,
}

#[derive(Debug, Default)]
struct KeyWindow {
    /// Requests of the last minute, merged per millisecond, oldest first.
    minute: VecDeque<Slot>,
    minute_requests: u64,
    minute_tokens: u64,
    day: i64,
    day_requests: u64,
    day_tokens: u64,
}

impl KeyWindow {
    fn roll(&mut self, now_ms: u64, reset: DailyReset) {
        while let Some(front) = self.minute.front() {
            if front.at_ms + MINUTE_MS > now_ms {
                break;
            }
            self.minute_requests -= front.requests;
            self.minute_tokens -= front.tokens;
            self.minute.pop_front();
        }
        let day = reset.day(now_ms);
        if day != self.day {
            self.day = day;
            self.day_requests = 0;
            self.day_tokens = 0;
        }
    }

    fn record(&mut self, tokens: u64, now_ms: u64) {
        match self.minute.back_mut() {
            Some(back) if back.at_ms == now_ms => {
                back.requests += 1;
                back.tokens += tokens;
            }
            _ => self.minute.push_back(Slot { at_ms: now_ms, requests: 1, tokens }),
        }
        self.minute_requests += 1;
        self.minute_tokens += tokens;
        self.day_requests += 1;
        self.day_tokens += tokens;
    }

    fn used(&self, axis: Axis) -> u64 {
        match axis {
            Axis::Rpm => self.minute_requests,
            Axis::Rpd => self.day_requests,
            Axis::Tpm => self.minute_tokens,
            Axis::Tpd => self.day_tokens,
        }
    }

    /// Time until this axis' usage next goes down.
    fn next_reset(&self, axis: Axis, now_ms: u64, reset: DailyReset) -> u64 {
        if self.used(axis) == 0 {
            return 0;
        }
        if axis.is_minute() {
            self.minute
                .iter()
                .find(|slot| if axis.is_requests() { slot.requests > 0 } else { slot.tokens > 0 })
                .map_or(0, |slot| (slot.at_ms + MINUTE_MS).saturating_sub(now_ms))
        } else {
            reset.until_next(now_ms)
        }
    }

    /// Time until `requested` more fits under `limit` on this axis.
    fn wait_until_fits(&self, axis: Axis, requested: u64, limit: u64, now_ms: u64, reset: DailyReset) -> u64 {
        if !axis.is_minute() || requested > limit {
            // Day windows only empty at midnight; a request larger than a minute limit never
            // fits, so point at the longest useful wait.
            return if axis.is_minute() { MINUTE_MS } else { reset.until_next(now_ms) };
        }
        let mut used = self.used(axis);
        for slot in &self.minute {
            if used + requested <= limit {
                break;
            }
            used -= if axis.is_requests() { slot.requests } else { slot.tokens };
            if used + requested <= limit {
                return (slot.at_ms + MINUTE_MS).saturating_sub(now_ms);
            }
        }
        0
    }

    fn snapshot(&self, limits: &LimitsConfig, now_ms: u64) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let reset = limits.daily_reset.unwrap_or_default();
        for axis in Axis::ALL {
            if let Some(limit) = axis.limit_in(limits) {
                snapshot
                    .set(axis, Usage { limit, used: self.used(axis), reset_ms: self.next_reset(axis, now_ms, reset) });
            }
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_750_000_000_000; // some moment, not near midnight in the tests below

    fn limits(rpm: Option<u64>, rpd: Option<u64>, tpm: Option<u64>, tpd: Option<u64>) -> LimitsConfig {
        LimitsConfig { rpm, rpd, tpm, tpd, ..LimitsConfig::default() }
    }

    #[test]
    fn rpm_rolls_over_a_minute() {
        let limiter = Limiter::new(limits(Some(2), None, None, None));
        assert!(matches!(limiter.acquire("k", 10, T0), Decision::Allowed(_)));
        let Decision::Allowed(snap) = limiter.acquire("k", 10, T0 + 1_000) else {
            panic!("second request should pass");
        };
        let rpm = snap.get(Axis::Rpm).unwrap();
        assert_eq!((rpm.limit, rpm.used, rpm.remaining()), (2, 2, 0));
        assert_eq!(rpm.reset_ms, 59_000);
        assert!(snap.get(Axis::Tpm).is_none());
        match limiter.acquire("k", 10, T0 + 2_000) {
            Decision::Limited { axis, requested, snapshot } => {
                assert_eq!(axis, Axis::Rpm);
                assert_eq!(requested, 1);
                assert_eq!(snapshot.get(Axis::Rpm).unwrap().reset_ms, 58_000);
            }
            other => panic!("expected a limit, got {other:?}"),
        }
        // The first request leaves the window at T0 + 60 s.
        assert!(matches!(limiter.acquire("k", 10, T0 + 60_000), Decision::Allowed(_)));
        assert!(matches!(limiter.acquire("k", 10, T0 + 60_500), Decision::Limited { .. }));
    }

    #[test]
    fn keys_are_counted_separately() {
        let limiter = Limiter::new(limits(Some(1), None, None, None));
        assert!(matches!(limiter.acquire("a", 1, T0), Decision::Allowed(_)));
        assert!(matches!(limiter.acquire("b", 1, T0), Decision::Allowed(_)));
        assert!(matches!(limiter.acquire("a", 1, T0), Decision::Limited { .. }));
    }

    #[test]
    fn tpm_counts_requested_tokens_up_front() {
        let limiter = Limiter::new(limits(None, None, Some(100), None));
        assert!(matches!(limiter.acquire("k", 60, T0), Decision::Allowed(_)));
        assert!(matches!(limiter.acquire("k", 30, T0 + 10_000), Decision::Allowed(_)));
        match limiter.acquire("k", 30, T0 + 20_000) {
            Decision::Limited { axis, requested, snapshot } => {
                assert_eq!(axis, Axis::Tpm);
                assert_eq!(requested, 30);
                let tpm = snapshot.get(Axis::Tpm).unwrap();
                assert_eq!(tpm.used, 90);
                // Fits once the 60-token request expires at T0 + 60 s.
                assert_eq!(tpm.reset_ms, 40_000);
            }
            other => panic!("expected a limit, got {other:?}"),
        }
    }

    #[test]
    fn day_window_resets_at_utc_midnight() {
        let midnight = (T0 / DAY_MS + 1) * DAY_MS;
        let limiter = Limiter::new(limits(None, Some(2), None, Some(1_000)));
        assert!(matches!(limiter.acquire("k", 5, midnight - 10_000), Decision::Allowed(_)));
        assert!(matches!(limiter.acquire("k", 5, midnight - 9_000), Decision::Allowed(_)));
        match limiter.acquire("k", 5, midnight - 8_000) {
            Decision::Limited { axis, snapshot, .. } => {
                assert_eq!(axis, Axis::Rpd);
                assert_eq!(snapshot.get(Axis::Rpd).unwrap().reset_ms, 8_000);
                assert_eq!(snapshot.get(Axis::Tpd).unwrap().used, 10);
            }
            other => panic!("expected a limit, got {other:?}"),
        }
        assert_eq!(limiter.day_requests("k", midnight - 1), 2);
        assert!(matches!(limiter.acquire("k", 5, midnight), Decision::Allowed(_)));
        assert_eq!(limiter.day_requests("k", midnight + 1), 1);
    }

    #[test]
    fn day_limit_is_reported_before_minute_limit() {
        let limiter = Limiter::new(limits(Some(1), Some(1), None, None));
        assert!(matches!(limiter.acquire("k", 1, T0), Decision::Allowed(_)));
        assert!(matches!(limiter.acquire("k", 1, T0 + 1), Decision::Limited { axis: Axis::Rpd, .. }));
    }

    #[test]
    fn peek_and_reset() {
        let limiter = Limiter::new(limits(Some(5), None, Some(50), None));
        assert_eq!(limiter.peek("k", T0).get(Axis::Rpm).unwrap().used, 0);
        assert_eq!(limiter.peek("k", T0).get(Axis::Rpm).unwrap().reset_ms, 0);
        limiter.acquire("k", 7, T0);
        limiter.acquire("k", 7, T0);
        let snap = limiter.peek("k", T0 + 1);
        assert_eq!(snap.get(Axis::Rpm).unwrap().used, 2);
        assert_eq!(snap.get(Axis::Tpm).unwrap().used, 14);
        limiter.reset();
        assert_eq!(limiter.peek("k", T0 + 2).get(Axis::Rpm).unwrap().used, 0);
    }

    #[test]
    fn zero_limit_rejects_everything() {
        let limiter = Limiter::new(limits(Some(0), None, None, None));
        assert!(matches!(limiter.acquire("k", 1, T0), Decision::Limited { .. }));
    }

    #[test]
    fn neurons_are_counted_as_tokens_per_day() {
        let limiter = Limiter::new(LimitsConfig { neurons_per_day: Some(100), ..LimitsConfig::default() });
        assert_eq!(Axis::Tpd.limit_in(limiter.limits()), Some(100));
        assert!(matches!(limiter.acquire("k", 60, T0), Decision::Allowed(_)));
        match limiter.acquire("k", 60, T0 + 1) {
            Decision::Limited { axis, snapshot, .. } => {
                assert_eq!(axis, Axis::Tpd);
                assert_eq!(snapshot.get(Axis::Tpd).unwrap().reset_ms, until_utc_midnight(T0 + 1));
            }
            other => panic!("expected a limit, got {other:?}"),
        }
        let both = LimitsConfig { tpd: Some(50), neurons_per_day: Some(100), ..LimitsConfig::default() };
        assert_eq!(Axis::Tpd.limit_in(&both), Some(50));
    }

    #[test]
    fn day_windows_follow_the_daily_reset() {
        let reset: DailyReset = "00:00 America/Los_Angeles".parse().unwrap();
        let limiter = Limiter::new(LimitsConfig { rpd: Some(1), daily_reset: Some(reset), ..LimitsConfig::default() });
        // 2026-01-15T07:00Z is 23:00 PST: the window ends at 08:00Z, not at UTC midnight
        let late = 1_768_460_400_000;
        assert!(matches!(limiter.acquire("k", 1, late), Decision::Allowed(_)));
        match limiter.acquire("k", 1, late + 1_000) {
            Decision::Limited { snapshot, .. } => {
                assert_eq!(snapshot.get(Axis::Rpd).unwrap().reset_ms, 3_600_000 - 1_000);
            }
            other => panic!("expected a limit, got {other:?}"),
        }
        assert_eq!(limiter.until_daily_reset(late), 3_600_000);
        assert!(matches!(limiter.acquire("k", 1, late + 3_600_000), Decision::Allowed(_)));
    }
}
