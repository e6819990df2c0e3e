//! The watch loop: connect, subscribe to events, list, and hand each target that may need help
//! to a check task; reconnect with a capped back-off when the engine goes away.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use tokio::task::{JoinError, JoinSet};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::audit::{now_rfc3339, ActionRecord, Audit};
use crate::config::{Config, Mode};
use crate::engine::{Engine, EngineError, Event, EventKind};
use crate::policy::{classify, describe, needs_inspection, Health, Snapshot, Status, Verdict};
use crate::targets::{ContainerRef, TargetName};

/// Reconnect delays after the engine is lost: doubling from the first to the cap.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_CAP: Duration = Duration::from_secs(30);
/// A session that lasted this long was a real one; the next outage starts its back-off afresh.
const SESSION_STABLE: Duration = Duration::from_secs(10);
/// How far back the event subscription asks the engine to replay, to cover the moment between
/// subscribing and the first list (and a little clock skew).
const REPLAY: Duration = Duration::from_secs(2);
/// Requests wait this much longer than the stop timeout, since a restart waits for it.
const REQUEST_SLACK: Duration = Duration::from_secs(30);

/// Watches the targets until `cancel` fires, then lets in-flight actions finish.
pub async fn run(config: Arc<Config>, audit: Arc<Audit>, cancel: CancellationToken) {
    let mut watch = Watch::new(config, audit);
    watch.run(&cancel).await;
}

/// What a check task found and did.
struct Checked {
    container: ContainerRef,
    target: TargetName,
    outcome: Outcome,
}

enum Outcome {
    /// The container no longer exists.
    Gone,
    /// Looked at it; nothing to do, or not ours to do in this mode.
    Seen(Snapshot, Verdict),
    /// Acted on it (already logged and recorded).
    Acted,
    /// The engine did not answer the inspect call.
    Failed(EngineError),
}

struct Watch {
    config: Arc<Config>,
    audit: Arc<Audit>,
    /// Every container of the engine by id: from the last list, kept current by events.
    known: HashMap<String, ContainerRef>,
    /// Targets reported missing, so that is said once.
    missing: HashSet<TargetName>,
    /// The last verdict that was reported for a container without action, so it is said once.
    reported: HashMap<String, Verdict>,
    /// Containers with a check under way; `true` when a failure was seen again meanwhile, so it
    /// is checked once more when the current check ends.
    in_flight: HashMap<String, bool>,
    tasks: JoinSet<Checked>,
    announced: bool,
}

impl Watch {
    fn new(config: Arc<Config>, audit: Arc<Audit>) -> Watch {
        Watch {
            config,
            audit,
            known: HashMap::new(),
            missing: HashSet::new(),
            reported: HashMap::new(),
            in_flight: HashMap::new(),
            tasks: JoinSet::new(),
            announced: false,
        }
    }

    async fn run(&mut self, cancel: &CancellationToken) {
        let host = self.config.docker_host.clone();
        let request_timeout = self.config.stop_timeout + REQUEST_SLACK;
        let mut delay = RECONNECT_FIRST;
        // The reason the engine is unreachable, said once until it changes or the engine returns.
        let mut outage: Option<String> = None;
        loop {
            let connected = tokio::select! {
                _ = cancel.cancelled() => break,
                r = Engine::connect(&host, request_timeout) => r,
            };
            let started = Instant::now();
            match connected {
                Ok(engine) => {
                    if outage.take().is_some() {
                        info!(docker_host = %host, "the Docker engine answers again; resynchronising");
                    } else {
                        info!(docker_host = %host, api = %engine.api_version(), "connected to the Docker engine");
                    }
                    match self.session(&engine, cancel).await {
                        Ok(()) => break,
                        Err(e) => {
                            warn!(error = %e, "lost the Docker engine; reconnecting");
                            outage = Some(e.to_string());
                        }
                    }
                }
                Err(e) => {
                    let reason = e.to_string();
                    if outage.as_deref() != Some(reason.as_str()) {
                        warn!(
                            "{reason}; retrying, at most every {}s",
                            RECONNECT_CAP.as_secs()
                        );
                        outage = Some(reason);
                    }
                }
            }
            if started.elapsed() > SESSION_STABLE {
                delay = RECONNECT_FIRST;
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(RECONNECT_CAP);
        }
        if !self.tasks.is_empty() {
            info!(
                count = self.tasks.len(),
                "stopping: letting in-flight checks finish"
            );
        }
        while let Some(done) = self.tasks.join_next().await {
            self.finished(done, None);
        }
        info!("stopped");
    }

    /// One connection's worth of watching. Returns `Ok` when cancelled, `Err` when the engine is
    /// lost.
    async fn session(
        &mut self,
        engine: &Engine,
        cancel: &CancellationToken,
    ) -> Result<(), EngineError> {
        // Subscribe first, then list: the replay covers whatever happens in between. The
        // engine keeps only 256 past events, so after a lost connection we re-list, not replay.
        let events = engine.events(SystemTime::now() - REPLAY);
        tokio::pin!(events);
        self.reconcile(engine, cancel).await?;
        if !self.announced {
            self.announced = true;
            let names: Vec<&str> = self.config.targets.iter().map(TargetName::as_str).collect();
            info!(
                targets = %names.join(","),
                mode = %self.config.mode,
                poll_interval = ?self.config.poll_interval,
                "watching"
            );
        }
        let period = self.config.poll_interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                Some(done) = self.tasks.join_next() => self.finished(done, Some(engine)),
                item = events.next() => match item {
                    Some(Ok(event)) => self.on_event(event, engine),
                    Some(Err(e)) => return Err(e),
                    None => return Err(EngineError::StreamEnded),
                },
                _ = tick.tick() => self.reconcile(engine, cancel).await?,
            }
        }
    }

    /// One list call for all targets; containers that may need help are checked.
    async fn reconcile(
        &mut self,
        engine: &Engine,
        cancel: &CancellationToken,
    ) -> Result<(), EngineError> {
        let listed = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = engine.list() => r?,
        };
        self.known = listed
            .iter()
            .map(|l| (l.container.id.clone(), l.container.clone()))
            .collect();
        debug!(containers = listed.len(), "reconcile pass");
        self.reported.retain(|id, _| self.known.contains_key(id));
        let all: Vec<ContainerRef> = listed.iter().map(|l| l.container.clone()).collect();
        let config = Arc::clone(&self.config);
        for (target, matched) in config.targets.resolve(&all) {
            if matched.is_empty() {
                self.report_missing(target);
                continue;
            }
            if self.missing.remove(target) {
                info!(target = %target, "target found");
            }
            for c in matched {
                let Some(l) = listed.iter().find(|l| l.container.id == c.id) else {
                    continue;
                };
                if needs_inspection(l) {
                    self.check(c.clone(), target.clone(), engine);
                } else if self.reported.remove(&c.id).is_some() {
                    info!(target = %target, container = %c.name, "running again");
                }
            }
        }
        Ok(())
    }

    fn report_missing(&mut self, target: &TargetName) {
        if self.missing.insert(target.clone()) {
            warn!(
                target = %target,
                "target not found: no container has this name or compose service; \
                 it will be watched as soon as it is created"
            );
        }
    }

    fn on_event(&mut self, event: Event, engine: &Engine) {
        let Event { kind, container } = event;
        if kind == EventKind::Destroy {
            self.known.remove(&container.id);
            self.reported.remove(&container.id);
        } else {
            self.known.insert(container.id.clone(), container.clone());
        }
        let Some(target) = self
            .config
            .targets
            .target_of(&container, self.known.values())
            .cloned()
        else {
            return;
        };
        debug!(target = %target, container = %container.name, event = ?kind, "event");
        match kind {
            EventKind::Die | EventKind::Health(Health::Unhealthy) => {
                self.check(container, target, engine)
            }
            EventKind::Oom => {
                warn!(target = %target, container = %container.name, "out of memory")
            }
            EventKind::Create if self.missing.remove(&target) => {
                info!(target = %target, container = %container.name, "target found");
            }
            EventKind::Destroy => {
                warn!(target = %target, container = %container.name, "target container removed");
                let all: Vec<ContainerRef> = self.known.values().cloned().collect();
                let left = all
                    .iter()
                    .any(|c| self.config.targets.target_of(c, &all) == Some(&target));
                if !left {
                    self.report_missing(&target);
                }
            }
            EventKind::Health(Health::Healthy) | EventKind::Start
                if self.reported.remove(&container.id).is_some() =>
            {
                info!(target = %target, container = %container.name, "running again");
            }
            _ => {}
        }
    }

    /// Starts a check of `container` unless one is under way; then it is checked again after.
    fn check(&mut self, container: ContainerRef, target: TargetName, engine: &Engine) {
        if let Some(again) = self.in_flight.get_mut(&container.id) {
            *again = true;
            return;
        }
        self.in_flight.insert(container.id.clone(), false);
        let task = CheckTask {
            engine: engine.clone(),
            audit: Arc::clone(&self.audit),
            mode: self.config.mode,
            stop_timeout: self.config.stop_timeout,
        };
        self.tasks.spawn(task.run(container, target));
    }

    fn finished(&mut self, done: Result<Checked, JoinError>, engine: Option<&Engine>) {
        let checked = match done {
            Ok(c) => c,
            Err(e) => {
                // Only a bug can get here; say so loudly and keep watching.
                error!(error = %e, "a check task failed");
                return;
            }
        };
        let Checked {
            container,
            target,
            outcome,
        } = checked;
        let again = self.in_flight.remove(&container.id).unwrap_or(false);
        match outcome {
            Outcome::Gone => {
                debug!(target = %target, container = %container.name, "container is gone")
            }
            Outcome::Acted => {
                self.reported.remove(&container.id);
            }
            Outcome::Failed(e) => {
                warn!(target = %target, container = %container.name, error = %e, "check failed")
            }
            Outcome::Seen(snapshot, verdict) => self.report(&target, &snapshot, verdict),
        }
        if let (true, Some(engine)) = (again, engine) {
            self.check(container, target, engine);
        }
    }

    /// Says once what was seen about a target that is not being acted on.
    fn report(&mut self, target: &TargetName, s: &Snapshot, verdict: Verdict) {
        let id = &s.container.id;
        if verdict == Verdict::Fine {
            if self.reported.remove(id).is_some() {
                info!(target = %target, container = %s.container.name, "running again");
            }
            return;
        }
        if verdict == Verdict::Wait {
            // A health check in its start period is the normal course after any start.
            debug!(target = %target, container = %s.container.name, "health check starting; waiting");
            return;
        }
        if self.reported.get(id) == Some(&verdict) {
            return;
        }
        self.reported.insert(id.clone(), verdict);
        let seen = describe(s);
        let container = &s.container.name;
        match verdict {
            _ if verdict.acts() => warn!(
                target = %target, container = %container, seen = %seen, decision = %verdict,
                "needs an operator: MODE=manual does not act on its own (set MODE=auto to revive automatically)"
            ),
            Verdict::Wait => {
                info!(target = %target, container = %container, seen = %seen, "health check starting; waiting")
            }
            Verdict::LeaveToEngine => {
                info!(target = %target, container = %container, seen = %seen, "the engine's restart policy is at work; leaving it")
            }
            _ => {
                warn!(target = %target, container = %container, seen = %seen, "not acting on this state")
            }
        }
    }
}

/// What a check needs, owned, so it can run as its own task.
struct CheckTask {
    engine: Engine,
    audit: Arc<Audit>,
    mode: Mode,
    stop_timeout: Duration,
}

impl CheckTask {
    /// Inspects the container, decides, and in auto mode acts, checks the outcome and records it.
    async fn run(self, container: ContainerRef, target: TargetName) -> Checked {
        let outcome = match self.engine.inspect(&container).await {
            Ok(None) => Outcome::Gone,
            Err(e) => Outcome::Failed(e),
            Ok(Some(snapshot)) => {
                let verdict = classify(&snapshot);
                if verdict.acts() && self.mode == Mode::Auto {
                    self.act(&target, &snapshot, verdict).await;
                    Outcome::Acted
                } else {
                    Outcome::Seen(snapshot, verdict)
                }
            }
        };
        Checked {
            container,
            target,
            outcome,
        }
    }

    async fn act(&self, target: &TargetName, s: &Snapshot, verdict: Verdict) {
        let c = &s.container;
        let seen = describe(s);
        info!(target = %target, container = %c.name, seen = %seen, decision = %verdict, "reviving");
        let began = Instant::now();
        let done = match verdict {
            Verdict::Restart => self.engine.restart(c, self.stop_timeout).await,
            _ => self.engine.start(c).await,
        };
        let (result, error) = match done {
            Err(e) => ("failed".to_string(), Some(e.docker_text())),
            Ok(()) => match self.engine.inspect(c).await {
                Ok(Some(after)) if after.status == Status::Running => ("running".to_string(), None),
                Ok(Some(after)) => (describe(&after), after.error.clone()),
                Ok(None) => ("removed".to_string(), None),
                Err(e) => ("unknown".to_string(), Some(e.docker_text())),
            },
        };
        let took = began.elapsed();
        let took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        match &error {
            None if result == "running" => {
                info!(target = %target, container = %c.name, took_ms, "revived: running again")
            }
            _ => warn!(
                target = %target, container = %c.name, result = %result,
                error = error.as_deref().unwrap_or(""), "revival did not bring it back"
            ),
        }
        self.audit.record(&ActionRecord {
            time: now_rfc3339(),
            target: target.as_str(),
            container: &c.name,
            container_id: &c.id,
            mode: "auto",
            seen,
            state: s,
            decision: verdict,
            result,
            error,
            took_ms,
        });
    }
}
