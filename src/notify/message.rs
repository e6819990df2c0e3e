//! What a notification says: a group of notes (audit records, the engine lost or back,
//! reminders) turned into one message for people, with the records kept for machines.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::Record;
use crate::escape::control;
use crate::watch::core::outcome::{ActResult, Outcome, What};

/// Lines of a message beyond this are summed up in one more line: a storm of 200 targets
/// stays one readable message.
const MAX_LINES: usize = 40;

/// Something the notifier is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// What the core reports.
    Outcome(Box<Outcome>),
    /// The engine stopped answering (`why`), or answers again (`None`).
    Engine {
        up: bool,
        why: Option<String>,
        time: String,
    },
    /// A prompt has waited this long for an answer.
    Reminder {
        target: String,
        container: String,
        seen: String,
        waited: String,
    },
    /// `healthther notify-test`.
    Test,
}

/// One message, sent alike through every channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub host: String,
    pub title: String,
    /// For people: one line per note, and the commands that answer a prompt.
    pub message: String,
    /// The audit records it tells of, with the audit file's fields.
    pub records: Vec<Record>,
    /// `lost` or `back` when it tells of the engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<&'static str>,
    /// Whether this is `healthther notify-test`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
    /// Nothing in it is for people (a container runs again by itself, or went): only alerts,
    /// which follow state, take it in.
    #[serde(skip)]
    pub silent: bool,
}

/// The commands that answer the prompt of `target`: on the host, and in the sidecar.
pub fn answer_commands(target: &str) -> String {
    format!(
        "  answer: healthther answer {target} yes   (or no, always, never)\n  \
         in the sidecar: docker exec healthther healthther answer {target} yes"
    )
}

/// Whether an action's outcome is no failure of it.
fn is_revived(result: &ActResult) -> bool {
    matches!(
        result,
        ActResult::Running
            | ActResult::Recreated { .. }
            | ActResult::AlreadyRunning
            | ActResult::Stopped
            | ActResult::Withdrawn
    )
}

/// Whether people are told of it: what is not in the audit file is for alerts only.
pub fn is_told(note: &Note) -> bool {
    !matches!(note, Note::Outcome(o) if matches!(o.what, What::Recovered | What::Gone))
}

/// One line (more for a prompt) for one note. What a container wrote (its name, what was
/// seen, the engine's words) has its control characters written out: one note, its own lines.
fn lines(note: &Note) -> String {
    match note {
        Note::Outcome(o) => outcome_lines(o),
        Note::Engine { up: false, why, .. } => format!(
            "the Docker engine is lost: {}; reconnecting",
            control(why.as_deref().unwrap_or("no answer"))
        ),
        Note::Engine { up: true, .. } => "the Docker engine answers again".into(),
        Note::Reminder {
            target,
            seen,
            waited,
            ..
        } => format!(
            "{}: still waiting for an answer after {waited} ({})\n{}",
            control(target),
            control(seen),
            answer_commands(&control(target))
        ),
        Note::Test => "a test message from `healthther notify-test`: this channel works".into(),
    }
}

fn outcome_lines(o: &Outcome) -> String {
    // The audit file's words for it: the same text people read in the file.
    let Some(r) = Record::of(o) else {
        return String::new();
    };
    let t = control(&r.target);
    let who = if r.container != r.target {
        format!("{t} ({})", control(&r.container))
    } else {
        t.to_string()
    };
    let seen = control(&r.seen);
    let error = r
        .error
        .as_deref()
        .map(|e| format!(": {}", control(e)))
        .unwrap_or_default();
    let note = control(r.note.as_deref().unwrap_or(""));
    let result = control(r.result.as_deref().unwrap_or(""));
    match &o.what {
        What::Acted {
            action,
            result: done,
            took,
            ..
        } => {
            let took = format!(" in {} ms", took.as_millis());
            let decision = action.word();
            if is_revived(done) {
                format!("{who}: {seen} -> {decision}: {result}{took}")
            } else {
                format!("{who}: {seen} -> {decision} FAILED: {result}{error}")
            }
        }
        What::Skipped { .. } => format!("{who}: action not made: {result}"),
        What::Observed { .. } => format!("{who}: {seen} (observe mode: not acting)"),
        What::Asked { .. } => format!(
            "{who}: {seen}: waiting for an answer\n{}",
            answer_commands(&t)
        ),
        What::Answered { answer, by, .. } => {
            format!("{who}: answered {} by {}", answer.word(), control(by))
        }
        What::PromptDropped { .. } => format!("{who}: no answer needed any more: {note}"),
        What::Quarantined { .. } => format!("{who}: QUARANTINED: {note}"),
        What::Released { .. } => format!("{who}: released from quarantine: {note}"),
        What::Held { .. } => format!("{who}: held: {note}"),
        What::Resumed { .. } => format!("{who}: resumed: {note}"),
        What::Forgotten { .. } => format!("{who}: {note}"),
        What::Recovered | What::Gone => String::new(),
    }
}

/// The title's words for a kind of note, singular and plural.
fn kind(note: &Note) -> &'static str {
    match note {
        Note::Outcome(o) => match &o.what {
            What::Acted { result, .. } if is_revived(result) => "revived",
            What::Acted { .. } => "revival failed",
            What::Skipped { .. } => "skipped",
            What::Observed { .. } => "seen failing (observe)",
            What::Asked { .. } => "waiting for an answer",
            What::Answered { .. } => "answered",
            What::PromptDropped { .. } => "prompt dropped",
            What::Quarantined { .. } => "QUARANTINED",
            What::Released { .. } => "released",
            What::Held { .. } => "held",
            What::Resumed { .. } => "resumed",
            What::Forgotten { .. } => "standing answer forgotten",
            What::Recovered | What::Gone => "",
        },
        Note::Engine { up: false, .. } => "Docker engine lost",
        Note::Engine { up: true, .. } => "Docker engine back",
        Note::Reminder { .. } => "still waiting for an answer",
        Note::Test => "test message",
    }
}

/// One message telling of `notes`, in order (those for alerts only left out of its text).
pub fn compose(host: &str, all: &[Note]) -> Message {
    let notes: Vec<&Note> = all.iter().filter(|n| is_told(n)).collect();
    let mut counts: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    for (i, n) in notes.iter().enumerate() {
        counts.entry(kind(n)).or_insert((i, 0)).1 += 1;
    }
    // In the order they first came.
    let mut parts: Vec<(usize, String)> = counts
        .into_iter()
        .map(|(k, (first, n))| {
            let text = match (notes.len(), k) {
                (1, _) => match notes[first] {
                    Note::Outcome(o) => {
                        format!("{} {k}", o.target.as_ref().map_or("", |t| t.as_str()))
                    }
                    Note::Reminder { target, .. } => format!("{target} {k}"),
                    _ => k.to_string(),
                },
                (_, k) if k.starts_with("Docker") || k == "test message" => k.to_string(),
                _ => format!("{n} {k}"),
            };
            (first, text)
        })
        .collect();
    parts.sort();
    let title = format!(
        "healthther on {host}: {}",
        parts
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join(", ")
    );
    // One line, whatever the names in it hold (an email's subject, an ntfy header).
    let title = control(&title).into_owned();
    let mut text: Vec<String> = notes.iter().take(MAX_LINES).map(|n| lines(n)).collect();
    if notes.len() > MAX_LINES {
        text.push(format!("... and {} more", notes.len() - MAX_LINES));
    }
    let engine = notes.iter().rev().find_map(|n| match *n {
        Note::Engine { up, .. } => Some(if *up { "back" } else { "lost" }),
        _ => None,
    });
    Message {
        host: host.to_string(),
        title,
        message: text.join("\n"),
        records: notes
            .iter()
            .filter_map(|n| match n {
                Note::Outcome(o) => Record::of(o),
                _ => None,
            })
            .collect(),
        engine,
        test: notes.iter().any(|n| matches!(n, Note::Test)),
        silent: notes.is_empty(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::watch::core::outcome::sample::{record, Kind};

    #[test]
    fn a_storm_is_one_message() {
        let notes: Vec<Note> = (0..20)
            .map(|i| {
                Note::Outcome(Box::new(record(
                    Kind::Action,
                    &format!("n{i}"),
                    Some("running"),
                )))
            })
            .chain([Note::Outcome(Box::new(record(
                Kind::Action,
                "bad",
                Some("failed"),
            )))])
            .collect();
        let m = compose("box1", &notes);
        assert_eq!(m.title, "healthther on box1: 20 revived, 1 revival failed");
        assert_eq!(m.records.len(), 21);
        assert!(m
            .message
            .contains("n7: exited (code 137) -> start: running in 12 ms"));
        assert!(m
            .message
            .contains("bad: exited (code 137) -> start FAILED: failed"));
    }

    #[test]
    fn a_prompt_says_how_to_answer() {
        let m = compose(
            "box1",
            &[Note::Outcome(Box::new(record(
                Kind::Prompt,
                "nodo_1",
                None,
            )))],
        );
        assert_eq!(m.title, "healthther on box1: nodo_1 waiting for an answer");
        assert!(m
            .message
            .contains("docker exec healthther healthther answer nodo_1 yes"));
        assert!(m.message.contains("healthther answer nodo_1 yes"));
    }

    #[test]
    fn what_a_container_wrote_stays_on_its_line() {
        let mut r = record(Kind::Prompt, "nodo_1", None);
        if let Some(c) = &mut r.container {
            c.name = "proj-nodo_1-1\u{1b}[2J".into();
        }
        r.seen = "unhealthy; last check said: x\n2026-12-06T00:00:00Z  INFO revived\u{7}".into();
        let m = compose("box\r1", &[Note::Outcome(Box::new(r))]);
        assert_eq!(
            m.message.lines().next().unwrap(),
            "nodo_1 (proj-nodo_1-1\\x1b[2J): unhealthy; last check said: \
             x\\n2026-12-06T00:00:00Z  INFO revived\\x07: waiting for an answer"
        );
        assert_eq!(
            m.title,
            "healthther on box\\r1: nodo_1 waiting for an answer"
        );
        // The records keep what was seen as it was, for machines.
        assert!(m.records[0].seen.contains("x\n2026"));
    }

    #[test]
    fn long_groups_are_cut() {
        let notes: Vec<Note> = (0..100)
            .map(|i| Note::Outcome(Box::new(record(Kind::Hold, &format!("n{i}"), None))))
            .collect();
        let m = compose("h", &notes);
        assert_eq!(m.message.lines().count(), MAX_LINES + 1);
        assert!(m.message.ends_with("... and 60 more"));
    }
}
