//! The gateway's in-memory view of the virtual keys: every request is checked against it, never
//! against the database. A background task polls the store's change counter (every
//! `[keys] refresh_ms`, at most 5 s) and reloads the keys when it moved, so a key made, changed
//! or revoked by the CLI, by this gateway's admin API or by another gateway sharing the
//! database is seen everywhere within that bound; this gateway's own admin changes reload at
//! once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use arc_swap::ArcSwap;
use jiff::tz::TimeZone;

use super::record::{KeyRow, Standing, VirtualKey};
use super::secret;
use crate::quota::Ledger;
use crate::store::{Store, StoreError};

/// What a presented secret is.
#[derive(Debug, Clone)]
pub enum Lookup {
    Valid(Arc<VirtualKey>),
    Expired(Arc<VirtualKey>),
    Revoked(Arc<VirtualKey>),
    /// the secret before a rotation, after its grace period
    Rotated(Arc<VirtualKey>),
    Unknown,
}

#[derive(Default)]
struct View {
    /// the secret's hash → the key (its current secret, or the previous one with when that
    /// stops being accepted)
    by_hash: HashMap<[u8; 32], (Arc<VirtualKey>, Option<u64>)>,
    /// every key, by name
    keys: Vec<Arc<VirtualKey>>,
    /// the zone the keys' days and months were built in
    zone: String,
}

/// The keys as this gateway knows them.
#[derive(Default)]
pub struct KeyRing {
    view: ArcSwap<View>,
    /// the store's change counter the view was loaded at (-1: never loaded)
    generation: AtomicI64,
    /// some virtual key exists (revoked or not): client keys are then required
    any: AtomicBool,
}

fn decode(hex_hash: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut out).ok()?;
    Some(out)
}

impl KeyRing {
    pub fn new() -> Self {
        Self { generation: AtomicI64::new(-1), ..Self::default() }
    }

    /// Whether any virtual key exists (then no request passes without a client key).
    pub fn any(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// The key a presented secret belongs to, and where it stands at `now_ms`.
    pub fn lookup(&self, presented: &str, now_ms: u64) -> Lookup {
        if !self.any() || !presented.starts_with(secret::PREFIX) {
            return Lookup::Unknown;
        }
        let view = self.view.load();
        let Some((key, until)) = view.by_hash.get(&secret::hash(presented)) else { return Lookup::Unknown };
        if until.is_some_and(|t| t <= now_ms) {
            return Lookup::Rotated(key.clone());
        }
        match key.doc.standing(now_ms) {
            Standing::Active => Lookup::Valid(key.clone()),
            Standing::Expired => Lookup::Expired(key.clone()),
            Standing::Revoked => Lookup::Revoked(key.clone()),
        }
    }

    /// Every key, by name.
    pub fn keys(&self) -> Vec<Arc<VirtualKey>> {
        self.view.load().keys.clone()
    }

    /// The key named `name_or_id` (its name or its `vk_` id).
    pub fn find(&self, name_or_id: &str) -> Option<Arc<VirtualKey>> {
        self.view.load().keys.iter().find(|k| k.name == name_or_id || k.id == name_or_id).cloned()
    }

    /// Replace the view with `rows`, their days and months counted in `zone`.
    pub fn install(&self, rows: Vec<KeyRow>, zone: &TimeZone, ledger: &Ledger) {
        let mut by_hash = HashMap::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let hash = decode(&row.hash);
            let previous = row.doc.previous_hash.as_deref().and_then(decode).map(|h| (h, row.doc.previous_until_ms));
            let key = Arc::new(VirtualKey::new(row, zone, ledger));
            if let Some(h) = hash {
                by_hash.insert(h, (key.clone(), None));
            }
            if let Some((h, until)) = previous {
                by_hash.insert(h, (key.clone(), Some(until.unwrap_or(0))));
            }
            keys.push(key);
        }
        self.any.store(!keys.is_empty(), Ordering::Relaxed);
        let zone = zone.iana_name().unwrap_or("UTC").to_owned();
        self.view.store(Arc::new(View { by_hash, keys, zone }));
    }

    /// Reload from `store` if its change counter moved (or the zone changed); whether it did.
    pub async fn refresh(&self, store: &Store, zone: &TimeZone, ledger: &Ledger) -> Result<bool, StoreError> {
        let generation = store.keys_generation().await?;
        let same_zone = self.view.load().zone == zone.iana_name().unwrap_or("UTC");
        if generation == self.generation.load(Ordering::Relaxed) && same_zone {
            return Ok(false);
        }
        let rows = store.keys_all().await?;
        self.install(rows, zone, ledger);
        self.generation.store(generation, Ordering::Relaxed);
        Ok(true)
    }

    /// Force the next [`KeyRing::refresh`] to reload.
    pub fn invalidate(&self) {
        self.generation.store(-1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::record::KeyDoc;

    fn row(name: &str, secret: &str, doc: KeyDoc) -> KeyRow {
        KeyRow { id: format!("vk_{name}"), name: name.into(), hash: secret::hash_hex(secret), doc }
    }

    fn ring(rows: Vec<KeyRow>) -> KeyRing {
        let r = KeyRing::new();
        r.install(rows, &TimeZone::UTC, &Ledger::in_memory());
        r
    }

    #[test]
    fn a_secret_finds_its_key_and_anything_else_is_unknown() {
        let r = ring(vec![row("alice", "fw-alice", KeyDoc::default())]);
        assert!(r.any());
        assert!(matches!(r.lookup("fw-alice", 0), Lookup::Valid(k) if k.name == "alice"));
        assert!(matches!(r.lookup("fw-bob", 0), Lookup::Unknown));
        // the stored hash is not a key
        assert!(matches!(r.lookup(&secret::hash_hex("fw-alice"), 0), Lookup::Unknown));
    }

    #[test]
    fn expired_and_revoked_keys_are_told_apart() {
        let r = ring(vec![
            row("old", "fw-old", KeyDoc { expires_at_ms: Some(100), ..KeyDoc::default() }),
            row("gone", "fw-gone", KeyDoc { revoked_at_ms: Some(1), ..KeyDoc::default() }),
        ]);
        assert!(matches!(r.lookup("fw-old", 99), Lookup::Valid(_)));
        assert!(matches!(r.lookup("fw-old", 100), Lookup::Expired(_)));
        assert!(matches!(r.lookup("fw-gone", 0), Lookup::Revoked(_)));
    }

    #[test]
    fn a_rotated_secret_works_until_its_grace_ends() {
        let doc = KeyDoc {
            previous_hash: Some(secret::hash_hex("fw-before")),
            previous_until_ms: Some(1000),
            ..KeyDoc::default()
        };
        let r = ring(vec![row("k", "fw-after", doc)]);
        assert!(matches!(r.lookup("fw-after", 5000), Lookup::Valid(_)));
        assert!(matches!(r.lookup("fw-before", 999), Lookup::Valid(_)));
        assert!(matches!(r.lookup("fw-before", 1000), Lookup::Rotated(_)));
    }

    #[test]
    fn without_keys_nothing_is_required() {
        let r = ring(vec![]);
        assert!(!r.any());
        assert!(r.find("x").is_none());
    }
}
