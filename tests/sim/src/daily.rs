//! When a provider's day windows (rpd, tpd, Cloudflare's neurons) start again: a time of day in a
//! time zone, as the catalog writes it (`"00:00 UTC"`, `"00:00 America/Los_Angeles"`).
//!
//! Zones: `UTC` (also `GMT`, `Etc/UTC`), fixed offsets (`UTC+05:30`, `UTC-08:00`) and US Pacific
//! time (`America/Los_Angeles`, `US/Pacific`) with its daylight saving rules (second Sunday of
//! March to first Sunday of November, 2:00 local). No time zone database is needed for these.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::DAY_MS;

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
const DAY: i64 = DAY_MS as i64;

/// A time zone the simulator knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Zone {
    #[default]
    Utc,
    /// A fixed offset from UTC, in minutes (east positive).
    Fixed(i32),
    /// `America/Los_Angeles`: UTC-8, UTC-7 while daylight saving time is on.
    UsPacific,
}

/// A daily reset: `minute` minutes after local midnight in `zone`. Default: 00:00 UTC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DailyReset {
    pub minute: u16,
    pub zone: Zone,
}

impl DailyReset {
    /// 00:00 UTC.
    pub const UTC_MIDNIGHT: DailyReset = DailyReset { minute: 0, zone: Zone::Utc };

    /// The number of the day window `now_ms` (Unix ms) falls in; it changes at each reset.
    pub fn day(self, now_ms: u64) -> i64 {
        self.local_ms(now_ms_i64(now_ms)).div_euclid(DAY)
    }

    /// Milliseconds from `now_ms` to the next reset (at least 1).
    pub fn until_next(self, now_ms: u64) -> u64 {
        let now = now_ms_i64(now_ms);
        let next_local = (self.local_ms(now).div_euclid(DAY) + 1) * DAY + i64::from(self.minute) * MINUTE_MS;
        // the offset at the reset itself may differ from now's (a daylight saving switch)
        let mut at = next_local - self.zone.offset_ms(now);
        at = next_local - self.zone.offset_ms(at);
        u64::try_from(at - now).unwrap_or(0).max(1)
    }

    /// Local time shifted so that the reset falls on a multiple of a day.
    fn local_ms(self, now: i64) -> i64 {
        now + self.zone.offset_ms(now) - i64::from(self.minute) * MINUTE_MS
    }
}

fn now_ms_i64(now_ms: u64) -> i64 {
    i64::try_from(now_ms).unwrap_or(i64::MAX / 2)
}

impl Zone {
    /// Offset from UTC at the instant `at_ms` (Unix ms).
    pub fn offset_ms(self, at_ms: i64) -> i64 {
        match self {
            Zone::Utc => 0,
            Zone::Fixed(minutes) => i64::from(minutes) * MINUTE_MS,
            Zone::UsPacific => {
                if us_daylight_saving(at_ms) {
                    -7 * HOUR_MS
                } else {
                    -8 * HOUR_MS
                }
            }
        }
    }
}

/// US daylight saving time: from 2:00 PST on the second Sunday of March (10:00 UTC) to 2:00 PDT on
/// the first Sunday of November (09:00 UTC).
fn us_daylight_saving(at_ms: i64) -> bool {
    let year = year_of_day(at_ms.div_euclid(DAY));
    let start = nth_sunday(year, 3, 2) * DAY + 10 * HOUR_MS;
    let end = nth_sunday(year, 11, 1) * DAY + 9 * HOUR_MS;
    (start..end).contains(&at_ms)
}

/// Day number (since 1970-01-01) of the `n`th Sunday of `month` in `year`.
fn nth_sunday(year: i64, month: i64, n: i64) -> i64 {
    let first = days_from_civil(year, month, 1);
    // 1970-01-01 was a Thursday; 0 = Sunday
    let weekday = (first + 4).rem_euclid(7);
    first + (7 - weekday) % 7 + 7 * (n - 1)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year a day number (since 1970-01-01) falls in.
fn year_of_day(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

impl FromStr for DailyReset {
    type Err = String;

    /// `"HH:MM ZONE"`, e.g. `"00:00 UTC"`, `"00:00 America/Los_Angeles"`, `"06:30 UTC+05:30"`.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (time, zone) = text.split_once(char::is_whitespace).unwrap_or((text, "UTC"));
        let minute = parse_hh_mm(time)
            .filter(|m| *m < 24 * 60)
            .ok_or_else(|| format!("{text:?}: expected \"HH:MM ZONE\", e.g. \"00:00 UTC\""))?;
        let zone = zone.trim().parse::<Zone>()?;
        Ok(DailyReset { minute, zone })
    }
}

fn parse_hh_mm(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl FromStr for Zone {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "UTC" | "GMT" | "Etc/UTC" | "Z" => return Ok(Zone::Utc),
            "America/Los_Angeles" | "US/Pacific" => return Ok(Zone::UsPacific),
            _ => {}
        }
        let offset = text.strip_prefix("UTC").or_else(|| text.strip_prefix("GMT"));
        let parsed = offset.and_then(|o| {
            let (sign, rest) = match o.as_bytes().first()? {
                b'+' => (1, &o[1..]),
                b'-' => (-1, &o[1..]),
                _ => return None,
            };
            let minutes = if rest.contains(':') { parse_hh_mm(rest)? } else { rest.parse::<u16>().ok()? * 60 };
            (minutes <= 14 * 60).then(|| sign * i32::from(minutes))
        });
        parsed.map(Zone::Fixed).ok_or_else(|| {
            format!("unknown time zone {text:?} (known: UTC, UTC+HH:MM, UTC-HH:MM, America/Los_Angeles)")
        })
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Zone::Utc => f.write_str("UTC"),
            Zone::UsPacific => f.write_str("America/Los_Angeles"),
            Zone::Fixed(minutes) => {
                let sign = if minutes < 0 { '-' } else { '+' };
                let abs = minutes.unsigned_abs();
                write!(f, "UTC{sign}{:02}:{:02}", abs / 60, abs % 60)
            }
        }
    }
}

impl fmt::Display for DailyReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02} {}", self.minute / 60, self.minute % 60, self.zone)
    }
}

impl Serialize for DailyReset {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DailyReset {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-15T12:00:00Z (winter: PST).
    const WINTER_NOON: u64 = 1_768_478_400_000;
    /// 2026-07-15T12:00:00Z (summer: PDT).
    const SUMMER_NOON: u64 = 1_784_116_800_000;

    #[test]
    fn parses_and_prints_catalog_spellings() {
        let utc: DailyReset = "00:00 UTC".parse().unwrap();
        assert_eq!(utc, DailyReset::UTC_MIDNIGHT);
        let la: DailyReset = "00:00 America/Los_Angeles".parse().unwrap();
        assert_eq!(la, DailyReset { minute: 0, zone: Zone::UsPacific });
        assert_eq!(la.to_string(), "00:00 America/Los_Angeles");
        let india: DailyReset = "06:30 UTC+05:30".parse().unwrap();
        assert_eq!(india, DailyReset { minute: 390, zone: Zone::Fixed(330) });
        assert_eq!(india.to_string(), "06:30 UTC+05:30");
        assert_eq!("01:00 UTC-8".parse::<DailyReset>().unwrap().zone, Zone::Fixed(-480));
        assert!("24:00 UTC".parse::<DailyReset>().is_err());
        assert!("00:00 Mars/Olympus".parse::<DailyReset>().is_err());
        assert!("midnight".parse::<DailyReset>().is_err());
        let json = serde_json::to_string(&la).unwrap();
        assert_eq!(json, "\"00:00 America/Los_Angeles\"");
        assert_eq!(serde_json::from_str::<DailyReset>(&json).unwrap(), la);
    }

    #[test]
    fn utc_midnight_matches_the_plain_day() {
        let r = DailyReset::UTC_MIDNIGHT;
        assert_eq!(r.until_next(WINTER_NOON), 12 * 3_600_000);
        assert_eq!(r.day(WINTER_NOON), i64::try_from(WINTER_NOON / DAY_MS).unwrap());
        assert_eq!(r.until_next(WINTER_NOON - WINTER_NOON % DAY_MS), DAY_MS);
    }

    #[test]
    fn pacific_midnight_follows_daylight_saving() {
        let la: DailyReset = "00:00 America/Los_Angeles".parse().unwrap();
        // 12:00 UTC = 04:00 PST: the next midnight is 20 h away (08:00 UTC)
        assert_eq!(la.until_next(WINTER_NOON), 20 * 3_600_000);
        // 12:00 UTC = 05:00 PDT: 19 h to 07:00 UTC
        assert_eq!(la.until_next(SUMMER_NOON), 19 * 3_600_000);
        // the window changes at 08:00 UTC in winter, not at 00:00 UTC
        let midnight_utc = WINTER_NOON - 12 * 3_600_000;
        assert_eq!(la.day(midnight_utc), la.day(midnight_utc + 7 * 3_600_000));
        assert_ne!(la.day(midnight_utc + 7 * 3_600_000), la.day(midnight_utc + 8 * 3_600_000));
    }

    #[test]
    fn daylight_saving_switch_days_are_23_and_25_hours() {
        let la: DailyReset = "00:00 America/Los_Angeles".parse().unwrap();
        // 2026-03-08 is the second Sunday of March; 2026-11-01 the first Sunday of November
        let march_8 = u64::try_from(days_from_civil(2026, 3, 8)).unwrap() * DAY_MS + 8 * 3_600_000; // 00:00 PST
        assert_eq!(la.until_next(march_8), 23 * 3_600_000);
        let nov_1 = u64::try_from(days_from_civil(2026, 11, 1)).unwrap() * DAY_MS + 7 * 3_600_000; // 00:00 PDT
        assert_eq!(la.until_next(nov_1), 25 * 3_600_000);
        assert_eq!(year_of_day(days_from_civil(2026, 12, 31)), 2026);
        assert_eq!(year_of_day(days_from_civil(2027, 1, 1)), 2027);
        assert_eq!(nth_sunday(2026, 3, 2), days_from_civil(2026, 3, 8));
    }

    #[test]
    fn a_reset_after_midnight_shifts_the_window() {
        let r: DailyReset = "06:00 UTC".parse().unwrap();
        // 12:00 UTC: 18 h to 06:00 tomorrow
        assert_eq!(r.until_next(WINTER_NOON), 18 * 3_600_000);
        let five = WINTER_NOON - 7 * 3_600_000;
        assert_eq!(r.until_next(five), 3_600_000);
        assert_ne!(r.day(five), r.day(WINTER_NOON));
    }
}
