//! Ingress: the request body, parsed once and validated (see [`crate::wire::chat`]), its JSON
//! shape bounded first (depth, keys, elements; [`crate::wire::shape`]). A large body is parsed
//! with the async worker handed over to other tasks ([`crate::cpu`]).
//!
//! Only bodies declared as JSON reach this step: the edge refuses others with 415, so a web
//! page's cross-origin "simple" request (`text/plain`, forms) never spends the user's quota.

use crate::errors::GatewayError;
use crate::wire::chat::ChatBody;
use crate::wire::shape::ShapeLimits;

pub fn parse<'a>(body: &'a [u8], limits: &ShapeLimits) -> Result<ChatBody<'a>, GatewayError> {
    crate::cpu::run(body.len(), || ChatBody::parse_with(body, limits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorKind;

    #[test]
    fn bodies_are_bounded_by_the_configured_shape() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"a":[[[[1]]]]}"#;
        assert!(parse(body, &ShapeLimits::default()).is_ok());
        let tight = ShapeLimits { max_depth: 3, ..ShapeLimits::default() };
        assert_eq!(parse(body, &tight).unwrap_err().kind, ErrorKind::RequestTooComplex);
    }
}
