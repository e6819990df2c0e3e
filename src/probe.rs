//! HTTP and TCP probes, declared by a target's labels, for images that have no HEALTHCHECK:
//! `spec` reads the labels (plain data, no I/O), `http` writes an HTTP probe's request and reads
//! its answer's head (no I/O either), `run` carries one probe out. When to probe and what a
//! failure means are the watch core's (`watch/core/probes.rs`).

use std::time::Duration;

pub mod http;
pub mod run;
pub mod spec;

pub use self::run::run;
pub use self::spec::parse;

/// A container's probe, as its labels declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub kind: Kind,
    /// The host as written (`http://web:8080/`), resolved as written; `None` when the label
    /// leaves it empty (`http://:8080/`): the container's own address on a shared network.
    pub host: Option<String>,
    pub port: u16,
    /// Between the starts of two probes.
    pub interval: Duration,
    /// How long one probe may take, connection included.
    pub timeout: Duration,
    /// Failures in a row that make it unhealthy.
    pub retries: u32,
    /// After each start, failures count only once this has passed.
    pub start_period: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Healthy when a connection opens.
    Tcp,
    /// Healthy on a 2xx or 3xx answer to `GET path`. Over TLS (`https`), the certificate is
    /// checked only when `verify` (`healthther.probe-tls-verify=true`).
    Http {
        tls: bool,
        verify: bool,
        /// Starts with `/`; the query included.
        path: String,
    },
}

/// Why a probe failed: the audit record's `probe_error` and the status row say it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// An HTTP answer outside 2xx and 3xx.
    #[error("HTTP {0}")]
    Status(u16),
    /// No answer (or no connection) within the timeout.
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("connection refused")]
    Refused,
    /// The host name did not resolve from where healthther runs. Not probed, so not the
    /// container's failure either (a compose service's name, with healthther on the host).
    #[error("cannot resolve {host}: {error}")]
    Resolve { host: String, error: String },
    /// The host written in the label is not the container: none of its addresses is one of
    /// the container's. Not probed, so not the container's failure.
    #[error("{host} is not {container}: the probe connects only to the container's own addresses")]
    NotTheContainer { host: String, container: String },
    /// The connection closed before an answer, was reset, the TLS handshake or the HTTP
    /// answer failed: what the error said, short.
    #[error("{0}")]
    Other(String),
}
