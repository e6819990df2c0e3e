//! The watch loop. The shell here does the I/O: it connects to the engine, follows its event
//! stream, runs list, inspect and act calls as tasks, keeps the timers, and hands everything
//! that happens to the core (`core.rs`), which decides without I/O and answers with commands.
//!
//! # One state machine per container
//!
//! The core keeps one record per container the engine has (by id): its name and compose
//! labels, whether it is a target *now*, its revival history, its open prompt, and its phase:
//!
//! ```text
//!            die, unhealthy, a pass finds it unwell, an operator's answer
//!   Idle ─────────────────────────────────────────────────────────────► Looking
//!    ▲                                                                    │ ▲
//!    │  the inspect answers: well, not a target, asked (manual),          │ │ an event
//!    ├──── quarantined, left to the engine ◄──────────────────────────────┤ │ meanwhile:
//!    │                                                                    │ │ look again
//!    │                                   a target that needs a revival,   │ │
//!    │  the action's result ◄── Acting ◄── allowed (auto, always, yes) ◄──┤─┘
//!    │  (recorded)                                                        │
//!    │                        back-off after failed revivals, or a stop   │
//!    └── someone started it ◄── Waiting ◄── asked through the API ◄───────┘
//!                                  │
//!                                  └── the wait ends ─────────────────► Looking
//!
//!   A die that follows a stop asked through the API goes from Idle to Waiting directly.
//!   Due: a look is wanted while the engine is away; the first pass after it returns looks.
//!   Destroyed: the record goes, with its prompt.
//! ```
//!
//! Invariants, each kept in one place in the core:
//! - Nothing is started or restarted unless the inspect that immediately precedes it shows a
//!   target (`decide`); a rename, create or destroy re-decides every container's target at
//!   once (`retarget`), and one that stops being a target loses its back-off, prompt and
//!   schedule.
//! - A look is never answered by a stale inspect: an event about the container while the
//!   inspect was out sends another one first (`Looking { again }`).
//! - A stop asked through the API (`docker stop`, `docker restart`, compose's `down` and
//!   recreate) gives whoever asked [`core::STOP_SETTLE`] (and, for compose, until the rest of
//!   its project has stopped) to start, rename or remove it before a revival.
//! - A removed container takes its record with it; an action's record is written from what
//!   the action carried, whatever became of the container.

pub mod core;
pub mod docker;
mod task;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use self::core::event::{Event, EventKind};
pub use self::core::status::{ContainerStatus, TargetStatus};
pub use self::core::{
    Act, ActResult, Acted, Action, Approval, Cause, Command, Core, Down, Input, Now, Outcome, Own,
    Probed, Reach, Skip, What, FILE_ONLY,
};
pub use self::docker::{Connect, Docker, DockerError, Started};
use crate::audit::{self, Audit};
use crate::backoff::Backoff;
use crate::config::Config;
use crate::control;
use crate::policy::Listed;
use crate::state;
use crate::tap::Tap;
use crate::targets::ContainerRef;

/// Reconnecting after the engine is lost, and asking again for a lost event stream.
const RECONNECT: Backoff = Backoff {
    first: Duration::from_millis(250),
    cap: Duration::from_secs(30),
};
/// A session that lasted this long was a real one; the next outage starts its back-off afresh.
const SESSION_STABLE: Duration = Duration::from_secs(10);
/// An event stream that lasted this long worked: when it ends, it is asked for again at once,
/// since a proxy's idle timeout (haproxy's `timeout server`) cuts a quiet stream periodically.
/// One that ends sooner is asked for again under the back-off.
const STREAM_WORKED: Duration = Duration::from_secs(1);
/// Cuts in a row, each within [`STREAM_WORKED`] of the last subscription, still answered by
/// subscribing again at once.
const QUICK_CUTS: u32 = 3;
/// How far back the event subscription asks the engine to replay, to cover the moment between
/// subscribing and the first list (and a little clock skew).
const REPLAY: Duration = Duration::from_secs(2);
/// Engine calls under way at once: enough to revive many targets in parallel, few enough not
/// to flood an engine that is struggling already.
const PARALLEL_CALLS: usize = 8;
/// One reconciliation pass in this many lists every container (a minute at the default 10 s):
/// the others ask only for what may need attention, which is cheap however many there are.
const FULL_PASS_EVERY: u32 = 6;

/// Where the operator's words come from.
pub struct Operator {
    pub inputs: mpsc::Receiver<control::Input>,
    /// Whether a terminal is there to answer prompts on.
    pub terminal: bool,
}

/// Watches the targets on the engine `engine` connects to, starting from the `restored` state
/// (see `state::load`), until `cancel` fires, then lets actions under way finish and records
/// them.
pub async fn run<C: Connect>(
    engine: C,
    config: Arc<Config>,
    restored: Option<state::Saved>,
    audit: Arc<Audit>,
    operator: Operator,
    tap: Tap,
    cancel: CancellationToken,
) {
    let mut core = Core::new(Arc::clone(&config), operator.terminal, now());
    if let Some(saved) = restored {
        drop(core.handle(Input::Restored(saved), now()));
    }
    let state_file = state::path_in(&config.log_dir);
    let shell = Shell {
        connect: Arc::new(engine),
        state: state::Writer::spawn(state_file),
        core,
        config,
        audit,
        inputs: operator.inputs,
        link: Link::Down {
            retry_at: tokio::time::Instant::now(),
            failures: 0,
            outage: None,
        },
        looks: JoinSet::new(),
        actions: JoinSet::new(),
        calls: Arc::new(Semaphore::new(PARALLEL_CALLS)),
        listing: false,
        next_poll: None,
        announced_connection: false,
        flaps: 0,
        told_stream_lost: false,
        tap,
        told_stream_cut: false,
        withdraw: HashMap::new(),
        passes: 0,
    };
    shell.run(cancel).await;
}

/// The connection to the engine.
enum Link<D> {
    Down {
        retry_at: tokio::time::Instant,
        failures: u32,
        /// Why it is unreachable, said once until it changes or the engine returns.
        outage: Option<String>,
    },
    Connecting {
        failures: u32,
        outage: Option<String>,
    },
    Up(Session<D>),
}

struct Session<D> {
    engine: D,
    since: tokio::time::Instant,
    events: Option<BoxStream<'static, Result<Event, DockerError>>>,
    /// When the current event stream was asked for.
    subscribed: tokio::time::Instant,
    resubscribe_at: Option<tokio::time::Instant>,
    stream_failures: u32,
    /// Cuts in a row that came soon after subscribing: see [`QUICK_CUTS`].
    quick_cuts: u32,
}

/// What a task brings back.
enum Done<D> {
    Connected(Result<D, DockerError>),
    Listed {
        full: bool,
        result: Result<Vec<Listed>, DockerError>,
        asked: std::time::Instant,
    },
    /// healthther's own container, when it could be learnt.
    Own(Option<Own>),
    Core(Box<Input>),
    /// Recreations a crash of ours cut short, finished at start-up (each target and the
    /// container now under its name), then what came after.
    Repaired {
        finished: Vec<(crate::targets::TargetName, ContainerRef)>,
        then: Box<Done<D>>,
    },
}

struct Shell<C: Connect> {
    connect: Arc<C>,
    core: Core,
    state: state::Writer,
    config: Arc<Config>,
    audit: Arc<Audit>,
    inputs: mpsc::Receiver<control::Input>,
    link: Link<C::Docker>,
    /// Connecting, listing and inspecting: dropped at shutdown.
    looks: JoinSet<Done<C::Docker>>,
    /// Starts and restarts: finished and recorded at shutdown.
    actions: JoinSet<Done<C::Docker>>,
    calls: Arc<Semaphore>,
    listing: bool,
    next_poll: Option<tokio::time::Instant>,
    announced_connection: bool,
    /// Sessions in a row that ended soon after they began: the reconnect back-off grows.
    flaps: u32,
    /// Whether the loss of the event stream was said, so it is said once until it is back.
    told_stream_lost: bool,
    /// Records and the engine's comings and goings, out to metrics and notifications.
    tap: Tap,
    /// Whether a cut of a working event stream was said: once, then only at debug level.
    told_stream_cut: bool,
    /// What withdraws each action under way, by container id: see [`Command::Withdraw`].
    withdraw: HashMap<String, CancellationToken>,
    /// Reconciliation passes so far: see [`FULL_PASS_EVERY`].
    passes: u32,
}

impl<C: Connect> Shell<C> {
    async fn run(mut self, cancel: CancellationToken) {
        loop {
            let alarm = self.alarm();
            let next_event = async {
                match &mut self.link {
                    Link::Up(Session {
                        events: Some(stream),
                        ..
                    }) => stream.next().await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(done) = self.looks.join_next() => self.on_done(done),
                Some(done) = self.actions.join_next() => self.on_done(done),
                item = next_event => self.on_event_item(item),
                Some(input) = self.inputs.recv() => self.on_operator(input),
                ask = self.tap.next_ask() => {
                    // The scrape may have given up waiting; nothing to do about that.
                    let _ = ask.send(self.core.target_rows(now()));
                }
                _ = sleep_until(alarm) => self.on_alarm(),
            }
        }
        self.looks.abort_all();
        if !self.actions.is_empty() {
            info!(
                count = self.actions.len(),
                "stopping: letting in-flight actions finish"
            );
        }
        while let Some(done) = self.actions.join_next().await {
            self.on_done(done);
        }
        self.tap.close().await;
        self.state.finish();
        info!("stopped");
    }

    /// The earliest moment something is due: a core timer, a reconnect, a resubscribe, a pass.
    fn alarm(&self) -> Option<tokio::time::Instant> {
        let core = self.core.next_timer().map(tokio::time::Instant::from_std);
        let link = match &self.link {
            Link::Down { retry_at, .. } => Some(*retry_at),
            Link::Connecting { .. } => None,
            Link::Up(s) => s.resubscribe_at,
        };
        [core, link, self.next_poll].into_iter().flatten().min()
    }

    fn on_alarm(&mut self) {
        let now = tokio::time::Instant::now();
        if self
            .core
            .next_timer()
            .is_some_and(|t| tokio::time::Instant::from_std(t) <= now)
        {
            self.feed(Input::Tick);
        }
        match &mut self.link {
            Link::Down {
                retry_at,
                failures,
                outage,
            } if *retry_at <= now => {
                let (failures, outage) = (*failures, outage.take());
                self.link = Link::Connecting { failures, outage };
                let connect = Arc::clone(&self.connect);
                self.looks
                    .spawn(async move { Done::Connected(connect.connect().await) });
            }
            Link::Up(s) if s.resubscribe_at.is_some_and(|t| t <= now) => {
                s.resubscribe_at = None;
                s.subscribed = now;
                s.events = Some(s.engine.events(SystemTime::now() - REPLAY).boxed());
            }
            _ => {}
        }
        if self.next_poll.is_some_and(|t| t <= now) {
            self.next_poll = Some(now + self.config.poll_interval);
            // Most passes ask only for what may need attention; every so often one asks for
            // every container, so that a removal whose event the engine dropped is noticed.
            self.passes = self.passes.wrapping_add(1);
            let full = self.passes.is_multiple_of(FULL_PASS_EVERY);
            self.list(full);
            if full {
                self.learn_own();
            }
        }
    }

    /// Spawns a list call, unless one is under way.
    fn list(&mut self, full: bool) {
        let Link::Up(s) = &self.link else {
            return;
        };
        if self.listing && !full {
            return;
        }
        self.listing = true;
        let engine = s.engine.clone();
        let asked = now().at;
        self.looks.spawn(async move {
            Done::Listed {
                full,
                result: engine.list(full).await,
                asked,
            }
        });
    }

    fn on_done(&mut self, done: Result<Done<C::Docker>, tokio::task::JoinError>) {
        let done = match done {
            Ok(done) => done,
            // Aborted at shutdown; a panic is caught inside each task (see `task.rs`).
            Err(_) => return,
        };
        match done {
            Done::Repaired { finished, then } => {
                for (target, c) in finished {
                    self.audit.record(&audit::recreation_finished(&target, &c));
                    self.tap.report(&Outcome {
                        at: SystemTime::now(),
                        target: Some(target),
                        container: Some(c),
                        seen: "a recreation cut short".into(),
                        state: None,
                        down: None,
                        what: What::Acted {
                            mode: crate::config::Mode::Auto,
                            approval: Approval::Auto,
                            parent: None,
                            action: Action::Recreate,
                            cause: Cause::ParentRecreated,
                            result: ActResult::Running,
                            took: Duration::ZERO,
                        },
                    });
                }
                self.on_done(Ok(*then));
            }
            Done::Core(input) => {
                if let Input::Acted(a) = &*input {
                    self.withdraw.remove(&a.act.seen.container.id);
                }
                self.feed(*input)
            }
            Done::Own(Some(own)) => self.feed(Input::Own(own)),
            // Asked again on the next whole pass.
            Done::Own(None) => {}
            Done::Connected(Ok(engine)) => self.connected(engine),
            Done::Connected(Err(e)) => {
                let Link::Connecting { failures, outage } = &self.link else {
                    return;
                };
                let reason = e.to_string();
                let failures = failures + 1;
                let outage = if outage.as_deref() != Some(reason.as_str()) {
                    warn!(
                        "{reason}; retrying, at most every {}s",
                        RECONNECT.cap.as_secs()
                    );
                    self.tap.engine(Some(reason.clone()));
                    Some(reason)
                } else {
                    outage.clone()
                };
                self.link = Link::Down {
                    retry_at: tokio::time::Instant::now() + RECONNECT.after(failures),
                    failures,
                    outage,
                };
            }
            Done::Listed {
                full,
                result,
                asked,
            } => {
                self.listing = false;
                match result {
                    Ok(containers) => self.feed(Input::Listed {
                        full,
                        containers,
                        asked,
                    }),
                    Err(e) => self.lost(e),
                }
            }
        }
    }

    fn connected(&mut self, engine: C::Docker) {
        let was_out = matches!(
            &self.link,
            Link::Connecting {
                outage: Some(_),
                ..
            }
        );
        let host = &self.config.docker_host;
        if was_out || self.announced_connection {
            info!(docker_host = %host, "the Docker engine answers again; resynchronising");
        } else {
            info!(docker_host = %host, api = %engine.api_version(), "connected to the Docker engine");
        }
        self.tap.engine(None);
        // Subscribe first, then list: the replay covers whatever happens in between. The
        // engine keeps only 256 past events, so after a lost connection we re-list, not replay.
        let session_start = SystemTime::now();
        let events = engine.events(session_start - REPLAY).boxed();
        self.link = Link::Up(Session {
            engine: engine.clone(),
            since: tokio::time::Instant::now(),
            events: Some(events),
            subscribed: tokio::time::Instant::now(),
            resubscribe_at: None,
            stream_failures: 0,
            quick_cuts: 0,
        });
        self.feed(Input::Connected { session_start });
        if self.announced_connection {
            self.list(true);
        } else {
            // Started afresh: first put right the recreations a crash of ours cut short, so
            // that the first list sees each such container under its name. Only then: later,
            // a container under a temporary name may be a recreation of ours under way.
            self.listing = true;
            let (engine, config) = (engine.clone(), Arc::clone(&self.config));
            // Only what auto mode would do by itself: not under observe or manual (a label
            // may narrow that), not for a held target.
            let held = self.core.held_targets();
            self.looks.spawn(async move {
                let may_finish = |c: &ContainerRef| {
                    let target = target_by_name(&config, c)?;
                    let mode = crate::overrides::parse(&c.labels).0.mode(config.mode);
                    (mode == crate::config::Mode::Auto && !held.contains(&target)).then_some(target)
                };
                let finished = engine
                    .repair_recreations(may_finish, config.stop_timeout)
                    .await;
                let asked = now().at;
                let listed = Done::Listed {
                    full: true,
                    result: engine.list(true).await,
                    asked,
                };
                Done::Repaired {
                    finished,
                    then: Box::new(listed),
                }
            });
        }
        self.next_poll = Some(tokio::time::Instant::now() + self.config.poll_interval);
        self.announced_connection = true;
        self.learn_own();
    }

    /// Learns healthther's own compose project and networks: after each connection, and on
    /// each whole pass (someone may attach it to a network for its probes).
    fn learn_own(&mut self) {
        if let Link::Up(s) = &self.link {
            let engine = s.engine.clone();
            self.looks
                .spawn(async move { Done::Own(task::own(&engine).await) });
        }
    }

    /// The engine stopped answering: reconnect under the back-off.
    fn lost(&mut self, e: DockerError) {
        let Link::Up(s) = &self.link else {
            return;
        };
        warn!(error = %e, "lost the Docker engine; reconnecting");
        self.tap.engine(Some(e.to_string()));
        self.flaps = if s.since.elapsed() > SESSION_STABLE {
            0
        } else {
            self.flaps + 1
        };
        let failures = 1 + self.flaps;
        self.link = Link::Down {
            retry_at: tokio::time::Instant::now() + RECONNECT.after(failures),
            failures,
            outage: Some(e.to_string()),
        };
        self.listing = false;
        self.next_poll = None;
        self.feed(Input::Lost);
    }

    fn on_event_item(&mut self, item: Option<Result<Event, DockerError>>) {
        let Link::Up(s) = &mut self.link else {
            return;
        };
        match item {
            Some(Ok(event)) => {
                s.stream_failures = 0;
                s.quick_cuts = 0;
                if std::mem::replace(&mut self.told_stream_lost, false) {
                    info!("the event stream is back");
                }
                self.feed(Input::Event(event));
            }
            ended => {
                let why = match ended {
                    Some(Err(e)) => e,
                    _ => DockerError::stream_ended(),
                };
                s.events = None;
                // A stream that worked a while was cut (a proxy's idle timeout); so, probably,
                // was one cut again at once (two cuts can coincide). Only a stream that keeps
                // ending as soon as it is asked for takes the back-off below.
                if s.subscribed.elapsed() >= STREAM_WORKED {
                    s.quick_cuts = 0;
                }
                if s.quick_cuts < QUICK_CUTS {
                    s.quick_cuts += 1;
                    // It worked until now: a proxy's idle timeout or the engine ended it. Ask
                    // again at once, so that reaction stays event-driven; the replay covers
                    // the moment in between. If the engine is gone, this one fails at once
                    // and takes the back-off below.
                    s.stream_failures = 0;
                    s.subscribed = tokio::time::Instant::now();
                    s.events = Some(s.engine.events(SystemTime::now() - REPLAY).boxed());
                    // It is back when an event comes through, not before.
                    if !std::mem::replace(&mut self.told_stream_cut, true) {
                        info!(error = %why, "the event stream was cut (a proxy's idle \
                            timeout?); subscribed again at once, as after every such cut");
                    } else {
                        debug!(error = %why, "the event stream was cut; subscribed again");
                    }
                    return;
                }
                s.stream_failures += 1;
                s.resubscribe_at =
                    Some(tokio::time::Instant::now() + RECONNECT.after(s.stream_failures));
                if !std::mem::replace(&mut self.told_stream_lost, true) {
                    warn!(error = %why, "lost the event stream; watching by polling \
                        every {}s until it is back", self.config.poll_interval.as_secs_f32());
                } else {
                    debug!(error = %why, "the event stream is still away");
                }
                // Is it the engine that is gone, or only the stream? A list tells, and brings
                // back what the stream would have said.
                self.list(true);
            }
        }
    }

    fn on_operator(&mut self, input: control::Input) {
        match input {
            control::Input::Line(line) => self.feed(Input::Line(line)),
            control::Input::TerminalClosed => self.feed(Input::TerminalClosed),
            control::Input::Request {
                request,
                peer,
                reply,
            } => {
                let commands = self
                    .core
                    .handle(Input::Request { request, by: peer }, now());
                self.carry_out(commands, Some(reply));
            }
        }
    }

    fn feed(&mut self, input: Input) {
        let commands = self.core.handle(input, now());
        self.carry_out(commands, None);
    }

    fn carry_out(
        &mut self,
        commands: Vec<Command>,
        mut reply: Option<oneshot::Sender<control::Reply>>,
    ) {
        for command in commands {
            match command {
                Command::Report(outcome) => {
                    self.audit.report(&outcome);
                    self.tap.report(&outcome);
                }
                Command::Save(saved) => self.state.write(saved),
                Command::Print(text) => audit::print_line(&text),
                Command::Reply(r) => {
                    if let Some(tx) = reply.take() {
                        // The client may have gone; nothing to do about that.
                        let _ = tx.send(r);
                    }
                }
                Command::Inspect(c) => {
                    let Link::Up(s) = &self.link else {
                        // The engine went away in the meantime: the core learns it from
                        // the failed look and looks again when it is back.
                        self.looks.spawn(async move {
                            Done::Core(Box::new(Input::Inspected {
                                container: c,
                                result: Err("the Docker engine is unreachable".into()),
                            }))
                        });
                        continue;
                    };
                    let engine = s.engine.clone();
                    let calls = Arc::clone(&self.calls);
                    self.looks
                        .spawn(task::guarded(c.id.clone(), task::inspect(engine, calls, c)));
                }
                // Not an engine call: a connection of its own, never waiting on the engine's
                // calls or on another container's probe.
                Command::Probe(job) => {
                    self.looks.spawn(async move {
                        let started = tokio::time::Instant::now();
                        let result = crate::probe::run(&job.spec, &job.host, &job.allowed).await;
                        Done::Core(Box::new(Input::Probed(Probed {
                            container_id: job.container_id,
                            run: job.run,
                            result,
                            took: started.elapsed(),
                        })))
                    });
                }
                Command::Withdraw(id) => {
                    if let Some(token) = self.withdraw.get(&id) {
                        token.cancel();
                    }
                }
                Command::Act(act) => {
                    let Link::Up(s) = &self.link else {
                        let took = Duration::ZERO;
                        let result = ActResult::Unreachable {
                            error: "the Docker engine is unreachable".into(),
                        };
                        self.actions.spawn(async move {
                            Done::Core(Box::new(Input::Acted(Acted { act, result, took })))
                        });
                        continue;
                    };
                    let engine = s.engine.clone();
                    let calls = Arc::clone(&self.calls);
                    let withdrawn = CancellationToken::new();
                    self.withdraw
                        .insert(act.seen.container.id.clone(), withdrawn.clone());
                    self.actions
                        .spawn(task::guarded_act(engine, calls, act, withdrawn));
                }
            }
        }
    }
}

/// Whether `c` is one of the targets by its name or its compose labels alone, not knowing the
/// other containers: enough to tell this healthther's recreations from another's.
fn target_by_name(config: &Config, c: &ContainerRef) -> Option<crate::targets::TargetName> {
    struct Alone<'a>(&'a ContainerRef);
    impl crate::targets::Neighbours for Alone<'_> {
        fn name_taken(&self, _: &str) -> bool {
            false
        }
        fn projects_with_service(&self, _: &str) -> std::collections::BTreeSet<String> {
            self.0.project.iter().cloned().collect()
        }
    }
    config.targets.resolve(c, &Alone(c), None).target().cloned()
}

/// The time for the core: the runtime's clock (which tests may pause and advance), and the wall
/// clock.
fn now() -> Now {
    Now {
        at: tokio::time::Instant::now().into_std(),
        wall: SystemTime::now(),
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
