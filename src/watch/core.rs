//! The watch core: every decision about every container, without I/O. The shell around it
//! (`watch.rs`) feeds in what happened as an [`Input`] with the time, and carries out the
//! [`Command`]s that come back. The state machine is described at the top of `watch.rs`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, error, info, warn};

mod dependents;
pub mod event;
pub mod outcome;
pub mod status;

use self::dependents::NetworkFix;
use self::event::{Event, EventKind};
#[cfg(test)]
pub use self::outcome::sample;
pub use self::outcome::{
    ActResult, Action, Approval, Cause, Down, Outcome, Parent, Skip, What, FILE_ONLY,
};
use self::status::{ActionStatus, ContainerStatus, HoldStatus, TargetStatus};
use super::graph;
use crate::backoff::{History, Plan, GRACE};
use crate::config::{Config, Mode, OnStop};
use crate::control::{Reply, Request};
use crate::overrides::{self, Overrides};
use crate::policy::{
    classify, describe, needs_inspection, ran_for, Health, Listed, Snapshot, Status, Verdict,
};
use crate::prompt::{self, Answer, Pending};
use crate::state::{Saved, SavedContainer, SavedHold};
use crate::targets::{ContainerRef, Neighbours, Resolution, TargetName};

/// After a stop asked through the API (`docker stop`, `docker restart`, compose taking a
/// container down or recreating it), whoever asked gets this long to go on (start it again,
/// rename it, remove it) before a revival.
pub const STOP_SETTLE: Duration = Duration::from_secs(1);
/// How late the last pass may be, beyond two poll periods, for `probe` to call the loop alive.
const PROBE_SLACK: Duration = Duration::from_secs(10);
/// The longest stop timeout a `healthther.stop-timeout` label may ask for, unless
/// `HEALTH_STOP_TIMEOUT` is longer: the shipped compose files give healthther 30 s to stop,
/// actions under way included, and it needs a moment after the stop to record it.
const LABEL_STOP_CAP: Duration = Duration::from_secs(25);
/// How late after a death an API kill may be told of and still explain it.
const LATE_KILL: Duration = Duration::from_secs(2);
/// SIGKILL: a `kill` event with it is a kill, not the first step of a stop.
const SIGKILL: i32 = 9;
/// How long a compose project must be quiet (no stop or removal through the API of any of its
/// containers) before one of its containers is revived: compose v1's `down` stops every
/// container before it removes any, and with 50 replicas on a busy engine the list between the
/// two phases has been seen to take several seconds. A start in that gap makes `down` fail.
const PROJECT_QUIET: Duration = Duration::from_secs(10);
/// How long after one of our own actions ends its container's stop events may still come in
/// (the event stream lags behind the calls): they are ours, not a compose project stopping.
const OWN_EVENTS_LAG: Duration = Duration::from_secs(2);
/// How long a signal sent through the API explains a death that follows: a stop's SIGKILL
/// comes after its grace period, so this covers long grace periods; a signal older than this
/// (a reload's SIGHUP) did not cause the death, and a stop that never ended holds up no one.
const SIGNAL_RELEVANT: Duration = Duration::from_secs(120);
/// A look that finds a container dead before its die event arrived (under load the event
/// stream lags behind a list or an inspect) waits this long at most for the events, which tell
/// whether someone killed it through the API.
const DIE_WAIT: Duration = Duration::from_secs(1);

/// The time, as the core sees it: monotonic for waits, wall clock for the engine's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    pub wall: SystemTime,
}

impl Now {
    pub fn current() -> Now {
        Now {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// What the core is told.
#[derive(Debug)]
pub enum Input {
    /// The engine answers (again); events from before `session_start` are the engine's replay.
    Connected {
        session_start: SystemTime,
    },
    /// The engine stopped answering.
    Lost,
    /// healthther's own compose project, learnt from its own container's labels.
    OwnProject(Option<String>),
    /// A list call's answer: every container (`full`), or only those that may need attention.
    Listed {
        full: bool,
        containers: Vec<Listed>,
    },
    Event(Event),
    /// An inspect's answer: the state, `None` if the container is gone, or the engine's error.
    Inspected {
        container: ContainerRef,
        result: Result<Option<Snapshot>, String>,
    },
    Acted(Acted),
    /// A task about this container ended without an answer (a bug: it panicked).
    TaskLost {
        container_id: String,
    },
    /// A wait may have ended: see [`Core::next_timer`].
    Tick,
    /// A line typed at the terminal.
    Line(String),
    TerminalClosed,
    /// A request on the control socket, from `by`.
    Request {
        request: Request,
        by: String,
    },
    /// What the state file kept from the last run, read at start-up.
    Restored(Saved),
}

/// What the core asks the shell to do.
// An `Act` is most of a command's size; commands live for one call of `handle`, a few at a
// time, so boxing it would buy nothing but an allocation per action.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Inspect(ContainerRef),
    Act(Act),
    /// What happened, for the audit file, metrics and notifications.
    Report(Box<Outcome>),
    /// A line for the operator on the console (a prompt).
    Print(String),
    /// The answer to the [`Input::Request`] just handled.
    Reply(Reply),
    /// What must survive a restart changed: write it to the state file.
    Save(Saved),
    /// Its compose project is being taken down: the action under way on this container (by
    /// id) is not to start it, if the start was not sent yet.
    Withdraw(String),
}

impl Command {
    fn report(o: Outcome) -> Command {
        Command::Report(Box::new(o))
    }
}

/// A start or restart to carry out: everything its record needs travels with it, so the
/// record is written whatever became of the container meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub target: TargetName,
    /// What the look before the action saw, the container's identity included.
    pub seen: Snapshot,
    pub action: Action,
    pub approval: Approval,
    pub mode: Mode,
    /// How long a restart waits for it to stop.
    pub stop_timeout: Duration,
    pub cause: Cause,
    /// The container whose network it shares, when that is why it is acted on: a restart
    /// after the parent started again, or a recreation joined to the parent's successor.
    pub parent: Option<Parent>,
    /// When it was decided: a compose project stopped since then was not known of.
    pub decided: Instant,
}

/// An action carried out, and what came of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    pub act: Act,
    pub result: ActResult,
    pub took: Duration,
}

/// Where a container stands with us. Each container is in exactly one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Nothing under way.
    Idle,
    /// A look is wanted as soon as the engine answers again.
    Due { approval: Option<Approval> },
    /// An inspect is under way; `again` when something happened meanwhile, so its answer may
    /// be stale and another look follows before any decision.
    Looking {
        approval: Option<Approval>,
        again: bool,
    },
    /// A start, restart or recreation is under way.
    Acting { again: bool, by_operator: bool },
    /// Waiting until `until`, then a look.
    Waiting {
        until: Instant,
        why: Why,
        approval: Option<Approval>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// The restart policy's back-off after failed revivals.
    Backoff,
    /// A stop asked through the API: see [`STOP_SETTLE`].
    Settle,
    /// Unhealthy, but not yet for as long as its `healthther.unhealthy-after` label asks.
    Unhealthy,
    /// Seen dead before its die event arrived: see [`DIE_WAIT`].
    Death,
}

/// Our own start of a container, whose start event tells nothing the action's own look after
/// the start does not: it asks for no other look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnStart {
    /// The start or restart is under way.
    Sent,
    /// A start event came meanwhile: ours if the engine says it started it (it was not
    /// running, so nobody else's start came first), and no other event came.
    Seen,
    /// It ran, and its start event may still come until then (the stream lags).
    Awaited(Instant),
}

/// Everything about one container.
#[derive(Debug)]
struct Watched {
    container: ContainerRef,
    target: Option<TargetName>,
    phase: Phase,
    /// Revivals and failures: back-off and quarantine. `None` until it first fails as a target.
    history: Option<History>,
    /// The last state said about it without acting, so it is said once.
    reported: Option<Verdict>,
    /// Its open prompt, with the order it was queued in.
    prompt: Option<(Pending, u64)>,
    /// The run whose failure the operator answered `no` to.
    declined: Option<String>,
    /// A stop was asked through the API (when) and it has not died yet.
    stopping: Option<Instant>,
    /// It died from a stop asked through the API: no revival before this.
    settle_until: Option<Instant>,
    /// Stopped through the API with `HEALTH_ON_STOP=hold`: held until someone starts it.
    held_by_stop: bool,
    /// Since when it has been seen unhealthy, for `healthther.unhealthy-after`.
    unhealthy_since: Option<Instant>,
    /// What its labels override.
    overrides: Overrides,
    /// Its state as last seen, for `status`.
    state: Option<SeenState>,
    /// The last action taken on it, for `status`.
    last_action: Option<LastAction>,
    /// Signals sent to it through the API since it last started (`kill` events), and whether
    /// the engine called it a stop: a death that follows is someone else's doing.
    api_kill: Option<ApiKill>,
    /// The kernel killed it for memory since it last started.
    oom: bool,
    /// Why it went down last, for `status`.
    last_cause: Option<Cause>,
    /// When its last death was taken for a crash: an API kill the engine tells of only after
    /// the death (newer engines may) forgives it, if it comes within [`LATE_KILL`].
    crash_seen: Option<Instant>,
    /// A task of a Swarm service that a target names: said once that it is left to Swarm.
    swarm_told: bool,
    /// The container whose network namespace it shares, as its network mode names it.
    network_parent: Option<String>,
    /// Its network went with its parent's restart, and it has not started since.
    net_lost: Option<NetLoss>,
    /// Who allowed the start or restart we last asked for, and when: its dependents' restarts
    /// that follow are allowed by the same.
    revived_by: Option<(Approval, Instant)>,
    /// An inspect only to learn its network mode (a container created while we watch) is out.
    learning: bool,
    /// It has a health check (a list of it stopped shows none, so this is kept apart).
    has_check: bool,
    /// Its die event came since it last started.
    died: bool,
    /// A look found it dead before its die event, and waited for it once.
    awaited_die: bool,
    /// Stopping it again, should its compose service be taken down right after our start of
    /// it ran: see `note_project_stop`.
    undo: Option<Act>,
    /// Until when its stop events are our own action's (with [`OWN_EVENTS_LAG`]).
    ours_until: Option<Instant>,
    /// Our own start of it, under way or just done: see [`OwnStart`].
    own_start: Option<OwnStart>,
    /// The run whose failure was last told as not acted on because of a `never`.
    never_told: Option<String>,
    /// Since when its failure has been told of, until it runs again: see [`Down`].
    down_since: Option<SystemTime>,
}

/// A dependent's lost network: whose restart took it, and what follows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NetLoss {
    parent: Parent,
    /// When the parent started: a run of the dependent's from after it has the new network.
    parent_started: SystemTime,
    /// Who allowed the parent's revival, when it was ours: it covers the dependent too.
    approval: Option<Approval>,
    /// The parent runs (and is healthy, if it has a health check): act, ask or report now.
    ready: bool,
    /// Said once that it is not ours to restart, or that it needs recreating.
    reported: bool,
    /// It names a container the parent replaced.
    recreated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ApiKill {
    /// Any signal other than SIGKILL was among them: the first step of a stop.
    graceful: bool,
    stopped: bool,
    /// When the last signal was sent.
    at: Instant,
}

/// A container's state as last seen, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeenState {
    status: Status,
    health: Health,
    /// When it started (running) or stopped, when an inspect told.
    since: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LastAction {
    what: &'static str,
    at: SystemTime,
    result: String,
}

/// An operator's hold on a target: no action, no prompt, until it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hold {
    reason: String,
    by: String,
    since: SystemTime,
    until: Option<Instant>,
}

impl Watched {
    /// Its failure, told of now: the first word of it, or more about one told of already.
    fn failing(&mut self, now: Now) -> Down {
        let first = self.down_since.is_none();
        Down {
            since: *self.down_since.get_or_insert(now.wall),
            first,
        }
    }

    fn new(container: ContainerRef) -> Watched {
        Watched {
            container,
            target: None,
            phase: Phase::Idle,
            history: None,
            reported: None,
            prompt: None,
            declined: None,
            stopping: None,
            settle_until: None,
            held_by_stop: false,
            unhealthy_since: None,
            overrides: Overrides::default(),
            state: None,
            last_action: None,
            api_kill: None,
            oom: false,
            last_cause: None,
            crash_seen: None,
            network_parent: None,
            net_lost: None,
            revived_by: None,
            learning: false,
            has_check: false,
            swarm_told: false,
            died: false,
            awaited_die: false,
            undo: None,
            ours_until: None,
            own_start: None,
            never_told: None,
            down_since: None,
        }
    }

    /// Whether something was said, asked or done about it that a look may end.
    fn is_followed(&self) -> bool {
        self.reported.is_some()
            || self.history.is_some()
            || self.prompt.is_some()
            || self.held_by_stop
    }

    /// It stopped: a stop lately asked through the API gives whoever asked [`STOP_SETTLE`]
    /// from now, however we learnt of the end (its die event, a pass, a look).
    fn stop_ended(&mut self, now: Instant) {
        if self
            .stopping
            .take()
            .is_some_and(|t| now < t + SIGNAL_RELEVANT)
        {
            let until = now + STOP_SETTLE;
            self.settle_until = Some(self.settle_until.map_or(until, |t| t.max(until)));
        }
    }

    fn operator_action_under_way(&self) -> bool {
        match &self.phase {
            Phase::Acting { by_operator, .. } => *by_operator,
            Phase::Looking { approval, .. } | Phase::Due { approval } => {
                matches!(approval, Some(Approval::Operator { .. }))
            }
            _ => false,
        }
    }
}

/// What was last said about what a target resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Said {
    Missing,
    /// The names of the containers it resolves to.
    Found(BTreeSet<String>),
    Ambiguous(BTreeSet<String>),
}

/// The names and compose services of the engine's containers, for matching.
struct View {
    names: HashSet<String>,
    services: HashMap<String, BTreeSet<String>>,
}

impl Neighbours for View {
    fn name_taken(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn projects_with_service(&self, service: &str) -> BTreeSet<String> {
        self.services.get(service).cloned().unwrap_or_default()
    }
}

pub struct Core {
    config: Arc<Config>,
    /// Whether a terminal is there to answer prompts on.
    terminal: bool,
    /// Every container the engine has, as far as we know, by id.
    records: HashMap<String, Watched>,
    own_project: Option<String>,
    engine_up: bool,
    /// Whether this session has seen a whole list: before that, matching would go by a part of
    /// the engine's containers (a bare name might look unambiguous), so nothing is decided.
    synced: bool,
    /// Events from before this are the engine's replay of what the first list shows anyway.
    session_start: SystemTime,
    /// When the last list answered: the loop's pulse, for `probe`.
    last_pass: Option<Instant>,
    /// Whether a whole list has been seen, so that missing targets can be told.
    listed: bool,
    said: HashMap<TargetName, Said>,
    always: HashSet<TargetName>,
    never: HashSet<TargetName>,
    /// The order prompts were queued in, for prompts of the same moment.
    prompt_seq: u64,
    /// The prompt on the console now: its container, and its place in the queue (a new
    /// failure of the same container is a new prompt).
    shown: Option<(String, u64)>,
    told_how_to_answer: bool,
    holds: HashMap<TargetName, Hold>,
    /// One moment on both clocks, to turn instants into wall-clock times and back for the
    /// state file: fixed, so that the same state is always written the same.
    epoch: Now,
    /// Histories read back from the state file, by container id, until the first whole list
    /// tells which of those containers still exist.
    restored: HashMap<String, History>,
    /// What was last given to the state file.
    saved: Option<Saved>,
    /// Removed containers that others still name (by id) as their network's parent, to find
    /// the container that took their place.
    gone: HashMap<String, ContainerRef>,
    /// When a container of each compose project was last stopped or removed through the API:
    /// see [`PROJECT_QUIET`].
    project_stops: HashMap<String, Instant>,
}

impl Core {
    pub fn new(config: Arc<Config>, terminal: bool, now: Now) -> Core {
        Core {
            config,
            terminal,
            records: HashMap::new(),
            own_project: None,
            engine_up: false,
            synced: false,
            session_start: SystemTime::UNIX_EPOCH,
            last_pass: None,
            listed: false,
            said: HashMap::new(),
            always: HashSet::new(),
            never: HashSet::new(),
            prompt_seq: 0,
            shown: None,
            told_how_to_answer: false,
            holds: HashMap::new(),
            epoch: now,
            restored: HashMap::new(),
            saved: None,
            gone: HashMap::new(),
            project_stops: HashMap::new(),
        }
    }

    /// The targets an operator holds now.
    pub fn held_targets(&self) -> HashSet<TargetName> {
        self.holds.keys().cloned().collect()
    }

    /// When the next wait ends, for [`Input::Tick`].
    pub fn next_timer(&self) -> Option<Instant> {
        let waits = self.records.values().filter_map(|r| match r.phase {
            Phase::Waiting { until, .. } => Some(until),
            _ => None,
        });
        let holds = self.holds.values().filter_map(|h| h.until);
        waits.chain(holds).min()
    }

    /// Takes one input at `now`; returns what to do.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Command> {
        let mut out = Vec::new();
        match input {
            Input::Connected { session_start } => {
                self.engine_up = true;
                self.synced = false;
                self.session_start = session_start;
            }
            Input::Lost => self.engine_up = false,
            Input::OwnProject(project) => {
                if let Some(p) = &project {
                    info!(project = %p, "healthther runs in compose project {p}: a bare service name means this project's service first");
                }
                self.own_project = project;
                self.retarget(now, &mut out);
            }
            Input::Listed { full, containers } => self.on_listed(full, containers, now, &mut out),
            Input::Event(event) => self.on_event(event, now, &mut out),
            Input::Inspected { container, result } => {
                self.on_inspected(container, result, now, &mut out)
            }
            Input::Acted(acted) => self.on_acted(acted, now, &mut out),
            Input::TaskLost { container_id } => {
                error!(container_id = %container_id, "a task failed; looking at the container again on the next pass");
                if let Some(r) = self.records.get_mut(&container_id) {
                    r.learning = false;
                    r.phase = Phase::Due { approval: None };
                }
            }
            Input::Tick => self.on_tick(now, &mut out),
            Input::Line(line) => self.on_line(&line, now, &mut out),
            Input::TerminalClosed => {
                if self.config.mode == Mode::Manual {
                    self.tell_how_to_answer("the terminal closed");
                }
            }
            Input::Request { request, by } => {
                let reply = self.on_request(request, &by, now, &mut out);
                out.push(Command::Reply(reply));
            }
            Input::Restored(saved) => self.restore(saved, now),
        }
        self.show_front(now, &mut out);
        self.save_if_changed(&mut out);
        out
    }

    // --- What the engine says -----------------------------------------------------------

    fn on_listed(&mut self, full: bool, listed: Vec<Listed>, now: Now, out: &mut Vec<Command>) {
        debug!(containers = listed.len(), full, "reconcile pass");
        self.last_pass = Some(now.at);
        self.synced |= full;
        if full {
            let present: HashSet<&str> = listed.iter().map(|l| l.container.id.as_str()).collect();
            let gone: Vec<String> = self
                .records
                .keys()
                .filter(|id| !present.contains(id.as_str()))
                .cloned()
                .collect();
            for id in gone {
                self.remove(&id, now, out);
            }
        }
        for l in &listed {
            self.upsert(&l.container);
            if let Some(r) = self.records.get_mut(&l.container.id) {
                if l.status != Status::Running {
                    // Perhaps before its die event: Docker 26 tells of the stop first.
                    r.stop_ended(now.at);
                }
                if l.network_parent.is_some() {
                    r.network_parent = l.network_parent.clone();
                }
                let since = r
                    .state
                    .as_ref()
                    .filter(|st| st.status == l.status)
                    .and_then(|st| st.since);
                r.has_check |= l.health != Health::None;
                r.state = Some(SeenState {
                    status: l.status.clone(),
                    health: l.health,
                    since,
                });
            }
        }
        if full {
            // Histories of containers that no longer exist are not brought back.
            for (id, history) in std::mem::take(&mut self.restored) {
                if let Some(r) = self.records.get_mut(&id) {
                    r.history = Some(history);
                }
            }
        }
        if full && !self.listed {
            self.listed = true;
            self.announce();
        }
        self.retarget(now, out);
        let unwell: HashSet<&str> = listed
            .iter()
            .filter(|l| needs_inspection(l))
            .map(|l| l.container.id.as_str())
            .collect();
        // Unwell targets, and those we follow even when the list left them out: the list may
        // predate their failure, so only a fresh look tells that they are well (and, after a
        // revival, well for long enough that their history can go).
        let to_look: Vec<String> = self
            .records
            .iter()
            .filter(|(id, r)| {
                r.target.is_some()
                    && (unwell.contains(id.as_str())
                        || r.is_followed()
                        || matches!(r.phase, Phase::Due { .. }))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in to_look {
            self.look(&id, None, out);
        }
    }

    fn on_event(&mut self, event: Event, now: Now, out: &mut Vec<Command>) {
        let Event {
            kind,
            container,
            time,
        } = event;
        let replay = time < self.session_start;
        if !replay
            && matches!(
                kind,
                EventKind::Destroy | EventKind::Stop | EventKind::Kill { .. } | EventKind::Die
            )
        {
            self.note_project_stop(&container, kind, now, out);
        }
        if kind == EventKind::Destroy {
            if let Some(r) = self.records.get(&container.id) {
                if let (Some(t), false) = (&r.target, replay) {
                    warn!(target = %t, container = %r.container.name, "target container removed");
                }
            }
            self.remove(&container.id, now, out);
            self.retarget(now, out);
            return;
        }
        let changed = self.upsert(&container);
        if changed {
            if let Some(r) = self.records.get_mut(&container.id) {
                if let Phase::Looking { again, .. } | Phase::Acting { again, .. } = &mut r.phase {
                    // What the look or action under way went by is no longer so.
                    *again = true;
                }
            }
            self.retarget(now, out);
        }
        if !replay {
            self.follow_network(&container.id, kind, time, now, out);
        }
        let Some(r) = self.records.get_mut(&container.id) else {
            return;
        };
        if kind != EventKind::Start && matches!(r.own_start, Some(OwnStart::Awaited(_))) {
            r.own_start = None;
        }
        // Every container's stops count, targets or not: compose stops a whole project.
        match kind {
            // A kill told of after the death it caused, which was taken for a crash.
            EventKind::Kill { .. }
                if r.crash_seen
                    .is_some_and(|t| now.at.saturating_duration_since(t) < LATE_KILL) =>
            {
                if let (Some(t), Some(h)) = (r.crash_seen.take(), r.history.as_mut()) {
                    h.forgive(t);
                }
                r.last_cause = Some(Cause::ApiKill);
                debug!(container = %r.container.name, "the engine told of an API kill after the death: not the container's failure");
                // A back-off it earned as a crash is lifted: look again, and revive at once.
                if matches!(
                    r.phase,
                    Phase::Waiting {
                        why: Why::Backoff,
                        ..
                    }
                ) {
                    r.phase = Phase::Idle;
                    r.api_kill = Some(ApiKill {
                        graceful: false,
                        stopped: false,
                        at: now.at,
                    });
                    self.look(&container.id, None, out);
                    return;
                }
            }
            EventKind::Kill { signal } => {
                // Podman names no signal: its `kill` is SIGKILL by default, and its `stop`
                // tells of itself with a stop event before the death (below).
                let graceful = signal.is_some_and(|s| s != SIGKILL);
                // A signal long before the death (a reload's SIGHUP) did not cause it.
                let k = match r.api_kill.filter(|k| now.at < k.at + SIGNAL_RELEVANT) {
                    Some(k) => k,
                    None => ApiKill {
                        graceful: false,
                        stopped: false,
                        at: now.at,
                    },
                };
                r.api_kill = Some(ApiKill {
                    graceful: k.graceful || graceful,
                    at: now.at,
                    ..k
                });
                if is_stop_signal(signal) {
                    r.stopping = Some(now.at);
                }
            }
            EventKind::Stop => {
                match r.api_kill.as_mut() {
                    Some(k) => k.stopped = true,
                    None => {
                        r.api_kill = Some(ApiKill {
                            graceful: true,
                            stopped: true,
                            at: now.at,
                        })
                    }
                }
                // Podman tells of a stop before the death it causes: a stop under way.
                if !r.died {
                    r.stopping = Some(now.at);
                }
            }
            EventKind::Oom => r.oom = true,
            EventKind::Die => {
                r.died = true;
                r.stop_ended(now.at);
                if r.api_kill.is_some_and(|k| now.at >= k.at + SIGNAL_RELEVANT) {
                    r.api_kill = None;
                }
            }
            EventKind::Start => {
                r.died = false;
                r.awaited_die = false;
                r.stopping = None;
                r.crash_seen = None;
                r.settle_until = None;
                r.unhealthy_since = None;
                r.api_kill = None;
                r.oom = false;
            }
            EventKind::Health(Health::Unhealthy) => {
                r.unhealthy_since.get_or_insert(now.at);
            }
            EventKind::Health(Health::Healthy) => r.unhealthy_since = None,
            _ => {}
        }
        let Some(target) = r.target.clone() else {
            return;
        };
        let on_stop = r.overrides.on_stop(self.config.on_stop);
        if kind == EventKind::Stop
            && on_stop == OnStop::Hold
            && !matches!(r.phase, Phase::Acting { .. })
            && !r.held_by_stop
        {
            r.held_by_stop = true;
            if matches!(r.phase, Phase::Waiting { .. }) {
                r.phase = Phase::Idle;
            }
            info!(target = %target, container = %r.container.name,
                "stopped through the engine's API: held until it is started again (HEALTH_ON_STOP=hold)");
            out.push(Command::report(told(
                now,
                &target,
                &r.container,
                "stopped".into(),
                What::Held {
                    by: None,
                    note: "stopped through the engine's API; held until it is started again \
                           (HEALTH_ON_STOP=hold)"
                        .into(),
                },
            )));
            return;
        }
        if kind == EventKind::Start && std::mem::take(&mut r.held_by_stop) {
            info!(target = %target, container = %r.container.name, "started again: no longer held");
            out.push(Command::report(told(
                now,
                &target,
                &r.container,
                "running".into(),
                What::Resumed {
                    why: "started again".into(),
                },
            )));
        }
        debug!(target = %target, container = %r.container.name, event = ?kind, "event");
        match kind {
            EventKind::Die => match (r.settle_until, &r.phase) {
                (
                    Some(until),
                    Phase::Idle
                    | Phase::Due { .. }
                    | Phase::Waiting {
                        why: Why::Death, ..
                    },
                ) => {
                    debug!(target = %target, container = %r.container.name,
                        "stopped through the API; giving whoever stopped it a moment");
                    r.phase = Phase::Waiting {
                        until,
                        why: Why::Settle,
                        approval: None,
                    };
                }
                // The event it waited for: look now.
                (
                    None,
                    Phase::Waiting {
                        why: Why::Death, ..
                    },
                ) => {
                    r.phase = Phase::Idle;
                    self.look(&container.id, None, out)
                }
                _ => self.look(&container.id, None, out),
            },
            EventKind::Oom => {
                warn!(target = %target, container = %r.container.name, "out of memory")
            }
            EventKind::Start => {
                let was_waiting = matches!(r.phase, Phase::Waiting { .. });
                // Our own start's event: the action's own look tells how it went.
                let ours = match (r.own_start, &r.phase) {
                    (Some(OwnStart::Sent), Phase::Acting { .. }) => {
                        r.own_start = Some(OwnStart::Seen);
                        true
                    }
                    (Some(OwnStart::Awaited(until)), _) if !was_waiting && now.at < until => {
                        r.own_start = None;
                        true
                    }
                    _ => false,
                };
                if was_waiting {
                    // Someone else started it: whatever we were waiting for is moot.
                    r.phase = Phase::Idle;
                }
                if !ours && (was_waiting || r.is_followed()) {
                    self.look(&container.id, None, out);
                }
            }
            // Podman says after every check that one ran, not how it went: look.
            EventKind::Health(Health::Unhealthy) | EventKind::HealthChecked => {
                self.look(&container.id, None, out)
            }
            // Only a fresh look tells it is well: a health check that was under way when the
            // container died may still report healthy after the die.
            EventKind::Health(Health::Healthy) if r.is_followed() => {
                self.look(&container.id, None, out)
            }
            _ => {}
        }
    }

    fn on_inspected(
        &mut self,
        container: ContainerRef,
        result: Result<Option<Snapshot>, String>,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        let id = container.id.clone();
        let snapshot = match result {
            Ok(Some(s)) => s,
            Ok(None) => {
                debug!(container = %container.name, "container is gone");
                self.remove(&id, now, out);
                self.retarget(now, out);
                return;
            }
            Err(e) => {
                warn!(container = %container.name, error = %e, "check failed; looking again on the next pass");
                if let Some(r) = self.records.get_mut(&id) {
                    r.learning = false;
                    let approval = match &r.phase {
                        Phase::Looking { approval, .. } => approval.clone(),
                        _ => None,
                    };
                    r.phase = Phase::Due { approval };
                }
                return;
            }
        };
        if self.upsert(&snapshot.container) {
            self.retarget(now, out);
        }
        let Some(r) = self.records.get_mut(&id) else {
            return;
        };
        if snapshot.network_parent.is_some() {
            r.network_parent = snapshot.network_parent.clone();
        }
        r.has_check |= snapshot.has_check;
        if std::mem::take(&mut r.learning) && matches!(r.phase, Phase::Idle | Phase::Due { .. }) {
            // Only its network was to be learnt.
            return;
        }
        let approval = match &mut r.phase {
            Phase::Looking {
                approval,
                again: true,
            } => {
                // Something happened while we looked: look again before deciding.
                let approval = approval.take();
                r.phase = Phase::Looking {
                    approval,
                    again: false,
                };
                out.push(Command::Inspect(r.container.clone()));
                return;
            }
            // Before the session's first whole list nothing is decided (see `synced`).
            Phase::Looking { approval, .. } if !self.synced => {
                let approval = approval.take();
                r.phase = Phase::Due { approval };
                return;
            }
            Phase::Looking { approval, .. } => approval.take(),
            Phase::Idle | Phase::Due { .. } if !self.synced => return,
            // An answer to a look we no longer wait for (the container was forgotten and
            // found again meanwhile): decide on it all the same, it is the freshest we have.
            Phase::Idle | Phase::Due { .. } => None,
            Phase::Acting { .. } | Phase::Waiting { .. } => return,
        };
        r.phase = Phase::Idle;
        self.decide(&id, snapshot, approval, now, out);
    }

    fn on_acted(&mut self, acted: Acted, now: Now, out: &mut Vec<Command>) {
        let Acted { act, result, took } = acted;
        let c = &act.seen.container;
        let took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        match &result {
            ActResult::Running => {
                info!(target = %act.target, container = %c.name, took_ms, "revived: running again")
            }
            ActResult::AlreadyRunning => {
                info!(target = %act.target, container = %c.name, "already running: someone else started it first")
            }
            ActResult::Recreated { id } => {
                info!(target = %act.target, container = %c.name, new_id = %short(id), took_ms,
                    "recreated, joined to the network of {}",
                    act.parent.as_ref().map_or("its parent", |p| p.name.as_str()))
            }
            ActResult::Stopped => {
                info!(target = %act.target, container = %c.name, took_ms,
                    "stopped again: its compose project is being taken down")
            }
            ActResult::Withdrawn => {
                info!(target = %act.target, container = %c.name,
                    "not started: its compose project is being taken down")
            }
            other => warn!(
                target = %act.target, container = %c.name, result = %other.word(),
                error = other.error().as_deref().unwrap_or(""), "revival did not bring it back"
            ),
        }
        // A kill the engine told of only after the look (under load) was no crash after all.
        let told_late = act.cause == Cause::Crash
            && self
                .records
                .get(&c.id)
                .is_some_and(|r| r.last_cause == Some(Cause::ApiKill));
        let cause = if told_late { Cause::ApiKill } else { act.cause };
        // Undoing our own start, or not sending it, tells nothing of a failure.
        let undone = act.action == Action::Stop || result == ActResult::Withdrawn;
        let down = match self.records.get_mut(&c.id) {
            _ if undone => None,
            Some(r) => Some(r.failing(now)),
            None => Some(Down {
                since: now.wall,
                first: true,
            }),
        };
        let outcome = Outcome {
            at: now.wall,
            target: Some(act.target.clone()),
            container: Some(c.clone()),
            seen: describe(&act.seen),
            state: Some(act.seen.clone()),
            down,
            what: What::Acted {
                mode: act.mode,
                approval: act.approval.clone(),
                parent: act.parent.clone(),
                action: act.action,
                cause,
                result: result.clone(),
                took,
            },
        };
        if outcome.ends_failure() {
            if let Some(r) = self.records.get_mut(&c.id) {
                r.down_since = None;
            }
        }
        out.push(Command::report(outcome));

        let Some(r) = self.records.get_mut(&c.id) else {
            return;
        };
        r.reported = None;
        r.last_action = Some(LastAction {
            what: act.action.word(),
            at: now.wall,
            result: result.word(),
        });
        let own = r.own_start.take();
        // A start event that came meanwhile was ours only if the engine started it for us.
        let again = matches!(r.phase, Phase::Acting { again: true, .. })
            || (own == Some(OwnStart::Seen) && result != ActResult::Running);
        if own == Some(OwnStart::Sent) && result == ActResult::Running {
            r.own_start = Some(OwnStart::Awaited(now.at + OWN_EVENTS_LAG));
        }
        r.phase = Phase::Idle;
        r.ours_until = Some(now.at + OWN_EVENTS_LAG);
        match result {
            // Undoing our own start, or not starting, says nothing about the container.
            ActResult::Withdrawn => self.look(&c.id, None, out),
            _ if act.action == Action::Stop && again => self.look(&c.id, None, out),
            _ if act.action == Action::Stop => {}
            // A refusal by a socket proxy's rules says nothing about the container: it is
            // tried again at the back-off's cap, and never counts toward quarantine.
            ActResult::Failed {
                denied: true,
                error,
            } => {
                let cap = self.config.limits.cap;
                error!(target = %act.target, container = %c.name,
                    "{error}; trying again every {} (this counts toward no back-off or quarantine)",
                    humantime::format_duration(cap));
                r.phase = Phase::Waiting {
                    until: now.at + cap,
                    why: Why::Backoff,
                    approval: None,
                };
            }
            // The engine's own trouble: looked at again once it answers, counting nothing.
            ActResult::Unreachable { .. } => r.phase = Phase::Due { approval: None },
            // No die event follows a refused start: look again, under the back-off.
            ActResult::Failed { .. } => {
                r.history
                    .get_or_insert_with(History::default)
                    .revival_failed(now.at);
                self.look(&c.id, None, out);
            }
            ActResult::Running
                if act.action != Action::Stop
                    && r.container.project.as_ref().is_some_and(|p| {
                        self.project_stops.get(p).is_some_and(|t| *t >= act.decided)
                    }) =>
            {
                // Compose began taking the project down while our start was under way: it
                // listed this container as stopped and will not stop it before removing it.
                r.phase = Phase::Acting {
                    again: false,
                    by_operator: false,
                };
                out.push(Command::Act(Act {
                    action: Action::Stop,
                    cause: Cause::ApiStop,
                    parent: None,
                    decided: now.at,
                    ..act
                }));
            }
            ActResult::Running if act.action != Action::Stop => {
                // Should compose begin taking its service down soon, it may have listed this
                // container while our start was under way: see `note_project_stop`.
                r.undo = Some(Act {
                    action: Action::Stop,
                    cause: Cause::ApiStop,
                    parent: None,
                    decided: now.at,
                    ..act.clone()
                });
                if again {
                    self.look(&c.id, None, out);
                }
            }
            _ if again => self.look(&c.id, None, out),
            _ => {}
        }
    }

    fn on_tick(&mut self, now: Now, out: &mut Vec<Command>) {
        let ended: Vec<TargetName> = self
            .holds
            .iter()
            .filter(|(_, h)| h.until.is_some_and(|t| t <= now.at))
            .map(|(t, _)| t.clone())
            .collect();
        for t in ended {
            self.end_hold(&t, "the hold's time is up", now, out);
        }
        let due: Vec<(String, Why)> = self
            .records
            .iter()
            .filter_map(|(id, r)| match r.phase {
                Phase::Waiting { until, why, .. } if until <= now.at => Some((id.clone(), why)),
                _ => None,
            })
            .collect();
        for (id, why) in due {
            if let (Why::Settle, Some(until)) = (why, self.project_busy_until(&id, now)) {
                // Compose stops a whole project before removing any of it: wait for the rest.
                if let Some(r) = self.records.get_mut(&id) {
                    r.settle_until = Some(until);
                    if let Phase::Waiting { until: u, .. } = &mut r.phase {
                        *u = until;
                    }
                }
                continue;
            }
            let approval = match self.records.get_mut(&id).map(|r| &mut r.phase) {
                Some(Phase::Waiting { approval, .. }) => approval.take(),
                _ => None,
            };
            if let Some(r) = self.records.get_mut(&id) {
                r.phase = Phase::Idle;
            }
            self.look(&id, approval, out);
        }
    }

    /// A stop or removal through the API of a container of a compose project: the project may
    /// be being taken down. A `docker kill` (SIGKILL) is no stop.
    fn note_project_stop(
        &mut self,
        c: &ContainerRef,
        kind: EventKind,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        let known = self.records.get(&c.id);
        // Our own restart (or undoing our own start) is no one taking the project down.
        if known.is_some_and(|r| {
            matches!(r.phase, Phase::Acting { .. }) || r.ours_until.is_some_and(|t| now.at < t)
        }) {
            return;
        }
        let Some(project) = known
            .and_then(|r| r.container.project.clone())
            .or_else(|| c.project.clone())
        else {
            return;
        };
        let stop = match kind {
            EventKind::Kill { signal } => is_stop_signal(signal),
            // The death a stop caused; a crash is no stop.
            EventKind::Die => {
                known.is_some_and(|r| r.stopping.is_some_and(|t| now.at < t + SIGNAL_RELEVANT))
            }
            _ => true,
        };
        if stop {
            self.project_stops
                .retain(|_, t| now.at < *t + PROJECT_QUIET);
            // Starts of its containers still waiting for the engine are not sent.
            for (id, r) in &self.records {
                if matches!(r.phase, Phase::Acting { .. })
                    && r.container.project.as_deref() == Some(project.as_str())
                {
                    out.push(Command::Withdraw(id.clone()));
                }
            }
            // Compose lists a service's containers a while before it stops them: one we started
            // just before it may have been listed as stopped, so compose would neither stop it
            // nor be able to remove it. It is stopped again (a second stop changes nothing).
            let service = known.and_then(|r| r.container.service.clone());
            for r in self.records.values_mut() {
                let undo_now = r.container.id != c.id
                    && r.container.project.as_deref() == Some(project.as_str())
                    && r.container.service == service
                    && r.phase == Phase::Idle
                    && !r.died
                    && r.stopping.is_none()
                    && r.undo
                        .as_ref()
                        .is_some_and(|u| now.at < u.decided + PROJECT_QUIET);
                if let Some(mut act) = r.undo.take_if(|_| undo_now) {
                    act.decided = now.at;
                    r.phase = Phase::Acting {
                        again: false,
                        by_operator: false,
                    };
                    out.push(Command::Act(act));
                }
            }
            self.project_stops.insert(project, now.at);
        }
    }

    /// Until when container `id`'s compose project is being taken down, if it is: a stop
    /// through the API of one of its containers is under way (it has not died yet), or one
    /// was stopped or removed less than [`PROJECT_QUIET`] ago.
    fn project_busy_until(&self, id: &str, now: Now) -> Option<Instant> {
        let project = self.records.get(id)?.container.project.as_deref()?;
        let stop_under_way = self.records.values().any(|r| {
            r.container.project.as_deref() == Some(project)
                && r.stopping.is_some_and(|t| now.at < t + SIGNAL_RELEVANT)
        });
        if stop_under_way {
            return Some(now.at + STOP_SETTLE);
        }
        self.project_stops
            .get(project)
            .map(|t| *t + PROJECT_QUIET)
            .filter(|t| *t > now.at)
    }

    // --- Identity ---------------------------------------------------------------------

    /// Takes in what the engine says a container is called and labelled; returns whether that
    /// changed anything (or the container is new to us).
    fn upsert(&mut self, c: &ContainerRef) -> bool {
        match self.records.get_mut(&c.id) {
            Some(r) if r.container.same_identity(c) => false,
            Some(r) => {
                r.container = c.clone();
                true
            }
            None => {
                let mut r = Watched::new(c.clone());
                // A bad label is said when the container becomes a target (in `retarget`):
                // other people's containers are none of healthther's business.
                r.overrides = overrides::parse(&c.labels).0;
                self.records.insert(c.id.clone(), r);
                true
            }
        }
    }

    /// Forgets a container that is gone, with its prompt.
    fn remove(&mut self, id: &str, now: Now, out: &mut Vec<Command>) {
        if let Some(mut r) = self.records.remove(id) {
            self.drop_prompt(&mut r, "the container was removed", now, out);
            if let (Some(t), Some(_)) = (&r.target, r.down_since) {
                // Its failure is over with it (a removal, or compose replacing it).
                out.push(Command::report(told(
                    now,
                    t,
                    &r.container,
                    "removed".into(),
                    What::Gone,
                )));
            }
            self.remember_parent(&r);
            self.parent_removed(id, now, out);
        }
    }

    /// Decides again which containers are targets, after names or labels changed. A container
    /// that stopped being one loses its back-off, prompt and schedule.
    fn retarget(&mut self, now: Now, out: &mut Vec<Command>) {
        let mut view = View {
            names: HashSet::new(),
            services: HashMap::new(),
        };
        for r in self.records.values() {
            view.names.insert(r.container.name.clone());
            if let (Some(s), false) = (&r.container.service, r.container.is_compose_transient()) {
                view.services
                    .entry(s.clone())
                    .or_default()
                    .insert(r.container.project.clone().unwrap_or_default());
            }
        }
        let targets = &self.config.targets;
        let own = self.own_project.as_deref();
        let mut ambiguous: HashMap<TargetName, BTreeSet<String>> = HashMap::new();
        let mut found: HashMap<TargetName, BTreeSet<String>> = HashMap::new();
        let mut changes = Vec::new();
        for (id, r) in &self.records {
            if crate::recreate::is_temporary_name(&r.container.name) {
                // A replacement our own recreation made, not in its place yet (or one a crash
                // cut short, for the start-up repair): no target while it has that name, and a
                // container renamed so keeps what it was, its back-off with it.
                continue;
            }
            let now_target = match targets.resolve(&r.container, &view, own) {
                Resolution::Target(t) => {
                    found
                        .entry(t.clone())
                        .or_default()
                        .insert(r.container.name.clone());
                    Some(t.clone())
                }
                Resolution::Ambiguous(t) => {
                    // Every project that has the service makes the name ambiguous, also one
                    // whose container is a scoped target (`p1/web`) and so resolves to that.
                    let service = r.container.service.as_deref().unwrap_or_default();
                    ambiguous
                        .entry(t.clone())
                        .or_default()
                        .extend(view.projects_with_service(service));
                    None
                }
                Resolution::None => None,
            };
            if now_target != r.target {
                changes.push((id.clone(), now_target));
            }
        }
        for (id, now_target) in changes {
            let Some(mut r) = self.records.remove(&id) else {
                continue;
            };
            match (&r.target, &now_target) {
                (Some(was), _) => {
                    let now_is = match &now_target {
                        Some(t) => format!("now counts as {t}"),
                        None => "is no longer a target".to_string(),
                    };
                    info!(target = %was, container = %r.container.name,
                        "{} {now_is} (it was {was}); forgetting its back-off, prompt and schedule",
                        r.container.name);
                    r.history = None;
                    r.reported = None;
                    r.declined = None;
                    self.drop_prompt(&mut r, "it is no longer a target", now, out);
                    match &mut r.phase {
                        Phase::Waiting { .. } | Phase::Due { .. } => r.phase = Phase::Idle,
                        // An answer given for what it was is no answer for what it is now (with no
                        // target at all, it is kept only to record that it was not acted on).
                        Phase::Looking { approval, .. } if now_target.is_some() => *approval = None,
                        _ => {}
                    }
                }
                (None, Some(t)) => {
                    debug!(target = %t, container = %r.container.name, "a container of this target");
                    // Labels never change, so this is said once per container (again only if it
                    // stops being a target and becomes one again).
                    for b in overrides::parse(&r.container.labels).1 {
                        warn!(target = %t, container = %r.container.name, label = %b.label,
                            value = %b.value,
                            "label {}={:?} is not understood (use {}); the global setting applies",
                            b.label, b.value, b.expected);
                    }
                    for (label, asked, setting) in
                        r.overrides.widening(self.config.mode, self.config.on_stop)
                    {
                        warn!(target = %t, container = %r.container.name, label,
                            "label {label}={asked} is ignored: it asks for more than {setting} \
                             allows, and a label may only narrow what the operator allowed");
                    }
                }
                (None, None) => {}
            }
            r.target = now_target;
            self.records.insert(id, r);
        }
        self.tell_swarm_tasks(now, out);
        if !self.listed {
            return;
        }
        for t in self.config.targets.iter() {
            let said = if let Some(names) = found.remove(t) {
                Said::Found(names)
            } else if let Some(projects) = ambiguous.remove(t) {
                Said::Ambiguous(projects)
            } else {
                Said::Missing
            };
            let before = self.said.insert(t.clone(), said.clone());
            if before.as_ref() == Some(&said) {
                continue;
            }
            match said {
                Said::Found(names) => {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    let found = if matches!(before, Some(Said::Missing | Said::Ambiguous(_))) {
                        "target found: "
                    } else {
                        ""
                    };
                    info!(target = %t, "{found}{t} resolves to {}", names.join(", "));
                }
                Said::Missing => warn!(
                    target = %t,
                    "target not found: no container has this name or compose service; \
                     it will be watched as soon as it is created"
                ),
                Said::Ambiguous(projects) => {
                    let list: Vec<&str> = projects.iter().map(String::as_str).collect();
                    let spelled: Vec<String> = list.iter().map(|p| format!("{p}/{t}")).collect();
                    warn!(
                        target = %t,
                        "target {t} is ambiguous: compose projects {} each have a service {t}, \
                         and healthther runs in none of them, so it acts on none; write {} in \
                         HEALTH_TARGETS to choose",
                        list.join(", "),
                        spelled.join(" or ")
                    );
                }
            }
        }
    }

    // --- Deciding ---------------------------------------------------------------------

    /// Looks at a container: an inspect now, or as soon as the engine answers. A look under
    /// way is followed by another; an operator's approval is kept for the look that decides.
    fn look(&mut self, id: &str, approval: Option<Approval>, out: &mut Vec<Command>) {
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        match &mut r.phase {
            Phase::Looking {
                approval: kept,
                again,
            } => {
                *again = true;
                if approval.is_some() {
                    *kept = approval;
                }
                return;
            }
            Phase::Acting { again, .. } => {
                *again = true;
                return;
            }
            // The wait ends with a look; only an operator's answer cuts it short.
            Phase::Waiting { .. } if !matches!(approval, Some(Approval::Operator { .. })) => return,
            _ => {}
        }
        let approval = match std::mem::replace(&mut r.phase, Phase::Idle) {
            Phase::Due { approval: kept } | Phase::Waiting { approval: kept, .. } => {
                approval.or(kept)
            }
            _ => approval,
        };
        if self.engine_up && self.synced {
            r.phase = Phase::Looking {
                approval,
                again: false,
            };
            out.push(Command::Inspect(r.container.clone()));
        } else {
            r.phase = Phase::Due { approval };
        }
    }

    /// A fresh look at a container: act now, later, never, or ask.
    fn decide(
        &mut self,
        id: &str,
        s: Snapshot,
        approval: Option<Approval>,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        let verdict = classify(&s);
        let limits = self.config.limits;
        let fix = self.network_fix(id, s.started_at.as_deref());
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        let mode = r.overrides.mode(self.config.mode);
        r.has_check |= s.health != Health::None;
        r.state = Some(SeenState {
            status: s.status.clone(),
            health: s.health,
            since: match s.status {
                Status::Running => s
                    .started_at
                    .as_deref()
                    .and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
                _ => s.finished_at,
            },
        });
        if s.health != Health::Unhealthy {
            r.unhealthy_since = None;
        }
        let Some(target) = r.target.clone() else {
            if verdict.acts() && (approval.is_some() || mode == Mode::Auto) {
                info!(container = %s.container.name, seen = %describe(&s),
                    "not acting: {} is no longer a target", s.container.name);
                out.push(Command::report(Outcome {
                    at: now.wall,
                    target: None,
                    container: Some(s.container.clone()),
                    seen: describe(&s),
                    state: Some(s.clone()),
                    down: None,
                    what: What::Skipped {
                        mode: Some(mode),
                        approval: Some(approval.unwrap_or(Approval::Auto)),
                        cause: None,
                        why: Skip::NotATarget,
                        note: None,
                    },
                }));
            }
            return;
        };
        // Its network went with its parent's restart or replacement (see `dependents`).
        let running = s.status == Status::Running;
        let (verdict, net) = match fix {
            NetworkFix::Restart(p)
                if running && matches!(verdict, Verdict::Fine | Verdict::Wait) =>
            {
                (
                    Verdict::Restart,
                    Some((p, Cause::ParentRestarted, Action::Restart)),
                )
            }
            // Paused, being removed, never started: as for any target, not ours to act on.
            NetworkFix::Recreate(_) if verdict == Verdict::Report => (verdict, None),
            NetworkFix::Recreate(p) if r.overrides.recreate == Some(true) => {
                let v = if running {
                    Verdict::Restart
                } else {
                    Verdict::Start
                };
                (v, Some((p, Cause::ParentRecreated, Action::Recreate)))
            }
            NetworkFix::Recreate(p) => {
                let n = r.net_lost.get_or_insert_with(|| NetLoss {
                    parent: p.clone(),
                    parent_started: now.wall,
                    approval: None,
                    ready: true,
                    reported: false,
                    recreated: true,
                });
                if !std::mem::replace(&mut n.reported, true) {
                    let note = format!(
                        "{0} was recreated, and {1} still names the container it replaced: {1} \
                         cannot start again until it is recreated too: `{2}` (or label it \
                         healthther.recreate=true to have healthther recreate it)",
                        p.name,
                        s.container.name,
                        graph::fix_command(&s.container, &p.name)
                    );
                    warn!(target = %target, container = %s.container.name, "{note}");
                    let mut outcome =
                        not_acted_on(&target, &s, mode, Skip::NeedsRecreate, note, now);
                    if let What::Skipped { cause, .. } = &mut outcome.what {
                        *cause = Some(Cause::ParentRecreated);
                    }
                    out.push(Command::report(outcome));
                }
                return;
            }
            // Only a dead or unhealthy one needs telling: a start cannot work.
            NetworkFix::ParentGone(_) if !verdict.acts() => (verdict, None),
            NetworkFix::ParentGone(parent) => {
                // One report for the lost parent, whichever way it was found out.
                let n = r.net_lost.get_or_insert_with(|| NetLoss {
                    parent: Parent {
                        id: parent.clone(),
                        name: short(&parent).to_string(),
                    },
                    parent_started: now.wall,
                    approval: None,
                    ready: true,
                    reported: false,
                    recreated: true,
                });
                if !std::mem::replace(&mut n.reported, true) {
                    let note = format!(
                        "the container whose network {0} shares ({1}) no longer exists, so {0} \
                         cannot start again until it is recreated: `{2}`",
                        s.container.name,
                        short(&parent),
                        graph::fix_command(&s.container, short(&parent))
                    );
                    warn!(target = %target, container = %s.container.name, "{note}");
                    let mut outcome =
                        not_acted_on(&target, &s, mode, Skip::NeedsRecreate, note, now);
                    if let What::Skipped { cause, .. } = &mut outcome.what {
                        *cause = Some(Cause::ParentRecreated);
                    }
                    out.push(Command::report(outcome));
                }
                return;
            }
            NetworkFix::Rejoined => {
                r.net_lost = None;
                (verdict, None)
            }
            NetworkFix::None => (verdict, None),
            // It died or turned unhealthy meanwhile: its own revival joins the new namespace.
            NetworkFix::Restart(_) => (verdict, None),
        };
        if verdict.acts() {
            let hold = self
                .holds
                .get(&target)
                .map(|h| h.reason.clone())
                .or_else(|| {
                    r.held_by_stop
                        .then(|| "stopped through the engine's API".into())
                });
            if let Some(reason) = hold {
                if r.reported.replace(verdict) != Some(verdict) {
                    info!(target = %target, container = %s.container.name, seen = %describe(&s),
                        "held ({reason}): not acting, not asking");
                    let mut outcome = not_acted_on(
                        &target,
                        &s,
                        mode,
                        Skip::Held,
                        format!("held: {reason}"),
                        now,
                    );
                    outcome.down = Some(r.failing(now));
                    out.push(Command::report(outcome));
                }
                return;
            }
            if mode == Mode::Observe {
                if r.reported.replace(verdict) != Some(verdict) {
                    warn!(target = %target, container = %s.container.name, seen = %describe(&s),
                        "observed (MODE=observe): would {verdict}, but does not act");
                    let mut outcome = told(
                        now,
                        &target,
                        &s.container,
                        describe(&s),
                        What::Observed {
                            mode,
                            would: would(verdict),
                            never: false,
                            note: None,
                        },
                    );
                    outcome.state = Some(s.clone());
                    outcome.down = Some(r.failing(now));
                    out.push(Command::report(outcome));
                }
                return;
            }
            let after = r.overrides.unhealthy_after.unwrap_or_default();
            if verdict == Verdict::Restart && !after.is_zero() && net.is_none() {
                let since = *r.unhealthy_since.get_or_insert(now.at);
                if now.at < since + after {
                    debug!(target = %target, container = %s.container.name,
                        "unhealthy, but not yet for {}", humantime::format_duration(after));
                    r.phase = Phase::Waiting {
                        until: since + after,
                        why: Why::Unhealthy,
                        approval,
                    };
                    return;
                }
            }
        }
        if !verdict.acts() {
            if matches!(approval, Some(Approval::Operator { .. })) {
                info!(target = %target, container = %s.container.name, seen = %describe(&s),
                    "nothing to revive any more");
            }
            self.settle(id, &target, &s, now, out);
            self.report(id, &target, &s, verdict, now, out);
            return;
        }
        let by_operator = matches!(approval, Some(Approval::Operator { .. }));
        if s.status != Status::Running {
            // The look may have been under way before its die event came.
            r.stop_ended(now.at);
        }
        if let Some(until) = r.settle_until.filter(|t| *t > now.at && !by_operator) {
            // It was stopped through the API a moment ago (the look was under way already).
            r.phase = Phase::Waiting {
                until,
                why: Why::Settle,
                approval,
            };
            return;
        }
        if let Some(until) = self.project_busy_until(id, now).filter(|_| !by_operator) {
            // Its project is being taken down (a crash-looping replica died meanwhile), or
            // compose is recreating it (a dependent): acting now would make compose fail.
            debug!(target = %target, container = %s.container.name,
                "its compose project is being stopped; waiting until it is quiet");
            if let Some(r) = self.records.get_mut(id) {
                r.phase = Phase::Waiting {
                    until,
                    why: Why::Settle,
                    approval,
                };
            }
            return;
        }
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        if verdict == Verdict::Start
            && net.is_none()
            && !r.died
            && !by_operator
            && self.synced
            && !std::mem::replace(&mut r.awaited_die, true)
        {
            // Dead, but its die event has not come: the events that tell who killed it may
            // be on their way (see `DIE_WAIT`).
            r.phase = Phase::Waiting {
                until: now.at + DIE_WAIT,
                why: Why::Death,
                approval,
            };
            return;
        }
        let cause = if let Some((_, cause, _)) = &net {
            *cause
        } else if verdict == Verdict::Restart {
            Cause::Unhealthy
        } else if s.oom_killed || r.oom {
            Cause::Oom
        } else {
            match r.api_kill {
                Some(ApiKill { stopped: true, .. } | ApiKill { graceful: true, .. }) => {
                    Cause::ApiStop
                }
                Some(_) => Cause::ApiKill,
                None => Cause::Crash,
            }
        };
        r.last_cause = Some(cause);
        r.crash_seen = (cause == Cause::Crash).then_some(now.at);
        let history = r.history.get_or_insert_with(History::default);
        let run = s.started_at.clone().unwrap_or_default();
        if cause.is_its_own() {
            history.failure(now.at, &run, ran_for(&s, now.wall), &limits);
        }
        let approval = approval.or_else(|| match mode {
            Mode::Auto => Some(Approval::Auto),
            Mode::Manual if self.always.contains(&target) => Some(Approval::Always),
            Mode::Manual | Mode::Observe => None,
        });
        // A label may lengthen the stop timeout only as far as healthther's own stop allows.
        let stop_timeout = r
            .overrides
            .stop_timeout
            .map_or(self.config.stop_timeout, |t| {
                t.min(self.config.stop_timeout.max(LABEL_STOP_CAP))
            });
        let Some(approval) = approval else {
            let seen = match &net {
                Some((p, Cause::ParentRecreated, _)) => {
                    format!(
                        "{}; {} was recreated, so it must be recreated too",
                        describe(&s),
                        p.name
                    )
                }
                Some((p, _, _)) => format!(
                    "{}, but it lost its network when {} restarted",
                    describe(&s),
                    p.name
                ),
                None => describe(&s),
            };
            self.ask(id, &target, &s, seen, verdict, now, out);
            return;
        };
        let plan = match approval {
            // An answer to this very prompt is a person deciding: no back-off.
            Approval::Operator { .. } => Plan::Revive,
            // Right after our own restart the engine may report the state from before.
            _ if verdict == Verdict::Restart && net.is_none() && history.in_grace(now.at) => {
                Plan::Wait(GRACE)
            }
            // Someone else's doing is undone at once however often it happens; only a
            // quarantine (the container's own failures) still stands.
            _ if !cause.is_its_own() && !history.is_quarantined() && !history.call_refused() => {
                Plan::Revive
            }
            _ => history.plan(now.at, &limits),
        };
        match plan {
            Plan::Revive => {
                history.revived_from(now.at, cause.is_its_own(), verdict == Verdict::Restart);
                let by_operator = matches!(approval, Approval::Operator { .. });
                let (parent, action) = match net {
                    Some((p, _, action)) => (Some(p), action),
                    None if verdict == Verdict::Restart => (None, Action::Restart),
                    None => (None, Action::Start),
                };
                // The action, as the audit record names it (a dependent may be recreated).
                info!(target = %target, container = %s.container.name, seen = %describe(&s),
                    cause = cause.word(), decision = %action.word(), by = %approval.by(), "reviving");
                r.phase = Phase::Acting {
                    again: false,
                    by_operator,
                };
                if action != Action::Recreate {
                    r.own_start = Some(OwnStart::Sent);
                }
                self.note_revival(id, &approval, now.at);
                out.push(Command::Act(Act {
                    target,
                    action,
                    seen: s,
                    approval,
                    mode,
                    stop_timeout,
                    cause,
                    parent,
                    decided: now.at,
                }));
            }
            Plan::Wait(d) => {
                info!(target = %target, container = %s.container.name, seen = %describe(&s),
                    wait_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                    "backing off before the next revival");
                r.phase = Phase::Waiting {
                    until: now.at + d,
                    why: Why::Backoff,
                    approval: None,
                };
            }
            // Still failing: told once per failure (for metrics and people), not acted on.
            Plan::Quarantine { newly: false } => {
                if r.reported.replace(verdict) != Some(verdict) {
                    let mut outcome = not_acted_on(
                        &target,
                        &s,
                        mode,
                        Skip::Quarantined,
                        format!("quarantined: `healthther release {target}` lifts it"),
                        now,
                    );
                    outcome.down = Some(r.failing(now));
                    out.push(Command::report(outcome));
                }
            }
            Plan::Quarantine { newly: true } => {
                let note = format!(
                    "{} revivals failed within {}: not reviving it any more. It is released when \
                     it runs well for {} again, or with `healthther release {}`",
                    limits.quarantine_after,
                    humantime::format_duration(limits.window),
                    humantime::format_duration(limits.reset_after),
                    target
                );
                error!(target = %target, container = %s.container.name, seen = %describe(&s),
                    "QUARANTINED: {note}");
                let mut outcome = told(
                    now,
                    &target,
                    &s.container,
                    describe(&s),
                    What::Quarantined { note },
                );
                outcome.down = Some(r.failing(now));
                out.push(Command::report(outcome));
            }
        }
    }

    /// A target runs: if long enough, its revival history is over.
    fn settle(
        &mut self,
        id: &str,
        target: &TargetName,
        s: &Snapshot,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        let limits = self.config.limits;
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        let Some(h) = r.history.as_mut() else {
            return;
        };
        let ran = ran_for(s, now.wall);
        let was_quarantined = h.running(ran, &limits);
        if ran >= limits.reset_after {
            r.history = None;
        }
        if was_quarantined {
            info!(target = %target, container = %s.container.name,
                "released from quarantine: it runs well again");
            out.push(Command::report(told(
                now,
                target,
                &s.container,
                describe(s),
                What::Released { by: None },
            )));
        }
    }

    /// Says once what was seen about a target that is not being acted on.
    fn report(
        &mut self,
        id: &str,
        target: &TargetName,
        s: &Snapshot,
        verdict: Verdict,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        let Some(mut r) = self.records.remove(id) else {
            return;
        };
        if matches!(verdict, Verdict::Fine | Verdict::Wait) {
            // Running again (its start event may have been missed): what explained its last
            // death is over, unless a stop is under way right now.
            if r.down_since.take().is_some() {
                let mut outcome = told(now, target, &s.container, describe(s), What::Recovered);
                outcome.state = Some(s.clone());
                out.push(Command::report(outcome));
            }
            r.settle_until = None;
            if r.stopping.is_none() {
                r.api_kill = None;
            }
            if std::mem::take(&mut r.held_by_stop) {
                // Started again while the event stream was away: the hold is over all the same.
                info!(target = %target, container = %s.container.name, "started again: no longer held");
                out.push(Command::report(told(
                    now,
                    target,
                    &s.container,
                    describe(s),
                    What::Resumed {
                        why: "started again".into(),
                    },
                )));
            }
            // A health check in its start period is the normal course after any start.
            if r.reported.take().is_some() {
                info!(target = %target, container = %s.container.name, "running again");
            }
            r.declined = None;
            self.drop_prompt(&mut r, "it runs again without us", now, out);
        } else if r.reported.replace(verdict) != Some(verdict) {
            let seen = describe(s);
            match verdict {
                Verdict::LeaveToEngine => info!(target = %target, container = %s.container.name,
                    seen = %seen, "the engine's restart policy is at work; leaving it"),
                _ => warn!(target = %target, container = %s.container.name, seen = %seen,
                    "not acting on this state"),
            }
        }
        self.records.insert(id.to_string(), r);
    }

    // --- The operator -----------------------------------------------------------------

    fn announce(&mut self) {
        let names: Vec<&str> = self.config.targets.iter().map(TargetName::as_str).collect();
        info!(
            targets = %names.join(","),
            mode = %self.config.mode,
            poll_interval = ?self.config.poll_interval,
            "watching"
        );
        if self.config.mode == Mode::Manual && !self.terminal {
            self.tell_how_to_answer("stdin is not a terminal");
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

    /// A target needs action that nobody allowed yet: open a prompt, unless the operator said
    /// `never` for it, or `no` to this very failure.
    #[allow(clippy::too_many_arguments)]
    fn ask(
        &mut self,
        id: &str,
        target: &TargetName,
        s: &Snapshot,
        seen: String,
        verdict: Verdict,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        let dependents = self.dependent_targets(id);
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        let run = s.started_at.clone().unwrap_or_default();
        if self.never.contains(target) {
            // Every failure is still told (and notified): a mistaken `never` must not become
            // a silent outage. Once per failure: per run.
            if r.never_told.as_deref() != Some(run.as_str()) {
                r.never_told = Some(run.clone());
                warn!(target = %target, container = %s.container.name, seen = %describe(s),
                    "not acting, not asking: the operator answered never for this target \
                     (`healthther forget {target}` undoes it)");
                let mut outcome = told(
                    now,
                    target,
                    &s.container,
                    describe(s),
                    What::Observed {
                        mode: Mode::Manual,
                        would: would(verdict),
                        never: true,
                        note: Some(format!(
                            "the operator answered never for {target}; `healthther forget \
                             {target}` undoes it"
                        )),
                    },
                );
                outcome.state = Some(s.clone());
                outcome.down = Some(r.failing(now));
                out.push(Command::report(outcome));
            }
            return;
        }
        if r.declined.as_deref() == Some(run.as_str()) {
            return;
        }
        match &r.prompt {
            Some((p, _)) if p.run == run && p.verdict == verdict => return,
            // A new failure (another run, or dead where it was unhealthy): the open prompt
            // no longer says what the operator would answer, so a new one replaces it.
            Some((p, _)) => {
                out.push(Command::report(told(
                    now,
                    &p.target,
                    &p.container,
                    p.seen.clone(),
                    What::PromptDropped {
                        why: "a new failure replaces it".into(),
                    },
                )));
                r.prompt = None;
            }
            None => {}
        }
        let pending = Pending {
            target: target.clone(),
            container: s.container.clone(),
            seen,
            verdict,
            since: match s.status {
                Status::Running => now.wall,
                _ => s.finished_at.unwrap_or(now.wall),
            },
            run,
            failed_revivals: r.history.as_ref().map_or(0, History::recent_failures),
            dependents,
        };
        let text = prompt::render(&pending, now.wall);
        let mut outcome = told(
            now,
            target,
            &s.container,
            pending.seen.clone(),
            What::Asked {
                prompt: text.clone(),
            },
        );
        outcome.state = Some(s.clone());
        outcome.down = Some(r.failing(now));
        out.push(Command::report(outcome));
        info!(target: FILE_ONLY, target = %target, container = %s.container.name,
            seen = %pending.seen, "asking the operator: {text}");
        self.prompt_seq += 1;
        r.prompt = Some((pending, self.prompt_seq));
        if self.front().map(|p| p.container.id.as_str()) != Some(id) {
            let waiting = self.records.values().filter(|r| r.prompt.is_some()).count();
            info!(target = %target, seen = %describe(s), waiting, "queued a prompt behind the open one");
        }
    }

    fn drop_prompt(&mut self, r: &mut Watched, why: &str, now: Now, out: &mut Vec<Command>) {
        let Some((p, _)) = r.prompt.take() else {
            return;
        };
        info!(target = %p.target, container = %p.container.name, "dropping the prompt: {why}");
        out.push(Command::report(told(
            now,
            &p.target,
            &p.container,
            p.seen.clone(),
            What::PromptDropped {
                why: why.to_string(),
            },
        )));
    }

    /// The oldest open prompt: the one the terminal answers.
    fn front(&self) -> Option<&Pending> {
        self.queue().into_iter().next().map(|(p, _)| p)
    }

    /// Open prompts, oldest failure first.
    fn open_prompts(&self) -> Vec<&Pending> {
        self.queue().into_iter().map(|(p, _)| p).collect()
    }

    /// Open prompts with their place in the queue, oldest failure first.
    fn queue(&self) -> Vec<(&Pending, u64)> {
        let mut open: Vec<(&Pending, u64)> = self
            .records
            .values()
            .filter_map(|r| r.prompt.as_ref().map(|(p, seq)| (p, *seq)))
            .collect();
        open.sort_by(|a, b| a.0.since.cmp(&b.0.since).then(a.1.cmp(&b.1)));
        open
    }

    /// Shows the oldest open prompt, unless it is on the console already or an approved
    /// action is still under way: the terminal reads answer, outcome, next question.
    fn show_front(&mut self, now: Now, out: &mut Vec<Command>) {
        if self
            .records
            .values()
            .any(Watched::operator_action_under_way)
        {
            return;
        }
        let front = self
            .queue()
            .into_iter()
            .next()
            .map(|(p, seq)| ((p.container.id.clone(), seq), prompt::render(p, now.wall)));
        let key = front.as_ref().map(|(key, _)| key.clone());
        if key != self.shown {
            self.shown = key;
            if let Some((_, text)) = front {
                out.push(Command::Print(text));
            }
        }
    }

    /// The prompt on the console, while it is still open: the only one a typed answer is for.
    fn shown_prompt(&self) -> Option<&Pending> {
        let (id, seq) = self.shown.as_ref()?;
        self.records
            .get(id)?
            .prompt
            .as_ref()
            .filter(|(_, s)| s == seq)
            .map(|(p, _)| p)
    }

    fn on_line(&mut self, line: &str, now: Now, out: &mut Vec<Command>) {
        if self.config.mode != Mode::Manual {
            return;
        }
        let Some(front) = self.front() else {
            if !line.trim().is_empty() {
                out.push(Command::Print(
                    "Nothing to answer: no prompt is open.".into(),
                ));
            }
            return;
        };
        // What the operator answers is the prompt on the screen, even if an older failure was
        // queued in front of it meanwhile, and never one they have not seen yet.
        let Some(shown) = self.shown_prompt() else {
            if !line.trim().is_empty() {
                out.push(Command::Print(format!(
                    "Not answered: the next prompt ({}) is not on the screen yet; it shows once \
                     the action under way ends.",
                    front.who()
                )));
            }
            return;
        };
        let again = prompt::render(shown, now.wall);
        if line.trim().is_empty() {
            out.push(Command::Print(again));
            return;
        }
        let Some(answer) = prompt::parse_answer(line) else {
            out.push(Command::Print(prompt::hint(shown.target.as_str())));
            out.push(Command::Print(again));
            return;
        };
        let id = shown.container.id.clone();
        if let Err(e) = self.apply_answer(Some(&id), answer, "terminal", now, out) {
            out.push(Command::Print(e));
            out.push(Command::Print(again));
        }
    }

    fn on_request(
        &mut self,
        request: Request,
        by: &str,
        now: Now,
        out: &mut Vec<Command>,
    ) -> Reply {
        match request {
            Request::Pending => self.pending_list(now),
            Request::Probe => self.probe(now),
            Request::Release { target } => self.release(&target, by, now, out),
            Request::Status { json } => self.status(json, now),
            Request::Hold {
                target,
                duration,
                reason,
            } => self.hold(&target, duration, reason, by, now, out),
            Request::Resume { target } => self.resume(&target, by, now, out),
            Request::Forget { target } => self.forget(&target, by, now, out),
            Request::Answer { target, answer } => {
                if self.config.mode != Mode::Manual && self.front().is_none() {
                    return Reply::error(format!(
                        "nothing to answer: MODE={} does not ask",
                        self.config.mode
                    ));
                }
                let Some(answer) = prompt::parse_answer(&answer) else {
                    return Reply::error(format!(
                        "{answer:?} is not an answer; use yes, no, always or never"
                    ));
                };
                match self.apply_answer(Some(&target), answer, by, now, out) {
                    Ok(text) => Reply::ok(text),
                    Err(e) => Reply::error(e),
                }
            }
        }
    }

    fn pending_list(&self, now: Now) -> Reply {
        let lines: Vec<String> = self
            .open_prompts()
            .into_iter()
            .map(|p| {
                let age = prompt::ago(now.wall.duration_since(p.since).unwrap_or_default());
                let shown = |s: &str| crate::escape::control(s).into_owned();
                format!("{}\t{}\t{age} ago", shown(&p.who()), shown(&p.seen))
            })
            .collect();
        if !lines.is_empty() {
            return Reply::ok(lines.join("\n"));
        }
        Reply::ok(match self.config.mode {
            Mode::Manual => "no open prompts",
            Mode::Auto => "no open prompts (MODE=auto revives without asking)",
            Mode::Observe => "no open prompts (MODE=observe never acts)",
        })
    }

    /// Alive when a pass completed within two poll periods (and some slack for a slow engine).
    fn probe(&self, now: Now) -> Reply {
        let limit = self.config.poll_interval * 2 + PROBE_SLACK;
        match self.last_pass.map(|t| now.at.saturating_duration_since(t)) {
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

    /// Lifts the quarantine of every container of `target` and looks at them at once.
    fn release(&mut self, target: &str, by: &str, now: Now, out: &mut Vec<Command>) -> Reply {
        let mut released = Vec::new();
        for (id, r) in self.records.iter_mut() {
            let Some(t) = &r.target else {
                continue;
            };
            if t.as_str() != target && r.container.name != target {
                continue;
            }
            if r.history.as_mut().is_some_and(History::release) {
                released.push((id.clone(), t.clone(), r.container.clone()));
            }
        }
        if released.is_empty() {
            let known = self.config.targets.get(target).is_some()
                || self
                    .records
                    .values()
                    .any(|r| r.target.is_some() && r.container.name == target);
            if !known {
                return self.not_a_target(target);
            }
            return Reply::error(format!("{target} is not quarantined"));
        }
        let mut names = Vec::new();
        for (id, t, c) in released {
            info!(target = %t, container = %c.name, by = %by, "released from quarantine");
            out.push(Command::report(told(
                now,
                &t,
                &c,
                String::new(),
                What::Released {
                    by: Some(by.to_string()),
                },
            )));
            names.push(c.name.clone());
            self.look(&id, None, out);
        }
        Reply::ok(format!("released {}; checking it now", names.join(", ")))
    }

    /// Applies an operator's answer to the oldest open prompt of `target` (the front one when
    /// `None`), and says what will happen.
    fn apply_answer(
        &mut self,
        target: Option<&str>,
        answer: Answer,
        by: &str,
        now: Now,
        out: &mut Vec<Command>,
    ) -> Result<String, String> {
        let open = self.open_prompts();
        let chosen = match target {
            None => open.first(),
            Some(t) => open
                .iter()
                .find(|p| p.target.as_str() == t || p.container.name == t || p.container.id == t),
        };
        let Some(chosen) = chosen else {
            return Err(match target {
                None => "no prompt is open".to_string(),
                Some(t) if open.is_empty() => format!("no open prompt for {t}: no prompt is open"),
                Some(t) => {
                    let names: Vec<String> = open.iter().map(|p| p.who()).collect();
                    format!("no open prompt for {t}; open: {}", names.join(", "))
                }
            });
        };
        let id = chosen.container.id.clone();
        let target = chosen.target.clone();
        // `always` and `never` settle the target's other open prompts too.
        let mut settled = vec![id.clone()];
        if matches!(answer, Answer::Always | Answer::Never) {
            settled.extend(
                open.iter()
                    .filter(|p| p.target == target && p.container.id != id)
                    .map(|p| p.container.id.clone()),
            );
        }
        let mut who = String::new();
        for (i, sid) in settled.iter().enumerate() {
            let Some(r) = self.records.get_mut(sid) else {
                continue;
            };
            let Some((p, _)) = r.prompt.take() else {
                continue;
            };
            if i == 0 {
                who = p.who();
            }
            if answer == Answer::No {
                r.declined = Some(p.run.clone());
            }
            if answer == Answer::Never {
                // The answer is this failure's record; the next one is told as `never`.
                r.never_told = Some(p.run.clone());
            }
            out.push(Command::report(told(
                now,
                &p.target,
                &p.container,
                p.seen.clone(),
                What::Answered {
                    answer,
                    by: by.to_string(),
                    same_target: i > 0,
                },
            )));
        }
        match answer {
            Answer::Always => {
                self.always.insert(target.clone());
            }
            Answer::Never => {
                self.never.insert(target.clone());
            }
            Answer::Yes | Answer::No => {}
        }
        let later = if self.engine_up {
            ""
        } else {
            " as soon as the Docker engine answers again (it is unreachable right now)"
        };
        let what = match answer {
            Answer::Yes => format!("reviving {who}{later}"),
            Answer::Always => format!(
                "reviving {who}{later}, and from now on without asking (kept across restarts; \
                 `healthther forget {target}` undoes it)"
            ),
            Answer::No => format!("leaving {who} as it is; asking again if it fails again"),
            Answer::Never => format!(
                "leaving {who} and never asking about {target} again; its failures are still \
                 logged and notified (kept across restarts; `healthther forget {target}` undoes \
                 it)"
            ),
        };
        info!(target = %target, by = %by, "operator answered: {what}");
        if matches!(answer, Answer::Yes | Answer::Always) {
            let approval = Approval::Operator {
                answer,
                by: by.to_string(),
            };
            for sid in &settled {
                self.look(sid, Some(approval.clone()), out);
            }
        }
        // The screen moves on only if it showed one of the prompts just settled.
        if self
            .shown
            .as_ref()
            .is_some_and(|(id, _)| settled.contains(id))
        {
            self.shown = None;
        }
        Ok(what)
    }
}

impl Core {
    // --- Holds ------------------------------------------------------------------------

    fn hold(
        &mut self,
        target: &str,
        duration: Option<Duration>,
        reason: Option<String>,
        by: &str,
        now: Now,
        out: &mut Vec<Command>,
    ) -> Reply {
        let Some(t) = self.config.targets.get(target).cloned() else {
            return self.not_a_target(target);
        };
        let reason = reason.unwrap_or_else(|| "held by the operator".into());
        let until = match duration.map(|d| now.at.checked_add(d)) {
            Some(None) => {
                return Reply::error(
                    "hold: that duration is too long; hold without one to hold until resumed",
                )
            }
            Some(Some(u)) => Some(u),
            None => None,
        };
        let how_long = match duration {
            Some(d) => format!("for {}", humantime::format_duration(d)),
            None => "until `healthther resume`".to_string(),
        };
        info!(target = %t, by = %by, "held {how_long}: {reason}");
        out.push(Command::report(about_target(
            now,
            &t,
            What::Held {
                by: Some(by.to_string()),
                note: format!("{reason} ({how_long})"),
            },
        )));
        self.holds.insert(
            t.clone(),
            Hold {
                reason,
                by: by.to_string(),
                since: now.wall,
                until,
            },
        );
        let ids: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| r.target.as_ref() == Some(&t))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let Some(mut r) = self.records.remove(&id) else {
                continue;
            };
            self.drop_prompt(&mut r, "the target is held", now, out);
            if matches!(r.phase, Phase::Waiting { .. } | Phase::Due { .. }) {
                r.phase = Phase::Idle;
            }
            self.records.insert(id, r);
        }
        Reply::ok(format!("holding {t} {how_long}"))
    }

    /// Forgets the standing `always` or `never` of `target`; its containers are looked at
    /// again, so a failure under way is asked about.
    fn forget(&mut self, target: &str, by: &str, now: Now, out: &mut Vec<Command>) -> Reply {
        let Some(t) = self.config.targets.get(target).cloned() else {
            return self.not_a_target(target);
        };
        let answer = if self.always.remove(&t) {
            Answer::Always
        } else if self.never.remove(&t) {
            Answer::Never
        } else {
            return Reply::error(format!("{t} has no standing answer (always or never)"));
        };
        let word = answer.word();
        info!(target = %t, by = %by, "forgot the standing answer {word}");
        let ids: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| r.target.as_ref() == Some(&t))
            .map(|(id, _)| id.clone())
            .collect();
        out.push(Command::report(about_target(
            now,
            &t,
            What::Forgotten {
                answer,
                by: by.to_string(),
            },
        )));
        for id in ids {
            if let Some(r) = self.records.get_mut(&id) {
                r.reported = None;
            }
            self.look(&id, None, out);
        }
        Reply::ok(format!(
            "forgot {word} for {t}: its failures are asked about again"
        ))
    }

    fn resume(&mut self, target: &str, by: &str, now: Now, out: &mut Vec<Command>) -> Reply {
        let Some(t) = self.config.targets.get(target).cloned() else {
            return self.not_a_target(target);
        };
        if !self.holds.contains_key(&t) {
            return Reply::error(format!("{t} is not held"));
        }
        self.end_hold(&t, &format!("resumed by {by}"), now, out);
        Reply::ok(format!("resumed {t}; looking at it now"))
    }

    /// A hold ends: the target is looked at again at once.
    fn end_hold(&mut self, t: &TargetName, why: &str, now: Now, out: &mut Vec<Command>) {
        if self.holds.remove(t).is_none() {
            return;
        }
        info!(target = %t, "no longer held: {why}");
        out.push(Command::report(about_target(
            now,
            t,
            What::Resumed {
                why: why.to_string(),
            },
        )));
        let ids: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| r.target.as_ref() == Some(t))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(r) = self.records.get_mut(&id) {
                r.reported = None;
            }
            self.look(&id, None, out);
        }
    }

    /// Where each target stands, in the order of `HEALTH_TARGETS`: `status`'s rows, and the
    /// metrics' gauges.
    pub fn target_rows(&self, now: Now) -> Vec<TargetStatus> {
        self.config
            .targets
            .iter()
            .map(|t| self.target_status(t, now))
            .collect()
    }

    /// `healthther status`: one entry per target, in the order of `HEALTH_TARGETS`.
    fn status(&self, json: bool, now: Now) -> Reply {
        let rows = self.target_rows(now);
        if json {
            match serde_json::to_string_pretty(&rows) {
                Ok(text) => Reply::ok(text),
                Err(e) => Reply::error(format!("cannot encode the status: {e}")),
            }
        } else {
            Reply::ok(status::render(&rows))
        }
    }

    fn target_status(&self, t: &TargetName, now: Now) -> TargetStatus {
        let mut containers: Vec<ContainerStatus> = self
            .records
            .values()
            .filter(|r| r.target.as_ref() == Some(t))
            .map(|r| ContainerStatus {
                name: r.container.name.clone(),
                id: r.container.id.chars().take(12).collect(),
                project: r.container.project.clone(),
                state: r.state.as_ref().map(|s| s.status.to_string()),
                health: r.state.as_ref().map(|s| health_word(s.health).to_string()),
                since: r.state.as_ref().and_then(|s| s.since).map(status::time),
                last_action: r.last_action.as_ref().map(|a| ActionStatus {
                    what: a.what,
                    when: status::time(a.at),
                    result: a.result.clone(),
                }),
                failed_revivals: r.history.as_ref().map_or(0, History::recent_failures),
                backoff_until: match r.phase {
                    Phase::Waiting {
                        until,
                        why: Why::Backoff,
                        ..
                    } => Some(status::time(
                        now.wall + until.saturating_duration_since(now.at),
                    )),
                    _ => None,
                },
                quarantined: r.history.as_ref().is_some_and(History::is_quarantined),
                prompt_open: r.prompt.is_some(),
                held_by_stop: r.held_by_stop,
                last_cause: r.last_cause.map(Cause::word),
                dependents: self.dependent_names(&r.container.id),
            })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        let (resolution, ambiguous_projects) = match self.said.get(t) {
            Some(Said::Ambiguous(p)) => ("ambiguous", p.iter().cloned().collect()),
            _ if containers.is_empty() => ("missing", Vec::new()),
            _ => ("found", Vec::new()),
        };
        TargetStatus {
            target: t.to_string(),
            resolution,
            ambiguous_projects,
            held: self.holds.get(t).map(|h| HoldStatus {
                reason: h.reason.clone(),
                by: h.by.clone(),
                since: status::time(h.since),
                until: h
                    .until
                    .map(|u| status::time(now.wall + u.saturating_duration_since(now.at))),
            }),
            answer: if self.always.contains(t) {
                Some("always")
            } else if self.never.contains(t) {
                Some("never")
            } else {
                None
            },
            containers,
        }
    }

    fn not_a_target(&self, name: &str) -> Reply {
        let names: Vec<&str> = self.config.targets.iter().map(TargetName::as_str).collect();
        Reply::error(format!(
            "{name} is not a target; the targets are {}",
            names.join(", ")
        ))
    }

    // --- What survives a restart ------------------------------------------------------

    fn wall(&self, t: Instant) -> SystemTime {
        match t.checked_duration_since(self.epoch.at) {
            Some(d) => self.epoch.wall + d,
            None => self.epoch.wall - self.epoch.at.duration_since(t),
        }
    }

    fn instant(&self, t: SystemTime) -> Instant {
        match t.duration_since(self.epoch.wall) {
            Ok(d) => self.epoch.at + d,
            Err(e) => self
                .epoch
                .at
                .checked_sub(e.duration())
                .unwrap_or(self.epoch.at),
        }
    }

    /// What must survive a restart, as it stands.
    fn to_saved(&self) -> Saved {
        let mut holds: Vec<SavedHold> = self
            .holds
            .iter()
            .map(|(t, h)| SavedHold {
                target: t.to_string(),
                reason: h.reason.clone(),
                by: h.by.clone(),
                since: Some(h.since),
                until: h.until.map(|u| self.wall(u)),
            })
            .collect();
        holds.sort_by(|a, b| a.target.cmp(&b.target));
        let names = |set: &HashSet<TargetName>| {
            let mut v: Vec<String> = set.iter().map(ToString::to_string).collect();
            v.sort();
            v
        };
        let mut containers: Vec<SavedContainer> = self
            .records
            .iter()
            .filter_map(|(id, r)| {
                Some(SavedContainer {
                    id: id.clone(),
                    name: r.container.name.clone(),
                    history: r.history.as_ref()?.to_saved(|t| self.wall(t)),
                })
            })
            .chain(self.restored.iter().map(|(id, h)| SavedContainer {
                id: id.clone(),
                name: String::new(),
                history: h.to_saved(|t| self.wall(t)),
            }))
            .collect();
        containers.sort_by(|a, b| a.id.cmp(&b.id));
        Saved {
            v: crate::state::FORMAT_VERSION,
            holds,
            always: names(&self.always),
            never: names(&self.never),
            containers,
        }
    }

    fn save_if_changed(&mut self, out: &mut Vec<Command>) {
        let now = self.to_saved();
        if self.saved.as_ref() != Some(&now) {
            self.saved = Some(now.clone());
            out.push(Command::Save(now));
        }
    }

    /// Takes back what the last run kept. Histories wait for the first whole list, which
    /// tells whether their containers still exist.
    fn restore(&mut self, saved: Saved, now: Now) {
        for h in &saved.holds {
            let Some(t) = self.config.targets.get(&h.target).cloned() else {
                continue;
            };
            let until = h.until.map(|u| self.instant(u));
            if until.is_some_and(|u| u <= now.at) {
                continue;
            }
            self.holds.insert(
                t,
                Hold {
                    reason: h.reason.clone(),
                    by: h.by.clone(),
                    since: h.since.unwrap_or(now.wall),
                    until,
                },
            );
        }
        let targets = |names: &[String]| -> HashSet<TargetName> {
            names
                .iter()
                .filter_map(|n| self.config.targets.get(n).cloned())
                .collect()
        };
        self.always = targets(&saved.always);
        self.never = targets(&saved.never);
        self.restored = saved
            .containers
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    History::from_saved(&c.history, |t| self.instant(t)),
                )
            })
            .collect();
        info!(
            holds = self.holds.len(),
            histories = self.restored.len(),
            "took back the state kept by the last run"
        );
        self.saved = Some(saved);
    }
}

impl Core {
    /// Says once, for each task of a Swarm service that a target names (by its container's or
    /// its service's name), that healthther leaves it alone: a log line and a `skipped` record.
    /// Swarm replaces failed tasks itself; starting one would fight it.
    fn tell_swarm_tasks(&mut self, now: Now, out: &mut Vec<Command>) {
        for r in self.records.values_mut() {
            if r.swarm_told {
                continue;
            }
            let Some((t, service)) = self.config.targets.swarm_task_named(&r.container) else {
                continue;
            };
            r.swarm_told = true;
            let name = &r.container.name;
            let service = if service.is_empty() { "?" } else { service };
            let note = format!(
                "{name} is a task of Swarm service {service}: Swarm replaces failed tasks \
                 itself; healthther leaves it alone"
            );
            warn!(target = %t, container = %name, "{note}");
            let seen = format!("a task of Swarm service {service}");
            out.push(Command::report(told(
                now,
                t,
                &r.container,
                seen,
                What::Skipped {
                    mode: None,
                    approval: None,
                    cause: None,
                    why: Skip::SwarmTask,
                    note: Some(note),
                },
            )));
        }
    }
}

/// An id as `docker ps` shows it.
/// Whether a signal sent through the API is the first step of a stop: not a kill, and not one
/// that programs take for "reload" or "reopen your logs" (HUP, USR1, USR2, WINCH), after which
/// the container goes on running. Podman names no signal at all.
fn is_stop_signal(signal: Option<i32>) -> bool {
    const NOT_A_STOP: [i32; 5] = [SIGKILL, 1, 10, 12, 28];
    signal.is_some_and(|s| !NOT_A_STOP.contains(&s))
}

/// The record of a failure healthther does not act on (held, quarantined): `skipped`, with
/// `result` saying why.
fn not_acted_on(
    target: &TargetName,
    s: &Snapshot,
    mode: Mode,
    why: Skip,
    note: String,
    now: Now,
) -> Outcome {
    let mut outcome = told(
        now,
        target,
        &s.container,
        describe(s),
        What::Skipped {
            mode: Some(mode),
            approval: None,
            cause: None,
            why,
            note: Some(note),
        },
    );
    outcome.state = Some(s.clone());
    outcome
}

/// An outcome about `c`, a container of `target`, the state and failure left to fill in.
fn told(now: Now, target: &TargetName, c: &ContainerRef, seen: String, what: What) -> Outcome {
    Outcome {
        at: now.wall,
        target: Some(target.clone()),
        container: Some(c.clone()),
        seen,
        state: None,
        down: None,
        what,
    }
}

/// An outcome about a whole target (a hold, a forget).
fn about_target(now: Now, target: &TargetName, what: What) -> Outcome {
    Outcome {
        at: now.wall,
        target: Some(target.clone()),
        container: None,
        seen: String::new(),
        state: None,
        down: None,
        what,
    }
}

/// What a verdict that acts would have done.
fn would(verdict: Verdict) -> Action {
    if verdict == Verdict::Restart {
        Action::Restart
    } else {
        Action::Start
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn health_word(h: Health) -> &'static str {
    match h {
        Health::None => "none",
        Health::Starting => "starting",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}

/// The core driven by scripted inputs and a clock that only moves when told: every race the
/// project has met, replayed in its bad order.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::RecordEvent;
    use crate::config::Args;
    use clap::Parser;

    const MS: Duration = Duration::from_millis(1);

    struct Script {
        core: Core,
        t0: Instant,
        elapsed: Duration,
    }

    fn config(mode: &str, targets: &str) -> Arc<Config> {
        config_with(&["--targets", targets, "--mode", mode])
    }

    fn config_with(flags: &[&str]) -> Arc<Config> {
        let args = Args::try_parse_from(std::iter::once("healthther").chain(flags.iter().copied()))
            .expect("valid test arguments");
        Arc::new(Config::from_args(args).expect("valid test configuration"))
    }

    fn c(id: &str, name: &str, project: Option<&str>, service: Option<&str>) -> ContainerRef {
        ContainerRef {
            id: id.into(),
            name: name.into(),
            project: project.map(Into::into),
            service: service.map(Into::into),
            ..ContainerRef::default()
        }
    }

    fn listed(c: &ContainerRef, status: Status) -> Listed {
        Listed {
            container: c.clone(),
            status,
            health: Health::None,
            network_parent: None,
        }
    }

    /// A running container that shares `parent`'s network namespace.
    fn listed_in(c: &ContainerRef, parent: &str) -> Listed {
        Listed {
            network_parent: Some(parent.into()),
            ..listed(c, Status::Running)
        }
    }

    impl Script {
        fn new(mode: &str, targets: &str) -> Script {
            Script::with(config(mode, targets))
        }

        fn with(config: Arc<Config>) -> Script {
            let t0 = Instant::now();
            let now = Now {
                at: t0,
                wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            };
            Script {
                core: Core::new(config, false, now),
                t0,
                elapsed: Duration::ZERO,
            }
        }

        fn now(&self) -> Now {
            Now {
                at: self.t0 + self.elapsed,
                wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + self.elapsed,
            }
        }

        fn feed(&mut self, input: Input) -> Vec<Command> {
            let now = self.now();
            let out = self.core.handle(input, now);
            golden::capture(&out);
            out
        }

        /// Moves the clock on and lets every wait that ended go off.
        fn advance(&mut self, d: Duration) -> Vec<Command> {
            self.elapsed += d;
            self.feed(Input::Tick)
        }

        /// Connects and lists `running` containers; returns what that asked for.
        fn start(&mut self, running: &[&ContainerRef]) -> Vec<Command> {
            let session_start = self.now().wall;
            self.feed(Input::Connected { session_start });
            let containers = running.iter().map(|c| listed(c, Status::Running)).collect();
            self.feed(Input::Listed {
                full: true,
                containers,
            })
        }

        fn event(&mut self, kind: EventKind, c: &ContainerRef) -> Vec<Command> {
            let time = self.now().wall;
            self.feed(Input::Event(Event {
                kind,
                container: c.clone(),
                time,
            }))
        }

        /// The inspect's answer: `c` in `status`, its run started `run` ms into the script.
        fn inspected(&mut self, c: &ContainerRef, status: Status, run: u64) -> Vec<Command> {
            let started = self.now().wall - self.elapsed + Duration::from_millis(run);
            let s = snapshot(c, status, started, self.now().wall);
            self.feed(Input::Inspected {
                container: c.clone(),
                result: Ok(Some(s)),
            })
        }

        fn answer(&mut self, target: &str, answer: &str) -> (Reply, Vec<Command>) {
            let answer = Request::Answer {
                target: target.into(),
                answer: answer.into(),
            };
            request(self, answer)
        }
    }

    fn snapshot(
        c: &ContainerRef,
        status: Status,
        started: SystemTime,
        now: SystemTime,
    ) -> Snapshot {
        Snapshot {
            container: c.clone(),
            health: Health::None,
            exit_code: (status != Status::Running).then_some(137),
            oom_killed: false,
            has_run: true,
            started_at: Some(humantime::format_rfc3339_nanos(started).to_string()),
            finished_at: (status != Status::Running).then_some(now),
            error: None,
            health_output: None,
            network_parent: None,
            has_check: false,
            status,
        }
    }

    fn inspects(out: &[Command]) -> Vec<&str> {
        out.iter()
            .filter_map(|c| match c {
                Command::Inspect(c) => Some(c.id.as_str()),
                _ => None,
            })
            .collect()
    }

    fn acts(out: &[Command]) -> Vec<&Act> {
        out.iter()
            .filter_map(|c| match c {
                Command::Act(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    /// The audit file's records among `out`, as the audit file writes them.
    fn records(out: &[Command]) -> Vec<crate::audit::Record> {
        out.iter()
            .filter_map(|c| match c {
                Command::Report(o) => crate::audit::Record::of(o),
                _ => None,
            })
            .collect()
    }

    fn acted(act: &Act, result: ActResult) -> Input {
        Input::Acted(Acted {
            act: act.clone(),
            result,
            took: MS,
        })
    }

    const TERM: EventKind = EventKind::Kill { signal: Some(15) };
    const KILL: EventKind = EventKind::Kill { signal: Some(9) };

    fn request(s: &mut Script, request: Request) -> (Reply, Vec<Command>) {
        let mut out = s.feed(Input::Request {
            request,
            by: "test".into(),
        });
        let at = out
            .iter()
            .position(|c| matches!(c, Command::Reply(_)))
            .expect("a reply");
        let Command::Reply(reply) = out.remove(at) else {
            unreachable!("found above")
        };
        (reply, out)
    }

    fn saves(out: &[Command]) -> Vec<&Saved> {
        out.iter()
            .filter_map(|c| match c {
                Command::Save(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    // --- Dependents -------------------------------------------------------------------

    const VPN_ID: &str = "aaaaaaaaaaaa0000";

    /// vpn and torrent, which shares vpn's network (by id, as compose writes it), listed.
    fn vpn_and_torrent(mode: &str, targets: &str) -> (Script, ContainerRef, ContainerRef) {
        let vpn = c(VPN_ID, "vpn", None, None);
        let torrent = c("t", "torrent", None, None);
        watching(Script::new(mode, targets), vpn, torrent)
    }

    /// `s` connected, its first list showing both running, 30 s on.
    fn watching(
        mut s: Script,
        vpn: ContainerRef,
        torrent: ContainerRef,
    ) -> (Script, ContainerRef, ContainerRef) {
        let session_start = s.now().wall;
        s.feed(Input::Connected { session_start });
        s.feed(Input::Listed {
            full: true,
            containers: vec![listed(&vpn, Status::Running), listed_in(&torrent, VPN_ID)],
        });
        s.elapsed += Duration::from_secs(30);
        (s, vpn, torrent)
    }

    /// vpn is killed and revived by healthther; returns the commands after its start event.
    fn revive_vpn(s: &mut Script, vpn: &ContainerRef) -> Vec<Command> {
        s.event(KILL, vpn);
        let out = s.event(EventKind::Die, vpn);
        assert_eq!(inspects(&out), vec![VPN_ID]);
        let out = s.inspected(vpn, Status::Exited, 0);
        let act = acts(&out)[0].clone();
        assert_eq!(act.action, Action::Start);
        s.elapsed += MS;
        let after = s.event(EventKind::Start, vpn);
        let out = s.feed(acted(&act, ActResult::Running));
        if inspects(&out).contains(&VPN_ID) {
            let run = u64::try_from(s.elapsed.as_millis()).unwrap_or(u64::MAX);
            s.inspected(vpn, Status::Running, run);
        }
        after
    }

    #[test]
    fn a_revived_parent_brings_its_running_dependents_back_after_it() {
        let (mut s, vpn, torrent) = vpn_and_torrent("auto", "vpn,torrent");
        let out = revive_vpn(&mut s, &vpn);
        assert_eq!(
            inspects(&out),
            vec!["t"],
            "torrent is looked at once vpn runs"
        );
        let out = s.inspected(&torrent, Status::Running, 0);
        let act = acts(&out)[0].clone();
        assert_eq!(act.action, Action::Restart);
        assert_eq!(act.cause, Cause::ParentRestarted);
        assert_eq!(act.parent.as_ref().map(|p| p.name.as_str()), Some("vpn"));
        let out = s.feed(acted(&act, ActResult::Running));
        let by = records(&out)[0].by.clone().unwrap_or_default();
        assert!(by.contains("vpn"), "the record names the parent: {by}");
        // Its own start gave it the new network: nothing more.
        s.elapsed += MS;
        s.event(EventKind::Start, &torrent);
        let run = u64::try_from(s.elapsed.as_millis()).unwrap_or(u64::MAX);
        let out = s.inspected(&torrent, Status::Running, run);
        assert!(acts(&out).is_empty());
    }

    #[test]
    fn someone_elses_restart_of_a_parent_brings_its_dependents_back_too() {
        let (mut s, vpn, torrent) = vpn_and_torrent("auto", "vpn,torrent");
        s.event(TERM, &vpn);
        s.event(EventKind::Die, &vpn);
        let out = s.event(EventKind::Start, &vpn);
        assert!(inspects(&out).contains(&"t"));
        let out = s.inspected(&torrent, Status::Running, 0);
        assert_eq!(acts(&out)[0].cause, Cause::ParentRestarted);
        assert_eq!(acts(&out)[0].approval, Approval::Auto);
    }

    #[test]
    fn dependents_wait_until_a_parent_with_a_health_check_is_healthy() {
        let (mut s, vpn, torrent) = vpn_and_torrent("auto", "vpn,torrent");
        s.feed(Input::Listed {
            full: true,
            containers: vec![
                Listed {
                    health: Health::Healthy,
                    ..listed(&vpn, Status::Running)
                },
                listed_in(&torrent, VPN_ID),
            ],
        });
        let out = s.event(EventKind::Start, &vpn);
        assert!(inspects(&out).is_empty(), "vpn is still starting");
        let out = s.event(EventKind::Health(Health::Healthy), &vpn);
        assert!(inspects(&out).contains(&"t"));
    }

    #[test]
    fn a_pass_that_saw_the_parent_down_does_not_forget_its_health_check() {
        let (mut s, vpn, torrent) = vpn_and_torrent("auto", "vpn,torrent");
        let healthy = |c: &ContainerRef| Listed {
            health: Health::Healthy,
            ..listed(c, Status::Running)
        };
        s.feed(Input::Listed {
            full: true,
            containers: vec![healthy(&vpn), listed_in(&torrent, VPN_ID)],
        });
        s.event(KILL, &vpn);
        s.event(EventKind::Die, &vpn);
        s.feed(Input::Listed {
            full: false,
            containers: vec![listed(&vpn, Status::Exited)],
        });
        let mut out = s.inspected(&vpn, Status::Exited, 0);
        if acts(&out).is_empty() {
            // The pass asked for another look.
            out = s.inspected(&vpn, Status::Exited, 0);
        }
        let act = acts(&out)[0].clone();
        let out = s.event(EventKind::Start, &vpn);
        assert!(!inspects(&out).contains(&"t"), "vpn is not healthy yet");
        // A pass looks at torrent meanwhile: too early to act, and nothing is forgotten.
        s.feed(Input::Listed {
            full: false,
            containers: vec![Listed {
                health: Health::Starting,
                ..listed_in(&torrent, VPN_ID)
            }],
        });
        let out = s.inspected(&torrent, Status::Running, 0);
        assert!(acts(&out).is_empty());
        s.feed(acted(&act, ActResult::Running));
        let out = s.event(EventKind::Health(Health::Healthy), &vpn);
        assert!(inspects(&out).contains(&"t"));
        let out = s.inspected(&torrent, Status::Running, 0);
        assert_eq!(acts(&out).len(), 1, "{out:?}");
    }

    #[test]
    fn a_dependent_that_started_after_its_parent_is_left_alone() {
        let (mut s, vpn, torrent) = vpn_and_torrent("auto", "vpn,torrent");
        s.event(EventKind::Start, &vpn);
        s.elapsed += MS;
        // Compose restarted it too, and the look saw that run.
        let run = u64::try_from(s.elapsed.as_millis()).unwrap_or(u64::MAX);
        let out = s.inspected(&torrent, Status::Running, run);
        assert!(acts(&out).is_empty());
    }

    #[test]
    fn a_dependent_that_is_no_target_is_reported_once_and_untouched() {
        let (mut s, vpn, _) = vpn_and_torrent("auto", "vpn");
        let out = revive_vpn(&mut s, &vpn);
        assert!(inspects(&out).is_empty() && acts(&out).is_empty());
        let r = records(&out);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].container, "torrent");
        assert_eq!(r[0].result.as_deref(), Some("dependent_not_a_target"));
        assert!(r[0]
            .note
            .as_deref()
            .unwrap_or("")
            .contains("add it to HEALTH_TARGETS"));
        s.elapsed += Duration::from_secs(30);
        let out = revive_vpn(&mut s, &vpn);
        assert!(records(&out).is_empty(), "said once");
    }

    #[test]
    fn a_dependents_own_failure_never_touches_its_parent() {
        let (mut s, vpn, torrent) = vpn_and_torrent("auto", "vpn,torrent");
        for _ in 0..5 {
            s.event(EventKind::Die, &torrent);
            let out = s.inspected(&torrent, Status::Exited, 0);
            for a in acts(&out) {
                assert_eq!(a.seen.container.name, "torrent");
                s.event(EventKind::Start, &torrent);
                let out = s.feed(acted(a, ActResult::Running));
                assert!(!inspects(&out).contains(&VPN_ID));
            }
            s.elapsed += Duration::from_secs(1);
        }
        let out = s.advance(Duration::from_secs(600));
        assert!(!inspects(&out).contains(&VPN_ID));
        let _ = vpn;
    }

    #[test]
    fn one_prompt_covers_the_parent_and_the_dependents_it_restarts() {
        let (mut s, vpn, torrent) = vpn_and_torrent("manual", "vpn,torrent");
        s.event(KILL, &vpn);
        s.event(EventKind::Die, &vpn);
        let out = s.inspected(&vpn, Status::Exited, 0);
        let prompt = records(&out)[0].note.clone().unwrap_or_default();
        assert!(
            prompt.contains("torrent"),
            "the prompt names the dependent: {prompt}"
        );
        s.answer("vpn", "yes");
        let out = s.inspected(&vpn, Status::Exited, 0);
        let act = acts(&out)[0].clone();
        let out = s.event(EventKind::Start, &vpn);
        s.feed(acted(&act, ActResult::Running));
        assert_eq!(inspects(&out), vec!["t"]);
        let out = s.inspected(&torrent, Status::Running, 0);
        let restart = acts(&out)[0].clone();
        assert!(
            matches!(&restart.approval, Approval::WithParent { by } if by.contains("operator")),
            "no second prompt: {:?}",
            restart.approval
        );
        assert_eq!(restart.parent.map(|p| p.name), Some("vpn".into()));
    }

    #[test]
    fn an_answer_for_the_parent_does_not_lift_a_dependents_quarantine() {
        // vpn is asked about (its label narrows MODE=auto); torrent is revived on its own.
        let mut vpn = c(VPN_ID, "vpn", None, None);
        vpn.labels.insert("healthther.mode".into(), "manual".into());
        let torrent = c("t", "torrent", None, None);
        let config = config_with(&[
            "--targets",
            "vpn,torrent",
            "--mode",
            "auto",
            "--quarantine-after",
            "1",
        ]);
        let (mut s, vpn, torrent) = watching(Script::with(config), vpn, torrent);
        // torrent crashes twice in a row: quarantined.
        for _ in 0..3 {
            s.event(EventKind::Die, &torrent);
            let run = u64::try_from(s.elapsed.as_millis()).unwrap_or(u64::MAX);
            let out = s.inspected(&torrent, Status::Exited, run);
            if let Some(a) = acts(&out).first() {
                let a = (*a).clone();
                s.event(EventKind::Start, &torrent);
                s.feed(acted(&a, ActResult::Running));
                s.inspected(&torrent, Status::Running, run + 1);
            }
            s.elapsed += Duration::from_millis(500);
        }
        let rows = s.core.target_rows(s.now());
        let t = rows
            .iter()
            .find(|t| t.target == "torrent")
            .expect("its row");
        assert!(t.containers[0].quarantined, "{t:?}");
        // Someone starts it by hand; then vpn dies and the operator revives it.
        s.event(EventKind::Start, &torrent);
        let run = u64::try_from(s.elapsed.as_millis()).unwrap_or(u64::MAX);
        s.inspected(&torrent, Status::Running, run);
        s.elapsed += Duration::from_secs(1);
        s.event(KILL, &vpn);
        s.event(EventKind::Die, &vpn);
        s.inspected(&vpn, Status::Exited, 0);
        s.answer("vpn", "yes");
        let act = acts(&s.inspected(&vpn, Status::Exited, 0))[0].clone();
        let out = s.event(EventKind::Start, &vpn);
        s.feed(acted(&act, ActResult::Running));
        assert_eq!(inspects(&out), vec!["t"]);
        let out = s.inspected(&torrent, Status::Running, 0);
        assert!(acts(&out).is_empty(), "the answer was about vpn: {out:?}");
    }

    #[test]
    fn a_parent_created_while_watching_is_waited_on_for_its_health_check() {
        let (mut s, vpn, torrent) = vpn_and_torrent("auto", "vpn,torrent");
        let new = c("bbbbbbbbbbbb1111", "vpn", None, None);
        s.event(EventKind::Die, &vpn);
        s.event(EventKind::Destroy, &vpn);
        let out = s.event(EventKind::Create, &new);
        assert_eq!(inspects(&out), vec![new.id.as_str()]);
        let mut created = snapshot(&new, Status::Created, s.now().wall, s.now().wall);
        created.has_check = true;
        s.feed(Input::Inspected {
            container: new.clone(),
            result: Ok(Some(created)),
        });
        let out = s.event(EventKind::Start, &new);
        assert!(inspects(&out).is_empty(), "not healthy yet: {out:?}");
        let out = s.event(EventKind::Health(Health::Healthy), &new);
        assert_eq!(inspects(&out), vec!["t"]);
        let _ = torrent;
    }

    #[test]
    fn two_containers_that_name_each_other_do_not_restart_each_other() {
        let a = c("aaaaaaaaaaaa0000", "aa", None, None);
        let b = c("bbbbbbbbbbbb0000", "bb", None, None);
        let mut s = Script::new("auto", "aa,bb");
        let session_start = s.now().wall;
        s.feed(Input::Connected { session_start });
        s.feed(Input::Listed {
            full: true,
            containers: vec![listed_in(&a, &b.id), listed_in(&b, &a.id)],
        });
        let out = s.event(EventKind::Start, &a);
        assert!(inspects(&out).is_empty(), "{out:?}");
    }

    /// Compose recreates vpn: the new one starts before the old one is removed.
    fn recreate_vpn(s: &mut Script, old: &ContainerRef) -> (ContainerRef, Vec<Command>) {
        let new = c("bbbbbbbbbbbb1111", "p-vpn-1", Some("p"), Some("vpn"));
        s.event(TERM, old);
        s.event(EventKind::Die, old);
        let renamed = ContainerRef {
            name: "aaaaaaaaaaaa_p-vpn-1".into(),
            ..old.clone()
        };
        s.event(EventKind::Rename, &renamed);
        s.event(EventKind::Create, &new);
        s.feed(Input::Inspected {
            container: new.clone(),
            result: Ok(Some(snapshot(
                &new,
                Status::Created,
                s.now().wall,
                s.now().wall,
            ))),
        });
        s.event(EventKind::Start, &new);
        let out = s.event(EventKind::Destroy, &renamed);
        assert!(inspects(&out).is_empty(), "compose is given a moment first");
        (new, s.advance(PROJECT_QUIET))
    }

    fn compose_vpn_and_torrent(labels: &[(&str, &str)]) -> (Script, ContainerRef, ContainerRef) {
        let vpn = c(VPN_ID, "p-vpn-1", Some("p"), Some("vpn"));
        let mut torrent = c("t", "p-torrent-1", Some("p"), Some("torrent"));
        for (k, v) in labels {
            torrent.labels.insert((*k).into(), (*v).into());
        }
        watching(Script::new("auto", "vpn,torrent"), vpn, torrent)
    }

    #[test]
    fn a_labelled_dependent_of_a_recreated_parent_is_recreated_joined_to_the_new_one() {
        let (mut s, vpn, torrent) = compose_vpn_and_torrent(&[("healthther.recreate", "true")]);
        let (new, out) = recreate_vpn(&mut s, &vpn);
        assert_eq!(inspects(&out), vec!["t"]);
        let out = s.inspected(&torrent, Status::Running, 0);
        let act = acts(&out)[0].clone();
        assert_eq!(act.action, Action::Recreate);
        assert_eq!(
            act.parent.as_ref().map(|p| p.id.as_str()),
            Some(new.id.as_str())
        );
        let out = s.feed(acted(
            &act,
            ActResult::Recreated {
                id: "cccccccccccc2222".into(),
            },
        ));
        let r = records(&out);
        assert_eq!(r[0].decision, Some("recreate"));
        assert!(r[0].note.as_deref().unwrap_or("").contains("cccccccccccc"));
    }

    #[test]
    fn an_unlabelled_dependent_of_a_recreated_parent_gets_the_command_that_fixes_it() {
        let (mut s, vpn, torrent) = compose_vpn_and_torrent(&[]);
        let (_, out) = recreate_vpn(&mut s, &vpn);
        assert_eq!(inspects(&out), vec!["t"]);
        let out = s.inspected(&torrent, Status::Running, 0);
        assert!(acts(&out).is_empty());
        let r = records(&out);
        assert_eq!(r[0].result.as_deref(), Some("needs_recreate"));
        assert!(r[0]
            .note
            .as_deref()
            .unwrap_or("")
            .contains("docker compose up -d --force-recreate --no-deps torrent"));
        // It dies later: still no start that cannot work, and no second report.
        s.event(EventKind::Die, &torrent);
        let out = s.inspected(&torrent, Status::Exited, 0);
        assert!(acts(&out).is_empty() && records(&out).is_empty());
    }

    /// A recreation of `torrent` that fails at the start: the engine's events for the
    /// replacement created under the temporary name, our stop of the old one, and the
    /// replacement removed; then the failure. Returns what the look after it decided.
    fn fail_recreation(s: &mut Script, act: &Act, torrent: &ContainerRef) -> Vec<Command> {
        let replacement = ContainerRef {
            id: format!("new-{}", s.elapsed.as_millis()),
            name: crate::recreate::temporary_name(&torrent.id, &torrent.name),
            ..torrent.clone()
        };
        s.event(EventKind::Create, &replacement);
        s.event(TERM, torrent);
        s.event(EventKind::Die, torrent);
        s.event(EventKind::Stop, torrent);
        s.event(EventKind::Destroy, &replacement);
        let mut out = s.feed(acted(
            act,
            ActResult::Failed {
                error: "No such image: img:tag".into(),
                denied: false,
            },
        ));
        if inspects(&out).contains(&torrent.id.as_str()) {
            out.extend(s.inspected(torrent, Status::Exited, 0));
        }
        out
    }

    #[test]
    fn a_failed_recreation_backs_off_until_quarantined() {
        // Plain `docker run` names: the temporary name is no target's.
        let vpn = c(VPN_ID, "vpn", None, None);
        let mut torrent = c("t", "torrent", None, None);
        torrent
            .labels
            .insert("healthther.recreate".into(), "true".into());
        let (mut s, vpn, torrent) = watching(Script::new("auto", "vpn,torrent"), vpn, torrent);
        // `docker rm -f vpn`, then a new vpn.
        s.event(KILL, &vpn);
        s.event(EventKind::Die, &vpn);
        s.event(EventKind::Destroy, &vpn);
        let new = c("bbbbbbbbbbbb1111", "vpn", None, None);
        s.event(EventKind::Create, &new);
        s.feed(Input::Inspected {
            container: new.clone(),
            result: Ok(Some(snapshot(
                &new,
                Status::Created,
                s.now().wall,
                s.now().wall,
            ))),
        });
        let mut out = s.event(EventKind::Start, &new);
        out.extend(s.advance(STOP_SETTLE));
        if inspects(&out).contains(&new.id.as_str()) {
            out = s.inspected(&new, Status::Running, 30_000);
            out.extend(s.advance(STOP_SETTLE));
        }
        assert_eq!(inspects(&out), vec!["t"], "{out:?}");
        let out = s.inspected(&torrent, Status::Running, 0);
        let mut act = acts(&out)[0].clone();
        assert_eq!(act.action, Action::Recreate);
        let mut tries = 1;
        for _ in 0..40 {
            let out = fail_recreation(&mut s, &act, &torrent);
            assert!(
                acts(&out).is_empty(),
                "try {tries} failed, and the next one came at once: {out:?}"
            );
            if records(&out)
                .iter()
                .any(|r| r.event == RecordEvent::Quarantine)
            {
                break;
            }
            // The back-off ends with a look, and the look with the next try or the quarantine.
            let mut next = None;
            let mut quarantined = false;
            for _ in 0..600 {
                let out = s.advance(Duration::from_millis(500));
                if inspects(&out).contains(&"t") {
                    let out = s.inspected(&torrent, Status::Exited, 0);
                    quarantined = records(&out)
                        .iter()
                        .any(|r| r.event == RecordEvent::Quarantine);
                    next = acts(&out).first().map(|a| (*a).clone());
                    if next.is_some() || quarantined {
                        break;
                    }
                }
            }
            if quarantined {
                break;
            }
            act = next.expect("a try after the back-off");
            tries += 1;
        }
        assert_eq!(
            tries, 5,
            "HEALTH_QUARANTINE_AFTER (5) failed tries, then quarantine"
        );
    }

    #[test]
    fn a_dependent_whose_parent_went_while_nobody_watched_is_told_not_start_looped() {
        let torrent = c("t", "torrent", Some("p"), Some("torrent"));
        let mut s = Script::new("auto", "torrent");
        let session_start = s.now().wall;
        s.feed(Input::Connected { session_start });
        s.feed(Input::Listed {
            full: true,
            containers: vec![listed_in(&torrent, "0123456789abcdef")],
        });
        s.event(EventKind::Die, &torrent);
        let out = s.inspected(&torrent, Status::Exited, 0);
        assert!(acts(&out).is_empty(), "a start cannot work: {out:?}");
        let r = records(&out);
        assert_eq!(r[0].result.as_deref(), Some("needs_recreate"));
        assert!(r[0]
            .note
            .as_deref()
            .unwrap_or("")
            .contains("docker compose up -d --force-recreate --no-deps torrent"));
        // Said once.
        s.event(EventKind::Die, &torrent);
        assert!(records(&s.inspected(&torrent, Status::Exited, 0)).is_empty());
    }

    #[test]
    fn status_lists_each_containers_dependents() {
        let (mut s, _, _) = vpn_and_torrent("auto", "vpn,torrent");
        let rows = s.core.target_rows(s.now());
        let vpn = rows.iter().find(|t| t.target == "vpn").expect("vpn's row");
        assert_eq!(vpn.containers[0].dependents, vec!["torrent".to_string()]);
        let _ = &mut s;
    }

    #[test]
    fn a_held_target_is_neither_revived_nor_asked_about_until_the_hold_ends() {
        let node = c("1", "nodo_1", None, None);
        for mode in ["auto", "manual"] {
            let mut s = Script::new(mode, "nodo_1");
            s.start(&[&node]);
            let hold = Request::Hold {
                target: "nodo_1".into(),
                duration: Some(Duration::from_secs(60)),
                reason: Some("disk swap".into()),
            };
            let (reply, out) = request(&mut s, hold);
            assert!(reply.ok, "{reply:?}");
            assert_eq!(records(&out)[0].event, RecordEvent::Hold);
            assert_eq!(saves(&out)[0].holds[0].reason, "disk swap");
            s.event(EventKind::Die, &node);
            let out = s.inspected(&node, Status::Exited, 0);
            assert!(
                acts(&out).is_empty() && prints(&out).is_empty(),
                "{mode}: {out:?}"
            );
            // The failure is recorded (for metrics), not acted on.
            let r = records(&out);
            assert_eq!(
                (r.len(), r[0].event, r[0].result.as_deref()),
                (1, RecordEvent::Skipped, Some("held")),
                "{mode}: {out:?}"
            );
            // The hold ends by itself, and the target is looked at at once.
            let out = s.advance(Duration::from_secs(61));
            assert_eq!(records(&out)[0].event, RecordEvent::Resume);
            assert_eq!(inspects(&out), ["1"]);
            let out = s.inspected(&node, Status::Exited, 0);
            match mode {
                "auto" => assert_eq!(acts(&out).len(), 1),
                _ => assert_eq!(records(&out)[0].event, RecordEvent::Prompt),
            }
        }
    }

    #[test]
    fn each_failure_of_a_quarantined_target_is_recorded() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::with(config_with(&[
            "--targets",
            "nodo_1",
            "--mode",
            "auto",
            "--quarantine-after",
            "1",
        ]));
        s.start(&[&node]);
        let mut quarantined = false;
        for round in 0..4u64 {
            s.elapsed += Duration::from_secs(1);
            s.event(EventKind::Die, &node);
            let run = round * 1000;
            let out = s.inspected(&node, Status::Exited, run);
            if quarantined {
                let r = records(&out);
                assert_eq!(
                    (r.len(), r[0].result.as_deref()),
                    (1, Some("quarantined")),
                    "{out:?}"
                );
                // Someone else starts it; it fails again.
                s.event(EventKind::Start, &node);
                s.inspected(&node, Status::Running, run + 1);
            }
            quarantined |= records(&out)
                .iter()
                .any(|r| r.event == RecordEvent::Quarantine);
            if let Some(a) = acts(&out).first() {
                let a = (*a).clone();
                s.event(EventKind::Start, &node);
                s.feed(acted(&a, ActResult::Running));
                s.inspected(&node, Status::Running, run + 1);
            }
        }
        assert!(quarantined);
    }

    #[test]
    fn holds_and_resumes_name_the_targets() {
        let mut s = Script::new("auto", "nodo_1,nodo_2");
        s.start(&[]);
        let (reply, _) = request(
            &mut s,
            Request::Resume {
                target: "nodo_1".into(),
            },
        );
        assert_eq!(reply, Reply::error("nodo_1 is not held"));
        let (reply, _) = request(
            &mut s,
            Request::Release {
                target: "nodo_9".into(),
            },
        );
        assert!(
            !reply.ok && reply.text.contains("not a target"),
            "{reply:?}"
        );
        assert!(reply.text.contains("nodo_1, nodo_2"), "{reply:?}");
    }

    #[test]
    fn on_stop_hold_keeps_a_stopped_target_down_until_someone_starts_it() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::with(config_with(&[
            "--targets",
            "nodo_1",
            "--mode",
            "auto",
            "--on-stop",
            "hold",
        ]));
        s.start(&[&node]);
        s.event(TERM, &node);
        s.event(EventKind::Die, &node);
        let out = s.event(EventKind::Stop, &node);
        assert_eq!(records(&out)[0].event, RecordEvent::Hold);
        let out = s.advance(STOP_SETTLE * 5);
        assert!(
            inspects(&out).is_empty() && acts(&out).is_empty(),
            "{out:?}"
        );
        // A pass finds it exited: still held.
        let out = s.feed(Input::Listed {
            full: false,
            containers: vec![listed(&node, Status::Exited)],
        });
        let mut out2 = Vec::new();
        for _ in inspects(&out) {
            out2.extend(s.inspected(&node, Status::Exited, 0));
        }
        assert!(acts(&out2).is_empty(), "{out2:?}");
        let out = s.event(EventKind::Start, &node);
        assert_eq!(records(&out)[0].event, RecordEvent::Resume);
        s.inspected(&node, Status::Running, 1);
        // And a crash after that is revived as ever.
        s.advance(Duration::from_secs(30));
        s.event(EventKind::Die, &node);
        assert_eq!(acts(&s.inspected(&node, Status::Exited, 1)).len(), 1);
    }

    #[test]
    fn unhealthy_after_waits_that_long_before_a_restart() {
        let mut node = c("1", "nodo_1", None, None);
        node.labels
            .insert("healthther.unhealthy-after".into(), "5s".into());
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Health(Health::Unhealthy), &node);
        let mut sick = snapshot(&node, Status::Running, s.now().wall, s.now().wall);
        sick.health = Health::Unhealthy;
        let out = s.feed(Input::Inspected {
            container: node.clone(),
            result: Ok(Some(sick.clone())),
        });
        assert!(acts(&out).is_empty());
        assert_eq!(
            s.core.next_timer(),
            Some(s.now().at + Duration::from_secs(5))
        );
        assert!(s.advance(Duration::from_secs(4)).is_empty());
        assert_eq!(inspects(&s.advance(Duration::from_secs(1))), ["1"]);
        let out = s.feed(Input::Inspected {
            container: node.clone(),
            result: Ok(Some(sick)),
        });
        let a = acts(&out);
        assert_eq!(a[0].action, Action::Restart);
    }

    #[test]
    fn labels_choose_mode_and_stop_timeout_per_container() {
        let mut watched = c("1", "nodo_1", None, None);
        watched
            .labels
            .insert("healthther.mode".into(), "observe".into());
        let mut quick = c("2", "nodo_2", None, None);
        quick
            .labels
            .insert("healthther.stop-timeout".into(), "1s".into());
        quick
            .labels
            .insert("healthther.mode".into(), "sometimes".into());
        let mut s = Script::new("auto", "nodo_1,nodo_2");
        s.start(&[&watched, &quick]);
        s.event(EventKind::Die, &watched);
        let out = s.inspected(&watched, Status::Exited, 0);
        assert!(acts(&out).is_empty());
        let r = records(&out);
        assert_eq!(
            (r[0].event, r[0].result.as_deref()),
            (RecordEvent::Observed, Some("observed"))
        );
        // A bad label leaves the global mode.
        s.event(EventKind::Die, &quick);
        let out = s.inspected(&quick, Status::Exited, 0);
        assert_eq!(acts(&out)[0].stop_timeout, Duration::from_secs(1));
    }

    #[test]
    fn a_label_narrows_the_mode_and_never_widens_it() {
        let mut eager = c("1", "nodo_1", None, None);
        eager.labels.insert("healthther.mode".into(), "auto".into());
        eager
            .labels
            .insert("healthther.on-stop".into(), "revive".into());
        for global in ["observe", "manual"] {
            let mut s = Script::with(config_with(&[
                "--targets",
                "nodo_1",
                "--mode",
                global,
                "--on-stop",
                "hold",
            ]));
            s.start(&[&eager]);
            s.event(EventKind::Die, &eager);
            let out = s.inspected(&eager, Status::Exited, 0);
            assert!(
                acts(&out).is_empty(),
                "MODE={global}: the container's own label made healthther act: {out:?}"
            );
            // HEALTH_ON_STOP=hold stands against a label asking to revive.
            s.elapsed += Duration::from_secs(60);
            s.event(EventKind::Start, &eager);
            s.event(TERM, &eager);
            let out = s.event(EventKind::Stop, &eager);
            assert_eq!(
                records(&out).first().map(|r| r.event),
                Some(RecordEvent::Hold),
                "MODE={global}: {out:?}"
            );
        }
    }

    #[test]
    fn a_stop_timeout_label_ends_inside_the_sidecars_stop_grace_period() {
        let mut slow = c("1", "nodo_1", None, None);
        slow.labels
            .insert("healthther.stop-timeout".into(), "1h".into());
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&slow]);
        s.event(EventKind::Die, &slow);
        let act = acts(&s.inspected(&slow, Status::Exited, 0))[0].clone();
        // docker-compose.yml gives healthther 30 s to stop, actions under way included.
        assert_eq!(act.stop_timeout, Duration::from_secs(25));
    }

    #[test]
    fn observe_mode_never_acts() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("observe", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        let out = s.inspected(&node, Status::Exited, 0);
        assert!(acts(&out).is_empty());
        assert_eq!(records(&out)[0].event, RecordEvent::Observed);
        // Said once, not once per look.
        let out = s.inspected(&node, Status::Exited, 0);
        assert!(records(&out).is_empty());
    }

    #[test]
    fn a_quarantine_and_an_always_survive_a_restart() {
        let node = c("1", "nodo_1", None, None);
        let config = config_with(&[
            "--targets",
            "nodo_1",
            "--mode",
            "manual",
            "--quarantine-after",
            "1",
        ]);
        let mut s = Script::with(Arc::clone(&config));
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        s.inspected(&node, Status::Exited, 0);
        let (_, _) = s.answer("nodo_1", "always");
        let act = acts(&s.inspected(&node, Status::Exited, 0))[0].clone();
        s.feed(acted(&act, ActResult::Running));
        s.advance(Duration::from_millis(500));
        s.event(EventKind::Die, &node);
        let out = s.inspected(&node, Status::Exited, 100);
        assert_eq!(records(&out)[0].event, RecordEvent::Quarantine);
        let saved = s.core.to_saved();
        assert_eq!(saved.always, ["nodo_1"]);
        assert!(saved.containers[0].history.quarantined);

        // A new healthther, a minute later, reads it back.
        let mut next = Script::with(config);
        next.elapsed = Duration::from_secs(60);
        next.feed(Input::Restored(saved));
        next.start(&[&node]);
        next.event(EventKind::Die, &node);
        let out = next.inspected(&node, Status::Exited, 60_500);
        assert!(
            acts(&out).is_empty() && records(&out).is_empty(),
            "still quarantined: {out:?}"
        );
        let (reply, _) = request(&mut next, Request::Status { json: true });
        let rows: serde_json::Value = serde_json::from_str(&reply.text).expect("JSON");
        assert_eq!(rows[0]["answer"], "always");
        assert_eq!(rows[0]["containers"][0]["quarantined"], true);
    }

    #[test]
    fn restored_histories_of_containers_that_are_gone_are_dropped() {
        let node = c("1", "nodo_1", None, None);
        let config = config("auto", "nodo_1");
        let mut s = Script::with(Arc::clone(&config));
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        s.inspected(&node, Status::Exited, 0);
        let saved = s.core.to_saved();
        assert_eq!(saved.containers.len(), 1);
        let mut next = Script::with(config);
        next.feed(Input::Restored(saved));
        let out = next.start(&[]);
        assert!(saves(&out)[0].containers.is_empty(), "{out:?}");
    }

    #[test]
    fn status_shows_each_target_and_what_it_resolves_to() {
        let node = c("1234567890abcdef", "nodo_1", Some("shop"), Some("nodo_1"));
        let mut s = Script::new("auto", "nodo_1,ghost");
        s.start(&[&node]);
        let (reply, _) = request(&mut s, Request::Status { json: true });
        let rows: serde_json::Value = serde_json::from_str(&reply.text).expect("JSON");
        assert_eq!(rows[0]["target"], "nodo_1");
        assert_eq!(rows[0]["resolution"], "found");
        assert_eq!(rows[0]["containers"][0]["id"], "1234567890ab");
        assert_eq!(rows[0]["containers"][0]["project"], "shop");
        assert_eq!(rows[0]["containers"][0]["state"], "running");
        assert_eq!(rows[1]["resolution"], "missing");
        let (reply, _) = request(&mut s, Request::Status { json: false });
        let lines: Vec<&str> = reply.text.lines().collect();
        assert!(lines[0].starts_with("TARGET"), "{}", reply.text);
        assert!(
            lines[1].contains("nodo_1 (1234567890ab, shop)"),
            "{}",
            reply.text
        );
        assert!(lines[2].contains("unresolved"), "{}", reply.text);
    }

    #[test]
    fn api_kills_are_revived_at_once_however_often_and_never_add_up() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        for round in 0..8u64 {
            s.event(KILL, &node);
            assert_eq!(
                inspects(&s.event(EventKind::Die, &node)),
                ["1"],
                "round {round}"
            );
            let out = s.inspected(&node, Status::Exited, round * 2000);
            let act = acts(&out)[0].clone();
            assert_eq!(act.cause, Cause::ApiKill);
            s.feed(acted(&act, ActResult::Running));
            s.event(EventKind::Start, &node);
            s.inspected(&node, Status::Running, round * 2000 + 1);
            // Two seconds of running: well inside the reset window.
            s.advance(Duration::from_secs(2));
        }
        assert_eq!(s.core.next_timer(), None, "never backed off");
    }

    #[test]
    fn a_kill_told_of_after_the_death_is_still_someone_elses_doing() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        // Its own crash, revived.
        s.event(EventKind::Die, &node);
        let act = acts(&s.inspected(&node, Status::Exited, 0))[0].clone();
        s.feed(acted(&act, ActResult::Running));
        s.event(EventKind::Start, &node);
        s.inspected(&node, Status::Running, 1);
        s.advance(Duration::from_secs(2));
        // A docker kill, whose event comes after the die and after the look: taken for a
        // crash soon after a revival, so backed off...
        s.event(EventKind::Die, &node);
        let out = s.inspected(&node, Status::Exited, 1);
        assert!(acts(&out).is_empty(), "{out:?}");
        // ...until the engine tells of the kill: revived at once, and nothing counted.
        assert_eq!(inspects(&s.event(KILL, &node)), ["1"]);
        let act = acts(&s.inspected(&node, Status::Exited, 1))[0].clone();
        assert_eq!(act.cause, Cause::ApiKill);
        s.feed(acted(&act, ActResult::Running));
        let saved = s.core.to_saved();
        assert!(saved.containers[0].history.failures.is_empty(), "{saved:?}");
    }

    #[test]
    fn a_kill_told_of_while_the_revival_is_under_way_is_recorded_as_a_kill() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        // Under load the look beats the kill event: the death is taken for a crash...
        s.event(EventKind::Die, &node);
        let act = acts(&s.inspected(&node, Status::Exited, 0))[0].clone();
        assert_eq!(act.cause, Cause::Crash);
        // ...and the engine tells of the kill while the start is under way.
        s.event(KILL, &node);
        let out = s.feed(acted(&act, ActResult::Running));
        assert_eq!(records(&out)[0].cause, Some("api_kill"));
    }

    #[test]
    fn a_death_seen_before_its_events_waits_a_moment_for_them() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        // A failed health check (the probe died with it) comes before the kill and the die.
        s.event(EventKind::Health(Health::Unhealthy), &node);
        let out = s.inspected(&node, Status::Exited, 0);
        assert!(acts(&out).is_empty(), "{out:?}");
        s.event(KILL, &node);
        let out = s.event(EventKind::Die, &node);
        assert_eq!(inspects(&out), ["1"], "the die ends the wait");
        let act = acts(&s.inspected(&node, Status::Exited, 0))[0].clone();
        assert_eq!(act.cause, Cause::ApiKill);
        // A death whose events never come is revived after the wait, once.
        s.event(EventKind::Start, &node);
        s.feed(acted(&act, ActResult::Running));
        s.inspected(&node, Status::Running, 1);
        s.advance(Duration::from_secs(30));
        s.event(EventKind::Health(Health::Unhealthy), &node);
        assert!(acts(&s.inspected(&node, Status::Exited, 1)).is_empty());
        assert_eq!(inspects(&s.advance(DIE_WAIT)), ["1"]);
        let act = acts(&s.inspected(&node, Status::Exited, 1))[0].clone();
        assert_eq!(act.cause, Cause::Crash);
    }

    #[test]
    fn its_own_crashes_still_back_off_and_oom_is_told_apart() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        let act = acts(&s.inspected(&node, Status::Exited, 0))[0].clone();
        assert_eq!(act.cause, Cause::Crash);
        s.feed(acted(&act, ActResult::Running));
        s.event(EventKind::Start, &node);
        s.inspected(&node, Status::Running, 100);
        s.advance(Duration::from_millis(500));
        s.event(EventKind::Oom, &node);
        s.event(EventKind::Die, &node);
        let out = s.inspected(&node, Status::Exited, 100);
        assert!(acts(&out).is_empty(), "a failed revival backs off: {out:?}");
        assert_eq!(inspects(&s.advance(Duration::from_secs(1))), ["1"]);
        let act = acts(&s.inspected(&node, Status::Exited, 100))[0].clone();
        assert_eq!(act.cause, Cause::Oom);
    }

    #[test]
    fn nothing_is_decided_before_the_sessions_first_whole_list() {
        // Two projects share the service: only a whole list shows that the name is ambiguous.
        let p1 = c("1", "p1-web-1", Some("p1"), Some("web"));
        let p2 = c("2", "p2-web-1", Some("p2"), Some("web"));
        let mut s = Script::new("auto", "web");
        let session_start = s.now().wall;
        s.feed(Input::Connected { session_start });
        let out = s.event(EventKind::Die, &p1);
        assert!(inspects(&out).is_empty(), "looked before the list: {out:?}");
        let out = s.feed(Input::Listed {
            full: true,
            containers: vec![listed(&p1, Status::Exited), listed(&p2, Status::Running)],
        });
        assert!(
            inspects(&out).is_empty() && acts(&out).is_empty(),
            "{out:?}"
        );
    }

    #[test]
    fn a_refused_start_after_an_api_kill_still_backs_off() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(KILL, &node);
        s.event(EventKind::Die, &node);
        let act = acts(&s.inspected(&node, Status::Exited, 0))[0].clone();
        let refused = ActResult::Failed {
            error: "port is already allocated (HTTP 500)".into(),
            denied: false,
        };
        assert_eq!(inspects(&s.feed(acted(&act, refused))), ["1"]);
        let out = s.inspected(&node, Status::Exited, 0);
        assert!(acts(&out).is_empty(), "not in a tight loop: {out:?}");
        assert!(s.core.next_timer().is_some());
    }

    #[test]
    fn an_unanswered_engine_counts_nothing_against_the_container() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        let act = acts(&s.inspected(&node, Status::Exited, 0))[0].clone();
        let gone = ActResult::Unreachable {
            error: "connection reset".into(),
        };
        let out = s.feed(acted(&act, gone));
        assert_eq!(records(&out)[0].result.as_deref(), Some("failed"));
        let out = s.feed(Input::Listed {
            full: false,
            containers: vec![listed(&node, Status::Exited)],
        });
        assert_eq!(inspects(&out), ["1"]);
        assert_eq!(
            acts(&s.inspected(&node, Status::Exited, 0)).len(),
            1,
            "no back-off"
        );
    }

    #[test]
    fn an_old_signal_holds_up_no_one() {
        // A reload's SIGHUP to one container of the project, long before anything else.
        let proxy = c("x", "shop-proxy-1", Some("shop"), Some("proxy"));
        let api = c("a", "shop-api-1", Some("shop"), Some("api"));
        let mut s = Script::new("auto", "api,proxy");
        s.start(&[&proxy, &api]);
        s.event(EventKind::Kill { signal: Some(1) }, &proxy);
        s.advance(SIGNAL_RELEVANT * 2);
        s.event(TERM, &api);
        s.event(EventKind::Die, &api);
        assert_eq!(
            inspects(&s.advance(PROJECT_QUIET)),
            ["a"],
            "the project is quiet"
        );
        // And the proxy's own crash, much later, is its own.
        s.elapsed += PROJECT_QUIET;
        s.event(EventKind::Die, &proxy);
        let act = acts(&s.inspected(&proxy, Status::Exited, 0))[0].clone();
        assert_eq!(act.cause, Cause::Crash);
    }

    /// Two replicas of the compose service `p/svc`, a target in auto mode, listed running.
    fn two_replicas() -> (Script, ContainerRef, ContainerRef) {
        let a = c("a", "p_svc_1", Some("p"), Some("svc"));
        let b = c("b", "p_svc_2", Some("p"), Some("svc"));
        let mut s = Script::new("auto", "p/svc");
        s.start(&[&a, &b]);
        (s, a, b)
    }

    #[test]
    fn a_replica_that_crashes_while_its_project_is_taken_down_waits_for_it() {
        // compose v1's down: every replica stopped first, then every one removed.
        let (mut s, a, b) = two_replicas();
        let mut out = s.event(TERM, &a);
        // b crash-loops: it dies by itself while a is being stopped.
        out.extend(s.event(EventKind::Die, &b));
        out.extend(s.inspected(&b, Status::Exited, 0));
        out.extend(s.event(EventKind::Die, &a));
        out.extend(s.advance(STOP_SETTLE));
        out.extend(s.event(EventKind::Stop, &a));
        out.extend(s.advance(PROJECT_QUIET - MS));
        out.extend(s.event(EventKind::Destroy, &a));
        out.extend(s.event(EventKind::Destroy, &b));
        out.extend(s.advance(PROJECT_QUIET * 2));
        assert!(acts(&out).is_empty(), "{out:?}");
    }

    #[test]
    fn our_start_that_ends_while_its_project_is_taken_down_is_undone() {
        let (mut s, a, b) = two_replicas();
        s.event(EventKind::Die, &b);
        let start = acts(&s.inspected(&b, Status::Exited, 0))[0].clone();
        // The engine is slow to start it; meanwhile compose's down begins.
        s.elapsed += MS;
        let out = s.event(TERM, &a);
        assert!(
            out.contains(&Command::Withdraw("b".into())),
            "the start is withdrawn if not sent yet: {out:?}"
        );
        // It was sent already.
        let out = s.feed(acted(&start, ActResult::Running));
        let undo = acts(&out);
        assert_eq!(undo.len(), 1, "{out:?}");
        assert_eq!(undo[0].action, Action::Stop);
        assert_eq!(undo[0].seen.container.id, "b");
        let out = s.feed(acted(undo[0], ActResult::Stopped));
        let r = records(&out);
        assert_eq!(r[0].decision, Some("stop"));
        assert_eq!(r[0].result.as_deref(), Some("stopped"));
        // A failed undo counts nothing against it.
        assert!(s.core.records["b"]
            .history
            .as_ref()
            .is_none_or(|h| !h.call_refused()));
    }

    #[test]
    fn a_start_withdrawn_while_its_project_is_taken_down_waits_for_it() {
        let (mut s, a, b) = two_replicas();
        s.event(EventKind::Die, &b);
        let start = acts(&s.inspected(&b, Status::Exited, 0))[0].clone();
        s.event(TERM, &a);
        let out = s.feed(acted(&start, ActResult::Withdrawn));
        assert_eq!(records(&out)[0].result.as_deref(), Some("withdrawn"));
        let out = s.inspected(&b, Status::Exited, 0);
        assert!(acts(&out).is_empty(), "{out:?}");
        s.event(EventKind::Die, &a);
        s.event(EventKind::Destroy, &a);
        let out = s.event(EventKind::Destroy, &b);
        assert!(
            acts(&out).is_empty() && inspects(&out).is_empty(),
            "{out:?}"
        );
    }

    #[test]
    fn our_start_just_before_its_service_is_taken_down_is_undone() {
        let a = c("a", "p_svc_1", Some("p"), Some("svc"));
        let b = c("b", "p_svc_2", Some("p"), Some("svc"));
        let other = c("o", "p_db_1", Some("p"), Some("db"));
        let mut s = Script::new("auto", "p/svc,p/db");
        s.start(&[&a, &b, &other]);
        for x in [&b, &other] {
            s.event(EventKind::Die, x);
            let start = acts(&s.inspected(x, Status::Exited, 0))[0].clone();
            s.event(EventKind::Start, x);
            if !inspects(&s.feed(acted(&start, ActResult::Running))).is_empty() {
                s.inspected(x, Status::Running, 30_000);
            }
        }
        // compose listed b while our start was under way, so it stops only a.
        s.elapsed += Duration::from_secs(2);
        let out = s.event(TERM, &a);
        let undo = acts(&out);
        assert_eq!(undo.len(), 1, "{out:?}");
        assert_eq!(
            (undo[0].action, undo[0].seen.container.id.as_str()),
            (Action::Stop, "b"),
            "only the service being stopped"
        );
        // Once is enough.
        assert!(acts(&s.event(EventKind::Die, &a)).is_empty());
    }

    #[test]
    fn our_own_restart_is_no_compose_stop() {
        let mut a = c("a", "p_svc_1", Some("p"), Some("svc"));
        a.labels.insert("x".into(), "y".into());
        let b = c("b", "p_svc_2", Some("p"), Some("svc"));
        let mut s = Script::new("auto", "p/svc");
        s.start(&[&a, &b]);
        s.elapsed += Duration::from_secs(30);
        // b was revived a moment ago.
        s.event(EventKind::Die, &b);
        let start = acts(&s.inspected(&b, Status::Exited, 0))[0].clone();
        s.event(EventKind::Start, &b);
        if !inspects(&s.feed(acted(&start, ActResult::Running))).is_empty() {
            s.inspected(&b, Status::Running, 30_000);
        }
        // a turns unhealthy: our restart stops it (its events come late, after the action).
        s.elapsed += Duration::from_secs(1);
        s.event(EventKind::Health(Health::Unhealthy), &a);
        let mut sick = snapshot(&a, Status::Running, s.now().wall, s.now().wall);
        sick.health = Health::Unhealthy;
        let out = s.feed(Input::Inspected {
            container: a.clone(),
            result: Ok(Some(sick)),
        });
        let restart = acts(&out)[0].clone();
        assert_eq!(restart.action, Action::Restart);
        s.feed(acted(&restart, ActResult::Running));
        let mut out = s.event(TERM, &a);
        out.extend(s.event(EventKind::Die, &a));
        out.extend(s.event(EventKind::Stop, &a));
        out.extend(s.event(EventKind::Start, &a));
        assert!(
            !acts(&out).iter().any(|x| x.action == Action::Stop),
            "our restart stopped b again: {out:?}"
        );
        // And a crash of b right after is revived at once, not held for the project.
        s.elapsed += Duration::from_secs(20);
        s.event(EventKind::Die, &b);
        let out = s.inspected(&b, Status::Exited, 0);
        assert_eq!(acts(&out).len(), 1, "{out:?}");
    }

    #[test]
    fn a_reload_signal_holds_up_no_one_in_its_project() {
        let a = c("a", "p-nginx-1", Some("p"), Some("nginx"));
        let b = c("b", "p-app-1", Some("p"), Some("app"));
        let mut s = Script::new("auto", "p/nginx,p/app");
        s.start(&[&a, &b]);
        s.elapsed += Duration::from_secs(30);
        // `compose kill -s HUP nginx`: a reload, not a stop; nginx keeps running.
        s.event(EventKind::Kill { signal: Some(1) }, &a);
        s.elapsed += Duration::from_secs(1);
        s.event(EventKind::Die, &b);
        let out = s.inspected(&b, Status::Exited, 0);
        assert_eq!(acts(&out).len(), 1, "{out:?}");
    }

    #[test]
    fn a_crash_in_a_project_nobody_stops_is_revived_at_once() {
        let a = c("a", "p_svc_1", Some("p"), Some("svc"));
        let mut s = Script::new("auto", "p/svc");
        s.start(&[&a]);
        s.event(EventKind::Die, &a);
        assert_eq!(acts(&s.inspected(&a, Status::Exited, 0)).len(), 1);
    }

    #[test]
    fn a_hold_on_stop_ends_when_a_look_finds_it_running() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::with(config_with(&[
            "--targets",
            "nodo_1",
            "--mode",
            "auto",
            "--on-stop",
            "hold",
        ]));
        s.start(&[&node]);
        s.event(TERM, &node);
        s.event(EventKind::Die, &node);
        s.event(EventKind::Stop, &node);
        // Started again while the event stream was away: a pass sees it running.
        let out = s.feed(Input::Listed {
            full: true,
            containers: vec![listed(&node, Status::Running)],
        });
        assert_eq!(inspects(&out), ["1"]);
        let out = s.inspected(&node, Status::Running, 5);
        assert_eq!(records(&out)[0].event, RecordEvent::Resume);
        s.event(EventKind::Die, &node);
        assert_eq!(acts(&s.inspected(&node, Status::Exited, 5)).len(), 1);
    }

    #[test]
    fn an_answer_does_not_follow_a_container_into_another_target() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("manual", "nodo_1,nodo_2");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        s.inspected(&node, Status::Exited, 0);
        let (reply, _) = s.answer("nodo_1", "yes");
        assert!(reply.ok);
        let moved = c("1", "nodo_2", None, None);
        s.event(EventKind::Rename, &moved);
        s.inspected(&node, Status::Exited, 0);
        let out = s.inspected(&moved, Status::Exited, 0);
        assert!(
            acts(&out).is_empty(),
            "nodo_1's yes acted on nodo_2: {out:?}"
        );
        assert_eq!(
            records(&out)[0].event,
            RecordEvent::Prompt,
            "asked about as nodo_2"
        );
    }

    #[test]
    fn the_terminal_answers_the_prompt_on_the_screen() {
        let (a, b, z) = (
            c("a", "a1", None, None),
            c("b", "b1", None, None),
            c("z", "z1", None, None),
        );
        let mut s = Script::new("manual", "a1,b1,z1");
        s.start(&[&a, &b, &z]);
        s.elapsed += Duration::from_secs(10);
        s.event(EventKind::Die, &b);
        s.inspected(&b, Status::Exited, 0);
        s.event(EventKind::Die, &z);
        s.inspected(&z, Status::Exited, 0);
        // z is answered from another shell: until its outcome is known, the screen keeps b.
        let (reply, _) = s.answer("z1", "yes");
        assert!(reply.ok);
        // An older failure arrives meanwhile; it is first in the queue, but not on the screen.
        s.event(EventKind::Die, &a);
        let mut older = snapshot(&a, Status::Exited, s.now().wall, s.now().wall);
        older.finished_at = Some(s.now().wall - Duration::from_secs(5));
        let out = s.feed(Input::Inspected {
            container: a.clone(),
            result: Ok(Some(older)),
        });
        assert!(
            !out.iter().any(|c| matches!(c, Command::Print(_))),
            "{out:?}"
        );
        let out = s.feed(Input::Line("y".into()));
        assert_eq!(
            inspects(&out),
            ["b"],
            "answered what the screen shows: {out:?}"
        );
    }

    fn prints(out: &[Command]) -> Vec<&str> {
        out.iter()
            .filter_map(|c| match c {
                Command::Print(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_yes_typed_while_an_approved_action_runs_answers_nothing() {
        let (a, b) = (c("a", "a1", None, None), c("b", "b1", None, None));
        let mut s = Script::new("manual", "a1,b1");
        s.start(&[&a, &b]);
        s.elapsed += Duration::from_secs(10);
        s.event(EventKind::Die, &a);
        let out = s.inspected(&a, Status::Exited, 0);
        assert_eq!(prints(&out).len(), 1, "a's prompt on the screen");
        let out = s.feed(Input::Line("y".into()));
        assert_eq!(inspects(&out), ["a"]);
        let start = acts(&s.inspected(&a, Status::Exited, 0))[0].clone();
        // b fails while a's approved start runs: its prompt waits until a's outcome is known.
        s.event(EventKind::Die, &b);
        let out = s.inspected(&b, Status::Exited, 0);
        assert!(prints(&out).is_empty(), "{out:?}");
        // A second `y`, typed at nothing on the screen.
        let out = s.feed(Input::Line("y".into()));
        assert!(
            inspects(&out).is_empty() && records(&out).is_empty(),
            "b was never shown, so nothing answered it: {out:?}"
        );
        assert!(
            prints(&out)
                .iter()
                .any(|p| p.contains("not on the screen yet")),
            "{out:?}"
        );
        // Once a's outcome is in, b's prompt is shown, and only then answered.
        let out = s.feed(acted(&start, ActResult::Running));
        assert!(prints(&out).iter().any(|p| p.contains("b1")), "{out:?}");
        let out = s.feed(Input::Line("y".into()));
        assert_eq!(inspects(&out), ["b"]);
    }

    #[test]
    fn a_new_failure_of_the_same_container_is_shown_again() {
        let a = c("a", "a1", None, None);
        let mut s = Script::new("manual", "a1");
        s.start(&[&a]);
        s.elapsed += Duration::from_secs(10);
        s.event(EventKind::Die, &a);
        assert_eq!(prints(&s.inspected(&a, Status::Exited, 0)).len(), 1);
        // Someone else starts it, and it dies again before our look at it answers: the open
        // prompt is about a run that is over.
        s.event(EventKind::Start, &a);
        s.elapsed += Duration::from_secs(1);
        s.event(EventKind::Die, &a);
        let mut out = s.inspected(&a, Status::Exited, 10_000);
        if !inspects(&out).is_empty() {
            out = s.inspected(&a, Status::Exited, 10_000);
        }
        assert_eq!(prints(&out).len(), 1, "the new failure is shown: {out:?}");
        let (reply, _) = request(&mut s, Request::Pending);
        assert_eq!(reply.text.lines().count(), 1, "one prompt: {}", reply.text);
    }

    /// Podman names no signal in its kill events, and tells of a stop before the death.
    #[test]
    fn a_podman_kill_is_revived_at_once_and_a_podman_stop_settles() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.elapsed += Duration::from_secs(30);
        s.event(EventKind::Kill { signal: None }, &node);
        let out = s.event(EventKind::Die, &node);
        assert_eq!(inspects(&out), ["1"], "looked at at once: {out:?}");
        let act = acts(&s.inspected(&node, Status::Exited, 0))[0].clone();
        assert_eq!(act.cause, Cause::ApiKill);
        s.event(EventKind::Start, &node);
        s.feed(acted(&act, ActResult::Running));
        s.inspected(&node, Status::Running, 30_000);
        // `podman stop`: stop, then die.
        s.elapsed += Duration::from_secs(30);
        s.event(EventKind::Stop, &node);
        let mut out = s.event(EventKind::Die, &node);
        if inspects(&out).contains(&"1") {
            out = s.inspected(&node, Status::Exited, 30_000);
        }
        assert!(acts(&out).is_empty(), "a stop is given its moment: {out:?}");
        let mut out = s.advance(STOP_SETTLE);
        if inspects(&out).contains(&"1") {
            out = s.inspected(&node, Status::Exited, 30_000);
        }
        let act = acts(&out)[0].clone();
        assert_eq!(act.cause, Cause::ApiStop, "not its own failure");
    }

    #[test]
    fn a_killed_target_is_looked_at_then_started() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(KILL, &node);
        assert_eq!(inspects(&s.event(EventKind::Die, &node)), ["1"]);
        let out = s.inspected(&node, Status::Exited, 100);
        let act = acts(&out)[0].clone();
        assert_eq!(act.action, Action::Start);
        let out = s.feed(acted(&act, ActResult::Running));
        let r = records(&out);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].event, r[0].result.as_deref()),
            (RecordEvent::Action, Some("running"))
        );
        assert_eq!(r[0].v, 1);
    }

    #[test]
    fn a_named_swarm_task_is_said_once_and_never_acted_on() {
        let swarm_task = |id: &str, name: &str| {
            let mut t = c(id, name, None, None);
            t.labels
                .insert(crate::targets::SWARM_TASK_LABEL.into(), format!("task{id}"));
            t.labels
                .insert(crate::targets::SWARM_SERVICE_LABEL.into(), "web".into());
            t
        };
        let task = swarm_task("1", "web.1.abc");
        let mut s = Script::new("auto", "web,nodo_1");
        let out = s.start(&[&task]);
        let r = records(&out);
        assert_eq!(r.len(), 1, "{out:?}");
        assert_eq!(
            (r[0].event, r[0].target.as_str(), r[0].result.as_deref()),
            (RecordEvent::Skipped, "web", Some("swarm_task"))
        );
        assert_eq!(
            r[0].note.as_deref(),
            Some(
                "web.1.abc is a task of Swarm service web: Swarm replaces failed tasks itself; \
                 healthther leaves it alone"
            )
        );
        // It dies, is killed, is listed again: nothing is looked at, done or said again.
        s.event(KILL, &task);
        let mut out = s.event(EventKind::Die, &task);
        out.extend(s.feed(Input::Listed {
            full: true,
            containers: vec![listed(&task, Status::Exited)],
        }));
        out.extend(s.advance(Duration::from_secs(60)));
        assert!(out.is_empty(), "{out:?}");
        // Swarm's replacement is another container, told of once too.
        let next = swarm_task("2", "web.1.def");
        let out = s.event(EventKind::Create, &next);
        let r = records(&out);
        assert_eq!(
            (r.len(), r[0].container.as_str()),
            (1, "web.1.def"),
            "{out:?}"
        );
        // One inspect learns its network mode, as for any new container; nothing comes of it.
        assert!(inspects(&out) == vec!["2"] && acts(&out).is_empty());
        let out = s.inspected(&next, Status::Exited, 0);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn lookalikes_and_others_are_never_looked_at() {
        let mut s = Script::new("auto", "nodo_1");
        let others = [c("2", "nodo_10", None, None), c("3", "xnodo_1", None, None)];
        s.start(&[&others[0], &others[1]]);
        for o in &others {
            assert!(s.event(EventKind::Die, o).is_empty());
        }
    }

    #[test]
    fn compose_v1_recreate_is_left_to_compose() {
        // The order compose 1.29 does it in (see tests/tests/identity.rs).
        let old = c("old", "p_web_1", Some("p"), Some("web"));
        let renamed = c("old", "0123456789ab_p_web_1", Some("p"), Some("web"));
        let new = c("new", "p_web_1", Some("p"), Some("web"));
        let mut s = Script::new("auto", "web");
        s.start(&[&old]);
        let mut out = s.event(TERM, &old);
        out.extend(s.event(EventKind::Die, &old));
        out.extend(s.event(EventKind::Stop, &old));
        out.extend(s.advance(100 * MS));
        out.extend(s.event(EventKind::Rename, &renamed));
        out.extend(s.event(EventKind::Create, &new));
        out.extend(s.event(EventKind::Start, &new));
        out.extend(s.event(EventKind::Destroy, &renamed));
        out.extend(s.advance(STOP_SETTLE * 2));
        // The new container is inspected once, only to learn its network.
        assert!(
            inspects(&out) == vec!["new"] && acts(&out).is_empty(),
            "{out:?}"
        );
        let out = s.inspected(&new, Status::Running, 0);
        assert!(
            acts(&out).is_empty() && inspects(&out).is_empty(),
            "{out:?}"
        );
    }

    #[test]
    fn compose_v2_recreate_is_left_to_compose() {
        let old = c("old", "p-web-1", Some("p"), Some("web"));
        let temp = c("new", "0123456789ab_p-web-1", Some("p"), Some("web"));
        let new = c("new", "p-web-1", Some("p"), Some("web"));
        let mut s = Script::new("auto", "p/web");
        s.start(&[&old]);
        let mut out = s.event(EventKind::Create, &temp);
        out.extend(s.event(TERM, &old));
        out.extend(s.event(EventKind::Die, &old));
        out.extend(s.event(EventKind::Stop, &old));
        out.extend(s.event(EventKind::Destroy, &old));
        out.extend(s.event(EventKind::Rename, &new));
        out.extend(s.advance(300 * MS));
        out.extend(s.event(EventKind::Start, &new));
        out.extend(s.advance(STOP_SETTLE * 2));
        assert!(acts(&out).is_empty(), "{out:?}");
    }

    #[test]
    fn compose_down_waits_for_the_whole_project_to_stop() {
        let a = c("a", "p-aa-1", Some("p"), Some("aa"));
        let b = c("b", "p-bb-1", Some("p"), Some("bb"));
        let mut s = Script::new("auto", "aa,bb");
        s.start(&[&a, &b]);
        let mut out = s.event(TERM, &a);
        out.extend(s.event(TERM, &b));
        out.extend(s.event(EventKind::Die, &a));
        // b is stubborn: it takes the whole stop timeout.
        out.extend(s.advance(STOP_SETTLE * 4));
        out.extend(s.event(EventKind::Die, &b));
        out.extend(s.event(EventKind::Destroy, &a));
        out.extend(s.event(EventKind::Destroy, &b));
        out.extend(s.advance(STOP_SETTLE * 2));
        assert!(
            inspects(&out).is_empty() && acts(&out).is_empty(),
            "{out:?}"
        );
    }

    #[test]
    fn someone_elses_restart_is_left_alone() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        let mut out = s.event(TERM, &node);
        out.extend(s.event(EventKind::Die, &node));
        out.extend(s.event(EventKind::Stop, &node));
        out.extend(s.advance(200 * MS));
        out.extend(s.event(EventKind::Start, &node));
        out.extend(s.advance(STOP_SETTLE * 2));
        assert!(acts(&out).is_empty(), "{out:?}");
    }

    #[test]
    fn a_stop_seen_by_a_pass_before_its_die_event_still_settles() {
        // Docker 26 tells of the stop before the die; a pass may list it exited in between.
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(TERM, &node);
        s.event(EventKind::Stop, &node);
        let out = s.feed(Input::Listed {
            full: false,
            containers: vec![listed(&node, Status::Exited)],
        });
        assert_eq!(inspects(&out), ["1"]);
        let out = s.inspected(&node, Status::Exited, 0);
        assert!(
            acts(&out).is_empty(),
            "whoever stopped it gets its moment: {out:?}"
        );
        s.event(EventKind::Die, &node);
        assert_eq!(inspects(&s.advance(STOP_SETTLE)), ["1"]);
        let out = s.inspected(&node, Status::Exited, 0);
        assert_eq!(acts(&out).len(), 1);
    }

    #[test]
    fn a_stop_that_ends_while_a_look_is_out_still_settles() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Health(Health::Unhealthy), &node);
        s.event(TERM, &node);
        s.event(EventKind::Stop, &node);
        // The look went out before the stop, and answers after it ended.
        let out = s.inspected(&node, Status::Exited, 0);
        let out = if inspects(&out).is_empty() {
            out
        } else {
            s.inspected(&node, Status::Exited, 0)
        };
        assert!(
            acts(&out).is_empty(),
            "whoever stopped it gets its moment: {out:?}"
        );
        s.event(EventKind::Die, &node);
        assert_eq!(inspects(&s.advance(STOP_SETTLE)), ["1"]);
        assert_eq!(acts(&s.inspected(&node, Status::Exited, 0)).len(), 1);
    }

    #[test]
    fn a_plain_docker_stop_is_revived_after_the_settle() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(TERM, &node);
        assert!(s.event(EventKind::Die, &node).is_empty(), "not at once");
        s.event(EventKind::Stop, &node);
        assert!(s.advance(STOP_SETTLE / 2).is_empty());
        assert_eq!(inspects(&s.advance(STOP_SETTLE)), ["1"]);
        assert_eq!(acts(&s.inspected(&node, Status::Exited, 100)).len(), 1);
    }

    #[test]
    fn a_stop_while_a_look_is_out_still_settles() {
        let a = c("a", "p-aa-1", Some("p"), Some("aa"));
        let mut s = Script::new("auto", "aa");
        s.start(&[&a]);
        assert_eq!(
            inspects(&s.event(EventKind::Health(Health::Unhealthy), &a)),
            ["a"]
        );
        s.event(TERM, &a);
        s.event(EventKind::Die, &a);
        assert_eq!(inspects(&s.inspected(&a, Status::Running, 0)), ["a"]);
        let out = s.inspected(&a, Status::Exited, 0);
        assert!(
            acts(&out).is_empty(),
            "compose may be taking it down: {out:?}"
        );
        let out = s.event(EventKind::Destroy, &a);
        assert!(inspects(&out).is_empty());
        assert_eq!(s.core.next_timer(), None);
    }

    #[test]
    fn a_target_renamed_during_its_back_off_is_not_started() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        // Revived once, and it dies again at once: a failed revival, so a back-off.
        s.event(EventKind::Die, &node);
        let act = acts(&s.inspected(&node, Status::Exited, 100))[0].clone();
        s.feed(acted(&act, ActResult::Running));
        s.advance(500 * MS);
        s.event(EventKind::Die, &node);
        let out = s.inspected(&node, Status::Exited, 101);
        assert!(acts(&out).is_empty(), "backing off: {out:?}");
        assert!(s.core.next_timer().is_some());
        s.event(EventKind::Rename, &c("1", "kept_for_forensics", None, None));
        assert_eq!(s.core.next_timer(), None, "its schedule is gone");
        let out = s.advance(Duration::from_secs(600));
        assert!(
            inspects(&out).is_empty() && acts(&out).is_empty(),
            "{out:?}"
        );
    }

    #[test]
    fn an_answer_racing_a_rename_starts_nothing() {
        let node = c("1", "nodo_1", None, None);
        let renamed = c("1", "kept_for_forensics", None, None);
        let mut s = Script::new("manual", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        let out = s.inspected(&node, Status::Exited, 100);
        assert_eq!(records(&out)[0].event, RecordEvent::Prompt);
        let (reply, out) = s.answer("nodo_1", "yes");
        assert!(reply.ok, "{reply:?}");
        assert_eq!(inspects(&out), ["1"]);
        // The rename lands while that look is out, and the look still saw the old name.
        s.event(EventKind::Rename, &renamed);
        let out = s.inspected(&node, Status::Exited, 100);
        assert_eq!(inspects(&out), ["1"], "a stale look is looked at again");
        let out = s.inspected(&renamed, Status::Exited, 100);
        assert!(acts(&out).is_empty(), "{out:?}");
        let r = records(&out);
        assert_eq!(r[0].event, RecordEvent::Skipped);
        assert_eq!(r[0].result.as_deref(), Some("not_a_target"));
    }

    #[test]
    fn a_rename_drops_the_open_prompt() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("manual", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        s.inspected(&node, Status::Exited, 100);
        let out = s.event(EventKind::Rename, &c("1", "elsewhere", None, None));
        assert_eq!(records(&out)[0].event, RecordEvent::PromptDropped);
        let (reply, out) = s.answer("nodo_1", "yes");
        assert!(
            !reply.ok && reply.text.contains("no open prompt"),
            "{reply:?}"
        );
        assert!(inspects(&out).is_empty());
    }

    #[test]
    fn a_bare_service_of_two_projects_is_acted_on_for_neither_unless_one_is_ours() {
        let p1 = c("1", "p1-svc-1", Some("p1"), Some("svc"));
        let p2 = c("2", "p2-svc-1", Some("p2"), Some("svc"));
        let mut s = Script::new("auto", "svc");
        s.start(&[&p1, &p2]);
        assert!(s.event(EventKind::Die, &p1).is_empty());
        assert!(s.event(EventKind::Die, &p2).is_empty());
        s.feed(Input::OwnProject(Some("p2".into())));
        assert!(s.event(EventKind::Die, &p1).is_empty());
        assert_eq!(inspects(&s.event(EventKind::Die, &p2)), ["2"]);
    }

    #[test]
    fn a_lost_task_is_looked_at_again_on_the_next_pass() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        assert_eq!(inspects(&s.event(EventKind::Die, &node)), ["1"]);
        s.feed(Input::TaskLost {
            container_id: "1".into(),
        });
        let out = s.feed(Input::Listed {
            full: false,
            containers: vec![],
        });
        assert_eq!(inspects(&out), ["1"]);
    }

    #[test]
    fn an_approval_given_while_the_engine_is_away_is_kept() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("manual", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        s.inspected(&node, Status::Exited, 100);
        s.feed(Input::Lost);
        let (reply, out) = s.answer("nodo_1", "yes");
        assert!(reply.ok && reply.text.contains("as soon as"), "{reply:?}");
        assert!(inspects(&out).is_empty());
        let session_start = s.now().wall;
        s.feed(Input::Connected { session_start });
        let out = s.feed(Input::Listed {
            full: true,
            containers: vec![listed(&node, Status::Exited)],
        });
        assert_eq!(inspects(&out), ["1"]);
        let out = s.inspected(&node, Status::Exited, 100);
        let a = acts(&out);
        assert!(matches!(a[0].approval, Approval::Operator { .. }), "{a:?}");
    }

    #[test]
    fn a_removed_container_takes_its_prompt_with_it() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("manual", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        s.inspected(&node, Status::Exited, 100);
        let out = s.event(EventKind::Destroy, &node);
        assert_eq!(records(&out)[0].event, RecordEvent::PromptDropped);
        let out = s.feed(Input::Request {
            request: Request::Pending,
            by: "test".into(),
        });
        assert_eq!(out, [Command::Reply(Reply::ok("no open prompts"))]);
    }

    #[test]
    fn an_event_while_a_look_is_out_means_another_look() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        assert!(
            s.event(EventKind::Die, &node).is_empty(),
            "one look at a time"
        );
        assert_eq!(inspects(&s.inspected(&node, Status::Running, 100)), ["1"]);
        assert_eq!(acts(&s.inspected(&node, Status::Exited, 100)).len(), 1);
    }

    #[test]
    fn a_late_healthy_event_is_not_taken_for_its_word() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("manual", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        s.inspected(&node, Status::Exited, 100);
        // A check under way when it died reports healthy after the die.
        let out = s.event(EventKind::Health(Health::Healthy), &node);
        assert_eq!(inspects(&out), ["1"]);
        let out = s.inspected(&node, Status::Exited, 100);
        assert!(records(&out).is_empty(), "the prompt stays: {out:?}");
    }

    #[test]
    fn a_refused_start_backs_off_once() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        let act = acts(&s.inspected(&node, Status::Exited, 100))[0].clone();
        let failed = ActResult::Failed {
            error: "injected (HTTP 500)".into(),
            denied: false,
        };
        let out = s.feed(acted(&act, failed));
        assert_eq!(records(&out)[0].result.as_deref(), Some("failed"));
        assert_eq!(inspects(&out), ["1"]);
        let out = s.inspected(&node, Status::Exited, 100);
        assert!(acts(&out).is_empty());
        // The default back-off starts at 1s: counted once, not twice.
        assert_eq!(
            s.core.next_timer(),
            Some(s.now().at + Duration::from_secs(1))
        );
    }

    #[test]
    fn a_denied_start_never_leads_to_quarantine() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        for _ in 0..20 {
            let out = s.inspected(&node, Status::Exited, 100);
            let act = acts(&out)[0].clone();
            let denied = ActResult::Failed {
                error: "forbidden (HTTP 403)".into(),
                denied: true,
            };
            s.feed(acted(&act, denied));
            let wait = s.core.next_timer().expect("tried again later") - s.now().at;
            assert_eq!(wait, Duration::from_secs(300), "at the back-off's cap");
            assert_eq!(inspects(&s.advance(wait)), ["1"]);
        }
    }

    #[test]
    fn an_answer_during_a_look_is_not_asked_again() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("manual", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        s.inspected(&node, Status::Exited, 0);
        // A pass looks at it again (it is followed), and the answer comes while that look is out.
        let out = s.feed(Input::Listed {
            full: false,
            containers: vec![listed(&node, Status::Exited)],
        });
        assert_eq!(inspects(&out), ["1"]);
        let (reply, out) = s.answer("nodo_1", "yes");
        assert!(reply.ok && inspects(&out).is_empty(), "{out:?}");
        let out = s.inspected(&node, Status::Exited, 0);
        assert_eq!(inspects(&out), ["1"], "the look that carries the answer");
        let out = s.inspected(&node, Status::Exited, 0);
        assert!(records(&out).is_empty(), "not asked again: {out:?}");
        assert!(matches!(acts(&out)[0].approval, Approval::Operator { .. }));
    }

    #[test]
    fn an_unhealthy_report_right_after_our_restart_waits_for_a_fresh_one() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Health(Health::Unhealthy), &node);
        let mut sick = snapshot(&node, Status::Running, s.now().wall, s.now().wall);
        sick.health = Health::Unhealthy;
        let out = s.feed(Input::Inspected {
            container: node.clone(),
            result: Ok(Some(sick.clone())),
        });
        let act = acts(&out)[0].clone();
        assert_eq!(act.action, Action::Restart);
        s.feed(acted(&act, ActResult::Running));
        s.advance(Duration::from_secs(1));
        // The engine still reports the health from before the restart.
        s.event(EventKind::Health(Health::Unhealthy), &node);
        let out = s.feed(Input::Inspected {
            container: node.clone(),
            result: Ok(Some(sick)),
        });
        assert!(acts(&out).is_empty(), "{out:?}");
        assert_eq!(s.core.next_timer(), Some(s.now().at + GRACE));
    }

    #[test]
    fn a_start_someone_else_made_first_is_recorded_as_theirs() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("auto", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        let act = acts(&s.inspected(&node, Status::Exited, 100))[0].clone();
        let out = s.feed(acted(&act, ActResult::AlreadyRunning));
        assert_eq!(records(&out)[0].result.as_deref(), Some("already_running"));
    }

    #[test]
    fn prompts_are_asked_oldest_first_one_at_a_time() {
        let a = c("a", "a1", None, None);
        let b = c("b", "b1", None, None);
        let mut s = Script::new("manual", "a1,b1");
        s.start(&[&a, &b]);
        s.event(EventKind::Die, &b);
        let out = s.inspected(&b, Status::Exited, 100);
        let printed = |out: &[Command]| {
            out.iter()
                .filter(|c| matches!(c, Command::Print(_)))
                .count()
        };
        assert_eq!(printed(&out), 1);
        s.elapsed += MS;
        s.event(EventKind::Die, &a);
        let out = s.inspected(&a, Status::Exited, 100);
        assert_eq!(printed(&out), 0, "queued behind the open one");
        let (_, out) = s.answer("b1", "yes");
        assert_eq!(printed(&out), 0, "not until b's outcome is known");
        let act = acts(&s.inspected(&b, Status::Exited, 100))[0].clone();
        let out = s.feed(acted(&act, ActResult::Running));
        assert_eq!(printed(&out), 1, "then a's prompt");
    }

    #[test]
    fn no_declines_this_failure_and_always_stands_for_the_target() {
        let a = c("a", "a1", None, None);
        let mut s = Script::new("manual", "a1");
        s.start(&[&a]);
        s.event(EventKind::Die, &a);
        s.inspected(&a, Status::Exited, 100);
        assert!(s.answer("a1", "no").0.ok);
        // The same failure, seen again: not asked again.
        s.feed(Input::Listed {
            full: false,
            containers: vec![listed(&a, Status::Exited)],
        });
        assert!(records(&s.inspected(&a, Status::Exited, 100)).is_empty());
        // It ran again and failed again: a new failure, asked; `always` revives from then on.
        let out = s.inspected(&a, Status::Exited, 200);
        assert_eq!(records(&out)[0].event, RecordEvent::Prompt);
        let (_, out) = s.answer("a1", "always");
        assert_eq!(inspects(&out), ["a"]);
        let act = acts(&s.inspected(&a, Status::Exited, 200))[0].clone();
        s.feed(acted(&act, ActResult::Running));
        s.advance(Duration::from_secs(60));
        s.event(EventKind::Die, &a);
        let a2 = acts(&s.inspected(&a, Status::Exited, 300))[0].clone();
        assert_eq!(a2.approval, Approval::Always);
    }

    #[test]
    fn the_failure_answered_never_is_not_recorded_again() {
        let a = c("a", "a1", None, None);
        let mut s = Script::new("manual", "a1");
        s.start(&[&a]);
        s.event(EventKind::Die, &a);
        s.inspected(&a, Status::Exited, 100);
        assert!(s.answer("a1", "never").0.ok);
        // The next pass sees the same failure: the answer is its record already.
        let out = s.inspected(&a, Status::Exited, 100);
        assert!(records(&out).is_empty(), "{out:?}");
    }

    #[test]
    fn every_failure_of_a_never_target_is_recorded_and_forget_ends_the_answer() {
        let a = c("a", "a1", None, None);
        let mut s = Script::new("manual", "a1");
        s.start(&[&a]);
        s.event(EventKind::Die, &a);
        s.inspected(&a, Status::Exited, 100);
        assert!(s.answer("a1", "never").0.ok);
        // It ran again and failed again: not asked, but recorded as observed, not acted on.
        s.event(EventKind::Die, &a);
        let out = s.inspected(&a, Status::Exited, 200);
        let r = records(&out);
        assert_eq!(r.len(), 1, "{out:?}");
        assert_eq!(r[0].event, RecordEvent::Observed);
        assert_eq!(r[0].result.as_deref(), Some("never"));
        assert!(prints(&out).is_empty() && acts(&out).is_empty());
        // status shows the standing answer; forget ends it, and the failure is asked about.
        let (reply, _) = request(&mut s, Request::Status { json: false });
        assert!(reply.text.contains("never"), "{}", reply.text);
        let (reply, out) = request(
            &mut s,
            Request::Forget {
                target: "a1".into(),
            },
        );
        assert!(reply.ok, "{}", reply.text);
        assert!(reply.text.contains("never"), "{}", reply.text);
        assert_eq!(records(&out)[0].event, RecordEvent::Forget);
        assert_eq!(inspects(&out), ["a"], "looked at again");
        let out = s.inspected(&a, Status::Exited, 200);
        assert_eq!(records(&out)[0].event, RecordEvent::Prompt);
        let (reply, _) = request(
            &mut s,
            Request::Forget {
                target: "a1".into(),
            },
        );
        assert!(!reply.ok, "nothing left to forget");
    }

    #[test]
    fn an_ambiguous_target_names_every_project_that_has_the_service() {
        // p1's container is the target p1/web; the bare `web` is still ambiguous between p1
        // and p2, and the warning and `status` must name both.
        let p1 = c("1", "p1-web-1", Some("p1"), Some("web"));
        let p2 = c("2", "p2-web-1", Some("p2"), Some("web"));
        let mut s = Script::new("auto", "web,p1/web");
        s.start(&[&p1, &p2]);
        let (reply, _) = request(&mut s, Request::Status { json: true });
        let rows: serde_json::Value = serde_json::from_str(&reply.text).expect("JSON");
        let web = rows
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["target"] == "web"))
            .expect("a row for web");
        assert_eq!(web["resolution"], "ambiguous", "{web}");
        assert_eq!(web["ambiguous_projects"], serde_json::json!(["p1", "p2"]));
    }

    fn outcomes(out: &[Command]) -> Vec<&What> {
        out.iter()
            .filter_map(|c| match c {
                Command::Report(o) => Some(&o.what),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_failure_observed_ends_when_it_runs_again() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("observe", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        let out = s.inspected(&node, Status::Exited, 0);
        assert!(
            matches!(outcomes(&out)[..], [What::Observed { .. }]),
            "{out:?}"
        );
        s.elapsed += Duration::from_secs(5);
        let out = s.event(EventKind::Start, &node);
        assert_eq!(inspects(&out), vec!["1"], "a start is looked at");
        let out = s.inspected(&node, Status::Running, 5000);
        assert_eq!(outcomes(&out), vec![&What::Recovered], "{out:?}");
        // Once: a later look at it running says nothing more.
        s.elapsed += Duration::from_secs(5);
        s.event(EventKind::Start, &node);
        let out = s.inspected(&node, Status::Running, 5000);
        assert!(outcomes(&out).is_empty(), "{out:?}");
    }

    #[test]
    fn a_failing_target_removed_ends_its_failure_and_a_well_one_says_nothing() {
        let node = c("1", "nodo_1", None, None);
        let well = c("2", "nodo_2", None, None);
        let mut s = Script::new("manual", "nodo_1,nodo_2");
        s.start(&[&node, &well]);
        s.event(EventKind::Die, &node);
        let out = s.inspected(&node, Status::Exited, 0);
        assert!(
            matches!(outcomes(&out)[..], [What::Asked { .. }]),
            "{out:?}"
        );
        let out = s.event(EventKind::Destroy, &node);
        assert!(outcomes(&out).contains(&&What::Gone), "{out:?}");
        let out = s.event(EventKind::Destroy, &well);
        assert!(outcomes(&out).is_empty(), "{out:?}");
    }

    #[test]
    fn a_failure_is_first_told_once_and_ends_with_the_revival() {
        let node = c("1", "nodo_1", None, None);
        let mut s = Script::new("manual", "nodo_1");
        s.start(&[&node]);
        s.event(EventKind::Die, &node);
        let out = s.inspected(&node, Status::Exited, 0);
        let Command::Report(asked) = out
            .iter()
            .find(|c| matches!(c, Command::Report(_)))
            .expect("a prompt")
        else {
            unreachable!("found above")
        };
        let since = asked.down.expect("a failure").since;
        assert!(asked.down.is_some_and(|d| d.first));
        s.elapsed += Duration::from_secs(3);
        s.answer("nodo_1", "yes");
        let out = s.inspected(&node, Status::Exited, 0);
        let act = acts(&out)[0].clone();
        let out = s.feed(acted(&act, ActResult::Running));
        let Some(Command::Report(acted)) = out.iter().find(|c| matches!(c, Command::Report(_)))
        else {
            panic!("no outcome: {out:?}")
        };
        assert_eq!(
            acted.down,
            Some(Down {
                since,
                first: false
            }),
            "the same failure"
        );
        // The next death is a new failure.
        s.elapsed += Duration::from_secs(60);
        s.event(EventKind::Die, &node);
        let out = s.inspected(&node, Status::Exited, 3000);
        let Some(Command::Report(next)) = out.iter().find(|c| matches!(c, Command::Report(_)))
        else {
            panic!("no outcome: {out:?}")
        };
        assert!(
            next.down.is_some_and(|d| d.first && d.since > since),
            "{next:?}"
        );
    }

    /// The audit file's lines, byte for byte, as every scenario above writes them: the format
    /// (`"v":1`) is a promise to whoever reads the file, whatever the core's types become.
    /// `HEALTHTHER_GOLDEN=write cargo test --lib golden` writes the file anew (then read the diff).
    mod golden {
        use std::cell::RefCell;

        use super::super::Command;

        thread_local! {
            static LINES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
        }

        /// Keeps the records among `out`, while a golden run is under way on this thread.
        pub fn capture(out: &[Command]) {
            LINES.with(|l| {
                if let Some(lines) = l.borrow_mut().as_mut() {
                    for c in out {
                        if let Some(r) = match c {
                            Command::Report(o) => crate::audit::Record::of(o),
                            _ => None,
                        } {
                            lines.push(serde_json::to_string(&r).expect("a record serializes"));
                        }
                    }
                }
            });
        }

        #[test]
        fn every_scenario_writes_the_audit_lines_it_always_wrote() {
            LINES.with(|l| *l.borrow_mut() = Some(Vec::new()));
            let scenarios: &[(&str, fn())] = &[
                ("a_revived_parent_brings_its_running_dependents_back_after_it", super::a_revived_parent_brings_its_running_dependents_back_after_it),
                ("someone_elses_restart_of_a_parent_brings_its_dependents_back_too", super::someone_elses_restart_of_a_parent_brings_its_dependents_back_too),
                ("dependents_wait_until_a_parent_with_a_health_check_is_healthy", super::dependents_wait_until_a_parent_with_a_health_check_is_healthy),
                ("a_pass_that_saw_the_parent_down_does_not_forget_its_health_check", super::a_pass_that_saw_the_parent_down_does_not_forget_its_health_check),
                ("a_dependent_that_started_after_its_parent_is_left_alone", super::a_dependent_that_started_after_its_parent_is_left_alone),
                ("a_dependent_that_is_no_target_is_reported_once_and_untouched", super::a_dependent_that_is_no_target_is_reported_once_and_untouched),
                ("a_dependents_own_failure_never_touches_its_parent", super::a_dependents_own_failure_never_touches_its_parent),
                ("one_prompt_covers_the_parent_and_the_dependents_it_restarts", super::one_prompt_covers_the_parent_and_the_dependents_it_restarts),
                ("an_answer_for_the_parent_does_not_lift_a_dependents_quarantine", super::an_answer_for_the_parent_does_not_lift_a_dependents_quarantine),
                ("a_parent_created_while_watching_is_waited_on_for_its_health_check", super::a_parent_created_while_watching_is_waited_on_for_its_health_check),
                ("two_containers_that_name_each_other_do_not_restart_each_other", super::two_containers_that_name_each_other_do_not_restart_each_other),
                ("a_labelled_dependent_of_a_recreated_parent_is_recreated_joined_to_the_new_one", super::a_labelled_dependent_of_a_recreated_parent_is_recreated_joined_to_the_new_one),
                ("an_unlabelled_dependent_of_a_recreated_parent_gets_the_command_that_fixes_it", super::an_unlabelled_dependent_of_a_recreated_parent_gets_the_command_that_fixes_it),
                ("a_failed_recreation_backs_off_until_quarantined", super::a_failed_recreation_backs_off_until_quarantined),
                ("a_dependent_whose_parent_went_while_nobody_watched_is_told_not_start_looped", super::a_dependent_whose_parent_went_while_nobody_watched_is_told_not_start_looped),
                ("status_lists_each_containers_dependents", super::status_lists_each_containers_dependents),
                ("a_held_target_is_neither_revived_nor_asked_about_until_the_hold_ends", super::a_held_target_is_neither_revived_nor_asked_about_until_the_hold_ends),
                ("each_failure_of_a_quarantined_target_is_recorded", super::each_failure_of_a_quarantined_target_is_recorded),
                ("holds_and_resumes_name_the_targets", super::holds_and_resumes_name_the_targets),
                ("on_stop_hold_keeps_a_stopped_target_down_until_someone_starts_it", super::on_stop_hold_keeps_a_stopped_target_down_until_someone_starts_it),
                ("unhealthy_after_waits_that_long_before_a_restart", super::unhealthy_after_waits_that_long_before_a_restart),
                ("labels_choose_mode_and_stop_timeout_per_container", super::labels_choose_mode_and_stop_timeout_per_container),
                ("a_label_narrows_the_mode_and_never_widens_it", super::a_label_narrows_the_mode_and_never_widens_it),
                ("a_stop_timeout_label_ends_inside_the_sidecars_stop_grace_period", super::a_stop_timeout_label_ends_inside_the_sidecars_stop_grace_period),
                ("observe_mode_never_acts", super::observe_mode_never_acts),
                ("a_quarantine_and_an_always_survive_a_restart", super::a_quarantine_and_an_always_survive_a_restart),
                ("restored_histories_of_containers_that_are_gone_are_dropped", super::restored_histories_of_containers_that_are_gone_are_dropped),
                ("status_shows_each_target_and_what_it_resolves_to", super::status_shows_each_target_and_what_it_resolves_to),
                ("api_kills_are_revived_at_once_however_often_and_never_add_up", super::api_kills_are_revived_at_once_however_often_and_never_add_up),
                ("a_kill_told_of_after_the_death_is_still_someone_elses_doing", super::a_kill_told_of_after_the_death_is_still_someone_elses_doing),
                ("a_kill_told_of_while_the_revival_is_under_way_is_recorded_as_a_kill", super::a_kill_told_of_while_the_revival_is_under_way_is_recorded_as_a_kill),
                ("a_death_seen_before_its_events_waits_a_moment_for_them", super::a_death_seen_before_its_events_waits_a_moment_for_them),
                ("its_own_crashes_still_back_off_and_oom_is_told_apart", super::its_own_crashes_still_back_off_and_oom_is_told_apart),
                ("nothing_is_decided_before_the_sessions_first_whole_list", super::nothing_is_decided_before_the_sessions_first_whole_list),
                ("a_refused_start_after_an_api_kill_still_backs_off", super::a_refused_start_after_an_api_kill_still_backs_off),
                ("an_unanswered_engine_counts_nothing_against_the_container", super::an_unanswered_engine_counts_nothing_against_the_container),
                ("an_old_signal_holds_up_no_one", super::an_old_signal_holds_up_no_one),
                ("a_replica_that_crashes_while_its_project_is_taken_down_waits_for_it", super::a_replica_that_crashes_while_its_project_is_taken_down_waits_for_it),
                ("our_start_that_ends_while_its_project_is_taken_down_is_undone", super::our_start_that_ends_while_its_project_is_taken_down_is_undone),
                ("a_start_withdrawn_while_its_project_is_taken_down_waits_for_it", super::a_start_withdrawn_while_its_project_is_taken_down_waits_for_it),
                ("our_start_just_before_its_service_is_taken_down_is_undone", super::our_start_just_before_its_service_is_taken_down_is_undone),
                ("our_own_restart_is_no_compose_stop", super::our_own_restart_is_no_compose_stop),
                ("a_reload_signal_holds_up_no_one_in_its_project", super::a_reload_signal_holds_up_no_one_in_its_project),
                ("a_crash_in_a_project_nobody_stops_is_revived_at_once", super::a_crash_in_a_project_nobody_stops_is_revived_at_once),
                ("a_hold_on_stop_ends_when_a_look_finds_it_running", super::a_hold_on_stop_ends_when_a_look_finds_it_running),
                ("an_answer_does_not_follow_a_container_into_another_target", super::an_answer_does_not_follow_a_container_into_another_target),
                ("the_terminal_answers_the_prompt_on_the_screen", super::the_terminal_answers_the_prompt_on_the_screen),
                ("a_yes_typed_while_an_approved_action_runs_answers_nothing", super::a_yes_typed_while_an_approved_action_runs_answers_nothing),
                ("a_new_failure_of_the_same_container_is_shown_again", super::a_new_failure_of_the_same_container_is_shown_again),
                ("a_podman_kill_is_revived_at_once_and_a_podman_stop_settles", super::a_podman_kill_is_revived_at_once_and_a_podman_stop_settles),
                ("a_killed_target_is_looked_at_then_started", super::a_killed_target_is_looked_at_then_started),
                ("a_named_swarm_task_is_said_once_and_never_acted_on", super::a_named_swarm_task_is_said_once_and_never_acted_on),
                ("lookalikes_and_others_are_never_looked_at", super::lookalikes_and_others_are_never_looked_at),
                ("compose_v1_recreate_is_left_to_compose", super::compose_v1_recreate_is_left_to_compose),
                ("compose_v2_recreate_is_left_to_compose", super::compose_v2_recreate_is_left_to_compose),
                ("compose_down_waits_for_the_whole_project_to_stop", super::compose_down_waits_for_the_whole_project_to_stop),
                ("someone_elses_restart_is_left_alone", super::someone_elses_restart_is_left_alone),
                ("a_stop_seen_by_a_pass_before_its_die_event_still_settles", super::a_stop_seen_by_a_pass_before_its_die_event_still_settles),
                ("a_stop_that_ends_while_a_look_is_out_still_settles", super::a_stop_that_ends_while_a_look_is_out_still_settles),
                ("a_plain_docker_stop_is_revived_after_the_settle", super::a_plain_docker_stop_is_revived_after_the_settle),
                ("a_stop_while_a_look_is_out_still_settles", super::a_stop_while_a_look_is_out_still_settles),
                ("a_target_renamed_during_its_back_off_is_not_started", super::a_target_renamed_during_its_back_off_is_not_started),
                ("an_answer_racing_a_rename_starts_nothing", super::an_answer_racing_a_rename_starts_nothing),
                ("a_rename_drops_the_open_prompt", super::a_rename_drops_the_open_prompt),
                ("a_bare_service_of_two_projects_is_acted_on_for_neither_unless_one_is_ours", super::a_bare_service_of_two_projects_is_acted_on_for_neither_unless_one_is_ours),
                ("a_lost_task_is_looked_at_again_on_the_next_pass", super::a_lost_task_is_looked_at_again_on_the_next_pass),
                ("an_approval_given_while_the_engine_is_away_is_kept", super::an_approval_given_while_the_engine_is_away_is_kept),
                ("a_removed_container_takes_its_prompt_with_it", super::a_removed_container_takes_its_prompt_with_it),
                ("an_event_while_a_look_is_out_means_another_look", super::an_event_while_a_look_is_out_means_another_look),
                ("a_late_healthy_event_is_not_taken_for_its_word", super::a_late_healthy_event_is_not_taken_for_its_word),
                ("a_refused_start_backs_off_once", super::a_refused_start_backs_off_once),
                ("a_denied_start_never_leads_to_quarantine", super::a_denied_start_never_leads_to_quarantine),
                ("an_answer_during_a_look_is_not_asked_again", super::an_answer_during_a_look_is_not_asked_again),
                ("an_unhealthy_report_right_after_our_restart_waits_for_a_fresh_one", super::an_unhealthy_report_right_after_our_restart_waits_for_a_fresh_one),
                ("a_start_someone_else_made_first_is_recorded_as_theirs", super::a_start_someone_else_made_first_is_recorded_as_theirs),
                ("prompts_are_asked_oldest_first_one_at_a_time", super::prompts_are_asked_oldest_first_one_at_a_time),
                ("no_declines_this_failure_and_always_stands_for_the_target", super::no_declines_this_failure_and_always_stands_for_the_target),
                ("the_failure_answered_never_is_not_recorded_again", super::the_failure_answered_never_is_not_recorded_again),
                ("every_failure_of_a_never_target_is_recorded_and_forget_ends_the_answer", super::every_failure_of_a_never_target_is_recorded_and_forget_ends_the_answer),
                ("an_ambiguous_target_names_every_project_that_has_the_service", super::an_ambiguous_target_names_every_project_that_has_the_service),
            ];
            let mut text = String::new();
            for (name, scenario) in scenarios {
                text.push_str(&format!("# {name}\n"));
                scenario();
                for line in LINES
                    .with(|l| l.borrow_mut().as_mut().map(std::mem::take))
                    .unwrap_or_default()
                {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
            LINES.with(|l| *l.borrow_mut() = None);
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/watch/core/golden.jsonl");
            if std::env::var("HEALTHTHER_GOLDEN").as_deref() == Ok("write") {
                std::fs::write(path, &text).expect("the golden file is writable");
                return;
            }
            let golden = std::fs::read_to_string(path).expect("the golden file exists");
            for (i, (want, got)) in golden.lines().zip(text.lines()).enumerate() {
                assert_eq!(got, want, "line {} of {path} differs", i + 1);
            }
            assert_eq!(
                text.lines().count(),
                golden.lines().count(),
                "line counts differ"
            );
        }
    }

    // --- Inspects per revival ---------------------------------------------------------

    /// `node` crashes and is revived, its own start event coming during the action (`late`:
    /// just after it); returns the inspects the core asked for before the act and after it.
    fn crash_and_revive(s: &mut Script, node: &ContainerRef, late: bool) -> (usize, usize) {
        let mut before = inspects(&s.event(EventKind::Die, node)).len();
        let out = s.inspected(node, Status::Exited, 100);
        before += inspects(&out).len();
        let act = acts(&out)[0].clone();
        assert_eq!(act.action, Action::Start);
        s.elapsed += MS;
        let mut after = 0;
        if !late {
            after += inspects(&s.event(EventKind::Start, node)).len();
        }
        after += inspects(&s.feed(acted(&act, ActResult::Running))).len();
        s.elapsed += MS;
        if late {
            after += inspects(&s.event(EventKind::Start, node)).len();
        }
        (before, after)
    }

    #[test]
    fn a_revival_looks_once_and_its_own_start_event_asks_for_no_other_look() {
        let (a, b) = (c("a", "nodo_1", None, None), c("b", "nodo_2", None, None));
        let (d, e) = (c("d", "nodo_3", None, None), c("e", "nodo_4", None, None));
        let mut s = Script::new("auto", "nodo_1,nodo_2,nodo_3,nodo_4");
        s.start(&[&a, &b, &d, &e]);
        // One look before the start; the task's own look after it is the only one after.
        assert_eq!(crash_and_revive(&mut s, &a, false), (1, 0), "during");
        assert_eq!(crash_and_revive(&mut s, &b, true), (1, 0), "just after");
        // Anything else during the action is still looked at afterwards.
        s.event(EventKind::Die, &d);
        let act = acts(&s.inspected(&d, Status::Exited, 200))[0].clone();
        s.event(EventKind::Start, &d);
        s.event(EventKind::Die, &d);
        assert_eq!(inspects(&s.feed(acted(&act, ActResult::Running))), ["d"]);
        // A start that beat ours was someone else's: looked at too.
        s.event(EventKind::Die, &e);
        let act = acts(&s.inspected(&e, Status::Exited, 200))[0].clone();
        s.event(EventKind::Start, &e);
        let out = s.feed(acted(&act, ActResult::AlreadyRunning));
        assert_eq!(inspects(&out), ["e"]);
    }
}
