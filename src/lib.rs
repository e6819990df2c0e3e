//! healthther: watches named Docker containers and revives them when they die or turn unhealthy.
//!
//! Data flows `config` → `audit` (logging) → `watch`, which reads the engine through `engine`,
//! decides with `policy`, matches names with `targets`, and in manual mode asks the operator
//! (`prompt` decides, `control` carries the terminal and the control socket). `tap` lets every
//! record out to `metrics` and `notify`, whose webhooks go through `http_client`. `slots`
//! bounds the connections of the control socket and the metrics listener.

pub mod audit;
pub mod backoff;
pub mod config;
pub mod control;
pub mod engine;
pub mod errors;
pub mod escape;
pub mod host;
pub mod http_client;
pub mod metrics;
pub mod notify;
pub mod overrides;
pub mod policy;
pub mod probe;
pub mod prompt;
pub mod quota;
pub mod recreate;
pub mod slots;
pub mod state;
pub mod tap;
pub mod targets;
pub mod watch;
