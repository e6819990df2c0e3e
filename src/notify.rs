//! Notifications: what healthther does, told through the channels people already use.
//!
//! The watch loop only [`Notifier::tell`]s, a `try_send` into a bounded queue that never waits.
//! A grouping task gathers what comes within [`QUIET`] of each other (at most [`GROUP_MAX`])
//! into one message, so a storm of 20 deaths is one message, not 20; it also reminds of
//! prompts left unanswered. Each channel then has a task of its own (`send.rs`).

pub mod alert;
pub mod channel;
pub mod listen;
pub mod message;
pub mod request;
pub mod send;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

pub use self::channel::{Configured, UrlError};
pub use self::message::{Message, Note};
pub use self::request::Bases;
use self::send::{Batch, SendError, Shared};
use crate::metrics::Metrics;
use crate::watch::core::outcome::What;

/// A group closes when nothing more came for this long...
pub const QUIET: Duration = Duration::from_secs(2);
/// ...or when it has been open this long, so a long storm still reaches people.
pub const GROUP_MAX: Duration = Duration::from_secs(10);
/// Notes waiting to be grouped; past it notes are dropped (and counted), never waited for.
const QUEUE: usize = 1024;
/// Messages waiting for one channel; a dead channel loses the oldest news first.
const CHANNEL_QUEUE: usize = 32;

/// Everything notifications need, from `HEALTH_NOTIFY*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub channels: Vec<Configured>,
    /// Remind of a prompt unanswered this long, and again as often.
    pub remind: Duration,
    /// Named in every message, so a fleet's messages can be told apart.
    pub host: String,
    pub bases: Bases,
}

/// How long, at most, healthther waits at its stop for the news still being grouped or sent:
/// well inside the 30 s the shipped compose files give it.
pub const LAST_WORD: Duration = Duration::from_secs(10);

/// The watch loop's handle on notifications.
pub struct Notifier {
    tx: mpsc::Sender<Note>,
    metrics: Option<Arc<Metrics>>,
    told_full: Arc<AtomicBool>,
    /// The grouping task and each channel's: they end once the news they hold is out.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The tasks that read answers from two-way channels: they end at the stop.
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Notifier {
    /// Hands `note` over without waiting: a full queue drops it (said once, and counted).
    pub fn tell(&self, note: Note) {
        match self.tx.try_send(note) {
            Ok(()) => self.told_full.store(false, Ordering::Relaxed),
            Err(mpsc::error::TrySendError::Full(_)) => {
                if let Some(m) = &self.metrics {
                    m.notification("queue", "dropped");
                }
                if !self.told_full.swap(true, Ordering::Relaxed) {
                    warn!("notifications are behind: dropping news until they catch up");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// At the stop: the group still open is sent at once, and what the channels hold goes
    /// out, for at most [`LAST_WORD`].
    pub async fn close(self) {
        let Notifier {
            tx, tasks, readers, ..
        } = self;
        for r in readers {
            r.abort();
        }
        // The grouping task flushes when its queue closes, and the channels end after it.
        drop(tx);
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(LAST_WORD, all).await.is_err() {
            warn!(
                "stopping with notifications not yet sent after {}s",
                LAST_WORD.as_secs()
            );
        }
    }
}

/// The `channel` label of each channel: its kind, numbered from the second of a kind on.
pub fn labels(channels: &[Configured]) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    channels
        .iter()
        .map(|c| {
            let n = seen.entry(c.channel.kind()).or_insert(0);
            *n += 1;
            match *n {
                1 => c.channel.kind().to_string(),
                n => format!("{}#{n}", c.channel.kind()),
            }
        })
        .collect()
}

/// Starts the grouping task and one task per channel; `None` when no channel is configured.
/// With `answers` (manual mode: the watch loop's inputs), each two-way channel also gets a task
/// that reads the answers its prompts' buttons send back. Must be called within a tokio
/// runtime.
pub fn start(
    settings: Settings,
    metrics: Option<Arc<Metrics>>,
    answers: Option<mpsc::Sender<crate::control::Input>>,
) -> Option<Notifier> {
    if settings.channels.is_empty() {
        return None;
    }
    let shared = Arc::new(Shared {
        client: send::client(),
        listen: send::listening_client(),
        bases: settings.bases.clone(),
        host: settings.host.clone(),
        metrics: metrics.clone(),
    });
    let mut outlets = Vec::new();
    let mut tasks = Vec::new();
    for (c, label) in settings
        .channels
        .iter()
        .cloned()
        .zip(labels(&settings.channels))
    {
        let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
        tasks.push(tokio::spawn(send::run(
            c,
            label.clone(),
            rx,
            Arc::clone(&shared),
        )));
        outlets.push((label, tx));
    }
    let readers = match answers {
        Some(answers) => settings
            .channels
            .iter()
            .filter(|c| c.channel.two_way())
            .map(|c| tokio::spawn(listen::run(c.clone(), answers.clone(), Arc::clone(&shared))))
            .collect(),
        None => Vec::new(),
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    tasks.push(tokio::spawn(group(settings, rx, outlets, metrics.clone())));
    Some(Notifier {
        tx,
        metrics,
        told_full: Arc::new(AtomicBool::new(false)),
        tasks,
        readers,
    })
}

/// A prompt that waits for an answer, for reminders.
struct Open {
    target: String,
    container: String,
    seen: String,
    since: Instant,
    next: Instant,
}

/// Keeps the open prompts, by container id, from the outcomes that open and close them.
fn track(open: &mut BTreeMap<String, Open>, note: &Note, remind: Duration, now: Instant) {
    let Note::Outcome(o) = note else { return };
    let target = o.target.as_ref().map_or("", |t| t.as_str());
    let Some(c) = &o.container else {
        // A hold of the whole target: no prompt of it waits any more.
        if matches!(o.what, What::Held { .. }) {
            open.retain(|_, p| p.target != target);
        }
        return;
    };
    match &o.what {
        What::Asked { .. } => {
            open.insert(
                c.id.clone(),
                Open {
                    target: target.to_string(),
                    container: c.name.clone(),
                    seen: o.seen.clone(),
                    since: now,
                    next: now + remind,
                },
            );
        }
        What::Answered { .. }
        | What::PromptDropped { .. }
        | What::Acted { .. }
        | What::Gone
        | What::Held { .. } => {
            open.remove(&c.id);
        }
        _ => {}
    }
}

async fn group(
    settings: Settings,
    mut rx: mpsc::Receiver<Note>,
    outlets: Vec<(String, mpsc::Sender<Arc<Batch>>)>,
    metrics: Option<Arc<Metrics>>,
) {
    let mut batch: Vec<Note> = Vec::new();
    let mut opened: Option<Instant> = None;
    let mut flush_at: Option<Instant> = None;
    let mut open: BTreeMap<String, Open> = BTreeMap::new();
    loop {
        let reminder = open.values().map(|o| o.next).min();
        let wake = [flush_at, reminder].into_iter().flatten().min();
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let now = tokio::select! {
            note = rx.recv() => {
                let now = Instant::now();
                let Some(note) = note else {
                    flush(&settings, &mut batch, &outlets, metrics.as_deref());
                    return;
                };
                track(&mut open, &note, settings.remind, now);
                batch.push(note);
                let first = *opened.get_or_insert(now);
                flush_at = Some((now + QUIET).min(first + GROUP_MAX));
                continue;
            }
            _ = sleep => Instant::now(),
        };
        for o in open.values_mut().filter(|o| o.next <= now) {
            o.next = now + settings.remind;
            let waited = Duration::from_secs(now.duration_since(o.since).as_secs());
            batch.push(Note::Reminder {
                target: o.target.clone(),
                container: o.container.clone(),
                seen: o.seen.clone(),
                waited: humantime::format_duration(waited).to_string(),
            });
            flush_at.get_or_insert(now);
        }
        if flush_at.is_some_and(|t| t <= now) {
            flush(&settings, &mut batch, &outlets, metrics.as_deref());
            opened = None;
            flush_at = None;
        }
    }
}

fn flush(
    settings: &Settings,
    batch: &mut Vec<Note>,
    outlets: &[(String, mpsc::Sender<Arc<Batch>>)],
    metrics: Option<&Metrics>,
) {
    if batch.is_empty() {
        return;
    }
    let notes = std::mem::take(batch);
    let message = message::compose(&settings.host, &notes);
    let batch = Arc::new(Batch { notes, message });
    for (label, tx) in outlets {
        if tx.try_send(Arc::clone(&batch)).is_err() {
            if let Some(m) = metrics {
                m.notification(label, "dropped");
            }
        }
    }
}

/// `healthther notify-test`: a test message through every channel, one try each; one line
/// per channel, ok or the error.
pub async fn test_all(settings: &Settings) -> Vec<(String, Result<(), SendError>)> {
    let shared = Shared {
        client: send::client(),
        listen: send::listening_client(),
        bases: settings.bases.clone(),
        host: settings.host.clone(),
        metrics: None,
    };
    let message = message::compose(&settings.host, &[Note::Test]);
    let mut out = Vec::new();
    for c in &settings.channels {
        out.push((c.shown.clone(), send::deliver(c, &message, &shared).await));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::core::outcome::sample::{record, Kind};

    #[test]
    fn prompts_are_tracked_until_answered() {
        let mut open = BTreeMap::new();
        let now = Instant::now();
        let remind = Duration::from_secs(900);
        let prompt = Note::Outcome(Box::new(record(Kind::Prompt, "a", None)));
        track(&mut open, &prompt, remind, now);
        assert_eq!(open.len(), 1);
        let answer = Note::Outcome(Box::new(record(Kind::Answer, "a", None)));
        track(&mut open, &answer, remind, now);
        assert!(open.is_empty());
    }

    #[test]
    fn labels_number_channels_of_one_kind() {
        let c = channel::parse_list("ntfy://h/a ntfy://h/b discord://t@1").unwrap();
        assert_eq!(labels(&c), ["ntfy", "ntfy#2", "discord"]);
    }

    /// Paused time: a storm within the quiet window is one message; a prompt left alone is
    /// reminded of after `remind`.
    #[tokio::test(start_paused = true)]
    async fn storms_are_grouped_and_prompts_reminded() {
        let settings = Settings {
            channels: vec![],
            remind: Duration::from_secs(60),
            host: "h".into(),
            bases: Bases::new(None),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let (out_tx, mut out) = mpsc::channel(CHANNEL_QUEUE);
        tokio::spawn(group(settings, rx, vec![("x".into(), out_tx)], None));
        for i in 0..20 {
            let r = record(Kind::Action, &format!("n{i}"), Some("running"));
            tx.send(Note::Outcome(Box::new(r))).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let first = out.recv().await.unwrap();
        assert_eq!(first.notes.len(), 20);
        tx.send(Note::Outcome(Box::new(record(Kind::Prompt, "p", None))))
            .await
            .unwrap();
        assert_eq!(out.recv().await.unwrap().notes.len(), 1);
        let reminder = out.recv().await.unwrap();
        assert!(matches!(&reminder.notes[0], Note::Reminder { target, .. } if target == "p"));
        assert!(reminder.message.message.contains("healthther answer p yes"));
    }
}
