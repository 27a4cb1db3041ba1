//! `${ENV_VAR}` interpolation inside configuration strings (the expansion itself and the secret
//! strings that never print live in [`freeway_core`]).
//!
//! `${NAME}` is replaced by the variable's value; `${NAME:-fallback}` uses the fallback when the
//! variable is unset or empty; `$$` is a literal `$`. An unset variable without a fallback is an
//! error that names it (and, through the TOML reader, the file, line and field).

use serde::{Deserialize, Deserializer};

pub use freeway_core::interp::{expand, from_env};
pub use freeway_core::secret::{SecretString, mask};

/// A configuration string after `${ENV_VAR}` interpolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolated(pub String);

impl<'de> Deserialize<'de> for Interpolated {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand(&raw, from_env).map(Interpolated).map_err(serde::de::Error::custom)
    }
}

/// A path after `${ENV_VAR}` interpolation (`providers_dir = "${HOME}/freeway/providers"`).
pub fn path<'de, D: Deserializer<'de>>(d: D) -> Result<std::path::PathBuf, D::Error> {
    let raw = String::deserialize(d)?;
    expand(&raw, from_env).map(std::path::PathBuf::from).map_err(serde::de::Error::custom)
}

/// Paths after `${ENV_VAR}` interpolation.
/// [`path`] for an optional field.
pub fn path_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<std::path::PathBuf>, D::Error> {
    path(d).map(Some)
}

pub fn paths<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<std::path::PathBuf>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|raw| expand(raw, from_env).map(std::path::PathBuf::from).map_err(serde::de::Error::custom))
        .collect()
}

impl std::ops::Deref for Interpolated {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}
