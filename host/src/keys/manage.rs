//! Making and changing virtual keys, the same for `freeway keys` and the admin API: names and
//! values checked, the secret made and hashed, the row written (every write bumps the store's
//! change counter, so every gateway reloads).

use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;

use super::record::{KeyDoc, KeyLimits, KeyRow};
use super::secret;
use crate::store::{Store, StoreError};

/// Why a key could not be made or changed.
#[derive(Debug)]
pub enum ManageError {
    NotFound(String),
    Invalid(String),
    Conflict(String),
    Store(StoreError),
}

impl std::fmt::Display for ManageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManageError::NotFound(m) | ManageError::Invalid(m) | ManageError::Conflict(m) => f.write_str(m),
            ManageError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        ManageError::Store(e)
    }
}

/// Longest key name.
const MAX_NAME: usize = 64;
/// Most entries in a model list, tag list or provider list.
const MAX_LIST: usize = 256;

fn check_name(name: &str) -> Result<(), ManageError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
        && !name.starts_with("vk_")
        && !name.starts_with("key-");
    if ok {
        Ok(())
    } else {
        Err(ManageError::Invalid(format!(
            "key name {name:?}: use 1 to {MAX_NAME} letters, digits, '.', '_', '@' or '-' (not starting with vk_ or key-)"
        )))
    }
}

fn check_list(what: &str, list: &[String]) -> Result<(), ManageError> {
    if list.len() > MAX_LIST || list.iter().any(|e| e.len() > 200 || e.chars().any(char::is_control)) {
        return Err(ManageError::Invalid(format!("{what}: at most {MAX_LIST} entries of at most 200 characters")));
    }
    Ok(())
}

/// A list as given on a command line (`a,b, c`) or in JSON.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// When a key given `--expires TEXT` stops working (Unix ms): a date (`2027-01-31`: the key works
/// through that day in `zone`), an instant (`2027-01-31T12:00:00Z`), or a span from now (`30d`,
/// `12h`).
pub fn parse_expiry(text: &str, zone: &TimeZone, now_ms: u64) -> Result<u64, ManageError> {
    let text = text.trim();
    let bad = || {
        ManageError::Invalid(format!(
            "expiry {text:?}: give a date (2027-01-31), an instant (2027-01-31T12:00:00Z) or a span (30d, 12h)"
        ))
    };
    let ms = if let Ok(date) = text.parse::<jiff::civil::Date>() {
        let end = date.tomorrow().map_err(|_| bad())?;
        end.at(0, 0, 0, 0).to_zoned(zone.clone()).map_err(|_| bad())?.timestamp().as_millisecond()
    } else if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        ts.as_millisecond()
    } else {
        let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let unit_ms: u64 = match unit {
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        let at = now_ms.checked_add(n.checked_mul(unit_ms).ok_or_else(bad)?).ok_or_else(bad)?;
        i64::try_from(at).map_err(|_| bad())?
    };
    let ms = u64::try_from(ms).map_err(|_| bad())?;
    if ms <= now_ms {
        return Err(ManageError::Invalid(format!("expiry {text:?} is in the past")));
    }
    Ok(ms)
}

/// What a new key is given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewKey {
    pub name: String,
    pub models: Vec<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub rpd: Option<u64>,
    pub tpd: Option<u64>,
    pub monthly_tokens: Option<u64>,
    pub expires_at_ms: Option<u64>,
    pub tags: Vec<String>,
    pub policy: Option<String>,
    pub prefer: Vec<String>,
    pub max_wait_ms: Option<u64>,
}

/// `Some(None)` for an explicit `null` (remove), `None` when the field is absent (keep).
fn some_or_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a key: absent fields are kept; `null` removes a limit, an expiry, a policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub models: Option<Vec<String>>,
    #[serde(deserialize_with = "some_or_null")]
    pub rpm: Option<Option<u64>>,
    #[serde(deserialize_with = "some_or_null")]
    pub tpm: Option<Option<u64>>,
    #[serde(deserialize_with = "some_or_null")]
    pub rpd: Option<Option<u64>>,
    #[serde(deserialize_with = "some_or_null")]
    pub tpd: Option<Option<u64>>,
    #[serde(deserialize_with = "some_or_null")]
    pub monthly_tokens: Option<Option<u64>>,
    #[serde(deserialize_with = "some_or_null")]
    pub expires_at_ms: Option<Option<u64>>,
    pub tags: Option<Vec<String>>,
    #[serde(deserialize_with = "some_or_null")]
    pub policy: Option<Option<String>>,
    pub prefer: Option<Vec<String>>,
    #[serde(deserialize_with = "some_or_null")]
    pub max_wait_ms: Option<Option<u64>>,
}

fn check_doc(doc: &KeyDoc) -> Result<(), ManageError> {
    check_list("models", &doc.models)?;
    check_list("tags", &doc.tags)?;
    check_list("prefer", &doc.prefer)?;
    let l = &doc.limits;
    if [l.rpm, l.tpm, l.rpd, l.tpd, l.monthly_tokens].contains(&Some(0)) {
        return Err(ManageError::Invalid("a limit of 0 would refuse every request: leave it out instead".into()));
    }
    if doc.policy.as_deref().is_some_and(|p| p.trim().is_empty() || p.len() > 200) {
        return Err(ManageError::Invalid("policy: the name of a policy component".into()));
    }
    Ok(())
}

/// A public id: `vk_` and 12 hex characters.
fn new_id() -> Result<String, ManageError> {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).map_err(|e| ManageError::Invalid(format!("no randomness from the OS: {e}")))?;
    Ok(format!("vk_{}", hex::encode(b)))
}

/// Make a key: its row, and its secret (shown once, never stored).
pub async fn create(store: &Store, new: NewKey, now_ms: u64) -> Result<(KeyRow, String), ManageError> {
    check_name(&new.name)?;
    let secret = secret::generate().map_err(ManageError::Invalid)?;
    let doc = KeyDoc {
        hint: secret::hint(&secret),
        limits: KeyLimits {
            rpm: new.rpm,
            tpm: new.tpm,
            rpd: new.rpd,
            tpd: new.tpd,
            monthly_tokens: new.monthly_tokens,
        },
        models: new.models,
        tags: new.tags,
        expires_at_ms: new.expires_at_ms,
        policy: new.policy,
        prefer: new.prefer,
        max_wait_ms: new.max_wait_ms,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        ..KeyDoc::default()
    };
    check_doc(&doc)?;
    let row = KeyRow { id: new_id()?, name: new.name, hash: secret::hash_hex(&secret), doc };
    if !store.key_insert(&row).await? {
        return Err(ManageError::Conflict(format!("a key named {:?} already exists", row.name)));
    }
    Ok((row, secret))
}

/// The key named `name_or_id` (its name or its `vk_` id).
pub async fn find(store: &Store, name_or_id: &str) -> Result<KeyRow, ManageError> {
    store
        .keys_all()
        .await?
        .into_iter()
        .find(|k| k.name == name_or_id || k.id == name_or_id)
        .ok_or_else(|| ManageError::NotFound(format!("no key named {name_or_id:?}")))
}

async fn save(store: &Store, row: KeyRow) -> Result<KeyRow, ManageError> {
    check_doc(&row.doc)?;
    if store.key_update(&row).await? {
        Ok(row)
    } else {
        Err(ManageError::Conflict(format!("a key named {:?} already exists (or the key was removed)", row.name)))
    }
}

/// Apply `patch` to a key.
pub async fn update(store: &Store, name_or_id: &str, patch: KeyPatch, now_ms: u64) -> Result<KeyRow, ManageError> {
    let mut row = find(store, name_or_id).await?;
    if let Some(name) = patch.name {
        check_name(&name)?;
        row.name = name;
    }
    let d = &mut row.doc;
    let set = |slot: &mut Option<u64>, v: Option<Option<u64>>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut d.limits.rpm, patch.rpm);
    set(&mut d.limits.tpm, patch.tpm);
    set(&mut d.limits.rpd, patch.rpd);
    set(&mut d.limits.tpd, patch.tpd);
    set(&mut d.limits.monthly_tokens, patch.monthly_tokens);
    set(&mut d.expires_at_ms, patch.expires_at_ms);
    set(&mut d.max_wait_ms, patch.max_wait_ms);
    if let Some(m) = patch.models {
        d.models = m;
    }
    if let Some(t) = patch.tags {
        d.tags = t;
    }
    if let Some(p) = patch.prefer {
        d.prefer = p;
    }
    if let Some(p) = patch.policy {
        d.policy = p;
    }
    d.updated_at_ms = now_ms;
    save(store, row).await
}

/// A new secret for the same key (same id, limits and usage); the old one keeps working for
/// `grace` (none: it stops at once).
pub async fn rotate(
    store: &Store,
    name_or_id: &str,
    grace: Duration,
    now_ms: u64,
) -> Result<(KeyRow, String), ManageError> {
    let mut row = find(store, name_or_id).await?;
    if row.doc.revoked_at_ms.is_some() {
        return Err(ManageError::Conflict(format!("key {:?} is revoked: make a new one", row.name)));
    }
    let secret = secret::generate().map_err(ManageError::Invalid)?;
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    row.doc.previous_hash = (grace_ms > 0).then(|| row.hash.clone());
    row.doc.previous_until_ms = (grace_ms > 0).then(|| now_ms.saturating_add(grace_ms));
    row.hash = secret::hash_hex(&secret);
    row.doc.hint = secret::hint(&secret);
    row.doc.updated_at_ms = now_ms;
    Ok((save(store, row).await?, secret))
}

/// Revoke a key for good (its secret stops working on every gateway within the refresh bound).
pub async fn revoke(store: &Store, name_or_id: &str, now_ms: u64) -> Result<KeyRow, ManageError> {
    let mut row = find(store, name_or_id).await?;
    if row.doc.revoked_at_ms.is_none() {
        row.doc.revoked_at_ms = Some(now_ms);
        row.doc.previous_hash = None;
        row.doc.updated_at_ms = now_ms;
        row = save(store, row).await?;
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_27_2026_1200_UTC: u64 = 1_795_780_800_000;

    #[test]
    fn names_are_short_plain_and_not_ids() {
        assert!(check_name("alice").is_ok() && check_name("team.ci-bot@home").is_ok());
        for bad in ["", "vk_abc", "key-1", "has space", "tab\t", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn expiry_dates_last_through_their_day_in_the_zone() {
        let utc = parse_expiry("2027-01-31", &TimeZone::UTC, NOV_27_2026_1200_UTC).unwrap();
        assert_eq!(utc, 1_801_440_000_000, "2027-02-01T00:00:00Z");
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(parse_expiry("2027-01-31", &tokyo, NOV_27_2026_1200_UTC).unwrap(), utc - 9 * 3_600_000);
        assert_eq!(
            parse_expiry("30d", &TimeZone::UTC, NOV_27_2026_1200_UTC).unwrap(),
            NOV_27_2026_1200_UTC + 30 * 86_400_000
        );
        assert_eq!(
            parse_expiry("2027-01-01T00:00:00Z", &TimeZone::UTC, NOV_27_2026_1200_UTC).unwrap(),
            1_798_761_600_000
        );
        assert!(parse_expiry("2020-01-01", &TimeZone::UTC, NOV_27_2026_1200_UTC).is_err());
        assert!(parse_expiry("soon", &TimeZone::UTC, NOV_27_2026_1200_UTC).is_err());
        assert!(parse_expiry("99999999999999999d", &TimeZone::UTC, NOV_27_2026_1200_UTC).is_err());
    }

    #[test]
    fn a_patch_tells_absent_from_null() {
        let p: KeyPatch = serde_json::from_str(r#"{"rpm": null, "tpd": 500}"#).unwrap();
        assert_eq!(p.rpm, Some(None));
        assert_eq!(p.tpd, Some(Some(500)));
        assert_eq!(p.rpd, None);
        assert!(serde_json::from_str::<KeyPatch>(r#"{"secret": "x"}"#).is_err());
    }

    #[test]
    fn zero_limits_are_refused() {
        let doc = KeyDoc { limits: KeyLimits { rpm: Some(0), ..KeyLimits::default() }, ..KeyDoc::default() };
        assert!(check_doc(&doc).is_err());
    }

    #[tokio::test]
    async fn keys_are_made_found_rotated_and_revoked_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/k.db", dir.path().display())).await.unwrap();
        let g0 = store.keys_generation().await.unwrap();
        let new = NewKey { name: "alice".into(), models: vec!["auto".into()], ..NewKey::default() };
        let (row, secret) = create(&store, new.clone(), 1).await.unwrap();
        assert!(row.id.starts_with("vk_") && secret.starts_with("fw-"));
        assert!(store.keys_generation().await.unwrap() > g0);
        assert!(matches!(create(&store, new, 2).await, Err(ManageError::Conflict(_))));
        let (rotated, fresh) = rotate(&store, "alice", Duration::from_secs(60), 3).await.unwrap();
        assert_eq!(rotated.id, row.id);
        assert_ne!(fresh, secret);
        assert_eq!(rotated.doc.previous_hash.as_deref(), Some(row.hash.as_str()));
        let patched = update(
            &store,
            &row.id,
            KeyPatch { rpm: Some(Some(5)), name: Some("alice2".into()), ..KeyPatch::default() },
            4,
        )
        .await
        .unwrap();
        assert_eq!((patched.name.as_str(), patched.doc.limits.rpm), ("alice2", Some(5)));
        let revoked = revoke(&store, "alice2", 5).await.unwrap();
        assert_eq!(revoked.doc.revoked_at_ms, Some(5));
        assert!(matches!(rotate(&store, "alice2", Duration::ZERO, 6).await, Err(ManageError::Conflict(_))));
        assert!(matches!(find(&store, "nobody").await, Err(ManageError::NotFound(_))));
        // nothing in the database is the secret
        let bytes = std::fs::read(dir.path().join("k.db")).unwrap_or_default();
        let wal = std::fs::read(dir.path().join("k.db-wal")).unwrap_or_default();
        for s in [&secret, &fresh] {
            assert!(!bytes.windows(s.len()).any(|w| w == s.as_bytes()));
            assert!(!wal.windows(s.len()).any(|w| w == s.as_bytes()));
        }
    }
}
