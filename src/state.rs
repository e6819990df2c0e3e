//! The decisions that survive a restart of healthther (holds, quarantines, back-off histories,
//! `always`/`never` answers), in one small JSON file in the log directory: written whole to a
//! temporary file and renamed over the old one, so a kill at any moment leaves either the old
//! file or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::backoff::SavedHistory;

pub const FILE_NAME: &str = "state.json";
/// The version of the file's format.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub v: u32,
    pub holds: Vec<SavedHold>,
    /// Targets the operator answered `always` for.
    pub always: Vec<String>,
    /// Targets the operator answered `never` for.
    pub never: Vec<String>,
    /// Revival histories (back-off and quarantine), by container.
    pub containers: Vec<SavedContainer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedHold {
    pub target: String,
    pub reason: String,
    pub by: String,
    #[serde(with = "crate::backoff::time")]
    pub since: Option<SystemTime>,
    /// When it ends by itself; `None` holds until `healthther resume`.
    #[serde(with = "crate::backoff::time")]
    pub until: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedContainer {
    pub id: String,
    /// For people reading the file; the id is what counts.
    pub name: String,
    pub history: SavedHistory,
}

#[derive(Debug, Error)]
pub enum StateError {
    #[error("reading the state file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the state file {path} cannot be read back ({reason}); it was set aside as {aside} \
         and healthther starts afresh"
    )]
    Corrupt {
        path: String,
        reason: String,
        aside: String,
    },
    #[error(
        "the state file {path} is not a regular file ({what}); healthther neither reads nor \
         replaces it: remove it, or set HEALTH_LOG_DIR (--log-dir) to another directory"
    )]
    NotAFile { path: String, what: &'static str },
    #[error(
        "the state file {path} had entries that cannot be read back, dropped: {dropped}; the \
         rest was restored, and the file as it was is kept as {copy}"
    )]
    Dropped {
        path: String,
        dropped: String,
        copy: String,
    },
    #[error("writing the state file {path}: {source}; holds, quarantines and answers may be lost at the next restart")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub fn path_in(log_dir: &Path) -> PathBuf {
    log_dir.join(FILE_NAME)
}

/// What [`load`] read back.
#[derive(Debug, Default)]
pub struct Loaded {
    /// `None`: no file, a fresh start.
    pub saved: Option<Saved>,
    /// Entries that could not be read back and were left out ([`StateError::Dropped`]), to be
    /// reported.
    pub dropped: Option<StateError>,
}

/// Reads the state back. No file is a fresh start; an entry that cannot be read back is left
/// out, the rest restored, and the file as it was copied aside; a file that cannot be read
/// back at all is renamed aside (never deleted) and reported, and healthther starts fresh.
/// Anything but a regular file (a FIFO would wait for ever for a writer) is refused.
pub fn load(path: &Path) -> Result<Loaded, StateError> {
    let shown = path.display().to_string();
    let text = match read_regular(path) {
        Ok(text) => text,
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Loaded::default())
        }
        Err(ReadError::Io(source)) => {
            return Err(StateError::Read {
                path: shown,
                source,
            })
        }
        Err(ReadError::NotAFile(what)) => return Err(StateError::NotAFile { path: shown, what }),
    };
    let reason = match serde_json::from_slice::<serde_json::Value>(&text) {
        Ok(value) => match restore(&value) {
            Ok((saved, dropped)) if dropped.is_empty() => {
                return Ok(Loaded {
                    saved: Some(saved),
                    dropped: None,
                })
            }
            Ok((saved, dropped)) => {
                let copy = aside(path, "bad");
                std::fs::write(&copy, &text).map_err(|source| StateError::Read {
                    path: shown.clone(),
                    source,
                })?;
                return Ok(Loaded {
                    saved: Some(saved),
                    dropped: Some(StateError::Dropped {
                        path: shown,
                        dropped: dropped.join(", "),
                        copy: copy.display().to_string(),
                    }),
                });
            }
            Err(reason) => reason,
        },
        Err(e) => e.to_string(),
    };
    let aside = aside(path, "corrupt");
    std::fs::rename(path, &aside).map_err(|source| StateError::Read {
        path: shown.clone(),
        source,
    })?;
    Err(StateError::Corrupt {
        path: shown,
        reason,
        aside: aside.display().to_string(),
    })
}

/// `state.json.<what>-<unix time>` beside `path`.
fn aside(path: &Path, what: &str) -> PathBuf {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    path.with_file_name(format!("{FILE_NAME}.{what}-{stamp}"))
}

enum ReadError {
    Io(std::io::Error),
    NotAFile(&'static str),
}

/// The file's bytes, if it is a regular file. Opened without blocking (a FIFO's open would wait
/// for a writer), then checked on the open file itself, so nothing can be swapped in between.
fn read_regular(path: &Path) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // Opening a directory for reading succeeds on Linux; this is for other systems.
            Some(nix::libc::EISDIR) => ReadError::NotAFile("a directory"),
            _ => ReadError::Io(e),
        })?;
    let kind = file.metadata().map_err(ReadError::Io)?.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("a device")
    };
    if let Some(what) = what {
        return Err(ReadError::NotAFile(what));
    }
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(ReadError::Io)?;
    Ok(text)
}

/// The state in `value`, entry by entry: what cannot be read back is named (`holds[1] (missing
/// field \`by\`)`) and left out. A wrong format version or a file that is no object at all
/// is the whole file's fault.
fn restore(value: &serde_json::Value) -> Result<(Saved, Vec<String>), String> {
    let object = value
        .as_object()
        .ok_or_else(|| "it is not a JSON object".to_string())?;
    match object.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => return Err(format!("format version {v} is not {FORMAT_VERSION}")),
        None => return Err("it has no format version `v`".to_string()),
    }
    let mut dropped = Vec::new();
    let saved = Saved {
        v: FORMAT_VERSION,
        holds: entries(object, "holds", &mut dropped),
        always: entries(object, "always", &mut dropped),
        never: entries(object, "never", &mut dropped),
        containers: entries(object, "containers", &mut dropped),
    };
    Ok((saved, dropped))
}

/// The entries of the list `key` that parse; the others named in `dropped`.
fn entries<T: serde::de::DeserializeOwned>(
    object: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    dropped: &mut Vec<String>,
) -> Vec<T> {
    let Some(list) = object.get(key) else {
        dropped.push(format!("{key} (missing)"));
        return Vec::new();
    };
    let Some(list) = list.as_array() else {
        dropped.push(format!("{key} (not a list)"));
        return Vec::new();
    };
    let mut kept = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        match T::deserialize(entry) {
            Ok(t) => kept.push(t),
            Err(e) => dropped.push(format!("{key}[{i}] ({e})")),
        }
    }
    kept
}

/// Writes the state: a temporary file beside it, flushed to disk, then renamed over it.
pub fn save(path: &Path, saved: &Saved) -> Result<(), StateError> {
    let fail = |source| StateError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut text = serde_json::to_vec_pretty(saved).map_err(|e| fail(e.into()))?;
    text.push(b'\n');
    let temp = path.with_file_name(format!("{FILE_NAME}.tmp"));
    let mut file = std::fs::File::create(&temp).map_err(fail)?;
    file.write_all(&text).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&temp, path).map_err(fail)
}

/// Writes the state on a thread of its own, so a slow disk (the write ends with an fsync) never
/// holds up the watch loop; when several states queue up, only the newest is written.
pub struct Writer {
    tx: Option<std::sync::mpsc::Sender<Saved>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub fn spawn(path: PathBuf) -> Writer {
        let (tx, rx) = std::sync::mpsc::channel::<Saved>();
        let thread = std::thread::Builder::new()
            .name("state".into())
            .spawn(move || {
                let mut told = false;
                while let Ok(mut saved) = rx.recv() {
                    while let Ok(newer) = rx.try_recv() {
                        saved = newer;
                    }
                    match save(&path, &saved) {
                        Ok(()) => told = false,
                        // Said once until it works again.
                        Err(e) if !std::mem::replace(&mut told, true) => tracing::warn!("{e}"),
                        Err(_) => {}
                    }
                }
            });
        match thread {
            Ok(thread) => Writer {
                tx: Some(tx),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::error!("cannot start the state writer ({e}); holds, quarantines and answers will not survive a restart");
                Writer {
                    tx: None,
                    thread: None,
                }
            }
        }
    }

    pub fn write(&self, saved: Saved) {
        if let Some(tx) = &self.tx {
            // The thread ends only when this sender is dropped.
            let _ = tx.send(saved);
        }
    }

    /// Writes what is queued and waits for it: at exit, so the last state is on disk.
    pub fn finish(mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample() -> Saved {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        Saved {
            v: FORMAT_VERSION,
            holds: vec![SavedHold {
                target: "nodo_1".into(),
                reason: "disk swap".into(),
                by: "control socket (uid 0)".into(),
                since: Some(t),
                until: None,
            }],
            always: vec!["nodo_2".into()],
            never: vec![],
            containers: vec![SavedContainer {
                id: "abc".into(),
                name: "nodo_3".into(),
                history: SavedHistory {
                    streak: 2,
                    failures: vec![t, t],
                    counted_run: Some("run".into()),
                    failure_seen: Some(t),
                    last_revival: None,
                    quarantined: true,
                },
            }],
        }
    }

    #[test]
    fn saves_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert!(
            load(&path).unwrap().saved.is_none(),
            "no file: a fresh start"
        );
        save(&path, &sample()).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.saved, Some(sample()));
        assert!(loaded.dropped.is_none());
        assert!(!path.with_file_name("state.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_set_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        std::fs::write(&path, "{\"v\":1,\"holds\":[").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("set aside") && !e.contains('\n'), "{e}");
        assert!(!path.exists());
        let aside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            std::fs::read_to_string(aside[0].path()).unwrap(),
            "{\"v\":1,\"holds\":["
        );
        // And the next start is a fresh one.
        assert!(load(&path).unwrap().saved.is_none());
    }

    #[test]
    fn one_bad_entry_drops_only_itself_and_the_original_is_copied_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let good = serde_json::to_value(sample()).unwrap();
        let mut text = good.clone();
        // A hold without `by`, and a container whose history is a string.
        text["holds"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "target": "nodo_9", "reason": "", "since": null, "until": null
            }));
        text["containers"].as_array_mut().unwrap().insert(
            0,
            serde_json::json!({"id": "x", "name": "y", "history": "?"}),
        );
        let original = serde_json::to_string(&text).unwrap();
        std::fs::write(&path, &original).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.saved, Some(sample()), "what parses is kept");
        let note = loaded
            .dropped
            .expect("the dropped entries are said")
            .to_string();
        assert!(
            note.contains("holds[1]") && note.contains("containers[0]") && !note.contains('\n'),
            "{note}"
        );
        let copies: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("state.json.bad-")
            })
            .collect();
        assert_eq!(copies.len(), 1, "{note}");
        assert!(
            note.contains(&copies[0].path().display().to_string()),
            "{note}"
        );
        assert_eq!(std::fs::read_to_string(copies[0].path()).unwrap(), original);
    }

    #[test]
    fn anything_but_a_regular_file_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        // A FIFO nobody writes to: an open for reading would wait for ever.
        let e = load(&path).unwrap_err();
        assert!(matches!(e, StateError::NotAFile { .. }), "{e}");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let e = load(&path).unwrap_err();
        assert!(matches!(e, StateError::NotAFile { .. }), "{e}");
    }
}
