//! The sandbox's egress policy, in one place: every request that leaves the host on a
//! component's behalf — the chat call a provider component plans, and the calls a component
//! makes itself through `http.send` — passes [`prepare`] (the URL parses, the component's
//! manifest allows the host, the destination is never link-local or metadata, `[upstream]
//! egress_hosts` permits it, the method and headers are valid, headers the host owns are
//! dropped, the credential is attached by the host) and reads its answer through
//! [`read_capped`]. Callers turn a [`Refusal`] into their own error type.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use url::Url;

use crate::config::SecretString;
use crate::errors::GatewayError;
use crate::upstream::{AuthStyle, UpstreamClient, attach_auth, forbidden_destination, forbidden_header};
use freeway_core::hosts::AllowedHosts;

/// Who asks, and with what right: the component's manifest and the account it acts for.
pub struct Sender<'a> {
    pub allowed: &'a AllowedHosts,
    pub http: &'a UpstreamClient,
    pub auth: &'a AuthStyle,
    pub secret: Option<&'a SecretString>,
}

/// A request cleared to leave.
#[derive(Debug)]
pub struct Outgoing {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
}

/// Why a planned request may not leave.
#[derive(Debug)]
pub enum Refusal {
    /// the URL does not parse
    InvalidUrl(String),
    /// the component's manifest does not list the host
    NotAllowed {
        host: String,
    },
    /// a link-local or cloud-metadata address: never reached, whatever a manifest says
    Forbidden {
        host: String,
        why: &'static str,
    },
    /// outside `[upstream] egress_hosts`
    OutsideEgress {
        host: String,
    },
    InvalidMethod(String),
    InvalidHeaderName(String),
    InvalidHeaderValue(String),
    /// the credential could not be attached
    Credential(GatewayError),
}

impl Refusal {
    /// What a log line or an error message says about it.
    pub fn describe(&self) -> String {
        match self {
            Refusal::InvalidUrl(e) => format!("an invalid URL ({e})"),
            Refusal::NotAllowed { host } => format!("a call to {host}, which its manifest does not allow"),
            Refusal::Forbidden { host, why } => format!("a call to {host}, which is never reached: {why}"),
            Refusal::OutsideEgress { host } => format!("a call to {host}, which is outside [upstream] egress_hosts"),
            Refusal::InvalidMethod(m) => format!("an invalid method {m:?}"),
            Refusal::InvalidHeaderName(k) => format!("an invalid header name {k:?}"),
            Refusal::InvalidHeaderValue(k) => format!("an invalid value for header {k}"),
            Refusal::Credential(e) => format!("a credential that cannot be attached: {}", e.message),
        }
    }
}

fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or("?").to_owned()
}

/// Check a planned request and build it, credential attached.
pub fn prepare(
    sender: &Sender<'_>,
    url: &str,
    method: &str,
    headers: &[(String, String)],
) -> Result<Outgoing, Refusal> {
    let mut url = Url::parse(url).map_err(|e| Refusal::InvalidUrl(e.to_string()))?;
    if !sender.allowed.allows(&url) {
        return Err(Refusal::NotAllowed { host: host_of(&url) });
    }
    if let Some(why) = forbidden_destination(&url) {
        return Err(Refusal::Forbidden { host: host_of(&url), why });
    }
    if !sender.http.permits(&url) {
        return Err(Refusal::OutsideEgress { host: host_of(&url) });
    }
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| Refusal::InvalidMethod(method.to_owned()))?;
    let mut out = HeaderMap::with_capacity(headers.len() + 1);
    for (k, v) in headers {
        let name = HeaderName::try_from(k.as_str()).map_err(|_| Refusal::InvalidHeaderName(k.clone()))?;
        if forbidden_header(&name) {
            continue;
        }
        let value = HeaderValue::try_from(v.as_str()).map_err(|_| Refusal::InvalidHeaderValue(k.clone()))?;
        out.append(name, value);
    }
    attach_auth(&mut url, &mut out, sender.auth, sender.secret).map_err(Refusal::Credential)?;
    Ok(Outgoing { method, url, headers: out })
}

/// Why a body was not read whole.
#[derive(Debug)]
pub enum ReadError {
    /// more than the cap
    TooLarge,
    Transport(reqwest::Error),
}

/// Read a response body, at most `cap` bytes (refused at once when its length says more).
pub async fn read_capped(resp: reqwest::Response, cap: usize) -> Result<Bytes, ReadError> {
    if resp.content_length().is_some_and(|n| n > u64::try_from(cap).unwrap_or(u64::MAX)) {
        return Err(ReadError::TooLarge);
    }
    let mut buf = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ReadError::Transport)?;
        if buf.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamConfig;

    fn client(egress: &[&str]) -> UpstreamClient {
        let cfg = UpstreamConfig {
            egress_hosts: egress.iter().map(|h| (*h).to_owned()).collect(),
            ..UpstreamConfig::default()
        };
        UpstreamClient::new(&cfg).unwrap()
    }

    fn sender<'a>(allowed: &'a AllowedHosts, http: &'a UpstreamClient, secret: Option<&'a SecretString>) -> Sender<'a> {
        Sender { allowed, http, auth: &AuthStyle::Bearer, secret }
    }

    #[test]
    fn a_planned_request_is_checked_in_order_and_built_with_the_credential() {
        let allowed =
            AllowedHosts::resolve(&["api.example.com".to_owned(), "169.254.169.254".to_owned()], None).unwrap();
        let http = client(&[]);
        let key = SecretString::new("sk-test");
        let s = sender(&allowed, &http, Some(&key));
        let headers = vec![
            ("x-custom".to_owned(), "1".to_owned()),
            ("host".to_owned(), "evil".to_owned()),
            ("authorization".to_owned(), "Bearer guest-made".to_owned()),
        ];
        let out = prepare(&s, "https://api.example.com/v1/chat", "POST", &headers).unwrap();
        assert_eq!(out.method, Method::POST);
        assert_eq!(out.headers["x-custom"], "1");
        assert!(out.headers.get("host").is_none(), "the host owns Host");
        assert_eq!(out.headers.get_all("authorization").iter().count(), 1);
        assert_eq!(out.headers["authorization"], "Bearer sk-test");

        assert!(matches!(prepare(&s, "not a url", "POST", &[]), Err(Refusal::InvalidUrl(_))));
        assert!(matches!(prepare(&s, "https://other.example.com/", "POST", &[]), Err(Refusal::NotAllowed { .. })));
        assert!(
            matches!(prepare(&s, "http://169.254.169.254/latest", "GET", &[]), Err(Refusal::Forbidden { .. })),
            "metadata is never reached, even when a manifest lists it"
        );
        assert!(matches!(prepare(&s, "https://api.example.com/", "BAD METHOD", &[]), Err(Refusal::InvalidMethod(_))));
        let bad = vec![("bad header".to_owned(), "x".to_owned())];
        assert!(matches!(prepare(&s, "https://api.example.com/", "GET", &bad), Err(Refusal::InvalidHeaderName(_))));
        let bad = vec![("x-ok".to_owned(), "line\nbreak".to_owned())];
        assert!(matches!(prepare(&s, "https://api.example.com/", "GET", &bad), Err(Refusal::InvalidHeaderValue(_))));
    }

    #[test]
    fn egress_hosts_bound_what_a_manifest_allows() {
        let allowed =
            AllowedHosts::resolve(&["api.example.com".to_owned(), "other.example.com".to_owned()], None).unwrap();
        let http = client(&["api.example.com"]);
        let s = sender(&allowed, &http, None);
        assert!(prepare(&s, "https://api.example.com/", "GET", &[]).is_ok());
        assert!(matches!(prepare(&s, "https://other.example.com/", "GET", &[]), Err(Refusal::OutsideEgress { .. })));
    }
}
