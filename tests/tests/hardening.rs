//! What broke when we tried to break it (issue 10): the log directory removed or full while
//! running, a console nobody reads, the control socket, a proxy's refusals, a second instance.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;

/// A tmpfs mounted over `path`, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mkdir for tmpfs");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(mounted.success(), "this test mounts a tmpfs and needs root");
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The actions of the audit files in `logs`, and the torn lines set aside.
fn actions_and_torn(logs: &std::path::Path) -> (Vec<serde_json::Value>, Vec<String>) {
    let log = healthther::audit::read(logs).unwrap_or_default();
    let actions = log
        .records
        .into_iter()
        .filter(|r| r["event"] == "action")
        .collect();
    (actions, log.torn)
}

#[test]
fn a_removed_log_directory_is_made_again_and_no_record_is_lost() {
    let node = Node::start(&unique("rmlogs"), &[]);
    let mut daemon = Daemon::watching(&auto_env(&[&node.name]));
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    daemon.wait_audit(1);

    std::fs::remove_dir_all(daemon.log_dir()).expect("rm -rf logs");
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    wait_until("the record of the second revival", || {
        daemon.log_dir().is_dir() && events(&daemon.audit(), "action").len() == 1
    });
    daemon.wait_log("the audit file had been removed");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let audit = daemon.audit();
    let actions = events(&audit, "action");
    assert_eq!(actions.len(), 1, "{audit:?}");
    assert_eq!(actions[0]["result"], "running");
    assert!(
        daemon.human_log().contains("stopped"),
        "the human log was made again too:\n{}",
        daemon.human_log()
    );
    assert_eq!(
        daemon
            .output()
            .matches("the audit file had been removed")
            .count(),
        1,
        "said once:\n{}",
        daemon.output()
    );
}

#[test]
fn a_record_cut_short_by_a_full_disk_does_not_swallow_the_next_one() {
    let node = Node::start(&unique("enospc"), &[]);
    let (mut cmd, workdir) = command(&auto_env(&[&node.name]));
    let logs = workdir.path().join("logs");
    let _fs = Tmpfs::mount(&logs, "64k");
    // An audit file whose last page has about a hundred bytes left: the next record (several
    // hundred) is cut short when no further page can be had.
    let today = &healthther::audit::now_rfc3339()[..10];
    let pad = "x".repeat(4096 - 100 - r#"{"event":"pad","x":""}"#.len() - 1);
    std::fs::write(
        logs.join(format!("audit.{today}.jsonl")),
        format!("{{\"event\":\"pad\",\"x\":\"{pad}\"}}\n"),
    )
    .expect("write audit file");
    cmd.env("HEALTH_LOG_DIR", &logs);
    let daemon = Daemon::spawn(cmd, workdir);
    daemon.wait_log("watching");

    // Fill the rest to the last page.
    let filler = logs.join("filler");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&filler).expect("filler"));
    let block = vec![b'x'; 4096];
    while std::io::Write::write_all(&mut out, &block).is_ok() {}
    drop(out);

    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    daemon.wait_log("cannot write the audit file");
    let (actions, torn) = actions_and_torn(&logs);
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(torn.len(), 1, "the record was cut short: {torn:?}");

    // Space returns; the next record must be whole, not glued onto the torn one.
    std::fs::remove_file(&filler).expect("rm filler");
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    wait_until("a whole record after the torn one", || {
        !actions_and_torn(&logs).0.is_empty()
    });
    let (actions, torn) = actions_and_torn(&logs);
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(torn.len(), 1, "{torn:?}");
}

/// The daemon with its stdout a pipe nobody reads: once the pipe's 64 KiB are full, every
/// write to stdout would wait forever.
struct Unread {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Unread {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_console_nobody_reads_does_not_stop_revivals() {
    let node = Node::start(&unique("stdout"), &[]);
    // Two thousand targets that do not exist, each reported on a line of its own: far more
    // than a pipe holds, before the watch loop has even started.
    let mut targets: Vec<String> = (0..2000).map(|i| unique(&format!("absent{i}"))).collect();
    targets.push(node.name.clone());
    let env = format!(
        "HEALTH_TARGETS={}\nMODE=auto\nHEALTH_POLL_INTERVAL=100ms\nRUST_LOG=debug\n",
        targets.join(",")
    );
    let (mut cmd, dir) = command(&env);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start healthther");
    let daemon = Unread { child, dir };
    let logs = daemon.dir.path().join("logs");
    let human = || {
        std::fs::read_dir(&logs)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("healthther."))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>()
    };
    wait_until("the daemon to watch", || human().contains("watching"));
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    wait_until("the revival's record", || {
        !events(&read_audit(daemon.dir.path()), "action").is_empty()
    });
    // Nobody read it; it still holds what it could take.
    let mut child = daemon;
    let mut stdout = child.child.stdout.take().expect("stdout pipe");
    let _ = child.child.kill();
    let mut buf = Vec::new();
    let _ = stdout.read_to_end(&mut buf);
    // Whole lines up to the pipe's 64 KiB: it was full.
    assert!(
        buf.len() > 60 * 1024,
        "the pipe was full: {} bytes",
        buf.len()
    );
}

/// The binary in `dir` with `.env` text `dotenv`, started by a shell that first runs `setup`
/// (a umask, a file limit).
fn through_shell(dotenv: &str, setup: &str) -> (Command, tempfile::TempDir) {
    let (_, dir) = command(dotenv);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{setup} && exec \"$0\""))
        .arg(env!("CARGO_BIN_EXE_healthther"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DOCKER_HOST", docker_host())
        .stdin(Stdio::null());
    (cmd, dir)
}

#[test]
fn the_control_socket_is_owner_only_from_its_first_moment() {
    // With a umask that lets everyone in, a socket made in place and chmod-ed after would be
    // open to all for a moment; watch the path from before the daemon starts.
    for _ in 0..5 {
        let (cmd, dir) = through_shell("HEALTH_TARGETS=nodo_1\nMODE=auto\n", "umask 000");
        let socket = dir.path().join("healthther.sock");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (socket, seen, stop) = (socket.clone(), Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(m) = std::fs::symlink_metadata(&socket) {
                        seen.lock().unwrap().push(m.permissions().mode() & 0o777);
                    }
                }
            })
        };
        let daemon = Daemon::spawn(cmd, dir);
        daemon.wait_log("watching");
        stop.store(true, Ordering::SeqCst);
        watcher.join().expect("watcher");
        let seen = seen.lock().unwrap().clone();
        assert!(!seen.is_empty(), "the socket was never seen");
        assert!(
            seen.iter().all(|m| *m == 0o600),
            "modes seen: {:o}",
            seen.iter().fold(0, |a, m| a | m)
        );
    }
}

#[test]
fn a_control_socket_path_that_is_not_a_socket_is_left_alone() {
    let (mut cmd, dir) = command("HEALTH_TARGETS=nodo_1\nMODE=auto\n");
    cmd.args(["--control-socket", ".env"]);
    let daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("is not a socket");
    daemon.wait_log("watching");
    let env = std::fs::read_to_string(daemon.dir.path().join(".env")).expect(".env is still there");
    assert!(env.contains("HEALTH_TARGETS=nodo_1"), "{env}");
}

#[test]
fn a_second_manual_instance_without_a_terminal_is_refused_at_start() {
    let first = Daemon::watching(&manual_env(&["nodo_1"]));
    let (mut cmd, unused) = command(&manual_env(&["nodo_1"]));
    cmd.current_dir(first.dir.path());
    let mut second = Daemon::spawn(cmd, unused);
    let status = second.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "{}", second.output());
    let out = second.output();
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(out.contains("another healthther already answers"), "{out}");

    // In auto mode a warning is enough. (It reads the first one's .env: auto by flag.)
    let (mut cmd, unused) = command("");
    cmd.current_dir(first.dir.path()).args(["--mode", "auto"]);
    let mut third = Daemon::spawn(cmd, unused);
    third.wait_log("another healthther already answers");
    third.wait_log("watching");
    assert!(third.is_running());
    let (code, _, err) = client(first.dir.path(), &["pending"]);
    assert_eq!(code, Some(0), "the first still answers: {err}");
}

/// Holds `n` idle connections open, each made non-blocking by `connect`, opening new ones as
/// the daemon closes old ones, until dropped.
struct Flood {
    stop: Arc<AtomicBool>,
    opened: Arc<std::sync::atomic::AtomicUsize>,
}

impl Flood {
    /// Idle connections to the unix socket at `path`.
    fn start(path: std::path::PathBuf, n: usize) -> Flood {
        Flood::with(n, move || {
            let c = UnixStream::connect(&path).ok()?;
            c.set_nonblocking(true).ok()?;
            Some(Box::new(c))
        })
    }

    fn with<F>(n: usize, mut connect: F) -> Flood
    where
        F: FnMut() -> Option<Box<dyn Read + Send>> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, count) = (Arc::clone(&stop), Arc::clone(&opened));
        std::thread::spawn(move || {
            let mut conns: Vec<Box<dyn Read + Send>> = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                conns.retain_mut(|c| {
                    let mut b = [0u8; 1];
                    matches!(c.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                });
                while conns.len() < n && !flag.load(Ordering::SeqCst) {
                    match connect() {
                        Some(c) => {
                            conns.push(c);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        None => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Flood { stop, opened }
    }

    /// Connections opened so far, counting those opened again.
    fn opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_flood_of_idle_control_connections_neither_exhausts_files_nor_delays_a_revival() {
    let node = Node::start(&unique("flood"), &[]);
    let (cmd, dir) = through_shell(&auto_env(&[&node.name]), "ulimit -n 512");
    let daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("watching");
    let _flood = Flood::start(daemon.dir.path().join("healthther.sock"), 3000);
    std::thread::sleep(Duration::from_secs(2));
    let open_files = || {
        std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert!(open_files() < 200, "{} files open", open_files());
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    assert_eq!(events(&daemon.wait_audit(1), "action").len(), 1);
    assert!(open_files() < 200, "{} files open", open_files());
}

#[test]
fn a_proxy_refusing_starts_is_a_permission_problem_not_a_crash_loop() {
    let node = Node::start(&unique("denied"), &[]);
    let proxy = Proxy::in_temp_dir();
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=200ms\nHEALTH_BACKOFF_MAX=1s\nHEALTH_QUARANTINE_AFTER=2\n",
        auto_env(&[&node.name])
    );
    let (mut cmd, workdir) = command(&env);
    cmd.env("DOCKER_HOST", proxy.url());
    let mut daemon = Daemon::spawn(cmd, workdir);
    daemon.wait_log("watching");
    proxy.set_faults(Faults {
        answer: vec![(
            "POST",
            "/start",
            403,
            "<html><body><h1>403 Forbidden</h1>Request forbidden by administrative rules.</body></html>",
        )],
        ..Faults::default()
    });
    let before = node.started_at();
    node.kill();
    wait_until("four refused starts", || {
        events(&daemon.audit(), "action").len() >= 4
    });
    let audit = daemon.audit();
    assert!(events(&audit, "quarantine").is_empty(), "{audit:?}");
    for action in events(&audit, "action") {
        let error = action["error"].as_str().unwrap_or("");
        assert!(
            error.contains("HTTP 403") && error.contains("ALLOW_START") && !error.contains("<html"),
            "{error}"
        );
    }
    assert!(
        !daemon.output().contains("QUARANTINED"),
        "{}",
        daemon.output()
    );
    proxy.set_faults(Faults::default());
    node.wait_restarted_since(&before);
    assert!(daemon.is_running());
}

/// Issue 20: the control path trusts only root and itself.
mod control_trust {
    use super::*;
    use std::path::{Path, PathBuf};

    /// A directory everyone may write in, as /tmp.
    fn shared_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777))
            .expect("chmod 1777");
        dir
    }

    /// `python3 -c script args` as the user `nobody`.
    fn as_nobody(script: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .args(args)
        .stdin(Stdio::null());
        cmd
    }

    /// Another user's socket at the path, answering every request with a fake success.
    struct Impostor(Child);

    impl Impostor {
        fn bind(path: &Path) -> Impostor {
            let script = "import os, socket, sys\n\
                s = socket.socket(socket.AF_UNIX)\n\
                s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen(16)\n\
                while True:\n    c, _ = s.accept(); c.recv(4096)\n    \
                c.sendall(b'ok\\nholding nodo_1 for 1h'); c.close()\n";
            let child = as_nobody(script, &[&path.to_string_lossy()])
                .spawn()
                .expect("run python3 as nobody");
            wait_until("the impostor's socket", || path.exists());
            Impostor(child)
        }
    }

    impl Drop for Impostor {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn env_with_socket(env: &str, socket: &Path) -> String {
        format!("{env}HEALTH_CONTROL_SOCKET={}\n", socket.display())
    }

    #[test]
    fn a_socket_another_user_bound_first_is_refused_by_the_client() {
        let shared = shared_dir();
        let socket: PathBuf = shared.path().join("control.sock");
        let _impostor = Impostor::bind(&socket);
        let (_, workdir) = command(&env_with_socket("", &socket));
        let (code, out, err) = client(workdir.path(), &["hold", "nodo_1", "1h"]);
        assert_eq!(code, Some(1), "out: {out} err: {err}");
        assert!(!out.contains("holding"), "{out}");
        assert!(err.contains("uid 65534"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }

    #[test]
    fn manual_mode_does_not_start_without_its_control_socket_even_with_a_terminal() {
        let shared = shared_dir();
        let socket = shared.path().join("control.sock");
        let _impostor = Impostor::bind(&socket);
        let mut t = Terminal::start(&env_with_socket(&manual_env(&["nodo_1"]), &socket));
        t.expect("uid 65534");
        let status = t.session.process().wait().expect("wait for healthther");
        assert!(
            matches!(status, rexpect::process::WaitStatus::Exited(_, 2)),
            "{status:?}"
        );
    }

    #[test]
    fn the_daemon_refuses_requests_from_another_user() {
        let daemon = Daemon::watching(&auto_env(&["nodo_1"]));
        // As if someone loosened the modes: only the peer's uid still keeps others out.
        let socket = daemon.dir.path().join("healthther.sock");
        for (path, mode) in [(daemon.dir.path(), 0o755), (socket.as_path(), 0o666)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let script = "import socket, sys\n\
            s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n\
            s.sendall(b'pending\\n'); out = b''\n\
            while True:\n    b = s.recv(4096)\n    if not b: break\n    out += b\n\
            sys.stdout.write(out.decode())\n";
        let out = as_nobody(script, &[&socket.to_string_lossy()])
            .output()
            .expect("run python3 as nobody");
        let reply = String::from_utf8_lossy(&out.stdout);
        assert!(
            reply.starts_with("error\n"),
            "{reply:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(reply.contains("uid 65534"), "{reply:?}");
    }

    #[test]
    fn the_operator_gets_through_two_thousand_idle_connections() {
        let daemon = Daemon::watching(&auto_env(&["nodo_1"]));
        let flood = Flood::start(daemon.dir.path().join("healthther.sock"), 2000);
        // Before the fix the backlog filled after some 1,100 and further connects waited.
        wait_until("1000 idle connections", || flood.opened() >= 1000);
        let (code, out, err) = client(daemon.dir.path(), &["pending"]);
        assert_eq!(code, Some(0), "out: {out} err: {err}");
        let (code, _, err) = client(daemon.dir.path(), &["status"]);
        assert_eq!(code, Some(0), "{err}");
    }
}

/// Issue 20: the metrics listener is bounded as the control socket is.
mod metrics_flood {
    use super::*;
    use std::io::Write;
    use std::net::{SocketAddr, TcpListener, TcpStream};

    /// Idle connections to `addr`.
    fn tcp_flood(addr: SocketAddr, n: usize) -> Flood {
        Flood::with(n, move || {
            let c = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
            c.set_nonblocking(true).ok()?;
            Some(Box::new(c))
        })
    }

    fn scrape(addr: SocketAddr) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.starts_with("HTTP/1.1 200").then_some(text)
    }

    #[test]
    fn a_flood_of_idle_metrics_connections_starves_neither_revivals_nor_scrapes() {
        let node = Node::start(&unique("mflood"), &[]);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let env = format!(
            "{}HEALTH_METRICS_ADDR=127.0.0.1:{port}\n",
            auto_env(&[&node.name])
        );
        let (cmd, dir) = through_shell(&env, "ulimit -n 128");
        let daemon = Daemon::spawn(cmd, dir);
        daemon.wait_log("watching");
        daemon.wait_log("serving metrics");
        let flood = tcp_flood(addr, 2000);
        // Well beyond the 128 files it may open.
        wait_until("500 idle metrics connections", || flood.opened() >= 500);
        let before = node.started_at();
        node.kill();
        node.wait_restarted_since(&before);
        let actions = events(&daemon.wait_audit(1), "action").len();
        assert_eq!(actions, 1, "{}", daemon.output());
        let mut text = None;
        wait_until("a scrape to get through", || {
            text = scrape(addr);
            text.is_some()
        });
        let text = text.unwrap_or_default();
        assert!(text.contains("healthther_actions_total"), "{text}");
    }

    #[test]
    fn a_silent_or_trickling_metrics_client_is_dropped_after_a_few_seconds() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let env = format!(
            "{}HEALTH_METRICS_ADDR=127.0.0.1:{port}\n",
            auto_env(&["nodo_1"])
        );
        let daemon = Daemon::watching(&env);
        daemon.wait_log("serving metrics");
        let silent = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mut trickle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let start = std::time::Instant::now();
        // One byte a second: each arrives well within any per-read timeout.
        let mut closed = false;
        for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.write_all(&[*b]).is_err() {
                closed = true;
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            let _ = trickle.set_nonblocking(true);
            let mut buf = [0u8; 512];
            match (&trickle).read(&mut buf) {
                Ok(_) => {
                    closed = true;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            let _ = trickle.set_nonblocking(false);
            if start.elapsed() > DEADLINE {
                break;
            }
        }
        assert!(
            closed,
            "the trickling client was still served after {:?}",
            start.elapsed()
        );
        silent
            .set_read_timeout(Some(DEADLINE))
            .expect("read timeout");
        let mut buf = [0u8; 1];
        let n = (&silent).read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "the silent client was closed");
    }
}
