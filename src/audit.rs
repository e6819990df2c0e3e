//! Where healthther tells what it did: the console for people, and in the log directory a
//! human-readable log and a JSON Lines audit file with one object per action. Both files rotate
//! daily.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use serde::Serialize;
use thiserror::Error;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::escape::{self, Escaping};
use crate::policy::Mode;
use crate::policy::{Health, Snapshot};
use crate::prompt::Answer;
use crate::targets::ContainerRef;
use crate::watch::core::outcome::{ActResult, Action, Approval, Cause, Outcome, Skip, What};

/// Lines a log writer may fall behind before it drops lines (the audit file is written apart
/// and drops none). Each queue is allocated and touched whole at start, 32 bytes a line, so
/// this is resident memory from the first second: 1024 lines are 32 KiB, and a writer that
/// is not stalled drains them in well under a millisecond.
const BUFFERED_LINES: usize = 1024;

pub use crate::watch::core::outcome::FILE_ONLY;

/// Prints a line for the operator on the console: stdout, so `docker logs` keeps it. Prompts
/// are whole lines too, since the engine's log copier holds back a line until it ends. Goes
/// through the same non-blocking writer as the log lines, so they keep their order and a
/// stalled stdout (nobody reading the pipe, flow control under `docker attach`) never holds up
/// the watch loop.
/// Control characters in `text` are written out (see [`escape::control`]): a prompt holds a
/// container's name and what its health check said.
pub fn print_line(text: &str) {
    let line = format!("{}\n", escape::control(text));
    match CONSOLE.get() {
        // A whole line is one message to the writer's thread: lines are never interleaved.
        Some(console) => {
            let _ = console.clone().write_all(line.as_bytes());
        }
        // Before logging is set up there is no runtime to hold up.
        None => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }
}

/// The console's non-blocking writer, once [`init`] has set it up.
static CONSOLE: OnceLock<NonBlocking> = OnceLock::new();

/// Human-readable logs are kept this many days; the audit file is kept forever (it is small).
const KEEP_LOG_DAYS: usize = 31;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("log directory {path}: {reason}; make it a writable directory or set HEALTH_LOG_DIR (--log-dir)")]
    LogDir { path: String, reason: String },
}

/// The audit file: one JSON object per line, one line per action.
pub struct Audit {
    file: Mutex<LogFile>,
}

/// Keeps the console's and the human log's writer threads alive; dropping it flushes what they
/// still hold (waiting a second at most, so a stalled stdout cannot hold up the exit). Keep it
/// until the process ends.
#[must_use = "logging stops when the guard is dropped"]
pub struct LogGuard {
    _console: WorkerGuard,
    _human: WorkerGuard,
}

/// The version of the audit file's format, the `v` of every record. Internal types may change
/// freely; the fields below change only with a new version.
pub const FORMAT_VERSION: u32 = 1;

/// One line of the audit file: an action taken on a target, or anything else worth a record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub v: u32,
    pub time: String,
    pub event: RecordEvent,
    pub target: String,
    pub container: String,
    pub container_id: String,
    /// What was seen, for people: `exited (code 137)`.
    pub seen: String,
    /// `auto` or `manual`, for actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// Who decided: `auto`, or the operator's answer and where it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// What was seen, for machines: status, health, exit code, OOM kill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// `start`, `restart`, or `none` when nothing was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'static str>,
    /// Why it went down: `api_kill`, `api_stop`, `crash`, `oom` or `unhealthy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'static str>,
    /// `running` when the container runs again; `already_running` when someone else started it
    /// first; `not_a_target` when it was no target any more at the last look; else what it is
    /// now, `removed`, `left_stopped`, `unknown` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The engine's error text, when the action failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The kinds of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordEvent {
    /// A start or restart was carried out.
    Action,
    /// An action was allowed but not taken, `result` says why.
    Skipped,
    Prompt,
    Answer,
    PromptDropped,
    Quarantine,
    Release,
    /// `MODE=observe` (or the label) saw what it would have acted on.
    Observed,
    /// A target held: by the operator, or stopped through the API under `HEALTH_ON_STOP=hold`.
    Hold,
    /// A hold ended.
    Resume,
    /// An operator's standing `always` or `never` for a target was forgotten.
    Forget,
}

/// A container's state as the audit file writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    pub status: String,
    pub health: Health,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub has_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_output: Option<String>,
    /// The probe's last error, while a probe declared by label fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_error: Option<String>,
}

impl From<&Snapshot> for State {
    fn from(s: &Snapshot) -> State {
        State {
            status: s.status.to_string(),
            health: s.health,
            exit_code: s.exit_code,
            oom_killed: s.oom_killed,
            has_run: s.has_run,
            started_at: s.started_at.clone(),
            error: s.error.clone(),
            health_output: s.health_output.clone(),
            probe_error: s.probe_error.clone(),
        }
    }
}

impl Record {
    /// A record of `event` about `c`, at `time`, the other fields empty.
    pub fn new(
        event: RecordEvent,
        time: SystemTime,
        target: &str,
        c: &ContainerRef,
        seen: String,
    ) -> Record {
        Record {
            v: FORMAT_VERSION,
            time: humantime::format_rfc3339_millis(time).to_string(),
            event,
            target: target.to_string(),
            container: c.name.clone(),
            container_id: c.id.clone(),
            seen,
            mode: None,
            by: None,
            state: None,
            decision: None,
            cause: None,
            result: None,
            error: None,
            took_ms: None,
            answer: None,
            note: None,
        }
    }
}

impl Record {
    /// The audit file's line for what the core reports; `None` for what is no action or
    /// decision (a container that runs again by itself, or went). This is the one place where
    /// the core's types become the file's words, which change only with [`FORMAT_VERSION`].
    pub fn of(o: &Outcome) -> Option<Record> {
        let event = match &o.what {
            What::Acted { .. } => RecordEvent::Action,
            What::Skipped { .. } => RecordEvent::Skipped,
            What::Observed { .. } => RecordEvent::Observed,
            What::Asked { .. } => RecordEvent::Prompt,
            What::Answered { .. } => RecordEvent::Answer,
            What::PromptDropped { .. } => RecordEvent::PromptDropped,
            What::Quarantined { .. } => RecordEvent::Quarantine,
            What::Released { .. } => RecordEvent::Release,
            What::Held { .. } => RecordEvent::Hold,
            What::Resumed { .. } => RecordEvent::Resume,
            What::Forgotten { .. } => RecordEvent::Forget,
            What::Recovered | What::Gone => return None,
        };
        let none = ContainerRef::default();
        let mut r = Record::new(
            event,
            o.at,
            o.target.as_ref().map_or("", |t| t.as_str()),
            o.container.as_ref().unwrap_or(&none),
            o.seen.clone(),
        );
        r.state = o.state.as_ref().map(State::from);
        match &o.what {
            What::Acted {
                mode,
                approval,
                parent,
                action,
                cause,
                result,
                took,
            } => {
                r.mode = Some(mode_word(*mode));
                r.by = Some(match parent {
                    Some(p) => format!("{}; its parent {}", approval.by(), p.name),
                    None => approval.by(),
                });
                r.note = match (result, parent) {
                    (ActResult::Withdrawn, _) => Some(
                        "its compose project began to be stopped or removed before the start \
                         was sent; not started"
                            .into(),
                    ),
                    _ if *action == Action::Stop => Some(
                        "our start of it ended while its compose project was being stopped or \
                         removed; stopped again so that compose can remove it"
                            .into(),
                    ),
                    (ActResult::Recreated { id }, Some(p)) => Some(format!(
                        "recreated as {} with the same configuration, joined to the network of \
                         {} ({})",
                        short(id),
                        p.name,
                        short(&p.id)
                    )),
                    _ => None,
                };
                r.decision = Some(action.word());
                r.cause = Some(cause.word());
                r.result = Some(result.word());
                r.error = result.error();
                r.took_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
            }
            What::Skipped {
                mode,
                approval,
                cause,
                why,
                note,
            } => {
                r.mode = mode.map(mode_word);
                r.by = approval.as_ref().map(Approval::by);
                r.decision = Some("none");
                r.cause = cause.map(Cause::word);
                r.result = Some(skip_word(*why).into());
                r.note = note.clone();
            }
            What::Observed {
                mode,
                would,
                never,
                note,
            } => {
                r.mode = Some(mode_word(*mode));
                r.decision = Some(would.word());
                r.result = Some(if *never { "never" } else { "observed" }.into());
                r.note = note.clone();
            }
            // The token is never written: whoever reads the file must not answer with it.
            What::Asked { prompt, .. } => {
                // A prompt's line keeps to what it asks; the action that follows has the state.
                r.state = None;
                r.note = Some(prompt.clone());
            }
            What::Answered {
                answer,
                by,
                same_target,
            } => {
                r.answer = Some(*answer);
                r.by = Some(by.clone());
                r.note = same_target.then(|| "same target".into());
            }
            What::PromptDropped { why } | What::Resumed { why } => r.note = Some(why.clone()),
            What::Quarantined { note } => r.note = Some(note.clone()),
            What::Released { by } => {
                r.note = Some(match by {
                    Some(by) => format!("released by {by}"),
                    None => "runs well again".into(),
                });
            }
            What::Held { by, note } => {
                r.by = by.clone();
                r.note = Some(note.clone());
            }
            What::Forgotten { answer, by } => {
                r.by = Some(by.clone());
                r.note = Some(format!(
                    "forgot the standing answer {} (by {by})",
                    answer.word()
                ));
            }
            What::Recovered | What::Gone => {}
        }
        Some(r)
    }
}

fn skip_word(why: Skip) -> &'static str {
    match why {
        Skip::NotATarget => "not_a_target",
        Skip::Held => "held",
        Skip::Quarantined => "quarantined",
        Skip::NeedsRecreate => "needs_recreate",
        Skip::SwarmTask => "swarm_task",
        Skip::DependentNotATarget => "dependent_not_a_target",
    }
}

pub fn mode_word(mode: Mode) -> &'static str {
    match mode {
        Mode::Auto => "auto",
        Mode::Manual => "manual",
        Mode::Observe => "observe",
    }
}

/// An id as `docker ps` shows it.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The record of a recreation a crash of ours cut short, finished at start-up: `c` is the
/// container now under the target's name.
pub fn recreation_finished(target: &crate::targets::TargetName, c: &ContainerRef) -> Record {
    let mut r = Record::new(
        RecordEvent::Action,
        SystemTime::now(),
        target.as_str(),
        c,
        "a recreation cut short".into(),
    );
    r.mode = Some("auto");
    r.by = Some("auto".into());
    r.decision = Some("recreate");
    r.cause = Some("parent_recreated");
    r.result = Some("running".into());
    r.note = Some(
        "healthther stopped in the middle of this recreation; finished at its next start".into(),
    );
    r
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Sets up logging to the console (colour when `color`) and the log directory, and opens the
/// audit file. Fails, naming the path, when the directory cannot be created or written.
pub fn init(dir: &Path, filter: &str, color: bool) -> Result<(Audit, LogGuard), AuditError> {
    let fail = |reason: String| AuditError::LogDir {
        path: dir.display().to_string(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(fail("it is not a directory".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    mend_torn_tail(dir).map_err(|e| fail(e.to_string()))?;
    let mut human = LogFile::new(dir, "healthther", "log", Some(KEEP_LOG_DAYS));
    let mut audit = LogFile::new(dir, "audit", "jsonl", None);
    // Open both now, so an unwritable directory is said at start.
    human.open_today().map_err(|e| fail(e.to_string()))?;
    audit.open_today().map_err(|e| fail(e.to_string()))?;

    // Both writers hand each line to a thread of their own: the runtime's one thread never
    // waits on stdout or the disk. Lossy: should a writer fall BUFFERED_LINES behind, lines are
    // dropped rather than the watch loop stopped. (The queue is allocated whole up front: the
    // library's default of 128,000 lines cost 10 MB of memory for the two of them.)
    let (console_writer, console_guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("console")
        .finish(std::io::stdout());
    let (human_writer, human_guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log-file")
        .finish(human);
    let _ = CONSOLE.set(console_writer.clone());

    // Checked already in config; a filter that still fails falls back to info. `Targets`, not
    // `EnvFilter`: the same `info,healthther=debug` syntax without a regex engine in the binary.
    let filter = filter
        .parse::<Targets>()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    // Records of prompts go to the file only: the console shows the prompt itself.
    let console = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(color)
        .fmt_fields(EscapedFields)
        .with_writer(console_writer)
        .with_filter(filter_fn(|meta| meta.target() != FILE_ONLY));
    let file = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(false)
        .fmt_fields(EscapedFields)
        .with_writer(human_writer);
    // Only fails if a global subscriber is already set, which nothing else in the binary does.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(console)
        .with(file)
        .try_init();
    let guard = LogGuard {
        _console: console_guard,
        _human: human_guard,
    };
    Ok((
        Audit {
            file: Mutex::new(audit),
        },
        guard,
    ))
}

/// A log line's message and fields as tracing writes them, with every control character in
/// them written out (see [`escape::control`]). Container names, labels, health check output and
/// the engine's words about a container reach the log through many call sites; here none of
/// them can forget. The line's own parts (time, level) and its ending newline are written by
/// the event formatter around this, so colour and one line per event stay. (Field names lose
/// their italics on a colour console: the escaping writer cannot tell them apart.)
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut escaping = Escaping(&mut writer);
        DefaultFields::new().format_fields(Writer::new(&mut escaping), fields)
    }
}

/// Whether the console may use colour: a terminal, and no `NO_COLOR` (https://no-color.org:
/// present and not empty disables it).
pub fn console_color(no_color: Option<&std::ffi::OsStr>) -> bool {
    std::io::stdout().is_terminal() && no_color.is_none_or(|v| v.is_empty())
}

/// A daily log file of the log directory, written one whole line at a time. Before each line
/// it checks that its file is still the one at its path, so a log directory removed while we
/// run (`rm -rf logs`) is made again and no line goes to an unlinked file; and after a write
/// that failed or was cut short (a full disk) the next line starts on a line of its own.
pub struct LogFile {
    dir: PathBuf,
    prefix: &'static str,
    suffix: &'static str,
    keep: Option<usize>,
    open: Option<OpenFile>,
    /// The file may end in a line cut short: the next write begins with a newline.
    torn: bool,
}

struct OpenFile {
    date: String,
    path: PathBuf,
    file: std::fs::File,
    dev: u64,
    ino: u64,
}

/// What [`LogFile::write_line`] had to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Appended,
    /// The file (or its directory) had gone and was made again at this path.
    Recreated(PathBuf),
}

impl LogFile {
    pub fn new(
        dir: &Path,
        prefix: &'static str,
        suffix: &'static str,
        keep: Option<usize>,
    ) -> Self {
        LogFile {
            dir: dir.to_path_buf(),
            prefix,
            suffix,
            keep,
            open: None,
            torn: false,
        }
    }

    /// Opens today's file (UTC, as the file names have always been), making the directory if
    /// it is gone.
    fn open_today(&mut self) -> std::io::Result<&mut OpenFile> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let date = now_rfc3339()[..10].to_string();
        let rotated = self.open.as_ref().is_some_and(|o| o.date != date);
        std::fs::create_dir_all(&self.dir)?;
        let path = self
            .dir
            .join(format!("{}.{date}.{}", self.prefix, self.suffix));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let meta = file.metadata()?;
        // A file that ends mid-line (healthther killed while writing) is ended first.
        let mut last = [0u8; 1];
        self.torn =
            meta.len() > 0 && file.read_at(&mut last, meta.len() - 1).is_ok() && last[0] != b'\n';
        if rotated {
            self.prune();
        }
        Ok(self.open.insert(OpenFile {
            date,
            path,
            dev: meta.dev(),
            ino: meta.ino(),
            file,
        }))
    }

    /// Whether the open file is still today's file at its path.
    fn is_current(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Some(open) = &self.open else {
            return false;
        };
        open.date == now_rfc3339()[..10]
            && std::fs::metadata(&open.path)
                .is_ok_and(|m| m.dev() == open.dev && m.ino() == open.ino)
    }

    /// Appends `line` (which ends in a newline) in one write.
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<Written> {
        let mut written = Written::Appended;
        if !self.is_current() {
            let replaced = self
                .open
                .as_ref()
                .is_some_and(|o| o.date == now_rfc3339()[..10]);
            let open = self.open_today()?;
            if replaced {
                written = Written::Recreated(open.path.clone());
            }
        }
        let torn = self.torn;
        let Some(open) = self.open.as_mut() else {
            return Err(std::io::Error::other("the log file is not open"));
        };
        let mut buf = Vec::with_capacity(line.len() + 1);
        if torn {
            buf.push(b'\n');
        }
        buf.extend_from_slice(line);
        let mut done = 0;
        while done < buf.len() {
            match open.file.write(&buf[done..]) {
                Ok(0) => {
                    self.torn |= done > 0;
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Part of the line is in the file: the next one must not run into it.
                    self.torn |= done > 0;
                    return Err(e);
                }
            }
        }
        self.torn = false;
        Ok(written)
    }

    /// Removes the oldest files beyond `keep`.
    fn prune(&self) {
        let Some(keep) = self.keep else {
            return;
        };
        let start = format!("{}.", self.prefix);
        let end = format!(".{}", self.suffix);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.starts_with(&start) && name.ends_with(&end)
            })
            .collect();
        files.sort();
        let excess = files.len().saturating_sub(keep);
        for old in &files[..excess] {
            let _ = std::fs::remove_file(old);
        }
    }
}

/// The human log, written by its own thread through [`NonBlocking`]: each message is one whole
/// line formatted by tracing.
impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Written::Recreated(path) = self.write_line(buf)? {
            let note = format!(
                "WARN the log file {} had been removed (or its directory); made it again",
                path.display()
            );
            print_line(&note);
            let _ = self.write_line(format!("{note}\n").as_bytes());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Audit {
    /// Appends one record as one line, in a single write so a line is whole or absent. A
    /// failure to write is reported on the console; the action itself is not undone.
    /// Writes what the core reports, if it is a record (see [`Record::of`]).
    pub fn report(&self, o: &Outcome) {
        if let Some(r) = Record::of(o) {
            self.record(&r);
        }
    }

    pub fn record(&self, record: &Record) {
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an audit record");
                return;
            }
        };
        line.push(b'\n');
        // A poisoned lock only means another writer panicked mid-write; the file is still usable.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        match file.write_line(&line) {
            Ok(Written::Appended) => {}
            Ok(Written::Recreated(path)) => tracing::warn!(
                path = %path.display(),
                "the audit file had been removed (or its directory); made it again and wrote \
                 the record there"
            ),
            Err(e) => print_line(&format!(
                "healthther: cannot write the audit file: {e}; the record was: {}",
                String::from_utf8_lossy(&line).trim_end()
            )),
        }
    }
}

/// What the audit files hold.
#[derive(Debug, Default)]
pub struct AuditLog {
    /// Every whole record, oldest first.
    pub records: Vec<serde_json::Value>,
    /// Lines that are not a JSON object: a line cut short (healthther killed mid-write, a full
    /// disk). Each record is written in one write, so at most one per interruption.
    pub torn: Vec<String>,
}

/// Reads every audit file in `dir`, setting torn lines aside instead of failing on them.
pub fn read(dir: &Path) -> std::io::Result<AuditLog> {
    let mut log = AuditLog::default();
    for file in audit_files(dir) {
        for line in std::fs::read_to_string(&file)?.lines() {
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) if v.is_object() => log.records.push(v),
                _ if line.trim().is_empty() => {}
                _ => log.torn.push(line.to_string()),
            }
        }
    }
    Ok(log)
}

/// Ends a torn last line of the newest audit file, so the next record starts on a line of its
/// own instead of running into it.
fn mend_torn_tail(dir: &Path) -> std::io::Result<()> {
    let Some(newest) = audit_files(dir).pop() else {
        return Ok(());
    };
    let text = std::fs::read(&newest)?;
    if text.last().is_some_and(|b| *b != b'\n') {
        let mut f = std::fs::OpenOptions::new().append(true).open(&newest)?;
        f.write_all(b"\n")?;
    }
    Ok(())
}

/// Where the audit files of `dir` are, oldest first.
pub fn audit_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("audit.") && name.ends_with(".jsonl")
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log line's writer that keeps what it is given.
    #[derive(Clone, Default)]
    struct Kept(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_line_stays_one_line_with_its_controls_written_out() {
        let kept = Kept::default();
        let writer = kept.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_target(false)
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .with_writer(move || writer.clone())
            .finish();
        let output = "sick\n2026-12-06T00:00:00Z  INFO revived\u{1b}]0;pwned\u{7}";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(container = %"a\u{202e}b", seen = %output, "{output} as message");
        });
        let text = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with('\n'), "{text:?}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        let escaped = "sick\\n2026-12-06T00:00:00Z  INFO revived\\x1b]0;pwned\\x07";
        assert!(text.contains(&format!("{escaped} as message")), "{text}");
        assert!(text.contains(&format!("seen={escaped}")), "{text}");
        assert!(text.contains("container=a\\u{202e}b"), "{text}");
    }

    #[test]
    fn torn_lines_are_set_aside_and_the_tail_is_mended() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.2026-11-25.jsonl");
        std::fs::write(&file, "{\"event\":\"action\"}\n{\"event\":\"act").unwrap();
        let log = read(dir.path()).unwrap();
        assert_eq!(log.records.len(), 1);
        assert_eq!(log.torn, ["{\"event\":\"act"]);

        mend_torn_tail(dir.path()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(b"{\"event\":\"answer\"}\n").unwrap();
        let log = read(dir.path()).unwrap();
        assert_eq!(log.records.len(), 2, "the next record is whole");
        assert_eq!(log.torn.len(), 1);
        // Mending a whole file changes nothing.
        mend_torn_tail(dir.path()).unwrap();
        assert_eq!(read(dir.path()).unwrap().records.len(), 2);
    }
}
