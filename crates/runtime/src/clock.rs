//! The clock, read here and nowhere below (the core takes time as an
//! argument), and cycle ids.

use std::time::SystemTime;

use steward_core::time::{format_rfc3339, UnixMs};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> UnixMs {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A cycle id: time-sortable and unique (`20261123T134400123Z-9f3a`).
pub fn cycle_id(now: UnixMs) -> String {
    use std::hash::{BuildHasher, Hasher};
    let stamp: String = format_rfc3339(now).chars().filter(char::is_ascii_alphanumeric).collect();
    // RandomState is seeded per process: enough to tell apart two cycles in
    // one millisecond (which the lock already prevents on one target).
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("{stamp}-{:04x}", h.finish() & 0xffff)
}
