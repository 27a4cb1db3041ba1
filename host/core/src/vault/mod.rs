//! The vault: upstream credentials, encrypted at rest in one JSON file.
//!
//! Each account's secret is sealed separately (XSalsa20-Poly1305, fresh nonce, bound to the
//! account id; see [`key`]). The rest of a record (provider, label, pool, settings, a masked
//! form of the key) is plain, so listing accounts needs no decryption. Every write replaces the
//! file atomically (temp file, fsync, rename): a crash leaves the old vault or the new one.
//! A key check value tells a wrong master key apart from a damaged file. Each sealed secret
//! also carries a hash of its record's other fields (provider, label, pool, tier, settings):
//! edit those in the file and the key no longer opens, so it cannot be sent elsewhere.
//!
//! Readers take the vault's lock shared and never change a file; writers take it exclusively
//! ([`lock`]) and alone finish (or roll back) a key rotation a crash interrupted.

pub mod key;
pub mod lock;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::{SecretString, mask};
use key::{Kdf, Sealed, write_atomic};
pub use key::{KeyKind, MasterKey};
pub use lock::VaultLock;

/// Format 2 binds each record's non-secret fields into its sealed secret; format 1 (read, and
/// upgraded by the first change) did not.
const VERSION: u32 = 2;
const CHECK_ID: &str = "__freeway_key_check__";
const CHECK_TEXT: &[u8] = b"freeway vault key check";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// the master key does not open this vault
    WrongKey,
    /// the key given is malformed (length, encoding, too-short passphrase)
    BadKey(String),
    /// the vault needs a key source that is not available
    KeyUnavailable(String),
    Corrupt(String),
    NotFound(String),
    Invalid(String),
    Io(String),
    /// another process holds the vault's lock for longer than anyone waits
    Locked(String),
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultError::WrongKey => {
                f.write_str("the master key does not open this vault (a different key, or the wrong passphrase)")
            }
            VaultError::BadKey(m)
            | VaultError::KeyUnavailable(m)
            | VaultError::Invalid(m)
            | VaultError::Io(m)
            | VaultError::Locked(m) => f.write_str(m),
            VaultError::Corrupt(m) => write!(f, "the vault is damaged: {m}"),
            VaultError::NotFound(what) => write!(f, "no account {what}"),
        }
    }
}

impl std::error::Error for VaultError {}

/// What an account's credits are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountTier {
    #[default]
    Free,
    /// paid credits (trial or bought)
    Credits,
}

/// One stored account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub provider: String,
    pub label: String,
    /// accounts with the same pool draw on one quota (several keys of one provider account)
    pub pool: String,
    pub enabled: bool,
    #[serde(default)]
    pub tier: AccountTier,
    /// non-secret per-account settings (Cloudflare's `account_id`, a base URL override, ...)
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// `gsk_…a1b2`
    pub masked: String,
    pub created_at_ms: u64,
    pub secret: Sealed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyHeader {
    kind: KeyKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kdf: Option<Kdf>,
    check: Sealed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct VaultFile {
    version: u32,
    key: KeyHeader,
    #[serde(default)]
    accounts: Vec<Record>,
}

/// Where the vault and its key file live.
#[derive(Debug, Clone)]
pub struct VaultPaths {
    pub vault: PathBuf,
    pub key_file: PathBuf,
}

/// A new account to store.
pub struct NewAccount {
    pub provider: String,
    pub label: Option<String>,
    pub pool: Option<String>,
    pub secret: SecretString,
    pub settings: BTreeMap<String, String>,
    pub tier: AccountTier,
}

impl Record {
    /// What the sealed secret is bound to: every field but the secret and `enabled` (which an
    /// operator toggles, and which cannot send a key anywhere).
    fn binding(&self) -> [u8; 32] {
        let fields = (
            &self.id,
            &self.provider,
            &self.label,
            &self.pool,
            self.tier,
            &self.settings,
            &self.masked,
            self.created_at_ms,
        );
        let text = serde_json::to_vec(&fields).unwrap_or_default();
        Sha256::digest(&text).into()
    }
}

/// An open vault.
pub struct Vault {
    paths: VaultPaths,
    key: MasterKey,
    records: Vec<Record>,
    /// the format the records were read in (1: secrets not bound to their fields)
    format: u32,
}

/// Which source opened the vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeySource {
    Other,
    File,
    /// the key file of a rotation that wrote the vault but had not yet put its key in place
    NextFile,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vault({}, {} accounts)", self.paths.vault.display(), self.records.len())
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The key-file path of a rotation in progress.
fn next_key_file(path: &Path) -> PathBuf {
    path.with_extension("key.next")
}

impl Vault {
    /// For a change: under the exclusive lock (which the caller holds), open the vault or create
    /// an empty one (and, without another key source, a key file). A rotation a crash
    /// interrupted is finished or rolled back here, and a format 1 vault is upgraded.
    /// `passphrase` is used when the vault is (or should be) passphrase-sealed.
    pub fn open_or_create(
        paths: &VaultPaths,
        passphrase: Option<&str>,
        _lock: &VaultLock,
    ) -> Result<Vault, VaultError> {
        if paths.vault.exists() {
            let (mut vault, source) = Self::read(paths, passphrase)?;
            let next = next_key_file(&paths.key_file);
            match source {
                KeySource::NextFile => {
                    std::fs::rename(&next, &paths.key_file).map_err(|e| VaultError::Io(e.to_string()))?;
                    tracing::warn!("finished an interrupted key rotation ({})", paths.key_file.display());
                }
                KeySource::File if next.exists() => {
                    // a rotation that never wrote the vault: its new key was never used
                    std::fs::remove_file(&next).map_err(|e| VaultError::Io(e.to_string()))?;
                    tracing::warn!("rolled back an interrupted key rotation ({})", next.display());
                }
                _ => {}
            }
            if vault.format < VERSION {
                vault.upgrade()?;
                vault.save()?;
                tracing::info!("vault {} upgraded to format {VERSION}", paths.vault.display());
            }
            return Ok(vault);
        }
        let key = if let Some(k) = env(key::ENV_KEY) {
            MasterKey::from_base64(&k, KeyKind::Env)?
        } else if let Some(p) = passphrase.map(str::to_owned).or_else(|| env(key::ENV_PASSPHRASE)) {
            MasterKey::from_passphrase(&p, Kdf::new()?)?
        } else {
            key::key_from_file(&paths.key_file, true)?
        };
        let vault = Vault { paths: paths.clone(), key, records: Vec::new(), format: VERSION };
        vault.save()?;
        Ok(vault)
    }

    /// Open an existing vault to read it (taking its lock shared meanwhile; never changing a
    /// file). A wrong key is an error, never garbage.
    pub fn open(paths: &VaultPaths, passphrase: Option<&str>) -> Result<Vault, VaultError> {
        let _shared = VaultLock::shared(&paths.vault, lock::LOCK_WAIT)?;
        Ok(Self::read(paths, passphrase)?.0)
    }

    fn read(paths: &VaultPaths, passphrase: Option<&str>) -> Result<(Vault, KeySource), VaultError> {
        let text = std::fs::read(&paths.vault).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => VaultError::Io(format!("no vault at {}", paths.vault.display())),
            _ => VaultError::Io(format!("cannot read {}: {e}", paths.vault.display())),
        })?;
        let file: VaultFile = serde_json::from_slice(&text).map_err(|e| VaultError::Corrupt(e.to_string()))?;
        if !(1..=VERSION).contains(&file.version) {
            return Err(VaultError::Corrupt(format!(
                "vault format {} is not one this Freeway reads (1 to {VERSION})",
                file.version
            )));
        }
        let (key, source) = Self::find_key(paths, &file.key, passphrase)?;
        Ok((Vault { paths: paths.clone(), key, records: file.accounts, format: file.version }, source))
    }

    /// Try each available key source against the check value. Reads only.
    fn find_key(
        paths: &VaultPaths,
        header: &KeyHeader,
        passphrase: Option<&str>,
    ) -> Result<(MasterKey, KeySource), VaultError> {
        let opens = |k: &MasterKey| k.open(CHECK_ID, &header.check).is_ok_and(|v| v.as_slice() == CHECK_TEXT);
        let mut tried = false;
        if let Some(k) = env(key::ENV_KEY) {
            tried = true;
            let key = MasterKey::from_base64(&k, header.kind)?;
            if opens(&key) {
                return Ok((key, KeySource::Other));
            }
        }
        if let Some(kdf) = &header.kdf
            && let Some(p) = passphrase.map(str::to_owned).or_else(|| env(key::ENV_PASSPHRASE))
        {
            tried = true;
            let key = MasterKey::from_passphrase(&p, kdf.clone())?;
            if opens(&key) {
                return Ok((key, KeySource::Other));
            }
        }
        if header.kind == KeyKind::File || paths.key_file.exists() {
            if paths.key_file.exists() {
                tried = true;
                let key = key::key_from_file(&paths.key_file, false)?;
                if opens(&key) {
                    return Ok((key, KeySource::File));
                }
            }
            // a rotation interrupted after the vault was written: its key is the next one
            let next = next_key_file(&paths.key_file);
            if next.exists() {
                tried = true;
                let key = key::key_from_file(&next, false)?;
                if opens(&key) {
                    return Ok((key, KeySource::NextFile));
                }
            }
        }
        if !tried {
            return Err(VaultError::KeyUnavailable(match header.kind {
                KeyKind::Env => format!("this vault is sealed with a key from {}; set it", key::ENV_KEY),
                KeyKind::Passphrase => format!("this vault is sealed with a passphrase; set {}", key::ENV_PASSPHRASE),
                KeyKind::File => format!("the vault key file {} is missing", paths.key_file.display()),
            }));
        }
        Err(VaultError::WrongKey)
    }

    /// Bind every record's secret to its fields (format 1 to 2).
    fn upgrade(&mut self) -> Result<(), VaultError> {
        let mut records = self.records.clone();
        for r in &mut records {
            let secret = self.key.open(&r.id, &r.secret)?;
            r.secret = self.key.seal_bound(&r.id, &r.binding(), &secret)?;
        }
        self.records = records;
        self.format = VERSION;
        Ok(())
    }

    /// The plaintext of a record's sealed secret, checked against the record's fields.
    fn open_secret(&self, key: &MasterKey, r: &Record) -> Result<zeroize::Zeroizing<Vec<u8>>, VaultError> {
        if self.format >= 2 { key.open_bound(&r.id, &r.binding(), &r.secret) } else { key.open(&r.id, &r.secret) }
    }

    pub fn paths(&self) -> &VaultPaths {
        &self.paths
    }

    pub fn key_kind(&self) -> KeyKind {
        self.key.kind
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// An account by id or label.
    pub fn find(&self, id_or_label: &str) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.id == id_or_label)
            .or_else(|| self.records.iter().find(|r| r.label == id_or_label))
    }

    fn index(&self, id_or_label: &str) -> Result<usize, VaultError> {
        let id =
            self.find(id_or_label).map(|r| r.id.clone()).ok_or_else(|| VaultError::NotFound(id_or_label.to_owned()))?;
        self.records.iter().position(|r| r.id == id).ok_or(VaultError::NotFound(id))
    }

    /// The plaintext key of an account.
    pub fn secret(&self, id: &str) -> Result<SecretString, VaultError> {
        let r = self.records.iter().find(|r| r.id == id).ok_or_else(|| VaultError::NotFound(id.to_owned()))?;
        let bytes = self.open_secret(&self.key, r)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::Corrupt(format!("record {id}: not UTF-8")))?;
        Ok(SecretString::new(text))
    }

    /// Every account with its secret (for the gateway).
    pub fn unsealed(&self) -> Result<Vec<(Record, SecretString)>, VaultError> {
        self.records.iter().map(|r| Ok((r.clone(), self.secret(&r.id)?))).collect()
    }

    /// Store a new account; returns its record. Nothing is written until [`Vault::save`].
    pub fn add(&mut self, new: NewAccount) -> Result<Record, VaultError> {
        let secret = new.secret.expose().trim().to_owned();
        if secret.is_empty() {
            return Err(VaultError::Invalid("the key is empty".into()));
        }
        if new.provider.trim().is_empty() {
            return Err(VaultError::Invalid("the provider is empty".into()));
        }
        if self
            .records
            .iter()
            .any(|r| r.provider == new.provider && self.secret(&r.id).is_ok_and(|s| s.expose() == secret))
        {
            return Err(VaultError::Invalid(format!("this {} key is already in the vault", new.provider)));
        }
        let id = loop {
            let candidate = format!("acc_{}", hex::encode(key::random::<4>()?));
            if !self.records.iter().any(|r| r.id == candidate) {
                break candidate;
            }
        };
        let label = match new.label.filter(|l| !l.trim().is_empty()) {
            Some(l) => l,
            None => {
                let n = self.records.iter().filter(|r| r.provider == new.provider).count() + 1;
                (n..)
                    .map(|i| format!("{}-{i}", new.provider))
                    .find(|l| !self.records.iter().any(|r| &r.label == l))
                    .unwrap_or_default()
            }
        };
        if self.records.iter().any(|r| r.label == label) {
            return Err(VaultError::Invalid(format!("the label {label} is taken")));
        }
        if self.format < VERSION {
            self.upgrade()?;
        }
        let mut record = Record {
            secret: Sealed { nonce: String::new(), ciphertext: String::new() },
            masked: mask(&secret),
            pool: new.pool.filter(|p| !p.trim().is_empty()).unwrap_or_else(|| id.clone()),
            id,
            provider: new.provider,
            label,
            enabled: true,
            tier: new.tier,
            settings: new.settings,
            created_at_ms: crate::clock::now_ms(),
        };
        record.secret = self.key.seal_bound(&record.id, &record.binding(), secret.as_bytes())?;
        self.records.push(record.clone());
        Ok(record)
    }

    pub fn remove(&mut self, id_or_label: &str) -> Result<Record, VaultError> {
        let i = self.index(id_or_label)?;
        Ok(self.records.remove(i))
    }

    pub fn set_enabled(&mut self, id_or_label: &str, enabled: bool) -> Result<Record, VaultError> {
        let i = self.index(id_or_label)?;
        self.records[i].enabled = enabled;
        Ok(self.records[i].clone())
    }

    fn file(&self) -> Result<VaultFile, VaultError> {
        Ok(VaultFile {
            version: self.format,
            key: KeyHeader {
                kind: self.key.kind,
                kdf: self.key.kdf.clone(),
                check: self.key.seal(CHECK_ID, CHECK_TEXT)?,
            },
            accounts: self.records.clone(),
        })
    }

    /// Write the vault (atomically).
    pub fn save(&self) -> Result<(), VaultError> {
        let bytes = serde_json::to_vec_pretty(&self.file()?).map_err(|e| VaultError::Io(e.to_string()))?;
        write_atomic(&self.paths.vault, &bytes)
            .map_err(|e| VaultError::Io(format!("{}: {e}", self.paths.vault.display())))
    }

    /// Re-encrypt everything under `new`, atomically. With a key file, the new key is written
    /// beside the old one first and takes its place only after the vault is written, so a crash
    /// at any point leaves a vault that opens.
    pub fn rotate_key(&mut self, new: MasterKey) -> Result<(), VaultError> {
        let mut records = self.records.clone();
        for r in &mut records {
            let secret = self.open_secret(&self.key, r)?;
            r.secret = new.seal_bound(&r.id, &r.binding(), &secret)?;
        }
        let next = next_key_file(&self.paths.key_file);
        if new.kind == KeyKind::File {
            write_atomic(&next, new.to_base64().as_bytes())
                .map_err(|e| VaultError::Io(format!("{}: {e}", next.display())))?;
        }
        let old_key = std::mem::replace(&mut self.key, new);
        let old_records = std::mem::replace(&mut self.records, records);
        let old_format = std::mem::replace(&mut self.format, VERSION);
        if let Err(e) = self.save() {
            self.key = old_key;
            self.records = old_records;
            self.format = old_format;
            let _ = std::fs::remove_file(&next);
            return Err(e);
        }
        if self.key.kind == KeyKind::File {
            std::fs::rename(&next, &self.paths.key_file)
                .map_err(|e| VaultError::Io(format!("{}: {e}", self.paths.key_file.display())))?;
        }
        Ok(())
    }

    /// An encrypted backup of every account, sealed under `passphrase` (argon2id).
    pub fn export(&self, passphrase: &str) -> Result<String, VaultError> {
        let key = MasterKey::from_passphrase(passphrase, Kdf::new()?)?;
        let mut records = self.records.clone();
        for r in &mut records {
            let secret = self.open_secret(&self.key, r)?;
            r.secret = key.seal_bound(&r.id, &r.binding(), &secret)?;
        }
        let file = VaultFile {
            version: VERSION,
            key: KeyHeader { kind: KeyKind::Passphrase, kdf: key.kdf.clone(), check: key.seal(CHECK_ID, CHECK_TEXT)? },
            accounts: records,
        };
        serde_json::to_string_pretty(&file).map_err(|e| VaultError::Io(e.to_string()))
    }

    /// The accounts of a backup made by [`Vault::export`], with their secrets.
    pub fn read_backup(text: &str, passphrase: &str) -> Result<Vec<(Record, SecretString)>, VaultError> {
        let file: VaultFile = serde_json::from_str(text).map_err(|e| VaultError::Corrupt(format!("backup: {e}")))?;
        let kdf = file.key.kdf.clone().ok_or_else(|| VaultError::Corrupt("backup has no key parameters".into()))?;
        let key = MasterKey::from_passphrase(passphrase, kdf)?;
        if !key.open(CHECK_ID, &file.key.check).is_ok_and(|v| v.as_slice() == CHECK_TEXT) {
            return Err(VaultError::WrongKey);
        }
        let bound = file.version >= 2;
        file.accounts
            .into_iter()
            .map(|r| {
                let bytes =
                    if bound { key.open_bound(&r.id, &r.binding(), &r.secret)? } else { key.open(&r.id, &r.secret)? };
                let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::Corrupt(format!("record {}", r.id)))?;
                let secret = SecretString::new(text);
                Ok((r, secret))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> VaultPaths {
        VaultPaths { vault: dir.join("vault.json"), key_file: dir.join("master.key") }
    }

    /// Open or create, as a writer does (under the exclusive lock).
    fn create(p: &VaultPaths) -> Vault {
        let lock = VaultLock::exclusive(&p.vault, lock::LOCK_WAIT).unwrap();
        Vault::open_or_create(p, None, &lock).unwrap()
    }

    fn new(provider: &str, key: &str) -> NewAccount {
        NewAccount {
            provider: provider.into(),
            label: None,
            pool: None,
            secret: SecretString::new(key),
            settings: BTreeMap::new(),
            tier: AccountTier::Free,
        }
    }

    #[test]
    fn accounts_survive_a_reopen_and_the_file_holds_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let mut v = create(&p);
        let a = v.add(new("groq", "gsk_aaaaaaaaaaaaaaaaaaaa1111")).unwrap();
        let b = v.add(new("groq", "gsk_bbbbbbbbbbbbbbbbbbbb2222")).unwrap();
        v.save().unwrap();
        assert_eq!((a.label.as_str(), b.label.as_str()), ("groq-1", "groq-2"));
        assert_eq!(a.masked, "gsk_…1111");
        let text = std::fs::read_to_string(&p.vault).unwrap();
        assert!(!text.contains("aaaaaaaaaaaa") && !text.contains("bbbbbbbbbbbb"), "{text}");
        let v2 = Vault::open(&p, None).unwrap();
        assert_eq!(v2.secret(&a.id).unwrap().expose(), "gsk_aaaaaaaaaaaaaaaaaaaa1111");
        assert_eq!(v2.find("groq-2").unwrap().id, b.id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p.vault).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_wrong_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let mut v = create(&p);
        v.add(new("groq", "gsk_secret_secret_secret")).unwrap();
        v.save().unwrap();
        std::fs::write(&p.key_file, MasterKey::generate(KeyKind::File).unwrap().to_base64().as_bytes()).unwrap();
        assert_eq!(Vault::open(&p, None).unwrap_err(), VaultError::WrongKey);
        std::fs::remove_file(&p.key_file).unwrap();
        assert!(
            matches!(Vault::open(&p, None).unwrap_err(), VaultError::KeyUnavailable(m) if m.contains("master.key"))
        );
    }

    #[test]
    fn rotation_re_encrypts_everything_and_the_old_key_stops_working() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let mut v = create(&p);
        let a = v.add(new("groq", "gsk_rotate_me_please_1234")).unwrap();
        v.save().unwrap();
        let before = std::fs::read_to_string(&p.vault).unwrap();
        let old_key = std::fs::read_to_string(&p.key_file).unwrap();
        v.rotate_key(MasterKey::generate(KeyKind::File).unwrap()).unwrap();
        let after = std::fs::read_to_string(&p.vault).unwrap();
        assert_ne!(before, after);
        assert_ne!(old_key, std::fs::read_to_string(&p.key_file).unwrap());
        let v2 = Vault::open(&p, None).unwrap();
        assert_eq!(v2.secret(&a.id).unwrap().expose(), "gsk_rotate_me_please_1234");
        std::fs::write(&p.key_file, old_key).unwrap();
        assert_eq!(Vault::open(&p, None).unwrap_err(), VaultError::WrongKey);
    }

    #[test]
    fn an_interrupted_rotation_is_read_by_readers_and_finished_only_by_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let mut v = create(&p);
        let a = v.add(new("groq", "gsk_interrupted_rotation_1")).unwrap();
        v.save().unwrap();
        // as if the process died after writing the vault under the new key, before the rename
        let old_key = std::fs::read_to_string(&p.key_file).unwrap();
        v.rotate_key(MasterKey::generate(KeyKind::File).unwrap()).unwrap();
        let new_key = std::fs::read_to_string(&p.key_file).unwrap();
        std::fs::write(next_key_file(&p.key_file), &new_key).unwrap();
        std::fs::write(&p.key_file, &old_key).unwrap();
        // a reader opens it with the next key and changes nothing
        let v2 = Vault::open(&p, None).unwrap();
        assert_eq!(v2.secret(&a.id).unwrap().expose(), "gsk_interrupted_rotation_1");
        assert_eq!(std::fs::read_to_string(&p.key_file).unwrap(), old_key);
        assert!(next_key_file(&p.key_file).exists());
        // a writer finishes the rotation
        let v3 = create(&p);
        assert_eq!(v3.secret(&a.id).unwrap().expose(), "gsk_interrupted_rotation_1");
        assert_eq!(std::fs::read_to_string(&p.key_file).unwrap(), new_key);
        assert!(!next_key_file(&p.key_file).exists());
    }

    #[test]
    fn a_rotation_that_never_wrote_the_vault_is_rolled_back_by_a_writer_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let mut v = create(&p);
        let a = v.add(new("groq", "gsk_rolled_back_rotation_1")).unwrap();
        v.save().unwrap();
        // as if the process died after writing the next key, before writing the vault
        let next = next_key_file(&p.key_file);
        std::fs::write(&next, MasterKey::generate(KeyKind::File).unwrap().to_base64().as_bytes()).unwrap();
        let r = Vault::open(&p, None).unwrap();
        assert_eq!(r.secret(&a.id).unwrap().expose(), "gsk_rolled_back_rotation_1");
        assert!(next.exists(), "a reader never deletes a file");
        let w = create(&p);
        assert_eq!(w.secret(&a.id).unwrap().expose(), "gsk_rolled_back_rotation_1");
        assert!(!next.exists(), "the writer rolled the unfinished rotation back");
    }

    #[test]
    fn editing_a_records_provider_or_settings_in_the_file_keeps_its_key_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let mut v = create(&p);
        let mut with_settings = new("groq", "gsk_bound_to_groq_000001");
        with_settings.settings.insert("base_url".into(), "https://api.groq.com/openai/v1".into());
        let a = v.add(with_settings).unwrap();
        v.save().unwrap();
        let text = std::fs::read_to_string(&p.vault).unwrap();
        for (from, to) in [("\"provider\": \"groq\"", "\"provider\": \"evil\""), ("api.groq.com", "evil.example")] {
            assert!(text.contains(from), "{from} in {text}");
            std::fs::write(&p.vault, text.replace(from, to)).unwrap();
            let err = Vault::open(&p, None).unwrap().secret(&a.id).unwrap_err();
            assert!(matches!(err, VaultError::Corrupt(ref m) if m.contains("changed outside Freeway")), "{err}");
        }
        std::fs::write(&p.vault, &text).unwrap();
        assert_eq!(Vault::open(&p, None).unwrap().secret(&a.id).unwrap().expose(), "gsk_bound_to_groq_000001");
    }

    #[test]
    fn a_format_1_vault_is_read_and_upgraded_by_the_first_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let key = key::key_from_file(&p.key_file, true).unwrap();
        let mut record = Record {
            id: "acc_00000001".into(),
            provider: "groq".into(),
            label: "groq-1".into(),
            pool: "acc_00000001".into(),
            enabled: true,
            tier: AccountTier::Free,
            settings: BTreeMap::new(),
            masked: "gsk_…0001".into(),
            created_at_ms: 1,
            secret: key.seal("acc_00000001", b"gsk_format_one_0001").unwrap(),
        };
        let v1 = serde_json::json!({
            "version": 1,
            "key": { "kind": "file", "check": key.seal(CHECK_ID, CHECK_TEXT).unwrap() },
            "accounts": [record.clone()],
        });
        std::fs::write(&p.vault, serde_json::to_vec(&v1).unwrap()).unwrap();
        assert_eq!(Vault::open(&p, None).unwrap().secret(&record.id).unwrap().expose(), "gsk_format_one_0001");
        let w = create(&p);
        assert_eq!(w.secret(&record.id).unwrap().expose(), "gsk_format_one_0001");
        let upgraded: serde_json::Value = serde_json::from_slice(&std::fs::read(&p.vault).unwrap()).unwrap();
        assert_eq!(upgraded["version"], 2);
        // bound from now on
        record.provider = "evil".into();
        let text = std::fs::read_to_string(&p.vault).unwrap().replace("\"groq\"", "\"evil\"");
        std::fs::write(&p.vault, text).unwrap();
        assert!(Vault::open(&p, None).unwrap().secret(&record.id).is_err());
    }

    #[test]
    fn duplicate_keys_and_labels_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = create(&paths(dir.path()));
        v.add(new("groq", "gsk_same_same_same_same")).unwrap();
        assert!(matches!(v.add(new("groq", "gsk_same_same_same_same")), Err(VaultError::Invalid(_))));
        let mut labelled = new("groq", "gsk_other_other_other_1");
        labelled.label = Some("groq-1".into());
        assert!(matches!(v.add(labelled), Err(VaultError::Invalid(_))));
    }

    #[test]
    fn backups_open_only_with_their_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = create(&paths(dir.path()));
        v.add(new("openrouter", "sk-or-v1-backup-me-0000")).unwrap();
        let text = v.export("a long passphrase").unwrap();
        assert!(!text.contains("backup-me"));
        let back = Vault::read_backup(&text, "a long passphrase").unwrap();
        assert_eq!(back[0].1.expose(), "sk-or-v1-backup-me-0000");
        assert_eq!(Vault::read_backup(&text, "the wrong passphrase").unwrap_err(), VaultError::WrongKey);
    }
}
