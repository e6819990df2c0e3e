//! Deciding: a look at a container, and what its state calls for (act, ask, wait, report).

use std::time::Duration;

use tracing::{debug, error, info, warn};

use super::dependents::NetworkFix;
use super::graph;
use super::outcome::{Action, Approval, Cause, Outcome, Parent, Skip, What};
use super::{
    not_acted_on, short, told, would, Act, ApiKill, Command, Core, NetLoss, Now, OwnStart, Phase,
    SeenState, Why, DIE_WAIT, LABEL_STOP_CAP, SIGNAL_RELEVANT, STOP_SETTLE,
};
use crate::backoff::{History, Plan, GRACE};
use crate::config::ActOn;
use crate::config::Mode;
use crate::policy::{classify, describe, ran_for, Health, Snapshot, Status, Verdict};
use crate::targets::{ContainerRef, TargetName};

impl Core {
    pub(super) fn on_inspected(
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
        r.heard_of = Some(now.at);
        if snapshot.network_parent.is_some() {
            r.network_parent = snapshot.network_parent.clone();
        }
        r.host_network = snapshot.host_network;
        // A look taken before its last start (answered late) saw an earlier run: its addresses
        // may be someone else's by now. The engine writes StartedAt a moment before it tells
        // of the start; a second of slack covers that.
        let earlier_run = r.run_started.is_some_and(|started| {
            snapshot
                .started_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .is_some_and(|s| s + Duration::from_secs(1) < started)
        });
        if !earlier_run {
            // One that does not run has no address: said, so that nobody waits for one.
            r.addresses = match snapshot.status {
                Status::Running => snapshot.addresses.clone(),
                _ => Vec::new(),
            };
            r.addresses_at = Some(now.at);
        }
        r.has_check |= snapshot.has_check;
        self.probe_seen(&id, &snapshot.status, now);
        let Some(r) = self.records.get_mut(&id) else {
            return;
        };
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

    /// Looks at a container: an inspect now, or as soon as the engine answers. A look under
    /// way is followed by another; an operator's approval is kept for the look that decides.
    pub(super) fn look(&mut self, id: &str, approval: Option<Approval>, out: &mut Vec<Command>) {
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
    pub(super) fn decide(
        &mut self,
        id: &str,
        mut s: Snapshot,
        approval: Option<Approval>,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        // A failing probe makes a running container unhealthy, as a failing HEALTHCHECK does.
        let probe_failing = s.status == Status::Running
            && self
                .records
                .get(id)
                .and_then(|r| r.probing.as_ref())
                .is_some_and(|p| p.failing);
        if probe_failing {
            s.probe_error = self
                .records
                .get(id)
                .and_then(|r| r.probing.as_ref())
                .and_then(|p| p.error());
        }
        let verdict = match classify(&s) {
            Verdict::Fine | Verdict::Wait if probe_failing => Verdict::Restart,
            v => v,
        };
        let limits = self.config.limits;
        let fix = self.network_fix(id, s.started_at.as_deref());
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        let mut mode = r.overrides.mode(self.config.mode);
        // Acting on unhealthy containers only (autoheal's way): a stopped one is recorded.
        let unhealthy_only = self.config.act_on == ActOn::Unhealthy && verdict == Verdict::Start;
        if unhealthy_only && mode == Mode::Auto {
            mode = Mode::Observe;
        }
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
        if s.health != Health::Unhealthy && !probe_failing {
            r.death.unhealthy_since = None;
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
                    out.push(Command::report(needs_recreate(
                        &target, &s, mode, note, now,
                    )));
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
                    out.push(Command::report(needs_recreate(
                        &target, &s, mode, note, now,
                    )));
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
                .or_else(|| {
                    // One container a selector chose, held alone by its name.
                    target
                        .is_selector()
                        .then(|| self.holds.get(&TargetName::of_container(&r.container.name)))
                        .flatten()
                })
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
                    let why = if unhealthy_only {
                        "HEALTH_ACT_ON=unhealthy"
                    } else {
                        "MODE=observe"
                    };
                    warn!(target = %target, container = %s.container.name, seen = %describe(&s),
                        "observed ({why}): would {verdict}, but does not act");
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
                let since = *r.death.unhealthy_since.get_or_insert(now.at);
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
        let quiet_until = self.epoch.at + self.config.start_period;
        if now.at < quiet_until && !by_operator {
            debug!(target = %target, container = %s.container.name,
                "in the start period: no action before it ends");
            r.phase = Phase::Waiting {
                until: quiet_until,
                why: Why::StartPeriod,
                approval,
            };
            return;
        }
        if s.status != Status::Running {
            // The look may have been under way before its die event came.
            r.stop_ended(now.at);
        }
        if let Some(until) = r.death.settle_until.filter(|t| *t > now.at && !by_operator) {
            // It was stopped through the API a moment ago (the look was under way already).
            r.phase = Phase::Waiting {
                until,
                why: Why::Settle,
                approval,
            };
            return;
        }
        if s.status == Status::Running
            && !by_operator
            && r.death
                .stopping
                .is_some_and(|t| now.at < t + SIGNAL_RELEVANT)
        {
            // A stop through the API is under way (`docker stop` with its timeout): the
            // container winds down, a server closes its listener first, and its probe or check
            // fails meanwhile. Whoever stopped it decides; its death tells what comes next.
            debug!(target = %target, container = %s.container.name,
                "a stop through the API is under way; not acting on it meanwhile");
            r.phase = Phase::Waiting {
                until: now.at + STOP_SETTLE,
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
            && !r.death.died
            && !by_operator
            && self.synced
            && !std::mem::replace(&mut r.death.awaited_die, true)
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
        } else if verdict == Verdict::Restart && s.health != Health::Unhealthy && probe_failing {
            Cause::Probe
        } else if verdict == Verdict::Restart {
            Cause::Unhealthy
        } else if s.oom_killed || r.death.oom {
            Cause::Oom
        } else {
            match r.death.api_kill {
                Some(ApiKill { stopped: true, .. } | ApiKill { graceful: true, .. }) => {
                    Cause::ApiStop
                }
                Some(_) => Cause::ApiKill,
                None => Cause::Crash,
            }
        };
        r.last_cause = Some(cause);
        r.death.crash_seen = (cause == Cause::Crash).then_some(now.at);
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
    pub(super) fn settle(
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
    pub(super) fn report(
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
            r.death.settle_until = None;
            if r.death.stopping.is_none() {
                r.death.api_kill = None;
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
}

/// A dependent whose parent was replaced or went: not started, since a start cannot work.
fn needs_recreate(
    target: &TargetName,
    s: &Snapshot,
    mode: Mode,
    note: String,
    now: Now,
) -> Outcome {
    let mut outcome = not_acted_on(target, s, mode, Skip::NeedsRecreate, note, now);
    if let What::Skipped { cause, .. } = &mut outcome.what {
        *cause = Some(Cause::ParentRecreated);
    }
    outcome
}
