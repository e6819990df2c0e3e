//! Manual mode's decisions, as plain data: the operator's answers, the queue of open prompts, and
//! the standing choices (`always`, `never`, a declined failure). No I/O here.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::policy::Verdict;
use crate::targets::{ContainerRef, TargetName};

/// What an operator can answer to a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// Revive it this once.
    Yes,
    /// Leave it; ask again only on its next failure.
    No,
    /// Revive it now and from then on without asking, until healthther restarts.
    Always,
    /// Never ask about this target again, until healthther restarts.
    Never,
}

pub const CHOICES: &str = "[y]es / [n]o / [a]lways / ne[v]er";

/// The one-line hint shown after an answer that is none of the choices.
pub fn hint(target: &str) -> String {
    format!(
        "Please answer y (revive {target} now), n (leave it), a (revive it now and always, \
         without asking) or v (never ask about {target} again)."
    )
}

/// Parses an answer: the letter or the whole word, in any case, spaces around ignored.
pub fn parse_answer(input: &str) -> Option<Answer> {
    match input.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(Answer::Yes),
        "n" | "no" => Some(Answer::No),
        "a" | "always" => Some(Answer::Always),
        "v" | "never" => Some(Answer::Never),
        _ => None,
    }
}

/// A failure waiting for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub target: TargetName,
    pub container: ContainerRef,
    /// What was seen, e.g. `exited (code 137)`.
    pub seen: String,
    pub verdict: Verdict,
    /// When the failure was seen.
    pub since: SystemTime,
    /// Identifies the failure: the start time of the run that failed. A container that runs
    /// again and fails again has a new one, and so is a new failure.
    pub run: String,
    /// Revivals of this container that failed again soon, lately.
    pub failed_revivals: usize,
}

impl Pending {
    /// `nodo_2` or, for a compose replica, `web (proj-web-2)`.
    pub fn who(&self) -> String {
        if self.container.name == self.target.as_str() {
            self.target.to_string()
        } else {
            format!("{} ({})", self.target, self.container.name)
        }
    }
}

/// The prompt for a pending failure, e.g.
/// `nodo_2 exited (code 137) 3s ago. Revive it? [y]es / [n]o / [a]lways / ne[v]er > `.
pub fn render(p: &Pending, now: SystemTime) -> String {
    let history = match p.failed_revivals {
        0 => String::new(),
        1 => " (1 revival failed lately)".to_string(),
        n => format!(" ({n} revivals failed lately)"),
    };
    format!(
        "{} {} {} ago{history}. {} it? {CHOICES} > ",
        p.who(),
        p.seen,
        ago(now.duration_since(p.since).unwrap_or_default()),
        if p.verdict == Verdict::Restart {
            "Restart"
        } else {
            "Revive"
        },
    )
}

/// A short age: `3s`, `2m05s`, `1h02m`.
pub fn ago(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// What to do about a failure seen in manual mode.
#[derive(Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// The operator said `always` for this target: act without asking.
    Act,
    /// The operator said `never` for this target.
    Ignore,
    /// The operator declined this very failure already.
    Declined,
    /// A prompt for this container is open already.
    AlreadyQueued,
    /// A new prompt; `front` when it is the one to show now.
    Queued { front: bool },
}

/// An answer, applied.
#[derive(Debug, PartialEq, Eq)]
pub struct Answered {
    pub answer: Answer,
    pub prompt: Pending,
    /// Other open prompts of the same target that the answer settles too: approved by
    /// `always`, dropped by `never`.
    pub also: Vec<Pending>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AnswerError {
    NothingOpen,
    NoPromptFor(String),
}

/// The open prompts, oldest first, and the operator's standing choices.
#[derive(Debug, Default)]
pub struct Prompts {
    queue: VecDeque<Pending>,
    always: HashSet<TargetName>,
    never: HashSet<TargetName>,
    /// Container id → the run whose failure the operator declined.
    declined: HashMap<String, String>,
}

impl Prompts {
    pub fn on_failure(&mut self, p: Pending) -> OnFailure {
        if self.always.contains(&p.target) {
            return OnFailure::Act;
        }
        if self.never.contains(&p.target) {
            return OnFailure::Ignore;
        }
        if self.declined.get(&p.container.id) == Some(&p.run) {
            return OnFailure::Declined;
        }
        if self.queue.iter().any(|q| q.container.id == p.container.id) {
            return OnFailure::AlreadyQueued;
        }
        // Oldest failure first, even when a later one was noticed a moment earlier.
        let at = self
            .queue
            .iter()
            .position(|q| q.since > p.since)
            .unwrap_or(self.queue.len());
        self.queue.insert(at, p);
        OnFailure::Queued { front: at == 0 }
    }

    /// The container is well again: its open prompt, if any, is dropped and returned, and a
    /// declined failure is forgotten so its next failure is asked about.
    pub fn resolved(&mut self, container_id: &str) -> Option<Pending> {
        self.declined.remove(container_id);
        let i = self
            .queue
            .iter()
            .position(|q| q.container.id == container_id)?;
        self.queue.remove(i)
    }

    /// The prompt to show now.
    pub fn front(&self) -> Option<&Pending> {
        self.queue.front()
    }

    pub fn open(&self) -> impl Iterator<Item = &Pending> {
        self.queue.iter()
    }

    /// Applies `answer` to the oldest open prompt of `target`, or to the front prompt when
    /// `target` is `None` (the terminal answers what it shows).
    pub fn answer(
        &mut self,
        target: Option<&str>,
        answer: Answer,
    ) -> Result<Answered, AnswerError> {
        let i = match target {
            None => (!self.queue.is_empty()).then_some(0),
            Some(t) => self.queue.iter().position(|q| {
                q.target.as_str() == t || q.container.name == t || q.container.id == t
            }),
        };
        let Some(i) = i else {
            return Err(match target {
                Some(t) => AnswerError::NoPromptFor(t.to_string()),
                None => AnswerError::NothingOpen,
            });
        };
        let Some(prompt) = self.queue.remove(i) else {
            return Err(AnswerError::NothingOpen);
        };
        let mut also = Vec::new();
        match answer {
            Answer::Yes => {}
            Answer::No => {
                self.declined
                    .insert(prompt.container.id.clone(), prompt.run.clone());
            }
            Answer::Always | Answer::Never => {
                if answer == Answer::Always {
                    self.always.insert(prompt.target.clone());
                } else {
                    self.never.insert(prompt.target.clone());
                }
                let (same, rest): (Vec<_>, Vec<_>) = self
                    .queue
                    .drain(..)
                    .partition(|q| q.target == prompt.target);
                self.queue = rest.into();
                also = same;
            }
        }
        Ok(Answered {
            answer,
            prompt,
            also,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Targets;

    fn target(name: &str) -> TargetName {
        Targets::parse(name).unwrap().iter().next().unwrap().clone()
    }

    fn pending(t: &str, id: &str, run: &str) -> Pending {
        Pending {
            target: target(t),
            container: ContainerRef {
                id: id.into(),
                name: t.into(),
                service: None,
            },
            seen: "exited (code 137)".into(),
            verdict: Verdict::Start,
            since: SystemTime::UNIX_EPOCH,
            run: run.into(),
            failed_revivals: 0,
        }
    }

    #[test]
    fn parses_answers() {
        let cases = [
            ("y", Some(Answer::Yes)),
            ("YES", Some(Answer::Yes)),
            ("  Yes \n", Some(Answer::Yes)),
            ("n", Some(Answer::No)),
            ("No", Some(Answer::No)),
            ("a", Some(Answer::Always)),
            ("ALWAYS", Some(Answer::Always)),
            ("v", Some(Answer::Never)),
            ("never", Some(Answer::Never)),
            ("", None),
            ("yess", None),
            ("ye", None),
            ("q", None),
            ("y n", None),
            ("\u{1b}[A", None),
            ("ｙ", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_answer(input), want, "{input:?}");
        }
    }

    #[test]
    fn renders_the_prompt() {
        let mut p = pending("nodo_2", "id2", "r1");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(3);
        assert_eq!(
            render(&p, now),
            "nodo_2 exited (code 137) 3s ago. Revive it? [y]es / [n]o / [a]lways / ne[v]er > "
        );
        p.container.name = "proj-nodo_2-1".into();
        p.verdict = Verdict::Restart;
        p.seen = "running (unhealthy)".into();
        p.failed_revivals = 3;
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(125);
        assert_eq!(
            render(&p, now),
            "nodo_2 (proj-nodo_2-1) running (unhealthy) 2m05s ago (3 revivals failed lately). \
             Restart it? [y]es / [n]o / [a]lways / ne[v]er > "
        );
    }

    #[test]
    fn ages() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m00s"),
            (3599, "59m59s"),
            (3720, "1h02m"),
        ];
        for (s, want) in cases {
            assert_eq!(ago(Duration::from_secs(s)), want);
        }
    }

    #[test]
    fn queues_oldest_first_once_per_container() {
        let mut prompts = Prompts::default();
        assert_eq!(
            prompts.on_failure(pending("a1", "ida", "r")),
            OnFailure::Queued { front: true }
        );
        assert_eq!(
            prompts.on_failure(pending("b1", "idb", "r")),
            OnFailure::Queued { front: false }
        );
        assert_eq!(
            prompts.on_failure(pending("a1", "ida", "r")),
            OnFailure::AlreadyQueued
        );
        assert_eq!(prompts.front().unwrap().target.as_str(), "a1");
        let answered = prompts.answer(None, Answer::Yes).unwrap();
        assert_eq!(answered.prompt.target.as_str(), "a1");
        assert_eq!(prompts.front().unwrap().target.as_str(), "b1");
    }

    #[test]
    fn an_older_failure_noticed_later_goes_first() {
        let mut prompts = Prompts::default();
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let later = Pending {
            since: at(20),
            ..pending("b1", "idb", "r")
        };
        let older = Pending {
            since: at(10),
            ..pending("a1", "ida", "r")
        };
        let newest = Pending {
            since: at(30),
            ..pending("c1", "idc", "r")
        };
        assert_eq!(prompts.on_failure(later), OnFailure::Queued { front: true });
        assert_eq!(
            prompts.on_failure(newest),
            OnFailure::Queued { front: false }
        );
        assert_eq!(prompts.on_failure(older), OnFailure::Queued { front: true });
        let order: Vec<&str> = prompts.open().map(|p| p.target.as_str()).collect();
        assert_eq!(order, ["a1", "b1", "c1"]);
    }

    #[test]
    fn no_declines_this_failure_only() {
        let mut prompts = Prompts::default();
        prompts.on_failure(pending("a1", "ida", "run1"));
        prompts.answer(Some("a1"), Answer::No).unwrap();
        assert_eq!(
            prompts.on_failure(pending("a1", "ida", "run1")),
            OnFailure::Declined
        );
        // It ran again and failed again: a new failure.
        assert_eq!(
            prompts.on_failure(pending("a1", "ida", "run2")),
            OnFailure::Queued { front: true }
        );
    }

    #[test]
    fn declined_is_forgotten_when_well_again() {
        let mut prompts = Prompts::default();
        prompts.on_failure(pending("a1", "ida", "run1"));
        prompts.answer(None, Answer::No).unwrap();
        assert_eq!(prompts.resolved("ida"), None);
        assert_eq!(
            prompts.on_failure(pending("a1", "ida", "run1")),
            OnFailure::Queued { front: true }
        );
    }

    #[test]
    fn always_and_never_stand_for_the_target() {
        let mut prompts = Prompts::default();
        prompts.on_failure(pending("a1", "ida", "r"));
        prompts.on_failure(pending("b1", "idb", "r"));
        let replica = Pending {
            container: ContainerRef {
                id: "ida2".into(),
                name: "p-a1-2".into(),
                service: Some("a1".into()),
            },
            ..pending("a1", "ida2", "r")
        };
        prompts.on_failure(replica);

        let answered = prompts.answer(Some("a1"), Answer::Always).unwrap();
        assert_eq!(
            answered.also.len(),
            1,
            "the replica's prompt is settled too"
        );
        assert_eq!(
            prompts.on_failure(pending("a1", "ida", "r2")),
            OnFailure::Act
        );

        let answered = prompts.answer(Some("b1"), Answer::Never).unwrap();
        assert!(answered.also.is_empty());
        assert_eq!(
            prompts.on_failure(pending("b1", "idb", "r2")),
            OnFailure::Ignore
        );
        assert!(prompts.front().is_none());
    }

    #[test]
    fn resolved_drops_the_open_prompt() {
        let mut prompts = Prompts::default();
        prompts.on_failure(pending("a1", "ida", "r"));
        prompts.on_failure(pending("b1", "idb", "r"));
        assert_eq!(prompts.resolved("ida").unwrap().target.as_str(), "a1");
        assert_eq!(prompts.front().unwrap().target.as_str(), "b1");
        assert_eq!(prompts.resolved("ida"), None);
    }

    #[test]
    fn answering_what_is_not_open() {
        let mut prompts = Prompts::default();
        assert_eq!(
            prompts.answer(None, Answer::Yes),
            Err(AnswerError::NothingOpen)
        );
        prompts.on_failure(pending("a1", "ida", "r"));
        assert_eq!(
            prompts.answer(Some("zz"), Answer::Yes),
            Err(AnswerError::NoPromptFor("zz".into()))
        );
        // By container name works too.
        assert!(prompts.answer(Some("a1"), Answer::Yes).is_ok());
    }
}

/// Fuzzing what an operator may type: every input is an answer or `None`, never a panic.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn answers(raw in "\\PC{0,12}|\\s*(y|yes|n|no|a|always|v|never)\\s*|[\\x00-\\x1f]{0,4}") {
            if let Some(answer) = parse_answer(&raw) {
                let word = raw.trim().to_ascii_lowercase();
                let expected = match answer {
                    Answer::Yes => ["y", "yes"],
                    Answer::No => ["n", "no"],
                    Answer::Always => ["a", "always"],
                    Answer::Never => ["v", "never"],
                };
                prop_assert!(expected.contains(&word.as_str()));
            }
        }
    }
}
