//! Client authentication: once any client key exists (a static `[server] api_keys` entry or a
//! virtual key, revoked ones included), requests must carry one as `Authorization: Bearer
//! <key>` (or `x-api-key`). Virtual keys are found by their hash in the gateway's in-memory
//! view (no database round trip); static keys are compared in constant time. An expired,
//! revoked, replaced or unknown key is a 401 that says which.

use http::HeaderMap;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::ServerConfig;
use crate::errors::{ErrorKind, GatewayError};
use crate::keys::{KeyRing, Lookup};
use crate::principal::Principal;

/// The key a client presented, if any.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        return Some(v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).unwrap_or(v).trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

fn refused(message: &'static str) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidApiKey, message)
}

/// Who the client is: the holder of a virtual key or of one of `server.api_keys`, or
/// [`Principal::Anyone`] when no client key exists.
pub fn check(
    server: &ServerConfig,
    keys: &KeyRing,
    headers: &HeaderMap,
    now_ms: u64,
) -> Result<Principal, GatewayError> {
    if server.api_keys.is_empty() && !keys.any() {
        return Ok(Principal::Anyone);
    }
    let Some(key) = presented(headers) else {
        return Err(refused("You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."));
    };
    match keys.lookup(key, now_ms) {
        Lookup::Valid(k) => return Ok(Principal::Virtual(k)),
        Lookup::Expired(_) => return Err(refused("This API key has expired.")),
        Lookup::Revoked(_) => return Err(refused("This API key has been revoked.")),
        Lookup::Rotated(_) => return Err(refused("This API key was replaced by a new one; use the new key.")),
        Lookup::Unknown => {}
    }
    // check every static key so timing does not reveal which one was close
    let mut ok = subtle::Choice::from(0);
    let mut which = 0u64;
    for (i, k) in server.api_keys.iter().enumerate() {
        let eq = k.expose().as_bytes().ct_eq(key.as_bytes());
        ok |= eq;
        which = u64::conditional_select(&which, &(i as u64), eq);
    }
    match usize::try_from(which) {
        Ok(index) if bool::from(ok) => Ok(Principal::Key { index }),
        _ => Err(refused("Incorrect API key provided.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretString;
    use crate::keys::{KeyDoc, KeyRow, secret};

    fn server(keys: &[&str]) -> ServerConfig {
        ServerConfig { api_keys: keys.iter().map(|k| SecretString::new(k)).collect(), ..ServerConfig::default() }
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", auth.parse().unwrap());
        h
    }

    fn ring(rows: &[(&str, &str, KeyDoc)]) -> KeyRing {
        let r = KeyRing::new();
        let rows = rows
            .iter()
            .map(|(name, s, doc)| KeyRow {
                id: format!("vk_{name}"),
                name: (*name).into(),
                hash: secret::hash_hex(s),
                doc: doc.clone(),
            })
            .collect();
        r.install(rows, &jiff::tz::TimeZone::UTC, &crate::quota::Ledger::in_memory());
        r
    }

    #[test]
    fn no_keys_configured_means_open() {
        assert_eq!(check(&server(&[]), &KeyRing::new(), &HeaderMap::new(), 0).unwrap(), Principal::Anyone);
    }

    #[test]
    fn keys_are_required_and_compared() {
        let s = server(&["fw-one", "fw-two"]);
        let none = KeyRing::new();
        assert_eq!(check(&s, &none, &headers("Bearer fw-two"), 0).unwrap(), Principal::Key { index: 1 });
        assert_eq!(check(&s, &none, &headers("Bearer fw-three"), 0).unwrap_err().kind, ErrorKind::InvalidApiKey);
        assert_eq!(check(&s, &none, &HeaderMap::new(), 0).unwrap_err().kind, ErrorKind::InvalidApiKey);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "fw-one".parse().unwrap());
        assert_eq!(check(&s, &none, &h, 0).unwrap(), Principal::Key { index: 0 });
    }

    #[test]
    fn a_virtual_key_alone_closes_the_gateway_and_opens_it_to_its_holder() {
        let r = ring(&[("alice", "fw-alice-secret", KeyDoc::default())]);
        let s = server(&[]);
        assert_eq!(check(&s, &r, &HeaderMap::new(), 0).unwrap_err().kind, ErrorKind::InvalidApiKey);
        let p = check(&s, &r, &headers("Bearer fw-alice-secret"), 0).unwrap();
        assert_eq!(p.id().as_deref(), Some("vk_alice"));
        assert!(check(&s, &r, &headers("Bearer fw-other"), 0).is_err());
    }

    #[test]
    fn expired_and_revoked_keys_are_refused_with_the_reason() {
        let r = ring(&[
            ("old", "fw-old", KeyDoc { expires_at_ms: Some(10), ..KeyDoc::default() }),
            ("gone", "fw-gone", KeyDoc { revoked_at_ms: Some(1), ..KeyDoc::default() }),
        ]);
        let s = server(&["fw-static"]);
        assert!(check(&s, &r, &headers("Bearer fw-old"), 11).unwrap_err().message.contains("expired"));
        assert!(check(&s, &r, &headers("Bearer fw-gone"), 0).unwrap_err().message.contains("revoked"));
        assert_eq!(check(&s, &r, &headers("Bearer fw-static"), 0).unwrap(), Principal::Key { index: 0 });
    }

    #[test]
    fn even_revoked_keys_keep_the_gateway_closed() {
        let r = ring(&[("gone", "fw-gone", KeyDoc { revoked_at_ms: Some(1), ..KeyDoc::default() })]);
        assert!(check(&server(&[]), &r, &HeaderMap::new(), 0).is_err());
    }

    #[test]
    fn error_never_echoes_the_key() {
        let err = check(&server(&["fw-one"]), &KeyRing::new(), &headers("Bearer sk-secret-guess"), 0).unwrap_err();
        assert!(!err.message.contains("sk-secret-guess"));
    }
}
