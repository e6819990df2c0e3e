//! What the core reports: one typed account of what it did and saw. The audit file, metrics,
//! notifications and alerts all read these types; only `audit.rs` turns one into the audit
//! file's words, so no reader guesses a meaning back from a string.

use std::time::{Duration, SystemTime};

use super::{ActResult, Action, Approval, Cause, Parent};
use crate::config::Mode;
use crate::policy::Snapshot;
use crate::prompt::Answer;
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
