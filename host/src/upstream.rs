//! The one HTTP client every upstream call goes through: pooled connections, rustls, connect and
//! idle-read timeouts (never a whole-body timeout on streams), the environment's proxy
//! (`HTTPS_PROXY`, `NO_PROXY`) unless `[upstream] proxy_from_env = false`.
//! Secrets are attached here and nowhere else (and scrubbed from anything read back, see
//! [`crate::scrub`]).
//!
//! Wherever a call goes, it never reaches a link-local or cloud metadata address
//! (169.254.0.0/16, fe80::/10, 169.254.169.254, fd00:ec2::254, 100.100.100.200): a component
//! (or a configuration) naming one is refused before connecting, and a host name that
//! resolves to one is refused by the resolver. Redirects are never followed.

use std::time::Duration;

use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::config::{SecretString, UpstreamConfig};
use crate::errors::{ErrorKind, GatewayError};

/// What one upstream stream may cost before it is cut off as a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamBounds {
    /// largest single event
    pub max_event_bytes: usize,
    /// largest whole stream
    pub max_stream_bytes: u64,
    /// longest wait for the first data event (keep-alive comments do not count)
    pub first_event: Duration,
}

#[derive(Clone, Debug)]
pub struct UpstreamClient {
    client: reqwest::Client,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_response_bytes: usize,
    pub stream_bounds: StreamBounds,
    /// `[upstream] egress_hosts`: when not empty, the only hosts that may be reached
    egress: std::sync::Arc<Vec<String>>,
}

impl UpstreamClient {
    pub fn new(cfg: &UpstreamConfig) -> Result<Self, GatewayError> {
        let idle = Duration::from_millis(cfg.idle_timeout_ms);
        let mut builder = reqwest::Client::builder();
        if !cfg.proxy_from_env {
            builder = builder.no_proxy();
        }
        let client = builder
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .read_timeout(idle)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(GuardedResolver))
            .user_agent(concat!("freeway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GatewayError::internal(format!("cannot build the HTTP client: {}", e.without_url())))?;
        Ok(Self {
            client,
            request_timeout: Duration::from_millis(cfg.request_timeout_ms),
            idle_timeout: idle,
            max_response_bytes: cfg.max_response_bytes,
            stream_bounds: StreamBounds {
                max_event_bytes: cfg.max_event_bytes.max(1024),
                max_stream_bytes: cfg.max_stream_bytes.max(1024),
                first_event: Duration::from_millis(cfg.first_event_timeout_ms.max(1)),
            },
            egress: std::sync::Arc::new(cfg.egress_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect()),
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Whether `url` may be reached under `[upstream] egress_hosts` (before any DNS lookup),
    /// and is not a link-local or metadata address.
    pub fn permits(&self, url: &Url) -> bool {
        if forbidden_destination(url).is_some() {
            return false;
        }
        if self.egress.is_empty() {
            return true;
        }
        let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.egress.contains(&host)
    }
}

pub use freeway_core::hosts::{forbidden_destination, forbidden_ip};

/// The system resolver, minus forbidden addresses: a name that resolves only to link-local or
/// metadata addresses fails to resolve.
#[derive(Debug, Default)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = allowed_addrs(found);
            if allowed.is_empty() {
                let msg = format!("{host} resolves only to link-local or metadata addresses, which are never reached");
                return Err(Box::new(std::io::Error::new(std::io::ErrorKind::PermissionDenied, msg)) as _);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn allowed_addrs(found: impl Iterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    found.filter(|a| forbidden_ip(a.ip()).is_none()).collect()
}

/// How the host attaches a secret to an upstream request (from the manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStyle {
    Bearer,
    Header(http::HeaderName),
    Query(String),
    None,
}

/// Attach `secret` to a request as `style` says. The header value is marked sensitive so it never
/// appears in debug output.
pub fn attach_auth(
    url: &mut Url,
    headers: &mut HeaderMap,
    style: &AuthStyle,
    secret: Option<&SecretString>,
) -> Result<(), GatewayError> {
    let Some(secret) = secret else { return Ok(()) };
    let bad = || {
        GatewayError::new(ErrorKind::Internal, "the account's key contains characters that cannot be sent in a header")
    };
    match style {
        AuthStyle::Bearer => {
            let mut v = HeaderValue::try_from(format!("Bearer {}", secret.expose())).map_err(|_| bad())?;
            v.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, v);
        }
        AuthStyle::Header(name) => {
            let mut v = HeaderValue::try_from(secret.expose()).map_err(|_| bad())?;
            v.set_sensitive(true);
            headers.insert(name.clone(), v);
        }
        AuthStyle::Query(param) => {
            url.query_pairs_mut().append_pair(param, secret.expose());
        }
        AuthStyle::None => {}
    }
    Ok(())
}

/// Headers a component may not set on an upstream request.
pub fn forbidden_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "te"
            | "trailer"
            | "proxy-authorization"
    )
}

/// Map a transport error to a typed, retryable upstream error. The URL (which may carry a
/// query-string key) is dropped from the message.
pub fn transport_error(e: reqwest::Error, provider: &str) -> GatewayError {
    let kind = if e.is_timeout() {
        ErrorKind::UpstreamTimeout
    } else if e.is_connect() {
        ErrorKind::UpstreamUnreachable
    } else if e.is_decode() || e.is_body() {
        ErrorKind::UpstreamStreamInterrupted
    } else {
        ErrorKind::UpstreamUnreachable
    };
    let what = match kind {
        ErrorKind::UpstreamTimeout => "did not answer in time",
        ErrorKind::UpstreamStreamInterrupted => "broke off its response",
        _ => "could not be reached",
    };
    let detail = describe(&e.without_url());
    GatewayError::new(kind, format!("provider '{provider}' {what}: {detail}")).with_provider(provider)
}

/// An error and its causes on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let c_s = c.to_string();
        if !s.contains(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_hosts_limit_where_calls_go() {
        let cfg = UpstreamConfig { egress_hosts: vec!["127.0.0.1".into(), "::1".into()], ..UpstreamConfig::default() };
        let c = UpstreamClient::new(&cfg).unwrap();
        assert!(c.permits(&Url::parse("http://127.0.0.1:9/v1").unwrap()));
        assert!(c.permits(&Url::parse("http://[::1]:9/v1").unwrap()));
        assert!(!c.permits(&Url::parse("https://api.groq.com/openai/v1").unwrap()));
        assert!(
            UpstreamClient::new(&UpstreamConfig::default())
                .unwrap()
                .permits(&Url::parse("https://x.example/").unwrap())
        );
    }

    #[test]
    fn link_local_and_metadata_addresses_are_never_reached() {
        let c = UpstreamClient::new(&UpstreamConfig::default()).unwrap();
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.1.1:8080/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            let url = Url::parse(bad).unwrap();
            assert!(forbidden_destination(&url).is_some(), "{bad}");
            assert!(!c.permits(&url), "{bad}");
        }
        let with_egress =
            UpstreamClient::new(&UpstreamConfig { egress_hosts: vec!["169.254.169.254".into()], ..Default::default() })
                .unwrap();
        assert!(!with_egress.permits(&Url::parse("http://169.254.169.254/").unwrap()), "not even when listed");
        assert!(c.permits(&Url::parse("http://127.0.0.1:9/").unwrap()));
        assert!(c.permits(&Url::parse("http://10.0.0.1/").unwrap()));
        let addrs = ["169.254.169.254:80", "10.0.0.1:80", "[fe80::1]:80"].map(|a| a.parse::<SocketAddr>().unwrap());
        assert_eq!(allowed_addrs(addrs.into_iter()), ["10.0.0.1:80".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn bearer_header_is_sensitive() {
        let mut url = Url::parse("http://x/v1").unwrap();
        let mut h = HeaderMap::new();
        attach_auth(&mut url, &mut h, &AuthStyle::Bearer, Some(&SecretString::new("sk-abc"))).unwrap();
        let v = h.get("authorization").unwrap();
        assert!(v.is_sensitive());
        assert_eq!(v, "Bearer sk-abc");
        assert!(!format!("{h:?}").contains("sk-abc"));
    }

    #[test]
    fn query_auth_goes_in_the_url() {
        let mut url = Url::parse("https://x/v1beta/models?alt=sse").unwrap();
        let mut h = HeaderMap::new();
        attach_auth(&mut url, &mut h, &AuthStyle::Query("key".into()), Some(&SecretString::new("AIza123"))).unwrap();
        assert_eq!(url.query(), Some("alt=sse&key=AIza123"));
    }
}
