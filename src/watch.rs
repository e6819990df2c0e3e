//! The watch loop: connect, subscribe to events, list, and hand each target that may need help
//! to a check task; in manual mode, ask the operator first. Reconnects with a capped back-off
//! when the engine goes away.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::audit::{self, now_rfc3339, ActionRecord, Audit, PromptRecord, FILE_ONLY};
use crate::config::{Config, Mode};
use crate::control::{Input, Reply, Request};
use crate::engine::{Engine, EngineError, Event, EventKind};
use crate::policy::{classify, describe, needs_inspection, Health, Snapshot, Status, Verdict};
use crate::prompt::{self, Answer, AnswerError, OnFailure, Pending, Prompts};
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

/// How late the loop's last pass may be, beyond two poll periods, for `probe` to call it alive.
const PROBE_SLACK: Duration = Duration::from_secs(10);

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

/// Who allowed an action: `auto` mode, or the operator (with their answer and where it came
/// from). A check without one only looks.
type Approval = Option<String>;

/// What a check task found and did.
struct Checked {
    container: ContainerRef,
    target: TargetName,
    approval: Approval,
    outcome: Outcome,
}

enum Outcome {
    /// The container no longer exists.
    Gone,
    /// Looked at it; nothing to do, or not allowed to act.
    Seen(Snapshot, Verdict),
    /// Acted on it (already logged and recorded).
    Acted,
    /// The engine did not answer the inspect call.
    Failed(EngineError),
}

struct Watch {
    config: Arc<Config>,
    audit: Arc<Audit>,
    operator: Operator,
    /// The engine of the current session; `None` while it is unreachable.
    engine: Option<Engine>,
    /// Every container of the engine by id: from the last list, kept current by events.
    known: HashMap<String, ContainerRef>,
    /// Targets reported missing, so that is said once.
    missing: HashSet<TargetName>,
    /// The last verdict that was reported for a container without action, so it is said once.
    reported: HashMap<String, Verdict>,
    /// Containers with a check under way, with the check to run again after it when a failure
    /// was seen (or an answer given) meanwhile.
    in_flight: HashMap<String, Option<Approval>>,
    tasks: JoinSet<Checked>,
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
            known: HashMap::new(),
            missing: HashSet::new(),
            reported: HashMap::new(),
            in_flight: HashMap::new(),
            tasks: JoinSet::new(),
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
                    Some(input) = self.operator.inputs.recv() => self.on_input(input),
                }
            }
            if cancel.is_cancelled() {
                break;
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
        let events = engine.events(SystemTime::now() - REPLAY);
        tokio::pin!(events);
        self.reconcile(engine, cancel).await?;
        if !self.announced {
            self.announce();
        }
        let period = self.config.poll_interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                Some(done) = self.tasks.join_next() => self.finished(done),
                item = events.next() => match item {
                    Some(Ok(event)) => self.on_event(event),
                    Some(Err(e)) => return Err(e),
                    None => return Err(EngineError::StreamEnded),
                },
                Some(input) = self.operator.inputs.recv() => self.on_input(input),
                _ = tick.tick() => self.reconcile(engine, cancel).await?,
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
    async fn reconcile(
        &mut self,
        engine: &Engine,
        cancel: &CancellationToken,
    ) -> Result<(), EngineError> {
        let listed = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = engine.list() => r?,
        };
        debug!(containers = listed.len(), "reconcile pass");
        self.last_pass = Some(Instant::now());
        self.known = listed
            .iter()
            .map(|l| (l.container.id.clone(), l.container.clone()))
            .collect();
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
                    self.check(c.clone(), target.clone(), None);
                } else {
                    self.well_again(target, c);
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

    fn on_event(&mut self, event: Event) {
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
            EventKind::Health(Health::Healthy) | EventKind::Start => {
                self.well_again(&target, &container)
            }
            _ => {}
        }
    }

    /// Starts a check of `container` unless one is under way; then it is checked again after
    /// (keeping an operator's approval).
    fn check(&mut self, container: ContainerRef, target: TargetName, approval: Approval) {
        let approval = approval.or_else(|| self.auto_approval());
        if let Some(next) = self.in_flight.get_mut(&container.id) {
            if next.as_ref().is_none_or(|a| a.is_none()) {
                *next = Some(approval);
            }
            return;
        }
        let Some(engine) = self.engine.clone() else {
            // The engine is away; the pass after it returns checks every target.
            return;
        };
        self.in_flight.insert(container.id.clone(), None);
        let task = CheckTask {
            engine,
            audit: Arc::clone(&self.audit),
            mode: self.config.mode,
            stop_timeout: self.config.stop_timeout,
        };
        self.tasks.spawn(task.run(container, target, approval));
    }

    fn auto_approval(&self) -> Approval {
        (self.config.mode == Mode::Auto).then(|| "auto".to_string())
    }

    fn finished(&mut self, done: Result<Checked, JoinError>) {
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
            approval,
            outcome,
        } = checked;
        let next = self.in_flight.remove(&container.id).flatten();
        match outcome {
            Outcome::Gone => {
                debug!(target = %target, container = %container.name, "container is gone");
                self.drop_prompt(&container.id, "the container was removed");
            }
            Outcome::Acted => {
                self.reported.remove(&container.id);
            }
            Outcome::Failed(e) => {
                warn!(target = %target, container = %container.name, error = %e, "check failed")
            }
            Outcome::Seen(s, verdict) if verdict.acts() => self.failed(&target, &s, verdict),
            Outcome::Seen(s, verdict) => {
                if approval.is_some() && self.config.mode == Mode::Manual {
                    info!(target = %target, container = %container.name, seen = %describe(&s),
                        "nothing to revive any more");
                }
                self.report(&target, &s, verdict);
            }
        }
        match next {
            Some(approval) => self.check(container, target, approval),
            None if self.awaiting_outcome.as_deref() == Some(container.id.as_str()) => {
                self.awaiting_outcome = None;
                self.show_front();
            }
            None => {}
        }
    }

    /// A target needs action that nobody allowed yet: manual mode asks the operator.
    fn failed(&mut self, target: &TargetName, s: &Snapshot, verdict: Verdict) {
        let pending = Pending {
            target: target.clone(),
            container: s.container.clone(),
            seen: describe(s),
            verdict,
            since: match s.status {
                Status::Running => SystemTime::now(),
                _ => s.finished_at.unwrap_or_else(SystemTime::now),
            },
            run: s.started_at.clone().unwrap_or_default(),
        };
        match self.prompts.on_failure(pending.clone()) {
            OnFailure::Act => {
                let approval = Some("operator: always".to_string());
                self.check(s.container.clone(), target.clone(), approval);
            }
            OnFailure::Ignore => {
                if self.reported.insert(s.container.id.clone(), verdict) != Some(verdict) {
                    info!(target = %target, container = %s.container.name, seen = %pending.seen,
                        "not asking: the operator said never for this target");
                }
            }
            OnFailure::Declined | OnFailure::AlreadyQueued => {}
            OnFailure::Queued { front } => {
                let text = prompt::render(&pending, SystemTime::now());
                self.record_prompt("prompt", &pending, None, None, Some(&text));
                info!(target: FILE_ONLY, target = %target, container = %s.container.name,
                    seen = %pending.seen, "asking the operator: {text}");
                if front {
                    self.show_front();
                } else {
                    let waiting = self.prompts.open().count();
                    info!(target = %target, seen = %pending.seen, waiting,
                        "queued a prompt behind the open one");
                }
            }
        }
    }

    /// A target's container is running well: whatever was said about it is over.
    fn well_again(&mut self, target: &TargetName, c: &ContainerRef) {
        if self.reported.remove(&c.id).is_some() {
            info!(target = %target, container = %c.name, "running again");
        }
        self.drop_prompt(&c.id, "it runs again without us");
    }

    fn drop_prompt(&mut self, container_id: &str, why: &str) {
        let Some(p) = self.prompts.resolved(container_id) else {
            return;
        };
        info!(target = %p.target, container = %p.container.name, "dropping the prompt: {why}");
        self.record_prompt("prompt_dropped", &p, None, None, Some(why));
        self.show_front();
    }

    /// Shows the oldest open prompt, unless it is already on the console or an approved action
    /// is still under way.
    fn show_front(&mut self) {
        if self.awaiting_outcome.is_some() {
            return;
        }
        let front = self.prompts.front().map(|p| p.container.id.clone());
        if front != self.shown {
            self.shown = front;
            self.print_front();
        }
    }

    fn print_front(&self) {
        let Some(p) = self.prompts.front() else {
            return;
        };
        let text = prompt::render(p, SystemTime::now());
        if self.operator.terminal {
            audit::print_prompt(&text);
        } else {
            // Without a terminal the prompt is read in logs, which keep whole lines.
            audit::print_line(&text);
        }
    }

    fn tell_how_to_answer(&mut self, why: &str) {
        if std::mem::replace(&mut self.told_how_to_answer, true) {
            return;
        }
        warn!(
            "{why}, so prompts cannot be answered here. Attach a terminal (`docker attach \
             healthther`, with tty: true and stdin_open: true), or answer with `healthther \
             answer TARGET yes|no|always|never` (list them with `healthther pending`; in the \
             sidecar: `docker exec healthther healthther pending`). Prompts stay queued."
        );
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Line(line) => self.on_terminal_line(&line),
            Input::TerminalClosed => {
                if self.config.mode == Mode::Manual {
                    self.tell_how_to_answer("the terminal closed");
                }
            }
            Input::Request {
                request,
                peer,
                reply,
            } => {
                let answer = self.on_request(request, &peer);
                // The client may have gone; nothing to do about that.
                let _ = reply.send(answer);
            }
        }
    }

    fn on_terminal_line(&mut self, line: &str) {
        audit::answered_on_terminal();
        if self.config.mode != Mode::Manual {
            return;
        }
        let Some(front) = self.prompts.front() else {
            if !line.trim().is_empty() {
                audit::print_line("Nothing to answer: no prompt is open.");
            }
            return;
        };
        if line.trim().is_empty() {
            self.print_front();
            return;
        }
        match prompt::parse_answer(line) {
            None => {
                audit::print_line(&prompt::hint(front.target.as_str()));
                self.print_front();
            }
            Some(answer) => {
                if let Err(e) = self.apply_answer(None, answer, "terminal") {
                    audit::print_line(&e);
                    self.print_front();
                }
            }
        }
    }

    fn on_request(&mut self, request: Request, peer: &str) -> Reply {
        match request {
            Request::Pending => {
                let now = SystemTime::now();
                let lines: Vec<String> = self
                    .prompts
                    .open()
                    .map(|p| {
                        let age = prompt::ago(now.duration_since(p.since).unwrap_or_default());
                        format!("{}\t{}\t{} ago", p.who(), p.seen, age)
                    })
                    .collect();
                if lines.is_empty() {
                    Reply::ok(match self.config.mode {
                        Mode::Manual => "no open prompts",
                        Mode::Auto => "no open prompts (MODE=auto revives without asking)",
                    })
                } else {
                    Reply::ok(lines.join("\n"))
                }
            }
            Request::Probe => self.probe(),
            Request::Answer { target, answer } => {
                if self.config.mode != Mode::Manual {
                    return Reply::error("nothing to answer: MODE=auto revives without asking");
                }
                let Some(answer) = prompt::parse_answer(&answer) else {
                    return Reply::error(format!(
                        "{answer:?} is not an answer; use yes, no, always or never"
                    ));
                };
                match self.apply_answer(Some(&target), answer, peer) {
                    Ok(text) => Reply::ok(text),
                    Err(e) => Reply::error(e),
                }
            }
        }
    }

    /// Alive when a pass completed within two poll periods (and some slack for a slow engine).
    fn probe(&self) -> Reply {
        let limit = self.config.poll_interval * 2 + PROBE_SLACK;
        match self.last_pass.map(|t| t.elapsed()) {
            Some(age) if age <= limit => {
                Reply::ok(format!("alive: last pass {}ms ago", age.as_millis()))
            }
            Some(age) => Reply::error(format!(
                "no pass for {}s (limit {}s): the Docker engine is not answering",
                age.as_secs(),
                limit.as_secs()
            )),
            None => Reply::error("no pass yet: the Docker engine has not answered"),
        }
    }

    /// Applies an operator's answer to the open prompt of `target` (the front one when `None`),
    /// and says what will happen.
    fn apply_answer(
        &mut self,
        target: Option<&str>,
        answer: Answer,
        by: &str,
    ) -> Result<String, String> {
        let acts = matches!(answer, Answer::Yes | Answer::Always);
        if acts && self.engine.is_none() {
            return Err(
                "the Docker engine is unreachable right now; the prompt stays open, answer again \
                 when it is back"
                    .into(),
            );
        }
        let answered = self.prompts.answer(target, answer).map_err(|e| match e {
            AnswerError::NothingOpen => "no prompt is open".to_string(),
            AnswerError::NoPromptFor(t) => {
                let open: Vec<String> = self.prompts.open().map(Pending::who).collect();
                if open.is_empty() {
                    format!("no open prompt for {t}: no prompt is open")
                } else {
                    format!("no open prompt for {t}; open: {}", open.join(", "))
                }
            }
        })?;
        let p = &answered.prompt;
        let word = serde_json::to_value(answer)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.record_prompt("answer", p, Some(answer), Some(by), None);
        for other in &answered.also {
            self.record_prompt("answer", other, Some(answer), Some(by), Some("same target"));
        }
        let what = match answer {
            Answer::Yes => format!("reviving {}", p.who()),
            Answer::Always => format!(
                "reviving {} now and from now on without asking (until healthther restarts)",
                p.who()
            ),
            Answer::No => format!(
                "leaving {} as it is; asking again if it fails again",
                p.who()
            ),
            Answer::Never => format!(
                "leaving {} and never asking about {} again (until healthther restarts)",
                p.who(),
                p.target
            ),
        };
        info!(target = %p.target, container = %p.container.name, answer = %word, by = %by,
            "operator answered: {what}");
        if acts {
            let approval = Some(format!("operator: {word} ({by})"));
            for q in std::iter::once(p).chain(&answered.also) {
                self.check(q.container.clone(), q.target.clone(), approval.clone());
            }
            self.awaiting_outcome = Some(p.container.id.clone());
        }
        self.shown = None;
        self.show_front();
        Ok(what)
    }

    fn record_prompt(
        &self,
        event: &'static str,
        p: &Pending,
        answer: Option<Answer>,
        by: Option<&str>,
        note: Option<&str>,
    ) {
        self.audit.record(&PromptRecord {
            time: now_rfc3339(),
            event,
            target: p.target.as_str(),
            container: &p.container.name,
            container_id: &p.container.id,
            seen: &p.seen,
            answer,
            by,
            note,
        });
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
}

/// What a check needs, owned, so it can run as its own task.
struct CheckTask {
    engine: Engine,
    audit: Arc<Audit>,
    mode: Mode,
    stop_timeout: Duration,
}

impl CheckTask {
    /// Inspects the container, decides, and when allowed acts, checks the outcome and records
    /// it. Inspecting first means an approval given a while ago never acts on stale state.
    async fn run(self, container: ContainerRef, target: TargetName, approval: Approval) -> Checked {
        let outcome = match self.engine.inspect(&container).await {
            Ok(None) => Outcome::Gone,
            Err(e) => Outcome::Failed(e),
            Ok(Some(snapshot)) => {
                let verdict = classify(&snapshot);
                match &approval {
                    Some(by) if verdict.acts() => {
                        self.act(&target, &snapshot, verdict, by).await;
                        Outcome::Acted
                    }
                    _ => Outcome::Seen(snapshot, verdict),
                }
            }
        };
        Checked {
            container,
            target,
            approval,
            outcome,
        }
    }

    async fn act(&self, target: &TargetName, s: &Snapshot, verdict: Verdict, by: &str) {
        let c = &s.container;
        let seen = describe(s);
        info!(target = %target, container = %c.name, seen = %seen, decision = %verdict, by = %by, "reviving");
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
            event: "action",
            target: target.as_str(),
            container: &c.name,
            container_id: &c.id,
            mode: match self.mode {
                Mode::Auto => "auto",
                Mode::Manual => "manual",
            },
            by,
            seen,
            state: s,
            decision: verdict,
            result,
            error,
            took_ms,
        });
    }
}
