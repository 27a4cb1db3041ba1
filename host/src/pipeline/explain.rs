//! `--explain` and `POST /admin/route/explain`: a routing decision made without sending
//! anything, shown candidate by candidate with its score and reason, or why it was dropped.

use serde_json::{Value, json};

use super::context::{RequestCtx, Services};
use super::decision::Decision;
use crate::config::catalog::group as thousands;
use crate::errors::{ErrorKind, GatewayError};
use crate::principal::Principal;
use crate::registry::Snapshot;

/// A routing decision for a chat request body, made without sending anything, on `snapshot`.
/// `client` is the client the request would come from (for rules and policies that read tags).
pub async fn dry_run(
    services: Services<'_>,
    snapshot: &Snapshot,
    body: &[u8],
    client: Principal,
    explain: bool,
) -> Result<Decision, GatewayError> {
    let req = super::ingress::parse(body, &snapshot.config.server.shape_limits())?;
    let Some(how) = super::decide::policy_route(snapshot, &req.model) else {
        return Err(GatewayError::new(
            ErrorKind::InvalidValue,
            format!(
                "`{}` is not routed by a policy (explain covers `auto`, `auto:*` and [[routes]] with a `policy`); a model asked for by name is tried on its providers in the order GET /v1/models lists them.",
                req.model
            ),
        )
        .with_param("model"));
    };
    // nothing is sent: the exchange is never logged
    let exchange = super::exchange::Exchange::detached();
    let ctx = RequestCtx::new(
        services,
        snapshot,
        client,
        &req,
        super::needs::needs(&req),
        std::time::Instant::now(),
        &exchange,
    );
    let call = super::decide::Call { messages: bytes::Bytes::copy_from_slice(req.messages.get().as_bytes()), explain };
    Ok(super::decide::decide(&ctx, how, call).await)
}

/// A request body for a bare prompt.
pub fn prompt_body(model: &str, prompt: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"model": model, "messages": [{"role": "user", "content": prompt}]})).unwrap_or_default()
}

/// The decision as JSON (the admin endpoint's body; the CLI's `--json`).
pub fn to_json(d: &Decision) -> Value {
    let mut entries: Vec<&super::decision::Entry> = d.entries.iter().collect();
    entries.sort_by_key(|e| (e.rank.is_none(), e.rank));
    json!({
        "requested_model": d.requested,
        "policy": d.policy,
        "policy_error": d.policy_error,
        "task": d.classification.task.as_str(),
        "confidence": (f64::from(d.classification.confidence) * 100.0).round() / 100.0,
        "probabilities": d.classification.likely(0.005).into_iter()
            .map(|(t, p)| (t.as_str().to_owned(), json!((f64::from(p) * 1000.0).round() / 1000.0)))
            .collect::<serde_json::Map<_, _>>(),
        "signals": d.classification.signals,
        "language": d.language,
        "rules": d.rules.matched,
        "needs": {
            "tools": d.needs.tools,
            "images": d.needs.vision,
            "json": d.needs.json,
            "stream": d.needs.stream,
            "prompt_tokens": d.needs.prompt_tokens,
            "max_tokens": d.needs.max_tokens,
            "context": d.needed_context,
        },
        "decision_us": u64::try_from(d.cost.as_micros()).unwrap_or(u64::MAX),
        "error": d.candidates().err().map(|e| e.message.to_string()),
        "candidates": entries.iter().map(|e| json!({
            "provider": e.provider,
            "model": e.model,
            "pool": if e.pool.is_empty() { Value::Null } else { Value::from(e.pool.clone()) },
            "rank": e.rank.map(|r| r + 1),
            "score": e.score.map(|s| (f64::from(s) * 1000.0).round() / 1000.0),
            "reason": if e.reason.is_empty() { Value::Null } else { Value::from(e.reason.clone()) },
            "dropped": e.dropped.as_ref().map(super::decision::Dropped::describe),
            "quality": e.quality,
            "context_window": e.context_window,
            "headroom": e.headroom.iter().map(|h| json!({
                "dimension": h.dimension, "remaining": h.remaining, "limit": h.limit, "reset_in_ms": h.reset_in_ms,
            })).collect::<Vec<_>>(),
            "ttft_p50_ms": e.stats.ttft_p50_ms,
            "success_rate": e.stats.success_rate,
        })).collect::<Vec<_>>(),
    })
}

/// The decision for people (the CLI's default).
pub fn to_text(d: &Decision) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let c = &d.classification;
    let _ = writeln!(out, "request   `{}` -> policy `{}`", d.requested, d.policy);
    if let Some(e) = &d.policy_error {
        let _ = writeln!(out, "          policy failed ({e}); the host's order was used");
    }
    let _ = writeln!(
        out,
        "task      {} (confidence {:.0} %){}",
        c.task.as_str(),
        c.confidence * 100.0,
        d.language.map(|l| format!(", language {l}")).unwrap_or_default()
    );
    let _ = writeln!(out, "classes   {}", c.probabilities_text());
    let evidence: Vec<&str> = c.signals.iter().map(String::as_str).filter(|s| !s.starts_with("classes: ")).collect();
    if !evidence.is_empty() {
        let _ = writeln!(out, "evidence  {}", evidence.join(", "));
    }
    if !d.rules.matched.is_empty() {
        let _ = writeln!(out, "rules     {}", d.rules.matched.join(", "));
    }
    let mut needs = Vec::new();
    for (on, what) in
        [(d.needs.tools, "tools"), (d.needs.vision, "images"), (d.needs.json, "JSON"), (d.needs.stream, "stream")]
    {
        if on {
            needs.push(what.to_owned());
        }
    }
    needs.push(format!("context {} tokens", thousands(u64::from(d.needed_context))));
    let _ = writeln!(out, "needs     {}", needs.join(", "));
    let _ = writeln!(out, "decided   in {} µs", d.cost.as_micros());
    if let Err(e) = d.candidates() {
        let _ = writeln!(out, "result    {}", e.message);
    }
    out.push('\n');
    let mut entries: Vec<&super::decision::Entry> = d.entries.iter().collect();
    entries.sort_by_key(|e| (e.rank.is_none(), e.rank));
    for e in entries {
        let who = if e.pool.is_empty() {
            format!("{}/{}", e.provider, e.model)
        } else {
            format!("{}/{} [{}]", e.provider, e.model, e.pool)
        };
        match (e.rank, &e.dropped) {
            (Some(r), _) => {
                let _ = writeln!(out, "  {:>2}. {who}  score {:.3}  {}", r + 1, e.score.unwrap_or(0.0), e.reason);
            }
            (None, Some(why)) => {
                let _ = writeln!(out, "   -  {who}  dropped: {}", why.describe());
            }
            (None, None) => {}
        }
    }
    out
}
