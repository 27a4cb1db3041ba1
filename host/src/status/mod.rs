//! The running gateway's state in one view: per provider and account (health, quota, latency,
//! last error), per component (version, loads, refusals) and the server's own (uptime,
//! configuration generation, stores). Served at `GET /admin/status`; `freeway status` shows it.

mod collect;
pub mod view;

pub use collect::collect;
pub use view::Status;
