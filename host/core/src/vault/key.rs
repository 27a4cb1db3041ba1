//! The vault's master key and sealing: XSalsa20-Poly1305 with a fresh random 192-bit nonce per
//! record. The cipher takes no associated data, so each record's id is sealed inside the
//! plaintext and checked on opening: a ciphertext moved to another record does not open.
//!
//! Where the key comes from, in order: `FREEWAY_MASTER_KEY` (base64 of 32 bytes); a passphrase
//! (`FREEWAY_MASTER_PASSPHRASE`, stretched with argon2id and a per-vault salt); a key file
//! (created with mode 0600 on first use).

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use xsalsa20poly1305::aead::{Aead, KeyInit};
use xsalsa20poly1305::{Key, Nonce, XSalsa20Poly1305};
use zeroize::Zeroizing;

use super::VaultError;

/// The start of a bound plaintext (format 2). No record id starts with it, so a bound secret
/// never opens as an unbound one (a file edited back to format 1 gains nothing).
const BOUND: &[u8] = b"\x01fw2\x00";

pub const ENV_KEY: &str = "FREEWAY_MASTER_KEY";
pub const ENV_PASSPHRASE: &str = "FREEWAY_MASTER_PASSPHRASE";

/// How a vault's key is obtained (recorded in the vault so a wrong source is named).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// `FREEWAY_MASTER_KEY`
    Env,
    /// the key file
    File,
    /// a passphrase through argon2id
    Passphrase,
}

/// argon2id parameters (stored with the vault).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// base64 salt
    pub salt: String,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Kdf {
    pub fn new() -> Result<Self, VaultError> {
        Ok(Self { salt: B64.encode(random::<16>()?), m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 })
    }

    /// Parameters within what Freeway itself would write, give or take: memory up to 1 GiB,
    /// up to 16 passes and 8 lanes, a salt of 8 to 64 bytes.
    pub fn check(&self) -> Result<(), VaultError> {
        let bad = |what: String| Err(VaultError::Corrupt(format!("the key parameters are out of bounds: {what}")));
        if !(8..=1024 * 1024).contains(&self.m_cost_kib) {
            return bad(format!("memory {} KiB", self.m_cost_kib));
        }
        if !(1..=16).contains(&self.t_cost) {
            return bad(format!("{} passes", self.t_cost));
        }
        if !(1..=8).contains(&self.p_cost) {
            return bad(format!("{} lanes", self.p_cost));
        }
        if self.salt.len() > 128 || B64.decode(&self.salt).map_or(true, |s| !(8..=64).contains(&s.len())) {
            return bad("salt".to_owned());
        }
        Ok(())
    }
}

/// A 32-byte key, wiped from memory when dropped.
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    pub kind: KeyKind,
    pub kdf: Option<Kdf>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({:?})", self.kind)
    }
}

pub fn random<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| VaultError::Io(format!("no randomness: {e}")))?;
    Ok(b)
}

impl MasterKey {
    pub fn generate(kind: KeyKind) -> Result<Self, VaultError> {
        Ok(Self { bytes: Zeroizing::new(random::<32>()?), kind, kdf: None })
    }

    /// From base64 of 32 bytes.
    pub fn from_base64(text: &str, kind: KeyKind) -> Result<Self, VaultError> {
        let raw = Zeroizing::new(
            B64.decode(text.trim()).map_err(|_| VaultError::BadKey("the master key is not valid base64".into()))?,
        );
        let bytes: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::BadKey(format!("the master key must be 32 bytes, it is {}", raw.len())))?;
        Ok(Self { bytes: Zeroizing::new(bytes), kind, kdf: None })
    }

    /// Stretch a passphrase with argon2id. Parameters read from a file are bounded first: a
    /// vault or backup cannot make opening it cost gigabytes or minutes.
    pub fn from_passphrase(passphrase: &str, kdf: Kdf) -> Result<Self, VaultError> {
        if passphrase.chars().count() < 8 {
            return Err(VaultError::BadKey("the passphrase must have at least 8 characters".into()));
        }
        kdf.check()?;
        let salt =
            B64.decode(&kdf.salt).map_err(|_| VaultError::Corrupt("the vault's key salt is not base64".into()))?;
        let params = argon2::Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(32))
            .map_err(|e| VaultError::Corrupt(format!("argon2 parameters: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut bytes = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.as_bytes(), &salt, bytes.as_mut())
            .map_err(|e| VaultError::BadKey(format!("argon2: {e}")))?;
        Ok(Self { bytes, kind: KeyKind::Passphrase, kdf: Some(kdf) })
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.bytes.as_ref()))
    }

    fn cipher(&self) -> XSalsa20Poly1305 {
        XSalsa20Poly1305::new(Key::from_slice(self.bytes.as_ref()))
    }

    /// Seal `secret` for the record `id` (unbound: the key check value).
    pub fn seal(&self, id: &str, secret: &[u8]) -> Result<Sealed, VaultError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(id.len() + 1 + secret.len()));
        plain.extend_from_slice(id.as_bytes());
        plain.push(0);
        plain.extend_from_slice(secret);
        self.seal_raw(&plain)
    }

    /// Seal `secret` for the record `id` whose non-secret fields hash to `meta`: the secret
    /// opens only beside those very fields, so editing the vault file to send a key to another
    /// provider (or base URL, pool, label) makes it refuse to open instead.
    pub fn seal_bound(&self, id: &str, meta: &[u8; 32], secret: &[u8]) -> Result<Sealed, VaultError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(BOUND.len() + id.len() + 1 + 32 + secret.len()));
        plain.extend_from_slice(BOUND);
        plain.extend_from_slice(id.as_bytes());
        plain.push(0);
        plain.extend_from_slice(meta);
        plain.extend_from_slice(secret);
        self.seal_raw(&plain)
    }

    /// Open what [`MasterKey::seal_bound`] sealed for `id` and `meta`.
    pub fn open_bound(&self, id: &str, meta: &[u8; 32], sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let plain = self.open_raw(id, sealed)?;
        let head = BOUND.len() + id.len() + 1;
        let bound = plain.strip_prefix(BOUND).and_then(|rest| rest.strip_prefix(id.as_bytes()));
        if plain.len() < head + 32 || bound.is_none_or(|rest| rest.first() != Some(&0)) {
            return Err(VaultError::Corrupt(format!("record {id}: the sealed secret belongs to another record")));
        }
        if plain[head..head + 32] != meta[..] {
            return Err(VaultError::Corrupt(format!(
                "record {id}: its provider, label, pool or settings were changed outside Freeway, so its key stays sealed (remove the account and add it again)"
            )));
        }
        Ok(Zeroizing::new(plain[head + 32..].to_vec()))
    }

    fn seal_raw(&self, plain: &[u8]) -> Result<Sealed, VaultError> {
        let nonce = random::<24>()?;
        let ct = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), plain)
            .map_err(|_| VaultError::Io("encryption failed".into()))?;
        Ok(Sealed { nonce: B64.encode(nonce), ciphertext: B64.encode(ct) })
    }

    fn open_raw(&self, id: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let nonce = B64.decode(&sealed.nonce).map_err(|_| VaultError::Corrupt(format!("record {id}: bad nonce")))?;
        if nonce.len() != 24 {
            return Err(VaultError::Corrupt(format!("record {id}: bad nonce length")));
        }
        let ct =
            B64.decode(&sealed.ciphertext).map_err(|_| VaultError::Corrupt(format!("record {id}: bad ciphertext")))?;
        Ok(Zeroizing::new(
            self.cipher().decrypt(Nonce::from_slice(&nonce), ct.as_slice()).map_err(|_| VaultError::WrongKey)?,
        ))
    }

    /// Open what was sealed for `id` (the unbound form of format 1, and the key check value).
    /// Fails on a wrong key, tampering, or a ciphertext that belongs to another record.
    pub fn open(&self, id: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let plain = self.open_raw(id, sealed)?;
        let prefix_len = id.len() + 1;
        if plain.len() < prefix_len || &plain[..id.len()] != id.as_bytes() || plain[id.len()] != 0 {
            return Err(VaultError::Corrupt(format!("record {id}: the sealed secret belongs to another record")));
        }
        Ok(Zeroizing::new(plain[prefix_len..].to_vec()))
    }
}

/// A sealed secret: base64 nonce and ciphertext (Poly1305 tag included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub nonce: String,
    pub ciphertext: String,
}

/// Write `bytes` to `path` so that a crash at any moment leaves the old file or the new one:
/// a temporary file in the same folder, fsync, rename over, fsync the folder. Mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().map_or_else(|| "vault".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Read the key file, or create one (random key, mode 0600) when `create`.
pub fn key_from_file(path: &Path, create: bool) -> Result<MasterKey, VaultError> {
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::from_base64(&text, KeyKind::File),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let key = MasterKey::generate(KeyKind::File)?;
            write_atomic(path, key.to_base64().as_bytes())
                .map_err(|e| VaultError::Io(format!("{}: {e}", path.display())))?;
            tracing::info!("created a new vault key in {} (mode 0600); back it up", path.display());
            Ok(key)
        }
        Err(e) => Err(VaultError::Io(format!("cannot read the vault key file {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = MasterKey::generate(KeyKind::File).unwrap();
        let sealed = key.seal("acc_1", b"gsk_secret").unwrap();
        assert_eq!(key.open("acc_1", &sealed).unwrap().as_slice(), b"gsk_secret");
        // the same secret sealed twice differs (fresh nonce)
        assert_ne!(key.seal("acc_1", b"gsk_secret").unwrap(), sealed);
        // moved to another record: refused
        assert!(matches!(key.open("acc_2", &sealed), Err(VaultError::Corrupt(_))));
        // another key: refused, not garbage
        let other = MasterKey::generate(KeyKind::File).unwrap();
        assert!(matches!(other.open("acc_1", &sealed), Err(VaultError::WrongKey)));
        // tampering: refused
        let mut bad = sealed.clone();
        bad.ciphertext = B64.encode(vec![0u8; 40]);
        assert!(matches!(key.open("acc_1", &bad), Err(VaultError::WrongKey)));
    }

    #[test]
    fn passphrases_are_stretched_with_the_stored_salt() {
        let kdf = Kdf { m_cost_kib: 1024, t_cost: 1, ..Kdf::new().unwrap() };
        let a = MasterKey::from_passphrase("correct horse battery", kdf.clone()).unwrap();
        let b = MasterKey::from_passphrase("correct horse battery", kdf.clone()).unwrap();
        let sealed = a.seal("x", b"s").unwrap();
        assert_eq!(b.open("x", &sealed).unwrap().as_slice(), b"s");
        let c = MasterKey::from_passphrase("wrong horse battery", kdf).unwrap();
        assert!(matches!(c.open("x", &sealed), Err(VaultError::WrongKey)));
        assert!(MasterKey::from_passphrase("short", Kdf::new().unwrap()).is_err());
    }

    #[test]
    fn bound_secrets_open_only_beside_their_metadata() {
        let key = MasterKey::generate(KeyKind::File).unwrap();
        let meta = [7u8; 32];
        let sealed = key.seal_bound("acc_1", &meta, b"gsk_secret").unwrap();
        assert_eq!(key.open_bound("acc_1", &meta, &sealed).unwrap().as_slice(), b"gsk_secret");
        let err = key.open_bound("acc_1", &[8u8; 32], &sealed).unwrap_err();
        assert!(err.to_string().contains("changed outside Freeway"), "{err}");
        assert!(matches!(key.open_bound("acc_2", &meta, &sealed), Err(VaultError::Corrupt(_))));
        // a bound secret never opens as an unbound (format 1) one
        assert!(key.open("acc_1", &sealed).is_err());
    }

    #[test]
    fn key_parameters_from_a_file_are_bounded() {
        let huge = Kdf { m_cost_kib: u32::MAX, ..Kdf::new().unwrap() };
        assert!(matches!(MasterKey::from_passphrase("correct horse battery", huge), Err(VaultError::Corrupt(_))));
        let slow = Kdf { t_cost: 1_000_000, ..Kdf::new().unwrap() };
        assert!(MasterKey::from_passphrase("correct horse battery", slow).is_err());
        let no_salt = Kdf { salt: String::new(), ..Kdf::new().unwrap() };
        assert!(MasterKey::from_passphrase("correct horse battery", no_salt).is_err());
    }

    #[test]
    fn base64_keys_must_be_32_bytes() {
        assert!(MasterKey::from_base64(&B64.encode([1u8; 32]), KeyKind::Env).is_ok());
        assert!(matches!(MasterKey::from_base64(&B64.encode([1u8; 16]), KeyKind::Env), Err(VaultError::BadKey(_))));
        assert!(matches!(MasterKey::from_base64("not base64!!", KeyKind::Env), Err(VaultError::BadKey(_))));
    }

    #[test]
    fn key_files_are_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let k1 = key_from_file(&path, true).unwrap();
        let k2 = key_from_file(&path, false).unwrap();
        assert_eq!(k1.to_base64().as_str(), k2.to_base64().as_str());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(key_from_file(&dir.path().join("missing.key"), false).is_err());
    }
}
