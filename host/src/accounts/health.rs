//! Account health: whether an account may take requests now, and why not.
//!
//! - a rejected credential (401/403) disables the account with the provider's reason; it is
//!   re-checked with the provider's cheapest call, with backoff (1 min doubling to 1 h), and
//!   comes back by itself when a check passes
//! - out of credit (402) disables it the same way until the monthly reset (or a manual enable),
//!   then re-checked
//! - a rate limit (429) cools it down until the provider's retry time
//! - upstream errors (5xx, timeouts) cool it down briefly, doubling while they repeat
//! - a success clears the error streak
//! - when a rest ends, a single request probes the account (half-open): others pass it by until
//!   the probe answers (or is 30 s old), so a recovering account is not stampeded
//!
//! Time is passed in, so the state machine is tested without sleeping.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// resting until `until`: after a rate limit (`hard`: not tried at all before then), or
    /// after upstream trouble (tried only when nothing else is left)
    Cooling {
        until: Instant,
        reason: String,
        hard: bool,
    },
    /// not used until a check passes
    Disabled {
        reason: String,
        since: Instant,
        next_check: Instant,
        checks: u32,
    },
}

/// What a failure did to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// its state now
    pub health: Health,
    /// this failure took it out of rotation (it was not disabled before): told once
    pub newly_disabled: bool,
}

/// Why an account was taken out of rotation, for the health machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// 401/403: the credential was refused
    Rejected,
    /// 402: out of credit
    /// (until the provider's free credit is renewed: the monthly reset)
    OutOfCredit(Duration),
    /// 429 (the retry delay, if the provider said)
    RateLimited(Option<Duration>),
    /// 5xx, timeouts, broken connections
    Upstream,
}

const FIRST_RECHECK: Duration = Duration::from_secs(60);
const MAX_RECHECK: Duration = Duration::from_secs(3600);
pub const DEFAULT_RATE_LIMIT: Duration = Duration::from_secs(60);
const FIRST_UPSTREAM_COOLDOWN: Duration = Duration::from_secs(2);
const MAX_UPSTREAM_COOLDOWN: Duration = Duration::from_secs(60);

/// How long a probe may stay unanswered before another request may probe.
const PROBE_STALE: Duration = Duration::from_secs(30);

/// The half-open probe after a rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// nothing to prove
    None,
    /// a rest ended: the next request probes
    Needed,
    /// a probe is out since then
    InFlight(Instant),
}

#[derive(Debug)]
struct State {
    health: Health,
    /// consecutive upstream failures
    streak: u32,
    probe: Probe,
    /// the latest failure: Unix ms and what the provider said
    last_error: Option<(u64, String)>,
}

/// The live health of one account, shared by every snapshot that has the account.
#[derive(Debug)]
pub struct AccountHealth {
    state: Mutex<State>,
}

impl Default for AccountHealth {
    fn default() -> Self {
        Self { state: Mutex::new(State { health: Health::Ok, streak: 0, probe: Probe::None, last_error: None }) }
    }
}

impl AccountHealth {
    pub fn get(&self) -> Health {
        self.state.lock().health.clone()
    }

    /// The latest failure seen on this account (Unix ms, message), whatever its state now.
    pub fn last_error(&self) -> Option<(u64, String)> {
        self.state.lock().last_error.clone()
    }

    /// Whether the account may take a request at `now`; expired cool-downs end here (and call
    /// for a probe). An account with a probe out is not available to others.
    pub fn available(&self, now: Instant) -> bool {
        let mut s = self.state.lock();
        match &s.health {
            Health::Ok => !matches!(s.probe, Probe::InFlight(t) if now.saturating_duration_since(t) < PROBE_STALE),
            Health::Cooling { until, .. } if *until <= now => {
                s.health = Health::Ok;
                s.probe = Probe::Needed;
                true
            }
            _ => false,
        }
    }

    /// Claim the account for a request about to be sent: false when it may not take it now
    /// (another request is probing it, or it went to rest or was disabled meanwhile). The
    /// first request after a rest becomes its probe.
    pub fn begin(&self, now: Instant) -> bool {
        let mut s = self.state.lock();
        match &s.health {
            Health::Disabled { .. } => return false,
            Health::Cooling { until, hard: true, .. } if *until > now => return false,
            Health::Cooling { until, .. } if *until <= now => {
                s.health = Health::Ok;
                s.probe = Probe::Needed;
            }
            _ => {}
        }
        match s.probe {
            Probe::None => true,
            Probe::InFlight(t) if now.saturating_duration_since(t) < PROBE_STALE => false,
            Probe::Needed | Probe::InFlight(_) => {
                s.probe = Probe::InFlight(now);
                true
            }
        }
    }

    /// The upstream answered in a way that says nothing against the account (a client mistake):
    /// a probe is over.
    pub fn answered(&self) {
        let mut s = self.state.lock();
        if matches!(s.probe, Probe::InFlight(_)) {
            s.probe = Probe::None;
        }
    }

    /// Resting after upstream trouble (not a rate limit): worth a try when nothing else is left.
    pub fn last_resort(&self, now: Instant) -> bool {
        matches!(&self.state.lock().health, Health::Cooling { until, hard: false, .. } if *until > now)
    }

    /// When the account may be tried again, if it is resting.
    pub fn available_at(&self) -> Option<Instant> {
        match &self.state.lock().health {
            Health::Cooling { until, .. } => Some(*until),
            _ => None,
        }
    }

    pub fn success(&self) {
        let mut s = self.state.lock();
        s.streak = 0;
        s.probe = Probe::None;
        if matches!(s.health, Health::Cooling { .. }) {
            s.health = Health::Ok;
        }
    }

    /// Record a failure; returns the new state, and whether it has just disabled the account.
    pub fn failure(&self, trouble: Trouble, reason: &str, now: Instant) -> Failed {
        let mut s = self.state.lock();
        let was_disabled = matches!(s.health, Health::Disabled { .. });
        s.last_error = Some((crate::clock::now_ms(), reason.to_owned()));
        // a failed probe: the next rest ends with a probe again
        s.probe = Probe::None;
        s.health = match trouble {
            Trouble::Rejected => {
                Health::Disabled { reason: reason.to_owned(), since: now, next_check: now + FIRST_RECHECK, checks: 0 }
            }
            Trouble::OutOfCredit(until_renewed) => {
                Health::Disabled { reason: reason.to_owned(), since: now, next_check: now + until_renewed, checks: 0 }
            }
            Trouble::RateLimited(after) => {
                let until = now + after.unwrap_or(DEFAULT_RATE_LIMIT);
                match &s.health {
                    // a disabled account stays disabled; a longer rest is not shortened
                    Health::Disabled { .. } => s.health.clone(),
                    Health::Cooling { until: u, hard: true, .. } if *u > until => s.health.clone(),
                    _ => Health::Cooling { until, reason: reason.to_owned(), hard: true },
                }
            }
            Trouble::Upstream => {
                s.streak = s.streak.saturating_add(1);
                let pause = FIRST_UPSTREAM_COOLDOWN
                    .saturating_mul(1 << s.streak.saturating_sub(1).min(6))
                    .min(MAX_UPSTREAM_COOLDOWN);
                match &s.health {
                    Health::Disabled { .. } => s.health.clone(),
                    Health::Cooling { until: u, .. } if *u > now + pause => s.health.clone(),
                    _ => Health::Cooling { until: now + pause, reason: reason.to_owned(), hard: false },
                }
            }
        };
        let newly_disabled = !was_disabled && matches!(s.health, Health::Disabled { .. });
        Failed { health: s.health.clone(), newly_disabled }
    }

    /// Disabled accounts whose re-check is due.
    pub fn check_due(&self, now: Instant) -> bool {
        matches!(&self.state.lock().health, Health::Disabled { next_check, .. } if *next_check <= now)
    }

    /// Take the due re-check (so only one runs): true if it was due; the next one is pushed
    /// out until [`AccountHealth::checked`] reports.
    pub fn claim_check(&self, now: Instant) -> bool {
        let mut s = self.state.lock();
        match &mut s.health {
            Health::Disabled { next_check, .. } if *next_check <= now => {
                *next_check = now + MAX_RECHECK;
                true
            }
            _ => false,
        }
    }

    /// The outcome of a re-check: back in rotation, or the next check further out.
    pub fn checked(&self, passed: bool, reason: Option<&str>, now: Instant) {
        let mut s = self.state.lock();
        if passed {
            s.health = Health::Ok;
            s.streak = 0;
            s.probe = Probe::None;
            return;
        }
        if let Health::Disabled { reason: r, checks, next_check, .. } = &mut s.health {
            *checks += 1;
            let wait = FIRST_RECHECK.saturating_mul(1 << (*checks).min(6)).min(MAX_RECHECK);
            *next_check = now + wait;
            if let Some(new) = reason {
                *r = new.to_owned();
            }
        }
    }

    /// Put an account back into rotation by hand; true when it was disabled.
    pub fn reset(&self) -> bool {
        let mut s = self.state.lock();
        let was_disabled = matches!(s.health, Health::Disabled { .. });
        s.health = Health::Ok;
        s.streak = 0;
        s.probe = Probe::None;
        was_disabled
    }
}

/// How an account's health is written down for other processes (`freeway accounts list`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthRecord {
    pub provider: String,
    pub label: String,
    /// `ok`, `cooling`, `disabled`
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix ms when a cool-down ends or the next re-check is due
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

impl HealthRecord {
    pub fn of(provider: &str, label: &str, h: &Health, now: Instant, now_ms: u64) -> Self {
        let at = |t: &Instant| now_ms + u64::try_from(t.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX);
        let (status, reason, until_ms) = match h {
            Health::Ok => ("ok", None, None),
            Health::Cooling { until, reason, .. } => ("cooling", Some(reason.clone()), Some(at(until))),
            Health::Disabled { reason, next_check, .. } => ("disabled", Some(reason.clone()), Some(at(next_check))),
        };
        Self { provider: provider.to_owned(), label: label.to_owned(), status: status.to_owned(), reason, until_ms }
    }

    /// `ok`, `cooling down (12 s): ...`, `disabled (re-check in 40 s): ...`
    pub fn describe(&self, now_ms: u64) -> String {
        let secs = self.until_ms.map_or(0, |u| u.saturating_sub(now_ms) / 1000);
        let reason = self.reason.as_deref().unwrap_or("");
        match self.status.as_str() {
            "cooling" if secs > 0 => format!("cooling down ({secs} s): {reason}"),
            "cooling" => "ok".to_owned(),
            "disabled" => format!("disabled by the gateway (re-check in {secs} s): {reason}"),
            other => other.to_owned(),
        }
    }
}

/// `ok`, `cooling down (23 s): ...`, `disabled: ...`
pub fn describe(h: &Health, now: Instant) -> String {
    match h {
        Health::Ok => "ok".to_owned(),
        Health::Cooling { until, reason, .. } => {
            format!("cooling down ({} s): {reason}", until.saturating_duration_since(now).as_secs().max(1))
        }
        Health::Disabled { reason, next_check, .. } => {
            format!("disabled (re-check in {} s): {reason}", next_check.saturating_duration_since(now).as_secs())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_key_is_disabled_and_rechecked_with_backoff() {
        let h = AccountHealth::default();
        let t0 = Instant::now();
        assert_eq!(h.last_error(), None);
        assert!(h.failure(Trouble::Rejected, "Invalid API Key", t0).newly_disabled);
        assert!(!h.failure(Trouble::Rejected, "Invalid API Key", t0).newly_disabled, "told once");
        assert!(h.last_error().is_some_and(|(at, why)| at > 0 && why == "Invalid API Key"));
        assert!(!h.available(t0 + Duration::from_secs(3600)), "not by time alone");
        assert!(!h.check_due(t0 + Duration::from_secs(59)));
        assert!(h.check_due(t0 + Duration::from_secs(60)));
        h.checked(false, Some("still invalid"), t0 + Duration::from_secs(60));
        assert!(!h.check_due(t0 + Duration::from_secs(150)));
        assert!(h.check_due(t0 + Duration::from_secs(181)));
        assert!(matches!(h.get(), Health::Disabled { reason, checks: 1, .. } if reason == "still invalid"));
        assert!(h.claim_check(t0 + Duration::from_secs(181)));
        assert!(!h.claim_check(t0 + Duration::from_secs(182)), "one check at a time");
        h.checked(true, None, t0 + Duration::from_secs(181));
        assert!(h.available(t0 + Duration::from_secs(181)));
    }

    #[test]
    fn a_rate_limit_cools_down_until_the_retry_time() {
        let h = AccountHealth::default();
        let t0 = Instant::now();
        h.failure(Trouble::RateLimited(Some(Duration::from_secs(7))), "429", t0);
        assert!(!h.available(t0 + Duration::from_secs(6)));
        assert!(!h.last_resort(t0 + Duration::from_secs(6)), "never before the retry time");
        assert_eq!(h.available_at(), Some(t0 + Duration::from_secs(7)));
        assert!(h.available(t0 + Duration::from_secs(7)));
        assert_eq!(h.get(), Health::Ok);
        // without a retry time: a minute
        h.failure(Trouble::RateLimited(None), "429", t0);
        assert!(!h.available(t0 + Duration::from_secs(59)));
    }

    #[test]
    fn a_shorter_limit_does_not_cut_a_longer_rest() {
        let h = AccountHealth::default();
        let t0 = Instant::now();
        h.failure(Trouble::RateLimited(Some(Duration::from_secs(3600))), "daily", t0);
        h.failure(Trouble::RateLimited(Some(Duration::from_secs(5))), "minute", t0);
        assert!(!h.available(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn upstream_errors_back_off_and_a_success_resets() {
        let h = AccountHealth::default();
        let t0 = Instant::now();
        h.failure(Trouble::Upstream, "502", t0);
        assert!(!h.available(t0 + Duration::from_millis(1900)));
        assert!(h.last_resort(t0 + Duration::from_millis(1900)), "still worth a try when nothing else is left");
        assert!(h.available(t0 + Duration::from_secs(2)));
        h.failure(Trouble::Upstream, "502", t0 + Duration::from_secs(2));
        assert!(!h.available(t0 + Duration::from_secs(5)), "4 s the second time");
        assert!(h.available(t0 + Duration::from_secs(6)));
        h.success();
        h.failure(Trouble::Upstream, "502", t0 + Duration::from_secs(10));
        assert!(h.available(t0 + Duration::from_secs(12)), "streak reset: 2 s again");
    }

    #[test]
    fn a_rate_limit_does_not_revive_a_disabled_account() {
        let h = AccountHealth::default();
        let t0 = Instant::now();
        h.failure(Trouble::Rejected, "revoked", t0);
        h.failure(Trouble::RateLimited(Some(Duration::from_secs(1))), "429", t0);
        assert!(matches!(h.get(), Health::Disabled { .. }));
        assert!(describe(&h.get(), t0).starts_with("disabled (re-check in 60 s): revoked"));
    }

    #[test]
    fn only_one_probe_goes_out_when_a_rest_ends() {
        let h = AccountHealth::default();
        let t0 = Instant::now();
        assert!(h.begin(t0) && h.begin(t0), "a healthy account takes every request");
        h.failure(Trouble::RateLimited(Some(Duration::from_secs(10))), "429", t0);
        assert!(!h.begin(t0 + Duration::from_secs(9)), "not before the retry time");
        let t1 = t0 + Duration::from_secs(10);
        assert!(h.available(t1));
        assert!(h.begin(t1), "the first request after the rest is the probe");
        assert!(!h.begin(t1), "the others wait for it");
        assert!(!h.available(t1 + Duration::from_secs(1)), "routing passes the account by meanwhile");
        h.success();
        assert!(h.begin(t1) && h.begin(t1), "a successful probe opens the account again");
    }

    #[test]
    fn a_failed_probe_rests_again_and_a_lost_probe_is_replaced() {
        let h = AccountHealth::default();
        let t0 = Instant::now();
        h.failure(Trouble::Upstream, "502", t0);
        let t1 = t0 + Duration::from_secs(2);
        assert!(h.begin(t1));
        h.failure(Trouble::Upstream, "502 again", t1);
        assert!(!h.available(t1 + Duration::from_secs(3)), "a longer rest the second time");
        let t2 = t1 + Duration::from_secs(4);
        assert!(h.begin(t2), "the next probe");
        assert!(!h.begin(t2 + Duration::from_secs(29)));
        assert!(h.begin(t2 + Duration::from_secs(30)), "a probe unanswered for 30 s is replaced");
        h.answered();
        assert!(h.begin(t2 + Duration::from_secs(31)) && h.begin(t2 + Duration::from_secs(31)));
    }

    #[test]
    fn out_of_credit_disables_until_the_credit_is_renewed_or_a_manual_enable() {
        let h = AccountHealth::default();
        let t0 = Instant::now();
        let renewed = Duration::from_secs(3 * 86_400);
        h.failure(Trouble::OutOfCredit(renewed), "402 insufficient credits", t0);
        assert!(!h.begin(t0 + Duration::from_secs(86_400)));
        assert!(!h.check_due(t0 + renewed - Duration::from_secs(1)));
        assert!(h.check_due(t0 + renewed), "re-checked when the month starts again");
        assert!(h.reset(), "it was disabled");
        assert!(!h.reset(), "not any more");
        assert!(h.begin(t0 + Duration::from_secs(1)), "or enabled by hand");
    }
}
