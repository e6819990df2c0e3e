//! healthther: watches named Docker containers and revives them when they die or turn unhealthy.
//!
//! Data flows `config` → `audit` (logging) → `watch`, which reads the engine through `engine`,
//! decides with `policy` and matches names with `targets`.

pub mod audit;
pub mod config;
pub mod engine;
pub mod policy;
pub mod targets;
pub mod watch;
