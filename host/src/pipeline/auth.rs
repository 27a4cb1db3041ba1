//! Client authentication: when `server.api_keys` is set, requests must carry one of them as
//! `Authorization: Bearer <key>` (or `x-api-key`). Compared in constant time.

use http::HeaderMap;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::ServerConfig;
use crate::errors::{ErrorKind, GatewayError};
use crate::principal::Principal;

/// The key a client presented, if any.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        return Some(v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).unwrap_or(v).trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Who the client is: the holder of one of `server.api_keys`, or [`Principal::Anyone`] when no
/// keys are configured.
pub fn check(server: &ServerConfig, headers: &HeaderMap) -> Result<Principal, GatewayError> {
    if server.api_keys.is_empty() {
        return Ok(Principal::Anyone);
    }
    let Some(key) = presented(headers) else {
        return Err(GatewayError::new(
            ErrorKind::InvalidApiKey,
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
        ));
    };
    // check every key so timing does not reveal which one was close
    let mut ok = subtle::Choice::from(0);
    let mut which = 0u64;
    for (i, k) in server.api_keys.iter().enumerate() {
        let eq = k.expose().as_bytes().ct_eq(key.as_bytes());
        ok |= eq;
        which = u64::conditional_select(&which, &(i as u64), eq);
    }
    match usize::try_from(which) {
        Ok(index) if bool::from(ok) => Ok(Principal::Key { index }),
        _ => Err(GatewayError::new(ErrorKind::InvalidApiKey, "Incorrect API key provided.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretString;

    fn server(keys: &[&str]) -> ServerConfig {
        ServerConfig { api_keys: keys.iter().map(|k| SecretString::new(k)).collect(), ..ServerConfig::default() }
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", auth.parse().unwrap());
        h
    }

    #[test]
    fn no_keys_configured_means_open() {
        assert_eq!(check(&server(&[]), &HeaderMap::new()).unwrap(), Principal::Anyone);
    }

    #[test]
    fn keys_are_required_and_compared() {
        let s = server(&["fw-one", "fw-two"]);
        assert_eq!(check(&s, &headers("Bearer fw-two")).unwrap(), Principal::Key { index: 1 });
        assert_eq!(check(&s, &headers("Bearer fw-three")).unwrap_err().kind, ErrorKind::InvalidApiKey);
        assert_eq!(check(&s, &HeaderMap::new()).unwrap_err().kind, ErrorKind::InvalidApiKey);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "fw-one".parse().unwrap());
        assert_eq!(check(&s, &h).unwrap(), Principal::Key { index: 0 });
    }

    #[test]
    fn error_never_echoes_the_key() {
        let err = check(&server(&["fw-one"]), &headers("Bearer sk-secret-guess")).unwrap_err();
        assert!(!err.message.contains("sk-secret-guess"));
    }
}
