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
use crate::watch::Started;

const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
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
    #[error("{doing}: {}", docker_text(.source))]
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
            EngineError::Call { source, .. } => docker_text(source),
            other => other.to_string(),
        }
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

    /// Whether the engine (or a socket proxy in front of it) refused the call as not allowed.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self.status_code(), Some(401 | 403))
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
            "kill" => EventKind::Kill { signal: None },
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
    host: DockerHost,
    request_timeout: Duration,
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
        // bollard 0.21 builds each URL as `/v1.xx` joined with an absolute path, which drops
        // the version (upstream bollard#736): every call went out unversioned, so the engine
        // answered in its own newest API instead of the negotiated one, and an engine or proxy
        // that refuses unversioned paths refused them all. Put the negotiated prefix back.
        let prefix = format!("/v{}", docker.client_version());
        let docker = docker.with_request_modifier(move |mut request| {
            let uri = request.uri();
            let path = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
            if let Some(versioned) = versioned_path(path, &prefix) {
                let origin = match (uri.scheme_str(), uri.authority()) {
                    (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
                    _ => String::new(),
                };
                // A valid URI with `/v1.xx` put before its path is valid, so this cannot
                // fail; should it, the request goes out as it was.
                if let Ok(new) = format!("{origin}{versioned}").parse() {
                    *request.uri_mut() = new;
                }
            }
            request
        });
        Ok(Engine {
            docker,
            host: host.clone(),
            request_timeout,
        })
    }

    /// The API version in use after negotiation, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        self.docker.client_version().to_string()
    }

    /// Every container on the engine, running or not, in one call.
    async fn list_all(&self) -> Result<Vec<Listed>, EngineError> {
        self.list_filtered(HashMap::new()).await
    }

    /// Only the containers that may need attention: not running, or running with a health
    /// check that fails or has not passed yet. Two calls, since the engine ANDs different
    /// filter keys; while all is well both answer with (almost) nothing, however many
    /// containers there are.
    async fn list_unwell(&self) -> Result<Vec<Listed>, EngineError> {
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
    async fn inspect_container(&self, c: &ContainerRef) -> Result<Option<Snapshot>, EngineError> {
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

    /// Starts the container. bollard answers a 304 ("already started") as a success, but a
    /// second healthther must not record as its own a start that someone else made, so this
    /// one call is made by hand: a single HTTP/1.1 request on a connection of its own.
    async fn start_container(&self, c: &ContainerRef) -> Result<Started, EngineError> {
        let doing = format!("starting container {}", c.name);
        let path = format!(
            "/v{}/containers/{}/start",
            self.docker.client_version(),
            c.id
        );
        let call = raw_post(&self.host, &path);
        let (status, body) = match tokio::time::timeout(self.request_timeout, call).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(err)) => return Err(EngineError::call(doing)(BollardError::IOError { err })),
            Err(_) => {
                let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time");
                return Err(EngineError::call(doing)(BollardError::IOError { err }));
            }
        };
        match status {
            200..=299 => Ok(Started::Now),
            304 => Ok(Started::Already),
            status_code => Err(EngineError::call(doing)(
                BollardError::DockerResponseServerError {
                    status_code,
                    message: error_message(&body),
                },
            )),
        }
    }

    async fn stop_container(
        &self,
        c: &ContainerRef,
        stop_timeout: Duration,
    ) -> Result<(), EngineError> {
        let t = i32::try_from(stop_timeout.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::new().t(t).build();
        self.docker
            .stop_container(&c.id, Some(options))
            .await
            .map_err(EngineError::call(format!("stopping container {}", c.name)))
    }

    /// Container events from `since` on, then live. Asking for a moment in the past makes the
    /// engine replay what it buffered, so nothing falls between subscribing and listing.
    fn event_stream(
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

impl crate::watch::Docker for Engine {
    async fn list(&self, full: bool) -> Result<Vec<Listed>, EngineError> {
        if full {
            self.list_all().await
        } else {
            self.list_unwell().await
        }
    }

    async fn inspect(&self, c: &ContainerRef) -> Result<Option<Snapshot>, EngineError> {
        self.inspect_container(c).await
    }

    async fn start(&self, c: &ContainerRef) -> Result<Started, EngineError> {
        self.start_container(c).await
    }

    async fn stop(&self, c: &ContainerRef, timeout: Duration) -> Result<(), EngineError> {
        self.stop_container(c, timeout).await
    }

    fn events(
        &self,
        since: SystemTime,
    ) -> impl Stream<Item = Result<Event, EngineError>> + Send + 'static {
        self.event_stream(since)
    }
}

/// `path` (with its query) under the API version `prefix` (`/v1.45`), or `None` when it
/// carries a version already.
fn versioned_path(path: &str, prefix: &str) -> Option<String> {
    let has_version = path
        .strip_prefix("/v")
        .and_then(|rest| rest.split(['/', '?']).next())
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major
                    .bytes()
                    .chain(minor.bytes())
                    .all(|b| b.is_ascii_digit())
        });
    if has_version {
        None
    } else if path.starts_with('/') {
        Some(format!("{prefix}{path}"))
    } else {
        Some(format!("{prefix}/{path}"))
    }
}

/// POSTs an empty body to `path` on the engine and returns the status and the body.
async fn raw_post(host: &DockerHost, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let reply = match host {
        DockerHost::Unix(socket) => {
            exchange(tokio::net::UnixStream::connect(socket).await?, &request).await?
        }
        DockerHost::Tcp(url) => {
            let authority = url
                .split_once("://")
                .map_or(url.as_str(), |(_, rest)| rest)
                .trim_end_matches('/');
            exchange(tokio::net::TcpStream::connect(authority).await?, &request).await?
        }
    };
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP reply");
    let status_line = reply.split(|b| *b == b'\n').next().ok_or_else(bad)?;
    let status = std::str::from_utf8(status_line)
        .ok()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    let body = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| reply[at + 4..].to_vec())
        .unwrap_or_default();
    Ok((status, body))
}

/// Sends `request` and reads the reply: its head, and a body as long as it says, or to the
/// end of the connection when it does not say.
async fn exchange(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    request: &str,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An error reply is a line of JSON; more than this is not the engine talking.
    const LIMIT: usize = 64 * 1024;
    stream.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(head_end) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&reply[..head_end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(length) = length {
                if reply.len() >= head_end + 4 + length.min(LIMIT) {
                    return Ok(reply);
                }
            }
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 || reply.len() >= LIMIT {
            return Ok(reply);
        }
        reply.extend_from_slice(&buf[..n]);
    }
}

/// The engine's `{"message": ...}`, or the body as it is (a proxy's page, a chunked body).
fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let json = match (text.find('{'), text.rfind('}')) {
        (Some(a), Some(b)) if a < b => &text[a..=b],
        _ => "",
    };
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().chars().take(200).collect())
}

fn name_of(raw: &str) -> String {
    raw.strip_prefix('/').unwrap_or(raw).to_string()
}

fn listed(s: ContainerSummary) -> Option<Listed> {
    let id = s.id?;
    // A container has one name; older engines also listed link aliases ("/a/b"), never first.
    let name = name_of(s.names.as_deref()?.first()?);
    let label = |key: &str| s.labels.as_ref().and_then(|l| l.get(key).cloned());
    let (project, service) = (label(COMPOSE_PROJECT_LABEL), label(COMPOSE_SERVICE_LABEL));
    // bollard's enums print the engine's own names.
    let status = Status::from_engine(s.state.as_ref().map_or("", |st| st.as_ref()));
    let health = match s.health.and_then(|h| h.status) {
        Some(h) => Health::from_engine(h.as_ref()),
        // Engines before API 1.52 give health only in the status text.
        None => health_from_status_text(s.status.as_deref().unwrap_or("")),
    };
    Some(Listed {
        container: ContainerRef {
            id,
            name,
            project,
            service,
        },
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
    let labels = r.config.and_then(|cfg| cfg.labels).unwrap_or_default();
    Snapshot {
        container: ContainerRef {
            id: r.id.unwrap_or_else(|| c.id.clone()),
            name,
            project: labels.get(COMPOSE_PROJECT_LABEL).cloned(),
            service: labels.get(COMPOSE_SERVICE_LABEL).cloned(),
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
    let kind = match EventKind::from_action(msg.action.as_deref().unwrap_or("")) {
        EventKind::Kill { .. } => EventKind::Kill {
            signal: attributes.get("signal").and_then(|s| s.parse().ok()),
        },
        kind => kind,
    };
    // The engine gives nanoseconds since the epoch; an engine that gives none is taken as now.
    let time = msg
        .time_nano
        .and_then(|n| u64::try_from(n).ok())
        .map(|n| UNIX_EPOCH + Duration::from_nanos(n))
        .unwrap_or_else(SystemTime::now);
    Some(Event {
        kind,
        container: ContainerRef {
            id,
            name,
            project: attributes.get(COMPOSE_PROJECT_LABEL).cloned(),
            service: attributes.get(COMPOSE_SERVICE_LABEL).cloned(),
        },
        time,
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

    #[tokio::test]
    async fn a_reply_is_read_as_far_as_it_says_even_if_the_connection_stays_open() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let engine = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut request = [0u8; 256];
            let n = theirs.read(&mut request).await.expect("request");
            assert!(String::from_utf8_lossy(&request[..n]).starts_with("POST /v1.41/"));
            let body = r#"{"message":"injected failure"}"#;
            let reply = format!(
                "HTTP/1.1 500 Injected\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            theirs.write_all(reply.as_bytes()).await.expect("reply");
            // Held open, as a proxy may.
            theirs
        });
        let reply = exchange(ours, "POST /v1.41/containers/x/start HTTP/1.1\r\n\r\n")
            .await
            .expect("a reply");
        let text = String::from_utf8_lossy(&reply);
        assert!(text.starts_with("HTTP/1.1 500"), "{text}");
        let body = &reply[reply.len() - 30..];
        assert_eq!(error_message(body), "injected failure");
        drop(engine.await);
    }

    #[test]
    fn error_messages_fall_back_to_the_text() {
        assert_eq!(
            error_message(b"<html>403 Forbidden</html>\n"),
            "<html>403 Forbidden</html>"
        );
        assert_eq!(error_message(b""), "");
    }

    #[test]
    fn paths_get_the_negotiated_version_once() {
        let cases = [
            (
                "/containers/json?all=true",
                Some("/v1.45/containers/json?all=true"),
            ),
            ("/events", Some("/v1.45/events")),
            ("containers/x/json", Some("/v1.45/containers/x/json")),
            ("/v1.41/containers/json", None),
            ("/v1.45?x=1", None),
            // Not a version: a container or image whose name starts with v.
            ("/vx.1/json", Some("/v1.45/vx.1/json")),
            ("/v1/json", Some("/v1.45/v1/json")),
            ("/volumes", Some("/v1.45/volumes")),
        ];
        for (path, want) in cases {
            assert_eq!(versioned_path(path, "/v1.45").as_deref(), want, "{path}");
        }
    }

    #[test]
    fn error_chain_skips_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = BollardError::from(io);
        assert_eq!(error_chain(&e), "denied");
    }
}
