//! Every credential the gateway holds, so anything read back from an upstream (by a guest through
//! `http.send`, or in an error message) is scrubbed of all of them, not only of the key that
//! request used: an upstream reachable by one component might echo another account's key.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::SecretString;

#[derive(Default)]
pub struct SecretSet(ArcSwap<Vec<SecretString>>);

impl std::fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretSet({} secrets)", self.0.load().len())
    }
}

impl SecretSet {
    pub fn replace(&self, secrets: Vec<SecretString>) {
        self.0.store(Arc::new(secrets));
    }

    pub fn current(&self) -> Arc<Vec<SecretString>> {
        self.0.load_full()
    }

    /// `text` with every known secret removed.
    pub fn scrub<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        crate::upstream::redact_all(text, self.0.load().iter())
    }
}
