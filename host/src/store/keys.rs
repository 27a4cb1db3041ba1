//! Virtual client keys in the usage store (`client_keys`: id, unique name, the secret's SHA-256,
//! the rest as a JSON document), and a change counter (`client_keys_generation`) that every
//! write bumps in the same transaction: gateways poll it and reload the keys when it moves.
//! The queries are written once, with `$N` placeholders (both backends read them).

use super::{Store, StoreError};
use crate::keys::record::{KeyDoc, KeyRow};

pub(super) const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS client_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        hash TEXT NOT NULL UNIQUE,
        doc TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS client_keys_generation (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)",
    "INSERT INTO client_keys_generation (id, n) VALUES (1, 0) ON CONFLICT DO NOTHING",
];

/// Usage of one key in the current windows, from its usage records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyUsage {
    pub requests_minute: i64,
    pub tokens_minute: i64,
    pub requests_day: i64,
    pub tokens_day: i64,
    pub tokens_month: i64,
}

const BUMP: &str = "UPDATE client_keys_generation SET n = n + 1 WHERE id = 1";

/// Run `$body` with `$pool` bound to either backend's pool.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

fn row((id, name, hash, doc): (String, String, String, String)) -> KeyRow {
    // a document this version cannot read keeps the key (revoked, so it cannot be used)
    let doc = serde_json::from_str::<KeyDoc>(&doc).unwrap_or_else(|e| {
        tracing::warn!("client key {id}: unreadable settings ({e}); treated as revoked");
        KeyDoc { revoked_at_ms: Some(0), ..KeyDoc::default() }
    });
    KeyRow { id, name, hash, doc }
}

fn doc_json(doc: &KeyDoc) -> String {
    serde_json::to_string(doc).unwrap_or_else(|_| "{}".to_owned())
}

impl Store {
    /// The change counter: moves whenever a key is created, changed, rotated or revoked.
    pub async fn keys_generation(&self) -> Result<i64, StoreError> {
        let q = "SELECT n FROM client_keys_generation WHERE id = 1";
        let n: Option<(i64,)> = on_pool!(self, pool => sqlx::query_as(q).fetch_optional(pool).await)
            .map_err(|e| StoreError::new(self, &e))?;
        Ok(n.map_or(0, |(n,)| n))
    }

    /// Every key, revoked ones included, by name.
    pub async fn keys_all(&self) -> Result<Vec<KeyRow>, StoreError> {
        let q = "SELECT id, name, hash, doc FROM client_keys ORDER BY name";
        let rows: Vec<(String, String, String, String)> =
            on_pool!(self, pool => sqlx::query_as(q).fetch_all(pool).await).map_err(|e| StoreError::new(self, &e))?;
        Ok(rows.into_iter().map(row).collect())
    }

    /// Store a new key; `false` when its name (or id, or hash) is taken.
    pub async fn key_insert(&self, key: &KeyRow) -> Result<bool, StoreError> {
        let q = "INSERT INTO client_keys (id, name, hash, doc) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        let doc = doc_json(&key.doc);
        let done: Result<u64, sqlx::Error> = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(q)
                .bind(&key.id)
                .bind(&key.name)
                .bind(&key.hash)
                .bind(&doc)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                sqlx::query(BUMP).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(n)
        }.await);
        done.map(|n| n > 0).map_err(|e| StoreError::new(self, &e))
    }

    /// Replace a key's name, hash and document; `false` when there is no such key or the new
    /// name is another key's.
    pub async fn key_update(&self, key: &KeyRow) -> Result<bool, StoreError> {
        let taken = "SELECT COUNT(*) FROM client_keys WHERE name = $1 AND id <> $2";
        let q = "UPDATE client_keys SET name = $1, hash = $2, doc = $3 WHERE id = $4";
        let doc = doc_json(&key.doc);
        let done: Result<u64, sqlx::Error> = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let (clash,): (i64,) =
                sqlx::query_as(taken).bind(&key.name).bind(&key.id).fetch_one(&mut *tx).await?;
            if clash > 0 {
                return Ok::<u64, sqlx::Error>(0);
            }
            let n = sqlx::query(q)
                .bind(&key.name)
                .bind(&key.hash)
                .bind(&doc)
                .bind(&key.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                sqlx::query(BUMP).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(n)
        }.await);
        done.map(|n| n > 0).map_err(|e| StoreError::new(self, &e))
    }

    /// Each virtual key's usage (records whose client is a `vk_` id) since three instants:
    /// a minute ago, the start of its day, the start of its month. Cache hits count as requests,
    /// not tokens (no provider spent any).
    pub async fn keys_usage(
        &self,
        minute_ms: i64,
        day_ms: i64,
        month_ms: i64,
    ) -> Result<std::collections::HashMap<String, KeyUsage>, StoreError> {
        const SUMS: &str = "SELECT client,
                SUM(CASE WHEN at_ms >= $1 THEN 1 ELSE 0 END),
                SUM(CASE WHEN at_ms >= $1 AND NOT cache_read THEN prompt_tokens + completion_tokens ELSE 0 END),
                SUM(CASE WHEN at_ms >= $2 THEN 1 ELSE 0 END),
                SUM(CASE WHEN at_ms >= $2 AND NOT cache_read THEN prompt_tokens + completion_tokens ELSE 0 END),
                SUM(CASE WHEN NOT cache_read THEN prompt_tokens + completion_tokens ELSE 0 END)
             FROM usage WHERE at_ms >= $3 AND client LIKE 'vk\\_%' ESCAPE '\\' GROUP BY client";
        // SUM of BIGINT is NUMERIC in PostgreSQL
        const SUMS_PG: &str = "SELECT client,
                CAST(SUM(CASE WHEN at_ms >= $1 THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN at_ms >= $1 AND NOT cache_read THEN prompt_tokens + completion_tokens ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN at_ms >= $2 THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN at_ms >= $2 AND NOT cache_read THEN prompt_tokens + completion_tokens ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN NOT cache_read THEN prompt_tokens + completion_tokens ELSE 0 END) AS BIGINT)
             FROM usage WHERE at_ms >= $3 AND client LIKE 'vk\\_%' ESCAPE '\\' GROUP BY client";
        let since = month_ms.min(day_ms).min(minute_ms);
        let rows: Vec<(String, i64, i64, i64, i64, i64)> = match self {
            Store::Sqlite(pool) => sqlx::query_as(SUMS).bind(minute_ms).bind(day_ms).bind(since).fetch_all(pool).await,
            Store::Postgres(pool) => {
                sqlx::query_as(SUMS_PG).bind(minute_ms).bind(day_ms).bind(since).fetch_all(pool).await
            }
        }
        .map_err(|e| StoreError::new(self, &e))?;
        Ok(rows
            .into_iter()
            .map(|(client, rm, tm, rd, td, tmo)| {
                let u = KeyUsage {
                    requests_minute: rm,
                    tokens_minute: tm,
                    requests_day: rd,
                    tokens_day: td,
                    tokens_month: tmo,
                };
                (client, u)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::manage::{self, NewKey};

    async fn round_trip(store: &Store) {
        let g0 = store.keys_generation().await.unwrap();
        let new = NewKey { name: "pat".into(), rpd: Some(5), ..NewKey::default() };
        let (row, _) = manage::create(store, new, 10).await.unwrap();
        assert!(store.keys_generation().await.unwrap() > g0);
        let all = store.keys_all().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].doc.limits.rpd, Some(5));
        assert!(!store.key_insert(&row).await.unwrap(), "the same name twice");
        let usage = crate::usage::UsageRecord {
            at: std::time::UNIX_EPOCH + std::time::Duration::from_millis(5_000),
            provider: "p".into(),
            model: "m".into(),
            account: "a".into(),
            usage: Some(crate::wire::types::Usage {
                prompt_tokens: 7,
                completion_tokens: 3,
                total_tokens: 10,
                ..Default::default()
            }),
            outcome: crate::usage::Outcome::Ok,
            stream: false,
            attempts: 1,
            latency: std::time::Duration::from_millis(1),
            first_byte: None,
            client: crate::principal::Principal::Virtual(std::sync::Arc::new(crate::keys::VirtualKey::new(
                row.clone(),
                &jiff::tz::TimeZone::UTC,
                &crate::quota::Ledger::in_memory(),
            ))),
            error: None,
            policy: None,
            cache_read: false,
        };
        let hit = crate::usage::UsageRecord { cache_read: true, ..usage.clone() };
        store.insert_usage(&[usage, hit]).await.unwrap();
        let u = store.keys_usage(4_000, 0, 0).await.unwrap();
        let mine = u.get(&row.id).copied().unwrap();
        assert_eq!(
            (mine.requests_minute, mine.tokens_minute, mine.tokens_month),
            (2, 10, 10),
            "a hit spends no tokens"
        );
        let u = store.keys_usage(6_000, 0, 0).await.unwrap();
        assert_eq!(u.get(&row.id).map(|k| k.requests_minute), Some(0));
    }

    #[tokio::test]
    async fn sqlite_keeps_keys_and_counts_their_usage() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(&Store::open(&format!("sqlite://{}/k.db", dir.path().display())).await.unwrap()).await;
    }

    #[tokio::test]
    async fn postgres_keeps_keys_and_counts_their_usage() {
        use sqlx::Connection;
        let Some(url) = std::env::var("FREEWAY_TEST_DATABASE_URL").ok().filter(|u| !u.trim().is_empty()) else {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "FREEWAY_TEST_DATABASE_URL is not set and CI=true: this test needs PostgreSQL");
            eprintln!(
                "\n*** SKIPPED postgres_keeps_keys_and_counts_their_usage: FREEWAY_TEST_DATABASE_URL is not set ***\n"
            );
            return;
        };
        // a database of its own: keys in the shared one would close every gateway using it
        let name = format!("fw_unit_keys_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
        let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
        let store = Store::open(&format!("{base}/{name}")).await.unwrap();
        round_trip(&store).await;
        if let Store::Postgres(pool) = store {
            pool.close().await;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
