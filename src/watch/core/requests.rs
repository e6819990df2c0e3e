//! The control socket's requests, and the status rows that answer `status`.

use super::outcome::Cause;
use super::status;
use super::status::{ActionStatus, ContainerStatus, HoldStatus, TargetStatus};
use super::{health_word, Command, Core, Now, Phase, Said, Why, PROBE_SLACK};
use crate::backoff::History;
use crate::config::Mode;
use crate::control::{Reply, Request};
use crate::prompt;
use crate::targets::TargetName;

impl Core {
    pub(super) fn on_request(
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
            Request::AnswerToken { token, answer } => {
                self.answer_by_token(&token, answer, by, now, out)
            }
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

    pub(super) fn pending_list(&self, now: Now) -> Reply {
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
    pub(super) fn probe(&self, now: Now) -> Reply {
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
    pub(super) fn status(&self, json: bool, now: Now) -> Reply {
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

    pub(super) fn target_status(&self, t: &TargetName, now: Now) -> TargetStatus {
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
                held: t
                    .is_selector()
                    .then(|| self.holds.get(&TargetName::of_container(&r.container.name)))
                    .flatten()
                    .map(|h| hold_status(h, now)),
                probe: r.probing.as_ref().map(|p| p.status()),
            })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        let (resolution, ambiguous_projects) = match self.said.get(t) {
            Some(Said::Ambiguous(p)) => ("ambiguous", p.iter().cloned().collect()),
            Some(Said::OptedOut) if containers.is_empty() => ("opted_out", Vec::new()),
            _ if containers.is_empty() => ("missing", Vec::new()),
            _ => ("found", Vec::new()),
        };
        TargetStatus {
            target: t.to_string(),
            resolution,
            ambiguous_projects,
            held: self.holds.get(t).map(|h| hold_status(h, now)),
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

    pub(super) fn not_a_target(&self, name: &str) -> Reply {
        let names: Vec<&str> = self.config.targets.iter().map(TargetName::as_str).collect();
        Reply::error(format!(
            "{name} is not a target; the targets are {}",
            names.join(", ")
        ))
    }
}

fn hold_status(h: &super::Hold, now: Now) -> HoldStatus {
    HoldStatus {
        reason: h.reason.clone(),
        by: h.by.clone(),
        since: status::time(h.since),
        until: h
            .until
            .map(|u| status::time(now.wall + u.saturating_duration_since(now.at))),
    }
}
