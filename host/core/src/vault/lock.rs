//! Who may touch the vault's files, and when. One lock file beside the vault
//! (`vault.json.lock`): writers (adding, removing, enabling accounts, rotating the key) hold it
//! exclusively for their whole change; readers (the gateway, the admin API's listing, the CLI)
//! hold it shared while they read the vault and its key files. So a reader never sees a
//! rotation half-way, and readers never change a file: only a writer finishes or rolls back a
//! rotation a crash interrupted. Waiting for the lock is bounded.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::VaultError;

/// How long anyone waits for the vault's lock before giving up with a clear error.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct VaultLock {
    file: Option<File>,
}

fn lock_path(vault: &Path) -> PathBuf {
    vault.with_extension("json.lock")
}

impl VaultLock {
    /// The exclusive lock, for a change.
    pub fn exclusive(vault: &Path, wait: Duration) -> Result<VaultLock, VaultError> {
        let path = lock_path(vault);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| VaultError::Io(format!("{}: {e}", dir.display())))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| VaultError::Io(format!("{}: {e}", path.display())))?;
        take(&file, &path, wait, File::try_lock)?;
        Ok(VaultLock { file: Some(file) })
    }

    /// The shared lock, for reading. Where the lock file cannot be opened (a read-only folder),
    /// no writer can have made it either, and reading goes ahead without it.
    pub fn shared(vault: &Path, wait: Duration) -> Result<VaultLock, VaultError> {
        let path = lock_path(vault);
        let opened =
            OpenOptions::new().create(true).truncate(false).write(true).open(&path).or_else(|_| File::open(&path));
        let Ok(file) = opened else { return Ok(VaultLock { file: None }) };
        take(&file, &path, wait, File::try_lock_shared)?;
        Ok(VaultLock { file: Some(file) })
    }
}

fn take(
    file: &File,
    path: &Path,
    wait: Duration,
    try_lock: fn(&File) -> Result<(), TryLockError>,
) -> Result<(), VaultError> {
    let started = Instant::now();
    loop {
        match try_lock(file) {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if started.elapsed() < wait => std::thread::sleep(Duration::from_millis(5)),
            Err(TryLockError::WouldBlock) => {
                return Err(VaultError::Locked(format!(
                    "the vault is locked by another process (a change in progress?) for more than {} s: {}",
                    wait.as_secs(),
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(VaultError::Io(format!("cannot lock {}: {e}", path.display())));
            }
        }
    }
}

impl Drop for VaultLock {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = f.unlock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_and_a_writer_waits_for_them_with_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.json");
        let r1 = VaultLock::shared(&vault, LOCK_WAIT).unwrap();
        let r2 = VaultLock::shared(&vault, LOCK_WAIT).unwrap();
        let err = VaultLock::exclusive(&vault, Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("locked by another process"), "{err}");
        drop((r1, r2));
        let w = VaultLock::exclusive(&vault, Duration::from_millis(50)).unwrap();
        assert!(VaultLock::shared(&vault, Duration::from_millis(50)).is_err());
        drop(w);
        assert!(VaultLock::shared(&vault, Duration::from_millis(50)).is_ok());
    }
}
