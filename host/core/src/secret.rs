//! Secrets that never print: `Debug` shows a mask (`gsk_…a1b2`), the value only through
//! [`SecretString::expose`]. Read from configuration with `${ENV_VAR}` interpolation.

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Deserializer};

use crate::interp::{expand, from_env};

/// A secret from configuration (interpolated). Debug and Display print a mask, never the value.
#[derive(Clone)]
pub struct SecretString(std::sync::Arc<SecretBox<str>>);

impl SecretString {
    pub fn new(value: &str) -> Self {
        Self(std::sync::Arc::new(SecretBox::new(value.into())))
    }

    /// The secret itself: only for attaching to an upstream request or comparing.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// `gsk_…a1b2`: enough to tell keys apart, not enough to use one.
    pub fn masked(&self) -> String {
        mask(self.expose())
    }
}

/// Mask a secret for display: a short prefix up to the first `_`/`-` (at most 4 chars) and the
/// last 4 characters; short secrets are fully masked.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "****".to_owned();
    }
    let prefix_len = chars.iter().take(5).position(|c| *c == '_' || *c == '-').map_or(3, |p| p + 1).min(4);
    let prefix: String = chars[..prefix_len].iter().collect();
    let suffix: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}…{suffix}")
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString({})", self.masked())
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        let value = expand(&raw, from_env).map_err(serde::de::Error::custom)?;
        if value.trim().is_empty() {
            return Err(serde::de::Error::custom("the key is empty"));
        }
        Ok(SecretString::new(&value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = SecretString::new("gsk_abcdefghijklmnopa1b2");
        assert_eq!(format!("{s:?}"), "SecretString(gsk_…a1b2)");
        assert_eq!(s.masked(), "gsk_…a1b2");
        assert_eq!(mask("short"), "****");
        assert_eq!(mask("sk-or-v1-0123456789abcdef"), "sk-…cdef");
    }
}
