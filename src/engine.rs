//! The Docker engine adapter: the one module that imports bollard. It turns bollard's models into
//! our own small types, so that a change of bollard's API touches this file only. What needs no
//! bollard sits beside it: the calls made by hand (`http`, `tls`), the recreation of dependents
//! carried out with them (`recreation`), and the reading of plain-data answers (`translate`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, EventMessage};
use bollard::query_parameters::{EventsOptionsBuilder, StopContainerOptionsBuilder};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures_util::{Stream, StreamExt};
use thiserror::Error;

use crate::config::DockerHost;
use crate::errors::error_chain;
use crate::policy::{network_parent, Health, Listed, Snapshot, Status};
use crate::targets::ContainerRef;
use crate::watch::core::event::{Event, EventKind};
use crate::watch::docker::{DockerError, Failure, Started};

mod http;
mod recreation;
mod tls;
mod translate;

use http::{error_message, percent_encode, raw_request, versioned_path};
use tls::tls_config;
use translate::{
    kind_from_action, labels_of_event, listed, name_of, ours, Summary, COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
};

/// The engine writes this for a container that never ran.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// Network events, of the type `network`, naming the container in the attribute `container`.
const NETWORK_EVENTS: &[&str] = &["connect", "disconnect"];
/// Container events that can change whether a target needs us.
const WATCHED_EVENTS: &[&str] = &[
    "create",
    "start",
    "die",
    // Podman's own spelling; its Docker API says `die`, but some versions pass `died` through.
    "died",
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
    #[error("cannot recreate container {0}: {1}")]
    Recreate(String, #[source] crate::recreate::RecreateError),
}

impl EngineError {
    fn call(doing: impl Into<String>) -> impl FnOnce(BollardError) -> EngineError {
        let doing = doing.into();
        move |source| EngineError::Call { doing, source }
    }

    /// A call whose answer did not read as the JSON it should be.
    fn unreadable(doing: &str, err: serde_json::Error) -> EngineError {
        EngineError::call(doing)(BollardError::JsonSerdeError { err })
    }

    /// A call the engine answered with `status_code` and `message`, which we take as a failure.
    fn answered(doing: &str, status_code: u16, message: String) -> EngineError {
        EngineError::call(doing)(BollardError::DockerResponseServerError {
            status_code,
            message,
        })
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

    /// Whether the engine (or what stands in front of it) answered at all: an HTTP status, as
    /// opposed to a connection that failed or timed out.
    pub fn engine_answered(&self) -> bool {
        self.status_code().is_some()
    }

    /// Whether the call got no answer at all: the connection failed, broke or timed out. Not
    /// an error the engine answered, nor one of ours about what it answered.
    pub fn is_unreachable(&self) -> bool {
        match self {
            EngineError::Unreachable { .. } => true,
            EngineError::Call { source, .. } => matches!(
                source,
                BollardError::IOError { .. }
                    | BollardError::HyperResponseError { .. }
                    | BollardError::HyperLegacyError { .. }
                    | BollardError::HttpClientError { .. }
                    | BollardError::RequestTimeoutError
                    | BollardError::SocketNotFoundError(_)
            ),
            EngineError::Recreate(..) => false,
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
    // linuxserver's proxy allows these actions with POST=0; Tecnativa's only with POST=1,
    // which opens create, delete and exec too (see "Least privilege behind a socket proxy" in
    // docs/proxies-and-tls.md).
    if doing.starts_with("starting") {
        "ALLOW_START=1 (Tecnativa's proxy: POST=1)"
    } else if doing.starts_with("stopping") {
        "ALLOW_STOP=1 (Tecnativa's proxy: POST=1)"
    } else if doing.contains("event stream") {
        "EVENTS=1"
    } else {
        "CONTAINERS=1"
    }
}

/// A connection to the Docker engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    host: DockerHost,
    request_timeout: Duration,
    /// Podman's Docker API, which refuses some of Docker's list filters.
    podman: bool,
    /// For the calls made by hand to an engine reached over TLS: the same certificates.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Engine {
    /// Connects and negotiates the API version, so engines from 20.10 (API 1.41) to the newest
    /// work. Every request may take up to `request_timeout` (above the stop timeout, since a
    /// restart waits for it).
    pub async fn connect(
        host: &DockerHost,
        request_timeout: Duration,
    ) -> Result<Engine, EngineError> {
        // Over TLS, whatever fails may be the certificates: say where they come from.
        let tls_hint = match host {
            DockerHost::Tls { cert_path, .. } => format!(
                " (TLS with ca.pem, cert.pem and key.pem of DOCKER_CERT_PATH={})",
                cert_path.display()
            ),
            _ => String::new(),
        };
        let unreachable = |e: BollardError| EngineError::Unreachable {
            host: host.to_string(),
            reason: match e {
                BollardError::SocketNotFoundError(path) => {
                    format!("no socket at {path} (is the Docker socket mounted, and is the engine running?)")
                }
                other => format!("{}{tls_hint}", error_chain(&other)),
            },
        };
        let secs = request_timeout.as_secs().max(1);
        let mut tls = None;
        let docker = match host {
            DockerHost::Unix(path) => {
                Docker::connect_with_unix(&path.to_string_lossy(), secs, API_DEFAULT_VERSION)
            }
            DockerHost::Tcp(url) => Docker::connect_with_http(url, secs, API_DEFAULT_VERSION),
            DockerHost::Tls { url, cert_path } => {
                tls = Some(
                    tls_config(cert_path).map_err(|reason| EngineError::Unreachable {
                        host: host.to_string(),
                        reason,
                    })?,
                );
                Docker::connect_with_ssl(
                    url,
                    &cert_path.join("key.pem"),
                    &cert_path.join("cert.pem"),
                    &cert_path.join("ca.pem"),
                    secs,
                    API_DEFAULT_VERSION,
                )
            }
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
        // Podman names itself among the version's components; Docker never does.
        let version = docker.version().await.map_err(unreachable)?;
        let podman = version
            .components
            .unwrap_or_default()
            .iter()
            .any(|c| c.name.to_ascii_lowercase().contains("podman"));
        Ok(Engine {
            docker,
            host: host.clone(),
            request_timeout,
            podman,
            tls,
        })
    }

    /// Whether the engine is Podman (its Docker-compatible API).
    pub fn is_podman(&self) -> bool {
        self.podman
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
        // Each engine refuses (HTTP 500) a state name it does not have: Podman has no
        // `restarting` or `dead`, and `stopped` (killed, not yet cleaned up) only it has.
        let states = if self.podman {
            vec![
                "created", "removing", "paused", "exited", "stopped", "unknown",
            ]
        } else {
            vec![
                "created",
                "restarting",
                "removing",
                "paused",
                "exited",
                "dead",
            ]
        };
        let not_running = HashMap::from([("status", states)]);
        let unhealthy = HashMap::from([("health", vec!["unhealthy", "starting"])]);
        let mut found = self.list_filtered(not_running).await?;
        for mut l in self.list_filtered(unhealthy).await? {
            // Podman's list shows no health at all; whatever this filter returns has a check
            // that failed or has not passed yet, and the inspect tells which.
            if l.health == Health::None {
                l.health = Health::Starting;
            }
            found.push(l);
        }
        Ok(found)
    }

    /// Lists by hand and reads the answer leniently: bollard's models refuse a state they do
    /// not know, and Podman lists a killed container as `stopped` until it is cleaned up.
    async fn list_filtered(
        &self,
        filters: HashMap<&str, Vec<&str>>,
    ) -> Result<Vec<Listed>, EngineError> {
        let doing = "listing containers";
        let filters = serde_json::to_string(&filters).unwrap_or_default();
        let path = format!(
            "/v{}/containers/json?all=1&filters={}",
            self.docker.client_version(),
            percent_encode(&filters)
        );
        let body = self.raw_call(doing, "GET", &path).await?.ok_or_else(|| {
            EngineError::call(doing)(BollardError::DockerResponseServerError {
                status_code: 304,
                message: "unexpected 304".into(),
            })
        })?;
        let summaries: Vec<Summary> = serde_json::from_slice(&body)
            .map_err(|err| EngineError::call(doing)(BollardError::JsonSerdeError { err }))?;
        Ok(summaries.into_iter().filter_map(listed).collect())
    }

    /// A call made by hand on a connection of its own: the body of a 2xx answer, `None` for a
    /// 304, the engine's message for anything else.
    async fn raw_call(
        &self,
        doing: &str,
        method: &str,
        path: &str,
    ) -> Result<Option<bytes::Bytes>, EngineError> {
        self.raw_send(doing, method, path, None).await
    }

    /// [`Engine::raw_call`] with a JSON body, passed on as it is.
    async fn raw_send(
        &self,
        doing: &str,
        method: &str,
        path: &str,
        json: Option<bytes::Bytes>,
    ) -> Result<Option<bytes::Bytes>, EngineError> {
        let call = raw_request(&self.host, self.tls.as_ref(), method, path, json);
        let (status, body) = match tokio::time::timeout(self.request_timeout, call).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(err)) => return Err(EngineError::call(doing)(BollardError::IOError { err })),
            Err(_) => {
                let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time");
                return Err(EngineError::call(doing)(BollardError::IOError { err }));
            }
        };
        match status {
            200..=299 => Ok(Some(body)),
            304 => Ok(None),
            status_code => Err(EngineError::call(doing)(
                BollardError::DockerResponseServerError {
                    status_code,
                    message: error_message(&body),
                },
            )),
        }
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
        match self.raw_call(&doing, "POST", &path).await? {
            Some(_) => Ok(Started::Now),
            None => Ok(Started::Already),
        }
    }

    /// A raw call's JSON answer; `None` when the engine answered that there is no such thing
    /// (404, or a 304 with no body).
    async fn raw_json(
        &self,
        doing: &str,
        path: &str,
    ) -> Result<Option<serde_json::Value>, EngineError> {
        match self.raw_call(doing, "GET", path).await {
            Ok(Some(body)) => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|err| EngineError::call(doing)(BollardError::JsonSerdeError { err })),
            Ok(None) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the negotiated API version is `major.minor` or newer.
    fn api_at_least(&self, major: usize, minor: usize) -> bool {
        let v = self.docker.client_version();
        (v.major_version, v.minor_version) >= (major, minor)
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
            // A network's connect and disconnect tell that a container's addresses changed
            // while it ran: its probe must not go on to an address another may have now.
            ("type", vec!["container", "network"]),
            ("event", [WATCHED_EVENTS, NETWORK_EVENTS].concat()),
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

/// What the loop tells failures apart by, with the message and the engine's own words as they
/// were.
impl From<EngineError> for DockerError {
    fn from(e: EngineError) -> DockerError {
        let kind = match &e {
            EngineError::Recreate(_, crate::recreate::RecreateError::Gone) => Failure::Gone,
            e if e.is_unreachable() => Failure::Unreachable,
            e => match e.status_code() {
                Some(status) => Failure::Answered(status),
                None => Failure::Other,
            },
        };
        DockerError::new(kind, e.to_string(), e.docker_text())
    }
}

impl crate::watch::docker::Docker for Engine {
    async fn list(&self, full: bool) -> Result<Vec<Listed>, DockerError> {
        Ok(if full {
            self.list_all().await?
        } else {
            self.list_unwell().await?
        })
    }

    async fn inspect(&self, c: &ContainerRef) -> Result<Option<Snapshot>, DockerError> {
        Ok(self.inspect_container(c).await?)
    }

    async fn start(&self, c: &ContainerRef) -> Result<Started, DockerError> {
        Ok(self.start_container(c).await?)
    }

    async fn stop(&self, c: &ContainerRef, timeout: Duration) -> Result<(), DockerError> {
        Ok(self.stop_container(c, timeout).await?)
    }

    async fn recreate(
        &self,
        c: &ContainerRef,
        parent_id: &str,
        stop_timeout: Duration,
    ) -> Result<String, DockerError> {
        Ok(self.recreate_container(c, parent_id, stop_timeout).await?)
    }

    fn events(
        &self,
        since: SystemTime,
    ) -> impl Stream<Item = Result<Event, DockerError>> + Send + 'static {
        self.event_stream(since)
            .map(|item| item.map_err(DockerError::from))
    }

    fn api_version(&self) -> String {
        Engine::api_version(self)
    }

    async fn repair_recreations<T, F>(
        &self,
        ours: F,
        stop_timeout: Duration,
    ) -> Vec<(T, ContainerRef)>
    where
        T: Send,
        F: Fn(&ContainerRef) -> Option<T> + Send + Sync,
    {
        Engine::repair_recreations(self, ours, stop_timeout).await
    }
}

/// Requests wait this much longer than the stop timeout, since a restart waits for it.
const REQUEST_SLACK: Duration = Duration::from_secs(30);

/// Connects to the engine at `host`, at the start and again after each loss.
pub struct Connector {
    host: DockerHost,
    request_timeout: Duration,
}

impl Connector {
    /// Every request may take up to `stop_timeout` and then some, since a restart waits for it.
    pub fn new(host: DockerHost, stop_timeout: Duration) -> Connector {
        Connector {
            host,
            request_timeout: stop_timeout + REQUEST_SLACK,
        }
    }
}

impl crate::watch::docker::Connect for Connector {
    type Docker = Engine;

    async fn connect(&self) -> Result<Engine, DockerError> {
        Ok(Engine::connect(&self.host, self.request_timeout).await?)
    }
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
    let has_check = r
        .config
        .as_ref()
        .and_then(|cfg| cfg.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .and_then(|t| t.first())
        .is_some_and(|kind| kind != "NONE");
    let labels = r.config.and_then(|cfg| cfg.labels).unwrap_or_default();
    let network_mode = r.host_config.and_then(|h| h.network_mode);
    let addresses = translate::addresses(
        r.network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, e)| (name, e.ip_address, e.global_ipv6_address)),
    );
    Snapshot {
        container: ContainerRef {
            id: r.id.unwrap_or_else(|| c.id.clone()),
            name,
            project: labels.get(COMPOSE_PROJECT_LABEL).cloned(),
            service: labels.get(COMPOSE_SERVICE_LABEL).cloned(),
            labels: ours(&labels),
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
        network_parent: network_mode.as_deref().and_then(network_parent),
        has_check,
        addresses,
        probe_error: None,
        host_network: network_mode.as_deref() == Some("host"),
    }
}

fn event(msg: EventMessage) -> Option<Event> {
    use bollard::models::EventMessageTypeEnum;
    if msg.typ == Some(EventMessageTypeEnum::NETWORK) {
        return network_event(msg);
    }
    let time = event_time(&msg);
    let actor = msg.actor?;
    let id = actor.id?;
    let attributes = actor.attributes.unwrap_or_default();
    let name = name_of(attributes.get("name")?);
    let kind = match kind_from_action(msg.action.as_deref().unwrap_or("")) {
        EventKind::Kill { .. } => EventKind::Kill {
            signal: attributes.get("signal").and_then(|s| s.parse().ok()),
        },
        kind => kind,
    };
    Some(Event {
        kind,
        container: ContainerRef {
            id,
            name,
            project: attributes.get(COMPOSE_PROJECT_LABEL).cloned(),
            service: attributes.get(COMPOSE_SERVICE_LABEL).cloned(),
            // An event's attributes hold the container's labels.
            labels: labels_of_event(&attributes),
        },
        time,
    })
}

/// A network connected to a container or disconnected from it: the container by its id alone
/// (the network event says nothing else of it). A network's other events are none of ours.
fn network_event(msg: EventMessage) -> Option<Event> {
    if !NETWORK_EVENTS.contains(&msg.action.as_deref()?) {
        return None;
    }
    let id = msg
        .actor
        .as_ref()?
        .attributes
        .as_ref()?
        .get("container")?
        .clone();
    Some(Event {
        kind: EventKind::Network,
        container: ContainerRef {
            id,
            ..ContainerRef::default()
        },
        time: event_time(&msg),
    })
}

/// The engine gives nanoseconds since the epoch; an engine that gives none is taken as now.
fn event_time(msg: &EventMessage) -> SystemTime {
    msg.time_nano
        .and_then(|n| u64::try_from(n).ok())
        .map(|n| UNIX_EPOCH + Duration::from_nanos(n))
        .unwrap_or_else(SystemTime::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_connect_or_disconnect_names_the_container_by_id() {
        use bollard::models::{EventActor, EventMessageTypeEnum};
        let message = |action: &str| EventMessage {
            typ: Some(EventMessageTypeEnum::NETWORK),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("net1".into()),
                attributes: Some(HashMap::from([
                    ("container".to_string(), "c1".to_string()),
                    ("name".to_string(), "p_default".to_string()),
                    ("type".to_string(), "bridge".to_string()),
                ])),
            }),
            ..EventMessage::default()
        };
        for action in ["connect", "disconnect"] {
            let e = event(message(action)).expect("an event");
            assert_eq!(e.kind, EventKind::Network);
            assert_eq!(e.container.id, "c1");
            assert_eq!(e.container.name, "");
        }
        // A network's own create and destroy are not a container's.
        assert_eq!(event(message("create")), None);
        assert_eq!(event(message("destroy")), None);
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
