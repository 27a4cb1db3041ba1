//! The audit journal: one JSON line per admin action (account changes and checks, key
//! rotation), appended and synced at the moment of the change, with the time, who did it and
//! what. Never a secret: accounts appear by id, label and masked key. The gateway copies it into
//! the usage store (`store::audit`), where `GET /admin/audit` reads it.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry<'a> {
    /// Unix milliseconds
    pub at_ms: u64,
    /// `cli:<user>` or `admin-api:<address>`
    pub actor: &'a str,
    /// where the caller was, when the actor does not say (the store reads the admin API's
    /// address from its actor, and `local` for the CLI)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<&'a str>,
    /// `account.add`, `account.remove`, `account.enable`, `account.disable`, `vault.rotate-key`, ...
    pub action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
}

/// Append one entry; failures are logged (the change itself already happened).
pub fn record(path: &Path, entry: &AuditEntry<'_>) {
    if let Err(e) = append(path, entry) {
        tracing::error!("cannot write the audit log {}: {e}", path.display());
    }
}

fn append(path: &Path, entry: &AuditEntry<'_>) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(&line)?;
    f.sync_data()
}

/// The actor for changes made from this shell.
pub fn cli_actor() -> String {
    format!("cli:{}", std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into()))
}

/// The last `n` entries, as JSON values.
#[cfg(test)]
pub fn tail(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_append_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        for action in ["account.add", "account.disable"] {
            record(
                &path,
                &AuditEntry {
                    at_ms: 1,
                    actor: "cli:test",
                    origin: None,
                    action,
                    account: Some("acc_1"),
                    provider: Some("groq"),
                    label: None,
                    masked_key: Some("gsk_…1234"),
                    detail: None,
                },
            );
        }
        let t = tail(&path, 10);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1]["action"], "account.disable");
        assert_eq!(t[0]["masked_key"], "gsk_…1234");
    }
}
