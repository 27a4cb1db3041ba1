//! Durable storage: usage records (and, for scale-out, the state several gateways share).
//! SQLite by default (`data/freeway.db`, WAL: a killed process loses nothing it committed);
//! PostgreSQL when `[storage] url` or `FREEWAY_DATABASE_URL` says `postgres://...`.
//!
//! Queries are plain SQL per backend (the two differ only in placeholders and a few types);
//! the schema is created on start.

mod analytics;
mod audit;
mod bodies;
mod keys;

pub use analytics::UsageFact;
pub use audit::{AuditMirror, AuditRow};
pub use bodies::BodyRow;
pub use keys::KeyUsage;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::usage::UsageRecord;

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Usage per provider, model and account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub provider: String,
    pub model: String,
    pub account: String,
    pub outcome: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// Why the store refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// another connection holds the database's write lock beyond the busy timeout (SQLite
    /// `SQLITE_BUSY`/`SQLITE_LOCKED`; PostgreSQL lock timeouts, deadlocks, serialization)
    Busy,
    /// no space left on the database's disk (SQLite `SQLITE_FULL`, `ENOSPC`; PostgreSQL `53100`)
    DiskFull,
    /// the database cannot be reached (connection refused or lost, pool timed out)
    Unreachable,
    Other,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Busy => "database busy: another connection holds the write lock beyond the busy timeout",
            Failure::DiskFull => "disk full: no space left for the database",
            Failure::Unreachable => "database unreachable",
            Failure::Other => "write failed",
        }
    }
}

/// A write the store refused: which database, why, and the driver's own words.
#[derive(Debug, Clone)]
pub struct StoreError {
    pub failure: Failure,
    pub database: String,
    pub detail: String,
}

impl StoreError {
    fn new(store: &Store, e: &sqlx::Error) -> Self {
        StoreError { failure: classify(e), database: store.describe(), detail: e.to_string() }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.database, self.failure.as_str(), self.detail)
    }
}

impl std::error::Error for StoreError {}

/// SQLite primary result codes (the low byte of an extended code).
const SQLITE_IOERR: i64 = 10;
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_FULL: i64 = 13;

fn classify(e: &sqlx::Error) -> Failure {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let message = db.message().to_ascii_lowercase();
            if let Ok(n) = code.parse::<i64>() {
                // SQLite: the extended result code
                match n & 0xff {
                    SQLITE_BUSY | SQLITE_LOCKED => return Failure::Busy,
                    SQLITE_FULL => return Failure::DiskFull,
                    SQLITE_IOERR if message.contains("full") || message.contains("space") => return Failure::DiskFull,
                    _ => {}
                }
            }
            match code.as_ref() {
                // PostgreSQL SQLSTATEs
                "53100" => Failure::DiskFull,
                "55P03" | "40P01" | "40001" => Failure::Busy,
                _ if message.contains("disk is full") || message.contains("no space left") => Failure::DiskFull,
                _ if message.contains("database is locked") => Failure::Busy,
                _ => Failure::Other,
            }
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => Failure::DiskFull,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            Failure::Unreachable
        }
        _ => Failure::Other,
    }
}

const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS usage (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        account TEXT NOT NULL,
        outcome TEXT NOT NULL,
        stream INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        latency_ms INTEGER NOT NULL,
        first_byte_ms INTEGER,
        client TEXT NOT NULL DEFAULT '',
        error TEXT,
        policy TEXT,
        cache_read INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE INDEX IF NOT EXISTS usage_at ON usage (at_ms)",
    AUDIT_TABLE,
    "CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ms)",
    BODIES_TABLE,
    "CREATE INDEX IF NOT EXISTS bodies_at ON bodies (at_ms)",
];

/// Every admin action (see `audit.rs`); the same on both backends.
const AUDIT_TABLE: &str = "CREATE TABLE IF NOT EXISTS audit (
        id TEXT PRIMARY KEY,
        seq BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        actor TEXT NOT NULL,
        origin TEXT,
        action TEXT NOT NULL,
        account TEXT,
        provider TEXT,
        label TEXT,
        masked_key TEXT,
        detail TEXT
    )";

/// Request and response bodies (`[body_log]`, see `bodies.rs`).
const BODIES_TABLE: &str = "CREATE TABLE IF NOT EXISTS bodies (
        request_id TEXT PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        endpoint TEXT NOT NULL,
        status BIGINT NOT NULL,
        request TEXT NOT NULL,
        response TEXT NOT NULL,
        truncated BOOLEAN NOT NULL
    )";

/// Columns added after the first release, and how an older SQLite file gains them.
const SQLITE_ADDED: &[(&str, &str)] = &[
    ("client", "ALTER TABLE usage ADD COLUMN client TEXT NOT NULL DEFAULT ''"),
    ("error", "ALTER TABLE usage ADD COLUMN error TEXT"),
    ("policy", "ALTER TABLE usage ADD COLUMN policy TEXT"),
    ("cache_read", "ALTER TABLE usage ADD COLUMN cache_read INTEGER NOT NULL DEFAULT 0"),
];

const PG_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS usage (
        id BIGSERIAL PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        account TEXT NOT NULL,
        outcome TEXT NOT NULL,
        stream BOOLEAN NOT NULL,
        attempts INTEGER NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        latency_ms BIGINT NOT NULL,
        first_byte_ms BIGINT,
        client TEXT NOT NULL DEFAULT '',
        error TEXT,
        policy TEXT,
        cache_read BOOLEAN NOT NULL DEFAULT FALSE
    )",
    "CREATE INDEX IF NOT EXISTS usage_at ON usage (at_ms)",
    // tables made before these columns existed
    "ALTER TABLE usage ADD COLUMN IF NOT EXISTS client TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE usage ADD COLUMN IF NOT EXISTS error TEXT",
    "ALTER TABLE usage ADD COLUMN IF NOT EXISTS policy TEXT",
    "ALTER TABLE usage ADD COLUMN IF NOT EXISTS cache_read BOOLEAN NOT NULL DEFAULT FALSE",
    AUDIT_TABLE,
    "CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ms)",
    BODIES_TABLE,
    "CREATE INDEX IF NOT EXISTS bodies_at ON bodies (at_ms)",
];

/// Serialises schema changes between gateways starting together on one database.
const PG_SCHEMA_LOCK: i64 = 0x4652_4545_5741_5901;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn at_ms(r: &UsageRecord) -> i64 {
    r.at.duration_since(std::time::UNIX_EPOCH).map_or(0, ms)
}

fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const INSERT_HEAD: &str = "INSERT INTO usage (at_ms, provider, model, account, outcome, stream, attempts, prompt_tokens, completion_tokens, latency_ms, first_byte_ms, client, error, policy, cache_read) ";
/// Rows per INSERT: well under SQLite's 32,766 bound parameters (15 per row).
const INSERT_ROWS: usize = 1000;

async fn sqlite_batch(conn: &mut sqlx::SqliteConnection, batch: &[UsageRecord]) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    // IMMEDIATE: the write lock is taken (or waited for, up to the busy timeout) at BEGIN, not
    // half-way through the batch
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for chunk in batch.chunks(INSERT_ROWS) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(INSERT_HEAD);
        q.push_values(chunk, |mut b, r| {
            let u = r.usage.as_ref();
            b.push_bind(at_ms(r))
                .push_bind(r.provider.clone())
                .push_bind(r.model.clone())
                .push_bind(r.account.clone())
                .push_bind(r.outcome.as_str())
                .push_bind(i64::from(r.stream))
                .push_bind(i64::from(r.attempts))
                .push_bind(tokens(u.map_or(0, |u| u.prompt_tokens)))
                .push_bind(tokens(u.map_or(0, |u| u.completion_tokens)))
                .push_bind(ms(r.latency))
                .push_bind(r.first_byte.map(ms))
                .push_bind(r.client.id().unwrap_or_default())
                .push_bind(r.error)
                .push_bind(r.policy.clone())
                .push_bind(i64::from(r.cache_read));
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await
}

async fn postgres_batch(conn: &mut sqlx::PgConnection, batch: &[UsageRecord]) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    for chunk in batch.chunks(INSERT_ROWS) {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(INSERT_HEAD);
        q.push_values(chunk, |mut b, r| {
            let u = r.usage.as_ref();
            b.push_bind(at_ms(r))
                .push_bind(r.provider.clone())
                .push_bind(r.model.clone())
                .push_bind(r.account.clone())
                .push_bind(r.outcome.as_str())
                .push_bind(r.stream)
                .push_bind(i32::try_from(r.attempts).unwrap_or(i32::MAX))
                .push_bind(tokens(u.map_or(0, |u| u.prompt_tokens)))
                .push_bind(tokens(u.map_or(0, |u| u.completion_tokens)))
                .push_bind(ms(r.latency))
                .push_bind(r.first_byte.map(ms))
                .push_bind(r.client.id().unwrap_or_default())
                .push_bind(r.error)
                .push_bind(r.policy.clone())
                .push_bind(r.cache_read);
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await
}

async fn pg_schema(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_SCHEMA_LOCK).execute(&mut *tx).await?;
    for stmt in PG_SCHEMA.iter().chain(keys::TABLES) {
        sqlx::query(*stmt).execute(&mut *tx).await?;
    }
    tx.commit().await
}

async fn sqlite_schema(pool: &sqlx::SqlitePool) -> Result<(), sqlx::Error> {
    for stmt in SQLITE_SCHEMA.iter().chain(keys::TABLES) {
        sqlx::query(*stmt).execute(pool).await?;
    }
    let columns: Vec<(String,)> = sqlx::query_as("SELECT name FROM pragma_table_info('usage')").fetch_all(pool).await?;
    for (name, alter) in SQLITE_ADDED {
        if !columns.iter().any(|(c,)| c == name) {
            sqlx::query(*alter).execute(pool).await?;
        }
    }
    Ok(())
}

impl Store {
    /// Open (and create) the store at `url`: `sqlite://path` or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await
                .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
            pg_schema(&pool).await.map_err(|e| format!("PostgreSQL schema: {e}"))?;
            return Ok(Store::Postgres(pool));
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| format!("{url}: {e}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // with WAL, NORMAL survives a killed process (only a power cut can lose the last commits)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            // a small page cache: the gateway only appends and occasionally summarises
            .pragma("cache_size", "-1024")
            .statement_cache_capacity(16);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|e| format!("cannot open {path}: {e}"))?;
        sqlite_schema(&pool).await.map_err(|e| format!("{path}: {e}"))?;
        Ok(Store::Sqlite(pool))
    }

    /// What this store is, for messages: the SQLite file, or PostgreSQL's host, port and
    /// database (never the credentials).
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(pool) => format!("SQLite database {}", pool.connect_options().get_filename().display()),
            Store::Postgres(pool) => {
                let o = pool.connect_options();
                format!(
                    "PostgreSQL database {} on {}:{}",
                    o.get_database().unwrap_or("(default)"),
                    o.get_host(),
                    o.get_port()
                )
            }
        }
    }

    /// Write a batch of usage records in one transaction (multi-row INSERTs of at most 1000
    /// rows): all of the batch is committed or none of it, so a refused batch can be retried
    /// without duplicates.
    pub async fn insert_usage(&self, batch: &[UsageRecord]) -> Result<(), StoreError> {
        self.insert_usage_tx(batch).await.map_err(|e| StoreError::new(self, &e))
    }

    async fn insert_usage_tx(&self, batch: &[UsageRecord]) -> Result<(), sqlx::Error> {
        // after a failed write the connection is closed, not reused: SQLite rolls a transaction
        // back by itself on SQLITE_FULL or an I/O error, and sqlx's own ROLLBACK then fails and
        // leaves the connection believing it is still inside one (every later BEGIN is refused)
        match self {
            Store::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let result = sqlite_batch(&mut conn, batch).await;
                if result.is_err() {
                    conn.close_on_drop();
                }
                result
            }
            Store::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let result = postgres_batch(&mut conn, batch).await;
                if result.is_err() {
                    conn.close_on_drop();
                }
                result
            }
        }
    }

    /// Usage since `since_ms` (Unix ms), per provider, model, account and outcome.
    pub async fn usage_summary(&self, since_ms: i64) -> Result<Vec<UsageRow>, sqlx::Error> {
        const SQL_SQLITE: &str = "SELECT provider, model, account, outcome, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens)
             FROM usage WHERE at_ms >= ? GROUP BY provider, model, account, outcome ORDER BY provider, model, account, outcome";
        const SQL_PG: &str = "SELECT provider, model, account, outcome, COUNT(*), SUM(prompt_tokens)::BIGINT, SUM(completion_tokens)::BIGINT
             FROM usage WHERE at_ms >= $1 GROUP BY provider, model, account, outcome ORDER BY provider, model, account, outcome";
        let rows: Vec<(String, String, String, String, i64, i64, i64)> = match self {
            Store::Sqlite(pool) => sqlx::query_as(SQL_SQLITE).bind(since_ms).fetch_all(pool).await?,
            Store::Postgres(pool) => sqlx::query_as(SQL_PG).bind(since_ms).fetch_all(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(provider, model, account, outcome, requests, prompt_tokens, completion_tokens)| UsageRow {
                provider,
                model,
                account,
                outcome,
                requests,
                prompt_tokens,
                completion_tokens,
            })
            .collect())
    }

    /// Whether the store answers a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Store::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()),
            Store::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()),
        }
    }

    /// How many usage records are stored.
    pub async fn usage_count(&self) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = match self {
            Store::Sqlite(pool) => sqlx::query_as("SELECT COUNT(*) FROM usage").fetch_one(pool).await?,
            Store::Postgres(pool) => sqlx::query_as("SELECT COUNT(*) FROM usage").fetch_one(pool).await?,
        };
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Outcome;
    use crate::wire::types::Usage;

    fn record(provider: &str, prompt: u64) -> UsageRecord {
        UsageRecord {
            at: std::time::SystemTime::now(),
            provider: provider.into(),
            model: "m".into(),
            account: format!("{provider}#1"),
            usage: Some(Usage {
                prompt_tokens: prompt,
                completion_tokens: 2,
                total_tokens: prompt + 2,
                extra: Default::default(),
            }),
            outcome: Outcome::Ok,
            stream: false,
            attempts: 1,
            latency: Duration::from_millis(12),
            first_byte: None,
            client: crate::principal::Principal::Anyone,
            error: None,
            policy: None,
            cache_read: false,
        }
    }

    #[tokio::test]
    async fn sqlite_keeps_usage_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db/freeway.db").display());
        let store = Store::open(&url).await.unwrap();
        store.insert_usage(&[record("a", 3), record("a", 4), record("b", 1)]).await.unwrap();
        drop(store);
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.usage_count().await.unwrap(), 3);
        let rows = store.usage_summary(0).await.unwrap();
        assert_eq!(rows[0].provider, "a");
        assert_eq!((rows[0].requests, rows[0].prompt_tokens, rows[0].completion_tokens), (2, 7, 4));
    }

    #[tokio::test]
    async fn postgres_stores_usage_when_configured() {
        let Some(url) = std::env::var("FREEWAY_TEST_DATABASE_URL").ok().filter(|u| !u.trim().is_empty()) else {
            // under CI a test that needs PostgreSQL fails instead of passing by skipping
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "FREEWAY_TEST_DATABASE_URL is not set and CI=true: this test needs PostgreSQL");
            eprintln!(
                "\n*** SKIPPED postgres_stores_usage_when_configured: FREEWAY_TEST_DATABASE_URL is not set ***\n"
            );
            return;
        };
        let store = Store::open(&url).await.unwrap();
        let provider = format!("pg-test-{}", std::process::id());
        let hit = UsageRecord { cache_read: true, ..record(&provider, 5) };
        store.insert_usage(&[record(&provider, 5), hit]).await.unwrap();
        let rows = store.usage_summary(0).await.unwrap();
        let row = rows.iter().find(|r| r.provider == provider).unwrap();
        assert_eq!((row.requests, row.prompt_tokens), (2, 10));
        let facts = store.usage_since(0, 100).await.unwrap();
        let mine: Vec<bool> = facts.iter().filter(|f| f.provider == provider).map(|f| f.cache_read).collect();
        assert_eq!(mine, [true, false], "a cache hit reads back as one (newest first)");
    }
}
