//! Accounts: the credentials of each provider (from the vault and the configuration), how
//! requests rotate over them, and their health.

pub mod audit;
pub mod health;
pub mod recheck;
pub mod rotation;

pub use health::{AccountHealth, Health, Trouble};
pub use rotation::RecentUse;
