//! Routing: the candidates for a request, in the order to try them: each provider serving the
//! model, its accounts in rotation order (pools first), those resting or disabled left out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::needs::Needs;
use crate::accounts::Account;
use crate::accounts::Health;
use crate::bindings::wit::Capabilities;
use crate::errors::{ErrorKind, GatewayError};
use crate::principal::Principal;
use crate::registry::{Route, Snapshot};
use crate::wire::chat::ChatBody;

/// One (provider, model, account) to try.
#[derive(Clone)]
pub struct Candidate {
    pub route: Route,
    pub account: Arc<Account>,
}

/// Whether a model is known to lack something the request needs. Unknown capabilities
/// (models configured by bare id) are not held against it.
fn lacks(route: &Route, needs: &Needs) -> Option<&'static str> {
    let entry = route.provider.models.iter().find(|m| m.info.id == route.model)?;
    if entry.embedding.is_some() {
        return Some("chat (it is an embedding model: POST /v1/embeddings)");
    }
    let info = &entry.info;
    let explicit = info.capabilities != Capabilities::STREAMING && info.capabilities != Capabilities::empty();
    if explicit {
        if needs.tools && !info.capabilities.contains(Capabilities::TOOLS) {
            return Some("tool calling");
        }
        if needs.vision && !info.capabilities.contains(Capabilities::VISION) {
            return Some("image input");
        }
    }
    if let Some(window) = info.context_window {
        let need = u64::from(needs.prompt_tokens) + u64::from(needs.max_tokens.unwrap_or(0));
        if need > u64::from(window) {
            return Some("a context window this large");
        }
    }
    None
}

/// No route serves `model`: no provider at all, or no such model.
pub fn unknown_model(snapshot: &Snapshot, model: &str) -> GatewayError {
    if snapshot.providers.is_empty() {
        let why = snapshot.problems.first().cloned().unwrap_or_else(|| "no provider is configured".to_owned());
        return GatewayError::new(ErrorKind::NoProvider, format!("No provider can serve requests: {why}."));
    }
    GatewayError::new(
        ErrorKind::ModelNotFound,
        format!(
            "The model `{model}` does not exist or you do not have access to it. GET /v1/models lists the available models."
        ),
    )
    .with_param("model")
}

/// A virtual key's model list: the name the client asked for, or the one a `[[routes]] to`
/// renames it to, must be on it (403 otherwise). Static keys and open gateways allow every name.
pub fn permitted(client: &Principal, asked: &str, renamed: Option<&str>) -> Result<(), GatewayError> {
    match client.virtual_key() {
        Some(k) if !k.allow.names(asked) && !renamed.is_some_and(|r| k.allow.names(r)) => {
            Err(GatewayError::new(ErrorKind::ModelNotAllowed, format!("This API key may not use the model `{asked}`."))
                .with_param("model"))
        }
        _ => Ok(()),
    }
}

/// A virtual key's preferred providers first (in its order), the rest as they were.
pub fn preferred(client: &Principal, mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    if let Some(k) = client.virtual_key().filter(|k| !k.doc.prefer.is_empty()) {
        let rank = |c: &Candidate| k.doc.prefer.iter().position(|p| *p == c.route.provider.id).unwrap_or(usize::MAX);
        candidates.sort_by_key(rank);
    }
    candidates
}

pub fn candidates(snapshot: &Snapshot, req: &ChatBody<'_>, needs: &Needs) -> Result<Vec<Candidate>, GatewayError> {
    let Some(routes) = snapshot.routes(&req.model) else { return Err(unknown_model(snapshot, &req.model)) };
    let mut refused = None;
    let fit = routes.iter().filter(|route| match lacks(route, needs) {
        Some(what) => {
            refused
                .get_or_insert_with(|| format!("`{}` on '{}' does not support {what}", route.model, route.provider.id));
            false
        }
        None => true,
    });
    let fit: Vec<&Route> = fit.collect();
    rotate(&req.model, fit, refused)
}

/// The candidates of `routes` for a request for `model`: each route's available accounts in
/// rotation order, those resting after upstream trouble last; `refused` says why routes were
/// left out, for the error when none is left.
pub fn rotate(model: &str, routes: Vec<&Route>, refused: Option<String>) -> Result<Vec<Candidate>, GatewayError> {
    let now = Instant::now();
    let mut out = Vec::new();
    let mut last_resort = Vec::new();
    let mut resting: Option<Instant> = None;
    let mut disabled: Vec<String> = Vec::new();
    for route in routes {
        for account in route.provider.accounts_in_order(&route.model, now) {
            if account.health.available(now) {
                out.push(Candidate { route: route.clone(), account });
                continue;
            }
            if account.health.last_resort(now) {
                last_resort.push(Candidate { route: route.clone(), account });
                continue;
            }
            match account.health.get() {
                Health::Cooling { until, .. } => resting = Some(resting.map_or(until, |r| r.min(until))),
                Health::Disabled { reason, .. } => disabled.push(format!("{} ({reason})", account.label)),
                Health::Ok => {}
            }
        }
    }
    // accounts resting after upstream trouble go last, not nowhere
    out.extend(last_resort);
    if out.is_empty() {
        if let Some(until) = resting {
            let wait = until.saturating_duration_since(now).max(Duration::from_secs(1));
            return Err(GatewayError::new(
                ErrorKind::UpstreamRateLimited,
                format!(
                    "Every account that serves `{}` is resting after a rate limit; try again in {} s.",
                    model,
                    wait.as_secs()
                ),
            )
            .with_retry_after(Some(wait)));
        }
        if !disabled.is_empty() {
            return Err(GatewayError::new(
                ErrorKind::NoProvider,
                format!("Every account that serves `{}` is disabled: {}.", model, disabled.join("; ")),
            ));
        }
        let why = refused.unwrap_or_else(|| "no account is available".to_owned());
        return Err(GatewayError::new(
            ErrorKind::InvalidValue,
            format!("The model `{model}` cannot serve this request: {why}."),
        )
        .with_param("model"));
    }
    Ok(out)
}
