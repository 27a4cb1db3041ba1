//! `Vault::open` and `secret()` on damaged copies of a valid vault file.
//!
//! Once per process a vault with three accounts is created in a temporary folder, sealed with a
//! fixed key file (the key source a fresh install uses). Each input is a list of edits (XOR,
//! splice, truncate) applied to a copy of that vault's bytes, which is then opened with the same
//! key file.
//!
//! Properties: no panic; every secret handed out is the original plaintext of the record with
//! that id; never another record's secret, never garbage. The fuzz commands unset
//! `FREEWAY_MASTER_KEY` and `FREEWAY_MASTER_PASSPHRASE` so the key file is what opens it.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use freeway_core::secret::SecretString;
use freeway_core::vault::{AccountTier, NewAccount, Vault, VaultLock, VaultPaths};
use libfuzzer_sys::fuzz_target;

/// base64 of the bytes 1..=32: a fixed master key.
const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

struct Fixture {
    _dir: tempfile::TempDir,
    /// where damaged copies are written, opened with the original key file
    paths: VaultPaths,
    bytes: Vec<u8>,
    /// id -> secret
    secrets: BTreeMap<String, String>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // a damaged copy is written for every input: in memory where there is a tmpfs (30x faster)
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
        let dir = dir.expect("a temporary folder");
        let key_file = dir.path().join("master.key");
        std::fs::write(&key_file, KEY).expect("write the key file");
        let original = VaultPaths { vault: dir.path().join("vault.json"), key_file: key_file.clone() };
        let lock = VaultLock::exclusive(&original.vault, std::time::Duration::from_secs(10)).expect("the vault's lock");
        let mut vault = Vault::open_or_create(&original, None, &lock).expect("create the vault");
        let mut secrets = BTreeMap::new();
        for (provider, secret) in
            [("groq", "gsk_first_secret_0000000000"), ("groq", "gsk_second_secret_111111111"), ("mistral", "mk-3")]
        {
            let r = vault
                .add(NewAccount {
                    provider: provider.into(),
                    label: None,
                    pool: None,
                    secret: SecretString::new(secret),
                    settings: BTreeMap::new(),
                    tier: AccountTier::Free,
                })
                .expect("add an account");
            secrets.insert(r.id, secret.to_owned());
        }
        vault.save().expect("save the vault");
        // readers take the lock shared: the writer's must be given back first
        drop(lock);
        let bytes = std::fs::read(&original.vault).expect("read the vault");
        let check = Vault::open(&original, None).expect("the vault opens");
        for (id, s) in &secrets {
            assert_eq!(check.secret(id).expect("its secret").expose(), s, "set-up");
        }
        let paths = VaultPaths { vault: dir.path().join("damaged.json"), key_file };
        Fixture { _dir: dir, paths, bytes, secrets }
    })
}

#[derive(Debug, Arbitrary)]
enum Damage {
    Xor {
        at: u16,
        bytes: Vec<u8>,
    },
    Splice {
        at: u16,
        remove: u8,
        insert: Vec<u8>,
    },
    Truncate {
        at: u16,
    },
    /// copy a range of the file over another place (moves nonces and ciphertexts around)
    Copy {
        from: u16,
        to: u16,
        len: u8,
    },
}

fuzz_target!(|damage: Vec<Damage>| {
    let f = fixture();
    let mut bytes = f.bytes.clone();
    for d in &damage {
        let len = bytes.len().max(1);
        match d {
            Damage::Xor { at, bytes: x } => {
                let at = usize::from(*at) % len;
                for (b, x) in bytes.iter_mut().skip(at).zip(x) {
                    *b ^= x;
                }
            }
            Damage::Splice { at, remove, insert } => {
                let at = (usize::from(*at) % len).min(bytes.len());
                let end = (at + usize::from(*remove)).min(bytes.len());
                bytes.splice(at..end, insert.iter().copied());
            }
            Damage::Truncate { at } => bytes.truncate(usize::from(*at) % len),
            Damage::Copy { from, to, len: n } => {
                let from = usize::from(*from) % len;
                let to = usize::from(*to) % len;
                let n = usize::from(*n).min(bytes.len().saturating_sub(from)).min(bytes.len().saturating_sub(to));
                let chunk = bytes[from..from + n].to_vec();
                bytes[to..to + n].copy_from_slice(&chunk);
            }
        }
    }
    std::fs::write(&f.paths.vault, &bytes).expect("write the damaged copy");
    let Ok(vault) = Vault::open(&f.paths, None) else { return };
    for r in vault.records() {
        let Ok(secret) = vault.secret(&r.id) else { continue };
        // `secret` reads the first record with that id
        let Some(original) = f.secrets.get(&r.id) else {
            panic!("record {:?} (not one of ours) opened to {:?}", r.id, secret.expose());
        };
        assert_eq!(secret.expose(), original, "record {} opened to something else", r.id);
    }
    let _ = vault.unsealed();
    let _ = vault.find("groq-1");
});
