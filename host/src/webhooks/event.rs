//! What a webhook tells: one event, sent as
//! `{"id": "whd_…", "type": "account.disabled", "created_at": <unix ms>, "data": {...}}`.

use serde::Serialize;

/// Something worth telling an operator. The serialized form is the body's `type` and `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// the provider refused an account's key (401/403) or its credit ran out (402): it is out
    /// of rotation until a re-check passes
    #[serde(rename = "account.disabled")]
    AccountDisabled { provider: String, account_id: String, account: String, reason: String },
    /// a disabled account is back in rotation (`how`: `recheck`, or `manual` for an operator's
    /// enable)
    #[serde(rename = "account.recovered")]
    AccountRecovered { provider: String, account_id: String, account: String, how: &'static str },
    /// a quota pool has no room left in one of its windows (`limit`: `RPD`, `TPD`, ... as the
    /// ledger names it, or `provider` when the provider said so)
    #[serde(rename = "quota.exhausted")]
    QuotaExhausted { provider: String, pool: String, limit: String, reason: String, resets_at: Option<u64> },
    /// the window of an exhausted pool has ended: it has room again
    #[serde(rename = "quota.reset")]
    QuotaReset { provider: String, pool: String, limit: String },
    /// a virtual key has reached 80 % or 100 % of a daily or monthly budget (once per window
    /// and level)
    #[serde(rename = "key.budget")]
    KeyBudget { key_id: String, key_name: String, limit: &'static str, used: u64, limit_value: u64, percent: u8 },
    /// a changed component failed to load on hot reload (the previous version, if any, keeps
    /// serving)
    #[serde(rename = "component.reload_refused")]
    ReloadRefused { kind: String, name: String, path: String, reason: String },
    /// a provider failed this many times in a row (server errors, timeouts, broken connections)
    #[serde(rename = "provider.down")]
    ProviderDown { provider: String, consecutive_failures: u32, last_error: String },
    /// a provider that was down answered again
    #[serde(rename = "provider.up")]
    ProviderUp { provider: String, down_for_ms: u64 },
}

impl Event {
    /// The event's type: one of [`crate::config::WEBHOOK_EVENTS`].
    pub fn name(&self) -> &'static str {
        match self {
            Event::AccountDisabled { .. } => "account.disabled",
            Event::AccountRecovered { .. } => "account.recovered",
            Event::QuotaExhausted { .. } => "quota.exhausted",
            Event::QuotaReset { .. } => "quota.reset",
            Event::KeyBudget { .. } => "key.budget",
            Event::ReloadRefused { .. } => "component.reload_refused",
            Event::ProviderDown { .. } => "provider.down",
            Event::ProviderUp { .. } => "provider.up",
        }
    }

    /// The JSON body of one delivery of this event.
    pub fn body(&self, id: &str, created_at_ms: u64) -> Vec<u8> {
        let tagged = serde_json::to_value(self).unwrap_or_default();
        let body = serde_json::json!({
            "id": id,
            "type": self.name(),
            "created_at": created_at_ms,
            "data": tagged.get("data").cloned().unwrap_or_default(),
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// A new delivery id: `whd_` and 24 random hex digits.
pub fn delivery_id() -> String {
    format!("whd_{}", hex::encode(rand::random::<[u8; 12]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every() -> Vec<Event> {
        let s = String::new;
        vec![
            Event::AccountDisabled { provider: s(), account_id: s(), account: s(), reason: s() },
            Event::AccountRecovered { provider: s(), account_id: s(), account: s(), how: "recheck" },
            Event::QuotaExhausted { provider: s(), pool: s(), limit: s(), reason: s(), resets_at: None },
            Event::QuotaReset { provider: s(), pool: s(), limit: s() },
            Event::KeyBudget { key_id: s(), key_name: s(), limit: "rpd", used: 0, limit_value: 0, percent: 80 },
            Event::ReloadRefused { kind: s(), name: s(), path: s(), reason: s() },
            Event::ProviderDown { provider: s(), consecutive_failures: 3, last_error: s() },
            Event::ProviderUp { provider: s(), down_for_ms: 0 },
        ]
    }

    #[test]
    fn the_body_has_id_type_created_at_and_data() {
        let e = Event::KeyBudget {
            key_id: "vk_1".into(),
            key_name: "alice".into(),
            limit: "rpd",
            used: 4,
            limit_value: 5,
            percent: 80,
        };
        let v: serde_json::Value = serde_json::from_slice(&e.body("whd_abc", 1_700_000_000_000)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "id": "whd_abc",
                "type": "key.budget",
                "created_at": 1_700_000_000_000_u64,
                "data": {"key_id": "vk_1", "key_name": "alice", "limit": "rpd", "used": 4, "limit_value": 5, "percent": 80}
            })
        );
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "type", "created_at", "data"]);
    }

    #[test]
    fn every_event_type_is_one_the_configuration_accepts_and_serializes_under_its_name() {
        let names: Vec<&str> = every().iter().map(Event::name).collect();
        assert_eq!(names, crate::config::WEBHOOK_EVENTS);
        for e in every() {
            assert_eq!(serde_json::to_value(&e).unwrap()["type"], e.name());
        }
    }

    #[test]
    fn delivery_ids_are_distinct() {
        let (a, b) = (delivery_id(), delivery_id());
        assert!(a.starts_with("whd_") && a.len() == 28 && a != b, "{a} {b}");
    }
}
