//! What survives a restart: the state file's contents, made from and restored into the core.

use std::collections::HashSet;
use std::time::{Instant, SystemTime};

use tracing::info;

use super::{Command, Core, Hold, Now};
use crate::backoff::History;
use crate::state::{Saved, SavedContainer, SavedHold};
use crate::targets::TargetName;

impl Core {
    pub(super) fn wall(&self, t: Instant) -> SystemTime {
        match t.checked_duration_since(self.epoch.at) {
            Some(d) => self.epoch.wall + d,
            None => self.epoch.wall - self.epoch.at.duration_since(t),
        }
    }

    pub(super) fn instant(&self, t: SystemTime) -> Instant {
        match t.duration_since(self.epoch.wall) {
            Ok(d) => self.epoch.at + d,
            Err(e) => self
                .epoch
                .at
                .checked_sub(e.duration())
                .unwrap_or(self.epoch.at),
        }
    }

    /// What must survive a restart, as it stands.
    pub(super) fn to_saved(&self) -> Saved {
        let mut holds: Vec<SavedHold> = self
            .holds
            .iter()
            .map(|(t, h)| SavedHold {
                target: t.to_string(),
                reason: h.reason.clone(),
                by: h.by.clone(),
                since: Some(h.since),
                until: h.until.map(|u| self.wall(u)),
            })
            .collect();
        holds.sort_by(|a, b| a.target.cmp(&b.target));
        let names = |set: &HashSet<TargetName>| {
            let mut v: Vec<String> = set.iter().map(ToString::to_string).collect();
            v.sort();
            v
        };
        // Runs after every input: only a container with a history costs more than a look (its
        // id and name are copied once it is known to have one, not for every container).
        let mut containers: Vec<SavedContainer> = self
            .records
            .iter()
            .filter_map(|(id, r)| {
                let history = r.history.as_ref()?;
                Some(SavedContainer {
                    id: id.clone(),
                    name: r.container.name.clone(),
                    history: history.to_saved(|t| self.wall(t)),
                })
            })
            .chain(self.restored.iter().map(|(id, h)| SavedContainer {
                id: id.clone(),
                name: String::new(),
                history: h.to_saved(|t| self.wall(t)),
            }))
            .collect();
        containers.sort_by(|a, b| a.id.cmp(&b.id));
        Saved {
            v: crate::state::FORMAT_VERSION,
            holds,
            always: names(&self.always),
            never: names(&self.never),
            containers,
        }
    }

    pub(super) fn save_if_changed(&mut self, out: &mut Vec<Command>) {
        let now = self.to_saved();
        if self.saved.as_ref() != Some(&now) {
            self.saved = Some(now.clone());
            out.push(Command::Save(now));
        }
    }

    /// Takes back what the last run kept. Histories wait for the first whole list, which
    /// tells whether their containers still exist.
    pub(super) fn restore(&mut self, saved: Saved, now: Now) {
        for h in &saved.holds {
            // A hold on one container a selector chose is kept under that container's name.
            let one = || {
                (self.config.targets.has_selectors()
                    && crate::targets::is_valid_container_name(&h.target))
                .then(|| TargetName::of_container(&h.target))
            };
            let Some(t) = self.config.targets.get(&h.target).cloned().or_else(one) else {
                continue;
            };
            let until = h.until.map(|u| self.instant(u));
            if until.is_some_and(|u| u <= now.at) {
                continue;
            }
            self.holds.insert(
                t,
                Hold {
                    reason: h.reason.clone(),
                    by: h.by.clone(),
                    since: h.since.unwrap_or(now.wall),
                    until,
                },
            );
        }
        let targets = |names: &[String]| -> HashSet<TargetName> {
            names
                .iter()
                .filter_map(|n| self.config.targets.get(n).cloned())
                .collect()
        };
        self.always = targets(&saved.always);
        self.never = targets(&saved.never);
        self.restored = saved
            .containers
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    History::from_saved(&c.history, |t| self.instant(t)),
                )
            })
            .collect();
        info!(
            holds = self.holds.len(),
            histories = self.restored.len(),
            "took back the state kept by the last run"
        );
        self.saved = Some(saved);
    }
}
