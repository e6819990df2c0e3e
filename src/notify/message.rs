//! What a notification says: a group of notes (audit records, the engine lost or back,
//! reminders) turned into one message for people, with the records kept for machines.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::{Record, RecordEvent};
use crate::escape::control;

/// Lines of a message beyond this are summed up in one more line: a storm of 200 targets
/// stays one readable message.
const MAX_LINES: usize = 40;

/// Something the notifier is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// An audit record, as written to the audit file.
    Record(Box<Record>),
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
}

/// The commands that answer the prompt of `target`: on the host, and in the sidecar.
pub fn answer_commands(target: &str) -> String {
    format!(
        "  answer: healthther answer {target} yes   (or no, always, never)\n  \
         in the sidecar: docker exec healthther healthther answer {target} yes"
    )
}

/// What was done, for machines: the result words of the records that were actions.
fn is_revived(r: &Record) -> bool {
    r.event == RecordEvent::Action
        && matches!(
            r.result.as_deref(),
            Some("running" | "already_running" | "stopped" | "withdrawn")
        )
}

/// One line (more for a prompt) for one note. What a container wrote (its name, what was
/// seen, the engine's words) has its control characters written out: one note, its own lines.
fn lines(note: &Note) -> String {
    match note {
        Note::Record(r) => record_lines(r),
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

fn record_lines(r: &Record) -> String {
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
    match r.event {
        RecordEvent::Action => {
            let took = r
                .took_ms
                .map(|ms| format!(" in {ms} ms"))
                .unwrap_or_default();
            let decision = r.decision.unwrap_or("start");
            let result = if r.result.is_some() {
                &result
            } else {
                "unknown"
            };
            if is_revived(r) {
                format!("{who}: {seen} -> {decision}: {result}{took}")
            } else {
                format!("{who}: {seen} -> {decision} FAILED: {result}{error}")
            }
        }
        RecordEvent::Skipped => format!(
            "{who}: {} not made: {result}",
            r.decision.unwrap_or("action"),
        ),
        RecordEvent::Observed => format!("{who}: {seen} (observe mode: not acting)"),
        RecordEvent::Prompt => format!(
            "{who}: {seen}: waiting for an answer\n{}",
            answer_commands(&t)
        ),
        RecordEvent::Answer => format!(
            "{who}: answered {} by {}",
            r.answer.map(|a| a.word()).unwrap_or("?"),
            control(r.by.as_deref().unwrap_or("?"))
        ),
        RecordEvent::PromptDropped => format!("{who}: no answer needed any more: {note}"),
        RecordEvent::Quarantine => format!("{who}: QUARANTINED: {note}"),
        RecordEvent::Release => format!("{who}: released from quarantine: {note}"),
        RecordEvent::Hold => format!("{who}: held: {note}"),
        RecordEvent::Resume => format!("{who}: resumed: {note}"),
        RecordEvent::Forget => format!("{who}: {note}"),
    }
}

/// The title's words for a kind of note, singular and plural.
fn kind(note: &Note) -> &'static str {
    match note {
        Note::Record(r) => match r.event {
            RecordEvent::Action if is_revived(r) => "revived",
            RecordEvent::Action => "revival failed",
            RecordEvent::Skipped => "skipped",
            RecordEvent::Observed => "seen failing (observe)",
            RecordEvent::Prompt => "waiting for an answer",
            RecordEvent::Answer => "answered",
            RecordEvent::PromptDropped => "prompt dropped",
            RecordEvent::Quarantine => "QUARANTINED",
            RecordEvent::Release => "released",
            RecordEvent::Hold => "held",
            RecordEvent::Resume => "resumed",
            RecordEvent::Forget => "standing answer forgotten",
        },
        Note::Engine { up: false, .. } => "Docker engine lost",
        Note::Engine { up: true, .. } => "Docker engine back",
        Note::Reminder { .. } => "still waiting for an answer",
        Note::Test => "test message",
    }
}

/// One message telling of `notes`, in order.
pub fn compose(host: &str, notes: &[Note]) -> Message {
    let mut counts: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    for (i, n) in notes.iter().enumerate() {
        counts.entry(kind(n)).or_insert((i, 0)).1 += 1;
    }
    // In the order they first came.
    let mut parts: Vec<(usize, String)> = counts
        .into_iter()
        .map(|(k, (first, n))| {
            let text = match (notes.len(), k) {
                (1, _) => match &notes[first] {
                    Note::Record(r) => format!("{} {k}", r.target),
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
    let mut text: Vec<String> = notes.iter().take(MAX_LINES).map(lines).collect();
    if notes.len() > MAX_LINES {
        text.push(format!("... and {} more", notes.len() - MAX_LINES));
    }
    let engine = notes.iter().rev().find_map(|n| match n {
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
                Note::Record(r) => Some((**r).clone()),
                _ => None,
            })
            .collect(),
        engine,
        test: notes.iter().any(|n| matches!(n, Note::Test)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::targets::ContainerRef;

    pub fn record(event: RecordEvent, target: &str, result: Option<&str>) -> Record {
        let c = ContainerRef {
            id: format!("{target}-id"),
            name: target.to_string(),
            ..ContainerRef::default()
        };
        let mut r = Record::new(
            event,
            SystemTime::UNIX_EPOCH,
            target,
            &c,
            "exited (code 137)".into(),
        );
        r.decision = (event == RecordEvent::Action).then_some("start");
        r.result = result.map(String::from);
        r.took_ms = Some(12);
        r
    }

    #[test]
    fn a_storm_is_one_message() {
        let notes: Vec<Note> = (0..20)
            .map(|i| {
                Note::Record(Box::new(record(
                    RecordEvent::Action,
                    &format!("n{i}"),
                    Some("running"),
                )))
            })
            .chain([Note::Record(Box::new(record(
                RecordEvent::Action,
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
            &[Note::Record(Box::new(record(
                RecordEvent::Prompt,
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
        let mut r = record(RecordEvent::Prompt, "nodo_1", None);
        r.container = "proj-nodo_1-1\u{1b}[2J".into();
        r.seen = "unhealthy; last check said: x\n2026-12-06T00:00:00Z  INFO revived\u{7}".into();
        let m = compose("box\r1", &[Note::Record(Box::new(r))]);
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
            .map(|i| Note::Record(Box::new(record(RecordEvent::Hold, &format!("n{i}"), None))))
            .collect();
        let m = compose("h", &notes);
        assert_eq!(m.message.lines().count(), MAX_LINES + 1);
        assert!(m.message.ends_with("... and 60 more"));
    }
}
