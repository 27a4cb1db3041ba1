//! Who sent a request: the one name every step uses for the client (admission limits, routing
//! rules' client tags, usage records), made once by authentication.

use std::sync::Arc;

use crate::config::{SecretString, ServerConfig};
use crate::keys::VirtualKey;

/// The client a request came from.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No client keys exist: every client that reaches the gateway (loopback, or an explicit
    /// `--insecure-no-auth`) is this one.
    Anyone,
    /// The client holding `[server] api_keys[index]` (a static key).
    Key { index: usize },
    /// The holder of a virtual key (`freeway keys create`).
    Virtual(Arc<VirtualKey>),
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Principal::Anyone, Principal::Anyone) => true,
            (Principal::Key { index: a }, Principal::Key { index: b }) => a == b,
            (Principal::Virtual(a), Principal::Virtual(b)) => a.id == b.id,
            _ => false,
        }
    }
}

impl Eq for Principal {}

impl Principal {
    /// The client's public name: `key-N` for a static key (N counting `[server] api_keys` from
    /// 1), the `vk_` id for a virtual key; `None` for [`Principal::Anyone`]. Never the key.
    pub fn id(&self) -> Option<String> {
        match self {
            Principal::Anyone => None,
            Principal::Key { index } => Some(format!("key-{}", index.saturating_add(1))),
            Principal::Virtual(k) => Some(k.id.clone()),
        }
    }

    /// The secret a static key's holder presented, from the configuration it was authenticated
    /// under (virtual keys' secrets are not kept).
    pub fn key<'a>(&self, server: &'a ServerConfig) -> Option<&'a SecretString> {
        match self {
            Principal::Anyone | Principal::Virtual(_) => None,
            Principal::Key { index } => server.api_keys.get(*index),
        }
    }

    /// The client's tags: `[server] client_tags` for a static key, its own for a virtual one
    /// (routing rules match on them).
    pub fn tags<'a>(&'a self, server: &'a ServerConfig) -> &'a [String] {
        match self {
            Principal::Virtual(k) => &k.doc.tags,
            Principal::Key { .. } => match self.id() {
                Some(id) => server.client_tags.get(&id).map_or(&[], Vec::as_slice),
                None => &[],
            },
            Principal::Anyone => &[],
        }
    }

    /// The key's position in `[server] api_keys`, for limits kept per static client key.
    pub fn key_index(&self) -> Option<usize> {
        match self {
            Principal::Key { index } => Some(*index),
            Principal::Anyone | Principal::Virtual(_) => None,
        }
    }

    /// The virtual key, when the client used one.
    pub fn virtual_key(&self) -> Option<&Arc<VirtualKey>> {
        match self {
            Principal::Virtual(k) => Some(k),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_named_by_its_position_from_one_and_anyone_has_no_name() {
        assert_eq!(Principal::Key { index: 0 }.id().as_deref(), Some("key-1"));
        assert_eq!(Principal::Key { index: 4 }.id().as_deref(), Some("key-5"));
        assert_eq!(Principal::Anyone.id(), None);
    }

    #[test]
    fn tags_and_key_come_from_the_configuration_the_request_was_authenticated_under() {
        let mut server = ServerConfig {
            api_keys: vec![SecretString::new("fw-a"), SecretString::new("fw-b")],
            ..ServerConfig::default()
        };
        server.client_tags.insert("key-2".into(), vec!["batch".into()]);
        let b = Principal::Key { index: 1 };
        assert_eq!(b.tags(&server), ["batch".to_owned()]);
        assert_eq!(b.key(&server).map(SecretString::expose), Some("fw-b"));
        assert!(Principal::Key { index: 0 }.tags(&server).is_empty());
        assert!(Principal::Anyone.tags(&server).is_empty() && Principal::Anyone.key(&server).is_none());
        assert!(Principal::Key { index: 9 }.key(&server).is_none());
    }

    #[test]
    fn a_virtual_key_is_named_by_its_id_and_carries_its_own_tags() {
        let row = crate::keys::KeyRow {
            id: "vk_0123456789ab".into(),
            name: "alice".into(),
            hash: String::new(),
            doc: crate::keys::KeyDoc { tags: vec!["team-a".into()], ..Default::default() },
        };
        let k = Arc::new(VirtualKey::new(row, &jiff::tz::TimeZone::UTC, &crate::quota::Ledger::in_memory()));
        let p = Principal::Virtual(k.clone());
        assert_eq!(p.id().as_deref(), Some("vk_0123456789ab"));
        assert_eq!(p.tags(&ServerConfig::default()), ["team-a".to_owned()]);
        assert!(p.key(&ServerConfig::default()).is_none() && p.key_index().is_none());
        assert_eq!(p, Principal::Virtual(k));
        assert_ne!(p, Principal::Anyone);
    }
}
