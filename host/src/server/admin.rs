//! The admin API, under `/admin/`, behind the admin key (`Authorization: Bearer`, compared in
//! constant time; 401 otherwise; off unless `server.admin_key` is set). Accounts can be listed,
//! added, removed, enabled, disabled and checked; secrets are write-only (they go in, never come
//! out); every change is written to the audit log with the caller's address. `GET /admin/status`
//! is the live view the CLI and the dashboard read; `GET /admin/openapi.json` documents it all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::accounts::audit;
use crate::accounts::health::describe;
use crate::accounts::manage::Manager;
use crate::app::App;
use crate::config::SecretString;
use crate::errors::{ErrorKind, GatewayError};
use crate::registry::Event;
use crate::registry::recheck;
use crate::vault::{AccountTier, NewAccount, Record, Vault, VaultError};

/// The `/admin/` routes, each behind the admin key.
pub fn router(app: Arc<App>) -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/admin/accounts", get(list).post(add))
        .route("/admin/accounts/{id}", axum::routing::delete(remove))
        .route("/admin/accounts/{id}/enable", post(enable))
        .route("/admin/accounts/{id}/disable", post(disable))
        .route("/admin/accounts/{id}/check", post(check))
        .route("/admin/audit", get(audit_log))
        .route("/admin/route/explain", post(explain_route))
        .route("/admin/status", get(status))
        .route("/admin/stats", get(stats))
        .route("/admin/requests", get(recent_requests))
        .route("/admin/requests/{id}/bodies", get(request_bodies))
        .route("/admin/cache", axum::routing::delete(purge_cache))
        .route("/admin/keys", get(super::admin_keys::list).post(super::admin_keys::create))
        .route("/admin/keys/{id}", axum::routing::patch(super::admin_keys::update).delete(super::admin_keys::revoke))
        .route("/admin/keys/{id}/rotate", post(super::admin_keys::rotate))
        .route("/admin/webhooks/deliveries", get(webhook_deliveries))
        .route("/admin/openapi.json", get(openapi))
        .route_layer(axum::middleware::from_fn_with_state(app, require_admin))
}

/// The admin key check.
async fn require_admin(State(app): State<Arc<App>>, headers: HeaderMap, req: Request, next: Next) -> Response {
    let snapshot = app.registry.snapshot();
    let Some(key) = &snapshot.config.server.admin_key else {
        return GatewayError::new(
            ErrorKind::AdminOff,
            "The admin API is off: set server.admin_key (e.g. \"${FREEWAY_ADMIN_KEY}\").",
        )
        .into_response();
    };
    let given = crate::pipeline::auth::presented(&headers).unwrap_or("");
    if bool::from(key.expose().as_bytes().ct_eq(given.as_bytes())) {
        next.run(req).await
    } else {
        GatewayError::new(ErrorKind::InvalidApiKey, "The admin API needs the admin key as 'Authorization: Bearer ...'.")
            .into_response()
    }
}

fn vault_error(e: VaultError) -> GatewayError {
    match e {
        VaultError::NotFound(m) => GatewayError::new(ErrorKind::AccountNotFound, format!("No account {m}.")),
        VaultError::Invalid(m) => GatewayError::new(ErrorKind::Conflict, m),
        VaultError::Locked(m) => {
            GatewayError::new(ErrorKind::Overloaded, m).with_retry_after(Some(std::time::Duration::from_secs(1)))
        }
        other => GatewayError::internal(other.to_string()),
    }
}

fn actor(addr: &SocketAddr) -> String {
    format!("admin-api:{addr}")
}

/// A record as the API shows it: no secret, the live health when the gateway uses it.
fn view(r: &Record, snapshot: &crate::registry::Snapshot) -> Value {
    let now = Instant::now();
    let live = snapshot.providers.iter().flat_map(|p| &p.accounts).find(|a| a.id == r.id);
    let status = if !r.enabled {
        "disabled by an operator".to_owned()
    } else {
        live.map_or_else(|| "not in use".to_owned(), |a| describe(&a.health.get(), now))
    };
    let terms = snapshot.catalog.provider(&r.provider).map(|p| {
        json!({ "trains_on_data": p.terms.trains_on_data, "evaluation_only": p.terms.evaluation_only, "notes": p.terms.notes })
    });
    json!({
        "id": r.id,
        "provider": r.provider,
        "label": r.label,
        "key": r.masked,
        "pool": r.pool,
        "tier": r.tier,
        "enabled": r.enabled,
        "settings": r.settings,
        "status": status,
        "created_at_ms": r.created_at_ms,
        "terms": terms,
    })
}

/// Vault work (file locks, argon2 for a passphrase vault, fsync) on a blocking thread, never on
/// an async worker.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
) -> Result<T, GatewayError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GatewayError::internal(format!("a vault task failed: {e}")))?
        .map_err(vault_error)
}

/// An account change on behalf of the caller at `addr`, under the current configuration, on a
/// blocking thread.
async fn change<T: Send + 'static>(
    app: &App,
    addr: &SocketAddr,
    f: impl FnOnce(&Manager<'_>) -> Result<T, VaultError> + Send + 'static,
) -> Result<T, GatewayError> {
    let snapshot = app.registry.snapshot();
    let actor = actor(addr);
    blocking(move || {
        let m = Manager {
            vault: &snapshot.config.vault,
            catalog: &snapshot.catalog,
            actor,
            passphrase: None,
            configured: snapshot.config.providers.iter().map(|p| p.id.get_ref().clone()).collect(),
        };
        f(&m)
    })
    .await
}

async fn list(State(app): State<Arc<App>>) -> Result<Json<Value>, GatewayError> {
    let snapshot = app.registry.snapshot();
    let paths = snapshot.config.vault.paths();
    let records =
        blocking(
            move || {
                if paths.vault.exists() { Ok(Vault::open(&paths, None)?.records().to_vec()) } else { Ok(Vec::new()) }
            },
        )
        .await?;
    Ok(Json(json!({ "object": "list", "data": records.iter().map(|r| view(r, &snapshot)).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    provider: String,
    key: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    pool: Option<String>,
    #[serde(default)]
    settings: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    tier: Option<AccountTier>,
}

async fn add(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, GatewayError> {
    let body: AddBody = serde_json::from_slice(&body).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidValue,
            format!("Invalid account: {e}. Expected {{\"provider\", \"key\", \"label\"?, \"pool\"?, \"settings\"?}}."),
        )
    })?;
    let new = NewAccount {
        provider: body.provider,
        label: body.label,
        pool: body.pool,
        secret: SecretString::new(body.key.trim()),
        settings: body.settings,
        tier: body.tier.unwrap_or_default(),
    };
    let (record, warnings) = change(&app, &addr, move |m| m.add(new)).await?;
    app.reloader.send(Event::VaultChanged).await;
    app.sync_audit().await;
    let mut v = view(&record, &app.registry.snapshot());
    v["warnings"] = json!(warnings);
    Ok((http::StatusCode::CREATED, Json(v)).into_response())
}

async fn remove(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Result<Json<Value>, GatewayError> {
    let r = change(&app, &addr, move |m| m.remove(&id)).await?;
    app.reloader.send(Event::VaultChanged).await;
    app.sync_audit().await;
    Ok(Json(json!({ "id": r.id, "deleted": true })))
}

async fn set_enabled(app: Arc<App>, addr: SocketAddr, id: String, enabled: bool) -> Result<Json<Value>, GatewayError> {
    let r = change(&app, &addr, move |m| m.set_enabled(&id, enabled)).await?;
    let snapshot = app.registry.snapshot();
    // an operator's enable also clears the gateway's own verdict
    if enabled {
        for p in &snapshot.providers {
            for a in p.accounts.iter().filter(|a| a.id == r.id) {
                if a.health.reset() {
                    app.webhooks.emit(crate::webhooks::Event::AccountRecovered {
                        provider: p.id.clone(),
                        account_id: a.id.clone(),
                        account: a.label.clone(),
                        how: "manual",
                    });
                }
            }
        }
    }
    app.reloader.send(Event::VaultChanged).await;
    app.sync_audit().await;
    Ok(Json(view(&r, &app.registry.snapshot())))
}

async fn enable(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Result<Json<Value>, GatewayError> {
    set_enabled(app, addr, id, true).await
}

async fn disable(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Result<Json<Value>, GatewayError> {
    set_enabled(app, addr, id, false).await
}

async fn check(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Result<Json<Value>, GatewayError> {
    let snapshot = app.registry.snapshot();
    for p in &snapshot.providers {
        if let Some(a) = p.accounts.iter().find(|a| a.id == id || a.label == id) {
            let verdict = recheck::check(p, a).await;
            let detail = match &verdict {
                recheck::Verdict::Valid => None,
                recheck::Verdict::Invalid(m) | recheck::Verdict::RateLimited(m) | recheck::Verdict::Unreachable(m) => {
                    Some(m.clone())
                }
            };
            let (journal, actor) = (snapshot.config.vault.audit_log.clone(), actor(&addr));
            let (account, provider, label, result) =
                (a.id.clone(), p.id.clone(), a.label.clone(), verdict.label().to_owned());
            blocking(move || {
                let entry = audit::AuditEntry {
                    at_ms: crate::clock::now_ms(),
                    actor: &actor,
                    origin: None,
                    action: "account.check",
                    account: Some(&account),
                    provider: Some(&provider),
                    label: Some(&label),
                    masked_key: None,
                    detail: Some(&result),
                };
                audit::record(&journal, &entry);
                Ok(())
            })
            .await?;
            app.sync_audit().await;
            return Ok(Json(json!({ "id": a.id, "provider": p.id, "result": verdict.label(), "detail": detail })));
        }
    }
    Err(GatewayError::new(
        ErrorKind::AccountNotFound,
        format!("No account {id} is in use (disabled accounts cannot be checked)."),
    ))
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    since_ms: Option<i64>,
    #[serde(default)]
    action: Option<String>,
}

/// `GET /admin/audit`: every admin action, from the usage store (the journal's newest lines
/// copied first).
async fn audit_log(State(app): State<Arc<App>>, Query(q): Query<AuditQuery>) -> Result<Json<Value>, GatewayError> {
    app.sync_audit().await;
    let limit = q.limit.unwrap_or(100).clamp(0, 10_000);
    let rows = app
        .store
        .audit_recent(limit, q.since_ms.unwrap_or(0).max(0), q.action.as_deref())
        .await
        .map_err(|e| GatewayError::internal(format!("reading the audit log: {e}")))?;
    Ok(Json(json!({ "object": "list", "data": rows })))
}

/// `GET /admin/requests/{id}/bodies`: what `[body_log]` kept of one request (by its
/// `x-request-id`).
async fn request_bodies(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Value>, GatewayError> {
    let kept = app.store.bodies(&id).await.map_err(|e| GatewayError::internal(format!("reading the body log: {e}")))?;
    match kept {
        Some(row) => Ok(Json(json!(row))),
        None => {
            let why = if app.registry.snapshot().config.body_log.enabled {
                "none were kept for it (older than [body_log] retention_hours, or not an API request)"
            } else {
                "[body_log] is off"
            };
            Err(GatewayError::new(ErrorKind::RecordNotFound, format!("No bodies for request {id}: {why}.")))
        }
    }
}

/// `GET /admin/webhooks/deliveries`: the latest webhook deliveries (at most 256, oldest
/// first), each with its state and attempts; no secret, no body.
async fn webhook_deliveries(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({ "object": "list", "data": app.webhooks.deliveries() }))
}

/// `GET /admin/status`: providers, accounts, quotas, latency, components and the server, now.
async fn status(State(app): State<Arc<App>>) -> Json<crate::status::Status> {
    Json(crate::status::collect(&app).await)
}

#[derive(Deserialize)]
struct StatsQuery {
    #[serde(default)]
    since: Option<String>,
    /// only this client key's usage: a virtual key's name or id, or `key-N`
    #[serde(default)]
    key: Option<String>,
}

/// `GET /admin/stats?since=24h[&key=NAME]`: usage analytics over the period (30m, 1h, 24h, 7d;
/// at most 31 d), for every client or only one.
async fn stats(State(app): State<Arc<App>>, Query(q): Query<StatsQuery>) -> Result<Json<Value>, GatewayError> {
    let period = crate::report::parse_period(q.since.as_deref().unwrap_or("24h"))
        .map_err(|m| GatewayError::new(ErrorKind::InvalidValue, m).with_param("since"))?;
    let names = app.keys.keys().iter().map(|k| (k.id.clone(), k.name.clone())).collect();
    let only = match q.key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        None => None,
        Some(k) if k.starts_with("key-") || k == "anyone" => {
            Some(if k == "anyone" { String::new() } else { k.to_owned() })
        }
        Some(k) => Some(app.keys.find(k).map(|v| v.id.clone()).ok_or_else(|| {
            GatewayError::new(ErrorKind::RecordNotFound, format!("No client key named {k:?}.")).with_param("key")
        })?),
    };
    let clients = crate::report::Clients { only, names };
    let report = crate::report::build(&app.store, app.registry.snapshot(), period, clients)
        .await
        .map_err(|e| GatewayError::new(ErrorKind::NotReady, e))?;
    serde_json::to_value(report).map(Json).map_err(|e| GatewayError::internal(e.to_string()))
}

#[derive(Deserialize)]
struct RequestsQuery {
    #[serde(default)]
    limit: Option<String>,
}

/// The most requests `GET /admin/requests` lists.
const MAX_LISTED: usize = 500;

/// `GET /admin/requests?limit=100`: the newest requests (at most 500), each with where it went
/// (provider, model, account, attempts), how it ended and how long it took.
async fn recent_requests(
    State(app): State<Arc<App>>,
    Query(q): Query<RequestsQuery>,
) -> Result<Json<Value>, GatewayError> {
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(text) => text.trim().parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            GatewayError::new(ErrorKind::InvalidValue, format!("limit must be a number from 1 to {MAX_LISTED}"))
                .with_param("limit")
        })?,
    };
    let limit = i64::try_from(limit.min(MAX_LISTED)).unwrap_or(100);
    let facts = app
        .store
        .usage_since(0, limit)
        .await
        .map_err(|e| GatewayError::new(ErrorKind::NotReady, format!("reading usage: {e}")))?;
    Ok(Json(json!({ "object": "list", "data": facts })))
}

#[derive(Deserialize)]
struct PurgeQuery {
    #[serde(default)]
    model: Option<String>,
}

/// `DELETE /admin/cache[?model=NAME]`: empty the response cache, or only the entries `NAME`
/// answered or was asked as (an alias, a model id, `provider/model`). Audited.
async fn purge_cache(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(q): Query<PurgeQuery>,
) -> Result<Json<Value>, GatewayError> {
    let model = q.model.filter(|m| !m.trim().is_empty());
    let purged =
        app.cache.purge(model.as_deref()).await.map_err(|e| {
            GatewayError::new(ErrorKind::NotReady, format!("The response cache could not be purged: {e}"))
        })?;
    let journal = app.registry.snapshot().config.vault.audit_log.clone();
    let (actor, detail) = (actor(&addr), format!("model={}; purged={purged}", model.as_deref().unwrap_or("*")));
    blocking(move || {
        let entry = audit::AuditEntry {
            at_ms: crate::clock::now_ms(),
            actor: &actor,
            origin: None,
            action: "cache.purge",
            account: None,
            provider: None,
            label: None,
            masked_key: None,
            detail: Some(&detail),
        };
        audit::record(&journal, &entry);
        Ok(())
    })
    .await?;
    app.sync_audit().await;
    Ok(Json(json!({ "object": "cache.purge", "model": model, "purged": purged, "backend": app.cache.backend_name() })))
}

/// The admin API's OpenAPI document, checked against real responses by the integration tests.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `POST /admin/route/explain`: the body is a chat completion request; the answer is the routing
/// decision for it (every candidate, its score and reason, or why it was dropped). Nothing is
/// sent upstream and no quota is taken.
async fn explain_route(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    match crate::pipeline::explain::dry_run(
        app.services(),
        &app.registry.snapshot(),
        &body,
        crate::principal::Principal::Anyone,
        true,
    )
    .await
    {
        Ok(d) => Json(crate::pipeline::explain::to_json(&d)).into_response(),
        Err(e) => e.into_response(),
    }
}
