//! Usage analytics from the usage store: what `GET /admin/stats` serves and `freeway stats`
//! shows. A report reads at most [`MAX_RECORDS`] records (the newest), so its cost is bounded
//! whatever the store holds, and says when it left older ones out.

mod compute;
pub mod view;

pub use compute::report;
pub use view::Report;

/// The most usage records one report reads.
pub const MAX_RECORDS: usize = 200_000;

/// The longest period a report covers.
pub const MAX_PERIOD_MS: u64 = 31 * 86_400_000;

/// `30m`, `1h`, `24h`, `7d` as milliseconds (at most [`MAX_PERIOD_MS`]).
pub fn parse_period(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("`{text}` is not a period: write 30m, 1h, 24h or 7d"))?;
    let unit_ms = match unit {
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{text}` is not a period: write 30m, 1h, 24h or 7d")),
    };
    let ms = n.checked_mul(unit_ms).filter(|ms| *ms > 0).ok_or_else(|| format!("`{text}` is not a period"))?;
    if ms > MAX_PERIOD_MS {
        return Err(format!("`{text}` is longer than the 31 days a report covers"));
    }
    Ok(ms)
}

/// Which client a report is about, and the virtual keys' names.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    /// only this client's records (`vk_` id or `key-N`)
    pub only: Option<String>,
    /// `vk_` id → name
    pub names: std::collections::HashMap<String, String>,
}

/// The report for the last `period_ms` from `store`, under the routing table `snapshot`.
pub async fn build(
    store: &crate::store::Store,
    snapshot: std::sync::Arc<crate::registry::Snapshot>,
    period_ms: u64,
    clients: Clients,
) -> Result<Report, String> {
    let until = crate::clock::now_ms();
    let since = until.saturating_sub(period_ms);
    let limit = i64::try_from(MAX_RECORDS).unwrap_or(i64::MAX);
    let mut facts = store
        .usage_since(i64::try_from(since).unwrap_or(i64::MAX), limit.saturating_add(1))
        .await
        .map_err(|e| format!("reading usage: {e}"))?;
    let truncated = facts.len() > MAX_RECORDS;
    facts.truncate(MAX_RECORDS);
    // grouping and sorting a few hundred thousand records is CPU work: off the async workers
    tokio::task::spawn_blocking(move || {
        if let Some(only) = &clients.only {
            facts.retain(|f| f.client == *only);
        }
        let mut r = report(&facts, since, until, truncated, &snapshot);
        for g in &mut r.by_client {
            g.name = clients.names.get(&g.key).cloned();
        }
        r.key = clients.only;
        r
    })
    .await
    .map_err(|e| format!("the report failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_people_write_them() {
        assert_eq!(parse_period("1h"), Ok(3_600_000));
        assert_eq!(parse_period("24h"), Ok(86_400_000));
        assert_eq!(parse_period("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_period("30m"), Ok(1_800_000));
        for bad in ["", "h", "0h", "1w", "-1h", "99999999999999999999d", "40d"] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
    }
}
