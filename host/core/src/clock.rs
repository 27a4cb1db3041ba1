//! The one wall clock: Unix time in milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds (0 before 1970, saturating far in the future).
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// A wall-clock time as Unix milliseconds (0 before 1970, saturating far in the future).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
