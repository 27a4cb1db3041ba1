//! Who sent a request: the one name every step uses for the client (admission limits, routing
//! rules' client tags, usage records), made once by authentication.

use crate::config::{SecretString, ServerConfig};

/// The client a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    /// No client keys are configured: every client that reaches the gateway (loopback, or an
    /// explicit `--insecure-no-auth`) is this one.
    Anyone,
    /// The client holding `[server] api_keys[index]`.
    Key { index: usize },
}

impl Principal {
    /// The key's public name, `key-N` (N counting `[server] api_keys` from 1); `None` for
    /// [`Principal::Anyone`]. Never the key itself.
    pub fn id(self) -> Option<String> {
        match self {
            Principal::Anyone => None,
            Principal::Key { index } => Some(format!("key-{}", index.saturating_add(1))),
        }
    }

    /// The secret this principal presented, from the configuration it was authenticated under.
    pub fn key(self, server: &ServerConfig) -> Option<&SecretString> {
        match self {
            Principal::Anyone => None,
            Principal::Key { index } => server.api_keys.get(index),
        }
    }

    /// The tags `[server] client_tags` gives this principal (routing rules match on them).
    pub fn tags(self, server: &ServerConfig) -> &[String] {
        match self.id() {
            Some(id) => server.client_tags.get(&id).map_or(&[], Vec::as_slice),
            None => &[],
        }
    }

    /// The key's position in `[server] api_keys`, for limits kept per client key.
    pub fn key_index(self) -> Option<usize> {
        match self {
            Principal::Anyone => None,
            Principal::Key { index } => Some(index),
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
}
