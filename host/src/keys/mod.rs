//! Virtual client keys: made by `freeway keys` or the admin API, stored hashed in the usage
//! store (shared by every gateway on the database), held in memory by each gateway
//! ([`ring::KeyRing`]) and checked there on every request: standing (expired, revoked), model
//! allow-list ([`allow`]), and the key's own limits, counted by the quota ledger in a pool of
//! the key's own (in Redis when the ledger is), with days and months in `[keys] timezone`.

pub mod allow;
pub mod budget;
pub mod manage;
pub mod record;
pub mod ring;
pub mod secret;
pub mod view;

pub use record::{KeyDoc, KeyLimits, KeyRow, VirtualKey};
pub use ring::{KeyRing, Lookup};
