//! `AllowedHosts::resolve` + `allows` on arbitrary manifest lists, base URLs and request URLs
//! (parsed with `url::Url`, as the host does).
//!
//! Properties: no panic; a list allows a URL exactly when one of its entries alone does; a URL
//! allowed by a plain host entry has exactly that host; by `host:port`, that host and port; by
//! `*.suffix`, a host under the suffix (not the apex); by `$base_url`, the base URL's host and
//! port; nothing but http and https is ever allowed; a link-local or metadata address is always
//! refused by `forbidden_destination`.

#![no_main]

use arbitrary::Arbitrary;
use freeway_core::hosts::{AllowedHosts, forbidden_destination};
use libfuzzer_sys::fuzz_target;
use url::Url;

#[derive(Debug, Arbitrary)]
struct Input {
    entries: Vec<String>,
    base_url: Option<String>,
    urls: Vec<String>,
    /// hosts pasted into URLs, so entries and URLs meet more often
    hosts: Vec<(String, Option<u16>, bool)>,
}

/// What one manifest entry means, as the manifest format documents it.
fn expect_allowed(entry: &str, base: Option<&Url>, url: &Url) {
    let entry = entry.trim().to_ascii_lowercase();
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = url.port_or_known_default();
    assert!(matches!(url.scheme(), "http" | "https"), "{url} allowed by {entry:?}");
    if entry == "$base_url" {
        let base = base.expect("$base_url allows nothing without a base URL");
        assert_eq!(Some(host.as_str()), base.host_str(), "{url} allowed by $base_url {base}");
        assert_eq!(port, Some(base.port_or_known_default().unwrap_or(443)), "{url} allowed by $base_url {base}");
    } else if let Some(suffix) = entry.strip_prefix("*.") {
        assert!(host.ends_with(&format!(".{suffix}")), "{url} allowed by {entry:?}");
    } else if let Some((h, p)) = entry.rsplit_once(':').filter(|(h, _)| !h.contains(':') || h.starts_with('[')) {
        assert_eq!(host, h, "{url} allowed by {entry:?}");
        assert_eq!(port, p.parse::<u16>().ok(), "{url} allowed by {entry:?}");
    } else {
        assert_eq!(host, entry, "{url} allowed by {entry:?}");
    }
}

fuzz_target!(|input: Input| {
    let base = input.base_url.as_deref().and_then(|b| Url::parse(b).ok());
    let mut urls: Vec<Url> = input.urls.iter().filter_map(|u| Url::parse(u).ok()).collect();
    for (h, port, https) in &input.hosts {
        let scheme = if *https { "https" } else { "http" };
        let text = match port {
            Some(p) => format!("{scheme}://{h}:{p}/v1"),
            None => format!("{scheme}://{h}/v1"),
        };
        urls.extend(Url::parse(&text).ok());
    }
    if let Some(b) = &base {
        urls.push(b.clone());
    }
    let Ok(all) = AllowedHosts::resolve(&input.entries, base.as_ref()) else { return };
    let singles: Vec<(&String, AllowedHosts)> = input
        .entries
        .iter()
        .map(|e| {
            let one = AllowedHosts::resolve(std::slice::from_ref(e), base.as_ref()).expect("part of a valid list");
            (e, one)
        })
        .collect();
    for url in &urls {
        // whatever the list says, a link-local or metadata address is never reached
        if let Some(url::Host::Ipv4(ip)) = url.host()
            && (ip.is_link_local() || ip == std::net::Ipv4Addr::new(100, 100, 100, 200))
        {
            assert!(forbidden_destination(url).is_some(), "{url} is not refused");
        }
        let allowed = all.allows(url);
        let by: Vec<&String> = singles.iter().filter(|(_, one)| one.allows(url)).map(|(e, _)| *e).collect();
        assert_eq!(allowed, !by.is_empty(), "{url}: the list and its entries disagree");
        for entry in by {
            expect_allowed(entry, base.as_ref(), url);
        }
    }
});
