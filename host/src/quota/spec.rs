//! What a quota pool's limits are: dimensions, windows and their semantics, and when fixed
//! windows start again. Built once per reload from the configuration and the catalog.
//!
//! - per minute and per hour: a **rolling** window (a request counts for exactly that long after
//!   it was sent), which is what providers enforce or stricter than it
//! - per day: a **fixed** window that starts again at the provider's daily reset (`"00:00 UTC"`,
//!   `"00:00 America/Los_Angeles"`, ...) or when a response header says
//! - per month: a fixed window, the calendar month in UTC

use std::collections::HashMap;
use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::config::catalog::{Limits, Scope};

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    Requests,
    /// prompt + completion
    Tokens,
    InputTokens,
    OutputTokens,
}

/// Over how long a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    Minute,
    Hour,
    Day,
    Month,
}

impl Window {
    /// Rolling windows keep a log of what was sent; fixed ones a counter that resets.
    pub fn rolling(self) -> bool {
        matches!(self, Window::Minute | Window::Hour)
    }

    pub fn len_ms(self) -> u64 {
        match self {
            Window::Minute => 60_000,
            Window::Hour => 3_600_000,
            Window::Day => 86_400_000,
            Window::Month => 31 * 86_400_000,
        }
    }
}

/// `rpm`, `tpd`, `itpm`, ... as people write them.
pub fn short_name(dim: Dim, window: Window) -> &'static str {
    match (dim, window) {
        (Dim::Requests, Window::Minute) => "rpm",
        (Dim::Requests, Window::Hour) => "rph",
        (Dim::Requests, Window::Day) => "rpd",
        (Dim::Requests, Window::Month) => "requests/month",
        (Dim::Tokens, Window::Minute) => "tpm",
        (Dim::Tokens, Window::Hour) => "tph",
        (Dim::Tokens, Window::Day) => "tpd",
        (Dim::Tokens, Window::Month) => "tokens/month",
        (Dim::InputTokens, Window::Minute) => "itpm",
        (Dim::InputTokens, Window::Hour) => "itph",
        (Dim::InputTokens, Window::Day) => "itpd",
        (Dim::InputTokens, Window::Month) => "input tokens/month",
        (Dim::OutputTokens, Window::Minute) => "otpm",
        (Dim::OutputTokens, Window::Hour) => "otph",
        (Dim::OutputTokens, Window::Day) => "otpd",
        (Dim::OutputTokens, Window::Month) => "output tokens/month",
    }
}

/// A short stable key for a counter (Redis key names, state files).
pub fn code(dim: Dim, window: Window) -> &'static str {
    match (dim, window) {
        (Dim::Requests, Window::Minute) => "rpm",
        (Dim::Requests, Window::Hour) => "rph",
        (Dim::Requests, Window::Day) => "rpd",
        (Dim::Requests, Window::Month) => "rpmo",
        (Dim::Tokens, Window::Minute) => "tpm",
        (Dim::Tokens, Window::Hour) => "tph",
        (Dim::Tokens, Window::Day) => "tpd",
        (Dim::Tokens, Window::Month) => "tpmo",
        (Dim::InputTokens, Window::Minute) => "itpm",
        (Dim::InputTokens, Window::Hour) => "itph",
        (Dim::InputTokens, Window::Day) => "itpd",
        (Dim::InputTokens, Window::Month) => "itpmo",
        (Dim::OutputTokens, Window::Minute) => "otpm",
        (Dim::OutputTokens, Window::Hour) => "otph",
        (Dim::OutputTokens, Window::Day) => "otpd",
        (Dim::OutputTokens, Window::Month) => "otpmo",
    }
}

/// One documented limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSpec {
    pub dim: Dim,
    pub window: Window,
    pub limit: u64,
}

/// The limits of one (pool, model): which counters exist and whether they are per model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopedLimits {
    /// every model has its own counters within the pool
    pub per_model: bool,
    pub specs: Vec<LimitSpec>,
}

impl ScopedLimits {
    pub fn from_limits(l: &Limits) -> Self {
        let mut specs = Vec::new();
        let mut push = |v: Option<u64>, dim, window| {
            if let Some(limit) = v {
                specs.push(LimitSpec { dim, window, limit });
            }
        };
        push(l.rpm, Dim::Requests, Window::Minute);
        push(l.rph, Dim::Requests, Window::Hour);
        push(l.rpd, Dim::Requests, Window::Day);
        push(l.tpm, Dim::Tokens, Window::Minute);
        // Cloudflare's daily neurons, counted one per token as its simulator profile does; with a
        // token limit too, the lower one applies
        let tpd = match (l.tpd, l.neurons_per_day) {
            (Some(t), Some(n)) => Some(t.min(n)),
            (t, n) => t.or(n),
        };
        push(tpd, Dim::Tokens, Window::Day);
        push(l.tokens_per_month, Dim::Tokens, Window::Month);
        Self { per_model: l.scope == Scope::Model, specs }
    }
}

/// When a provider's day starts: `minute` minutes after midnight in `zone`.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyReset {
    pub minute: u16,
    pub zone: TimeZone,
    /// as written, for messages
    pub text: String,
}

impl Default for DailyReset {
    fn default() -> Self {
        Self { minute: 0, zone: TimeZone::UTC, text: "00:00 UTC".to_owned() }
    }
}

impl fmt::Display for DailyReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl DailyReset {
    /// `"HH:MM Zone"`, the zone an IANA name (`UTC`, `America/Los_Angeles`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (time, zone) = text.split_once(' ').unwrap_or((text, "UTC"));
        let (h, m) = time.split_once(':').ok_or_else(|| format!("daily reset {text:?}: expected \"HH:MM Zone\""))?;
        let h: u16 = h.parse().map_err(|_| format!("daily reset {text:?}: bad hour"))?;
        let m: u16 = m.parse().map_err(|_| format!("daily reset {text:?}: bad minute"))?;
        if h > 23 || m > 59 {
            return Err(format!("daily reset {text:?}: no such time of day"));
        }
        let zone = TimeZone::get(zone.trim()).map_err(|e| format!("daily reset {text:?}: {e}"))?;
        Ok(Self { minute: h * 60 + m, zone, text: text.to_owned() })
    }

    /// The first reset strictly after `now_ms` (Unix ms).
    pub fn next_after(&self, now_ms: u64) -> u64 {
        let fallback = (now_ms / 86_400_000 + 1).saturating_mul(86_400_000);
        let Ok(now) = Timestamp::from_millisecond(i64::try_from(now_ms).unwrap_or(i64::MAX)) else { return fallback };
        let local = now.to_zoned(self.zone.clone());
        let (h, m) = (i8::try_from(self.minute / 60).unwrap_or(0), i8::try_from(self.minute % 60).unwrap_or(0));
        for days in 0..3 {
            let Ok(date) = local.date().checked_add(jiff::Span::new().days(days)) else { continue };
            let Ok(at) = date.at(h, m, 0, 0).to_zoned(self.zone.clone()) else { continue };
            let ms = at.timestamp().as_millisecond();
            if let Ok(ms) = u64::try_from(ms)
                && ms > now_ms
            {
                return ms;
            }
        }
        fallback
    }
}

/// The first instant of the next calendar month (UTC) after `now_ms`.
pub fn next_month_start(now_ms: u64) -> u64 {
    next_month_start_in(now_ms, &TimeZone::UTC)
}

/// The first instant of the next calendar month in `zone` after `now_ms`.
pub fn next_month_start_in(now_ms: u64, zone: &TimeZone) -> u64 {
    let fallback = now_ms.saturating_add(Window::Month.len_ms());
    let Ok(now) = Timestamp::from_millisecond(i64::try_from(now_ms).unwrap_or(i64::MAX)) else { return fallback };
    let date = now.to_zoned(zone.clone()).date();
    let Ok(first) = date.first_of_month().checked_add(jiff::Span::new().months(1)) else { return fallback };
    first
        .at(0, 0, 0, 0)
        .to_zoned(zone.clone())
        .ok()
        .and_then(|z| u64::try_from(z.timestamp().as_millisecond()).ok())
        .unwrap_or(fallback)
}

/// Everything the ledger needs to know about one provider's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaPlan {
    /// limits of models without their own
    pub default: ScopedLimits,
    /// models with limits of their own
    pub per_model: HashMap<String, ScopedLimits>,
    pub daily_reset: DailyReset,
    /// the zone whose calendar months the monthly limits count (UTC for providers; the
    /// `[keys] timezone` for virtual keys' budgets)
    pub month_zone: TimeZone,
}

impl Default for QuotaPlan {
    fn default() -> Self {
        Self {
            default: ScopedLimits::default(),
            per_model: HashMap::new(),
            daily_reset: DailyReset::default(),
            month_zone: TimeZone::UTC,
        }
    }
}

impl QuotaPlan {
    /// The configuration's `limits` win over the catalog's provider limits; the catalog's
    /// per-model limits apply to their models.
    pub fn build(
        configured: Option<&Limits>,
        catalog: Option<&crate::config::CatalogProvider>,
    ) -> Result<Self, String> {
        let default =
            configured.or_else(|| catalog.map(|c| &c.limits)).map(ScopedLimits::from_limits).unwrap_or_default();
        let mut per_model = HashMap::new();
        if let Some(c) = catalog {
            for m in &c.models {
                if let Some(l) = &m.limits {
                    per_model.insert(m.id.clone(), ScopedLimits::from_limits(l));
                }
            }
        }
        let daily_reset = match catalog.and_then(|c| c.daily_reset.as_deref()) {
            Some(text) => DailyReset::parse(text)?,
            None => DailyReset::default(),
        };
        Ok(Self { default, per_model, daily_reset, month_zone: TimeZone::UTC })
    }

    pub fn for_model(&self, model: &str) -> &ScopedLimits {
        self.per_model.get(model).unwrap_or(&self.default)
    }

    /// When the fixed window of `window` that contains `now_ms` ends.
    pub fn window_end(&self, window: Window, now_ms: u64) -> u64 {
        match window {
            Window::Day => self.daily_reset.next_after(now_ms),
            Window::Month => next_month_start_in(now_ms, &self.month_zone),
            Window::Minute | Window::Hour => now_ms.saturating_add(window.len_ms()),
        }
    }

    /// The month's zone as people read it (`UTC`, `Europe/Paris`).
    pub fn month_zone_name(&self) -> &str {
        self.month_zone.iana_name().unwrap_or("UTC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_27_2026_1200_UTC: u64 = 1_795_780_800_000;

    #[test]
    fn utc_midnight_is_the_next_day_boundary() {
        let r = DailyReset::parse("00:00 UTC").unwrap();
        let next = r.next_after(NOV_27_2026_1200_UTC);
        assert_eq!(next, NOV_27_2026_1200_UTC + 12 * 3_600_000);
        // exactly at the boundary: the following one
        assert_eq!(r.next_after(next), next + 86_400_000);
    }

    #[test]
    fn pacific_midnight_follows_daylight_saving() {
        let r = DailyReset::parse("00:00 America/Los_Angeles").unwrap();
        // 27 Nov 2026 is standard time: midnight Pacific = 08:00 UTC
        let next = r.next_after(NOV_27_2026_1200_UTC);
        assert_eq!(next, NOV_27_2026_1200_UTC + 20 * 3_600_000);
        // 1 July 2026 12:00 UTC is daylight time: midnight Pacific = 07:00 UTC next day
        let july = 1_782_907_200_000;
        assert_eq!(r.next_after(july), july + 19 * 3_600_000);
    }

    #[test]
    fn bad_daily_resets_are_refused_with_the_text() {
        assert!(DailyReset::parse("25:00 UTC").unwrap_err().contains("25:00"));
        assert!(DailyReset::parse("00:00 Mars/Olympus").is_err());
    }

    #[test]
    fn the_month_ends_on_the_first_of_the_next() {
        // 2026-12-01T00:00:00Z
        assert_eq!(next_month_start(NOV_27_2026_1200_UTC), 1_796_083_200_000);
    }

    #[test]
    fn a_month_in_another_zone_ends_at_its_own_midnight() {
        let paris = TimeZone::get("Europe/Paris").unwrap();
        // 1 Dec 2026 00:00 in Paris (winter time, UTC+1) is 30 Nov 23:00 UTC
        assert_eq!(next_month_start_in(NOV_27_2026_1200_UTC, &paris), 1_796_083_200_000 - 3_600_000);
        let plan = QuotaPlan { month_zone: paris, ..QuotaPlan::default() };
        assert_eq!(plan.window_end(Window::Month, NOV_27_2026_1200_UTC), 1_796_083_200_000 - 3_600_000);
        assert_eq!(plan.month_zone_name(), "Europe/Paris");
    }

    #[test]
    fn window_ends_near_the_end_of_u64_saturate() {
        let plan = QuotaPlan::default();
        for now in [u64::MAX, u64::MAX - 1, u64::MAX - 86_400_000] {
            for w in [Window::Minute, Window::Hour, Window::Day, Window::Month] {
                assert!(plan.window_end(w, now) >= now.min(u64::MAX - 1), "{w:?} at {now}");
            }
            assert!(DailyReset::parse("00:00 America/Los_Angeles").unwrap().next_after(now) >= now.min(u64::MAX - 1));
        }
    }

    #[test]
    fn daily_neurons_count_as_daily_tokens() {
        let l = Limits { neurons_per_day: Some(10_000), ..Limits::default() };
        assert_eq!(
            ScopedLimits::from_limits(&l).specs,
            [LimitSpec { dim: Dim::Tokens, window: Window::Day, limit: 10_000 }]
        );
        let both = Limits { neurons_per_day: Some(10_000), tpd: Some(5_000), ..Limits::default() };
        assert_eq!(ScopedLimits::from_limits(&both).specs[0].limit, 5_000);
    }

    #[test]
    fn documented_limits_become_specs_and_keep_their_scope() {
        let l = Limits { scope: Scope::Model, rpm: Some(30), rpd: Some(1000), tpm: Some(6000), ..Limits::default() };
        let s = ScopedLimits::from_limits(&l);
        assert!(s.per_model);
        assert_eq!(s.specs.len(), 3);
        assert_eq!(s.specs[1], LimitSpec { dim: Dim::Requests, window: Window::Day, limit: 1000 });
    }
}
