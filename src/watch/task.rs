//! The work the shell hands out: inspect a container, or act on it. Each runs as a task of its
//! own so the loop never waits on the engine, and brings back an input for the core.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::docker::{Docker, DockerError, Failure, Started};
use super::{Act, ActResult, Acted, Action, Done, Input, Own, Reach};
use crate::policy::{describe, Status};
use crate::targets::ContainerRef;

/// Runs a task so that whatever becomes of it, the core hears about its container: a panic (a
/// bug) comes back as [`Input::TaskLost`] instead of leaving the container waiting forever.
pub(super) async fn guarded<D>(container_id: String, task: impl Future<Output = Input>) -> Done<D> {
    match AssertUnwindSafe(task).catch_unwind().await {
        Ok(input) => Done::Core(Box::new(input)),
        Err(_) => Done::Core(Box::new(Input::TaskLost { container_id })),
    }
}

/// An action, run so that even a panic (a bug) midway leaves its record: the start may have
/// been sent.
pub(super) async fn guarded_act<D: Docker>(
    engine: D,
    calls: Arc<Semaphore>,
    a: Act,
    withdrawn: CancellationToken,
) -> Done<D> {
    let kept = a.clone();
    let began = Instant::now();
    match AssertUnwindSafe(act(engine, calls, a, withdrawn))
        .catch_unwind()
        .await
    {
        Ok(input) => Done::Core(Box::new(input)),
        Err(_) => Done::Core(Box::new(Input::Acted(Acted {
            act: kept,
            result: ActResult::Unknown {
                error: "the action's task failed midway (a bug); look at the container".into(),
            },
            took: began.elapsed(),
        }))),
    }
}

pub(super) async fn inspect(
    engine: impl Docker,
    calls: Arc<Semaphore>,
    container: ContainerRef,
) -> Input {
    // The semaphore is never closed, so acquiring only waits.
    let _permit = calls.acquire().await;
    let began = Instant::now();
    let result = engine.inspect(&container).await;
    // How long the engine took: after a die it holds the container while it finishes the
    // exit, and the benchmark tells that apart from our own time.
    let took_us = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
    tracing::debug!(container = %container.name, took_us, "inspected");
    Input::Inspected {
        container,
        result: result.map_err(|e| e.to_string()),
    }
}

/// Starts or restarts the container, and looks whether it runs again; `withdrawn` before the
/// start is sent, it is not sent (see [`super::Command::Withdraw`]).
pub(super) async fn act(
    engine: impl Docker,
    calls: Arc<Semaphore>,
    act: Act,
    withdrawn: CancellationToken,
) -> Input {
    let began = Instant::now();
    let result = carry_out(&engine, &calls, act.stop_timeout, &act, &withdrawn).await;
    Input::Acted(Acted {
        act,
        result,
        took: began.elapsed(),
    })
}

/// Each quick call holds one of the `calls` permits while it runs; the stop, which waits up to
/// the stop timeout inside the engine, holds none, so a stubborn container being restarted
/// never delays another target's look or start.
async fn carry_out(
    engine: &impl Docker,
    calls: &Semaphore,
    stop_timeout: Duration,
    act: &Act,
    withdrawn: &CancellationToken,
) -> ActResult {
    let c = &act.seen.container;
    let failed = |e: DockerError| match e.engine_answered() {
        true => ActResult::Failed {
            denied: e.is_permission_denied(),
            error: e.docker_text(),
        },
        false => ActResult::Unreachable {
            error: e.docker_text(),
        },
    };
    if let (Action::Recreate, Some(parent)) = (act.action, &act.parent) {
        // No permit: like a restart's stop, it may wait out the stop timeout.
        return match engine.recreate(c, &parent.id, stop_timeout).await {
            Ok(id) => ActResult::Recreated { id },
            Err(e) => recreate_failed(&e),
        };
    }
    if act.action == Action::Stop {
        return match engine.stop(c, stop_timeout).await {
            Ok(()) => ActResult::Stopped,
            Err(e) => failed(e),
        };
    }
    if act.action == Action::Restart {
        if let Err(e) = engine.stop(c, stop_timeout).await {
            return failed(e);
        }
        // Compose may have renamed it for a recreate while it stopped: then it is compose's. If
        // that cannot be told, it is not started: the look after the action decides again.
        let _permit = calls.acquire().await;
        if let Some(left) = changed_since_the_look(engine, c, "stopped; then ").await {
            return left;
        }
    }
    let _permit = calls.acquire().await;
    if withdrawn.is_cancelled() {
        return ActResult::Withdrawn;
    }
    if act.action == Action::Start && !look_still_fresh(act) {
        // Who it is, once more, just before the start: renamed or relabelled since the look
        // (compose replacing it, `docker rename`), it may be no target any more.
        if let Some(left) = changed_since_the_look(engine, c, "").await {
            return left;
        }
    }
    match engine.start(c).await {
        Err(e) => return failed(e),
        Ok(Started::Already) => return ActResult::AlreadyRunning,
        Ok(Started::Now) => {}
    }
    match engine.inspect(c).await {
        Ok(Some(after)) if after.status == Status::Running => ActResult::Running,
        Ok(Some(after)) => ActResult::NotRunning {
            seen: describe(&after),
            error: after.error.clone(),
        },
        Ok(None) => ActResult::Removed,
        Err(e) => ActResult::Unknown {
            error: e.docker_text(),
        },
    }
}

/// A look this recent needs no second one before a start: see [`look_still_fresh`].
const LOOK_STILL_FRESH: Duration = Duration::from_millis(100);

/// Whether the start may go by the core's look alone: the container died by itself (compose
/// renames a container only after stopping it through the API, which the core lets settle
/// first), and the look was answered a moment ago, not before a wait for a free call. An event
/// that comes in between still makes the core look again after the action.
fn look_still_fresh(act: &Act) -> bool {
    let now = tokio::time::Instant::now().into_std();
    act.cause.is_its_own() && now.saturating_duration_since(act.decided) < LOOK_STILL_FRESH
}

/// Why `c` is not to be started, if it is not what the look saw any more: renamed or
/// relabelled, removed, or not to be told (`before` says what was done already).
async fn changed_since_the_look(
    engine: &impl Docker,
    c: &ContainerRef,
    before: &str,
) -> Option<ActResult> {
    match engine.inspect(c).await {
        Ok(Some(now)) if !now.container.same_identity(c) => Some(ActResult::LeftStopped {
            now: format!("{} ({})", now.container.name, describe(&now)),
        }),
        Ok(None) => Some(ActResult::Removed),
        Err(e) => Some(ActResult::Unknown {
            error: format!("{before}{}; not started", e.docker_text()),
        }),
        Ok(Some(_)) => None,
    }
}

/// What a failed recreation was: the container gone is [`ActResult::Removed`]; a call the
/// engine answered with an error, or a container the recreation refuses (`--rm`, renamed),
/// is [`ActResult::Failed`] and counts toward the back-off and quarantine; only a call that
/// got no answer at all is [`ActResult::Unreachable`], which counts nothing and is tried
/// again once the engine answers.
fn recreate_failed(e: &DockerError) -> ActResult {
    match e.kind() {
        Failure::Gone => ActResult::Removed,
        _ if e.is_unreachable() => ActResult::Unreachable {
            error: e.docker_text(),
        },
        _ => ActResult::Failed {
            denied: e.is_permission_denied(),
            error: e.docker_text(),
        },
    }
}

/// healthther's own container, when it runs in one (its id is in the paths of the files the
/// engine mounts into it, `/etc/hostname` and the like): its compose project, and the networks
/// its probes reach containers on. On the host, every container's address. `None` when its
/// container could not be inspected.
pub(super) async fn own(engine: &impl Docker) -> Option<Own> {
    // A small file of the kernel's, read at once: no need to leave the runtime thread.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(id) = own_container_id(&mountinfo) else {
        return Some(Own {
            project: None,
            reach: Reach::Anywhere,
        });
    };
    let me = engine.inspect(&by_id(id)).await.ok()??;
    // Sharing another container's network (`network_mode: service:X`): X's networks.
    let holder = match &me.network_parent {
        Some(parent) => engine.inspect(&by_id(parent.clone())).await.ok()??,
        None => me.clone(),
    };
    let reach = if holder.host_network {
        Reach::Anywhere
    } else {
        // On no network at all (`network_mode: none`), it reaches nobody.
        let mut networks: Vec<String> = holder.addresses.into_iter().map(|a| a.network).collect();
        networks.dedup();
        Reach::Networks(networks)
    };
    Some(Own {
        project: me.container.project,
        reach,
    })
}

fn by_id(id: String) -> ContainerRef {
    ContainerRef {
        id,
        ..ContainerRef::default()
    }
}

/// The 64-hex-digit container id in the source of `/etc/hostname`, `/etc/hosts` or
/// `/etc/resolv.conf` (`/var/lib/docker/containers/<id>/hostname`), if the engine mounted one
/// of them for us. Only those: on the host, the mount table also lists other containers' files
/// (the `/dev/shm` of one with `--ipc=shareable`, under its directory), which are not ours.
fn own_container_id(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        // Fields: mount id, parent id, major:minor, root (the source path), mount point, ...
        let mut fields = line.split(' ');
        let root = fields.nth(3)?;
        let point = fields.next()?;
        if !matches!(point, "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf") {
            return None;
        }
        let (_, rest) = root.split_once("/containers/")?;
        let id: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        (id.len() == 64 && rest[64..].starts_with('/')).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Snapshot;
    use crate::watch::core::Cause;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An engine that answers every inspect with `now`, and remembers whether a start came.
    #[derive(Clone)]
    struct Renamed {
        now: Snapshot,
        started: Arc<AtomicBool>,
    }

    impl Docker for Renamed {
        async fn list(&self, _: bool) -> Result<Vec<crate::policy::Listed>, DockerError> {
            Ok(Vec::new())
        }
        async fn inspect(&self, _: &ContainerRef) -> Result<Option<Snapshot>, DockerError> {
            Ok(Some(self.now.clone()))
        }
        async fn start(&self, _: &ContainerRef) -> Result<Started, DockerError> {
            self.started.store(true, Ordering::SeqCst);
            Ok(Started::Now)
        }
        async fn stop(&self, _: &ContainerRef, _: Duration) -> Result<(), DockerError> {
            Ok(())
        }
        async fn recreate(
            &self,
            _: &ContainerRef,
            _: &str,
            _: Duration,
        ) -> Result<String, DockerError> {
            Ok(String::new())
        }
        fn events(
            &self,
            _: std::time::SystemTime,
        ) -> impl futures_util::Stream<Item = Result<crate::watch::core::event::Event, DockerError>>
               + Send
               + 'static {
            futures_util::stream::empty()
        }
        fn api_version(&self) -> String {
            "1.41".into()
        }
        async fn repair_recreations<T, F>(&self, _: F, _: Duration) -> Vec<(T, ContainerRef)>
        where
            T: Send,
            F: Fn(&ContainerRef) -> Option<T> + Send + Sync,
        {
            Vec::new()
        }
    }

    fn snapshot_of(name: &str, status: Status) -> Snapshot {
        Snapshot {
            container: ContainerRef {
                id: "1".into(),
                name: name.into(),
                ..ContainerRef::default()
            },
            status,
            health: crate::policy::Health::None,
            exit_code: Some(137),
            oom_killed: false,
            has_run: true,
            started_at: Some("2026-12-06T00:00:00Z".into()),
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

    /// The start checks who the container is just before, unless the look is a moment old
    /// and the container died by itself (see `look_still_fresh`): after a wait for a free
    /// call, or after a stop through the API (compose renames what it stopped).
    #[tokio::test]
    async fn a_start_rechecks_who_the_container_is_just_before() {
        for (cause, looked) in [
            (Cause::Crash, Duration::from_secs(1)),
            (Cause::ApiStop, Duration::ZERO),
        ] {
            let engine = renamed_since_the_look();
            let act = act_on("nodo_1", cause, Instant::now() - looked);
            let calls = Semaphore::new(1);
            let result = carry_out(
                &engine,
                &calls,
                act.stop_timeout,
                &act,
                &CancellationToken::new(),
            )
            .await;
            assert!(
                matches!(result, ActResult::LeftStopped { .. }),
                "{cause:?}: {result:?}"
            );
            assert!(
                !engine.started.load(Ordering::SeqCst),
                "{cause:?}: renamed since the look: not started"
            );
        }
    }

    fn renamed_since_the_look() -> Renamed {
        let mut now = snapshot_of("nodo_1", Status::Exited);
        now.container.name = "kept_for_forensics".into();
        Renamed {
            now,
            started: Arc::new(AtomicBool::new(false)),
        }
    }

    fn act_on(name: &str, cause: Cause, decided: Instant) -> Act {
        Act {
            target: crate::targets::Targets::parse(name)
                .ok()
                .and_then(|t| t.iter().next().cloned())
                .expect("a valid target"),
            seen: snapshot_of(name, Status::Exited),
            action: Action::Start,
            approval: super::super::Approval::Auto,
            mode: crate::config::Mode::Auto,
            stop_timeout: Duration::from_secs(1),
            cause,
            parent: None,
            decided,
        }
    }

    #[test]
    fn a_failed_recreation_is_unreachable_only_when_nothing_answered() {
        use crate::engine::EngineError;
        use crate::recreate::RecreateError;
        use bollard::errors::Error as BollardError;
        let recreate = |e| EngineError::Recreate("torrent".into(), e);
        let call = |source| EngineError::Call {
            doing: "creating container torrent".into(),
            source,
        };
        let answered = |status_code| {
            call(BollardError::DockerResponseServerError {
                status_code,
                message: "no".into(),
            })
        };
        assert_eq!(
            recreate_failed(&recreate(RecreateError::Gone).into()),
            ActResult::Removed
        );
        for refused in [
            recreate(RecreateError::AutoRemove),
            recreate(RecreateError::NotAnObject),
            recreate(RecreateError::Changed { now: "x".into() }),
            // The parent gone, from the create: the dependent itself is there.
            answered(404),
            answered(409),
            answered(500),
            // `{` alone is never JSON.
            call(BollardError::JsonSerdeError {
                err: serde_json::from_str::<serde_json::Value>("{").unwrap_err(),
            }),
        ] {
            let shown = format!("{refused:?}");
            assert!(
                matches!(
                    recreate_failed(&refused.into()),
                    ActResult::Failed { denied: false, .. }
                ),
                "{shown}"
            );
        }
        assert!(matches!(
            recreate_failed(&answered(403).into()),
            ActResult::Failed { denied: true, .. }
        ));
        let cut = call(BollardError::IOError {
            err: std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"),
        });
        assert!(matches!(
            recreate_failed(&cut.into()),
            ActResult::Unreachable { .. }
        ));
    }

    #[test]
    fn finds_its_own_container_id() {
        let id = "4f0c2d1e".repeat(8);
        let inside = format!(
            "612 590 254:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(own_container_id(&inside), Some(id.clone()));
        let host = "25 1 254:1 / / rw,relatime - ext4 /dev/vda rw\n";
        assert_eq!(own_container_id(host), None);
        // On the host, a running container with --ipc=shareable (the engine's default before
        // 20.10) has its /dev/shm mounted under its directory: not ours.
        let shared = format!(
            "{host}301 45 0:141 / /var/lib/docker/containers/{id}/mounts/shm rw,nosuid - tmpfs \
             shm rw,size=65536k\n"
        );
        assert_eq!(own_container_id(&shared), None);
        // Inside, the same line may come before the files the engine mounts for us.
        let other = "9".repeat(64);
        let both = format!(
            "301 45 0:141 / /var/lib/docker/containers/{other}/mounts/shm rw - tmpfs shm rw\n\
             {inside}"
        );
        assert_eq!(own_container_id(&both), Some(id.clone()));
        assert_eq!(own_container_id("1 2 3:4 /containers/abc/x /y rw"), None);
    }
}
