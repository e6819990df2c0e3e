//! Where healthther tells what it did: the console for people, and in the log directory a
//! human-readable log and a JSON Lines audit file with one object per action. Both files rotate
//! daily.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use thiserror::Error;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::engine::error_chain;
use crate::policy::{Snapshot, Verdict};
use crate::prompt::Answer;

/// The tracing target of events that go to the log file but not the console.
pub const FILE_ONLY: &str = "healthther::file_only";

/// Prints a line for the operator on the console: stdout, so `docker logs` keeps it. Prompts
/// are whole lines too, since the engine's log copier holds back a line until it ends.
pub fn print_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Human-readable logs are kept this many days; the audit file is kept forever (it is small).
const KEEP_LOG_DAYS: usize = 31;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("log directory {path}: {reason}; make it a writable directory or set HEALTH_LOG_DIR (--log-dir)")]
    LogDir { path: String, reason: String },
}

/// The audit file: one JSON object per line, one line per action.
pub struct Audit {
    file: Mutex<RollingFileAppender>,
}

/// One action taken on a target, as written to the audit file.
#[derive(Debug, Serialize)]
pub struct ActionRecord<'a> {
    pub time: String,
    /// Always `action`, telling these apart from prompt records.
    pub event: &'static str,
    pub target: &'a str,
    pub container: &'a str,
    pub container_id: &'a str,
    pub mode: &'a str,
    /// Who decided: `auto`, or the operator's answer and where it came from.
    pub by: &'a str,
    /// What was seen, for people: `exited (code 137)`.
    pub seen: String,
    /// What was seen, for machines: status, health, exit code, OOM kill.
    pub state: &'a Snapshot,
    pub decision: Verdict,
    /// `running` when the container runs again; else what it is now, or `failed`.
    pub result: String,
    /// The engine's error text, when the action failed.
    pub error: Option<String>,
    pub took_ms: u64,
}

/// Anything else worth a record: a manual-mode prompt, answer or dropped prompt, a quarantine
/// or a release, as written to the audit file.
#[derive(Debug, Serialize)]
pub struct EventRecord<'a> {
    pub time: String,
    /// `prompt`, `answer`, `prompt_dropped`, `quarantine` or `release`.
    pub event: &'static str,
    pub target: &'a str,
    pub container: &'a str,
    pub container_id: &'a str,
    pub seen: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// Where the answer came from: the terminal or the control socket (with uid and pid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'a str>,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Sets up logging to the console and the log directory and opens the audit file. Fails, naming
/// the path, when the directory cannot be created or written.
pub fn init(dir: &Path, filter: &str) -> Result<Audit, AuditError> {
    let fail = |reason: String| AuditError::LogDir {
        path: dir.display().to_string(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(fail("it is not a directory".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    mend_torn_tail(dir).map_err(|e| fail(e.to_string()))?;
    let human = appender(dir, "healthther", "log", Some(KEEP_LOG_DAYS)).map_err(&fail)?;
    let audit = appender(dir, "audit", "jsonl", None).map_err(&fail)?;

    // Checked already in config; a filter that still fails falls back to info.
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Records of prompts go to the file only: the console shows the prompt itself.
    let console = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout)
        .with_filter(filter_fn(|meta| meta.target() != FILE_ONLY));
    let file = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(false)
        .with_writer(human);
    // Only fails if a global subscriber is already set, which nothing else in the binary does.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(console)
        .with(file)
        .try_init();
    Ok(Audit {
        file: Mutex::new(audit),
    })
}

fn appender(
    dir: &Path,
    prefix: &str,
    suffix: &str,
    keep: Option<usize>,
) -> Result<RollingFileAppender, String> {
    let mut builder = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(prefix)
        .filename_suffix(suffix);
    if let Some(n) = keep {
        builder = builder.max_log_files(n);
    }
    builder.build(dir).map_err(|e| error_chain(&e))
}

impl Audit {
    /// Appends one record as one line, in a single write so a line is whole or absent. A
    /// failure to write is reported on the console; the action itself is not undone.
    pub fn record(&self, record: &impl Serialize) {
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
        if let Err(e) = file.write_all(&line).and_then(|()| file.flush()) {
            eprintln!(
                "healthther: cannot write the audit file: {e}; the record was: {}",
                String::from_utf8_lossy(&line).trim_end()
            );
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
