//! Changing accounts (CLI and admin API alike): under an exclusive lock on the vault, so two
//! writers never lose each other's change; checked against the catalog's terms; recorded in the
//! audit log.

use super::audit::{self, AuditEntry};
use crate::config::catalog::MultipleAccounts;
use crate::config::{AccountsPolicy, Catalog, VaultConfig};
use crate::vault::{MasterKey, NewAccount, Record, Vault, VaultError, VaultLock};

/// Account changes on behalf of `actor`.
pub struct Manager<'a> {
    pub vault: &'a VaultConfig,
    pub catalog: &'a Catalog,
    pub actor: String,
    /// for passphrase-sealed vaults opened from the CLI
    pub passphrase: Option<String>,
    /// provider ids the configuration defines (besides the catalog's)
    pub configured: Vec<String>,
}

/// The vault's exclusive lock for one change, waited for at most [`crate::vault::lock::LOCK_WAIT`].
fn take_lock(cfg: &VaultConfig) -> Result<VaultLock, VaultError> {
    VaultLock::exclusive(&cfg.path, crate::vault::lock::LOCK_WAIT)
}

impl Manager<'_> {
    fn open(&self, lock: &VaultLock) -> Result<Vault, VaultError> {
        Vault::open_or_create(&self.vault.paths(), self.passphrase.as_deref(), lock)
    }

    fn audit(&self, action: &str, r: &Record, detail: Option<&str>) {
        audit::record(
            &self.vault.audit_log,
            &AuditEntry {
                at_ms: crate::clock::now_ms(),
                actor: &self.actor,
                origin: None,
                action,
                account: Some(&r.id),
                provider: Some(&r.provider),
                label: Some(&r.label),
                masked_key: Some(&r.masked),
                detail,
            },
        );
    }

    /// What the provider's terms say about adding `new` (a second account in its own pool).
    fn terms_warning(&self, vault: &Vault, new: &NewAccount) -> Option<String> {
        let entry = self.catalog.provider(&new.provider)?;
        if entry.terms.multiple_accounts != MultipleAccounts::Prohibited {
            return None;
        }
        let others: Vec<&Record> = vault.records().iter().filter(|r| r.provider == new.provider).collect();
        // a key joining an existing pool is another key of an account already here
        let same_pool = new.pool.as_ref().is_some_and(|p| others.iter().any(|r| &r.pool == p));
        if others.is_empty() || same_pool {
            return None;
        }
        let why = entry.terms.notes.first().map_or_else(String::new, |n| format!(" ({n})"));
        Some(format!(
            "{}'s terms do not allow several accounts{why}; this key looks like another account (use --pool {} if it is a second key of the same account)",
            entry.name, others[0].pool
        ))
    }

    /// Add an account. Returns the record and any warnings (terms).
    pub fn add(&self, new: NewAccount) -> Result<(Record, Vec<String>), VaultError> {
        let lock = take_lock(self.vault)?;
        let mut vault = self.open(&lock)?;
        let mut warnings = Vec::new();
        if self.catalog.provider(&new.provider).is_none() && !self.configured.contains(&new.provider) {
            warnings.push(format!(
                "'{}' is not in the catalog: configure it in [[providers]] to use this account",
                new.provider
            ));
        }
        if let Some(w) = self.terms_warning(&vault, &new) {
            if self.vault.accounts_policy == AccountsPolicy::Block {
                return Err(VaultError::Invalid(format!("refused by accounts_policy = \"block\": {w}")));
            }
            warnings.push(w);
        }
        let record = vault.add(new)?;
        vault.save()?;
        self.audit("account.add", &record, None);
        Ok((record, warnings))
    }

    pub fn remove(&self, id_or_label: &str) -> Result<Record, VaultError> {
        let lock = take_lock(self.vault)?;
        let mut vault = self.open(&lock)?;
        let r = vault.remove(id_or_label)?;
        vault.save()?;
        self.audit("account.remove", &r, None);
        Ok(r)
    }

    pub fn set_enabled(&self, id_or_label: &str, enabled: bool) -> Result<Record, VaultError> {
        let lock = take_lock(self.vault)?;
        let mut vault = self.open(&lock)?;
        let r = vault.set_enabled(id_or_label, enabled)?;
        vault.save()?;
        self.audit(if enabled { "account.enable" } else { "account.disable" }, &r, None);
        Ok(r)
    }

    /// Re-encrypt the vault under `new`.
    pub fn rotate_key(&self, new: MasterKey) -> Result<(), VaultError> {
        let lock = take_lock(self.vault)?;
        let mut vault = self.open(&lock)?;
        let kind = new.kind;
        vault.rotate_key(new)?;
        audit::record(
            &self.vault.audit_log,
            &AuditEntry {
                at_ms: crate::clock::now_ms(),
                actor: &self.actor,
                origin: None,
                action: "vault.rotate-key",
                account: None,
                provider: None,
                label: None,
                masked_key: None,
                detail: Some(&format!("{} account(s) re-encrypted, key from {kind:?}", vault.records().len())),
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretString;
    use crate::vault::AccountTier;

    fn catalog() -> Catalog {
        toml::from_str(
            r#"
[[providers]]
id = "strict"
name = "Strict AI"
base_url = "https://strict.example"
component = "openai-compat"
[providers.terms]
multiple_accounts = "prohibited"
notes = ["one free account per person"]

[[providers]]
id = "relaxed"
name = "Relaxed AI"
base_url = "https://relaxed.example"
component = "openai-compat"
"#,
        )
        .unwrap()
    }

    fn account(provider: &str, key: &str, pool: Option<&str>) -> NewAccount {
        NewAccount {
            provider: provider.into(),
            label: None,
            pool: pool.map(str::to_owned),
            secret: SecretString::new(key),
            settings: Default::default(),
            tier: AccountTier::Free,
        }
    }

    fn vault_cfg(dir: &std::path::Path, policy: AccountsPolicy) -> VaultConfig {
        VaultConfig {
            path: dir.join("vault.json"),
            key_file: dir.join("master.key"),
            accounts_policy: policy,
            audit_log: dir.join("audit.log"),
            health_file: dir.join("health.json"),
        }
    }

    #[test]
    fn a_second_account_where_terms_forbid_it_warns_or_is_blocked() {
        let dir = tempfile::tempdir().unwrap();
        let cat = catalog();
        let cfg = vault_cfg(dir.path(), AccountsPolicy::Warn);
        let m = Manager { vault: &cfg, catalog: &cat, actor: "test".into(), passphrase: None, configured: Vec::new() };
        let (first, w) = m.add(account("strict", "key-one-0000000001", None)).unwrap();
        assert!(w.is_empty());
        let (_, w) = m.add(account("strict", "key-two-0000000002", None)).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("one free account per person"), "{w:?}");
        // a second key of the same account (same pool) is fine
        let (_, w) = m.add(account("strict", "key-three-00000003", Some(&first.pool))).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let (_, w) = m.add(account("relaxed", "key-four-000000004", None)).unwrap();
        assert!(w.is_empty());

        let dir2 = tempfile::tempdir().unwrap();
        let block = vault_cfg(dir2.path(), AccountsPolicy::Block);
        let m =
            Manager { vault: &block, catalog: &cat, actor: "test".into(), passphrase: None, configured: Vec::new() };
        m.add(account("strict", "key-one-0000000001", None)).unwrap();
        let err = m.add(account("strict", "key-two-0000000002", None)).unwrap_err();
        assert!(err.to_string().contains("accounts_policy"), "{err}");
    }

    #[test]
    fn every_change_is_audited_without_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let cat = catalog();
        let cfg = vault_cfg(dir.path(), AccountsPolicy::Warn);
        let m = Manager {
            vault: &cfg,
            catalog: &cat,
            actor: "cli:tester".into(),
            passphrase: None,
            configured: Vec::new(),
        };
        let (r, _) = m.add(account("relaxed", "sk-audit-me-please-0001", None)).unwrap();
        m.set_enabled(&r.label, false).unwrap();
        m.set_enabled(&r.id, true).unwrap();
        m.rotate_key(MasterKey::generate(crate::vault::KeyKind::File).unwrap()).unwrap();
        m.remove(&r.id).unwrap();
        let log = std::fs::read_to_string(&cfg.audit_log).unwrap();
        let actions: Vec<String> =
            audit::tail(&cfg.audit_log, 10).iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
        assert_eq!(actions, ["account.add", "account.disable", "account.enable", "vault.rotate-key", "account.remove"]);
        assert!(log.contains("cli:tester"));
        assert!(!log.contains("sk-audit-me-please-0001"));
    }
}
