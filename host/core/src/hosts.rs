//! Which hosts a component may reach: its manifest's `allowed-hosts`, with `$base_url` standing
//! for the host of the base URL the operator configured; and the addresses nothing may ever
//! reach (link-local ranges and cloud metadata services).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Url;

/// One allowed host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// exact host, any port
    Host(String),
    /// exact host and port
    HostPort(String, u16),
    /// `*.example.com`: any subdomain (not the apex)
    Suffix(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(Vec<Pattern>);

/// The placeholder a manifest uses for the configured base URL's host.
pub const BASE_URL: &str = "$base_url";

impl AllowedHosts {
    /// Resolve a manifest's list against the configured base URL.
    pub fn resolve(manifest: &[String], base_url: Option<&Url>) -> Result<Self, String> {
        let mut out = Vec::new();
        for entry in manifest {
            let entry = entry.trim().to_ascii_lowercase();
            if entry == BASE_URL {
                if let Some(u) = base_url {
                    let host = u.host_str().ok_or_else(|| format!("base URL {u} has no host"))?;
                    out.push(Pattern::HostPort(host.to_owned(), u.port_or_known_default().unwrap_or(443)));
                }
                continue;
            }
            if entry.is_empty() || entry.contains('/') || entry.contains('@') {
                return Err(format!("\"{entry}\" is not a host name"));
            }
            if let Some(rest) = entry.strip_prefix("*.") {
                out.push(Pattern::Suffix(format!(".{rest}")));
            } else if let Some((h, p)) = entry.rsplit_once(':').filter(|(h, _)| !h.contains(':') || h.starts_with('['))
            {
                let port = p.parse().map_err(|_| format!("\"{entry}\" has an invalid port"))?;
                out.push(Pattern::HostPort(h.to_owned(), port));
            } else {
                out.push(Pattern::Host(entry));
            }
        }
        Ok(Self(out))
    }

    /// Whether `url` may be requested. Only http and https.
    pub fn allows(&self, url: &Url) -> bool {
        if !matches!(url.scheme(), "http" | "https") {
            return false;
        }
        let Some(host) = url.host_str() else { return false };
        let host = host.to_ascii_lowercase();
        let port = url.port_or_known_default();
        self.0.iter().any(|p| match p {
            Pattern::Host(h) => *h == host,
            Pattern::HostPort(h, pt) => *h == host && Some(*pt) == port,
            Pattern::Suffix(s) => host.ends_with(s.as_str()),
        })
    }
}

/// Why `ip` may never be reached: link-local ranges (where cloud metadata services live) and the
/// metadata addresses clouds use outside them.
pub fn forbidden_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_link_local() {
                Some("a link-local address (cloud metadata services live there)")
            } else if v4 == Ipv4Addr::new(100, 100, 100, 200) {
                Some("a cloud metadata address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_ip(IpAddr::V4(v4));
            }
            if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address (cloud metadata services live there)")
            } else if v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata address")
            } else {
                None
            }
        }
    }
}

/// Why `url` may never be reached, when its host is an IP address that is forbidden (host names
/// are checked when they resolve, see [`GuardedResolver`]).
pub fn forbidden_destination(url: &Url) -> Option<&'static str> {
    match url.host()? {
        url::Host::Ipv4(v4) => forbidden_ip(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => forbidden_ip(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn base_url_placeholder_allows_exactly_that_host_and_port() {
        let base = url("http://127.0.0.1:9000/v1");
        let a = AllowedHosts::resolve(&["$base_url".into()], Some(&base)).unwrap();
        assert!(a.allows(&url("http://127.0.0.1:9000/v1/chat/completions")));
        assert!(!a.allows(&url("http://127.0.0.1:9001/v1/chat/completions")));
        assert!(!a.allows(&url("http://127.0.0.2:9000/")));
        assert!(!a.allows(&url("file:///etc/passwd")));
    }

    #[test]
    fn named_hosts_and_wildcards() {
        let a =
            AllowedHosts::resolve(&["api.groq.com".into(), "*.googleapis.com".into(), "localhost:11434".into()], None)
                .unwrap();
        assert!(a.allows(&url("https://api.groq.com/openai/v1/models")));
        assert!(a.allows(&url("https://API.GROQ.COM/x")));
        assert!(a.allows(&url("https://generativelanguage.googleapis.com/v1beta")));
        assert!(!a.allows(&url("https://googleapis.com/")));
        assert!(!a.allows(&url("https://api.groq.com.evil.example/")));
        assert!(a.allows(&url("http://localhost:11434/api/tags")));
        assert!(!a.allows(&url("http://localhost:8080/")));
    }

    #[test]
    fn nonsense_entries_are_rejected() {
        assert!(AllowedHosts::resolve(&["http://x/".into()], None).is_err());
        assert!(AllowedHosts::resolve(&["x:notaport".into()], None).is_err());
    }
}
