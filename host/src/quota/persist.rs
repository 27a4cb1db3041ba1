//! The ledger's state file: counters written every few seconds (temp file, fsync, rename) so a
//! restart, even after a crash, does not forget what was already spent today.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::book::Book;

/// How often changed counters are written.
pub const SAVE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    pub next_rid: u64,
    pub pools: Vec<SavedPool>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPool {
    pub provider: String,
    pub pool: String,
    /// by scope: `*` for pool-wide limits, else the model
    pub books: HashMap<String, Book>,
}

/// Read the state file; a missing file is an empty ledger.
pub fn load(path: &Path) -> Result<Saved, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Saved::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Write the state file atomically (temp file, fsync, rename).
pub fn store(path: &Path, saved: &Saved) -> Result<(), String> {
    let json = serde_json::to_vec(saved).map_err(|e| e.to_string())?;
    crate::vault::key::write_atomic(path, &json).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_state_file_is_an_empty_ledger_and_a_corrupt_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.json");
        assert!(load(&path).unwrap().pools.is_empty());
        std::fs::write(&path, b"{not json").unwrap();
        assert!(load(&path).unwrap_err().contains("q.json"));
        store(&path, &Saved { next_rid: 7, pools: vec![] }).unwrap();
        assert_eq!(load(&path).unwrap().next_rid, 7);
    }
}
