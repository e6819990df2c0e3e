//! Alertmanager wants state, not messages: an alert per target that is down, posted again while
//! it lasts (Alertmanager resolves an alert it has not heard of for its `resolve_timeout`), and
//! posted with `endsAt` when the target is back. The book keeps that state, without I/O.

use std::collections::BTreeMap;

use serde::Serialize;

use super::message::{Message, Note};
use crate::escape::control;
use crate::prompt::Answer;
use crate::watch::core::outcome::{ActResult, Outcome, Skip, What};

/// The alert a target that is down raises.
pub const TARGET_DOWN: &str = "HealththerTargetDown";
pub const ENGINE_DOWN: &str = "HealththerEngineDown";
pub const TEST: &str = "HealththerTest";

/// One alert as Alertmanager's `POST /api/v2/alerts` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

/// The alerts that fire now, by their labels, and which container (by id) raised each.
#[derive(Debug, Default)]
pub struct Book {
    firing: BTreeMap<BTreeMap<String, String>, Alert>,
    raised_by: BTreeMap<String, BTreeMap<String, String>>,
}

/// What an outcome means for its target's alert: the core says when a failure ends (it runs
/// again, or went), when it is held or released, and when someone decided to leave it.
enum Effect {
    Fire {
        severity: &'static str,
    },
    Resolve,
    /// Every alert of the target: it is held on purpose.
    ResolveTarget,
    None,
}

fn effect(o: &Outcome) -> Effect {
    if o.ends_failure() {
        return Effect::Resolve;
    }
    match &o.what {
        // Undoing our own start while compose takes the project down is no failure.
        What::Acted {
            result: ActResult::Stopped | ActResult::Withdrawn,
            ..
        } => Effect::None,
        What::Acted { .. } | What::Asked { .. } | What::Observed { never: false, .. } => {
            Effect::Fire {
                severity: "warning",
            }
        }
        // Still quarantined, told again (after a hold ended the alert): it fires again.
        What::Quarantined { .. }
        | What::Skipped {
            why: Skip::Quarantined,
            ..
        } => Effect::Fire {
            severity: "critical",
        },
        // Someone decided (no, never), or it needs no answer any more.
        What::Answered {
            answer: Answer::No | Answer::Never,
            ..
        }
        | What::PromptDropped { .. }
        | What::Released { .. } => Effect::Resolve,
        What::Held { .. } => Effect::ResolveTarget,
        _ => Effect::None,
    }
}

impl Book {
    /// Takes in a message's notes; returns the alerts to post now (fired, changed, resolved).
    pub fn apply(&mut self, host: &str, notes: &[Note], message: &Message) -> Vec<Alert> {
        let mut post: BTreeMap<BTreeMap<String, String>, Alert> = BTreeMap::new();
        for note in notes {
            let (labels, effect, time, summary) = match note {
                Note::Outcome(o) => {
                    let target = o.target.as_ref().map_or("", |t| t.as_str());
                    let time = humantime::format_rfc3339_millis(o.at).to_string();
                    let Some(c) = &o.container else {
                        if matches!(effect(o), Effect::ResolveTarget) {
                            self.resolve_target(target, time, &mut post);
                        }
                        continue;
                    };
                    // What it raised, found by id: a renamed or replaced container's alert
                    // still ends.
                    let labels = self.raised_by.get(&c.id).cloned().unwrap_or_else(|| {
                        labels(
                            TARGET_DOWN,
                            host,
                            &[("target", target), ("container", &c.name)],
                        )
                    });
                    let effect = effect(o);
                    match effect {
                        Effect::Fire { .. } => {
                            self.raised_by.insert(c.id.clone(), labels.clone());
                        }
                        Effect::Resolve => {
                            self.raised_by.remove(&c.id);
                        }
                        // A container held (stopped under HEALTH_ON_STOP=hold): its own
                        // alert ends, not those of the target's other containers.
                        Effect::ResolveTarget => {
                            self.raised_by.remove(&c.id);
                        }
                        Effect::None => {}
                    }
                    let effect = match effect {
                        Effect::ResolveTarget => Effect::Resolve,
                        other => other,
                    };
                    (
                        labels,
                        effect,
                        time,
                        format!("{target} on {host}: {}", o.seen),
                    )
                }
                Note::Engine { up, why, time } => (
                    labels(ENGINE_DOWN, host, &[]),
                    if *up {
                        Effect::Resolve
                    } else {
                        Effect::Fire {
                            severity: "critical",
                        }
                    },
                    time.clone(),
                    format!(
                        "healthther on {host} lost the Docker engine: {}",
                        why.as_deref().unwrap_or("no answer")
                    ),
                ),
                Note::Test => (
                    labels(TEST, host, &[]),
                    Effect::Fire { severity: "info" },
                    crate::audit::now_rfc3339(),
                    format!("healthther on {host}: a test alert from `healthther notify-test`"),
                ),
                Note::Reminder { .. } => continue,
            };
            match effect {
                Effect::Fire { severity } => {
                    let starts_at = self
                        .firing
                        .get(&labels)
                        .map_or(time, |a| a.starts_at.clone());
                    let alert = Alert {
                        labels: labels.clone(),
                        annotations: BTreeMap::from([
                            // One line, whatever a container wrote into it.
                            ("summary".to_string(), control(&summary).into_owned()),
                            ("description".to_string(), message.message.clone()),
                            ("severity".to_string(), severity.to_string()),
                        ]),
                        starts_at,
                        ends_at: None,
                    };
                    if !matches!(note, Note::Test) {
                        self.firing.insert(labels.clone(), alert.clone());
                    }
                    post.insert(labels, alert);
                }
                Effect::Resolve => {
                    if let Some(mut alert) = self.firing.remove(&labels) {
                        alert.ends_at = Some(time);
                        post.insert(labels, alert);
                    } else if post.get(&labels).is_some_and(|a| a.ends_at.is_none()) {
                        // Fired and resolved within one message.
                        if let Some(a) = post.get_mut(&labels) {
                            a.ends_at = Some(time);
                        }
                    }
                }
                Effect::ResolveTarget | Effect::None => {}
            }
        }
        post.into_values().collect()
    }

    /// Ends every alert of `target` (a hold).
    fn resolve_target(
        &mut self,
        target: &str,
        time: String,
        post: &mut BTreeMap<BTreeMap<String, String>, Alert>,
    ) {
        let of_it: Vec<_> = self
            .firing
            .keys()
            .filter(|l| l.get("alertname").map(String::as_str) == Some(TARGET_DOWN))
            .filter(|l| l.get("target").map(String::as_str) == Some(target))
            .cloned()
            .collect();
        for labels in of_it {
            if let Some(mut alert) = self.firing.remove(&labels) {
                alert.ends_at = Some(time.clone());
                post.insert(labels, alert);
            }
        }
        self.raised_by
            .retain(|_, l| l.get("target").map(String::as_str) != Some(target));
    }

    /// Every alert that fires now, to post again before Alertmanager times it out.
    pub fn firing(&self) -> Vec<Alert> {
        self.firing.values().cloned().collect()
    }
}

fn labels(name: &str, host: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("alertname".to_string(), name.to_string()),
        ("instance".to_string(), host.to_string()),
        ("service".to_string(), "healthther".to_string()),
    ]);
    for (k, v) in extra {
        l.insert((*k).to_string(), (*v).to_string());
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::compose;
    use crate::watch::core::outcome::sample::{record, Kind};

    fn apply(book: &mut Book, notes: Vec<Note>) -> Vec<Alert> {
        let m = compose("h", &notes);
        book.apply("h", &notes, &m)
    }

    #[test]
    fn fires_while_down_and_resolves_when_back() {
        let mut book = Book::default();
        let rec = |e, res| Note::Outcome(Box::new(record(e, "nodo_1", res)));
        // A revival that works at once raises nothing.
        assert!(apply(&mut book, vec![rec(Kind::Action, Some("running"))]).is_empty());
        let fired = apply(&mut book, vec![rec(Kind::Prompt, None)]);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].labels["alertname"], TARGET_DOWN);
        assert_eq!(fired[0].labels["target"], "nodo_1");
        assert_eq!(fired[0].ends_at, None);
        assert_eq!(book.firing().len(), 1);
        let resolved = apply(&mut book, vec![rec(Kind::Action, Some("running"))]);
        assert_eq!(resolved.len(), 1);
        assert!(resolved[0].ends_at.is_some());
        assert!(book.firing().is_empty());
    }

    #[test]
    fn the_summary_is_one_line_whatever_a_container_wrote() {
        let mut r = record(Kind::Prompt, "nodo_1", None);
        r.seen = "unhealthy: x\n2026-12-06T00:00:00Z  INFO revived\u{1b}]0;t\u{7}".into();
        let fired = apply(&mut Book::default(), vec![Note::Outcome(Box::new(r))]);
        assert_eq!(
            fired[0].annotations["summary"],
            "nodo_1 on h: unhealthy: x\\n2026-12-06T00:00:00Z  INFO revived\\x1b]0;t\\x07"
        );
        assert!(!fired[0].annotations["description"].contains('\u{1b}'));
    }

    #[test]
    fn the_engine_has_an_alert_of_its_own() {
        let mut book = Book::default();
        let t = "2026-01-01T00:00:00Z".to_string();
        let lost = Note::Engine {
            up: false,
            why: Some("socket gone".into()),
            time: t.clone(),
        };
        let fired = apply(&mut book, vec![lost]);
        assert_eq!(fired[0].labels["alertname"], ENGINE_DOWN);
        let back = Note::Engine {
            up: true,
            why: None,
            time: t,
        };
        assert!(apply(&mut book, vec![back])[0].ends_at.is_some());
    }
}
