//! A virtual key's secret: `fw-` and 43 characters of base62 (256 bits from the OS's random
//! source), shown once when made. Only its SHA-256 is stored: with that much entropy the hash
//! cannot be reversed, and a hash is not a key (the gateway hashes what it is given).

use sha2::{Digest, Sha256};

/// What every virtual key starts with.
pub const PREFIX: &str = "fw-";
/// Characters after the prefix: 43 × log2(62) ≈ 256 bits.
const BODY: usize = 43;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new secret, or why the OS gave no randomness.
pub fn generate() -> Result<String, String> {
    let mut out = String::with_capacity(PREFIX.len() + BODY);
    out.push_str(PREFIX);
    let mut buf = [0u8; 64];
    while out.len() < PREFIX.len() + BODY {
        getrandom::fill(&mut buf).map_err(|e| format!("no randomness from the OS: {e}"))?;
        // 248 = 4 × 62: bytes at or above it are dropped, so every character is equally likely
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == PREFIX.len() + BODY {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(*b % 62)]));
        }
    }
    Ok(out)
}

/// The SHA-256 of a presented secret: how the key is found, and all that is stored.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The hash as stored (lowercase hex).
pub fn hash_hex(secret: &str) -> String {
    hex::encode(hash(secret))
}

/// `fw-AbCd…wxyz`: enough to tell keys apart in a list, far too little to use.
pub fn hint(secret: &str) -> String {
    let body = secret.strip_prefix(PREFIX).unwrap_or(secret);
    let head: String = body.chars().take(4).collect();
    let tail: String = body.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{PREFIX}{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_long_alphanumeric_and_never_repeat() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("fw-") && a.len() == 46, "{a}");
        assert!(a[3..].bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn every_character_of_the_alphabet_is_used() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.extend(generate().unwrap()[3..].bytes());
        }
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn the_hint_shows_eight_characters_and_the_hash_is_sha256() {
        let s = "fw-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq";
        assert_eq!(hint(s), "fw-ABCD…nopq");
        assert_eq!(hash_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
