//! A key as `keys list` and the admin API show it: masked (the hint, never the secret or its
//! hash), its standing, and its usage against each of its limits.

use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::record::{KeyRow, Standing};
use crate::store::KeyUsage;

/// The instants a key's usage windows start at `now_ms`: a minute ago, the day's and the
/// month's start in `zone`.
pub fn window_starts(now_ms: u64, zone: &TimeZone) -> (i64, i64, i64) {
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let minute = now.saturating_sub(60_000);
    let zoned = jiff::Timestamp::from_millisecond(now).map(|t| t.to_zoned(zone.clone()));
    let day = zoned.as_ref().ok().and_then(|z| z.start_of_day().ok()).map_or(now, |z| z.timestamp().as_millisecond());
    let month = zoned
        .as_ref()
        .ok()
        .and_then(|z| z.date().first_of_month().at(0, 0, 0, 0).to_zoned(zone.clone()).ok())
        .map_or(day, |z| z.timestamp().as_millisecond());
    (minute, day, month)
}

fn limit(used: i64, limit: Option<u64>) -> Value {
    json!({ "used": used, "limit": limit })
}

/// One key, with its usage.
pub fn key_json(row: &KeyRow, usage: &KeyUsage, now_ms: u64) -> Value {
    let d = &row.doc;
    let l = &d.limits;
    let standing = d.standing(now_ms);
    let previous_valid = d.previous_hash.is_some() && d.previous_until_ms.is_some_and(|t| t > now_ms);
    json!({
        "object": "client_key",
        "id": row.id,
        "name": row.name,
        "key": d.hint,
        "status": standing.as_str(),
        "models": d.models,
        "tags": d.tags,
        "policy": d.policy,
        "prefer": d.prefer,
        "max_wait_ms": d.max_wait_ms,
        "expires_at_ms": d.expires_at_ms,
        "created_at_ms": d.created_at_ms,
        "updated_at_ms": d.updated_at_ms,
        "revoked_at_ms": d.revoked_at_ms,
        "previous_key_valid_until_ms": if previous_valid { d.previous_until_ms } else { None },
        "limits": {
            "rpm": limit(usage.requests_minute, l.rpm),
            "tpm": limit(usage.tokens_minute, l.tpm),
            "rpd": limit(usage.requests_day, l.rpd),
            "tpd": limit(usage.tokens_day, l.tpd),
            "monthly_tokens": limit(usage.tokens_month, l.monthly_tokens),
        },
    })
}

/// `used/limit` for a table cell (`-` without a limit, just the use then).
pub fn cell(used: i64, limit: Option<u64>) -> String {
    match limit {
        Some(l) => format!("{used}/{l}"),
        None if used > 0 => format!("{used}"),
        None => "-".to_owned(),
    }
}

pub fn is_active(row: &KeyRow, now_ms: u64) -> bool {
    row.doc.standing(now_ms) == Standing::Active
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_at_the_zones_midnight_and_first_of_month() {
        // 2026-11-27T12:00:00Z
        let now = 1_795_780_800_000;
        let (minute, day, month) = window_starts(now, &TimeZone::UTC);
        assert_eq!(minute, 1_795_780_740_000);
        assert_eq!(day, 1_795_737_600_000);
        assert_eq!(month, 1_793_491_200_000, "2026-11-01T00:00:00Z");
        let (_, day_la, _) = window_starts(now, &TimeZone::get("America/Los_Angeles").unwrap());
        assert_eq!(day_la, 1_795_737_600_000 + 8 * 3_600_000, "12:00 UTC is 04:00 in LA: its day began at 08:00 UTC");
    }

    #[test]
    fn the_view_never_holds_the_hash() {
        let row = KeyRow {
            id: "vk_1".into(),
            name: "a".into(),
            hash: "deadbeef".repeat(8),
            doc: crate::keys::KeyDoc { hint: "fw-AAAA…BBBB".into(), ..Default::default() },
        };
        let v = key_json(&row, &KeyUsage::default(), 0).to_string();
        assert!(!v.contains("deadbeef") && v.contains("fw-AAAA…BBBB"));
        assert_eq!(cell(3, Some(10)), "3/10");
        assert_eq!(cell(0, None), "-");
    }
}
