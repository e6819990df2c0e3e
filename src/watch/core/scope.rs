//! Scope: which containers are targets, decided again whenever names or labels change
//! (`retarget`), from the engine's lists and the containers it creates and removes. Only a
//! target is ever acted on; one that stops being a target loses its back-off, prompt and
//! schedule.

use std::time::Instant;

use std::collections::{BTreeSet, HashMap, HashSet};

use tracing::{debug, info, warn};

use super::outcome::{Outcome, Skip, What};
use super::{told, Command, Core, Now, Phase, Probing, Said, SeenState, View, Watched};
use crate::overrides;
use crate::policy::{needs_inspection, Health, Listed, Status};
use crate::probe;
use crate::targets::Neighbours;
use crate::targets::{ContainerRef, Resolution, TargetName};

impl Core {
    pub(super) fn on_listed(
        &mut self,
        full: bool,
        listed: Vec<Listed>,
        asked: Instant,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        debug!(containers = listed.len(), full, "reconcile pass");
        self.last_pass = Some(now.at);
        self.synced |= full;
        if full {
            let present: HashSet<&str> = listed.iter().map(|l| l.container.id.as_str()).collect();
            // One heard of (an event, a look) since the list was asked for may be missing from
            // it, not gone: its destroy event says when it goes.
            let gone: Vec<String> = self
                .records
                .iter()
                .filter(|(id, r)| {
                    !present.contains(id.as_str()) && r.heard_of.is_none_or(|t| t < asked)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in gone {
                self.remove(&id, now, out);
            }
        }
        for l in &listed {
            self.upsert(&l.container);
            // An event since the list was asked for tells more than the list.
            let fresh = self
                .records
                .get(&l.container.id)
                .is_some_and(|r| r.heard_of.is_none_or(|t| t < asked));
            if fresh {
                self.probe_seen(&l.container.id, &l.status, now);
            }
            if let Some(r) = self.records.get_mut(&l.container.id) {
                if l.status != Status::Running {
                    // Perhaps before its die event: Docker 26 tells of the stop first.
                    r.stop_ended(now.at);
                }
                if l.network_parent.is_some() {
                    r.network_parent = l.network_parent.clone();
                }
                r.host_network = l.host_network;
                r.addresses = match l.status {
                    Status::Running => l.addresses.clone(),
                    _ => Vec::new(),
                };
                r.addresses_at = Some(asked);
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
                r.probing = probe::parse(&c.labels).ok().flatten().map(Probing::new);
                self.records.insert(c.id.clone(), r);
                true
            }
        }
    }

    /// Forgets a container that is gone, with its prompt.
    pub(super) fn remove(&mut self, id: &str, now: Now, out: &mut Vec<Command>) {
        if let Some(mut r) = self.records.remove(id) {
            self.drop_prompt(&mut r, "the container was removed", now, out);
            if let (Phase::Acting { .. }, Some(since)) = (&r.phase, r.down_since) {
                self.removed_acting.insert(id.to_string(), since);
            }
            if r.down_since.is_some() {
                // Its failure is over with it (a removal, or compose replacing it), also when
                // it was no target at the end: compose renames a container it replaces first.
                out.push(Command::report(Outcome {
                    at: now.wall,
                    target: r.target.clone(),
                    container: Some(r.container.clone()),
                    seen: "removed".into(),
                    state: None,
                    down: None,
                    what: What::Gone,
                }));
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
        let mut opted_out = Vec::new();
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
                Resolution::OptedOut(t) => {
                    opted_out.push((id.clone(), t.clone()));
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
                    if let Some(p) = r.probing.as_mut() {
                        p.forget();
                    }
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
                    if let Err(b) = probe::parse(&r.container.labels) {
                        warn!(target = %t, container = %r.container.name, label = %b.label,
                            value = %b.value,
                            "label {}={:?} is not understood (use {}); {} runs without a probe",
                            b.label, b.value, b.expected, r.container.name);
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
        let opted: HashSet<TargetName> = opted_out.iter().map(|(_, t)| t.clone()).collect();
        self.tell_opted_out(opted_out, now, out);
        if !self.listed {
            return;
        }
        for t in self.config.targets.iter() {
            let said = if let Some(names) = found.remove(t) {
                Said::Found(names)
            } else if let Some(projects) = ambiguous.remove(t) {
                Said::Ambiguous(projects)
            } else if opted.contains(t) {
                Said::OptedOut
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
                    let found = if matches!(
                        before,
                        Some(Said::Missing | Said::Ambiguous(_) | Said::OptedOut)
                    ) {
                        "target found: "
                    } else {
                        ""
                    };
                    info!(target = %t, "{found}{t} resolves to {}", names.join(", "));
                }
                Said::Missing => match t.selector_text() {
                    Some(label) => warn!(
                        target = %t,
                        label = %label,
                        "target not found: no container has label {label} yet; \
                         one will be watched as soon as it is created"
                    ),
                    None => warn!(
                        target = %t,
                        "target not found: no container has this name or compose service; \
                         it will be watched as soon as it is created"
                    ),
                },
                // Each container that opted out said so itself, naming the label.
                Said::OptedOut => {}
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

    /// Says once, for each container a name chooses that opted out with
    /// `healthther.enable=false`, that healthther leaves it alone: a log line and a `skipped`
    /// record.
    fn tell_opted_out(
        &mut self,
        found: Vec<(String, TargetName)>,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        for (id, t) in found {
            let Some(r) = self.records.get_mut(&id) else {
                continue;
            };
            if r.opt_out_told {
                continue;
            }
            r.opt_out_told = true;
            let label = crate::targets::ENABLE_LABEL;
            warn!(target = %t, container = %r.container.name, label,
                "target {t} chooses a container labelled {label}=false: it opted out, and \
                 healthther leaves it alone");
            out.push(Command::report(told(
                now,
                &t,
                &r.container,
                format!("labelled {label}=false"),
                What::Skipped {
                    mode: None,
                    approval: None,
                    cause: None,
                    why: Skip::NotATarget,
                    note: Some(format!("it opted out with the label {label}=false")),
                },
            )));
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
