//! What is kept of a virtual key (its row: id, unique name, the secret's hash, and the rest as a
//! JSON document) and what the gateway holds of it in memory.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::allow::Allow;
use crate::quota::{Dim, LimitSpec, PoolQuota, QuotaPlan, ScopedLimits, Window};

/// A key's own limits; `None` = no limit on that dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyLimits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub rpd: Option<u64>,
    pub tpd: Option<u64>,
    /// tokens (prompt + completion) per calendar month in `[keys] timezone`
    pub monthly_tokens: Option<u64>,
}

impl KeyLimits {
    /// The limits as the quota ledger counts them.
    pub fn specs(&self) -> Vec<LimitSpec> {
        let all = [
            (self.rpm, Dim::Requests, Window::Minute),
            (self.tpm, Dim::Tokens, Window::Minute),
            (self.rpd, Dim::Requests, Window::Day),
            (self.tpd, Dim::Tokens, Window::Day),
            (self.monthly_tokens, Dim::Tokens, Window::Month),
        ];
        all.into_iter().filter_map(|(l, dim, window)| l.map(|limit| LimitSpec { dim, window, limit })).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.specs().is_empty()
    }
}

/// Everything of a key but its id, name and hash (stored as JSON, so a field added later needs
/// no migration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyDoc {
    /// `fw-AbCd…wxyz`
    pub hint: String,
    /// the model allow-list (empty: every model)
    pub models: Vec<String>,
    pub limits: KeyLimits,
    /// routing rules and policies see these; wait-queue weights come from them
    pub tags: Vec<String>,
    /// the key stops working at this instant (Unix ms)
    pub expires_at_ms: Option<u64>,
    /// `auto` requests of this key are ranked by this policy component
    pub policy: Option<String>,
    /// providers tried first, in this order, when they can serve
    pub prefer: Vec<String>,
    /// the most a request of this key may wait for quota (ms)
    pub max_wait_ms: Option<u64>,
    /// the hash of the secret before the last rotation, accepted until `previous_until_ms`
    pub previous_hash: Option<String>,
    pub previous_until_ms: Option<u64>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub revoked_at_ms: Option<u64>,
}

/// A key's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// `vk_` and 12 hex characters: how usage records and the API name it
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret, hex
    pub hash: String,
    pub doc: KeyDoc,
}

/// Where a key stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Active,
    Expired,
    Revoked,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Active => "active",
            Standing::Expired => "expired",
            Standing::Revoked => "revoked",
        }
    }
}

impl KeyDoc {
    pub fn standing(&self, now_ms: u64) -> Standing {
        if self.revoked_at_ms.is_some() {
            Standing::Revoked
        } else if self.expires_at_ms.is_some_and(|t| t <= now_ms) {
            Standing::Expired
        } else {
            Standing::Active
        }
    }
}

/// A key as the gateway holds it: the row, its allow-list, and its limits in the quota ledger
/// (a pool of its own, shared through Redis when the ledger is).
#[derive(Debug)]
pub struct VirtualKey {
    pub id: String,
    pub name: String,
    pub doc: KeyDoc,
    pub allow: Allow,
    pub plan: Arc<QuotaPlan>,
    pub pool: Arc<PoolQuota>,
}

/// The ledger's provider name for virtual keys' pools (each key is one pool, named by its id).
pub const LEDGER_PROVIDER: &str = "@keys";

impl VirtualKey {
    pub fn new(row: KeyRow, zone: &jiff::tz::TimeZone, ledger: &crate::quota::Ledger) -> Self {
        let zone_name = zone.iana_name().unwrap_or("UTC");
        let daily_reset = crate::quota::DailyReset::parse(&format!("00:00 {zone_name}")).unwrap_or_default();
        let plan = QuotaPlan {
            default: ScopedLimits { per_model: false, specs: row.doc.limits.specs() },
            daily_reset,
            month_zone: zone.clone(),
            ..QuotaPlan::default()
        };
        Self {
            allow: Allow::new(&row.doc.models),
            pool: ledger.pool(LEDGER_PROVIDER, &row.id),
            plan: Arc::new(plan),
            id: row.id,
            name: row.name,
            doc: row.doc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_ledger_specs_on_their_windows() {
        let l = KeyLimits { rpm: Some(10), tpd: Some(5000), monthly_tokens: Some(100_000), ..KeyLimits::default() };
        let specs = l.specs();
        assert_eq!(specs.len(), 3);
        assert!(specs.contains(&LimitSpec { dim: Dim::Tokens, window: Window::Month, limit: 100_000 }));
        assert!(KeyLimits::default().is_empty());
    }

    #[test]
    fn revocation_outranks_expiry() {
        let doc = KeyDoc { expires_at_ms: Some(10), ..KeyDoc::default() };
        assert_eq!(doc.standing(9), Standing::Active);
        assert_eq!(doc.standing(10), Standing::Expired);
        let revoked = KeyDoc { revoked_at_ms: Some(5), ..doc };
        assert_eq!(revoked.standing(0), Standing::Revoked);
    }

    #[test]
    fn a_key_counts_its_days_and_months_in_the_configured_zone() {
        let row = KeyRow {
            id: "vk_1".into(),
            name: "a".into(),
            hash: String::new(),
            doc: KeyDoc { limits: KeyLimits { rpd: Some(3), ..KeyLimits::default() }, ..KeyDoc::default() },
        };
        let zone = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
        let k = VirtualKey::new(row, &zone, &crate::quota::Ledger::in_memory());
        assert_eq!(k.plan.daily_reset.text, "00:00 Asia/Tokyo");
        assert_eq!(k.plan.month_zone_name(), "Asia/Tokyo");
        assert_eq!(k.pool.provider, LEDGER_PROVIDER);
    }
}
