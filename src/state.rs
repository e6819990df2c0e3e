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

/// Reads the state back. No file is a fresh start (`Ok(None)`); a file that cannot be read
/// back is renamed aside (never deleted) and reported, and healthther starts fresh.
pub fn load(path: &Path) -> Result<Option<Saved>, StateError> {
    let shown = path.display().to_string();
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: shown,
                source,
            })
        }
    };
    let reason = match serde_json::from_slice::<Saved>(&text) {
        Ok(saved) if saved.v == FORMAT_VERSION => return Ok(Some(saved)),
        Ok(saved) => format!("format version {} is not {FORMAT_VERSION}", saved.v),
        Err(e) => e.to_string(),
    };
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = path.with_file_name(format!("{FILE_NAME}.corrupt-{stamp}"));
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
        assert!(load(&path).unwrap().is_none(), "no file: a fresh start");
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample()));
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
        assert!(load(&path).unwrap().is_none());
    }
}
