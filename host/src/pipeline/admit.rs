//! Admission: the gateway's own limits on its clients (`[client_limits]`), in requests and tokens
//! per minute, for all clients together and for each client key, with governor's GCRA (a full
//! minute's allowance may be used at once; it refills evenly). A client over a limit gets a 429
//! whose `Retry-After` is when its request would conform; a request larger than a whole
//! minute's token allowance gets a 400. Tokens are the prompt estimate plus `max_tokens` (or the
//! quota default), charged when admitted.

use std::num::NonZeroU32;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};

use super::classify::Needs;
use crate::config::{ClientLimitsConfig, Config};
use crate::errors::{ErrorKind, GatewayError};

struct Limiters {
    config: ClientLimitsConfig,
    rpm: Option<DefaultDirectRateLimiter>,
    tpm: Option<DefaultDirectRateLimiter>,
    key_rpm: Option<DefaultKeyedRateLimiter<usize>>,
    key_tpm: Option<DefaultKeyedRateLimiter<usize>>,
}

fn quota(per_minute: u32) -> Option<Quota> {
    NonZeroU32::new(per_minute).map(Quota::per_minute)
}

impl Limiters {
    fn new(config: ClientLimitsConfig) -> Self {
        Self {
            config,
            rpm: quota(config.rpm).map(RateLimiter::direct),
            tpm: quota(config.tpm).map(RateLimiter::direct),
            key_rpm: quota(config.per_key_rpm).map(RateLimiter::keyed),
            key_tpm: quota(config.per_key_tpm).map(RateLimiter::keyed),
        }
    }
}

/// The limiters, rebuilt when `[client_limits]` changes (a reload keeps them otherwise).
#[derive(Default)]
pub struct ClientLimits {
    current: ArcSwapOption<Limiters>,
}

fn limited(what: &str, not_until: &NotUntil<<DefaultClock as Clock>::Instant>) -> GatewayError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    GatewayError::new(
        ErrorKind::ClientRateLimited,
        format!("Rate limit reached: {what}. Try again in {:.1} s.", wait.as_secs_f64()),
    )
    .with_retry_after(Some(wait.max(std::time::Duration::from_millis(1))))
}

fn too_large(what: &str, tokens: u32) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidValue,
        format!("This request may use {tokens} tokens, more than {what} allows in a whole minute; lower max_tokens."),
    )
    .with_param("max_tokens")
}

impl ClientLimits {
    fn limiters(&self, config: &ClientLimitsConfig) -> Option<Arc<Limiters>> {
        if *config == ClientLimitsConfig::default() {
            return None;
        }
        if let Some(l) = self.current.load_full().filter(|l| l.config == *config) {
            return Some(l);
        }
        let fresh = Arc::new(Limiters::new(*config));
        self.current.store(Some(fresh.clone()));
        Some(fresh)
    }

    /// Admit one request from the client holding key number `client` (if keys are configured).
    pub fn admit(&self, config: &Config, client: Option<usize>, needs: &Needs) -> Result<(), GatewayError> {
        let Some(l) = self.limiters(&config.client_limits) else { return Ok(()) };
        let output = needs.max_tokens.unwrap_or(config.quota.default_output_tokens);
        let tokens = needs.prompt_tokens.saturating_add(output).max(1);
        let n = NonZeroU32::new(tokens).unwrap_or(NonZeroU32::MIN);
        if let (Some(key), Some(lim)) = (client, &l.key_rpm) {
            lim.check_key(&key).map_err(|nu| limited("requests per minute for this API key", &nu))?;
        }
        if let (Some(key), Some(lim)) = (client, &l.key_tpm) {
            match lim.check_key_n(&key, n) {
                Ok(Ok(())) => {}
                Ok(Err(nu)) => return Err(limited("tokens per minute for this API key", &nu)),
                Err(_) => return Err(too_large("this API key's tokens-per-minute limit", tokens)),
            }
        }
        if let Some(lim) = &l.rpm {
            lim.check().map_err(|nu| limited("requests per minute for this gateway", &nu))?;
        }
        if let Some(lim) = &l.tpm {
            match lim.check_n(n) {
                Ok(Ok(())) => {}
                Ok(Err(nu)) => return Err(limited("tokens per minute for this gateway", &nu)),
                Err(_) => return Err(too_large("the gateway's tokens-per-minute limit", tokens)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(c: ClientLimitsConfig) -> Config {
        Config { client_limits: c, ..Config::default() }
    }

    fn needs(prompt: u32, max: u32) -> Needs {
        Needs { prompt_tokens: prompt, max_tokens: Some(max), ..Needs::default() }
    }

    #[test]
    fn without_limits_everything_is_admitted() {
        let l = ClientLimits::default();
        for _ in 0..1000 {
            assert!(l.admit(&Config::default(), Some(0), &needs(10, 10)).is_ok());
        }
    }

    #[test]
    fn each_key_has_its_own_allowance_and_the_rejection_says_when_to_retry() {
        let l = ClientLimits::default();
        let c = config(ClientLimitsConfig { per_key_rpm: 2, ..ClientLimitsConfig::default() });
        assert!(l.admit(&c, Some(0), &needs(1, 1)).is_ok());
        assert!(l.admit(&c, Some(0), &needs(1, 1)).is_ok());
        let e = l.admit(&c, Some(0), &needs(1, 1)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ClientRateLimited);
        let wait = e.retry_after.unwrap();
        // two per minute: one more every 30 s
        assert!(wait > std::time::Duration::from_secs(29) && wait <= std::time::Duration::from_secs(30), "{wait:?}");
        assert!(l.admit(&c, Some(1), &needs(1, 1)).is_ok(), "another key is not affected");
    }

    #[test]
    fn tokens_count_the_prompt_and_max_tokens_and_an_oversized_request_is_a_400() {
        let l = ClientLimits::default();
        let c = config(ClientLimitsConfig { tpm: 1000, ..ClientLimitsConfig::default() });
        assert!(l.admit(&c, None, &needs(100, 500)).is_ok());
        let e = l.admit(&c, None, &needs(100, 500)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ClientRateLimited);
        let e = l.admit(&c, None, &needs(100, 5000)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidValue);
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn changed_limits_take_effect_with_fresh_allowances() {
        let l = ClientLimits::default();
        let one = config(ClientLimitsConfig { rpm: 1, ..ClientLimitsConfig::default() });
        assert!(l.admit(&one, None, &needs(1, 1)).is_ok());
        assert!(l.admit(&one, None, &needs(1, 1)).is_err());
        let two = config(ClientLimitsConfig { rpm: 2, ..ClientLimitsConfig::default() });
        assert!(l.admit(&two, None, &needs(1, 1)).is_ok());
    }
}
