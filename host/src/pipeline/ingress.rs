//! Ingress: the request body, parsed once and validated (see [`crate::wire::chat`]).
//!
//! The body is read as JSON whatever `Content-Type` says (as OpenAI does: `curl -d` sends
//! form encoding); when it does not parse, the error mentions a non-JSON content type.

use http::HeaderMap;

use crate::errors::{ErrorKind, GatewayError};
use crate::wire::chat::ChatBody;

pub fn parse<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<ChatBody<'a>, GatewayError> {
    ChatBody::parse(body).map_err(|mut e| {
        if e.kind == ErrorKind::InvalidJson
            && let Some(ct) = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
            && !ct.to_ascii_lowercase().contains("json")
        {
            e.message = format!("{} (the request was sent as '{ct}'; send application/json)", e.message).into();
        }
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_read_whatever_the_content_type() {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#;
        assert!(parse(&h, body).is_ok());
        let err = parse(&h, b"model=m").unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidJson);
        assert!(err.message.contains("application/x-www-form-urlencoded"), "{}", err.message);
    }
}
