//! Re-checking disabled accounts: every few seconds, each account whose re-check is due gets the
//! provider's cheapest call through its component (`check`). A pass puts it back into rotation;
//! a refusal keeps it out with the next check further away; anything inconclusive (the
//! provider is down, rate-limited) tries again later.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ProviderEntry, Registry};
use crate::accounts::Account;
use crate::accounts::health::HealthRecord;
use crate::bindings::wit;

const EVERY: Duration = Duration::from_secs(5);
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// The verdict of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid(String),
    RateLimited(String),
    Unreachable(String),
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid(_) => "invalid",
            Verdict::RateLimited(_) => "rate-limited",
            Verdict::Unreachable(_) => "unreachable",
        }
    }
}

/// Check one account with its provider's cheapest call.
pub async fn check(p: &ProviderEntry, account: &Arc<Account>) -> Verdict {
    let run = async {
        let mut lease = p.component.acquire(Some(p.io.clone()), vec![account.clone()]).await.map_err(|f| f.message)?;
        lease.check(&p.wit_config, 0).await.map_err(|f| f.message)
    };
    match tokio::time::timeout(CHECK_TIMEOUT, run).await {
        Err(_) => Verdict::Unreachable("the check timed out".into()),
        Ok(Err(component)) => Verdict::Unreachable(component),
        Ok(Ok(Ok(()))) => Verdict::Valid,
        Ok(Ok(Err(e))) => {
            let message = p.io.secrets.scrub(&e.message).into_owned();
            match e.kind {
                wit::ErrorKind::Auth | wit::ErrorKind::Permission | wit::ErrorKind::PaymentRequired => {
                    Verdict::Invalid(message)
                }
                wit::ErrorKind::RateLimited | wit::ErrorKind::QuotaExhausted => Verdict::RateLimited(message),
                _ => Verdict::Unreachable(message),
            }
        }
    }
}

/// Write every account's health to `path` when it changed since the last write.
fn publish_health(
    snapshot: &crate::registry::Snapshot,
    path: &std::path::Path,
    last: &mut BTreeMap<String, HealthRecord>,
) {
    let now = Instant::now();
    let now_ms = crate::clock::now_ms();
    let mut current = BTreeMap::new();
    for p in &snapshot.providers {
        for a in &p.accounts {
            if a.secret.is_some() {
                current.insert(a.id.clone(), HealthRecord::of(&p.id, &a.label, &a.health.get(), now, now_ms));
            }
        }
    }
    let same = current.len() == last.len()
        && current.iter().all(|(k, v)| last.get(k).is_some_and(|o| o.status == v.status && o.reason == v.reason));
    if same {
        return;
    }
    match serde_json::to_vec_pretty(&current) {
        Ok(bytes) => {
            if let Err(e) = crate::vault::key::write_atomic(path, &bytes) {
                tracing::warn!("cannot write {}: {e}", path.display());
                return;
            }
            *last = current;
        }
        Err(e) => tracing::warn!("health state: {e}"),
    }
}

/// Keep re-checking disabled accounts in the background, and keep the health file current.
pub fn spawn(registry: Arc<Registry>, webhooks: Arc<crate::webhooks::Webhooks>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut written = BTreeMap::new();
        loop {
            tick.tick().await;
            let snapshot = registry.snapshot();
            publish_health(&snapshot, &snapshot.config.vault.health_file, &mut written);
            let now = Instant::now();
            for p in &snapshot.providers {
                for a in &p.accounts {
                    if !a.health.claim_check(now) {
                        continue;
                    }
                    let (p, a, webhooks) = (p.clone(), a.clone(), webhooks.clone());
                    tokio::spawn(async move {
                        let verdict = check(&p, &a).await;
                        let now = Instant::now();
                        match &verdict {
                            // a rate-limited key is a working key
                            Verdict::Valid | Verdict::RateLimited(_) => {
                                tracing::info!(provider = %p.id, account = %a.label, "account passed its re-check and is back in rotation");
                                a.health.checked(true, None, now);
                                // only disabled accounts are re-checked: this is a recovery
                                webhooks.emit(crate::webhooks::Event::AccountRecovered {
                                    provider: p.id.clone(),
                                    account_id: a.id.clone(),
                                    account: a.label.clone(),
                                    how: "recheck",
                                });
                            }
                            Verdict::Invalid(reason) => {
                                tracing::warn!(provider = %p.id, account = %a.label, "account still refused: {reason}");
                                a.health.checked(false, Some(reason), now);
                            }
                            Verdict::Unreachable(reason) => {
                                tracing::info!(provider = %p.id, account = %a.label, "re-check inconclusive: {reason}");
                                a.health.checked(false, None, now);
                            }
                        }
                    });
                }
            }
        }
    });
}
