//! How an operator reaches the daemon: lines typed at its terminal (`docker attach`), and a unix
//! socket (never TCP) for `healthther pending` and `healthther answer`, e.g. through
//! `docker exec` when no terminal can be attached.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::slots::{Heard, Slots};

/// The longest hold with a duration; a longer one is a hold until resumed.
const HOLD_LIMIT: Duration = Duration::from_secs(366 * 24 * 3600);

/// How long the daemon may take to reply, and to have its reply read.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send its request line: ours sends it as it connects, so a
/// connection silent this long is idle, and goes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the client tries again while the daemon is too busy to take its connection (a
/// flood of connections), or drops it unread to make room.
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// The users the control path trusts, on either side: root, and the user we run as. Anyone
/// else may have bound the path first in a shared directory, or may have been let in by a
/// loosened mode; their answers are not believed and their requests are not carried out.
pub fn trusted(uid: u32) -> bool {
    uid == 0 || uid == own_uid()
}

fn own_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Something the operator said.
#[derive(Debug)]
pub enum Input {
    /// A line typed at the terminal.
    Line(String),
    /// The terminal closed: nobody can answer there any more.
    TerminalClosed,
    /// A request on the control socket, from `peer`, to be answered on `reply`.
    Request {
        request: Request,
        peer: String,
        reply: oneshot::Sender<Reply>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// List the open prompts.
    Pending,
    /// Is the watch loop alive and recent? (the container's HEALTHCHECK)
    Probe,
    /// Lift the quarantine of `target`.
    Release {
        target: String,
    },
    /// Answer the open prompt of `target`; `answer` as typed, so the daemon can say what is
    /// wrong with it.
    Answer {
        target: String,
        answer: String,
    },
    /// Where each target stands; as JSON for scripts.
    Status {
        json: bool,
    },
    /// Take no action on `target` and ask nothing about it, for `duration` or until resumed.
    Hold {
        target: String,
        duration: Option<Duration>,
        reason: Option<String>,
    },
    Resume {
        target: String,
    },
    /// Forget the operator's standing `always` or `never` for `target`.
    Forget {
        target: String,
    },
    /// Answer the prompt whose answer buttons carry `token` (a chat's button pressed, sent by
    /// the channel's task in-process): bound to that prompt alone.
    AnswerToken {
        token: String,
        answer: crate::prompt::Answer,
    },
}

impl Request {
    pub fn to_line(&self) -> String {
        match self {
            Request::Pending => "pending\n".into(),
            Request::Probe => "probe\n".into(),
            Request::Release { target } => format!("release {target}\n"),
            Request::Answer { target, answer } => format!("answer {target} {answer}\n"),
            Request::Status { json: false } => "status\n".into(),
            Request::Status { json: true } => "status --json\n".into(),
            Request::Hold {
                target,
                duration,
                reason,
            } => {
                let duration = match duration {
                    Some(d) => humantime::format_duration(*d).to_string().replace(' ', ""),
                    None => "-".into(),
                };
                // The reason is the rest of the line, spaces and all, but one line.
                let reason = reason.as_deref().unwrap_or("").replace(['\n', '\r'], " ");
                format!("hold {target} {duration} {reason}")
                    .trim_end()
                    .to_string()
                    + "\n"
            }
            Request::Resume { target } => format!("resume {target}\n"),
            Request::Forget { target } => format!("forget {target}\n"),
            Request::AnswerToken { token, answer } => {
                format!("answer-token {token} {}\n", answer.word())
            }
        }
    }

    pub fn parse(line: &str) -> Result<Request, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["pending"] => Ok(Request::Pending),
            ["probe"] => Ok(Request::Probe),
            ["release", target] => Ok(Request::Release {
                target: (*target).to_string(),
            }),
            ["answer", target, answer] => Ok(Request::Answer {
                target: (*target).to_string(),
                answer: (*answer).to_string(),
            }),
            ["status"] => Ok(Request::Status { json: false }),
            ["status", "--json"] => Ok(Request::Status { json: true }),
            ["resume", target] => Ok(Request::Resume {
                target: (*target).to_string(),
            }),
            ["forget", target] => Ok(Request::Forget {
                target: (*target).to_string(),
            }),
            ["hold", target, duration, ..] => {
                let duration = match *duration {
                    "-" => None,
                    d => Some(
                        humantime::parse_duration(d)
                            .ok()
                            .filter(|d| *d <= HOLD_LIMIT)
                            .ok_or_else(|| {
                                format!("hold: {d:?} is not a duration of at most a year; write e.g. 30m or 2h")
                            })?,
                    ),
                };
                // Everything after the duration, as written.
                let reason = line
                    .trim()
                    .splitn(4, char::is_whitespace)
                    .nth(3)
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_string);
                Ok(Request::Hold {
                    target: (*target).to_string(),
                    duration,
                    reason,
                })
            }
            _ => Err(format!(
                "unknown request {:?}; expected `pending`, `probe`, `status [--json]`, `release TARGET`, \
                 `answer TARGET ANSWER`, `hold TARGET DURATION|- [REASON]` or `resume TARGET`",
                line.trim()
            )),
        }
    }
}

/// The daemon's reply: `ok` or not, and text for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub ok: bool,
    pub text: String,
}

impl Reply {
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply {
            ok: true,
            text: text.into(),
        }
    }

    pub fn error(text: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            text: text.into(),
        }
    }

    /// The reply as sent; its text's control characters (but its lines and columns) written
    /// out, so that nothing a container wrote drives the terminal of whoever asked.
    fn to_wire(&self) -> String {
        format!(
            "{}\n{}",
            if self.ok { "ok" } else { "error" },
            crate::escape::reply(&self.text)
        )
    }

    fn from_wire(wire: &str) -> Option<Reply> {
        let (status, text) = wire.split_once('\n').unwrap_or((wire, ""));
        match status {
            "ok" => Some(Reply::ok(text)),
            "error" => Some(Reply::error(text)),
            _ => None,
        }
    }
}

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("cannot create the control socket {path}: {source}; set HEALTH_CONTROL_SOCKET (--control-socket) to a writable place")]
    Bind {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("another healthther already answers on {path}; stop it or set HEALTH_CONTROL_SOCKET (--control-socket)")]
    InUse { path: String },
    #[error("the control socket {path} exists and is not a socket; leaving it alone: set HEALTH_CONTROL_SOCKET (--control-socket) to another path")]
    NotASocket { path: String },
    #[error("the control socket {path} belongs to uid {uid}, not root and not uid {own}: someone else may have taken the path; not trusting it: remove it, or set HEALTH_CONTROL_SOCKET (--control-socket) to a directory only root or uid {own} can write")]
    ForeignOwner { path: String, uid: u32, own: u32 },
    #[error("the process answering on {path} runs as uid {uid}, not root and not uid {own}: someone else may have taken the path; not trusting it: set HEALTH_CONTROL_SOCKET (--control-socket) to a directory only root or uid {own} can write")]
    ForeignPeer { path: String, uid: u32, own: u32 },
    #[error("cannot reach healthther at {path}: {source}; is it running with this working directory? (its socket is HEALTH_CONTROL_SOCKET, --control-socket)")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to healthther at {path}: {reason}")]
    Talk { path: String, reason: String },
}

/// Reads the terminal on a thread of its own: a blocking read cannot be cancelled, and must not
/// hold up shutdown (tokio's own stdin would), so the thread is left behind at exit.
pub fn read_terminal(tx: mpsc::Sender<Input>) {
    let spawned = std::thread::Builder::new()
        .name("terminal".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut lines = stdin.lock().lines();
            while let Some(Ok(line)) = lines.next() {
                if tx.blocking_send(Input::Line(line)).is_err() {
                    return;
                }
            }
            let _ = tx.blocking_send(Input::TerminalClosed);
        });
    if spawned.is_err() {
        tracing::error!("cannot start the terminal reader; answer with `healthther answer`");
    }
}

/// The listening control socket; its file is removed when dropped.
pub struct ControlSocket {
    path: PathBuf,
    /// The socket file's inode, so that only our own socket is ever removed.
    ino: u64,
    listener: UnixListener,
}

impl ControlSocket {
    /// Binds `path`, replacing a stale socket file that nobody answers on; anything else at
    /// the path is left alone and refused.
    pub fn bind(path: &Path) -> Result<ControlSocket, ControlError> {
        use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
        let shown = path.display().to_string();
        let bind_error = |source: std::io::Error| ControlError::Bind {
            path: shown.clone(),
            source,
        };
        let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(bind_error)?;
                dir
            }
            None => Path::new("."),
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() && !trusted(meta.uid()) => {
                return Err(ControlError::ForeignOwner {
                    path: shown,
                    uid: meta.uid(),
                    own: own_uid(),
                });
            }
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(ControlError::InUse { path: shown });
                }
                // Left by a healthther that was killed; nobody listens there. The rename
                // below replaces it.
            }
            Ok(_) => return Err(ControlError::NotASocket { path: shown }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bind_error(e)),
        }
        // Whoever can connect can have targets restarted: owner only, from the first moment.
        // The socket is made in a directory only we can enter, made owner-only there, and
        // only then renamed into place; no umask is changed (it is the whole process's).
        let private = dir.join(format!(".healthther-{}.tmp", std::process::id()));
        let _ = std::fs::remove_dir_all(&private);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .map_err(bind_error)?;
        let staged = private.join("control.sock");
        let bound = UnixListener::bind(&staged).and_then(|listener| {
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
            std::fs::rename(&staged, path)?;
            Ok(listener)
        });
        let _ = std::fs::remove_dir_all(&private);
        let listener = bound.map_err(bind_error)?;
        let ino = std::fs::symlink_metadata(path)
            .map(|m| m.ino())
            .map_err(bind_error)?;
        Ok(ControlSocket {
            path: path.to_path_buf(),
            ino,
            listener,
        })
    }

    /// Accepts requests until cancelled, handing each to the watch loop through `tx`; holds
    /// at most `slots` connections (see [`crate::slots`]).
    pub async fn serve(self, slots: Slots, tx: mpsc::Sender<Input>, cancel: CancellationToken) {
        loop {
            let stream = tokio::select! {
                _ = cancel.cancelled() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let slot = tokio::select! {
                _ = cancel.cancelled() => return,
                slot = slots.take() => slot,
            };
            let tx = tx.clone();
            slots
                .spawn(slot, move |heard| handle(stream, tx, heard))
                .await;
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        // Only our own socket: another instance may have taken the path since.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Serves one connection: reads one request line, checks who sent it, hands it on and writes
/// the reply.
async fn handle(stream: UnixStream, tx: mpsc::Sender<Input>, heard: Heard) {
    let (read, mut write) = stream.into_split();
    let cred = read.as_ref().peer_cred();
    let mut line = String::new();
    // One request line, bounded so a stray client cannot grow us.
    let mut reader = BufReader::new(read).take(4096);
    let got = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
    // Heard from: no longer among the first to go.
    heard.now();
    if !matches!(got, Ok(Ok(n)) if n > 0) {
        return;
    }
    let reply = match cred {
        Ok(c) if trusted(c.uid()) => {
            let peer = match c.pid() {
                Some(pid) => format!("control socket (uid {}, pid {pid})", c.uid()),
                None => format!("control socket (uid {})", c.uid()),
            };
            answer(&line, peer, &tx).await
        }
        refused => {
            let who = match refused {
                Ok(c) => format!("uid {}", c.uid()),
                Err(_) => "a peer whose uid cannot be read".to_string(),
            };
            tracing::warn!(
                "control socket: refused a request from {who}: neither root nor our own user"
            );
            Reply::error(format!(
                "refused: {who} is neither root nor healthther's own user (uid {})",
                own_uid()
            ))
        }
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        let _ = write.write_all(reply.to_wire().as_bytes()).await;
        let _ = write.shutdown().await;
    })
    .await;
}

/// The watch loop's reply to `line`. Once a request is read it is always answered, so that a
/// connection closed without a reply means the request was never read (the client may send it
/// again).
async fn answer(line: &str, peer: String, tx: &mpsc::Sender<Input>) -> Reply {
    let request = match Request::parse(line) {
        Err(e) => return Reply::error(e),
        Ok(request) => request,
    };
    let (reply_tx, reply_rx) = oneshot::channel();
    let input = Input::Request {
        request,
        peer,
        reply: reply_tx,
    };
    let asked = async {
        if tx.send(input).await.is_err() {
            return Reply::error("healthther is stopping");
        }
        reply_rx
            .await
            .unwrap_or_else(|_| Reply::error("healthther is stopping"))
    };
    tokio::time::timeout(IO_TIMEOUT, asked)
        .await
        .unwrap_or_else(|_| {
            Reply::error(format!(
                "healthther did not answer within {}s; the request may still be carried out",
                IO_TIMEOUT.as_secs()
            ))
        })
}

/// Sends one request to the daemon listening on `path` and waits for its reply (the client side
/// of `healthther pending` and `healthther answer`). Only a socket, and a process, of root or of
/// our own user is believed. While the daemon is too busy to take the connection, or drops it
/// unread to make room, it tries again for a few seconds.
pub fn request(path: &Path, request: &Request) -> Result<Reply, ControlError> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display().to_string();
    if let Ok(meta) = std::fs::metadata(path) {
        if !trusted(meta.uid()) {
            return Err(ControlError::ForeignOwner {
                path: shown,
                uid: meta.uid(),
                own: own_uid(),
            });
        }
    }
    let give_up = Instant::now() + BUSY_RETRY;
    loop {
        match attempt(path, &shown, request) {
            Ok(reply) => return Ok(reply),
            Err((e, Busy::Yes)) if Instant::now() < give_up => {
                tracing::debug!(error = %e, "control socket busy; trying again");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Whether a failed attempt may be made again: the request was never read.
enum Busy {
    Yes,
    No,
}

fn attempt(path: &Path, shown: &str, request: &Request) -> Result<Reply, (ControlError, Busy)> {
    let talk = |e: std::io::Error| ControlError::Talk {
        path: shown.to_string(),
        reason: e.to_string(),
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|source| {
        let busy = if source.kind() == std::io::ErrorKind::WouldBlock {
            Busy::Yes
        } else {
            Busy::No
        };
        let path = shown.to_string();
        (ControlError::Connect { path, source }, busy)
    })?;
    let peer = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| (talk(e.into()), Busy::No))?;
    if !trusted(peer.uid()) {
        let e = ControlError::ForeignPeer {
            path: shown.to_string(),
            uid: peer.uid(),
            own: own_uid(),
        };
        return Err((e, Busy::No));
    }
    stream
        .set_read_timeout(Some(IO_TIMEOUT + REQUEST_TIMEOUT))
        .map_err(|e| (talk(e), Busy::No))?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| (talk(e), Busy::No))?;
    // Dropped before it was read, to make room: nothing was done, so it may go again.
    let unread = |e: std::io::Error| {
        let busy = match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Busy::Yes,
            _ => Busy::No,
        };
        (talk(e), busy)
    };
    stream
        .write_all(request.to_line().as_bytes())
        .map_err(unread)?;
    let mut wire = String::new();
    stream.read_to_string(&mut wire).map_err(unread)?;
    if wire.is_empty() {
        let reason = "the connection was closed before a reply".to_string();
        let e = ControlError::Talk {
            path: shown.to_string(),
            reason,
        };
        return Err((e, Busy::Yes));
    }
    Reply::from_wire(&wire).ok_or_else(|| {
        let e = ControlError::Talk {
            path: shown.to_string(),
            reason: format!("unexpected reply {wire:?}"),
        };
        (e, Busy::No)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let cases = [
            Request::Pending,
            Request::Probe,
            Request::Release {
                target: "nodo_1".into(),
            },
            Request::Answer {
                target: "nodo_1".into(),
                answer: "yes".into(),
            },
            Request::Forget {
                target: "nodo_1".into(),
            },
        ];
        for r in cases {
            assert_eq!(Request::parse(&r.to_line()), Ok(r));
        }
    }

    #[test]
    fn bad_requests_say_what_is_expected() {
        for line in [
            "",
            "answer nodo_1",
            "answer a b c",
            "delete nodo_1",
            "PENDING",
        ] {
            let e = Request::parse(line).unwrap_err();
            assert!(
                e.contains("pending") && e.contains("answer TARGET ANSWER"),
                "{e}"
            );
        }
    }

    #[test]
    fn replies_round_trip() {
        for r in [Reply::ok("a\nb"), Reply::error("no"), Reply::ok("")] {
            assert_eq!(Reply::from_wire(&r.to_wire()), Some(r));
        }
        assert_eq!(Reply::from_wire("garbage"), None);
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn requests(raw in "\\PC{0,40}|(pending|probe|release|answer)( \\PC{0,10}){0,3}") {
            match Request::parse(&raw) {
                Ok(r) => prop_assert_eq!(Request::parse(&r.to_line()), Ok(r)),
                Err(e) => prop_assert!(!e.contains('\n')),
            }
        }
    }
}
