//! The request id: what the client sent in `x-request-id` when it is sane (1 to 128 visible
//! ASCII characters), otherwise 32 random hex digits. Every response carries it back in
//! `x-request-id`; the access log line and later traces name the request by it.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client.
pub const MAX_LEN: usize = 128;

/// A request's id, valid as a header value and safe to print (visible ASCII only).
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id the client sent, when it is sane; a fresh one otherwise.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers.get(&HEADER).filter(|v| sane(v.as_bytes())).map_or_else(Self::generate, |v| Self(v.clone()))
    }

    /// 16 random bytes in hex.
    pub fn generate() -> Self {
        let text = format!("{:032x}", rand::random::<u128>());
        // hex digits are always a valid header value
        Self(HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).unwrap_or(HeaderValue::from_static("-")))
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("-")
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// 1 to 128 visible ASCII characters (no spaces, no control characters): nothing that could
/// break a log line or a header.
pub fn sane(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_bytes(value).unwrap());
        h
    }

    #[test]
    fn a_sane_client_id_is_kept_as_sent() {
        for ok in ["abc", "req-123_XYZ.7", "0f8fad5b-d9cb-469f-a165-70867728950e", "a=b;c/d:{e}"] {
            assert_eq!(RequestId::from_headers(&headers(ok.as_bytes())).as_str(), ok);
        }
        let longest = "x".repeat(MAX_LEN);
        assert_eq!(RequestId::from_headers(&headers(longest.as_bytes())).as_str(), longest);
    }

    #[test]
    fn anything_else_gets_a_fresh_id() {
        let too_long = "x".repeat(MAX_LEN + 1);
        for bad in [&b""[..], b"has space", b"tab\there", too_long.as_bytes(), "caf\u{e9}".as_bytes()] {
            assert!(!sane(bad), "{bad:?}");
            let id = RequestId::from_headers(&headers(bad));
            assert_eq!(id.as_str().len(), 32, "{bad:?} -> {id}");
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert!(!sane(b"\x7f") && !sane(b"nul\0"));
        let none = RequestId::from_headers(&HeaderMap::new());
        assert_eq!(none.as_str().len(), 32);
    }

    #[test]
    fn generated_ids_differ() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert!(sane(a.as_str().as_bytes()));
    }
}
