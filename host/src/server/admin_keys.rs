//! `/admin/keys`: virtual client keys through the admin API, as `freeway keys` does them. A new
//! or rotated secret is in the answer once; listings show the hint only. Every change is
//! audited and reloads this gateway's view at once (others within `[keys] refresh_ms`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::audit;
use crate::app::App;
use crate::errors::{ErrorKind, GatewayError};
use crate::keys::manage::{self, KeyPatch, ManageError, NewKey};
use crate::keys::{KeyRow, view};

fn manage_error(e: ManageError) -> GatewayError {
    match e {
        ManageError::NotFound(m) => GatewayError::new(ErrorKind::RecordNotFound, m),
        ManageError::Invalid(m) => GatewayError::new(ErrorKind::InvalidValue, m),
        ManageError::Conflict(m) => GatewayError::new(ErrorKind::Conflict, m),
        ManageError::Store(e) => GatewayError::new(ErrorKind::NotReady, format!("client keys: {e}")),
    }
}

fn bad_json(e: &serde_json::Error) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidValue, format!("The request body is not a valid key: {e}"))
}

/// Audit a key change, then reload this gateway's keys.
async fn changed(app: &App, addr: &SocketAddr, action: &str, row: &KeyRow) {
    let journal = app.registry.snapshot().config.vault.audit_log.clone();
    let actor = format!("admin-api:{addr}");
    let (action, label, id, hint) = (action.to_owned(), row.name.clone(), row.id.clone(), row.doc.hint.clone());
    let _ = tokio::task::spawn_blocking(move || {
        let detail = format!("key={id}");
        let entry = audit::AuditEntry {
            at_ms: crate::clock::now_ms(),
            actor: &actor,
            origin: None,
            action: &action,
            account: None,
            provider: None,
            label: Some(&label),
            masked_key: Some(&hint),
            detail: Some(&detail),
        };
        audit::record(&journal, &entry);
    })
    .await;
    app.sync_audit().await;
    reload(app).await;
}

async fn reload(app: &App) {
    app.keys.invalidate();
    let zone = app.registry.snapshot().config.keys.zone();
    if let Err(e) = app.keys.refresh(&app.store, &zone, &app.ledger).await {
        tracing::warn!("client keys not reloaded after a change (the refresh task will retry): {e}");
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: Option<bool>,
}

/// `GET /admin/keys[?all=true]`: the keys (active ones unless `all`), masked, with their usage
/// against each limit.
pub async fn list(State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Result<Json<Value>, GatewayError> {
    let now = crate::clock::now_ms();
    let zone = app.registry.snapshot().config.keys.zone();
    let rows = app.store.keys_all().await.map_err(|e| manage_error(e.into()))?;
    let (minute, day, month) = view::window_starts(now, &zone);
    let usage = app.store.keys_usage(minute, day, month).await.map_err(|e| manage_error(e.into()))?;
    let data: Vec<Value> = rows
        .iter()
        .filter(|r| q.all.unwrap_or(false) || view::is_active(r, now))
        .map(|r| view::key_json(r, &usage.get(&r.id).copied().unwrap_or_default(), now))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

/// `POST /admin/keys`: make a key; the answer holds its secret (`key`), this once.
pub async fn create(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, GatewayError> {
    let new: NewKey = serde_json::from_slice(&body).map_err(|e| bad_json(&e))?;
    let now = crate::clock::now_ms();
    let (row, secret) = manage::create(&app.store, new, now).await.map_err(manage_error)?;
    changed(&app, &addr, "key.create", &row).await;
    let mut v = view::key_json(&row, &crate::store::KeyUsage::default(), now);
    v["key"] = json!(secret);
    Ok(Json(v))
}

/// `PATCH /admin/keys/{name or id}`: change a key (absent fields kept, `null` removes).
pub async fn update(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, GatewayError> {
    let patch: KeyPatch = serde_json::from_slice(&body).map_err(|e| bad_json(&e))?;
    let now = crate::clock::now_ms();
    let row = manage::update(&app.store, &id, patch, now).await.map_err(manage_error)?;
    changed(&app, &addr, "key.update", &row).await;
    Ok(Json(view::key_json(&row, &crate::store::KeyUsage::default(), now)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RotateBody {
    /// how long the old secret keeps working
    grace_seconds: u64,
}

/// `POST /admin/keys/{name or id}/rotate` (`{"grace_seconds": N}`): a new secret, in the answer
/// this once.
pub async fn rotate(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, GatewayError> {
    let b: RotateBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad_json(&e))?
    };
    let now = crate::clock::now_ms();
    let grace = Duration::from_secs(b.grace_seconds.min(30 * 86_400));
    let (row, secret) = manage::rotate(&app.store, &id, grace, now).await.map_err(manage_error)?;
    changed(&app, &addr, "key.rotate", &row).await;
    let mut v = view::key_json(&row, &crate::store::KeyUsage::default(), now);
    v["key"] = json!(secret);
    Ok(Json(v))
}

/// `DELETE /admin/keys/{name or id}`: revoke the key (kept, marked revoked).
pub async fn revoke(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Result<Json<Value>, GatewayError> {
    let now = crate::clock::now_ms();
    let row = manage::revoke(&app.store, &id, now).await.map_err(manage_error)?;
    changed(&app, &addr, "key.revoke", &row).await;
    Ok(Json(view::key_json(&row, &crate::store::KeyUsage::default(), now)))
}
