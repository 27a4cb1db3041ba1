//! Facts that are events only when they change: a quota pool's window found full (told once,
//! until the window ends: then its reset is told), and a provider failing [`DOWN_AFTER`] times
//! in a row (told once, until it answers again).

use std::collections::HashMap;

use parking_lot::Mutex;

/// Consecutive failures (server errors, timeouts, broken connections) that make a provider down.
pub const DOWN_AFTER: u32 = 3;

/// (provider, pool, limit)
type PoolWindow = (String, String, String);

#[derive(Default)]
struct Streak {
    failures: u32,
    /// when it went down (Unix ms)
    down_since: Option<u64>,
}

#[derive(Default)]
pub struct Watch {
    /// exhausted windows → when they free (Unix ms)
    exhausted: Mutex<HashMap<PoolWindow, u64>>,
    providers: Mutex<HashMap<String, Streak>>,
}

impl Watch {
    /// A pool's window is full until `until_ms`: true when this is news.
    pub fn exhausted(&self, provider: &str, pool: &str, limit: &str, until_ms: u64, now_ms: u64) -> bool {
        let mut ex = self.exhausted.lock();
        let key = (provider.to_owned(), pool.to_owned(), limit.to_owned());
        match ex.get_mut(&key) {
            Some(until) if *until > now_ms => {
                *until = (*until).max(until_ms);
                false
            }
            _ => {
                ex.insert(key, until_ms);
                true
            }
        }
    }

    /// The exhausted windows that have ended by `now_ms` (forgotten as they are returned).
    pub fn resets_due(&self, now_ms: u64) -> Vec<(String, String, String)> {
        let mut ex = self.exhausted.lock();
        if ex.is_empty() {
            return Vec::new();
        }
        let due: Vec<PoolWindow> = ex.iter().filter(|(_, until)| **until <= now_ms).map(|(k, _)| k.clone()).collect();
        for k in &due {
            ex.remove(k);
        }
        due
    }

    /// A failed attempt on `provider`: the streak when it has just gone down.
    pub fn provider_failed(&self, provider: &str, now_ms: u64) -> Option<u32> {
        let mut p = self.providers.lock();
        let s = p.entry(provider.to_owned()).or_default();
        s.failures = s.failures.saturating_add(1);
        if s.failures >= DOWN_AFTER && s.down_since.is_none() {
            s.down_since = Some(now_ms);
            return Some(s.failures);
        }
        None
    }

    /// A successful attempt on `provider`: how long it was down when it has just come back.
    pub fn provider_ok(&self, provider: &str, now_ms: u64) -> Option<u64> {
        let mut p = self.providers.lock();
        if p.is_empty() {
            return None;
        }
        p.remove(provider).and_then(|s| s.down_since).map(|since| now_ms.saturating_sub(since))
    }
}

/// The limit a quota refusal names (`RPD 50/50, resets 00:00 UTC` → `RPD`) when it is a
/// window running out (a day, an hour, a month), not a per-minute rate.
pub fn exhausted_limit(reason: &str) -> Option<&str> {
    let word = reason.split_whitespace().next()?;
    let named = word.chars().all(|c| c.is_ascii_uppercase() || c == '/');
    (named && !word.ends_with("PM")).then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_exhausted_once_until_it_resets() {
        let w = Watch::default();
        assert!(w.exhausted("groq", "default", "RPD", 1000, 10));
        assert!(!w.exhausted("groq", "default", "RPD", 1000, 20), "told once");
        assert!(w.exhausted("groq", "other", "RPD", 1000, 20), "per pool");
        assert!(w.resets_due(999).is_empty());
        let mut due = w.resets_due(1000);
        due.sort();
        assert_eq!(due.len(), 2);
        assert_eq!(due[0], ("groq".to_owned(), "default".to_owned(), "RPD".to_owned()));
        assert!(w.resets_due(2000).is_empty(), "told once");
        assert!(w.exhausted("groq", "default", "RPD", 5000, 2000), "a new window");
    }

    #[test]
    fn a_provider_is_down_after_three_failures_in_a_row_and_up_at_its_next_success() {
        let w = Watch::default();
        assert_eq!(w.provider_failed("p", 0), None);
        assert_eq!(w.provider_ok("p", 1), None, "not down: no news");
        assert_eq!(w.provider_failed("p", 2), None);
        assert_eq!(w.provider_failed("p", 3), None);
        assert_eq!(w.provider_failed("p", 4), Some(3));
        assert_eq!(w.provider_failed("p", 5), None, "told once");
        assert_eq!(w.provider_ok("p", 104), Some(100));
        assert_eq!(w.provider_ok("p", 105), None);
    }

    #[test]
    fn only_windows_running_out_are_exhaustion() {
        assert_eq!(exhausted_limit("RPD 50/50, resets 00:00 UTC"), Some("RPD"));
        assert_eq!(exhausted_limit("TOKENS/MONTH 9/10 + 5 needed, resets on the 1st (UTC)"), Some("TOKENS/MONTH"));
        assert_eq!(exhausted_limit("RPM 30/30, frees in 12 s"), None);
        assert_eq!(exhausted_limit("TPM 5,900/6,000 + 400 needed, frees in 12 s"), None);
        assert_eq!(exhausted_limit("resting after the provider's rate limit (shared), 3 s left"), None);
    }
}
