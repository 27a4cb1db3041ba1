//! What every request passes before a handler sees it.
//!
//! - **`Host`**: a web page can point its own domain at 127.0.0.1 (DNS rebinding) and then read
//!   a loopback gateway as same-origin. Such requests carry the page's domain in `Host`, so only
//!   loopback names (`localhost`, `*.localhost`), IP addresses and `[server] allowed_hosts` are
//!   answered; anything else gets 421.
//! - **JSON bodies**: a body must be declared as JSON (`application/json` or `…+json`), else
//!   415. Browsers send cross-origin `text/plain` and form posts without asking first (no
//!   preflight); refusing them keeps any web page from spending the user's quota.
//! - **CORS**: off unless `[server] cors_origins` lists the origin (read per request, so a reload
//!   applies at once).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::app::App;
use crate::config::ServerConfig;
use crate::errors::{ErrorKind, GatewayError};
use crate::registry::Registry;

pub async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let snapshot = app.registry.snapshot();
    let server = &snapshot.config.server;
    if let Err(e) = check_host(server, req.headers(), req.uri()) {
        return e.into_response();
    }
    if has_body(req.headers()) && !is_json(req.headers()) {
        let sent = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("no Content-Type");
        return GatewayError::new(
            ErrorKind::UnsupportedMediaType,
            format!("Request bodies must be JSON: send 'Content-Type: application/json' (this request sent {sent})."),
        )
        .into_response();
    }
    next.run(req).await
}

/// Whether the request declares a body (a length above zero, or chunked).
fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().parse::<u64>().map_or(true, |n| n > 0))
}

/// `application/json`, `application/<anything>+json`, with or without parameters.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn check_host(server: &ServerConfig, headers: &HeaderMap, uri: &http::Uri) -> Result<(), GatewayError> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| uri.authority().map(|a| a.as_str()));
    // no Host at all: not a browser (browsers always send one)
    let Some(host) = host else { return Ok(()) };
    if host_allowed(host, &server.allowed_hosts) {
        return Ok(());
    }
    let name = strip_port(host);
    Err(GatewayError::new(
        ErrorKind::UnknownHost,
        format!(
            "This gateway does not answer to the host name '{}'. If you reach it under that name, add it to [server] allowed_hosts.",
            name.chars().take(253).collect::<String>()
        ),
    ))
}

/// The host part of a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`).
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Loopback names, IP addresses (a rebinding page cannot make the browser send one) and the
/// configured names (`*.example.com` for subdomains, `*` for any).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = strip_port(host.trim()).trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<std::net::IpAddr>().is_ok() || name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    allowed.iter().any(|a| {
        let a = a.trim().trim_end_matches('.').to_ascii_lowercase();
        a == "*" || a == name || a.strip_prefix("*.").is_some_and(|suffix| name.ends_with(&format!(".{suffix}")))
    })
}

/// CORS for the origins in `[server] cors_origins` (none by default).
pub fn cors(registry: Arc<Registry>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            let Ok(origin) = origin.to_str() else { return false };
            let snapshot = registry.snapshot();
            snapshot.config.server.cors_origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("anthropic-version"),
            HeaderName::from_static("openai-organization"),
            HeaderName::from_static("openai-project"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("retry-after-ms"),
            HeaderName::from_static("x-freeway-route"),
            HeaderName::from_static("x-freeway-overhead-ms"),
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        m
    }

    #[test]
    fn loopback_names_and_ip_addresses_are_answered_other_names_only_when_allowed() {
        for ok in ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "10.0.0.7", "app.localhost", "LOCALHOST"] {
            assert!(host_allowed(ok, &[]), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io"] {
            assert!(!host_allowed(bad, &[]), "{bad}");
        }
        let allowed = vec!["gw.example.com".to_owned(), "*.corp.example".to_owned()];
        assert!(host_allowed("gw.example.com:443", &allowed));
        assert!(host_allowed("a.corp.example", &allowed));
        assert!(!host_allowed("corp.example", &allowed));
        assert!(host_allowed("anything.example", &["*".to_owned()]));
    }

    #[test]
    fn only_json_bodies_pass() {
        assert!(is_json(&h(&[("content-type", "application/json")])));
        assert!(is_json(&h(&[("content-type", "Application/JSON; charset=utf-8")])));
        assert!(is_json(&h(&[("content-type", "application/vnd.api+json")])));
        for bad in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            assert!(!is_json(&h(&[("content-type", bad)])), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
        assert!(has_body(&h(&[("content-length", "12")])));
        assert!(!has_body(&h(&[("content-length", "0")])));
        assert!(has_body(&h(&[("transfer-encoding", "chunked")])));
        assert!(!has_body(&HeaderMap::new()));
    }
}
