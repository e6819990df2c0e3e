//! The Docker engine adapter: the one module that imports bollard. It turns bollard's models into
//! our own small types, so that a change of bollard's API touches this file only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, EventMessage};
use bollard::query_parameters::{EventsOptionsBuilder, StopContainerOptionsBuilder};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use thiserror::Error;

use crate::config::DockerHost;
use crate::errors::error_chain;
use crate::policy::{health_from_status_text, network_parent, Health, Listed, Snapshot, Status};
use crate::targets::ContainerRef;
use crate::watch::core::event::{Event, EventKind};
use crate::watch::docker::{DockerError, Failure, Started};

const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";
/// The engine writes this for a container that never ran.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
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

/// The kind of event an action of the engine's event stream is.
fn kind_from_action(action: &str) -> EventKind {
    // health_status actions read "health_status: unhealthy".
    if let Some(h) = action.strip_prefix("health_status:") {
        return match Health::from_engine(h.trim()) {
            Health::None => EventKind::Other,
            h => EventKind::Health(h),
        };
    }
    match action {
        "health_status" => EventKind::HealthChecked,
        "create" => EventKind::Create,
        "start" => EventKind::Start,
        "die" | "died" => EventKind::Die,
        "oom" => EventKind::Oom,
        "kill" => EventKind::Kill { signal: None },
        "stop" => EventKind::Stop,
        "destroy" => EventKind::Destroy,
        "rename" => EventKind::Rename,
        _ => EventKind::Other,
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

    /// Recreates the dependent `c` joined to the network namespace of `parent_id` (its parent
    /// was recreated, so `c` holds an id that is gone and can never start again), with exactly
    /// its configuration, image and volumes: see [`crate::recreate`]. In an order that a crash
    /// at any point leaves something [`Engine::repair_recreations`] can finish: the new
    /// container is created under its [`crate::recreate::temporary_name`], the old one
    /// stopped, the new one started, the old one removed (its volumes kept: the new one has
    /// them), and only then the new one takes the name. Should the create, the stop or the
    /// start fail, the new container is removed and the old one is left as it was (stopped,
    /// if the stop was done: it could not run anyway). Returns the new container's id;
    /// [`crate::recreate::RecreateError::Gone`] when the old container disappeared meanwhile.
    ///
    /// Every call is made by hand so that the engine's JSON passes through whole: bollard's
    /// typed models would drop the fields they do not know.
    pub async fn recreate_container(
        &self,
        c: &ContainerRef,
        parent_id: &str,
        stop_timeout: Duration,
    ) -> Result<String, EngineError> {
        use crate::recreate::RecreateError;
        let gone = || EngineError::Recreate(c.name.clone(), RecreateError::Gone);
        let v = self.docker.client_version().to_string();
        let inspect = self
            .raw_json(
                &format!("inspecting container {}", c.name),
                &format!("/v{v}/containers/{}/json", c.id),
            )
            .await?
            .ok_or_else(gone)?;
        // Renamed or relabelled since the look (compose replacing it itself, say): then it may
        // be no target any more, and is not touched.
        let label = |key: &str| {
            inspect["Config"]["Labels"][key]
                .as_str()
                .map(str::to_string)
        };
        let now = ContainerRef {
            id: c.id.clone(),
            name: inspect["Name"].as_str().map(name_of).unwrap_or_default(),
            project: label(COMPOSE_PROJECT_LABEL),
            service: label(COMPOSE_SERVICE_LABEL),
            labels: BTreeMap::new(),
        };
        if !now.same_identity(c) {
            return Err(EngineError::Recreate(
                c.name.clone(),
                RecreateError::Changed { now: now.name },
            ));
        }
        let body = crate::recreate::create_body(&inspect, parent_id)
            .map_err(|e| EngineError::Recreate(c.name.clone(), e))?;
        let running = inspect["State"]["Running"].as_bool() == Some(true);
        let temporary = crate::recreate::temporary_name(&c.id, &c.name);
        // The platform of the image it ran, where the API takes one (1.41 on): an image id
        // may stand for several platforms (the containerd image store).
        let mut create_query = format!("name={}", percent_encode(&temporary));
        if self.api_at_least(1, 41) {
            let image = body["Image"].as_str().unwrap_or_default();
            let image_inspect = self
                .raw_json(
                    &format!("inspecting the image of container {}", c.name),
                    &format!("/v{v}/images/{}/json", percent_encode(image)),
                )
                .await?;
            if let Some(platform) = image_inspect.as_ref().and_then(crate::recreate::platform) {
                create_query.push_str(&format!("&platform={}", percent_encode(&platform)));
            }
        }

        let doing = format!("creating container {temporary}");
        let new_id = self
            .raw_send(
                &doing,
                "POST",
                &format!("/v{v}/containers/create?{create_query}"),
                Some(bytes::Bytes::from(body.to_string())),
            )
            .await
            .and_then(|answer| {
                let answer: serde_json::Value = answer
                    .map(|b| serde_json::from_slice(&b))
                    .transpose()
                    .map_err(|err| EngineError::call(&doing)(BollardError::JsonSerdeError { err }))?
                    .unwrap_or_default();
                answer["Id"].as_str().map(str::to_string).ok_or_else(|| {
                    EngineError::call(&doing)(BollardError::DockerResponseServerError {
                        status_code: 200,
                        message: "the engine's answer names no container id".into(),
                    })
                })
            })?;
        // Undoes the create: the old container is left as it is, to be tried again.
        let remove_new = || async {
            let removed = self
                .raw_call(
                    &format!(
                        "removing container {temporary}, which did not replace {}",
                        c.name
                    ),
                    "DELETE",
                    &format!("/v{v}/containers/{new_id}?force=1&v=0"),
                )
                .await;
            if let Err(e) = removed {
                tracing::error!(container = %c.name, "the recreation failed, and {temporary} \
                    could not be removed ({}): `docker rm -f {temporary}` does it", e.docker_text());
            }
        };
        if running {
            let stopped = self
                .raw_call(
                    &format!("stopping container {}", c.name),
                    "POST",
                    &format!(
                        "/v{v}/containers/{}/stop?t={}",
                        c.id,
                        stop_timeout.as_secs()
                    ),
                )
                .await;
            if let Err(e) = stopped {
                remove_new().await;
                return Err(if e.is_not_found() { gone() } else { e });
            }
        }
        let started = self
            .raw_call(
                &format!("starting container {temporary}"),
                "POST",
                &format!("/v{v}/containers/{new_id}/start"),
            )
            .await;
        if let Err(e) = started {
            remove_new().await;
            return Err(e);
        }
        let removed = self
            .raw_call(
                &format!("removing container {}", c.name),
                "DELETE",
                &format!("/v{v}/containers/{}?force=1&v=0", c.id),
            )
            .await;
        match removed {
            // Someone removed it already: its name is free all the same.
            Err(e) if !e.is_not_found() => {
                remove_new().await;
                return Err(e);
            }
            _ => {}
        }
        self.take_name(&new_id, &temporary, &c.name).await;
        Ok(new_id)
    }

    /// Gives the replacement `id`, under `temporary`, its `name`; a failure is only said: it
    /// runs, under a name the next start-up gives it.
    async fn take_name(&self, id: &str, temporary: &str, name: &str) -> bool {
        let renamed = self
            .raw_call(
                &format!("renaming container {temporary} to {name}"),
                "POST",
                &format!(
                    "/v{}/containers/{id}/rename?name={}",
                    self.docker.client_version(),
                    percent_encode(name)
                ),
            )
            .await;
        match renamed {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(container = %name, "recreated, but the new container could not \
                    take its name from {temporary} ({}): `docker rename {temporary} {name}` \
                    does it", e.docker_text());
                false
            }
        }
    }

    /// Whether the negotiated API version is `major.minor` or newer.
    fn api_at_least(&self, major: usize, minor: usize) -> bool {
        let v = self.docker.client_version();
        (v.major_version, v.minor_version) >= (major, minor)
    }

    /// Finishes the recreations a crash cut short: each container under a
    /// [`crate::recreate::temporary_name`] with the `healthther.recreate=true` label, whose
    /// original name `ours` takes for a target (so that another healthther's recreation under
    /// way is left to it), is dealt with as [`crate::recreate::repair`] decides (the old
    /// container stopped within `stop_timeout` and removed) and started.
    /// Run once the engine answers, before the first list, so that the list sees each under its
    /// name. Failures are said and leave the containers as they are.
    pub async fn repair_recreations<T>(
        &self,
        ours: impl Fn(&ContainerRef) -> Option<T>,
        stop_timeout: Duration,
    ) -> Vec<(T, ContainerRef)> {
        use crate::recreate::{original_name, repair, volumes_from, Parents, Repair};
        let mut finished = Vec::new();
        let filters = HashMap::from([
            ("label", vec!["healthther.recreate=true"]),
            ("name", vec!["-healthther-recreating-"]),
        ]);
        let found = match self.list_filtered(filters).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("looking for recreations cut short: {}", e.docker_text());
                return finished;
            }
        };
        let v = self.docker.client_version().to_string();
        for new in found.into_iter().map(|l| l.container) {
            let Some(name) = original_name(&new.name) else {
                continue;
            };
            let to_be = ContainerRef {
                name: name.to_string(),
                ..new.clone()
            };
            let Some(target) = ours(&to_be) else {
                continue;
            };
            let said = |e: EngineError| {
                tracing::warn!(container = %name, "a recreation was cut short, and {} could not \
                    be put in its place: {}", new.name, e.docker_text());
            };
            let looked = async {
                let replacement = self
                    .raw_json(
                        &format!("inspecting container {}", new.name),
                        &format!("/v{v}/containers/{}/json", new.id),
                    )
                    .await?;
                let holder = self
                    .raw_json(
                        &format!("inspecting container {name}"),
                        &format!("/v{v}/containers/{}/json", percent_encode(name)),
                    )
                    .await?;
                Ok::<_, EngineError>((replacement, holder))
            };
            let (replacement, holder) = match looked.await {
                Ok((Some(r), holder)) => (r, holder),
                // Removed meanwhile.
                Ok((None, _)) => continue,
                Err(e) => {
                    said(e);
                    continue;
                }
            };
            let holder_id = holder.as_ref().and_then(|h| h["Id"].as_str());
            let new_parent = self.network_parent(&v, Some(&replacement)).await;
            let old_parent = self.network_parent(&v, holder.as_ref()).await;
            let parents = Parents {
                replacements_runs: new_parent
                    .as_ref()
                    .is_some_and(|p| p["State"]["Running"].as_bool() == Some(true)),
                old_ones_exists: old_parent.is_some(),
            };
            match repair(&new.name, &volumes_from(&replacement), holder_id, parents) {
                Repair::Leave => {
                    tracing::warn!(container = %name, "a recreation was cut short, and {} is \
                        left as it is: another container has the name now (`docker rm {}` if \
                        it is not wanted)", new.name, new.name);
                    continue;
                }
                Repair::RemoveOldThenFinish { old } => {
                    // Still running if the crash came before its stop: it is given its stop
                    // timeout, as the recreation would have; the removal kills it otherwise.
                    let _ = self
                        .raw_call(
                            &format!("stopping container {name}, which {} replaces", new.name),
                            "POST",
                            &format!("/v{v}/containers/{old}/stop?t={}", stop_timeout.as_secs()),
                        )
                        .await;
                    let removed = self
                        .raw_call(
                            &format!("removing container {name}, which {} replaces", new.name),
                            "DELETE",
                            &format!("/v{v}/containers/{old}?force=1&v=0"),
                        )
                        .await;
                    if let Err(e) = removed {
                        said(e);
                        continue;
                    }
                }
                Repair::Finish => {}
            }
            if !self.take_name(&new.id, &new.name, name).await {
                continue;
            }
            if replacement["State"]["Running"].as_bool() != Some(true) {
                let started = self
                    .raw_call(
                        &format!("starting container {name}"),
                        "POST",
                        &format!("/v{v}/containers/{}/start", new.id),
                    )
                    .await;
                if let Err(e) = started {
                    said(e);
                    continue;
                }
            }
            tracing::info!(container = %name, "a recreation was cut short: finished");
            finished.push((
                target,
                ContainerRef {
                    id: new.id.clone(),
                    ..to_be
                },
            ));
        }
        finished
    }

    /// What the engine says of the container `inspect`'s network mode names, if it names one
    /// and it exists.
    async fn network_parent(
        &self,
        v: &str,
        inspect: Option<&serde_json::Value>,
    ) -> Option<serde_json::Value> {
        let id = inspect.and_then(crate::recreate::network_parent_of)?;
        self.raw_json(
            &format!("inspecting container {id}"),
            &format!("/v{v}/containers/{}/json", percent_encode(id)),
        )
        .await
        .ok()
        .flatten()
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

/// Sends `method path` with an empty body to the engine on a connection of its own, and
/// returns the status and the whole body.
async fn raw_request(
    host: &DockerHost,
    tls: Option<&Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    json: Option<bytes::Bytes>,
) -> std::io::Result<(u16, bytes::Bytes)> {
    let authority = |url: &str| {
        url.split_once("://")
            .map_or(url, |(_, rest)| rest)
            .trim_end_matches('/')
            .to_string()
    };
    match (host, tls) {
        (DockerHost::Unix(socket), _) => {
            exchange(
                tokio::net::UnixStream::connect(socket).await?,
                method,
                path,
                json,
            )
            .await
        }
        (DockerHost::Tls { url, .. }, Some(config)) => {
            let authority = authority(url);
            // The name the engine's certificate must carry: the host, without port or [].
            let name = authority
                .rsplit_once(':')
                .map_or(authority.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let name = rustls_pki_types::ServerName::try_from(name)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tcp = tokio::net::TcpStream::connect(&authority).await?;
            let stream = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await?;
            exchange(stream, method, path, json).await
        }
        (DockerHost::Tcp(url) | DockerHost::Tls { url, .. }, _) => {
            exchange(
                tokio::net::TcpStream::connect(authority(url)).await?,
                method,
                path,
                json,
            )
            .await
        }
    }
}

/// The client side of TLS as the docker CLI sets it up from `DOCKER_CERT_PATH`: the engine
/// must present a certificate of `ca.pem`; we present `cert.pem` with `key.pem`.
fn tls_config(dir: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |file: &str, e: &dyn std::fmt::Display| {
        format!(
            "{}: {e} (DOCKER_CERT_PATH holds ca.pem, cert.pem and key.pem)",
            dir.join(file).display()
        )
    };
    let certs = |file: &str| {
        CertificateDer::pem_file_iter(dir.join(file))
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(file, &e))
            .and_then(|certs| match certs.is_empty() {
                true => Err(bad(file, &"no certificate in it")),
                false => Ok(certs),
            })
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs("ca.pem")? {
        roots.add(cert).map_err(|e| bad("ca.pem", &e))?;
    }
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).map_err(|e| bad("key.pem", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs("cert.pem")?, key)
        .map_err(|e| bad("cert.pem", &e))?;
    Ok(Arc::new(config))
}

/// One HTTP/1.1 request and its reply on `stream`; the reply is read as far as it says
/// (length or chunks), even if the other side keeps the connection open.
async fn exchange(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    method: &str,
    path: &str,
    json: Option<bytes::Bytes>,
) -> std::io::Result<(u16, bytes::Bytes)> {
    use http_body_util::{BodyExt, Either, Empty, Full, Limited};
    // A list of thousands of containers stays well below this; more is not the engine.
    const LIMIT: usize = 64 * 1024 * 1024;
    let io_err = |e: Box<dyn std::error::Error + Send + Sync>| {
        std::io::Error::other(error_chain(e.as_ref()))
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| io_err(e.into()))?;
    let connection = tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "docker");
    let request = match json {
        None => request.body(Either::Left(Empty::<bytes::Bytes>::new())),
        Some(json) => request
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Either::Right(Full::new(json))),
    }
    .map_err(|e| io_err(e.into()))?;
    let reply = sender
        .send_request(request)
        .await
        .map_err(|e| io_err(e.into()));
    let result = match reply {
        Ok(reply) => {
            let status = reply.status().as_u16();
            Limited::new(reply.into_body(), LIMIT)
                .collect()
                .await
                .map(|body| (status, body.to_bytes()))
                .map_err(io_err)
        }
        Err(e) => Err(e),
    };
    // The connection is ours alone: done with it once the reply is in.
    connection.abort();
    result
}

/// `%XX` for every byte outside the URL's unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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

/// The `healthther.*` labels among a container's labels, Swarm's task and service labels,
/// and compose's `depends_on` and version.
fn ours(labels: &HashMap<String, String>) -> BTreeMap<String, String> {
    use crate::targets::{SWARM_SERVICE_LABEL, SWARM_TASK_LABEL};
    labels
        .iter()
        .filter(|(k, _)| {
            k.starts_with(crate::overrides::PREFIX)
                || *k == SWARM_TASK_LABEL
                || *k == SWARM_SERVICE_LABEL
                || *k == crate::targets::COMPOSE_DEPENDS_ON_LABEL
                || *k == crate::targets::COMPOSE_VERSION_LABEL
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn name_of(raw: &str) -> String {
    raw.strip_prefix('/').unwrap_or(raw).to_string()
}

/// What a list answer says of one container, as the engine wrote it: states and health as
/// plain text, so that a name we do not know is [`Status::Other`], not a failed list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Summary {
    id: Option<String>,
    names: Option<Vec<String>>,
    labels: Option<HashMap<String, String>>,
    state: Option<String>,
    status: Option<String>,
    health: Option<SummaryHealth>,
    host_config: Option<SummaryHostConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryHostConfig {
    network_mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryHealth {
    status: Option<String>,
}

fn listed(s: Summary) -> Option<Listed> {
    let id = s.id?;
    // A container has one name; older engines also listed link aliases ("/a/b"), never first.
    let name = name_of(s.names.as_deref()?.first()?);
    let labels = s.labels.unwrap_or_default();
    let label = |key: &str| labels.get(key).cloned();
    let (project, service) = (label(COMPOSE_PROJECT_LABEL), label(COMPOSE_SERVICE_LABEL));
    let status = Status::from_engine(s.state.as_deref().unwrap_or(""));
    let health = match s.health.and_then(|h| h.status).filter(|h| !h.is_empty()) {
        Some(h) => Health::from_engine(&h),
        // Engines before API 1.52 give health only in the status text.
        None => health_from_status_text(s.status.as_deref().unwrap_or("")),
    };
    Some(Listed {
        container: ContainerRef {
            id,
            name,
            project,
            service,
            labels: ours(&labels),
        },
        status,
        health,
        network_parent: s
            .host_config
            .and_then(|h| h.network_mode)
            .and_then(|m| network_parent(&m)),
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
    let has_check = r
        .config
        .as_ref()
        .and_then(|cfg| cfg.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .and_then(|t| t.first())
        .is_some_and(|kind| kind != "NONE");
    let labels = r.config.and_then(|cfg| cfg.labels).unwrap_or_default();
    let network_mode = r.host_config.and_then(|h| h.network_mode);
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
    }
}

fn event(msg: EventMessage) -> Option<Event> {
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
            // An event's attributes hold the container's labels.
            labels: ours(&attributes),
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
            // Podman's spellings.
            ("died", EventKind::Die),
            ("health_status", EventKind::HealthChecked),
        ];
        for (action, want) in cases {
            assert_eq!(kind_from_action(action), want, "{action}");
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
        let (status, body) = exchange(ours, "POST", "/v1.41/containers/x/start", None)
            .await
            .expect("a reply");
        assert_eq!(status, 500);
        assert_eq!(error_message(&body), "injected failure");
        drop(engine.await);
    }

    #[test]
    fn podman_lists_are_read_with_states_bollard_does_not_know() {
        // As Podman 4.3 lists a container killed a moment ago, and one with a health check
        // (Podman writes no health into a list).
        let body = br#"[{"Id":"a1","Names":["/hhpod-a"],"State":"stopped","Status":"Exited (137) Less than a second ago","Labels":{}},
            {"Id":"b2","Names":["/hhpod-b"],"State":"running","Status":"Up 6 seconds","Labels":null}]"#;
        let summaries: Vec<Summary> = serde_json::from_slice(body).expect("decodes");
        let listed: Vec<Listed> = summaries.into_iter().filter_map(listed).collect();
        assert_eq!(listed[0].status, Status::Other("stopped".into()));
        assert_eq!(listed[0].container.name, "hhpod-a");
        assert_eq!(listed[1].status, Status::Running);
        assert_eq!(listed[1].health, Health::None);
    }

    #[test]
    fn list_filters_are_percent_encoded() {
        assert_eq!(
            percent_encode(r#"{"status":["exited"]}"#),
            "%7B%22status%22%3A%5B%22exited%22%5D%7D"
        );
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
