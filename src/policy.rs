//! Pure decisions over plain data: what a container's state means and what to do about it.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::targets::ContainerRef;

/// The engine's lifecycle state of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// A state this version does not know (newer engines add some, e.g. `stopping`).
    Other(String),
}

impl Status {
    /// The engine's name of a state, as its API writes it.
    pub fn from_engine(name: &str) -> Status {
        match name {
            "created" => Status::Created,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "restarting" => Status::Restarting,
            "removing" => Status::Removing,
            "exited" => Status::Exited,
            "dead" => Status::Dead,
            other => Status::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
            Status::Other(s) => s,
        })
    }
}

/// The result of the container's HEALTHCHECK, `None` when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    /// The engine's name of a health status; `none` or anything unknown is no health check.
    pub fn from_engine(name: &str) -> Health {
        match name {
            "starting" => Health::Starting,
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            _ => Health::None,
        }
    }
}

/// What a list call tells about a container: enough to know whether it needs a closer look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub container: ContainerRef,
    pub status: Status,
    pub health: Health,
    /// The container whose network namespace it shares (`--network container:X`): X.
    pub network_parent: Option<String>,
    /// Its addresses, one per network it has one on (none while it is stopped).
    pub addresses: Vec<Address>,
    /// It runs in the host's network namespace (`--network host`).
    pub host_network: bool,
}

/// A container's address on one of its networks: where a probe reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The network's name, as `docker network ls` shows it.
    pub network: String,
    pub ip: std::net::IpAddr,
}

/// What an inspect call tells: everything a decision and its record need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub container: ContainerRef,
    pub status: Status,
    pub health: Health,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// Whether the container was ever started (a `created` one that never ran is not ours).
    pub has_run: bool,
    /// When its current or last run started, as the engine wrote it; identifies the run.
    pub started_at: Option<String>,
    /// When its last run ended, for a container that is not running.
    pub finished_at: Option<std::time::SystemTime>,
    /// The engine's own error for the last start, e.g. a missing entrypoint.
    pub error: Option<String>,
    /// The output of the last health check, trimmed, when the container is unhealthy.
    pub health_output: Option<String>,
    /// The container whose network namespace it shares (`--network container:X`): X.
    pub network_parent: Option<String>,
    /// It has a HEALTHCHECK (a created or stopped container shows no health yet).
    pub has_check: bool,
    /// Its addresses, one per network it has one on (none while it is stopped).
    pub addresses: Vec<Address>,
    /// Its probe's last error, while the probe fails (healthther's, not the engine's).
    pub probe_error: Option<String>,
    /// It runs in the host's network namespace (`--network host`).
    pub host_network: bool,
}

/// The container named by a network mode of `container:X` (an id or a name), if it is one.
pub fn network_parent(mode: &str) -> Option<String> {
    mode.strip_prefix("container:")
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

/// What to do about a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Running, healthy or without a healthcheck.
    Fine,
    /// Its health check is still in its start period.
    Wait,
    /// Stopped (exited, dead, or created after having run): start it.
    Start,
    /// Running but unhealthy: restart it.
    Restart,
    /// The engine's own restart policy is at work.
    LeaveToEngine,
    /// Paused, being removed, created and never started, or in a state we do not know: say so,
    /// do not act.
    Report,
}

impl Verdict {
    /// Whether the verdict asks for an action on the container.
    pub fn acts(self) -> bool {
        matches!(self, Verdict::Start | Verdict::Restart)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Fine => "fine",
            Verdict::Wait => "wait",
            Verdict::Start => "start",
            Verdict::Restart => "restart",
            Verdict::LeaveToEngine => "leave to engine",
            Verdict::Report => "report",
        })
    }
}

/// Classifies a container snapshot.
pub fn classify(s: &Snapshot) -> Verdict {
    match s.status {
        Status::Running => match s.health {
            Health::None | Health::Healthy => Verdict::Fine,
            Health::Starting => Verdict::Wait,
            Health::Unhealthy => Verdict::Restart,
        },
        Status::Exited | Status::Dead => Verdict::Start,
        Status::Created if s.has_run => Verdict::Start,
        Status::Restarting => Verdict::LeaveToEngine,
        Status::Created | Status::Paused | Status::Removing | Status::Other(_) => Verdict::Report,
    }
}

/// Whether a listed container may need action, so that only those are inspected: the list call
/// is one per pass for all targets, an inspect is one per container.
pub fn needs_inspection(l: &Listed) -> bool {
    !(l.status == Status::Running && matches!(l.health, Health::None | Health::Healthy))
}

/// How long the run in `s` lasted: until it ended, or until `now` if it still runs.
pub fn ran_for(s: &Snapshot, now: SystemTime) -> Duration {
    let started = s
        .started_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    let ended = match s.status {
        Status::Running => now,
        _ => s.finished_at.unwrap_or(now),
    };
    started
        .and_then(|start| ended.duration_since(start).ok())
        .unwrap_or_default()
}

/// A short human description of what was seen, e.g. `exited (code 137, OOM-killed)`.
pub fn describe(s: &Snapshot) -> String {
    let mut out = s.status.to_string();
    let mut details = Vec::new();
    match s.status {
        Status::Exited | Status::Dead => {
            if let Some(code) = s.exit_code {
                details.push(format!("code {code}"));
            }
            if s.oom_killed {
                details.push("OOM-killed".to_string());
            }
        }
        Status::Created if !s.has_run => details.push("never started".to_string()),
        Status::Running if s.health != Health::None => {
            let health = match s.health {
                Health::Starting => "health: starting",
                Health::Healthy => "healthy",
                _ => "unhealthy",
            };
            details.push(health.to_string());
        }
        _ => {}
    }
    if let Some(err) = &s.error {
        details.push(format!("engine error: {err}"));
    }
    if !details.is_empty() {
        out.push_str(&format!(" ({})", details.join(", ")));
    }
    if let Some(error) = &s.probe_error {
        out.push_str(&format!("; probe failing: {error}"));
    }
    if let (Health::Unhealthy, Some(output)) = (s.health, &s.health_output) {
        out.push_str(&format!("; last check said: {output}"));
    }
    out
}

/// A docker container summary's `Status` text ("Up 3 minutes (unhealthy)") carries the health on
/// engines whose list reply has no health field (API < 1.52).
pub fn health_from_status_text(text: &str) -> Health {
    if text.contains("(unhealthy)") {
        Health::Unhealthy
    } else if text.contains("(health: starting)") {
        Health::Starting
    } else if text.contains("(healthy)") {
        Health::Healthy
    } else {
        Health::None
    }
}

/// What healthther does about a target's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Manual,
    /// Detect, log and record, never act: to try healthther on a live system.
    Observe,
}

impl Mode {
    pub fn parse(raw: &str) -> Option<Mode> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Mode::Auto),
            "manual" => Some(Mode::Manual),
            "observe" => Some(Mode::Observe),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(status: Status, health: Health) -> Snapshot {
        Snapshot {
            container: ContainerRef {
                id: "id".into(),
                name: "nodo_1".into(),
                ..ContainerRef::default()
            },
            status,
            health,
            exit_code: None,
            oom_killed: false,
            has_run: true,
            started_at: None,
            finished_at: None,
            error: None,
            health_output: None,
            network_parent: None,
            has_check: false,
            addresses: Vec::new(),
            probe_error: None,
            host_network: false,
        }
    }

    #[test]
    fn classifies_every_state() {
        use Health as H;
        use Status as S;
        let cases = [
            (S::Running, H::None, true, Verdict::Fine),
            (S::Running, H::Healthy, true, Verdict::Fine),
            (S::Running, H::Starting, true, Verdict::Wait),
            (S::Running, H::Unhealthy, true, Verdict::Restart),
            (S::Exited, H::None, true, Verdict::Start),
            (S::Exited, H::Unhealthy, true, Verdict::Start),
            (S::Dead, H::None, true, Verdict::Start),
            (S::Created, H::None, true, Verdict::Start),
            (S::Created, H::None, false, Verdict::Report),
            (S::Restarting, H::None, true, Verdict::LeaveToEngine),
            (S::Paused, H::Unhealthy, true, Verdict::Report),
            (S::Removing, H::None, true, Verdict::Report),
            (S::Other("stopping".into()), H::None, true, Verdict::Report),
        ];
        for (status, health, has_run, want) in cases {
            let mut s = snap(status.clone(), health);
            s.has_run = has_run;
            assert_eq!(
                classify(&s),
                want,
                "{status:?} {health:?} has_run={has_run}"
            );
        }
    }

    #[test]
    fn only_running_and_well_containers_skip_inspection() {
        let cases = [
            (Status::Running, Health::None, false),
            (Status::Running, Health::Healthy, false),
            (Status::Running, Health::Starting, true),
            (Status::Running, Health::Unhealthy, true),
            (Status::Exited, Health::None, true),
            (Status::Created, Health::None, true),
            (Status::Restarting, Health::None, true),
            (Status::Paused, Health::None, true),
        ];
        for (status, health, want) in cases {
            let l = Listed {
                container: snap(Status::Running, Health::None).container,
                status: status.clone(),
                health,
                network_parent: None,
                addresses: Vec::new(),
                host_network: false,
            };
            assert_eq!(needs_inspection(&l), want, "{status:?} {health:?}");
        }
    }

    #[test]
    fn describes_what_was_seen() {
        let mut killed = snap(Status::Exited, Health::None);
        killed.exit_code = Some(137);
        killed.oom_killed = true;
        assert_eq!(describe(&killed), "exited (code 137, OOM-killed)");

        let mut sick = snap(Status::Running, Health::Unhealthy);
        sick.health_output = Some("db unreachable".into());
        assert_eq!(
            describe(&sick),
            "running (unhealthy); last check said: db unreachable"
        );

        let mut fresh = snap(Status::Created, Health::None);
        fresh.has_run = false;
        assert_eq!(describe(&fresh), "created (never started)");

        assert_eq!(describe(&snap(Status::Paused, Health::None)), "paused");
    }

    #[test]
    fn measures_a_run() {
        let start = humantime::parse_rfc3339_weak("2026-11-25T06:00:00.5Z").unwrap();
        let mut s = snap(Status::Exited, Health::None);
        s.started_at = Some("2026-11-25T06:00:00.5Z".into());
        s.finished_at = Some(start + Duration::from_secs(7));
        assert_eq!(
            ran_for(&s, start + Duration::from_secs(100)),
            Duration::from_secs(7)
        );
        s.status = Status::Running;
        assert_eq!(
            ran_for(&s, start + Duration::from_secs(100)),
            Duration::from_secs(100)
        );
        s.started_at = None;
        assert_eq!(ran_for(&s, start), Duration::ZERO);
    }

    #[test]
    fn reads_health_from_status_text() {
        let cases = [
            ("Up 3 minutes (unhealthy)", Health::Unhealthy),
            ("Up 2 seconds (health: starting)", Health::Starting),
            ("Up 1 hour (healthy)", Health::Healthy),
            ("Up 1 hour", Health::None),
            ("Exited (137) 3 seconds ago", Health::None),
        ];
        for (text, want) in cases {
            assert_eq!(health_from_status_text(text), want, "{text}");
        }
    }
}
