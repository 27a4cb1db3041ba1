//! Warm provider instances. Instantiating costs ~10 µs plus page faults and an `madvise` when
//! the pooling allocator reclaims the slot; a request instead leases a warm instance that
//! served an earlier request without failing, rebound to this request's accounts. Instances
//! that trapped, ran out of budget or asked for something they were not allowed are dropped,
//! never returned; every instance retires after [`MAX_CALLS`] calls.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use parking_lot::Mutex;

use super::guest::ProviderInstance;

/// Guest calls before an instance is retired (bounds slow leaks inside a guest).
pub const MAX_CALLS: u32 = 10_000;

/// Idle instances kept per component.
#[derive(Default)]
pub struct InstancePool {
    idle: Mutex<Vec<ProviderInstance>>,
    pub keep: usize,
}

impl InstancePool {
    pub fn new(keep: usize) -> Self {
        Self { idle: Mutex::new(Vec::new()), keep }
    }

    pub fn take(&self) -> Option<ProviderInstance> {
        self.idle.lock().pop()
    }

    fn give_back(&self, inst: ProviderInstance) {
        if !inst.reusable() || inst.calls >= MAX_CALLS {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < self.keep {
            idle.push(inst);
        }
    }

    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}

/// An instance on loan for one request; goes back to the pool when dropped, if still healthy.
pub struct ProviderLease {
    inst: Option<ProviderInstance>,
    pool: Arc<InstancePool>,
}

impl ProviderLease {
    pub(crate) fn new(inst: ProviderInstance, pool: Arc<InstancePool>) -> Self {
        Self { inst: Some(inst), pool }
    }
}

impl Deref for ProviderLease {
    type Target = ProviderInstance;
    fn deref(&self) -> &ProviderInstance {
        // present from construction until drop
        self.inst.as_ref().unwrap_or_else(|| unreachable!("lease used after drop"))
    }
}

impl DerefMut for ProviderLease {
    fn deref_mut(&mut self) -> &mut ProviderInstance {
        self.inst.as_mut().unwrap_or_else(|| unreachable!("lease used after drop"))
    }
}

impl Drop for ProviderLease {
    fn drop(&mut self) {
        if let Some(inst) = self.inst.take() {
            self.pool.give_back(inst);
        }
    }
}
