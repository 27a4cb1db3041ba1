//! Reading usage back for analytics: the records of a period, newest first, bounded in count so
//! that a report costs the same whatever the store holds.

use super::Store;

/// One stored usage record, as analytics reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageFact {
    pub at_ms: i64,
    pub provider: String,
    pub model: String,
    pub account: String,
    /// `key-N`, or empty when no client keys are configured
    pub client: String,
    pub outcome: String,
    pub error: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub latency_ms: i64,
    pub first_byte_ms: Option<i64>,
    pub attempts: i64,
    pub stream: bool,
    /// the routing policy that ranked the candidates, for `auto` and policy routes
    pub policy: Option<String>,
    /// answered from the response cache (no provider call)
    pub cache_read: bool,
}

macro_rules! columns {
    () => {
        "at_ms, provider, model, account, client, outcome, error, prompt_tokens, completion_tokens, latency_ms, first_byte_ms"
    };
}
const SQLITE_SINCE: &str = concat!(
    "SELECT ",
    columns!(),
    ", attempts, stream, policy, cache_read FROM usage WHERE at_ms >= ? ORDER BY at_ms DESC, id DESC LIMIT ?"
);
const PG_SINCE: &str = concat!(
    "SELECT ",
    columns!(),
    ", attempts::BIGINT, stream, policy, cache_read FROM usage WHERE at_ms >= $1 ORDER BY at_ms DESC, id DESC LIMIT $2"
);

type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
    i64,
    bool,
    Option<String>,
    bool,
);

impl Store {
    /// The records since `since_ms` (Unix ms), newest first, at most `limit` of them.
    pub async fn usage_since(&self, since_ms: i64, limit: i64) -> Result<Vec<UsageFact>, sqlx::Error> {
        let rows: Vec<Row> = match self {
            Store::Sqlite(pool) => sqlx::query_as(SQLITE_SINCE).bind(since_ms).bind(limit).fetch_all(pool).await?,
            Store::Postgres(pool) => sqlx::query_as(PG_SINCE).bind(since_ms).bind(limit).fetch_all(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(
                |(
                    at_ms,
                    provider,
                    model,
                    account,
                    client,
                    outcome,
                    error,
                    prompt_tokens,
                    completion_tokens,
                    latency_ms,
                    first_byte_ms,
                    attempts,
                    stream,
                    policy,
                    cache_read,
                )| {
                    UsageFact {
                        at_ms,
                        provider,
                        model,
                        account,
                        client,
                        outcome,
                        error,
                        prompt_tokens,
                        completion_tokens,
                        latency_ms,
                        first_byte_ms,
                        attempts,
                        stream,
                        policy,
                        cache_read,
                    }
                },
            )
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::principal::Principal;
    use crate::usage::{Outcome, UsageRecord};

    fn record(secs_ago: u64, client: Principal, error: Option<&'static str>) -> UsageRecord {
        UsageRecord {
            at: SystemTime::now() - Duration::from_secs(secs_ago),
            provider: "p".into(),
            model: "m".into(),
            account: "p#1".into(),
            usage: None,
            outcome: if error.is_some() { Outcome::UpstreamError } else { Outcome::Ok },
            stream: true,
            attempts: 2,
            latency: Duration::from_millis(40),
            first_byte: Some(Duration::from_millis(7)),
            client,
            error,
            policy: None,
            cache_read: false,
        }
    }

    #[tokio::test]
    async fn records_come_back_newest_first_with_their_client_and_error_bounded_in_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("u.db").display())).await.unwrap();
        store
            .insert_usage(&[
                record(7200, Principal::Anyone, None),
                UsageRecord {
                    policy: Some("smart".to_owned()),
                    ..record(60, Principal::Key { index: 1 }, Some("upstream_rate_limited"))
                },
                record(30, Principal::Anyone, None),
            ])
            .await
            .unwrap();
        let since = i64::try_from(crate::clock::now_ms()).unwrap() - 3_600_000;
        let facts = store.usage_since(since, 10).await.unwrap();
        assert_eq!(facts.len(), 2, "the period's records only");
        assert_eq!((facts[0].client.as_str(), facts[0].error.as_deref()), ("", None));
        assert_eq!((facts[1].client.as_str(), facts[1].error.as_deref()), ("key-2", Some("upstream_rate_limited")));
        assert_eq!((facts[1].latency_ms, facts[1].first_byte_ms), (40, Some(7)));
        assert_eq!((facts[1].attempts, facts[1].stream), (2, true));
        assert_eq!((facts[0].policy.as_deref(), facts[1].policy.as_deref()), (None, Some("smart")));
        assert_eq!(store.usage_since(0, 1).await.unwrap().len(), 1, "at most the limit");
    }

    #[tokio::test]
    async fn a_cache_hit_s_record_reads_back_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("c.db").display())).await.unwrap();
        let hit = UsageRecord { cache_read: true, attempts: 0, ..record(10, Principal::Anyone, None) };
        store.insert_usage(&[record(20, Principal::Anyone, None), hit]).await.unwrap();
        let facts = store.usage_since(0, 10).await.unwrap();
        assert_eq!(facts.iter().map(|f| (f.cache_read, f.attempts)).collect::<Vec<_>>(), [(true, 0), (false, 2)]);
    }

    #[tokio::test]
    async fn a_store_written_before_client_and_error_existed_gains_them_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            sqlx::query(
                "CREATE TABLE usage (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, provider TEXT NOT NULL,
                 model TEXT NOT NULL, account TEXT NOT NULL, outcome TEXT NOT NULL, stream INTEGER NOT NULL,
                 attempts INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
                 latency_ms INTEGER NOT NULL, first_byte_ms INTEGER)",
            )
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("INSERT INTO usage VALUES (NULL, 5, 'p', 'm', 'a', 'ok', 0, 1, 1, 1, 1, NULL)")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        let store = Store::open(&format!("sqlite://{}", path.display())).await.unwrap();
        store.insert_usage(&[record(1, Principal::Key { index: 0 }, None)]).await.unwrap();
        let facts = store.usage_since(0, 10).await.unwrap();
        assert_eq!(facts.len(), 2);
        assert_eq!(facts[0].client, "key-1");
        assert_eq!((facts[1].at_ms, facts[1].client.as_str()), (5, ""), "the old record, with the default");
    }
}
