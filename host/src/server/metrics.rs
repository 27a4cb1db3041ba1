//! `GET /metrics`: the gateway's registry ([`crate::telemetry::Metrics`]) and, read from the
//! live gateway at this moment, what reflects state: usage totals, the usage writer, Redis,
//! guest instances, requests in flight, the configuration generation, every quota pool's limits
//! and what is left of them, and the accounts resting now. Quota series name a pool by its
//! provider, pool name and its accounts' labels, never by a key.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::IntoResponse;
use http::header;

use crate::accounts::health::Health;
use crate::app::App;
use crate::quota::spec::code;
use crate::registry::Snapshot;
use crate::telemetry::state::{QuotaSample, UsageTotal, UsageWriter};
use crate::telemetry::{Scrape, metrics::CONTENT_TYPE};

pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let scrape = scrape(&app);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], app.metrics.render(&scrape))
}

fn scrape(app: &App) -> Scrape {
    let snapshot = app.registry.snapshot();
    let usage = app
        .usage
        .totals()
        .into_iter()
        .map(|((provider, model, outcome), t)| UsageTotal {
            provider,
            model,
            outcome: outcome.as_str(),
            requests: t.requests,
            prompt_tokens: t.prompt_tokens,
            completion_tokens: t.completion_tokens,
        })
        .collect();
    let u = &app.usage;
    Scrape {
        usage,
        writer: UsageWriter {
            dropped: u.dropped(),
            stored: u.stored(),
            store_failures: u.store_failures(),
            backlog: u.backlog(),
            writer_restarts: u.writer_restarts(),
        },
        redis: app.ledger.remote().map(|r| (r.is_up(), r.fallbacks())),
        guest_instances_live: crate::runtime::live_instances() as u64,
        guest_instances_idle: idle_instances(&snapshot) as u64,
        requests_in_flight: app.admission.in_use() as u64,
        config_generation: snapshot.generation,
        quota: quota(&snapshot),
        cooldowns_active: cooldowns(&snapshot),
    }
}

/// Warm provider instances across the snapshot's components (each component once).
fn idle_instances(snapshot: &Snapshot) -> usize {
    let mut seen: Vec<*const crate::runtime::ProviderComponent> = Vec::new();
    let mut idle = 0;
    for p in &snapshot.providers {
        let ptr = Arc::as_ptr(&p.component);
        if !seen.contains(&ptr) {
            seen.push(ptr);
            idle += p.component.warm();
        }
    }
    idle
}

/// Every pool's limits with what they have left, as the ledger counts them now.
fn quota(snapshot: &Snapshot) -> Vec<QuotaSample> {
    let now_ms = crate::clock::now_ms();
    let mut out = Vec::new();
    for p in &snapshot.providers {
        let mut seen: Vec<&str> = Vec::new();
        for a in &p.accounts {
            if seen.contains(&a.pool.as_str()) {
                continue;
            }
            seen.push(&a.pool);
            let labels: Vec<&str> = p.pool_of(a).map(|x| x.label.as_str()).collect();
            let account = labels.join(",");
            for (scope, headroom) in a.quota_pool.books(&p.quota_plan, now_ms) {
                for h in headroom {
                    out.push(QuotaSample {
                        provider: p.id.clone(),
                        pool: a.pool.clone(),
                        account: account.clone(),
                        model: scope.clone(),
                        dimension: code(h.dim, h.window),
                        limit: h.limit,
                        used: h.used,
                    });
                }
            }
        }
    }
    out
}

/// Accounts resting now (cooling down, or out of rotation until a check passes), per provider.
fn cooldowns(snapshot: &Snapshot) -> Vec<(String, u64)> {
    let now = Instant::now();
    snapshot
        .providers
        .iter()
        .map(|p| {
            let resting = p
                .accounts
                .iter()
                .filter(|a| match a.health.get() {
                    Health::Ok => false,
                    Health::Cooling { until, .. } => until > now,
                    Health::Disabled { .. } => true,
                })
                .count();
            (p.id.clone(), resting as u64)
        })
        .collect()
}
