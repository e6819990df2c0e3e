//! The loop's side of talking to the operator: prompts on the console, answers from the
//! terminal and the control socket, `pending`, `probe` and `release`.

use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::task::Approval;
use super::Watch;
use crate::audit::{self, now_rfc3339, EventRecord};
use crate::config::Mode;
use crate::control::{Input, Reply, Request};
use crate::policy::{Snapshot, Verdict};
use crate::prompt::{self, Answer, AnswerError, OnFailure, Pending};
use crate::targets::TargetName;

/// How late the loop's last pass may be, beyond two poll periods, for `probe` to call it alive.
const PROBE_SLACK: Duration = Duration::from_secs(10);

impl Watch {
    /// A target needs action that nobody allowed yet: queue a prompt, unless the operator
    /// already said `always` or `never` for it, or `no` to this very failure.
    pub(super) fn ask(&mut self, target: &TargetName, s: &Snapshot, verdict: Verdict) {
        let pending = self.pending(target, s, verdict);
        match self.prompts.on_failure(pending.clone()) {
            OnFailure::Act => {
                self.check(s.container.clone(), target.clone(), Some(Approval::Always));
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
                info!(target: audit::FILE_ONLY, target = %target, container = %s.container.name,
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

    pub(super) fn drop_prompt(&mut self, container_id: &str, why: &str) {
        let Some(p) = self.prompts.resolved(container_id) else {
            return;
        };
        info!(target = %p.target, container = %p.container.name, "dropping the prompt: {why}");
        self.record_prompt("prompt_dropped", &p, None, None, Some(why));
        self.show_front();
    }

    /// Shows the oldest open prompt, unless it is already on the console or an approved action
    /// is still under way.
    pub(super) fn show_front(&mut self) {
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
        audit::print_line(&prompt::render(p, SystemTime::now()));
    }

    pub(super) fn tell_how_to_answer(&mut self, why: &str) {
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

    pub(super) fn on_input(&mut self, input: Input) {
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
            Request::Pending => self.pending_list(),
            Request::Probe => self.probe(),
            Request::Release { target } => self.release(&target, peer),
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

    fn pending_list(&self) -> Reply {
        let now = SystemTime::now();
        let lines: Vec<String> = self
            .prompts
            .open()
            .map(|p| {
                let age = prompt::ago(now.duration_since(p.since).unwrap_or_default());
                format!("{}\t{}\t{} ago", p.who(), p.seen, age)
            })
            .collect();
        if !lines.is_empty() {
            return Reply::ok(lines.join("\n"));
        }
        Reply::ok(match self.config.mode {
            Mode::Manual => "no open prompts",
            Mode::Auto => "no open prompts (MODE=auto revives without asking)",
        })
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

    /// Lifts the quarantine of every container of `target` and checks them at once.
    fn release(&mut self, target: &str, peer: &str) -> Reply {
        let mut released = Vec::new();
        for c in self.known.values() {
            let Some(t) = self.config.targets.target_of(c, self.known.values()) else {
                continue;
            };
            if t.as_str() != target && c.name != target {
                continue;
            }
            if self.histories.get_mut(&c.id).is_some_and(|h| h.release()) {
                released.push((t.clone(), c.clone()));
            }
        }
        if released.is_empty() {
            return Reply::error(format!("{target} is not quarantined"));
        }
        let mut names = Vec::new();
        for (t, c) in released {
            info!(target = %t, container = %c.name, by = %peer, "released from quarantine");
            let note = format!("released by {peer}");
            self.record_event("release", &t, &c, "", Some(&note));
            names.push(c.name.clone());
            self.check(c, t, None);
        }
        Reply::ok(format!("released {}; checking it now", names.join(", ")))
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
        info!(target = %p.target, container = %p.container.name, by = %by,
            "operator answered: {what}");
        if acts {
            let approval = Approval::Operator {
                answer,
                by: by.to_string(),
            };
            for q in std::iter::once(p).chain(&answered.also) {
                self.check(
                    q.container.clone(),
                    q.target.clone(),
                    Some(approval.clone()),
                );
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
        self.audit.record(&EventRecord {
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
}
