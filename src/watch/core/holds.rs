//! Holds, releases and standing answers forgotten: an operator's say over a target beside its
//! prompts.

use std::time::Duration;

use tracing::info;

use super::outcome::What;
use super::{about_target, told, Command, Core, Hold, Now, Phase};
use crate::backoff::History;
use crate::control::Reply;
use crate::prompt::Answer;
use crate::targets::TargetName;

impl Core {
    /// Lifts the quarantine of every container of `target` and looks at them at once.
    pub(super) fn release(
        &mut self,
        target: &str,
        by: &str,
        now: Now,
        out: &mut Vec<Command>,
    ) -> Reply {
        let mut released = Vec::new();
        for (id, r) in self.records.iter_mut() {
            let Some(t) = &r.target else {
                continue;
            };
            if t.as_str() != target && r.container.name != target {
                continue;
            }
            if r.history.as_mut().is_some_and(History::release) {
                released.push((id.clone(), t.clone(), r.container.clone()));
            }
        }
        if released.is_empty() {
            let known = self.config.targets.get(target).is_some()
                || self
                    .records
                    .values()
                    .any(|r| r.target.is_some() && r.container.name == target);
            if !known {
                return self.not_a_target(target);
            }
            return Reply::error(format!("{target} is not quarantined"));
        }
        let mut names = Vec::new();
        for (id, t, c) in released {
            info!(target = %t, container = %c.name, by = %by, "released from quarantine");
            out.push(Command::report(told(
                now,
                &t,
                &c,
                String::new(),
                What::Released {
                    by: Some(by.to_string()),
                },
            )));
            names.push(c.name.clone());
            self.look(&id, None, out);
        }
        Reply::ok(format!("released {}; checking it now", names.join(", ")))
    }

    pub(super) fn hold(
        &mut self,
        target: &str,
        duration: Option<Duration>,
        reason: Option<String>,
        by: &str,
        now: Now,
        out: &mut Vec<Command>,
    ) -> Reply {
        let Some(t) = self.hold_key(target) else {
            return self.not_a_target(target);
        };
        let reason = reason.unwrap_or_else(|| "held by the operator".into());
        let until = match duration.map(|d| now.at.checked_add(d)) {
            Some(None) => {
                return Reply::error(
                    "hold: that duration is too long; hold without one to hold until resumed",
                )
            }
            Some(Some(u)) => Some(u),
            None => None,
        };
        let how_long = match duration {
            Some(d) => format!("for {}", humantime::format_duration(d)),
            None => "until `healthther resume`".to_string(),
        };
        info!(target = %t, by = %by, "held {how_long}: {reason}");
        out.push(Command::report(about_target(
            now,
            &t,
            What::Held {
                by: Some(by.to_string()),
                note: format!("{reason} ({how_long})"),
            },
        )));
        self.holds.insert(
            t.clone(),
            Hold {
                reason,
                by: by.to_string(),
                since: now.wall,
                until,
            },
        );
        let ids: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| held_by(r, &t))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let Some(mut r) = self.records.remove(&id) else {
                continue;
            };
            self.drop_prompt(&mut r, "the target is held", now, out);
            if matches!(r.phase, Phase::Waiting { .. } | Phase::Due { .. }) {
                r.phase = Phase::Idle;
            }
            self.records.insert(id, r);
        }
        Reply::ok(format!("holding {t} {how_long}"))
    }

    /// Forgets the standing `always` or `never` of `target`; its containers are looked at
    /// again, so a failure under way is asked about.
    pub(super) fn forget(
        &mut self,
        target: &str,
        by: &str,
        now: Now,
        out: &mut Vec<Command>,
    ) -> Reply {
        let Some(t) = self.config.targets.get(target).cloned() else {
            return self.not_a_target(target);
        };
        let answer = if self.always.remove(&t) {
            Answer::Always
        } else if self.never.remove(&t) {
            Answer::Never
        } else {
            return Reply::error(format!("{t} has no standing answer (always or never)"));
        };
        let word = answer.word();
        info!(target = %t, by = %by, "forgot the standing answer {word}");
        let ids: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| r.target.as_ref() == Some(&t))
            .map(|(id, _)| id.clone())
            .collect();
        out.push(Command::report(about_target(
            now,
            &t,
            What::Forgotten {
                answer,
                by: by.to_string(),
            },
        )));
        for id in ids {
            if let Some(r) = self.records.get_mut(&id) {
                r.reported = None;
            }
            self.look(&id, None, out);
        }
        Reply::ok(format!(
            "forgot {word} for {t}: its failures are asked about again"
        ))
    }

    pub(super) fn resume(
        &mut self,
        target: &str,
        by: &str,
        now: Now,
        out: &mut Vec<Command>,
    ) -> Reply {
        let Some(t) = self.hold_key(target).or_else(|| {
            Some(TargetName::of_container(target)).filter(|t| self.holds.contains_key(t))
        }) else {
            return self.not_a_target(target);
        };
        if !self.holds.contains_key(&t) {
            return Reply::error(format!("{t} is not held"));
        }
        self.end_hold(&t, &format!("resumed by {by}"), now, out);
        Reply::ok(format!("resumed {t}; looking at it now"))
    }

    /// A hold ends: the target is looked at again at once.
    pub(super) fn end_hold(&mut self, t: &TargetName, why: &str, now: Now, out: &mut Vec<Command>) {
        if self.holds.remove(t).is_none() {
            return;
        }
        info!(target = %t, "no longer held: {why}");
        out.push(Command::report(about_target(
            now,
            t,
            What::Resumed {
                why: why.to_string(),
            },
        )));
        let ids: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| held_by(r, t))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(r) = self.records.get_mut(&id) {
                r.reported = None;
            }
            self.look(&id, None, out);
        }
    }

    /// What `hold NAME` holds: the target written `NAME`, or else the one container named
    /// `NAME` that a label selector chose (held alone, under its name).
    fn hold_key(&self, name: &str) -> Option<TargetName> {
        if let Some(t) = self.config.targets.get(name) {
            return Some(t.clone());
        }
        self.records
            .values()
            .any(|r| {
                r.target.as_ref().is_some_and(TargetName::is_selector) && r.container.name == name
            })
            .then(|| TargetName::of_container(name))
    }
}

/// Whether the hold `t` is on `r`: on its target, or on it alone by its name.
fn held_by(r: &super::Watched, t: &TargetName) -> bool {
    r.target.as_ref() == Some(t) || (r.target.is_some() && r.container.name == t.as_str())
}
