//! Bounds on the shape of a JSON body, checked in one linear pass before anything is parsed:
//! nesting depth, keys per object, elements per array. A body past a bound is refused with a
//! clear 400 naming the bound, so no later step (parsing, token counting, a provider
//! component) ever sees a pathological document.
//!
//! The scan does not validate JSON (the parser that follows does); it only tracks strings (with
//! their escapes) and the structural characters outside them, so its cost is one read of the
//! bytes, whatever their shape.

use crate::errors::{ErrorKind, GatewayError};

/// The bounds, from `[server]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeLimits {
    pub max_depth: usize,
    pub max_object_keys: usize,
    pub max_array_items: usize,
}

impl Default for ShapeLimits {
    fn default() -> Self {
        Self { max_depth: 64, max_object_keys: 4096, max_array_items: 200_000 }
    }
}

/// Check `bytes` against `limits`.
pub fn check(bytes: &[u8], limits: &ShapeLimits) -> Result<(), GatewayError> {
    // per open container: (is an object, commas seen)
    let mut stack: Vec<(bool, usize)> = Vec::with_capacity(16);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = skip_string(bytes, i + 1);
                continue;
            }
            open @ (b'{' | b'[') => {
                if stack.len() >= limits.max_depth {
                    return Err(too_complex(format!(
                        "The request body nests JSON deeper than {} levels.",
                        limits.max_depth
                    )));
                }
                stack.push((open == b'{', 0));
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                    let (is_object, commas) = *top;
                    if is_object && commas >= limits.max_object_keys {
                        return Err(too_complex(format!(
                            "A JSON object in the request body has more than {} keys.",
                            limits.max_object_keys
                        )));
                    }
                    if !is_object && commas >= limits.max_array_items {
                        return Err(too_complex(format!(
                            "A JSON array in the request body has more than {} elements.",
                            limits.max_array_items
                        )));
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Index just past the string that starts at `from` (just after its opening quote); the end of
/// the input when it is not closed (the parser reports that).
fn skip_string(bytes: &[u8], mut from: usize) -> usize {
    while let Some(off) = memchr::memchr2(b'"', b'\\', &bytes[from..]) {
        let at = from + off;
        if bytes[at] == b'"' {
            return at + 1;
        }
        // an escape: skip the backslash and the character it escapes
        from = at + 2;
        if from >= bytes.len() {
            return bytes.len();
        }
    }
    bytes.len()
}

fn too_complex(message: String) -> GatewayError {
    GatewayError::new(ErrorKind::RequestTooComplex, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: ShapeLimits = ShapeLimits { max_depth: 4, max_object_keys: 3, max_array_items: 5 };

    #[test]
    fn ordinary_bodies_pass() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"a \"quoted\" {[,,,]} text\\"}],"n":1}"#;
        assert!(check(body, &ShapeLimits::default()).is_ok());
        assert!(check(br#"{"a":{"b":[1,2,3,4,5]}}"#, &L).is_ok());
    }

    #[test]
    fn depth_beyond_the_bound_is_a_clear_client_error() {
        assert!(check(br#"{"a":{"b":{"c":{"d":1}}}}"#, &L).is_ok());
        let err = check(br#"{"a":{"b":{"c":{"d":{"e":1}}}}}"#, &L).unwrap_err();
        assert_eq!(err.kind, ErrorKind::RequestTooComplex);
        assert!(err.message.contains("deeper than 4"), "{}", err.message);
        let deep = "[".repeat(10_000);
        assert!(check(deep.as_bytes(), &ShapeLimits::default()).is_err());
    }

    #[test]
    fn keys_and_elements_beyond_the_bound_are_refused() {
        assert!(check(br#"{"a":1,"b":2,"c":3}"#, &L).is_ok());
        let err = check(br#"{"a":1,"b":2,"c":3,"d":4}"#, &L).unwrap_err();
        assert!(err.message.contains("more than 3 keys"), "{}", err.message);
        let err = check(b"[1,2,3,4,5,6]", &L).unwrap_err();
        assert!(err.message.contains("more than 5 elements"), "{}", err.message);
        // commas inside strings are text, not elements
        assert!(check(br#"["a,b,c,d,e,f,g"]"#, &L).is_ok());
    }

    #[test]
    fn a_hundred_thousand_keys_are_refused_in_linear_time() {
        let mut body = String::from("{");
        for i in 0..100_000 {
            body.push_str(&format!("\"k{i}\":1,"));
        }
        body.push_str("\"end\":0}");
        let started = std::time::Instant::now();
        assert!(check(body.as_bytes(), &ShapeLimits::default()).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn unterminated_strings_and_stray_brackets_do_not_panic() {
        for body in [&b"\"abc"[..], b"\"ab\\", b"]]]]", b"}{", b"\\", b"{\"a\":\"\\"] {
            let _ = check(body, &L);
        }
    }
}
