//! Request and response bodies kept for debugging (`[body_log]`), already redacted and capped by
//! whoever stores them; deleted once older than the retention.

use serde::Serialize;

use super::Store;

/// One API request's bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BodyRow {
    pub request_id: String,
    pub at_ms: i64,
    pub endpoint: String,
    pub status: i64,
    pub request: String,
    pub response: String,
    /// a body was longer than `max_bytes` and was cut
    pub truncated: bool,
}

impl Store {
    /// Keep one request's bodies (a second record for the same request id replaces nothing).
    pub async fn insert_bodies(&self, r: &BodyRow) -> Result<(), sqlx::Error> {
        const SQL_SQLITE: &str =
            "INSERT INTO bodies (request_id, at_ms, endpoint, status, request, response, truncated)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING";
        const SQL_PG: &str = "INSERT INTO bodies (request_id, at_ms, endpoint, status, request, response, truncated)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (request_id) DO NOTHING";
        macro_rules! bind {
            ($q:expr) => {
                $q.bind(&r.request_id)
                    .bind(r.at_ms)
                    .bind(&r.endpoint)
                    .bind(r.status)
                    .bind(&r.request)
                    .bind(&r.response)
                    .bind(r.truncated)
            };
        }
        match self {
            Store::Sqlite(pool) => bind!(sqlx::query(SQL_SQLITE)).execute(pool).await.map(|_| ()),
            Store::Postgres(pool) => bind!(sqlx::query(SQL_PG)).execute(pool).await.map(|_| ()),
        }
    }

    /// The bodies of one request, if kept.
    pub async fn bodies(&self, request_id: &str) -> Result<Option<BodyRow>, sqlx::Error> {
        type Raw = (String, i64, String, i64, String, String, bool);
        let raw: Option<Raw> = match self {
            Store::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT request_id, at_ms, endpoint, status, request, response, truncated FROM bodies WHERE request_id = ?",
                )
                    .bind(request_id)
                    .fetch_optional(pool)
                    .await?
            }
            Store::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT request_id, at_ms, endpoint, status, request, response, truncated FROM bodies WHERE request_id = $1",
                )
                    .bind(request_id)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(raw.map(|(request_id, at_ms, endpoint, status, request, response, truncated)| BodyRow {
            request_id,
            at_ms,
            endpoint,
            status,
            request,
            response,
            truncated,
        }))
    }

    /// Delete bodies older than `before_ms`; how many went.
    pub async fn prune_bodies(&self, before_ms: i64) -> Result<u64, sqlx::Error> {
        match self {
            Store::Sqlite(pool) => sqlx::query("DELETE FROM bodies WHERE at_ms < ?")
                .bind(before_ms)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Store::Postgres(pool) => sqlx::query("DELETE FROM bodies WHERE at_ms < $1")
                .bind(before_ms)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, at_ms: i64) -> BodyRow {
        BodyRow {
            request_id: id.into(),
            at_ms,
            endpoint: "chat".into(),
            status: 200,
            request: "{}".into(),
            response: "{\"ok\":true}".into(),
            truncated: false,
        }
    }

    async fn keeps_and_prunes(store: &Store) {
        let tag = format!("{}-{}", std::process::id(), crate::clock::now_ms());
        let (old, new) = (format!("old-{tag}"), format!("new-{tag}"));
        store.insert_bodies(&row(&old, 1_000)).await.unwrap();
        store.insert_bodies(&row(&new, i64::MAX / 2)).await.unwrap();
        assert_eq!(store.bodies(&old).await.unwrap(), Some(row(&old, 1_000)));
        assert!(store.prune_bodies(2_000).await.unwrap() >= 1);
        assert_eq!(store.bodies(&old).await.unwrap(), None, "past the retention");
        assert!(store.bodies(&new).await.unwrap().is_some());
        store.prune_bodies(i64::MAX).await.unwrap();
    }

    #[tokio::test]
    async fn sqlite_keeps_bodies_until_their_retention() {
        let dir = tempfile::tempdir().unwrap();
        keeps_and_prunes(&Store::open(&format!("sqlite://{}", dir.path().join("f.db").display())).await.unwrap()).await;
    }

    #[tokio::test]
    async fn postgres_keeps_bodies_until_their_retention() {
        let Some(url) = std::env::var("FREEWAY_TEST_DATABASE_URL").ok().filter(|u| !u.trim().is_empty()) else {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "FREEWAY_TEST_DATABASE_URL is not set and CI=true: this test needs PostgreSQL");
            eprintln!(
                "\n*** SKIPPED postgres_keeps_bodies_until_their_retention: FREEWAY_TEST_DATABASE_URL is not set ***\n"
            );
            return;
        };
        keeps_and_prunes(&Store::open(&url).await.unwrap()).await;
    }
}
