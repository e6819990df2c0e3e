//! The operator's prompts and answers: one prompt per failure, asked oldest first, answered
//! from the terminal or the control socket.

use tracing::{debug, info, warn};

use super::outcome::{Approval, What, FILE_ONLY};
use super::{told, would, Command, Core, Now, Watched};
use crate::backoff::History;
use crate::config::Mode;
use crate::control::Reply;
use crate::policy::{describe, Snapshot, Status, Verdict};
use crate::prompt;
use crate::prompt::{Answer, Pending, Token};
use crate::quota::{self, Say};
use crate::targets::TargetName;

impl Core {
    pub(super) fn announce(&mut self) {
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

    /// A target needs action that nobody allowed yet: open a prompt, unless the operator said
    /// `never` for it, or `no` to this very failure.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ask(
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
                let token = p.token.clone();
                r.prompt = None;
                self.close_token(token, "a new failure replaced it".into());
            }
            None => {}
        }
        let token = (self.tokens)();
        if token.is_none() {
            warn!(target = %target, "no random bytes for this prompt's answer token: it can be \
                answered at the terminal or with `healthther answer` only");
        }
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        let pending = Pending {
            token,
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
                token: pending.token.clone(),
                restart: verdict == Verdict::Restart,
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

    pub(super) fn drop_prompt(
        &mut self,
        r: &mut Watched,
        why: &str,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        let Some((p, _)) = r.prompt.take() else {
            return;
        };
        self.close_token(p.token.clone(), format!("it was dropped: {why}"));
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
    pub(super) fn front(&self) -> Option<&Pending> {
        self.queue().into_iter().next().map(|(p, _)| p)
    }

    /// Open prompts, oldest failure first.
    pub(super) fn open_prompts(&self) -> Vec<&Pending> {
        self.queue().into_iter().map(|(p, _)| p).collect()
    }

    /// Open prompts with their place in the queue, oldest failure first.
    pub(super) fn queue(&self) -> Vec<(&Pending, u64)> {
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
    pub(super) fn show_front(&mut self, now: Now, out: &mut Vec<Command>) {
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
    pub(super) fn shown_prompt(&self) -> Option<&Pending> {
        let (id, seq) = self.shown.as_ref()?;
        self.records
            .get(id)?
            .prompt
            .as_ref()
            .filter(|(_, s)| s == seq)
            .map(|(p, _)| p)
    }

    pub(super) fn on_line(&mut self, line: &str, now: Now, out: &mut Vec<Command>) {
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

    /// Applies an operator's answer to the oldest open prompt of `target` (the front one when
    /// `None`), and says what will happen.
    pub(super) fn apply_answer(
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
            let closed = format!("it was answered {} via {by}", answer.word());
            if let Some(r) = self.records.get_mut(sid) {
                if answer == Answer::No {
                    r.declined = Some(p.run.clone());
                }
                if answer == Answer::Never {
                    // The answer is this failure's record; the next one is told as `never`.
                    r.never_told = Some(p.run.clone());
                }
            }
            self.close_token(p.token.clone(), closed);
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

    /// An answer carried back by a chat's button, bound to the prompt whose token it carries.
    /// Any other (another host's, a closed prompt's, a made-up one) does nothing; a bad one
    /// is logged once, with who sent it.
    pub(super) fn answer_by_token(
        &mut self,
        token: &str,
        answer: Answer,
        by: &str,
        now: Now,
        out: &mut Vec<Command>,
    ) -> Reply {
        let Some(token) = Token::parse(token) else {
            self.bad_answer(token, by, "it carries no token healthther makes", now);
            return Reply::error("not an answer to a prompt of healthther's");
        };
        if token.tag() != self.host_tag {
            // Another host's prompt, on a reply topic the fleet shares: not ours to answer.
            debug!(by = %by, "an answer to another host's prompt: not ours");
            return Reply::error("not this host's prompt");
        }
        let open = self
            .records
            .values()
            .find(|r| {
                r.prompt
                    .as_ref()
                    .is_some_and(|(p, _)| p.token.as_ref() == Some(&token))
            })
            .map(|r| r.container.id.clone());
        if let Some(id) = open {
            return match self.apply_answer(Some(&id), answer, by, now, out) {
                Ok(text) => Reply::ok(text),
                Err(e) => Reply::error(e),
            };
        }
        let closed = self
            .closed_tokens
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, why)| why.clone());
        match closed {
            Some(why) => {
                self.bad_answer(
                    token.as_str(),
                    by,
                    &format!("the prompt is closed: {why}"),
                    now,
                );
                Reply::error(format!("this prompt is closed: {why}"))
            }
            None => {
                self.bad_answer(
                    token.as_str(),
                    by,
                    "no prompt of healthther's has this token (another healthther with the same \
                     HEALTH_NOTIFY_HOST on this reply topic would make its answers look so)",
                    now,
                );
                Reply::error("no such prompt")
            }
        }
    }

    /// Logs an answer that does nothing: once per token, so a replayed one is not a flood, and
    /// a few a minute (see [`Quota`]), so made-up ones are not either.
    fn bad_answer(&mut self, token: &str, by: &str, why: &str, now: Now) {
        if self.bad_tokens.iter().any(|t| t == token) {
            return;
        }
        if self.bad_tokens.len() == KEPT_TOKENS {
            self.bad_tokens.pop_front();
        }
        self.bad_tokens.push_back(token.to_string());
        if let Say::Yes { held } = self.bad_quota.take(now.at) {
            warn!(by = %by, answer_ignored = true,
                "an answer that does nothing, from {by}: {why}{}", quota::held_note(held));
        }
    }

    /// A prompt closed: an answer that comes with its token later is told why.
    pub(super) fn close_token(&mut self, token: Option<Token>, why: String) {
        let Some(token) = token else { return };
        if self.closed_tokens.len() == KEPT_TOKENS {
            self.closed_tokens.pop_front();
        }
        self.closed_tokens.push_back((token, why));
    }
}

/// How many closed prompts' tokens are kept to answer late answers, and how many bad tokens
/// are remembered as logged.
const KEPT_TOKENS: usize = 256;
