//! The admin API against its OpenAPI document (`GET /admin/openapi.json`): every response a test
//! checks is validated against the schema the document gives for it.

use serde_json::{Value, json};

/// The admin API's OpenAPI document, as the gateway serves it (the file compiled into it).
pub fn openapi() -> Value {
    serde_json::from_str(freeway::server::OPENAPI).expect("the OpenAPI document is JSON")
}

/// Fail unless `value` matches `components.schemas.<schema>` of the OpenAPI document.
pub fn assert_matches(schema: &str, value: &Value) {
    let doc = openapi();
    assert!(doc["components"]["schemas"].get(schema).is_some(), "no schema {schema} in the OpenAPI document");
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{schema}"),
        "components": doc["components"],
    });
    let validator = jsonschema::validator_for(&root).expect("the OpenAPI schemas compile");
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{schema} does not match the OpenAPI document:\n{}\n{value:#}", errors.join("\n"));
}

#[test]
fn the_document_names_every_admin_route_and_the_schema_checker_can_fail() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/admin/status",
        "/admin/stats",
        "/admin/requests",
        "/admin/requests/{id}/bodies",
        "/admin/openapi.json",
        "/admin/accounts",
        "/admin/accounts/{id}",
        "/admin/accounts/{id}/enable",
        "/admin/accounts/{id}/disable",
        "/admin/accounts/{id}/check",
        "/admin/audit",
        "/admin/route/explain",
        "/admin/cache",
        "/admin/webhooks/deliveries",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
    // a checker that accepts anything proves nothing
    let bad = json!({"id": "acc_1", "label": "x", "pool": "p", "enabled": true, "state": "sleeping"});
    let outcome = std::panic::catch_unwind(|| assert_matches("Account", &bad));
    assert!(outcome.is_err(), "an unknown account state must not match");
    let extra = json!({"at_ms": 1, "why": "x", "surprise": true});
    assert!(std::panic::catch_unwind(|| assert_matches("Refusal", &extra)).is_err(), "unknown fields must not match");
    assert_matches("Refusal", &json!({"at_ms": 1, "why": "x"}));
}
