//! The one HTTP client every upstream call goes through: pooled connections, rustls, connect and
//! idle-read timeouts (never a whole-body timeout on streams), no proxy from the environment.
//! Secrets are attached here and nowhere else, and scrubbed from anything read back.

use std::borrow::Cow;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::config::{SecretString, UpstreamConfig};
use crate::errors::{ErrorKind, GatewayError};
use crate::runtime::state::AuthStyle;

#[derive(Clone, Debug)]
pub struct UpstreamClient {
    client: reqwest::Client,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_response_bytes: usize,
    /// `[upstream] egress_hosts`: when not empty, the only hosts that may be reached
    egress: std::sync::Arc<Vec<String>>,
}

impl UpstreamClient {
    pub fn new(cfg: &UpstreamConfig) -> Result<Self, GatewayError> {
        let idle = Duration::from_millis(cfg.idle_timeout_ms);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .read_timeout(idle)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("freeway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GatewayError::internal(format!("cannot build the HTTP client: {}", e.without_url())))?;
        Ok(Self {
            client,
            request_timeout: Duration::from_millis(cfg.request_timeout_ms),
            idle_timeout: idle,
            max_response_bytes: cfg.max_response_bytes,
            egress: std::sync::Arc::new(cfg.egress_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect()),
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Whether `url` may be reached under `[upstream] egress_hosts` (before any DNS lookup).
    pub fn permits(&self, url: &Url) -> bool {
        if self.egress.is_empty() {
            return true;
        }
        let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.egress.contains(&host)
    }
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

/// Replace every occurrence of `secret` (and of long fragments of it) in `text`.
pub fn redact<'t>(text: &'t str, secret: Option<&SecretString>) -> Cow<'t, str> {
    match secret {
        Some(s) => redact_all(text, std::iter::once(s)),
        None => Cow::Borrowed(text),
    }
}

/// The first and last `n` characters of `s`.
fn ends(s: &str, n: usize) -> (&str, &str) {
    let head_end = s.char_indices().nth(n).map_or(s.len(), |(i, _)| i);
    let tail_start = s.char_indices().rev().nth(n - 1).map_or(0, |(i, _)| i);
    (&s[..head_end], &s[tail_start..])
}

/// Replace every occurrence of each secret, and of any 8+ character prefix or suffix of it
/// (providers echo partial keys: "sk-abc...wxyz"), in `text`.
pub fn redact_all<'t, 's>(text: &'t str, secrets: impl IntoIterator<Item = &'s SecretString>) -> Cow<'t, str> {
    const MIN: usize = 8;
    let mut out = Cow::Borrowed(text);
    for secret in secrets {
        let s = secret.expose();
        // a "key" this short is not a credential (test fixtures, "none"); scrubbing it from free
        // text would mangle unrelated words
        if s.chars().count() < MIN {
            continue;
        }
        if s.chars().count() == MIN {
            if out.contains(s) {
                out = Cow::Owned(out.replace(s, "[redacted]"));
            }
            continue;
        }
        // every long prefix holds the first 8 characters and every long suffix the last 8
        let (head, tail) = ends(s, MIN);
        if !out.contains(head) && !out.contains(tail) {
            continue;
        }
        if out.contains(s) {
            out = Cow::Owned(out.replace(s, "[redacted]"));
        }
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(MIN).collect();
        for &cut in bounds.iter().rev() {
            let prefix = &s[..cut];
            if out.contains(prefix) {
                out = Cow::Owned(out.replace(prefix, "[redacted]"));
            }
        }
        for &cut in &bounds {
            let suffix = &s[s.len() - cut..];
            if s.is_char_boundary(s.len() - cut) && out.contains(suffix) {
                out = Cow::Owned(out.replace(suffix, "[redacted]"));
            }
        }
    }
    out
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

    #[test]
    fn redaction_covers_every_known_secret_and_never_panics_on_odd_keys() {
        let keys = [
            SecretString::new("gsk_one_0123456789abcdef"),
            SecretString::new("sk-two-ffffeeeeddddcccc"),
            SecretString::new("ключ-ключ-ключ-ключ"),
        ];
        let text = "a gsk_one_0123456789abcdef b sk-two-ffffeeeedd c ключ-ключ-ключ";
        let out = redact_all(text, &keys);
        assert!(!out.contains("0123456789") && !out.contains("ffffeeee") && !out.contains("ключ-ключ"), "{out}");
        assert_eq!(redact_all("nothing to see", &keys), "nothing to see");
        assert_eq!(
            redact("a keep and a k", Some(&SecretString::new("k"))),
            "a keep and a k",
            "too short to be a secret"
        );
        assert_eq!(redact("exactly 12345678 here", Some(&SecretString::new("12345678"))), "exactly [redacted] here");
    }

    #[test]
    fn redaction_removes_whole_and_partial_keys() {
        let key = SecretString::new("sk-live-0123456789abcdef");
        let msg =
            "Incorrect API key provided: sk-live-0123456789abcdef. Also sk-live-01******cdef and 0123456789abcdef";
        let out = redact(msg, Some(&key));
        assert!(!out.contains("0123456789abcdef"), "{out}");
        assert!(!out.contains("sk-live-01"), "{out}");
        assert!(out.starts_with("Incorrect API key provided: [redacted]"), "{out}");
        assert_eq!(redact("nothing here", Some(&key)), "nothing here");
    }
}
