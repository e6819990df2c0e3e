//! Dependents: containers that share another's network namespace lose their network when it
//! starts again (they keep the old, empty namespace), and cannot start at all once it was
//! replaced by a new container. The core follows that graph from the engine's events: a
//! parent's start marks its running dependents, and once it runs (and is healthy, if it has a
//! health check) each dependent gets a look, which restarts, recreates, asks or reports
//! (`decide`). Only targets are acted on; a dependent's own failure never touches its parent.

use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, warn};

use super::graph;
use super::{told, Approval, Cause, Command, Core, NetLoss, Now, Parent, Skip, Watched, What};
use crate::policy::{Health, Status};
use crate::targets::ContainerRef;

/// How long after we asked for a start the parent's start event is taken for ours, so that
/// whoever allowed it allows its dependents' restarts too.
const REVIVAL_RELEVANT: Duration = Duration::from_secs(120);

/// What a look at a dependent must take into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NetworkFix {
    /// Nothing now: it lost no network, or its parent is not ready yet.
    None,
    /// It started again since its parent did: it has the parent's new network.
    Rejoined,
    /// It runs in the namespace of a parent that has started again since: restart it.
    Restart(Parent),
    /// Its parent was replaced: recreate it joined to the successor.
    Recreate(Parent),
    /// The container whose network it names (this id) is gone, and no successor is known (it
    /// went while healthther was not watching): it cannot start until it is recreated.
    ParentGone(String),
}

impl Core {
    /// Container `id` was created while we watch: its network mode is in no event, so one
    /// inspect tells, once.
    pub(super) fn network_on_create(&mut self, id: &str, out: &mut Vec<Command>) {
        let (engine_up, synced) = (self.engine_up, self.synced);
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        if engine_up && synced && r.phase == super::Phase::Idle {
            r.learning = true;
            out.push(Command::Inspect(r.container.clone()));
        }
    }

    /// Container `id` started: it joined its parent's current namespace, and its own
    /// dependents lost theirs.
    pub(super) fn network_on_start(
        &mut self,
        id: &str,
        time: SystemTime,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        r.net_lost = None;
        seen(r, Status::Running, time);
        self.parent_started(id, time, now, out);
    }

    pub(super) fn network_on_die(&mut self, id: &str, time: SystemTime) {
        if let Some(r) = self.records.get_mut(id) {
            seen(r, Status::Exited, time);
        }
    }

    /// Container `id`'s health check said `h`: a parent that turned healthy is ready for its
    /// dependents.
    pub(super) fn network_on_health(
        &mut self,
        id: &str,
        h: Health,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        r.has_check = true;
        if let Some(s) = r.state.as_mut() {
            s.health = h;
        }
        if h == Health::Healthy {
            self.parent_ready(id, now, out);
        }
    }

    /// Container `id` started: its dependents that ran in its old namespace lost their
    /// network, and those that named a container it replaced need recreating.
    fn parent_started(&mut self, id: &str, time: SystemTime, now: Now, out: &mut Vec<Command>) {
        if !self.synced {
            return;
        }
        let Some(p) = self.records.get_mut(id) else {
            return;
        };
        let approval = p
            .revived_by
            .take()
            .filter(|(_, at)| now.at.saturating_duration_since(*at) < REVIVAL_RELEVANT)
            // Only an operator's answer covers the dependents; each has its own mode.
            .filter(|(a, _)| matches!(a, Approval::Operator { .. }))
            .map(|(a, _)| Approval::WithParent { by: a.by() });
        self.lose_network(id, time, approval);
        if self.is_ready(id) {
            self.parent_ready(id, now, out);
        }
    }

    /// Container `id` was removed: if dependents still name it and a container already took
    /// its place (compose starts the new one before it removes the old), they need recreating.
    pub(super) fn parent_removed(&mut self, gone_id: &str, now: Now, out: &mut Vec<Command>) {
        let Some(gone) = self.gone.get(gone_id).cloned() else {
            return;
        };
        let successor = self
            .running_successor(|c| graph::succeeds(c, &gone))
            .map(|p| p.id);
        if let Some(s) = successor {
            // The engine's time of its start, not ours: it is compared with the engine's.
            let started = self
                .records
                .get(&s)
                .and_then(|r| r.state.as_ref()?.since)
                .unwrap_or(now.wall);
            self.lose_network(&s, started, None);
            if self.is_ready(&s) {
                self.parent_ready(&s, now, out);
            }
        }
    }

    /// Marks the dependents of `parent_id` that lost their network.
    fn lose_network(&mut self, parent_id: &str, time: SystemTime, approval: Option<Approval>) {
        let Some(p) = self.records.get(parent_id) else {
            return;
        };
        let parent = Parent {
            id: parent_id.to_string(),
            name: p.container.name.clone(),
        };
        // Its own parent never counts as its dependent: a cycle would restart them in turn.
        let own_parent = p.network_parent.clone();
        for (d, recreated) in self.dependents_of(parent_id) {
            if own_parent
                .as_deref()
                .zip(self.records.get(&d))
                .is_some_and(|(x, r)| graph::names(x, &r.container))
            {
                continue;
            }
            let Some(r) = self.records.get_mut(&d) else {
                continue;
            };
            // A dependent that is not running takes the new namespace when it starts, unless
            // it names a container that no longer exists.
            if !recreated && !is_running(r) {
                continue;
            }
            debug!(container = %r.container.name, parent = %parent.name, recreated,
                "shares the network of a container that started again");
            // What was said of a lost network is not what a replaced parent needs said.
            let reported = r
                .net_lost
                .as_ref()
                .is_some_and(|n| n.reported && n.recreated == recreated);
            r.net_lost = Some(NetLoss {
                parent: parent.clone(),
                parent_started: time,
                approval: approval.clone(),
                ready: false,
                reported,
                recreated,
            });
        }
    }

    /// The parent runs, and is healthy if it has a health check: its dependents' turn, parents
    /// before children (a dependent's own restart is the next parent's start).
    fn parent_ready(&mut self, parent_id: &str, now: Now, out: &mut Vec<Command>) {
        let parent_target = self.records.get(parent_id).and_then(|p| p.target.clone());
        let waiting: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| {
                r.net_lost
                    .as_ref()
                    .is_some_and(|n| n.parent.id == parent_id && !n.ready)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for d in waiting {
            let Some(r) = self.records.get_mut(&d) else {
                continue;
            };
            let Some(n) = r.net_lost.as_mut() else {
                continue;
            };
            n.ready = true;
            if r.target.is_some() {
                let approval = n.approval.clone();
                if r.container.project.is_some() && r.phase == super::Phase::Idle {
                    // Compose may be restarting or replacing it itself (`restart`, `up`): give
                    // it a moment, as after any stop through the API; the look then sees.
                    r.phase = super::Phase::Waiting {
                        until: now.at + super::STOP_SETTLE,
                        why: super::Why::Settle,
                        approval,
                    };
                } else {
                    self.look(&d, approval, out);
                }
                continue;
            }
            // Not ours to touch; said once, and only about a target's dependents.
            let Some(pt) = &parent_target else {
                continue;
            };
            if std::mem::replace(&mut n.reported, true) {
                continue;
            }
            let note = if n.recreated {
                format!(
                    "{0} was recreated, and its dependent {1} still names the container it \
                     replaced: {1} cannot start again until it is recreated too ({2}); add it to \
                     HEALTH_TARGETS with the label healthther.recreate=true to have it recreated",
                    n.parent.name,
                    r.container.name,
                    graph::fix_command(&r.container, &n.parent.name)
                )
            } else {
                format!(
                    "{0}'s dependent {1} lost its network; add it to HEALTH_TARGETS to have it \
                     restarted",
                    n.parent.name, r.container.name
                )
            };
            warn!(target = %pt, container = %r.container.name, "{note}");
            out.push(Command::report(told(
                now,
                pt,
                &r.container,
                r.state
                    .as_ref()
                    .map_or_else(|| "running".into(), |s| s.status.to_string()),
                What::Skipped {
                    mode: None,
                    approval: None,
                    cause: Some(if n.recreated {
                        Cause::ParentRecreated
                    } else {
                        Cause::ParentRestarted
                    }),
                    why: Skip::DependentNotATarget,
                    note: Some(note),
                },
            )));
        }
    }

    /// Whether the container runs, and is healthy if it has a health check.
    fn is_ready(&self, id: &str) -> bool {
        self.records.get(id).is_some_and(|r| {
            is_running(r)
                && (!r.has_check
                    || r.state
                        .as_ref()
                        .is_some_and(|s| s.health == Health::Healthy))
        })
    }

    /// The containers that share `parent_id`'s network (or that compose restarts with it), and
    /// whether each names a container `parent_id` replaced.
    fn dependents_of(&self, parent_id: &str) -> Vec<(String, bool)> {
        let Some(p) = self.records.get(parent_id) else {
            return Vec::new();
        };
        self.records
            .iter()
            .filter(|(id, _)| id.as_str() != parent_id)
            .filter_map(|(id, r)| {
                if let Some(reference) = &r.network_parent {
                    if graph::names(reference, &p.container) {
                        return Some((id.clone(), false));
                    }
                    if self.predecessor(reference, &p.container) {
                        return Some((id.clone(), true));
                    }
                }
                graph::declared_parent(&r.container, &p.container).then(|| (id.clone(), false))
            })
            .collect()
    }

    /// A running container that `succeeds` says took a removed one's place.
    fn running_successor(&self, succeeds: impl Fn(&ContainerRef) -> bool) -> Option<Parent> {
        self.records
            .values()
            .find(|c| is_running(c) && succeeds(&c.container))
            .map(|c| Parent {
                id: c.container.id.clone(),
                name: c.container.name.clone(),
            })
    }

    /// Whether `reference` names a removed container that `c` took the place of.
    fn predecessor(&self, reference: &str, c: &ContainerRef) -> bool {
        self.gone
            .values()
            .any(|g| graph::names(reference, g) && graph::succeeds(c, g))
    }

    /// What a look at container `id` must do about its network.
    pub(super) fn network_fix(&self, id: &str, started_at: Option<&str>) -> NetworkFix {
        let Some(r) = self.records.get(id) else {
            return NetworkFix::None;
        };
        let successor = |reference: &str| {
            if self
                .records
                .values()
                .any(|c| graph::names(reference, &c.container))
            {
                return None;
            }
            self.running_successor(|c| self.predecessor(reference, c))
        };
        if let Some(p) = r.network_parent.as_deref().and_then(successor) {
            return NetworkFix::Recreate(p);
        }
        if let Some(reference) = r.network_parent.as_deref().filter(|x| {
            self.synced && !self.records.values().any(|c| graph::names(x, &c.container))
        }) {
            return NetworkFix::ParentGone(reference.to_string());
        }
        match r.net_lost.as_ref().filter(|n| n.ready) {
            Some(n) => {
                let started = started_at.and_then(|t| humantime::parse_rfc3339_weak(t).ok());
                // A run that began after the parent's start has the new namespace already.
                if started.is_some_and(|t| t > n.parent_started) {
                    NetworkFix::Rejoined
                } else {
                    NetworkFix::Restart(n.parent.clone())
                }
            }
            None => NetworkFix::None,
        }
    }

    /// Names of the containers that share `id`'s network or restart with it, for `status`.
    pub(super) fn dependent_names(&self, id: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .dependents_of(id)
            .into_iter()
            .filter_map(|(d, _)| self.records.get(&d).map(|r| r.container.name.clone()))
            .collect();
        names.sort();
        names
    }

    /// Names of the targets a revival of `id` would restart after it, for its prompt.
    pub(super) fn dependent_targets(&self, id: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .dependents_of(id)
            .into_iter()
            .filter_map(|(d, _)| self.records.get(&d))
            .filter(|r| r.target.is_some() && is_running(r))
            .map(|r| r.container.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Keeps a removed container that others name by id, until none does.
    pub(super) fn remember_parent(&mut self, removed: &Watched) {
        let c = &removed.container;
        let named_by_id = self.records.values().any(|d| {
            d.network_parent
                .as_deref()
                .is_some_and(|x| x != c.name && graph::names(x, c))
        });
        if named_by_id {
            self.gone.insert(c.id.clone(), c.clone());
        }
        let records = &self.records;
        self.gone.retain(|_, g| {
            records.values().any(|d| {
                d.network_parent
                    .as_deref()
                    .is_some_and(|x| graph::names(x, g))
            })
        });
    }

    /// Who allowed the action just asked for on `id`, for its dependents.
    pub(super) fn note_revival(&mut self, id: &str, approval: &Approval, at: Instant) {
        if let Some(r) = self.records.get_mut(id) {
            r.revived_by = Some((approval.clone(), at));
        }
    }
}

fn is_running(r: &Watched) -> bool {
    r.state
        .as_ref()
        .is_some_and(|s| s.status == Status::Running)
}

/// What an event says of its state, for the graph and for `status`.
fn seen(r: &mut Watched, status: Status, time: SystemTime) {
    let health = match r.state.as_ref().map_or(Health::None, |s| s.health) {
        // A container with a health check starts over at `starting`.
        _ if r.has_check && status == Status::Running => Health::Starting,
        h => h,
    };
    r.state = Some(super::SeenState {
        status,
        health,
        since: Some(time),
    });
}
