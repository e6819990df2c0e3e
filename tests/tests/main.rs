//! Integration tests: the real binary against the real Docker engine. One test binary, a module
//! per area.

mod harness;

mod backoff;
mod chat;
mod cli;
mod dependents;
mod faults;
mod hardening;
mod hostile;
mod identity;
mod labels;
mod lifecycle;
mod manual;
mod notify;
mod operator;
mod podman;
mod probes;
mod proxies;
mod restarts;
mod revive;
mod scale;
mod scope;
mod sidecar;
mod suite;
mod swarm;
mod tls;
