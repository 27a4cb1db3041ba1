//! One upstream account: a credential the host holds for a provider, its pool, health and the
//! latest quota figures its provider reported.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::bindings::wit;
use crate::config::SecretString;

/// One upstream account: a credential the host holds for a provider.
#[derive(Debug)]
pub struct Account {
    /// stable id: the vault's (`acc_…`) or, for keys in the configuration, `provider#n`
    pub id: String,
    pub label: String,
    pub provider: String,
    /// accounts in one pool draw on one quota
    pub pool: String,
    pub secret: Option<SecretString>,
    /// non-secret per-account settings the component may read
    pub settings: BTreeMap<String, String>,
    /// the latest quota figures the provider reported for this account
    pub quota: Mutex<Vec<wit::QuotaUpdate>>,
    pub health: Arc<super::AccountHealth>,
    pub recent: Arc<super::RecentUse>,
    /// the ledger's counters of this account's quota pool (shared by the pool's accounts)
    pub quota_pool: Arc<crate::quota::PoolQuota>,
}

impl Account {
    pub fn new(id: String, provider: String, secret: Option<SecretString>) -> Self {
        Self {
            quota_pool: Arc::new(crate::quota::PoolQuota::new(&provider, &id)),
            label: id.clone(),
            pool: id.clone(),
            id,
            provider,
            secret,
            settings: BTreeMap::new(),
            quota: Mutex::new(Vec::new()),
            health: Arc::default(),
            recent: Arc::default(),
        }
    }
}
