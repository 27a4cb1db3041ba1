//! Retry pacing within one request: whether another attempt may start, and how long to wait
//! first. The next candidate is another account (or provider), so a rate limit or a refused key
//! is followed at once; server-side trouble on the same provider backs off exponentially with
//! jitter. No attempt starts once the request's time budget (`[upstream] retry_budget_ms`) is
//! spent, however many accounts are left.

use std::time::Duration;

use tokio::time::Instant;

use crate::errors::{ErrorKind, GatewayError};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The wait before retry number `n` (1 = the first retry) after server-side trouble, before
/// jitter: 100 ms, 200 ms, 400 ms, ... up to 2 s.
pub fn backoff(n: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << n.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// Trouble that may be the provider's as a whole (not the account's): worth a pause before the
/// same provider is asked again.
fn server_side(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::UpstreamServerError
            | ErrorKind::UpstreamOverloaded
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamUnreachable
            | ErrorKind::UpstreamInvalidResponse
            | ErrorKind::UpstreamStreamInterrupted
    )
}

/// Paces the attempts of one request.
pub struct Pacer {
    started: Instant,
    budget: Duration,
    /// the provider that failed last, if its trouble was server-side
    last_server_failure: Option<String>,
    retries: u32,
}

impl Pacer {
    pub fn new(budget: Duration) -> Self {
        Self { started: Instant::now(), budget, last_server_failure: None, retries: 0 }
    }

    /// Note a failed attempt on `provider`.
    pub fn failed(&mut self, provider: &str, e: &GatewayError) {
        self.retries += 1;
        self.last_server_failure = server_side(e.kind).then(|| provider.to_owned());
    }

    /// The wait before the next attempt, on `provider`, with `jitter` in [0, 1) taking up to
    /// half of it away.
    pub fn wait(&self, provider: &str, jitter: f64) -> Duration {
        match &self.last_server_failure {
            Some(p) if p == provider => backoff(self.retries).mul_f64(1.0 - jitter.clamp(0.0, 1.0) / 2.0),
            _ => Duration::ZERO,
        }
    }

    /// Wait as needed before an attempt on `provider`; false when the request's time budget
    /// does not allow another attempt.
    pub async fn before(&mut self, provider: &str) -> bool {
        let wait = self.wait(provider, rand::random::<f64>());
        if self.retries > 0 && self.started.elapsed() + wait >= self.budget {
            return false;
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind) -> GatewayError {
        GatewayError::new(kind, "x")
    }

    #[test]
    fn backoff_doubles_up_to_two_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(9), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_on_the_same_provider_back_off_with_jitter() {
        let mut p = Pacer::new(Duration::from_secs(30));
        assert!(p.before("a").await, "the first attempt starts at once");
        p.failed("a", &err(ErrorKind::UpstreamServerError));
        assert!(p.wait("a", 0.0) == Duration::from_millis(100) && p.wait("a", 0.999) > Duration::from_millis(50));
        let t = Instant::now();
        assert!(p.before("a").await);
        let waited = t.elapsed();
        assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&waited), "{waited:?}");
        p.failed("a", &err(ErrorKind::UpstreamTimeout));
        let t = Instant::now();
        assert!(p.before("a").await);
        assert!(t.elapsed() >= Duration::from_millis(100), "the second retry waits longer");
    }

    #[tokio::test(start_paused = true)]
    async fn another_provider_or_another_account_after_a_rate_limit_is_tried_at_once() {
        let mut p = Pacer::new(Duration::from_secs(30));
        p.failed("a", &err(ErrorKind::UpstreamServerError));
        assert_eq!(p.wait("b", 0.0), Duration::ZERO, "another provider is not held back");
        p.failed("a", &err(ErrorKind::UpstreamRateLimited));
        let t = Instant::now();
        assert!(p.before("a").await);
        assert_eq!(t.elapsed(), Duration::ZERO, "another account of a rate-limited provider goes at once");
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempt_starts_once_the_time_budget_is_spent() {
        let mut p = Pacer::new(Duration::from_secs(1));
        assert!(p.before("a").await);
        tokio::time::advance(Duration::from_millis(950)).await;
        p.failed("a", &err(ErrorKind::UpstreamServerError));
        // 950 ms spent + at least 50 ms of backoff reaches the budget
        assert!(!p.before("a").await);
        // even with no backoff due, a spent budget ends the request
        p.failed("a", &err(ErrorKind::UpstreamRateLimited));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(!p.before("b").await);
    }
}
