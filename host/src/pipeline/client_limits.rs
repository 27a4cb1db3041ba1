//! The gateway's own limits on its clients (`[client_limits]`), in requests and tokens
//! per minute, for all clients together and for each client key, with governor's GCRA (a full
//! minute's allowance may be used at once; it refills evenly). A client over a limit gets a 429
//! whose `Retry-After` is when its request would conform; a request larger than a whole
//! minute's token allowance gets a 400. Tokens are the prompt estimate plus `max_tokens` (or the
//! quota default), charged when admitted. With Redis (`[quota] redis_url`) the allowances are
//! shared by every gateway (one Lua script checks and takes them all, on Redis' clock; a client
//! key is named there by a hash of it); while Redis is away each gateway counts alone. The
//! per-key limits here are for static keys; a virtual key has limits of its own, reserved in the
//! quota ledger (`crate::keys::budget`).

use std::num::NonZeroU32;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::config::{ClientLimitsConfig, Config};
use crate::errors::{ErrorKind, GatewayError};
use crate::principal::Principal;
use crate::quota::remote::Remote;

const KEY_RPM: &str = "requests per minute for this API key";
const KEY_TPM: &str = "tokens per minute for this API key";
const ALL_RPM: &str = "requests per minute for this gateway";
const ALL_TPM: &str = "tokens per minute for this gateway";

/// How a client key is named in Redis: a hash, never the key.
fn key_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

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

fn not_until(n: &NotUntil<<DefaultClock as Clock>::Instant>) -> std::time::Duration {
    n.wait_time_from(DefaultClock::default().now())
}

fn limited(what: &str, wait: std::time::Duration) -> GatewayError {
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

    /// Admit one request from `client`.
    /// (`tokens()` is asked only when a tokens limit is set.)
    pub async fn admit(
        &self,
        config: &Config,
        remote: Option<&Arc<Remote>>,
        client: &Principal,
        tokens: impl FnOnce() -> u32,
    ) -> Result<(), GatewayError> {
        let Some(l) = self.limiters(&config.client_limits) else { return Ok(()) };
        let c = &config.client_limits;
        let tokens = if c.tpm > 0 || c.per_key_tpm > 0 { tokens().max(1) } else { 1 };
        if client.key_index().is_some() && c.per_key_tpm > 0 && tokens > c.per_key_tpm {
            return Err(too_large("this API key's tokens-per-minute limit", tokens));
        }
        if c.tpm > 0 && tokens > c.tpm {
            return Err(too_large("the gateway's tokens-per-minute limit", tokens));
        }
        if let Some(remote) = remote.filter(|r| r.is_up()) {
            let mut checks: Vec<(String, u32, u32)> = Vec::with_capacity(4);
            let mut what: Vec<&str> = Vec::with_capacity(4);
            if let Some(key) = client.key(&config.server) {
                let id = key_id(key.expose());
                if c.per_key_rpm > 0 {
                    checks.push((format!("fwl:{{clients}}:{id}:rpm"), c.per_key_rpm, 1));
                    what.push(KEY_RPM);
                }
                if c.per_key_tpm > 0 {
                    checks.push((format!("fwl:{{clients}}:{id}:tpm"), c.per_key_tpm, tokens));
                    what.push(KEY_TPM);
                }
            }
            if c.rpm > 0 {
                checks.push(("fwl:{clients}:all:rpm".to_owned(), c.rpm, 1));
                what.push(ALL_RPM);
            }
            if c.tpm > 0 {
                checks.push(("fwl:{clients}:all:tpm".to_owned(), c.tpm, tokens));
                what.push(ALL_TPM);
            }
            if checks.is_empty() {
                return Ok(());
            }
            match remote.admit_clients(&checks).await {
                Ok(None) => return Ok(()),
                Ok(Some((i, wait))) => return Err(limited(what.get(i).copied().unwrap_or(ALL_RPM), wait)),
                Err(()) => {} // Redis is away: count here
            }
        }
        let n = NonZeroU32::new(tokens).unwrap_or(NonZeroU32::MIN);
        if let (Some(key), Some(lim)) = (client.key_index(), &l.key_rpm) {
            lim.check_key(&key).map_err(|nu| limited(KEY_RPM, not_until(&nu)))?;
        }
        if let (Some(key), Some(lim)) = (client.key_index(), &l.key_tpm) {
            match lim.check_key_n(&key, n) {
                Ok(Ok(())) => {}
                Ok(Err(nu)) => return Err(limited(KEY_TPM, not_until(&nu))),
                Err(_) => return Err(too_large("this API key's tokens-per-minute limit", tokens)),
            }
        }
        if let Some(lim) = &l.rpm {
            lim.check().map_err(|nu| limited(ALL_RPM, not_until(&nu)))?;
        }
        if let Some(lim) = &l.tpm {
            match lim.check_n(n) {
                Ok(Ok(())) => {}
                Ok(Err(nu)) => return Err(limited(ALL_TPM, not_until(&nu))),
                Err(_) => return Err(too_large("the gateway's tokens-per-minute limit", tokens)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ClientLimits {
        fn admit_now(&self, config: &Config, client: Principal, tokens: u32) -> Result<(), GatewayError> {
            futures_util::FutureExt::now_or_never(self.admit(config, None, &client, || tokens))
                .expect("without Redis admission is decided at once")
        }
    }

    fn config(c: ClientLimitsConfig) -> Config {
        Config { client_limits: c, ..Config::default() }
    }

    /// a request's tokens: its prompt and its `max_tokens`
    fn needs(prompt: u32, max: u32) -> u32 {
        prompt + max
    }

    #[test]
    fn without_limits_everything_is_admitted() {
        let l = ClientLimits::default();
        for _ in 0..1000 {
            assert!(l.admit_now(&Config::default(), Principal::Key { index: 0 }, needs(10, 10)).is_ok());
        }
    }

    #[test]
    fn each_key_has_its_own_allowance_and_the_rejection_says_when_to_retry() {
        let l = ClientLimits::default();
        let c = config(ClientLimitsConfig { per_key_rpm: 2, ..ClientLimitsConfig::default() });
        assert!(l.admit_now(&c, Principal::Key { index: 0 }, needs(1, 1)).is_ok());
        assert!(l.admit_now(&c, Principal::Key { index: 0 }, needs(1, 1)).is_ok());
        let e = l.admit_now(&c, Principal::Key { index: 0 }, needs(1, 1)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ClientRateLimited);
        let wait = e.retry_after.unwrap();
        // two per minute: one more every 30 s
        assert!(wait > std::time::Duration::from_secs(29) && wait <= std::time::Duration::from_secs(30), "{wait:?}");
        assert!(l.admit_now(&c, Principal::Key { index: 1 }, needs(1, 1)).is_ok(), "another key is not affected");
    }

    #[test]
    fn tokens_count_the_prompt_and_max_tokens_and_an_oversized_request_is_a_400() {
        let l = ClientLimits::default();
        let c = config(ClientLimitsConfig { tpm: 1000, ..ClientLimitsConfig::default() });
        assert!(l.admit_now(&c, Principal::Anyone, needs(100, 500)).is_ok());
        let e = l.admit_now(&c, Principal::Anyone, needs(100, 500)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ClientRateLimited);
        let e = l.admit_now(&c, Principal::Anyone, needs(100, 5000)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidValue);
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn changed_limits_take_effect_with_fresh_allowances() {
        let l = ClientLimits::default();
        let one = config(ClientLimitsConfig { rpm: 1, ..ClientLimitsConfig::default() });
        assert!(l.admit_now(&one, Principal::Anyone, needs(1, 1)).is_ok());
        assert!(l.admit_now(&one, Principal::Anyone, needs(1, 1)).is_err());
        let two = config(ClientLimitsConfig { rpm: 2, ..ClientLimitsConfig::default() });
        assert!(l.admit_now(&two, Principal::Anyone, needs(1, 1)).is_ok());
    }
}
