//! What the core reports: one typed account of what it did and saw. The audit file, metrics,
//! notifications and alerts all read these types; only `audit.rs` turns one into the audit
//! file's words, so no reader guesses a meaning back from a string.

use std::time::{Duration, SystemTime};

use crate::policy::Mode;
use crate::policy::Snapshot;
use crate::prompt::{Answer, Token};
use crate::targets::{ContainerRef, TargetName};

/// The tracing target of lines that go to the log file but not the console (a prompt's record:
/// the console shows the prompt itself).
pub const FILE_ONLY: &str = "healthther::file_only";

/// One thing that happened to a target or a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub at: SystemTime,
    /// The target it is about; `None` when the container is no target any more.
    pub target: Option<TargetName>,
    /// The container it is about; `None` for what concerns a whole target (holds, forgets).
    pub container: Option<ContainerRef>,
    /// What was seen, for people: `exited (code 137)`.
    pub seen: String,
    /// The state a look found, when one was made.
    pub state: Option<Snapshot>,
    /// The failure it belongs to, when it tells of one.
    pub down: Option<Down>,
    pub what: What,
}

/// A target's failure as the core follows it: from the first time it was told of, until the
/// container runs again or goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Down {
    pub since: SystemTime,
    /// This is the first word of this failure (metrics count a failure once).
    pub first: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum What {
    /// A start, restart, recreation or stop was carried out.
    Acted {
        mode: Mode,
        approval: Approval,
        /// The parent whose revival or replacement it followed.
        parent: Option<Parent>,
        action: Action,
        /// Why it went down, as known when the action ended.
        cause: Cause,
        result: ActResult,
        took: Duration,
    },
    /// A failure not acted on, and why.
    Skipped {
        mode: Option<Mode>,
        /// Who allowed the action that was not taken (only when it was no target any more).
        approval: Option<Approval>,
        cause: Option<Cause>,
        why: Skip,
        note: Option<String>,
    },
    /// Observe mode (or a standing `never`) saw what it would have acted on.
    Observed {
        mode: Mode,
        would: Action,
        /// The operator answered `never` for the target.
        never: bool,
        note: Option<String>,
    },
    /// A prompt for the operator: its text.
    Asked {
        prompt: String,
        /// What its answer buttons carry (see [`Token`]): for the channels that carry answers
        /// back, never written anywhere.
        token: Option<Token>,
        /// Restart (running, unhealthy) rather than start: the buttons say which.
        restart: bool,
    },
    /// The operator answered a prompt (`same_target`: the answer covered this one too).
    Answered {
        answer: Answer,
        by: String,
        same_target: bool,
    },
    /// An open prompt needs no answer any more.
    PromptDropped {
        why: String,
    },
    Quarantined {
        note: String,
    },
    /// Quarantine lifted: by an operator, or (`by` is `None`) because it runs well again.
    Released {
        by: Option<String>,
    },
    /// The target is held: by an operator (`by`), or stopped through the API under
    /// `HEALTH_ON_STOP=hold`.
    Held {
        by: Option<String>,
        note: String,
    },
    /// A hold ended.
    Resumed {
        why: String,
    },
    /// A standing `always` or `never` was forgotten.
    Forgotten {
        answer: Answer,
        by: String,
    },
    /// The container runs again, without an action of ours: its failure is over. Not in the
    /// audit file (nothing was done).
    Recovered,
    /// The container was removed (or replaced by a recreation): what was said of it is over.
    /// Not in the audit file.
    Gone,
}

/// Why a failure was not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// It was no target any more at the look.
    NotATarget,
    Held,
    Quarantined,
    /// Its parent was replaced: it must be recreated, which is not ours to do.
    NeedsRecreate,
    /// A task of a Swarm service: Swarm's to replace.
    SwarmTask,
    /// A dependent that lost its network but is no target.
    DependentNotATarget,
}

impl Outcome {
    /// Whether this ends the failure of its container: it runs again, or went.
    pub fn ends_failure(&self) -> bool {
        match &self.what {
            What::Acted { result, .. } => matches!(
                result,
                ActResult::Running
                    | ActResult::Recreated { .. }
                    | ActResult::AlreadyRunning
                    | ActResult::Removed
                    | ActResult::LeftStopped { .. }
            ),
            What::Recovered | What::Gone => true,
            _ => false,
        }
    }
}

/// Outcomes as the core reports them, for the tests of what reads them.
/// Who allowed an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// MODE=auto.
    Auto,
    /// The operator once answered `always` for this target.
    Always,
    /// The operator answered this very prompt.
    Operator { answer: Answer, by: String },
    /// The operator's answer for its parent, which covers the restart of its dependents (no
    /// second prompt); unlike an answer for itself, back-off and quarantine still apply.
    WithParent { by: String },
}

impl Approval {
    /// For the logs and the audit file's `by`.
    pub fn by(&self) -> String {
        match self {
            Approval::Auto => "auto".into(),
            Approval::Always => "operator: always".into(),
            Approval::Operator { answer, by } => format!("operator: {} via {by}", answer.word()),
            Approval::WithParent { by } => by.clone(),
        }
    }
}

/// A container another one shares the network namespace of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    pub id: String,
    pub name: String,
}

/// Why a target went down, from the engine's own events and state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Killed through the API (`docker kill`): a chaos test, an operator. Not its fault.
    ApiKill,
    /// Stopped through the API (`docker stop`, compose): not its fault either.
    ApiStop,
    /// It exited or died by itself: a crash, an exit, a kill from the host.
    Crash,
    /// The kernel killed it for memory.
    Oom,
    /// Its health check failed.
    Unhealthy,
    /// Its probe (`healthther.probe`) failed `retries` times in a row.
    Probe,
    /// It runs, but the container whose network it shares started again: it lost its network.
    ParentRestarted,
    /// The container whose network it shared was replaced: it cannot start again as it is.
    ParentRecreated,
}

impl Cause {
    pub fn word(self) -> &'static str {
        match self {
            Cause::ApiKill => "api_kill",
            Cause::ApiStop => "api_stop",
            Cause::Crash => "crash",
            Cause::Oom => "oom",
            Cause::Unhealthy => "unhealthy",
            Cause::Probe => "probe",
            Cause::ParentRestarted => "parent_restarted",
            Cause::ParentRecreated => "parent_recreated",
        }
    }

    /// Whether the container itself failed: only such failures count toward back-off and
    /// quarantine. A death someone caused through the API says nothing about the container.
    pub fn is_its_own(self) -> bool {
        !matches!(
            self,
            Cause::ApiKill | Cause::ApiStop | Cause::ParentRestarted | Cause::ParentRecreated
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    /// Stop (waiting the stop timeout) and start, for a running container that is unhealthy.
    Restart,
    /// Create it again, with its exact configuration, joined to its parent's successor.
    Recreate,
    /// Stop it again: our own start of it ended while its compose project was being taken
    /// down, and compose cannot remove a running container.
    Stop,
}

impl Action {
    pub fn word(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Restart => "restart",
            Action::Recreate => "recreate",
            Action::Stop => "stop",
        }
    }
}

/// What came of an action.
#[derive(Debug, Clone, PartialEq)]
pub enum ActResult {
    /// It runs again.
    Running,
    /// Recreated: the new container, which runs.
    Recreated { id: String },
    /// Stopped again ([`Action::Stop`]).
    Stopped,
    /// Not started: withdrawn ([`Command::Withdraw`]) before the start was sent.
    Withdrawn,
    /// The engine did nothing: it was running already (someone else started it first).
    AlreadyRunning,
    /// Started, but a look right after found it so (the engine's error, if it gave one).
    NotRunning { seen: String, error: Option<String> },
    /// It was removed meanwhile.
    Removed,
    /// Stopped for a restart, then not started: it was renamed or relabelled meanwhile, so it
    /// may be no target any more.
    LeftStopped { now: String },
    /// The engine refused the call; `denied` when it said 401 or 403 (a socket proxy's rules).
    Failed { error: String, denied: bool },
    /// The engine did not answer the call (gone, or too slow): nothing is known of the
    /// container, and nothing is held against it.
    Unreachable { error: String },
    /// The call went through, but the look after it failed.
    Unknown { error: String },
}

impl ActResult {
    pub fn word(&self) -> String {
        match self {
            ActResult::Running | ActResult::Recreated { .. } => "running".into(),
            ActResult::AlreadyRunning => "already_running".into(),
            ActResult::NotRunning { seen, .. } => seen.clone(),
            ActResult::Removed => "removed".into(),
            ActResult::Stopped => "stopped".into(),
            ActResult::Withdrawn => "withdrawn".into(),
            ActResult::LeftStopped { .. } => "left_stopped".into(),
            ActResult::Failed { .. } | ActResult::Unreachable { .. } => "failed".into(),
            ActResult::Unknown { .. } => "unknown".into(),
        }
    }

    pub fn error(&self) -> Option<String> {
        match self {
            ActResult::NotRunning { error, .. } => error.clone(),
            ActResult::Failed { error, .. }
            | ActResult::Unknown { error }
            | ActResult::Unreachable { error } => Some(error.clone()),
            ActResult::LeftStopped { now } => Some(format!(
                "renamed or relabelled since the look; now {now}; not started"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
pub mod sample {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::targets::TargetName;

    /// The kinds of outcome the samples stand for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        Action,
        Skipped,
        Prompt,
        Answer,
        Hold,
    }

    /// An outcome about `target`, as the core would report it, by the audit file's words for
    /// it: `event`, and `result` for an action or a skip.
    pub fn record(event: Kind, target: &str, result: Option<&str>) -> Outcome {
        let c = ContainerRef {
            id: format!("{target}-id"),
            name: target.to_string(),
            ..ContainerRef::default()
        };
        let what = match event {
            Kind::Action => What::Acted {
                mode: Mode::Auto,
                approval: Approval::Auto,
                parent: None,
                action: Action::Start,
                cause: Cause::Crash,
                result: match result {
                    Some("running") => ActResult::Running,
                    Some("failed") => ActResult::Failed {
                        error: "refused".into(),
                        denied: false,
                    },
                    other => ActResult::NotRunning {
                        seen: other.unwrap_or("exited").into(),
                        error: None,
                    },
                },
                took: Duration::from_millis(12),
            },
            Kind::Skipped => What::Skipped {
                mode: Some(Mode::Auto),
                approval: None,
                cause: None,
                why: match result {
                    Some("held") => Skip::Held,
                    Some("quarantined") => Skip::Quarantined,
                    _ => Skip::NotATarget,
                },
                note: None,
            },
            Kind::Prompt => What::Asked {
                prompt: "nodo_1 exited".into(),
                token: None,
                restart: false,
            },
            Kind::Answer => What::Answered {
                answer: Answer::Yes,
                by: "terminal".into(),
                same_target: false,
            },
            Kind::Hold => What::Held {
                by: Some("test".into()),
                note: "maintenance".into(),
            },
        };
        // As the core tells it: each of these is the first word of a failure.
        let failure = match &what {
            What::Acted { .. } | What::Asked { .. } => true,
            What::Skipped { why, .. } => matches!(why, Skip::Held | Skip::Quarantined),
            _ => false,
        };
        Outcome {
            at: SystemTime::UNIX_EPOCH,
            target: Some(TargetName::unchecked(target)),
            container: Some(c),
            seen: "exited (code 137)".into(),
            state: None,
            down: failure.then_some(Down {
                since: SystemTime::UNIX_EPOCH,
                first: true,
            }),
            what,
        }
    }
}
