//! The audit log in the usage store: every admin action (who, from where, what, when; never a
//! secret). The vault's audit journal (`accounts::audit`, appended and synced at the moment of
//! each change, by the admin API and the CLI alike) is the durable record; [`AuditMirror`] copies
//! its new lines here, each keyed by its hash, so copying twice (a restart, two gateways sharing a
//! data folder and a database) stores nothing twice. `GET /admin/audit` reads from here.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Store;

/// One admin action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// sha256 of the journal line
    pub id: String,
    /// where the line starts in the journal: orders actions within one millisecond
    #[serde(skip)]
    pub seq: i64,
    pub at_ms: i64,
    /// `admin-api:<address>` or `cli:<user>`
    pub actor: String,
    /// where the caller was: the client address, or `local`
    #[serde(default)]
    pub origin: Option<String>,
    pub action: String,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub masked_key: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

/// Longest journal read in one pass; the rest waits for the next.
const MAX_READ: u64 = 4 * 1024 * 1024;

/// The journal lines after `offset` that are complete, as rows; and the offset after them. A line
/// that is not an audit entry is skipped (and logged), never fatal.
pub fn read_journal(path: &Path, offset: u64) -> std::io::Result<(Vec<AuditRow>, u64)> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    // a journal that shrank was replaced: read it again from the start (ids keep it idempotent)
    let offset = if offset > len { 0 } else { offset };
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(MAX_READ).read_to_end(&mut buf)?;
    let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut rows = Vec::new();
    let mut at = offset;
    for line in buf[..complete].split_inclusive(|b| *b == b'\n') {
        let start = at;
        at += line.len() as u64;
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Entry>(line) {
            Ok(e) => rows.push(e.row(hex::encode(Sha256::digest(line)), i64::try_from(start).unwrap_or(i64::MAX))),
            Err(err) => tracing::warn!("{}: skipping a line that is not an audit entry: {err}", path.display()),
        }
    }
    Ok((rows, offset + complete as u64))
}

/// A journal line as `accounts::audit` writes it.
#[derive(Deserialize)]
struct Entry {
    at_ms: i64,
    actor: String,
    #[serde(default)]
    origin: Option<String>,
    action: String,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    masked_key: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

impl Entry {
    fn row(self, id: String, seq: i64) -> AuditRow {
        AuditRow {
            id,
            seq,
            at_ms: self.at_ms,
            origin: self.origin.or_else(|| Some(origin_of(&self.actor))),
            actor: self.actor,
            action: self.action,
            account: self.account,
            provider: self.provider,
            label: self.label,
            masked_key: self.masked_key,
            detail: self.detail,
        }
    }
}

/// Entries written before `origin` existed: the admin API's actor names the address.
fn origin_of(actor: &str) -> String {
    actor.strip_prefix("admin-api:").map_or_else(|| "local".to_owned(), str::to_owned)
}

/// Copies the journal's new lines into the store; one copy at a time.
#[derive(Default)]
pub struct AuditMirror {
    /// the journal read so far, and how far
    read: tokio::sync::Mutex<(PathBuf, u64)>,
}

impl AuditMirror {
    /// Copy what `journal` gained since the last call; how many rows were new to the store.
    pub async fn sync(&self, store: &Store, journal: &Path) -> Result<u64, String> {
        let mut read = self.read.lock().await;
        let from = if read.0 == journal { read.1 } else { 0 };
        let path = journal.to_owned();
        let (rows, next) = tokio::task::spawn_blocking(move || read_journal(&path, from))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{}: {e}", journal.display()))?;
        let added = store.insert_audit(&rows).await.map_err(|e| format!("storing audit entries: {e}"))?;
        *read = (journal.to_owned(), next);
        Ok(added)
    }
}

/// The INSERT for one chunk of rows, for either backend's query builder.
macro_rules! insert_rows {
    ($db:ty, $chunk:expr) => {{
        let mut q = sqlx::QueryBuilder::<$db>::new(
            "INSERT INTO audit (id, seq, at_ms, actor, origin, action, account, provider, label, masked_key, detail) ",
        );
        q.push_values($chunk, |mut b, r: &AuditRow| {
            b.push_bind(r.id.clone())
                .push_bind(r.seq)
                .push_bind(r.at_ms)
                .push_bind(r.actor.clone())
                .push_bind(r.origin.clone())
                .push_bind(r.action.clone())
                .push_bind(r.account.clone())
                .push_bind(r.provider.clone())
                .push_bind(r.label.clone())
                .push_bind(r.masked_key.clone())
                .push_bind(r.detail.clone());
        });
        q.push(" ON CONFLICT (id) DO NOTHING");
        q
    }};
}

/// The SELECT of the latest actions, for either backend's query builder.
macro_rules! select_recent {
    ($db:ty, $limit:expr, $since:expr, $action:expr) => {{
        let mut q = sqlx::QueryBuilder::<$db>::new(
            "SELECT id, seq, at_ms, actor, origin, action, account, provider, label, masked_key, detail FROM audit WHERE at_ms >= ",
        );
        q.push_bind($since);
        if let Some(action) = $action {
            q.push(" AND action = ").push_bind(action.to_owned());
        }
        q.push(" ORDER BY at_ms DESC, seq DESC LIMIT ").push_bind($limit);
        q
    }};
}

type RawRow = (
    String,
    i64,
    i64,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl Store {
    /// Store audit rows; rows already there (same id) are left alone. How many were new.
    pub async fn insert_audit(&self, rows: &[AuditRow]) -> Result<u64, sqlx::Error> {
        let mut added = 0;
        for chunk in rows.chunks(500) {
            added += match self {
                Store::Sqlite(pool) => insert_rows!(sqlx::Sqlite, chunk).build().execute(pool).await?.rows_affected(),
                Store::Postgres(pool) => {
                    insert_rows!(sqlx::Postgres, chunk).build().execute(pool).await?.rows_affected()
                }
            };
        }
        Ok(added)
    }

    /// The latest `limit` actions at or after `since_ms` (of one `action`, if given), oldest first.
    pub async fn audit_recent(
        &self,
        limit: i64,
        since_ms: i64,
        action: Option<&str>,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        let mut rows: Vec<RawRow> = match self {
            Store::Sqlite(pool) => {
                select_recent!(sqlx::Sqlite, limit, since_ms, action).build_query_as().fetch_all(pool).await?
            }
            Store::Postgres(pool) => {
                select_recent!(sqlx::Postgres, limit, since_ms, action).build_query_as().fetch_all(pool).await?
            }
        };
        rows.reverse();
        Ok(rows
            .into_iter()
            .map(|(id, seq, at_ms, actor, origin, action, account, provider, label, masked_key, detail)| AuditRow {
                id,
                seq,
                at_ms,
                actor,
                origin,
                action,
                account,
                provider,
                label,
                masked_key,
                detail,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(at: i64, action: &str, actor: &str) -> String {
        format!(
            "{{\"at_ms\":{at},\"actor\":\"{actor}\",\"action\":\"{action}\",\"account\":\"acc_1\",\"masked_key\":\"gsk_…1234\"}}\n"
        )
    }

    #[test]
    fn only_complete_lines_are_read_and_the_offset_moves_past_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let first = line(1, "account.add", "cli:me");
        std::fs::write(&path, format!("{first}{{\"at_ms\":2,\"act")).unwrap();
        let (rows, next) = read_journal(&path, 0).unwrap();
        assert_eq!(rows.len(), 1, "the half-written line waits");
        assert_eq!(next, first.len() as u64);
        assert_eq!(rows[0].origin.as_deref(), Some("local"));
        let (again, _) = read_journal(&path, next).unwrap();
        assert!(again.is_empty());
        assert_eq!(read_journal(&dir.path().join("none.log"), 0).unwrap(), (Vec::new(), 0));
    }

    async fn mirrors_and_reads(store: &Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let tag = format!("t{}-{}", std::process::id(), crate::clock::now_ms());
        let action = format!("account.add.{tag}");
        std::fs::write(&path, line(10, &action, "admin-api:10.0.0.7:5000") + &line(20, &action, "cli:me")).unwrap();
        let mirror = AuditMirror::default();
        assert_eq!(mirror.sync(store, &path).await.unwrap(), 2);
        assert_eq!(mirror.sync(store, &path).await.unwrap(), 0, "nothing new");
        // another gateway over the same journal and database stores nothing twice
        assert_eq!(AuditMirror::default().sync(store, &path).await.unwrap(), 0);
        let rows = store.audit_recent(10, 0, Some(&action)).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].origin.as_deref(), Some("10.0.0.7:5000"));
        assert_eq!(rows[1].actor, "cli:me");
        assert_eq!(store.audit_recent(1, 0, Some(&action)).await.unwrap()[0].at_ms, 20, "the latest, oldest first");
        assert!(store.audit_recent(10, 15, Some(&action)).await.unwrap().iter().all(|r| r.at_ms >= 15));
    }

    #[tokio::test]
    async fn sqlite_keeps_the_audit_log_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("f.db").display())).await.unwrap();
        mirrors_and_reads(&store).await;
    }

    #[tokio::test]
    async fn postgres_keeps_the_audit_log_once() {
        let Some(url) = std::env::var("FREEWAY_TEST_DATABASE_URL").ok().filter(|u| !u.trim().is_empty()) else {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "FREEWAY_TEST_DATABASE_URL is not set and CI=true: this test needs PostgreSQL");
            eprintln!("\n*** SKIPPED postgres_keeps_the_audit_log_once: FREEWAY_TEST_DATABASE_URL is not set ***\n");
            return;
        };
        mirrors_and_reads(&Store::open(&url).await.unwrap()).await;
    }
}
