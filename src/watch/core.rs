//! The watch core: every decision about every container, without I/O. The shell around it
//! (`watch.rs`) feeds in what happened as an [`Input`] with the time, and carries out the
//! [`Command`]s that come back. The state machine is described at the top of `watch.rs`.
//!
//! This file holds the core's state (one [`Watched`] per container) and [`Core::handle`],
//! which hands each input to the file of its concern, each an `impl Core` block:
//! - `events.rs`: the engine's events, one handler per kind, timers, and compose taking a
//!   project down;
//! - `scope.rs`: the engine's lists, and which containers are targets;
//! - `decide.rs`: a look at a container and what its state calls for;
//! - `acted.rs`: what came of an action;
//! - `answers.rs`: prompts and the operator's answers; `holds.rs`: holds, releases, forgets;
//! - `requests.rs`: the control socket's requests and the status rows;
//! - `persist.rs`: what survives a restart; `dependents.rs`: containers sharing a network.
//!
//! What goes in and out is the core's own: [`event`] (what the engine adapter translates its
//! events into), [`outcome`] (what the core reports, read by the audit file, metrics and
//! notifications), [`status`] (the rows `status` shows).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{error, info};

mod acted;
mod answers;
mod decide;
mod dependents;
pub mod event;
mod events;
mod graph;
mod holds;
pub mod outcome;
mod persist;
pub mod probes;
mod requests;
mod scope;
pub mod status;

use self::event::Event;
#[cfg(test)]
pub use self::outcome::sample;
pub use self::outcome::{
    ActResult, Action, Approval, Cause, Down, Outcome, Parent, Skip, What, FILE_ONLY,
};
use self::probes::Probing;
pub use self::probes::{ProbeJob, Probed, Reach};
use crate::backoff::History;
use crate::config::{Config, Mode};
use crate::control::{Reply, Request};
use crate::overrides::Overrides;
use crate::policy::{describe, Address, Health, Listed, Snapshot, Status, Verdict};
use crate::prompt::{self, Pending, Token};
use crate::state::Saved;
use crate::targets::{ContainerRef, Neighbours, TargetName};

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
    /// Where healthther itself runs, learnt from its own container.
    Own(Own),
    /// A probe's result.
    Probed(Probed),
    /// A list call's answer: every container (`full`), or only those that may need attention;
    /// `asked` is when the call was made, so containers heard of since may be missing from it.
    Listed {
        full: bool,
        containers: Vec<Listed>,
        asked: Instant,
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
    /// A probe to run; its result comes back as [`Input::Probed`].
    Probe(ProbeJob),
}

/// What healthther learns of its own container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Own {
    /// Its compose project: a bare service name means this project's service first.
    pub project: Option<String>,
    /// Which containers' addresses it can reach, for probes.
    pub reach: Reach,
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
    /// healthther started a moment ago: no action yet (`AUTOHEAL_START_PERIOD`).
    StartPeriod,
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
    /// Stopped through the API with `HEALTH_ON_STOP=hold`: held until someone starts it.
    held_by_stop: bool,
    /// Its death, and the stop or kill under way: see [`Death`].
    death: Death,
    /// What its labels override.
    overrides: Overrides,
    /// Its state as last seen, for `status`.
    state: Option<SeenState>,
    /// The last action taken on it, for `status`.
    last_action: Option<LastAction>,
    /// Why it went down last, for `status`.
    last_cause: Option<Cause>,
    /// A task of a Swarm service that a target names: said once that it is left to Swarm.
    swarm_told: bool,
    /// Whether we said that a name chooses it but it opted out (`healthther.enable=false`).
    opt_out_told: bool,
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
    /// When an event or a look last told of it: a list asked for before then may leave it out.
    heard_of: Option<Instant>,
    /// Its probe, when its labels declare one (see `probes`).
    probing: Option<Probing>,
    /// Its addresses as last seen, and when the list or inspect that told them was asked for.
    addresses: Vec<Address>,
    /// It runs in the host's network namespace.
    host_network: bool,
    /// When its current run started, by its last start event's time (the engine's clock): a
    /// look that saw an earlier run tells nothing of its addresses now.
    run_started: Option<SystemTime>,
    /// Since when its addresses may have changed (its last start, a network connected or
    /// disconnected): those seen before then are not to be probed, its own probe's or that of
    /// a container sharing its network.
    readdressed: Option<Instant>,
    addresses_at: Option<Instant>,
}

/// What is known of a container's death, and of the stop or kill that may be causing the next:
/// all of it is about one run, so its start resets it whole (see the start event). Why it went
/// down last is kept apart, in `Watched::last_cause`: `status` shows it after the start, and an
/// action that ends after its own start event still reads it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Death {
    /// Signals sent to it through the API since it last started (`kill` events), and whether
    /// the engine called it a stop: a death that follows is someone else's doing.
    api_kill: Option<ApiKill>,
    /// The kernel killed it for memory since it last started.
    oom: bool,
    /// When its last death was taken for a crash: an API kill the engine tells of only after
    /// the death (newer engines may) forgives it, if it comes within [`LATE_KILL`].
    crash_seen: Option<Instant>,
    /// Its die event came since it last started.
    died: bool,
    /// A look found it dead before its die event, and waited for it once.
    awaited_die: bool,
    /// A stop was asked through the API (when) and it has not died yet.
    stopping: Option<Instant>,
    /// It died from a stop asked through the API: no revival before this.
    settle_until: Option<Instant>,
    /// Since when it has been seen unhealthy, for `healthther.unhealthy-after`.
    unhealthy_since: Option<Instant>,
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
            held_by_stop: false,
            death: Death::default(),
            overrides: Overrides::default(),
            state: None,
            last_action: None,
            last_cause: None,
            network_parent: None,
            net_lost: None,
            revived_by: None,
            learning: false,
            has_check: false,
            swarm_told: false,
            opt_out_told: false,
            undo: None,
            ours_until: None,
            own_start: None,
            never_told: None,
            down_since: None,
            heard_of: None,
            probing: None,
            addresses: Vec::new(),
            host_network: false,
            run_started: None,
            readdressed: None,
            addresses_at: None,
        }
    }

    /// Whether something was said, asked or done about it that a look may end.
    fn is_followed(&self) -> bool {
        self.reported.is_some()
            || self.history.is_some()
            || self.prompt.is_some()
            || self.held_by_stop
    }

    /// A signal or a stop came while a look was out: what it sees may predate them, and a
    /// running container seen then would end what they explain of the death that follows.
    fn look_is_stale(&mut self) {
        if let Phase::Looking { again, .. } = &mut self.phase {
            *again = true;
        }
    }

    /// It stopped: a stop lately asked through the API gives whoever asked [`STOP_SETTLE`]
    /// from now, however we learnt of the end (its die event, a pass, a look).
    fn stop_ended(&mut self, now: Instant) {
        if self
            .death
            .stopping
            .take()
            .is_some_and(|t| now < t + SIGNAL_RELEVANT)
        {
            let until = now + STOP_SETTLE;
            self.death.settle_until = Some(self.death.settle_until.map_or(until, |t| t.max(until)));
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
    /// Only containers that opted out (`healthther.enable=false`) have its name: said by them.
    OptedOut,
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
    /// Where probes can reach, once healthther's own container is known.
    own_reach: Option<Reach>,
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
    /// When the next wait ends, as the last input left it: see [`Core::next_timer`].
    next_timer: Option<Instant>,
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
    /// Containers removed while an action on them was under way, with when their failure
    /// began: its end (`Gone`) is told already, and the action's end counts no second one.
    removed_acting: HashMap<String, SystemTime>,
    /// Where each prompt's answer token comes from (random; tests script theirs).
    tokens: TokenSource,
    /// This host's tag, which its tokens begin with (see [`Token`]).
    host_tag: String,
    /// Tokens of prompts lately closed, with why, oldest first: an answer with one is told
    /// what became of the prompt. Tokens of bad answers already logged, so each is logged once.
    closed_tokens: std::collections::VecDeque<(Token, String)>,
    bad_tokens: std::collections::VecDeque<String>,
    /// How many answers that do nothing are logged (see [`crate::quota`]).
    bad_quota: crate::quota::Quota,
}

/// Makes a prompt's answer token; `None` when no random bytes could be had.
pub type TokenSource = Box<dyn FnMut() -> Option<Token> + Send>;

impl Core {
    pub fn new(config: Arc<Config>, terminal: bool, now: Now) -> Core {
        Core {
            terminal,
            records: HashMap::new(),
            own_project: None,
            own_reach: None,
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
            next_timer: None,
            epoch: now,
            restored: HashMap::new(),
            saved: None,
            gone: HashMap::new(),
            project_stops: HashMap::new(),
            removed_acting: HashMap::new(),
            tokens: {
                let tag = prompt::host_tag(&config.notify.host);
                Box::new(move || Token::random(&tag))
            },
            host_tag: prompt::host_tag(&config.notify.host),
            closed_tokens: std::collections::VecDeque::new(),
            bad_tokens: std::collections::VecDeque::new(),
            bad_quota: crate::quota::Quota::default(),
            config,
        }
    }

    /// Prompts' tokens from `tokens` instead of the kernel's random source (for tests).
    pub fn with_tokens(mut self, tokens: TokenSource) -> Core {
        self.tokens = tokens;
        self
    }

    /// The targets an operator holds now.
    pub fn held_targets(&self) -> HashSet<TargetName> {
        self.holds.keys().cloned().collect()
    }

    /// When the next wait ends, for [`Input::Tick`]. Only an input changes it: the shell asks
    /// on every turn of its loop, and the answer takes a look at every container, so it is
    /// worked out once an input is handled (see [`Core::soonest`]).
    pub fn next_timer(&self) -> Option<Instant> {
        self.next_timer
    }

    fn soonest(&self) -> Option<Instant> {
        let waits = self.records.values().filter_map(|r| match r.phase {
            Phase::Waiting { until, .. } => Some(until),
            _ => None,
        });
        let holds = self.holds.values().filter_map(|h| h.until);
        let probes = self
            .records
            .values()
            .filter(|r| r.target.is_some())
            .filter_map(|r| r.probing.as_ref().and_then(Probing::due));
        waits.chain(holds).chain(probes).min()
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
            Input::Own(Own { project, reach }) => {
                if let Some(p) = project
                    .as_ref()
                    .filter(|p| self.own_project.as_ref() != Some(*p))
                {
                    info!(project = %p, "healthther runs in compose project {p}: a bare service name means this project's service first");
                }
                self.own_reach = Some(reach);
                if project != self.own_project {
                    self.own_project = project;
                    self.retarget(now, &mut out);
                }
            }
            Input::Probed(probed) => {
                if let probes::Counted::Alone(due) = self.on_probed(probed, now, &mut out) {
                    // The most frequent input, and it changed one container's probe alone:
                    // what the passes over every container below found after the last input
                    // stands, but for the timer of that probe's next.
                    self.next_timer = self.next_timer.into_iter().chain(due).min();
                    return out;
                }
            }
            Input::Listed {
                full,
                containers,
                asked,
            } => self.on_listed(full, containers, asked, now, &mut out),
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
        self.next_timer = self.soonest();
        out
    }
}

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

/// An id as `docker ps` shows it.
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

#[cfg(test)]
mod tests;
