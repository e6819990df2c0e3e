//! An action's end: what came of a start, restart, recreation or stop, and what follows.

use tracing::{error, info, warn};

use super::outcome::{ActResult, Action, Cause, Down, Outcome, What};
use super::{
    short, Act, Acted, Command, Core, LastAction, Now, OwnStart, Phase, Why, OWN_EVENTS_LAG,
};
use crate::backoff::History;
use crate::policy::describe;

impl Core {
    pub(super) fn on_acted(&mut self, acted: Acted, now: Now, out: &mut Vec<Command>) {
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
        let removed = !self.records.contains_key(&c.id);
        let down = match self.records.get_mut(&c.id) {
            _ if undone => None,
            Some(r) => Some(r.failing(now)),
            // Removed meanwhile: a failure told of already ended with it.
            None => Some(match self.removed_acting.remove(&c.id) {
                Some(since) => Down {
                    since,
                    first: false,
                },
                None => Down {
                    since: now.wall,
                    first: true,
                },
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
        let ended = outcome.ends_failure();
        out.push(Command::report(outcome));
        if removed && !undone && !ended {
            // What this action's end said of the container is over with it: it is gone.
            out.push(Command::report(Outcome {
                at: now.wall,
                target: Some(act.target.clone()),
                container: Some(c.clone()),
                seen: "removed".into(),
                state: None,
                down: None,
                what: What::Gone,
            }));
        }

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
}
