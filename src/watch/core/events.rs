//! Events: what the engine tells of containers (its event stream, its lists) and the
//! timers, turned into looks; compose taking a project down; which containers are targets.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use tracing::{debug, info, warn};

use super::event::{Event, EventKind};
use super::outcome::{Cause, Skip, What};
use super::{
    is_stop_signal, told, ApiKill, Command, Core, Now, OwnStart, Phase, Said, SeenState, View,
    Watched, Why, LATE_KILL, PROJECT_QUIET, SIGKILL, SIGNAL_RELEVANT, STOP_SETTLE,
};
use crate::config::OnStop;
use crate::overrides;
use crate::policy::{needs_inspection, Health, Listed, Status};
use crate::targets::Neighbours;
use crate::targets::{ContainerRef, Resolution, TargetName};

impl Core {
    pub(super) fn on_listed(
        &mut self,
        full: bool,
        listed: Vec<Listed>,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        debug!(containers = listed.len(), full, "reconcile pass");
        self.last_pass = Some(now.at);
        self.synced |= full;
        if full {
            let present: HashSet<&str> = listed.iter().map(|l| l.container.id.as_str()).collect();
            let gone: Vec<String> = self
                .records
                .keys()
                .filter(|id| !present.contains(id.as_str()))
                .cloned()
                .collect();
            for id in gone {
                self.remove(&id, now, out);
            }
        }
        for l in &listed {
            self.upsert(&l.container);
            if let Some(r) = self.records.get_mut(&l.container.id) {
                if l.status != Status::Running {
                    // Perhaps before its die event: Docker 26 tells of the stop first.
                    r.stop_ended(now.at);
                }
                if l.network_parent.is_some() {
                    r.network_parent = l.network_parent.clone();
                }
                let since = r
                    .state
                    .as_ref()
                    .filter(|st| st.status == l.status)
                    .and_then(|st| st.since);
                r.has_check |= l.health != Health::None;
                r.state = Some(SeenState {
                    status: l.status.clone(),
                    health: l.health,
                    since,
                });
            }
        }
        if full {
            // Histories of containers that no longer exist are not brought back.
            for (id, history) in std::mem::take(&mut self.restored) {
                if let Some(r) = self.records.get_mut(&id) {
                    r.history = Some(history);
                }
            }
        }
        if full && !self.listed {
            self.listed = true;
            self.announce();
        }
        self.retarget(now, out);
        let unwell: HashSet<&str> = listed
            .iter()
            .filter(|l| needs_inspection(l))
            .map(|l| l.container.id.as_str())
            .collect();
        // Unwell targets, and those we follow even when the list left them out: the list may
        // predate their failure, so only a fresh look tells that they are well (and, after a
        // revival, well for long enough that their history can go).
        let to_look: Vec<String> = self
            .records
            .iter()
            .filter(|(id, r)| {
                r.target.is_some()
                    && (unwell.contains(id.as_str())
                        || r.is_followed()
                        || matches!(r.phase, Phase::Due { .. }))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in to_look {
            self.look(&id, None, out);
        }
    }

    pub(super) fn on_event(&mut self, event: Event, now: Now, out: &mut Vec<Command>) {
        let Event {
            kind,
            container,
            time,
        } = event;
        let replay = time < self.session_start;
        if !replay
            && matches!(
                kind,
                EventKind::Destroy | EventKind::Stop | EventKind::Kill { .. } | EventKind::Die
            )
        {
            self.note_project_stop(&container, kind, now, out);
        }
        if kind == EventKind::Destroy {
            if let Some(r) = self.records.get(&container.id) {
                if let (Some(t), false) = (&r.target, replay) {
                    warn!(target = %t, container = %r.container.name, "target container removed");
                }
            }
            self.remove(&container.id, now, out);
            self.retarget(now, out);
            return;
        }
        let changed = self.upsert(&container);
        if changed {
            if let Some(r) = self.records.get_mut(&container.id) {
                if let Phase::Looking { again, .. } | Phase::Acting { again, .. } = &mut r.phase {
                    // What the look or action under way went by is no longer so.
                    *again = true;
                }
            }
            self.retarget(now, out);
        }
        if !replay {
            self.follow_network(&container.id, kind, time, now, out);
        }
        let Some(r) = self.records.get_mut(&container.id) else {
            return;
        };
        if kind != EventKind::Start && matches!(r.own_start, Some(OwnStart::Awaited(_))) {
            r.own_start = None;
        }
        // Every container's stops count, targets or not: compose stops a whole project.
        match kind {
            // A kill told of after the death it caused, which was taken for a crash.
            EventKind::Kill { .. }
                if r.crash_seen
                    .is_some_and(|t| now.at.saturating_duration_since(t) < LATE_KILL) =>
            {
                if let (Some(t), Some(h)) = (r.crash_seen.take(), r.history.as_mut()) {
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
                    r.api_kill = Some(ApiKill {
                        graceful: false,
                        stopped: false,
                        at: now.at,
                    });
                    self.look(&container.id, None, out);
                    return;
                }
            }
            EventKind::Kill { signal } => {
                // Podman names no signal: its `kill` is SIGKILL by default, and its `stop`
                // tells of itself with a stop event before the death (below).
                let graceful = signal.is_some_and(|s| s != SIGKILL);
                // A signal long before the death (a reload's SIGHUP) did not cause it.
                let k = match r.api_kill.filter(|k| now.at < k.at + SIGNAL_RELEVANT) {
                    Some(k) => k,
                    None => ApiKill {
                        graceful: false,
                        stopped: false,
                        at: now.at,
                    },
                };
                r.api_kill = Some(ApiKill {
                    graceful: k.graceful || graceful,
                    at: now.at,
                    ..k
                });
                if is_stop_signal(signal) {
                    r.stopping = Some(now.at);
                }
            }
            EventKind::Stop => {
                match r.api_kill.as_mut() {
                    Some(k) => k.stopped = true,
                    None => {
                        r.api_kill = Some(ApiKill {
                            graceful: true,
                            stopped: true,
                            at: now.at,
                        })
                    }
                }
                // Podman tells of a stop before the death it causes: a stop under way.
                if !r.died {
                    r.stopping = Some(now.at);
                }
            }
            EventKind::Oom => r.oom = true,
            EventKind::Die => {
                r.died = true;
                r.stop_ended(now.at);
                if r.api_kill.is_some_and(|k| now.at >= k.at + SIGNAL_RELEVANT) {
                    r.api_kill = None;
                }
            }
            EventKind::Start => {
                r.died = false;
                r.awaited_die = false;
                r.stopping = None;
                r.crash_seen = None;
                r.settle_until = None;
                r.unhealthy_since = None;
                r.api_kill = None;
                r.oom = false;
            }
            EventKind::Health(Health::Unhealthy) => {
                r.unhealthy_since.get_or_insert(now.at);
            }
            EventKind::Health(Health::Healthy) => r.unhealthy_since = None,
            _ => {}
        }
        let Some(target) = r.target.clone() else {
            return;
        };
        let on_stop = r.overrides.on_stop(self.config.on_stop);
        if kind == EventKind::Stop
            && on_stop == OnStop::Hold
            && !matches!(r.phase, Phase::Acting { .. })
            && !r.held_by_stop
        {
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
            return;
        }
        if kind == EventKind::Start && std::mem::take(&mut r.held_by_stop) {
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
        debug!(target = %target, container = %r.container.name, event = ?kind, "event");
        match kind {
            EventKind::Die => match (r.settle_until, &r.phase) {
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
                    self.look(&container.id, None, out)
                }
                _ => self.look(&container.id, None, out),
            },
            EventKind::Oom => {
                warn!(target = %target, container = %r.container.name, "out of memory")
            }
            EventKind::Start => {
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
                    self.look(&container.id, None, out);
                }
            }
            // Podman says after every check that one ran, not how it went: look.
            EventKind::Health(Health::Unhealthy) | EventKind::HealthChecked => {
                self.look(&container.id, None, out)
            }
            // Only a fresh look tells it is well: a health check that was under way when the
            // container died may still report healthy after the die.
            EventKind::Health(Health::Healthy) if r.is_followed() => {
                self.look(&container.id, None, out)
            }
            _ => {}
        }
    }

    pub(super) fn on_tick(&mut self, now: Now, out: &mut Vec<Command>) {
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
                    r.settle_until = Some(until);
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
            EventKind::Die => {
                known.is_some_and(|r| r.stopping.is_some_and(|t| now.at < t + SIGNAL_RELEVANT))
            }
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
                    && !r.died
                    && r.stopping.is_none()
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
                && r.stopping.is_some_and(|t| now.at < t + SIGNAL_RELEVANT)
        });
        if stop_under_way {
            return Some(now.at + STOP_SETTLE);
        }
        self.project_stops
            .get(project)
            .map(|t| *t + PROJECT_QUIET)
            .filter(|t| *t > now.at)
    }

    /// Takes in what the engine says a container is called and labelled; returns whether that
    /// changed anything (or the container is new to us).
    pub(super) fn upsert(&mut self, c: &ContainerRef) -> bool {
        match self.records.get_mut(&c.id) {
            Some(r) if r.container.same_identity(c) => false,
            Some(r) => {
                r.container = c.clone();
                true
            }
            None => {
                let mut r = Watched::new(c.clone());
                // A bad label is said when the container becomes a target (in `retarget`):
                // other people's containers are none of healthther's business.
                r.overrides = overrides::parse(&c.labels).0;
                self.records.insert(c.id.clone(), r);
                true
            }
        }
    }

    /// Forgets a container that is gone, with its prompt.
    pub(super) fn remove(&mut self, id: &str, now: Now, out: &mut Vec<Command>) {
        if let Some(mut r) = self.records.remove(id) {
            self.drop_prompt(&mut r, "the container was removed", now, out);
            if let (Some(t), Some(_)) = (&r.target, r.down_since) {
                // Its failure is over with it (a removal, or compose replacing it).
                out.push(Command::report(told(
                    now,
                    t,
                    &r.container,
                    "removed".into(),
                    What::Gone,
                )));
            }
            self.remember_parent(&r);
            self.parent_removed(id, now, out);
        }
    }

    /// Decides again which containers are targets, after names or labels changed. A container
    /// that stopped being one loses its back-off, prompt and schedule.
    pub(super) fn retarget(&mut self, now: Now, out: &mut Vec<Command>) {
        let mut view = View {
            names: HashSet::new(),
            services: HashMap::new(),
        };
        for r in self.records.values() {
            view.names.insert(r.container.name.clone());
            if let (Some(s), false) = (&r.container.service, r.container.is_compose_transient()) {
                view.services
                    .entry(s.clone())
                    .or_default()
                    .insert(r.container.project.clone().unwrap_or_default());
            }
        }
        let targets = &self.config.targets;
        let own = self.own_project.as_deref();
        let mut ambiguous: HashMap<TargetName, BTreeSet<String>> = HashMap::new();
        let mut found: HashMap<TargetName, BTreeSet<String>> = HashMap::new();
        let mut changes = Vec::new();
        for (id, r) in &self.records {
            if crate::recreate::is_temporary_name(&r.container.name) {
                // A replacement our own recreation made, not in its place yet (or one a crash
                // cut short, for the start-up repair): no target while it has that name, and a
                // container renamed so keeps what it was, its back-off with it.
                continue;
            }
            let now_target = match targets.resolve(&r.container, &view, own) {
                Resolution::Target(t) => {
                    found
                        .entry(t.clone())
                        .or_default()
                        .insert(r.container.name.clone());
                    Some(t.clone())
                }
                Resolution::Ambiguous(t) => {
                    // Every project that has the service makes the name ambiguous, also one
                    // whose container is a scoped target (`p1/web`) and so resolves to that.
                    let service = r.container.service.as_deref().unwrap_or_default();
                    ambiguous
                        .entry(t.clone())
                        .or_default()
                        .extend(view.projects_with_service(service));
                    None
                }
                Resolution::None => None,
            };
            if now_target != r.target {
                changes.push((id.clone(), now_target));
            }
        }
        for (id, now_target) in changes {
            let Some(mut r) = self.records.remove(&id) else {
                continue;
            };
            match (&r.target, &now_target) {
                (Some(was), _) => {
                    let now_is = match &now_target {
                        Some(t) => format!("now counts as {t}"),
                        None => "is no longer a target".to_string(),
                    };
                    info!(target = %was, container = %r.container.name,
                        "{} {now_is} (it was {was}); forgetting its back-off, prompt and schedule",
                        r.container.name);
                    r.history = None;
                    r.reported = None;
                    r.declined = None;
                    self.drop_prompt(&mut r, "it is no longer a target", now, out);
                    match &mut r.phase {
                        Phase::Waiting { .. } | Phase::Due { .. } => r.phase = Phase::Idle,
                        // An answer given for what it was is no answer for what it is now (with no
                        // target at all, it is kept only to record that it was not acted on).
                        Phase::Looking { approval, .. } if now_target.is_some() => *approval = None,
                        _ => {}
                    }
                }
                (None, Some(t)) => {
                    debug!(target = %t, container = %r.container.name, "a container of this target");
                    // Labels never change, so this is said once per container (again only if it
                    // stops being a target and becomes one again).
                    for b in overrides::parse(&r.container.labels).1 {
                        warn!(target = %t, container = %r.container.name, label = %b.label,
                            value = %b.value,
                            "label {}={:?} is not understood (use {}); the global setting applies",
                            b.label, b.value, b.expected);
                    }
                    for (label, asked, setting) in
                        r.overrides.widening(self.config.mode, self.config.on_stop)
                    {
                        warn!(target = %t, container = %r.container.name, label,
                            "label {label}={asked} is ignored: it asks for more than {setting} \
                             allows, and a label may only narrow what the operator allowed");
                    }
                }
                (None, None) => {}
            }
            r.target = now_target;
            self.records.insert(id, r);
        }
        self.tell_swarm_tasks(now, out);
        if !self.listed {
            return;
        }
        for t in self.config.targets.iter() {
            let said = if let Some(names) = found.remove(t) {
                Said::Found(names)
            } else if let Some(projects) = ambiguous.remove(t) {
                Said::Ambiguous(projects)
            } else {
                Said::Missing
            };
            let before = self.said.insert(t.clone(), said.clone());
            if before.as_ref() == Some(&said) {
                continue;
            }
            match said {
                Said::Found(names) => {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    let found = if matches!(before, Some(Said::Missing | Said::Ambiguous(_))) {
                        "target found: "
                    } else {
                        ""
                    };
                    info!(target = %t, "{found}{t} resolves to {}", names.join(", "));
                }
                Said::Missing => warn!(
                    target = %t,
                    "target not found: no container has this name or compose service; \
                     it will be watched as soon as it is created"
                ),
                Said::Ambiguous(projects) => {
                    let list: Vec<&str> = projects.iter().map(String::as_str).collect();
                    let spelled: Vec<String> = list.iter().map(|p| format!("{p}/{t}")).collect();
                    warn!(
                        target = %t,
                        "target {t} is ambiguous: compose projects {} each have a service {t}, \
                         and healthther runs in none of them, so it acts on none; write {} in \
                         HEALTH_TARGETS to choose",
                        list.join(", "),
                        spelled.join(" or ")
                    );
                }
            }
        }
    }

    /// Says once, for each task of a Swarm service that a target names (by its container's or
    /// its service's name), that healthther leaves it alone: a log line and a `skipped` record.
    /// Swarm replaces failed tasks itself; starting one would fight it.
    pub(super) fn tell_swarm_tasks(&mut self, now: Now, out: &mut Vec<Command>) {
        for r in self.records.values_mut() {
            if r.swarm_told {
                continue;
            }
            let Some((t, service)) = self.config.targets.swarm_task_named(&r.container) else {
                continue;
            };
            r.swarm_told = true;
            let name = &r.container.name;
            let service = if service.is_empty() { "?" } else { service };
            let note = format!(
                "{name} is a task of Swarm service {service}: Swarm replaces failed tasks \
                 itself; healthther leaves it alone"
            );
            warn!(target = %t, container = %name, "{note}");
            let seen = format!("a task of Swarm service {service}");
            out.push(Command::report(told(
                now,
                t,
                &r.container,
                seen,
                What::Skipped {
                    mode: None,
                    approval: None,
                    cause: None,
                    why: Skip::SwarmTask,
                    note: Some(note),
                },
            )));
        }
    }
}
