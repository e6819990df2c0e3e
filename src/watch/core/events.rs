//! Events: what the engine's event stream tells of containers, one handler per kind, and the
//! timers, turned into looks; compose taking a project down.

use std::time::{Instant, SystemTime};

use tracing::{debug, info, warn};

use super::event::{Event, EventKind};
use super::outcome::{Cause, Outcome, What};
use super::{
    is_stop_signal, told, ApiKill, Command, Core, Death, Now, OwnStart, Phase, Why, LATE_KILL,
    PROJECT_QUIET, SIGKILL, SIGNAL_RELEVANT, STOP_SETTLE,
};
use crate::config::OnStop;
use crate::policy::Health;
use crate::targets::{ContainerRef, TargetName};

impl Core {
    /// One event of the engine's stream: what is common to every kind (a compose project
    /// stopping, the container's names and labels), then the handler of its kind.
    pub(super) fn on_event(&mut self, event: Event, now: Now, out: &mut Vec<Command>) {
        let Event {
            kind,
            container,
            time,
        } = event;
        // The engine's replay of what happened before this session: its bookkeeping counts,
        // but the dependents' graph and compose's projects follow only what happens now.
        let live = time >= self.session_start;
        if live
            && matches!(
                kind,
                EventKind::Destroy | EventKind::Stop | EventKind::Kill { .. } | EventKind::Die
            )
        {
            self.note_project_stop(&container, kind, now, out);
        }
        let id = container.id.clone();
        if kind == EventKind::Network {
            // Names the container by its id alone: nothing to learn of its name or labels.
            return self.probe_on_network(&id, now);
        }
        if kind == EventKind::Destroy {
            return self.on_destroy(&id, live, now, out);
        }
        if self.upsert(&container) {
            if let Some(r) = self.records.get_mut(&id) {
                if let Phase::Looking { again, .. } | Phase::Acting { again, .. } = &mut r.phase {
                    // What the look or action under way went by is no longer so.
                    *again = true;
                }
            }
            self.retarget(now, out);
        }
        let Some(r) = self.records.get_mut(&id) else {
            return;
        };
        r.heard_of = Some(now.at);
        if kind != EventKind::Start && matches!(r.own_start, Some(OwnStart::Awaited(_))) {
            r.own_start = None;
        }
        if let Some(t) = &r.target {
            debug!(target = %t, container = %r.container.name, event = ?kind, "event");
        }
        match kind {
            EventKind::Create if live => self.network_on_create(&id, out),
            EventKind::Start => self.on_start(&id, time, live, now, out),
            EventKind::Die => self.on_die(&id, time, live, now, out),
            EventKind::Kill { signal } => self.on_kill(&id, signal, now, out),
            EventKind::Stop => self.on_stop(&id, now, out),
            EventKind::Oom => self.on_oom(&id),
            EventKind::Health(h) => self.on_health(&id, h, live, now, out),
            // Podman says after every check that one ran, not how it went: look.
            EventKind::HealthChecked => self.look_at_target(&id, out),
            EventKind::Create
            | EventKind::Destroy
            | EventKind::Rename
            | EventKind::Network
            | EventKind::Other => {}
        }
    }

    fn on_destroy(&mut self, id: &str, live: bool, now: Now, out: &mut Vec<Command>) {
        if let Some(r) = self.records.get(id) {
            if let (Some(t), true) = (&r.target, live) {
                warn!(target = %t, container = %r.container.name, "target container removed");
            }
        }
        self.remove(id, now, out);
        self.retarget(now, out);
    }

    /// It started: what was known of its last death is over, and so is a hold on its stop.
    fn on_start(
        &mut self,
        id: &str,
        time: SystemTime,
        live: bool,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        if live {
            self.network_on_start(id, time, now, out);
        }
        self.probe_on_start(id, time, now, out);
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        r.death = Death::default();
        let Some(target) = r.target.clone() else {
            // No target any more (renamed away while it failed), and it runs again: what was
            // said of its failure is over.
            if r.down_since.take().is_some() {
                out.push(Command::report(Outcome {
                    at: now.wall,
                    target: None,
                    container: Some(r.container.clone()),
                    seen: "running".into(),
                    state: None,
                    down: None,
                    what: What::Recovered,
                }));
            }
            return;
        };
        if std::mem::take(&mut r.held_by_stop) {
            info!(target = %target, container = %r.container.name, "started again: no longer held");
            out.push(Command::report(told(
                now,
                &target,
                &r.container,
                "running".into(),
                What::Resumed {
                    why: "started again".into(),
                },
            )));
        }
        let was_waiting = matches!(r.phase, Phase::Waiting { .. });
        // Our own start's event: the action's own look tells how it went.
        let ours = match (r.own_start, &r.phase) {
            (Some(OwnStart::Sent), Phase::Acting { .. }) => {
                r.own_start = Some(OwnStart::Seen);
                true
            }
            (Some(OwnStart::Awaited(until)), _) if !was_waiting && now.at < until => {
                r.own_start = None;
                true
            }
            _ => false,
        };
        if was_waiting {
            // Someone else started it: whatever we were waiting for is moot.
            r.phase = Phase::Idle;
        }
        if !ours && (was_waiting || r.is_followed()) {
            self.look(id, None, out);
        }
    }

    /// It died: looked at at once, unless whoever stopped it through the API gets a moment.
    fn on_die(&mut self, id: &str, time: SystemTime, live: bool, now: Now, out: &mut Vec<Command>) {
        if live {
            self.network_on_die(id, time);
        }
        self.probe_on_die(id, now);
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        r.death.died = true;
        r.stop_ended(now.at);
        if r.death
            .api_kill
            .is_some_and(|k| now.at >= k.at + SIGNAL_RELEVANT)
        {
            r.death.api_kill = None;
        }
        let Some(target) = r.target.clone() else {
            return;
        };
        match (r.death.settle_until, &r.phase) {
            (
                Some(until),
                Phase::Idle
                | Phase::Due { .. }
                | Phase::Waiting {
                    why: Why::Death, ..
                },
            ) => {
                debug!(target = %target, container = %r.container.name,
                    "stopped through the API; giving whoever stopped it a moment");
                r.phase = Phase::Waiting {
                    until,
                    why: Why::Settle,
                    approval: None,
                };
            }
            // The event it waited for: look now.
            (
                None,
                Phase::Waiting {
                    why: Why::Death, ..
                },
            ) => {
                r.phase = Phase::Idle;
                self.look(id, None, out)
            }
            _ => self.look(id, None, out),
        }
    }

    /// A signal sent through the API: a death that follows is someone else's doing. Every
    /// container's count, targets or not: compose stops a whole project.
    fn on_kill(&mut self, id: &str, signal: Option<i32>, now: Now, out: &mut Vec<Command>) {
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        r.look_is_stale();
        // A kill told of after the death it caused, which was taken for a crash.
        if r.death
            .crash_seen
            .is_some_and(|t| now.at.saturating_duration_since(t) < LATE_KILL)
        {
            if let (Some(t), Some(h)) = (r.death.crash_seen.take(), r.history.as_mut()) {
                h.forgive(t);
            }
            r.last_cause = Some(Cause::ApiKill);
            debug!(container = %r.container.name, "the engine told of an API kill after the death: not the container's failure");
            // A back-off it earned as a crash is lifted: look again, and revive at once.
            if matches!(
                r.phase,
                Phase::Waiting {
                    why: Why::Backoff,
                    ..
                }
            ) {
                r.phase = Phase::Idle;
                r.death.api_kill = Some(ApiKill {
                    graceful: false,
                    stopped: false,
                    at: now.at,
                });
                self.look(id, None, out);
            }
            return;
        }
        // Podman names no signal: its `kill` is SIGKILL by default, and its `stop` tells of
        // itself with a stop event before the death (see `on_stop`).
        let graceful = signal.is_some_and(|s| s != SIGKILL);
        // A signal long before the death (a reload's SIGHUP) did not cause it.
        let k = match r.death.api_kill.filter(|k| now.at < k.at + SIGNAL_RELEVANT) {
            Some(k) => k,
            None => ApiKill {
                graceful: false,
                stopped: false,
                at: now.at,
            },
        };
        r.death.api_kill = Some(ApiKill {
            graceful: k.graceful || graceful,
            at: now.at,
            ..k
        });
        if is_stop_signal(signal) {
            r.death.stopping = Some(now.at);
        }
    }

    /// The engine calls it a stop; under `HEALTH_ON_STOP=hold` a target is held until someone
    /// starts it.
    fn on_stop(&mut self, id: &str, now: Now, out: &mut Vec<Command>) {
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        r.look_is_stale();
        match r.death.api_kill.as_mut() {
            Some(k) => k.stopped = true,
            None => {
                r.death.api_kill = Some(ApiKill {
                    graceful: true,
                    stopped: true,
                    at: now.at,
                })
            }
        }
        // Podman tells of a stop before the death it causes: a stop under way.
        if !r.death.died {
            r.death.stopping = Some(now.at);
        }
        let Some(target) = r.target.clone() else {
            return;
        };
        let on_stop = r.overrides.on_stop(self.config.on_stop);
        if on_stop == OnStop::Hold && !matches!(r.phase, Phase::Acting { .. }) && !r.held_by_stop {
            r.held_by_stop = true;
            if matches!(r.phase, Phase::Waiting { .. }) {
                r.phase = Phase::Idle;
            }
            info!(target = %target, container = %r.container.name,
                "stopped through the engine's API: held until it is started again (HEALTH_ON_STOP=hold)");
            out.push(Command::report(told(
                now,
                &target,
                &r.container,
                "stopped".into(),
                What::Held {
                    by: None,
                    note: "stopped through the engine's API; held until it is started again \
                           (HEALTH_ON_STOP=hold)"
                        .into(),
                },
            )));
        }
    }

    fn on_oom(&mut self, id: &str) {
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        r.death.oom = true;
        if let Some(target) = &r.target {
            warn!(target = %target, container = %r.container.name, "out of memory");
        }
    }

    fn on_health(&mut self, id: &str, h: Health, live: bool, now: Now, out: &mut Vec<Command>) {
        if live {
            self.network_on_health(id, h, now, out);
        }
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        match h {
            Health::Unhealthy => {
                r.death.unhealthy_since.get_or_insert(now.at);
            }
            Health::Healthy => r.death.unhealthy_since = None,
            Health::Starting | Health::None => {}
        }
        if r.target.is_none() {
            return;
        }
        match h {
            Health::Unhealthy => self.look(id, None, out),
            // Only a fresh look tells it is well: a health check that was under way when the
            // container died may still report healthy after the die.
            Health::Healthy if r.is_followed() => self.look(id, None, out),
            _ => {}
        }
    }

    fn look_at_target(&mut self, id: &str, out: &mut Vec<Command>) {
        if self.records.get(id).is_some_and(|r| r.target.is_some()) {
            self.look(id, None, out);
        }
    }

    pub(super) fn on_tick(&mut self, now: Now, out: &mut Vec<Command>) {
        self.probe_due(now, out);
        let ended: Vec<TargetName> = self
            .holds
            .iter()
            .filter(|(_, h)| h.until.is_some_and(|t| t <= now.at))
            .map(|(t, _)| t.clone())
            .collect();
        for t in ended {
            self.end_hold(&t, "the hold's time is up", now, out);
        }
        let due: Vec<(String, Why)> = self
            .records
            .iter()
            .filter_map(|(id, r)| match r.phase {
                Phase::Waiting { until, why, .. } if until <= now.at => Some((id.clone(), why)),
                _ => None,
            })
            .collect();
        for (id, why) in due {
            if let (Why::Settle, Some(until)) = (why, self.project_busy_until(&id, now)) {
                // Compose stops a whole project before removing any of it: wait for the rest.
                if let Some(r) = self.records.get_mut(&id) {
                    r.death.settle_until = Some(until);
                    if let Phase::Waiting { until: u, .. } = &mut r.phase {
                        *u = until;
                    }
                }
                continue;
            }
            let approval = match self.records.get_mut(&id).map(|r| &mut r.phase) {
                Some(Phase::Waiting { approval, .. }) => approval.take(),
                _ => None,
            };
            if let Some(r) = self.records.get_mut(&id) {
                r.phase = Phase::Idle;
            }
            self.look(&id, approval, out);
        }
    }

    /// A stop or removal through the API of a container of a compose project: the project may
    /// be being taken down. A `docker kill` (SIGKILL) is no stop.
    pub(super) fn note_project_stop(
        &mut self,
        c: &ContainerRef,
        kind: EventKind,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        let known = self.records.get(&c.id);
        // Our own restart (or undoing our own start) is no one taking the project down.
        if known.is_some_and(|r| {
            matches!(r.phase, Phase::Acting { .. }) || r.ours_until.is_some_and(|t| now.at < t)
        }) {
            return;
        }
        let Some(project) = known
            .and_then(|r| r.container.project.clone())
            .or_else(|| c.project.clone())
        else {
            return;
        };
        let stop = match kind {
            EventKind::Kill { signal } => is_stop_signal(signal),
            // The death a stop caused; a crash is no stop.
            EventKind::Die => known.is_some_and(|r| {
                r.death
                    .stopping
                    .is_some_and(|t| now.at < t + SIGNAL_RELEVANT)
            }),
            _ => true,
        };
        if stop {
            self.project_stops
                .retain(|_, t| now.at < *t + PROJECT_QUIET);
            // Starts of its containers still waiting for the engine are not sent.
            for (id, r) in &self.records {
                if matches!(r.phase, Phase::Acting { .. })
                    && r.container.project.as_deref() == Some(project.as_str())
                {
                    out.push(Command::Withdraw(id.clone()));
                }
            }
            // Compose lists a service's containers a while before it stops them: one we started
            // just before it may have been listed as stopped, so compose would neither stop it
            // nor be able to remove it. It is stopped again (a second stop changes nothing).
            let service = known.and_then(|r| r.container.service.clone());
            for r in self.records.values_mut() {
                let undo_now = r.container.id != c.id
                    && r.container.project.as_deref() == Some(project.as_str())
                    && r.container.service == service
                    && r.phase == Phase::Idle
                    && !r.death.died
                    && r.death.stopping.is_none()
                    && r.undo
                        .as_ref()
                        .is_some_and(|u| now.at < u.decided + PROJECT_QUIET);
                if let Some(mut act) = r.undo.take_if(|_| undo_now) {
                    act.decided = now.at;
                    r.phase = Phase::Acting {
                        again: false,
                        by_operator: false,
                    };
                    out.push(Command::Act(act));
                }
            }
            self.project_stops.insert(project, now.at);
        }
    }

    /// Until when container `id`'s compose project is being taken down, if it is: a stop
    /// through the API of one of its containers is under way (it has not died yet), or one
    /// was stopped or removed less than [`PROJECT_QUIET`] ago.
    pub(super) fn project_busy_until(&self, id: &str, now: Now) -> Option<Instant> {
        let project = self.records.get(id)?.container.project.as_deref()?;
        let stop_under_way = self.records.values().any(|r| {
            r.container.project.as_deref() == Some(project)
                && r.death
                    .stopping
                    .is_some_and(|t| now.at < t + SIGNAL_RELEVANT)
        });
        if stop_under_way {
            return Some(now.at + STOP_SETTLE);
        }
        self.project_stops
            .get(project)
            .map(|t| *t + PROJECT_QUIET)
            .filter(|t| *t > now.at)
    }
}
