//! Accounts: the credentials of each provider (from the vault and the configuration), how
//! requests rotate over them, and their health.

pub mod account;
pub mod audit;
pub mod health;
pub mod manage;
pub mod rotation;
pub mod secrets;

pub use account::Account;
pub use health::{AccountHealth, Health, Trouble};
pub use rotation::RecentUse;
pub use secrets::SecretSet;
