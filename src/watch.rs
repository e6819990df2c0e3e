//! The watch loop: connect, subscribe to events, list, and hand each target that may need help
//! to a task; decide with the restart policy whether to act now, later or not at all, and in
//! manual mode ask the operator first. Reconnects with a capped back-off when the engine goes
//! away.

mod operator;
mod task;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::audit::{now_rfc3339, Audit, EventRecord};
use crate::backoff::{History, Plan, GRACE};
use crate::config::{Config, Mode};
use crate::control::Input;
use crate::engine::{Engine, EngineError, Event, EventKind};
use crate::policy::{describe, needs_inspection, ran_for, Health, Snapshot, Verdict};
use crate::prompt::{Pending, Prompts};
use crate::targets::{ContainerRef, TargetName};
use task::{Approval, Done, Outcome, Tasks};

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
/// Engine calls under way at once: enough to revive many targets in parallel, few enough not
/// to flood an engine that is struggling already.
const PARALLEL_CALLS: usize = 8;

/// Where the operator's words come from.
pub struct Operator {
    pub inputs: mpsc::Receiver<Input>,
    /// Whether a terminal is there to answer prompts on.
    pub terminal: bool,
}

/// Watches the targets until `cancel` fires, then lets in-flight actions finish.
pub async fn run(
    config: Arc<Config>,
    audit: Arc<Audit>,
    operator: Operator,
    cancel: CancellationToken,
) {
    let mut watch = Watch::new(config, audit, operator);
    watch.run(&cancel).await;
}

struct Watch {
    config: Arc<Config>,
    audit: Arc<Audit>,
    operator: Operator,
    /// The engine of the current session; `None` while it is unreachable.
    engine: Option<Engine>,
    calls: Arc<Semaphore>,
    /// Every container of the engine by id: from the last list, kept current by events.
    known: HashMap<String, ContainerRef>,
    /// Targets reported missing, so that is said once.
    missing: HashSet<TargetName>,
    /// The last verdict that was reported for a container without action, so it is said once.
    reported: HashMap<String, Verdict>,
    /// Containers with a task under way, with the check to run after it when a failure was
    /// seen (or an answer given) meanwhile.
    in_flight: HashMap<String, Option<Option<Approval>>>,
    tasks: JoinSet<Done>,
    /// Re-checks waiting out a back-off, by container id.
    scheduled: HashSet<String>,
    timers: JoinSet<(ContainerRef, TargetName)>,
    /// Revival histories by container id: back-off and quarantine.
    histories: HashMap<String, History>,
    /// Containers whose last start or restart the engine's endpoint refused as not allowed
    /// (401/403), with when to try again: the back-off cap, never counted toward quarantine.
    denied: HashMap<String, Instant>,
    prompts: Prompts,
    /// The container whose prompt is on the console now.
    shown: Option<String>,
    /// The container an operator's approval is being carried out on: the next prompt waits
    /// for its outcome, so the terminal reads answer, outcome, next question.
    awaiting_outcome: Option<String>,
    /// When the last reconciliation pass completed: the loop's pulse, for `healthther probe`.
    last_pass: Option<Instant>,
    /// Whether the operator was told how to answer without a terminal.
    told_how_to_answer: bool,
    announced: bool,
}

impl Watch {
    fn new(config: Arc<Config>, audit: Arc<Audit>, operator: Operator) -> Watch {
        Watch {
            config,
            audit,
            operator,
            engine: None,
            calls: Arc::new(Semaphore::new(PARALLEL_CALLS)),
            known: HashMap::new(),
            missing: HashSet::new(),
            reported: HashMap::new(),
            in_flight: HashMap::new(),
            tasks: JoinSet::new(),
            scheduled: HashSet::new(),
            timers: JoinSet::new(),
            histories: HashMap::new(),
            denied: HashMap::new(),
            prompts: Prompts::default(),
            shown: None,
            awaiting_outcome: None,
            last_pass: None,
            told_how_to_answer: false,
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
                    self.engine = Some(engine.clone());
                    let ended = self.session(&engine, cancel).await;
                    self.engine = None;
                    match ended {
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
            let wait = tokio::time::sleep(delay);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = &mut wait => break,
                    Some(done) = self.tasks.join_next() => self.finished(done),
                    Some(input) = self.operator.inputs.recv() => self.on_input(input),
                }
            }
            if cancel.is_cancelled() {
                break;
            }
            delay = (delay * 2).min(RECONNECT_CAP);
        }
        self.timers.abort_all();
        if !self.tasks.is_empty() {
            info!(
                count = self.tasks.len(),
                "stopping: letting in-flight actions finish"
            );
        }
        while let Some(done) = self.tasks.join_next().await {
            self.finished(done);
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
        let mut events = Some(engine.events(SystemTime::now() - REPLAY).boxed());
        self.reconcile(engine, cancel, true).await?;
        if !self.announced {
            self.announce();
        }
        let period = self.config.poll_interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // When the event stream is lost while the engine still answers, polling carries on and
        // the stream is asked for again after a growing delay.
        let mut resubscribe = RECONNECT_FIRST;
        let mut resubscribe_at: Option<tokio::time::Instant> = None;
        loop {
            let next_event = async {
                match events.as_mut() {
                    Some(stream) => stream.next().await,
                    None => std::future::pending().await,
                }
            };
            let resubscribe_due = async {
                match resubscribe_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                Some(done) = self.tasks.join_next() => self.finished(done),
                Some(due) = self.timers.join_next() => {
                    if let Ok((container, target)) = due {
                        self.scheduled.remove(&container.id);
                        self.check(container, target, None);
                    }
                }
                item = next_event => match item {
                    Some(Ok(event)) => {
                        resubscribe = RECONNECT_FIRST;
                        self.on_event(event);
                    }
                    ended => {
                        let why = match ended {
                            Some(Err(e)) => e,
                            _ => EngineError::StreamEnded,
                        };
                        events = None;
                        // Is it the engine that is gone, or only the stream? A list tells, and
                        // brings back what the stream would have said.
                        self.reconcile(engine, cancel, true).await?;
                        if resubscribe == RECONNECT_FIRST {
                            warn!(error = %why, "lost the event stream; watching by polling \
                                every {}s until it is back", period.as_secs_f32());
                        } else {
                            debug!(error = %why, "the event stream is still away");
                        }
                        resubscribe_at = Some(tokio::time::Instant::now() + resubscribe);
                        resubscribe = (resubscribe * 2).min(RECONNECT_CAP);
                    }
                },
                _ = resubscribe_due => {
                    resubscribe_at = None;
                    events = Some(engine.events(SystemTime::now() - REPLAY).boxed());
                }
                Some(input) = self.operator.inputs.recv() => self.on_input(input),
                _ = tick.tick() => self.reconcile(engine, cancel, false).await?,
            }
        }
    }

    fn announce(&mut self) {
        self.announced = true;
        let names: Vec<&str> = self.config.targets.iter().map(TargetName::as_str).collect();
        info!(
            targets = %names.join(","),
            mode = %self.config.mode,
            poll_interval = ?self.config.poll_interval,
            "watching"
        );
        if self.config.mode == Mode::Manual && !self.operator.terminal {
            self.tell_how_to_answer("stdin is not a terminal");
        }
    }

    /// One list call for all targets; containers that may need help are checked.
    /// A reconciliation pass: one list call (`full`, at the start of a session) of every
    /// container, or two small calls of only those that may need attention. Targets among
    /// them are checked.
    async fn reconcile(
        &mut self,
        engine: &Engine,
        cancel: &CancellationToken,
        full: bool,
    ) -> Result<(), EngineError> {
        let listed = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = async { if full { engine.list().await } else { engine.list_unwell().await } } => r?,
        };
        debug!(containers = listed.len(), full, "reconcile pass");
        self.last_pass = Some(Instant::now());
        if full {
            self.known.clear();
        }
        for l in &listed {
            self.known
                .insert(l.container.id.clone(), l.container.clone());
        }
        if full {
            self.reported.retain(|id, _| self.known.contains_key(id));
            self.histories.retain(|id, _| self.known.contains_key(id));
            self.denied.retain(|id, _| self.known.contains_key(id));
            let all: Vec<ContainerRef> = self.known.values().cloned().collect();
            let config = Arc::clone(&self.config);
            for (target, matched) in config.targets.resolve(&all) {
                if matched.is_empty() {
                    self.report_missing(target);
                } else if self.missing.remove(target) {
                    info!(target = %target, "target found");
                }
            }
        }
        let mut unwell = HashSet::new();
        for l in listed.iter().filter(|l| needs_inspection(l)) {
            if let Some(target) = self.target_of(&l.container) {
                unwell.insert(l.container.id.clone());
                self.check(l.container.clone(), target, None);
            }
        }
        // Targets we are following (something was said, asked or done about them) are looked
        // at again even when the list left them out: the list may predate their failure, so
        // only a fresh look tells that they are well (and, after a revival, well for long
        // enough that their history can go).
        let followed: HashSet<String> = self
            .known
            .keys()
            .filter(|id| self.is_followed(id) && !unwell.contains(*id))
            .cloned()
            .collect();
        for id in followed {
            let Some(c) = self.known.get(&id).cloned() else {
                continue;
            };
            if let Some(target) = self.target_of(&c) {
                self.check(c, target, None);
            }
        }
        Ok(())
    }

    /// Whether something was said, asked or done about the container that a look at it
    /// may end.
    fn is_followed(&self, id: &str) -> bool {
        self.reported.contains_key(id)
            || self.histories.contains_key(id)
            || self.prompts.open().any(|p| p.container.id == id)
    }

    fn target_of(&self, c: &ContainerRef) -> Option<TargetName> {
        self.config
            .targets
            .target_of(c, self.known.values())
            .cloned()
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

    fn on_event(&mut self, event: Event) {
        let Event { kind, container } = event;
        if kind == EventKind::Destroy {
            self.known.remove(&container.id);
            self.reported.remove(&container.id);
            self.histories.remove(&container.id);
            self.denied.remove(&container.id);
        } else {
            self.known.insert(container.id.clone(), container.clone());
        }
        let Some(target) = self.target_of(&container) else {
            return;
        };
        debug!(target = %target, container = %container.name, event = ?kind, "event");
        match kind {
            EventKind::Die | EventKind::Health(Health::Unhealthy) => {
                self.check(container, target, None)
            }
            EventKind::Oom => {
                warn!(target = %target, container = %container.name, "out of memory")
            }
            EventKind::Create if self.missing.remove(&target) => {
                info!(target = %target, container = %container.name, "target found");
            }
            EventKind::Destroy => {
                warn!(target = %target, container = %container.name, "target container removed");
                self.drop_prompt(&container.id, "the container was removed");
                let all: Vec<ContainerRef> = self.known.values().cloned().collect();
                let left = all
                    .iter()
                    .any(|c| self.config.targets.target_of(c, &all) == Some(&target));
                if !left {
                    self.report_missing(&target);
                }
            }
            // Only a fresh look tells it is well: a health check that was under way when the
            // container died may still report healthy after the die.
            EventKind::Health(Health::Healthy) | EventKind::Start
                if self.is_followed(&container.id) =>
            {
                self.check(container, target, None)
            }
            _ => {}
        }
    }

    fn tasks(&self) -> Option<Tasks> {
        Some(Tasks {
            engine: self.engine.clone()?,
            audit: Arc::clone(&self.audit),
            mode: self.config.mode,
            stop_timeout: self.config.stop_timeout,
            calls: Arc::clone(&self.calls),
        })
    }

    /// Starts a check of `container` unless a task is under way for it; then it is checked
    /// again after (keeping an operator's approval).
    fn check(&mut self, container: ContainerRef, target: TargetName, approval: Option<Approval>) {
        let approval = approval.or_else(|| self.auto_approval());
        if let Some(next) = self.in_flight.get_mut(&container.id) {
            if next.as_ref().is_none_or(|a| a.is_none()) {
                *next = Some(approval);
            }
            return;
        }
        // While the engine is away there is nothing to do; the pass after it returns checks
        // every target.
        let Some(tasks) = self.tasks() else {
            return;
        };
        self.in_flight.insert(container.id.clone(), None);
        self.tasks.spawn(tasks.inspect(container, target, approval));
    }

    fn auto_approval(&self) -> Option<Approval> {
        (self.config.mode == Mode::Auto).then_some(Approval::Auto)
    }

    fn finished(&mut self, done: Result<Done, JoinError>) {
        let done = match done {
            Ok(d) => d,
            Err(e) => {
                // Only a bug can get here; say so loudly and keep watching.
                error!(error = %e, "a task failed");
                return;
            }
        };
        let Done {
            container,
            target,
            approval,
            outcome,
        } = done;
        let next = self.in_flight.remove(&container.id).flatten();
        match outcome {
            Outcome::Gone => {
                debug!(target = %target, container = %container.name, "container is gone");
                self.histories.remove(&container.id);
                self.denied.remove(&container.id);
                self.drop_prompt(&container.id, "the container was removed");
            }
            Outcome::Failed(e) => {
                warn!(target = %target, container = %container.name, error = %e, "check failed")
            }
            Outcome::Acted {
                call_failed,
                denied,
            } => {
                self.reported.remove(&container.id);
                if !denied {
                    self.denied.remove(&container.id);
                }
                if denied {
                    // A permission problem (a proxy's 403), not a failed revival: it does not
                    // count toward quarantine, and is tried again at the back-off cap.
                    let cap = self.config.limits.cap;
                    self.denied
                        .insert(container.id.clone(), Instant::now() + cap);
                    self.schedule(&container, &target, cap);
                } else if call_failed {
                    // No die event will follow a refused start: retry under the back-off.
                    let h = self.histories.entry(container.id.clone()).or_default();
                    h.revival_failed(Instant::now());
                    self.check(container.clone(), target.clone(), None);
                }
            }
            // An approval arrived while this look was under way: the check that carries it
            // runs next and decides; asking now would ask about an answered failure.
            Outcome::Seen(_, verdict)
                if verdict.acts() && approval.is_none() && matches!(next, Some(Some(_))) => {}
            Outcome::Seen(s, verdict) if verdict.acts() => {
                self.decide(&target, s, verdict, approval)
            }
            Outcome::Seen(s, verdict) => {
                if matches!(approval, Some(Approval::Operator { .. })) {
                    info!(target = %target, container = %container.name, seen = %describe(&s),
                        "nothing to revive any more");
                }
                self.settle(&target, &s);
                self.report(&target, &s, verdict);
            }
        }
        match next {
            Some(approval) => self.check(container, target, approval),
            None if self.awaiting_outcome.as_deref() == Some(container.id.as_str())
                && !self.in_flight.contains_key(&container.id) =>
            {
                self.awaiting_outcome = None;
                self.show_front();
            }
            None => {}
        }
    }

    /// A target needs action: act now, later, never, or ask.
    fn decide(
        &mut self,
        target: &TargetName,
        s: Snapshot,
        verdict: Verdict,
        approval: Option<Approval>,
    ) {
        let now = Instant::now();
        let limits = self.config.limits;
        let id = s.container.id.clone();
        if !matches!(approval, Some(Approval::Operator { .. })) {
            if let Some(left) = self
                .denied
                .get(&id)
                .and_then(|t| t.checked_duration_since(now))
            {
                self.schedule(&s.container, target, left);
                return;
            }
        }
        let plan = {
            let h = self.histories.entry(id.clone()).or_default();
            let run = s.started_at.clone().unwrap_or_default();
            h.failure(now, &run, ran_for(&s, SystemTime::now()), &limits);
            match &approval {
                None => None,
                // An answer to this very prompt is a person deciding: no back-off.
                Some(Approval::Operator { .. }) => Some(Plan::Revive),
                // Right after our own restart the engine may report the state from before.
                Some(_) if verdict == Verdict::Restart && h.in_grace(now) => {
                    Some(Plan::Wait(GRACE))
                }
                Some(_) => Some(h.plan(now, &limits)),
            }
        };
        let (Some(plan), Some(approval)) = (plan, approval) else {
            // Manual mode: the operator decides, unless they decided for good already.
            self.ask(target, &s, verdict);
            return;
        };
        match plan {
            Plan::Revive => {}
            Plan::Wait(d) => {
                info!(target = %target, container = %s.container.name, seen = %describe(&s),
                    wait_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                    "backing off before the next revival");
                self.schedule(&s.container, target, d);
                return;
            }
            Plan::Quarantine { newly } => {
                if newly {
                    self.quarantined(target, &s);
                }
                return;
            }
        }
        let Some(tasks) = self.tasks() else {
            return;
        };
        if let Some(h) = self.histories.get_mut(&id) {
            h.revived(now);
        }
        self.in_flight.insert(id, None);
        self.tasks
            .spawn(tasks.act(target.clone(), s, verdict, approval));
    }

    fn schedule(&mut self, c: &ContainerRef, target: &TargetName, after: Duration) {
        if self.scheduled.insert(c.id.clone()) {
            let due = (c.clone(), target.clone());
            self.timers.spawn(async move {
                tokio::time::sleep(after).await;
                due
            });
        }
    }

    fn quarantined(&mut self, target: &TargetName, s: &Snapshot) {
        let limits = self.config.limits;
        let note = format!(
            "{} revivals failed within {}: not reviving it any more. It is released when it \
             runs well for {} again, or with `healthther release {}`",
            limits.quarantine_after,
            humantime::format_duration(limits.window),
            humantime::format_duration(limits.reset_after),
            target
        );
        error!(target = %target, container = %s.container.name, seen = %describe(s),
            "QUARANTINED: {note}");
        self.record_event(
            "quarantine",
            target,
            &s.container,
            &describe(s),
            Some(&note),
        );
    }

    /// A target runs: if long enough, its revival history is over.
    fn settle(&mut self, target: &TargetName, s: &Snapshot) {
        let limits = self.config.limits;
        let Some(h) = self.histories.get_mut(&s.container.id) else {
            return;
        };
        let ran = ran_for(s, SystemTime::now());
        let was_quarantined = h.running(ran, &limits);
        if ran >= limits.reset_after {
            self.histories.remove(&s.container.id);
        }
        if was_quarantined {
            info!(target = %target, container = %s.container.name,
                "released from quarantine: it runs well again");
            self.record_event(
                "release",
                target,
                &s.container,
                &describe(s),
                Some("runs well again"),
            );
        }
    }

    /// A target's container is running well: whatever was said about it is over.
    fn well_again(&mut self, target: &TargetName, c: &ContainerRef) {
        if self.reported.remove(&c.id).is_some() {
            info!(target = %target, container = %c.name, "running again");
        }
        self.drop_prompt(&c.id, "it runs again without us");
    }

    /// Says once what was seen about a target that is not being acted on.
    fn report(&mut self, target: &TargetName, s: &Snapshot, verdict: Verdict) {
        let id = &s.container.id;
        if matches!(verdict, Verdict::Fine | Verdict::Wait) {
            // A health check in its start period is the normal course after any start.
            self.well_again(target, &s.container);
            return;
        }
        if self.reported.get(id) == Some(&verdict) {
            return;
        }
        self.reported.insert(id.clone(), verdict);
        let seen = describe(s);
        let container = &s.container.name;
        match verdict {
            Verdict::LeaveToEngine => info!(target = %target, container = %container, seen = %seen,
                "the engine's restart policy is at work; leaving it"),
            _ => warn!(target = %target, container = %container, seen = %seen,
                "not acting on this state"),
        }
    }

    fn record_event(
        &self,
        event: &'static str,
        target: &TargetName,
        c: &ContainerRef,
        seen: &str,
        note: Option<&str>,
    ) {
        self.audit.record(&EventRecord {
            time: now_rfc3339(),
            event,
            target: target.as_str(),
            container: &c.name,
            container_id: &c.id,
            seen,
            answer: None,
            by: None,
            note,
        });
    }

    /// The pending-prompt form of a failure.
    fn pending(&self, target: &TargetName, s: &Snapshot, verdict: Verdict) -> Pending {
        Pending {
            target: target.clone(),
            container: s.container.clone(),
            seen: describe(s),
            verdict,
            since: match s.status {
                crate::policy::Status::Running => SystemTime::now(),
                _ => s.finished_at.unwrap_or_else(SystemTime::now),
            },
            run: s.started_at.clone().unwrap_or_default(),
            failed_revivals: self
                .histories
                .get(&s.container.id)
                .map_or(0, History::recent_failures),
        }
    }
}
