//! Gathering the status view from the running gateway: the current snapshot (providers,
//! accounts, components), account health, the quota ledger, live statistics, the usage writer
//! and the stores. Reads only; the one query it makes (the usage store's `SELECT 1`) is bounded
//! in time.

use std::time::{Duration, Instant};

use super::view::{Account, LastError, Pool, Provider, Quota, Redis, Server, Status, Storage};
use crate::accounts::health::HealthRecord;
use crate::app::App;
use crate::quota::spec::code;
use crate::registry::ProviderEntry;

/// How long the usage store may take to answer the status check.
const STORE_CHECK: Duration = Duration::from_secs(2);

pub async fn collect(app: &App) -> Status {
    let snapshot = app.registry.snapshot();
    let now = Instant::now();
    let now_ms = crate::clock::now_ms();
    let storage = storage(app).await;
    let server = Server {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        now_ms,
        started_at_ms: app.started_at_ms,
        uptime_secs: app.started.elapsed().as_secs(),
        config_generation: snapshot.generation,
        config_path: snapshot.config_path.as_ref().map(|p| p.display().to_string()),
        ready: snapshot.ready(),
        problems: snapshot.problems.clone(),
        in_flight: app.admission.in_use(),
        storage,
        redis: app.ledger.remote().map(|r| Redis { up: r.is_up(), fallbacks: r.fallbacks() }),
    };
    let providers = snapshot.providers.iter().map(|p| provider(app, p, now, now_ms)).collect();
    Status { server, providers, components: app.reloader.components.list() }
}

async fn storage(app: &App) -> Storage {
    let error = match tokio::time::timeout(STORE_CHECK, app.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", STORE_CHECK.as_secs())),
    };
    Storage {
        store: app.store.describe(),
        ok: error.is_none(),
        error,
        usage_recorded: app.usage.recorded(),
        usage_stored: app.usage.stored(),
        usage_dropped: app.usage.dropped(),
    }
}

fn provider(app: &App, p: &ProviderEntry, now: Instant, now_ms: u64) -> Provider {
    let mut accounts: Vec<Account> = p
        .accounts
        .iter()
        .map(|a| {
            let h = HealthRecord::of(&p.id, &a.label, &a.health.get(), now, now_ms);
            let last_error =
                a.health.last_error().map(|(at_ms, message)| LastError { at_ms, message, account: a.label.clone() });
            Account {
                id: a.id.clone(),
                label: a.label.clone(),
                pool: a.pool.clone(),
                enabled: true,
                // a rest that has ended is over, whether or not a request has noticed yet
                state: if h.status == "cooling" && h.until_ms.is_some_and(|u| u <= now_ms) {
                    "ok".to_owned()
                } else {
                    h.status
                },
                reason: h.reason,
                until_ms: h.until_ms,
                last_error,
            }
        })
        .collect();
    for a in &mut accounts {
        if a.state == "ok" {
            a.reason = None;
            a.until_ms = None;
        }
    }
    accounts.extend(p.disabled_accounts.iter().map(|(id, label, pool)| Account {
        id: id.clone(),
        label: label.clone(),
        pool: pool.clone(),
        enabled: false,
        state: "off".to_owned(),
        reason: Some("disabled by an operator".to_owned()),
        until_ms: None,
        last_error: None,
    }));
    let last_error = accounts.iter().filter_map(|a| a.last_error.clone()).max_by_key(|e| e.at_ms);

    // one entry per pool, however many accounts share it
    let mut pools = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for a in &p.accounts {
        if seen.contains(&a.pool.as_str()) {
            continue;
        }
        seen.push(&a.pool);
        for (scope, headroom) in a.quota_pool.books(&p.quota_plan, now_ms) {
            let quota = headroom
                .iter()
                .map(|h| Quota {
                    name: code(h.dim, h.window).to_owned(),
                    used: h.used,
                    limit: h.limit,
                    resets_at_ms: (h.reset_in_ms > 0).then(|| now_ms.saturating_add(h.reset_in_ms)),
                    source: if h.learned { "learned" } else { "configured" }.to_owned(),
                })
                .collect();
            pools.push(Pool { pool: a.pool.clone(), scope, quota });
        }
    }
    Provider {
        id: p.id.clone(),
        component: p.component.name.clone(),
        component_version: p.component.manifest.version.clone(),
        local: p.local,
        in_flight: p.in_flight.load(std::sync::atomic::Ordering::Relaxed),
        accounts,
        pools,
        models: app.stats.detail(&p.id),
        last_error,
    }
}
