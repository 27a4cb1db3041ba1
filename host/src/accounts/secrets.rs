//! Every credential the gateway holds, so anything read back from an upstream (by a guest through
//! `http.send`, in a body, a stream event or an error message) is scrubbed of all of them, not
//! only of the key that request used: an upstream reachable by one component might echo another
//! account's key. See [`crate::scrub`].

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::config::SecretString;
use crate::scrub::Scrubber;

#[derive(Default)]
pub struct SecretSet(ArcSwap<Scrubber>);

impl std::fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretSet({} secrets)", self.0.load().len())
    }
}

impl SecretSet {
    pub fn replace(&self, secrets: Vec<SecretString>) {
        self.0.store(Arc::new(Scrubber::new(&secrets)));
    }

    /// `text` with every known secret removed.
    pub fn scrub<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        self.0.load().scrub(text)
    }

    /// Upstream bytes with every known secret removed (the same buffer when there was none).
    pub fn scrub_bytes(&self, bytes: Bytes) -> Bytes {
        self.0.load().scrub_bytes(bytes)
    }
}
