//! The events the core takes: what happened to a container, in the core's own words. The engine
//! adapter translates its event stream into these.

use std::time::SystemTime;

use crate::policy::Health;
use crate::targets::ContainerRef;

/// What happened to a container, from the engine's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The container as it was named and labelled when the event happened.
    pub container: ContainerRef,
    /// When the engine says it happened.
    pub time: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Create,
    Start,
    Die,
    Oom,
    /// A signal sent through the API (`docker kill`, or the first step of `docker stop`).
    Kill {
        signal: Option<i32>,
    },
    Stop,
    Health(Health),
    /// A health check ran, and the event does not say with what result. Podman sends
    /// `health_status` after every check, with the status in a field of its own that holds the
    /// status from *before* the check (Podman 4.3): only a look tells.
    HealthChecked,
    Destroy,
    Rename,
    /// A network was connected to it or disconnected from it (`docker network connect`): its
    /// addresses changed while it ran. The event names it by its id alone.
    Network,
    Other,
}
