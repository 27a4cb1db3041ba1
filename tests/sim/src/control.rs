//! Control endpoints under `/_sim` (no auth) and the router that puts everything together.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::config::SimConfig;
use crate::profiles::{ApiError, Profile};
use crate::provider::{self, json_response};
use crate::script::{Action, Rule};
use crate::state::Shared;

/// The whole HTTP surface: control endpoints plus the provider API as the fallback.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/health", get(health))
        .route("/_sim/script", post(add_rules).get(list_rules).delete(clear_rules))
        .route("/_sim/reset", post(reset))
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route("/_sim/stats", get(stats))
        .route("/_sim/config", post(set_config).get(get_config))
        .fallback(provider::handle)
        .with_state(shared)
}

/// Parses a script body: `{"rules": [...]}`, a bare array of rules, or one rule.
pub fn parse_rules(body: &[u8]) -> Result<Vec<Rule>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let rules: Vec<Rule> = match value {
        Value::Object(mut map) if map.contains_key("rules") => {
            let rules = map.remove("rules").unwrap_or(Value::Null);
            serde_json::from_value(rules).map_err(|e| format!("invalid rules: {e}"))?
        }
        Value::Array(_) => serde_json::from_value(value).map_err(|e| format!("invalid rules: {e}"))?,
        other => vec![serde_json::from_value(other).map_err(|e| format!("invalid rule: {e}"))?],
    };
    for rule in &rules {
        if let Action::Status { status, .. } = rule.action
            && StatusCode::from_u16(status).is_err()
        {
            return Err(format!("invalid HTTP status {status}"));
        }
    }
    Ok(rules)
}

async fn health() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}), &[])
}

async fn add_rules(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse_rules(&body) {
        Ok(rules) => {
            let added = rules.len();
            shared.rules.add(rules);
            let active = shared.rules.list().len();
            json_response(StatusCode::OK, &json!({"added": added, "active": active}), &[])
        }
        Err(message) => bad_request(&message),
    }
}

async fn list_rules(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &json!({"rules": shared.rules.list()}), &[])
}

async fn clear_rules(State(shared): State<Arc<Shared>>) -> Response {
    shared.rules.clear();
    json_response(StatusCode::OK, &json!({"rules": []}), &[])
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    json_response(StatusCode::OK, &json!({"reset": true}), &[])
}

async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &json!(shared.recorder.list()), &[])
}

async fn clear_requests(State(shared): State<Arc<Shared>>) -> Response {
    shared.recorder.clear();
    json_response(StatusCode::OK, &json!([]), &[])
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &json!(shared.stats.report()), &[])
}

async fn set_config(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let parsed = std::str::from_utf8(&body)
        .map_err(|e| e.to_string())
        .and_then(|text| SimConfig::from_json(text).map_err(|e| e.to_string()))
        .and_then(|config| config.normalized().map_err(|e| e.to_string()));
    match parsed {
        Ok(config) => {
            let echo = json!(config);
            shared.set_config(config);
            json_response(StatusCode::OK, &echo, &[])
        }
        Err(message) => bad_request(&message),
    }
}

async fn get_config(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &json!(shared.runtime().config), &[])
}

fn bad_request(message: &str) -> Response {
    let body = Profile::OpenAi.error_body(&ApiError {
        status: 400,
        message,
        kind: "invalid_request_error",
        code: None,
        param: None,
    });
    json_response(StatusCode::BAD_REQUEST, &body, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_bodies_in_three_forms() {
        let wrapped =
            parse_rules(br#"{"rules":[{"action":{"type":"hang"}},{"action":{"type":"malformed"}}]}"#).unwrap();
        assert_eq!(wrapped.len(), 2);
        let bare = parse_rules(br#"[{"action":{"type":"hang"}}]"#).unwrap();
        assert_eq!(bare.len(), 1);
        let one = parse_rules(br#"{"times":1,"action":{"type":"delay","ms":5}}"#).unwrap();
        assert_eq!(one[0].action, Action::Delay { ms: 5 });
    }

    #[test]
    fn bad_script_bodies_are_explained() {
        assert!(parse_rules(b"nope").unwrap_err().contains("not JSON"));
        assert!(parse_rules(br#"{"rules":[{"action":{"type":"bogus"}}]}"#).unwrap_err().contains("invalid rules"));
        assert!(parse_rules(br#"{"action":{"type":"status","status":42}}"#).unwrap_err().contains("42"));
    }
}
