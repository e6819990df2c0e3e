//! The Docker engine adapter: the one module that imports bollard. It turns bollard's models into
//! our own small types, so that a change of bollard's API touches this file only.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, ContainerSummary, EventMessage};
use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures_util::{Stream, StreamExt};
use thiserror::Error;

use crate::config::DockerHost;
use crate::policy::{health_from_status_text, Health, Listed, Snapshot, Status};
use crate::targets::ContainerRef;

const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";
/// The engine writes this for a container that never ran.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// Container events that can change whether a target needs us.
const WATCHED_EVENTS: &[&str] = &[
    "create",
    "start",
    "die",
    "oom",
    "kill",
    "stop",
    "health_status",
    "destroy",
    "rename",
];

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {host}: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("{doing}: {}", call_text(.doing, .source))]
    Call {
        doing: String,
        #[source]
        source: BollardError,
    },
    #[error("the Docker engine ended the event stream")]
    StreamEnded,
}

impl EngineError {
    fn call(doing: impl Into<String>) -> impl FnOnce(BollardError) -> EngineError {
        let doing = doing.into();
        move |source| EngineError::Call { doing, source }
    }

    /// The engine's own words for a failed call (what `docker` would print), without our
    /// context.
    pub fn docker_text(&self) -> String {
        match self {
            EngineError::Call { doing, source } => call_text(doing, source),
            other => other.to_string(),
        }
    }

    /// Whether the engine's endpoint refused the call as not allowed (HTTP 401 or 403): a
    /// docker-socket-proxy that does not allow it, or an authorization plugin. Trying again
    /// soon cannot help, and the container is not to blame.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self.status_code(), Some(401 | 403))
    }

    fn status_code(&self) -> Option<u16> {
        match self {
            EngineError::Call {
                source: BollardError::DockerResponseServerError { status_code, .. },
                ..
            } => Some(*status_code),
            _ => None,
        }
    }

    /// Whether the engine answered that the container does not exist (it was removed).
    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404)
    }
}

/// The engine's message when it sent one, else the whole chain of causes on one line.
fn docker_text(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => error_chain(other),
    }
}

/// The engine's words for a failed call; for a refusal (401, 403) one line naming the call
/// and the docker-socket-proxy setting that allows it, instead of the proxy's HTML page.
fn call_text(doing: &str, e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError {
            status_code: code @ (401 | 403),
            ..
        } => format!(
            "permission denied (HTTP {code}): the engine's endpoint does not allow {doing}; \
             behind a docker-socket-proxy allow it with {}",
            proxy_setting(doing)
        ),
        other => docker_text(other),
    }
}

/// The docker-socket-proxy settings that allow a call, by what the call was doing.
fn proxy_setting(doing: &str) -> &'static str {
    if doing.starts_with("starting") {
        "POST=1 and ALLOW_START=1"
    } else if doing.starts_with("stopping") {
        "POST=1 and ALLOW_STOP=1 (or ALLOW_RESTARTS=1)"
    } else if doing.contains("event stream") {
        "EVENTS=1"
    } else {
        "CONTAINERS=1"
    }
}

/// `a: b: c` for an error and its sources, skipping repeats (hyper repeats its cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

/// What happened to a container, from the engine's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub container: ContainerRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Create,
    Start,
    Die,
    Oom,
    Kill,
    Stop,
    Health(Health),
    Destroy,
    Rename,
    Other,
}

impl EventKind {
    fn from_action(action: &str) -> EventKind {
        // health_status actions read "health_status: unhealthy".
        if let Some(h) = action.strip_prefix("health_status:") {
            return match Health::from_engine(h.trim()) {
                Health::None => EventKind::Other,
                h => EventKind::Health(h),
            };
        }
        match action {
            "create" => EventKind::Create,
            "start" => EventKind::Start,
            "die" => EventKind::Die,
            "oom" => EventKind::Oom,
            "kill" => EventKind::Kill,
            "stop" => EventKind::Stop,
            "destroy" => EventKind::Destroy,
            "rename" => EventKind::Rename,
            _ => EventKind::Other,
        }
    }
}

/// A connection to the Docker engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects and negotiates the API version, so engines from 20.10 (API 1.41) to the newest
    /// work. Every request may take up to `request_timeout` (above the stop timeout, since a
    /// restart waits for it).
    pub async fn connect(
        host: &DockerHost,
        request_timeout: Duration,
    ) -> Result<Engine, EngineError> {
        let unreachable = |e: BollardError| EngineError::Unreachable {
            host: host.to_string(),
            reason: match e {
                BollardError::SocketNotFoundError(path) => {
                    format!("no socket at {path} (is the Docker socket mounted, and is the engine running?)")
                }
                other => error_chain(&other),
            },
        };
        let secs = request_timeout.as_secs().max(1);
        let docker = match host {
            DockerHost::Unix(path) => {
                Docker::connect_with_unix(&path.to_string_lossy(), secs, API_DEFAULT_VERSION)
            }
            DockerHost::Tcp(url) => Docker::connect_with_http(url, secs, API_DEFAULT_VERSION),
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        Ok(Engine { docker })
    }

    /// The API version in use after negotiation, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        self.docker.client_version().to_string()
    }

    /// Every container on the engine, running or not, in one call.
    pub async fn list(&self) -> Result<Vec<Listed>, EngineError> {
        self.list_filtered(HashMap::new()).await
    }

    /// Only the containers that may need attention: not running, or running with a health
    /// check that fails or has not passed yet. Two calls, since the engine ANDs different
    /// filter keys; while all is well both answer with (almost) nothing, however many
    /// containers there are.
    pub async fn list_unwell(&self) -> Result<Vec<Listed>, EngineError> {
        let not_running = HashMap::from([(
            "status",
            vec![
                "created",
                "restarting",
                "removing",
                "paused",
                "exited",
                "dead",
            ],
        )]);
        let unhealthy = HashMap::from([("health", vec!["unhealthy", "starting"])]);
        let mut found = self.list_filtered(not_running).await?;
        found.extend(self.list_filtered(unhealthy).await?);
        Ok(found)
    }

    async fn list_filtered(
        &self,
        filters: HashMap<&str, Vec<&str>>,
    ) -> Result<Vec<Listed>, EngineError> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(EngineError::call("listing containers"))?;
        Ok(summaries.into_iter().filter_map(listed).collect())
    }

    /// The container's current state, or `None` if it no longer exists.
    pub async fn inspect(&self, c: &ContainerRef) -> Result<Option<Snapshot>, EngineError> {
        match self.docker.inspect_container(&c.id, None).await {
            Ok(r) => Ok(Some(snapshot(c, r))),
            Err(e) => {
                let err = EngineError::call(format!("inspecting container {}", c.name))(e);
                if err.is_not_found() {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    pub async fn start(&self, c: &ContainerRef) -> Result<(), EngineError> {
        self.docker
            .start_container(&c.id, None)
            .await
            .map_err(EngineError::call(format!("starting container {}", c.name)))
    }

    /// Stops (waiting up to `stop_timeout`, then killing) and starts again. Two calls, not
    /// the engine's restart: both are idempotent, so two healthther replicas acting on the same
    /// unhealthy target at once stop it once and start it once.
    pub async fn restart(
        &self,
        c: &ContainerRef,
        stop_timeout: Duration,
    ) -> Result<(), EngineError> {
        let t = i32::try_from(stop_timeout.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::new().t(t).build();
        self.docker
            .stop_container(&c.id, Some(options))
            .await
            .map_err(EngineError::call(format!("stopping container {}", c.name)))?;
        self.start(c).await
    }

    /// Container events from `since` on, then live. Asking for a moment in the past makes the
    /// engine replay what it buffered, so nothing falls between subscribing and listing.
    pub fn events(
        &self,
        since: SystemTime,
    ) -> impl Stream<Item = Result<Event, EngineError>> + Send + 'static {
        let since = since
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        let filters = HashMap::from([
            ("type", vec!["container"]),
            ("event", WATCHED_EVENTS.to_vec()),
        ]);
        let options = EventsOptionsBuilder::new()
            .since(&since)
            .filters(&filters)
            .build();
        self.docker
            .events(Some(options))
            .filter_map(|item| async move {
                match item {
                    Ok(msg) => event(msg).map(Ok),
                    Err(e) => Some(Err(EngineError::call("reading the event stream")(e))),
                }
            })
    }
}

fn name_of(raw: &str) -> String {
    raw.strip_prefix('/').unwrap_or(raw).to_string()
}

fn listed(s: ContainerSummary) -> Option<Listed> {
    let id = s.id?;
    // A container has one name; older engines also listed link aliases ("/a/b"), never first.
    let name = name_of(s.names.as_deref()?.first()?);
    let service = s
        .labels
        .as_ref()
        .and_then(|l| l.get(COMPOSE_SERVICE_LABEL).cloned());
    // bollard's enums print the engine's own names.
    let status = Status::from_engine(s.state.as_ref().map_or("", |st| st.as_ref()));
    let health = match s.health.and_then(|h| h.status) {
        Some(h) => Health::from_engine(h.as_ref()),
        // Engines before API 1.52 give health only in the status text.
        None => health_from_status_text(s.status.as_deref().unwrap_or("")),
    };
    Some(Listed {
        container: ContainerRef { id, name, service },
        status,
        health,
    })
}

fn snapshot(c: &ContainerRef, r: ContainerInspectResponse) -> Snapshot {
    let state = r.state.unwrap_or_default();
    let status = Status::from_engine(state.status.as_ref().map_or("", |st| st.as_ref()));
    let health_state = state.health.unwrap_or_default();
    let health = Health::from_engine(health_state.status.as_ref().map_or("", |h| h.as_ref()));
    let health_output = health_state
        .log
        .and_then(|log| log.into_iter().last())
        .and_then(|last| last.output)
        .map(|o| o.trim().chars().take(200).collect::<String>())
        .filter(|o| !o.is_empty());
    let has_run = state
        .started_at
        .as_deref()
        .is_some_and(|t| !t.is_empty() && t != ZERO_TIME);
    let name = r
        .name
        .as_deref()
        .map(name_of)
        .unwrap_or_else(|| c.name.clone());
    let service = r
        .config
        .and_then(|cfg| cfg.labels)
        .and_then(|l| l.get(COMPOSE_SERVICE_LABEL).cloned());
    Snapshot {
        container: ContainerRef {
            id: r.id.unwrap_or_else(|| c.id.clone()),
            name,
            service,
        },
        status,
        health,
        exit_code: state.exit_code,
        oom_killed: state.oom_killed.unwrap_or(false),
        has_run,
        started_at: state.started_at.filter(|_| has_run),
        // The engine writes a zero time (year 1) for a container that never stopped; it does
        // not parse, which is what we want.
        finished_at: state
            .finished_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
        error: state.error.filter(|e| !e.is_empty()),
        health_output: if health == Health::Unhealthy {
            health_output
        } else {
            None
        },
    }
}

fn event(msg: EventMessage) -> Option<Event> {
    let actor = msg.actor?;
    let id = actor.id?;
    let attributes = actor.attributes.unwrap_or_default();
    let name = name_of(attributes.get("name")?);
    Some(Event {
        kind: EventKind::from_action(msg.action.as_deref().unwrap_or("")),
        container: ContainerRef {
            id,
            name,
            service: attributes.get(COMPOSE_SERVICE_LABEL).cloned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_actions() {
        let cases = [
            ("die", EventKind::Die),
            (
                "health_status: unhealthy",
                EventKind::Health(Health::Unhealthy),
            ),
            ("health_status: healthy", EventKind::Health(Health::Healthy)),
            (
                "health_status:unhealthy",
                EventKind::Health(Health::Unhealthy),
            ),
            ("exec_start: sh", EventKind::Other),
            ("oom", EventKind::Oom),
        ];
        for (action, want) in cases {
            assert_eq!(EventKind::from_action(action), want, "{action}");
        }
    }

    #[test]
    fn bollard_enums_print_the_engine_names() {
        use bollard::models::{
            ContainerStateStatusEnum as St, ContainerSummaryStateEnum as Su, HealthStatusEnum as H,
        };
        assert_eq!(Status::from_engine(St::EXITED.as_ref()), Status::Exited);
        assert_eq!(
            Status::from_engine(St::RESTARTING.as_ref()),
            Status::Restarting
        );
        assert_eq!(Status::from_engine(Su::DEAD.as_ref()), Status::Dead);
        assert_eq!(Status::from_engine(Su::RUNNING.as_ref()), Status::Running);
        assert_eq!(
            Health::from_engine(H::UNHEALTHY.as_ref()),
            Health::Unhealthy
        );
        assert_eq!(Health::from_engine(H::NONE.as_ref()), Health::None);
    }

    #[test]
    fn error_chain_skips_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = BollardError::from(io);
        assert_eq!(error_chain(&e), "denied");
    }
}
