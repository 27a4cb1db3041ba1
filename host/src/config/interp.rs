//! `${ENV_VAR}` interpolation inside configuration strings, and secret strings that never print.
//!
//! `${NAME}` is replaced by the variable's value; `${NAME:-fallback}` uses the fallback when the
//! variable is unset or empty; `$$` is a literal `$`. An unset variable without a fallback is an
//! error that names it (and, through the TOML reader, the file, line and field).

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Deserializer};

/// Expand `${VAR}` references with `lookup`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| format!("unclosed `${{` in \"{input}\""))?;
            let expr = &body[..end];
            let (name, fallback) = match expr.split_once(":-") {
                Some((n, f)) => (n, Some(f)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{expr}}}` is not a valid environment variable reference"));
            }
            match (lookup(name).filter(|v| !v.is_empty()), fallback) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(f)) => out.push_str(f),
                (None, None) => return Err(format!("environment variable {name} is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A configuration string after `${ENV_VAR}` interpolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolated(pub String);

impl<'de> Deserialize<'de> for Interpolated {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand(&raw, from_env).map(Interpolated).map_err(serde::de::Error::custom)
    }
}

impl std::ops::Deref for Interpolated {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

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

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-123".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_and_fallbacks() {
        assert_eq!(expand("Bearer ${KEY}", env).unwrap(), "Bearer sk-123");
        assert_eq!(expand("${MISSING:-dflt}/x", env).unwrap(), "dflt/x");
        assert_eq!(expand("${EMPTY:-dflt}", env).unwrap(), "dflt");
        assert_eq!(expand("cost $$5 and $x", env).unwrap(), "cost $5 and $x");
        assert_eq!(expand("plain", env).unwrap(), "plain");
    }

    #[test]
    fn missing_variable_is_named() {
        let err = expand("${NOPE}", env).unwrap_err();
        assert!(err.contains("NOPE"), "{err}");
        assert!(expand("${unclosed", env).is_err());
        assert!(expand("${bad name}", env).is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = SecretString::new("gsk_abcdefghijklmnopa1b2");
        assert_eq!(format!("{s:?}"), "SecretString(gsk_…a1b2)");
        assert_eq!(s.masked(), "gsk_…a1b2");
        assert_eq!(mask("short"), "****");
        assert_eq!(mask("sk-or-v1-0123456789abcdef"), "sk-…cdef");
    }
}
