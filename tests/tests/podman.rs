//! Podman: healthther against Podman's Docker-compatible API, served by `podman system service`
//! on a socket of the test's own. Podman 4.3 (Debian's) lists a killed container as `stopped`,
//! refuses the list filters `restarting` and `dead`, names no signal in its kill events, and
//! says `health_status` after every check without the check's result; these tests are the
//! proof that healthther copes. Without systemd nothing runs Podman's health checks on their
//! own, so a thread of the test runs them, as systemd's timer would.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::*;

/// The fixture image as Podman names it after `podman load`.
const IMAGE: &str = "localhost/healthther-fixture:test";

/// Runs `podman ARGS`; its output, whatever the exit status.
fn podman(args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run podman {args:?}: {e}"))
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A name no other test (or earlier run) uses.
fn pod_unique(label: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("hhpod{}x{n}-{label}", std::process::id())
}

/// `podman system service` on a socket in a directory of its own, stopped when dropped.
pub struct PodmanService {
    child: Child,
    dir: tempfile::TempDir,
}

impl PodmanService {
    pub fn start() -> PodmanService {
        let dir = tempfile::Builder::new()
            .prefix("hhpod")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("podman.sock");
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start podman system service");
        let service = PodmanService { child, dir };
        let started = Instant::now();
        while !service.answers() {
            assert!(
                started.elapsed() < DEADLINE,
                "podman system service did not answer on {}",
                socket.display()
            );
            thread::sleep(Duration::from_millis(100));
        }
        service
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("podman.sock")
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Whether `GET /_ping` on the socket is answered with OK.
    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(self.socket()) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: podman\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply.starts_with("HTTP/1.1 200")
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        // Ours alone, by its pid: TERM lets it let go of its locks, KILL if it does not.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fixture image, built with docker by the harness, loaded into Podman once per run.
fn podman_fixture_image() -> &'static str {
    static LOADED: OnceLock<()> = OnceLock::new();
    LOADED.get_or_init(|| {
        let image = fixture_image();
        let archive = tempfile::Builder::new()
            .prefix("hhpod")
            .tempdir()
            .expect("temp dir");
        let tar = archive.path().join("fixture.tar");
        let tar = tar.to_string_lossy();
        docker_ok(&["save", "-o", &tar, image]);
        podman_ok(&["load", "-q", "-i", &tar]);
    });
    IMAGE
}

/// A fixture container on Podman, removed when dropped. A thread runs its health check every
/// half second while it lives, as systemd would.
pub struct PodNode {
    pub name: String,
    checks: Arc<AtomicBool>,
}

impl PodNode {
    pub fn start(label: &str) -> PodNode {
        let image = podman_fixture_image();
        let name = pod_unique(label);
        podman_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            // Podman's defaults exceed what this machine lets a container have.
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            image,
        ]);
        let checks = Arc::new(AtomicBool::new(true));
        let node = PodNode {
            name: name.clone(),
            checks: Arc::clone(&checks),
        };
        thread::spawn(move || {
            while checks.load(Ordering::SeqCst) {
                // Fails while it is unhealthy or not running; that is what it reports.
                let _ = podman(&["healthcheck", "run", &name]);
                thread::sleep(Duration::from_millis(500));
            }
        });
        node
    }

    pub fn inspect(&self, format: &str) -> String {
        podman_ok(&["inspect", "-f", format, &self.name])
    }

    pub fn status(&self) -> String {
        self.inspect("{{.State.Status}}")
    }

    pub fn started_at(&self) -> String {
        self.inspect("{{.State.StartedAt}}")
    }

    pub fn health(&self) -> String {
        self.inspect("{{.State.Health.Status}}")
    }

    pub fn wait_restarted_since(&self, before: &str) {
        wait_until(&format!("{} to run again", self.name), || {
            self.status() == "running" && self.started_at() != before
        });
    }
}

impl Drop for PodNode {
    fn drop(&mut self) {
        self.checks.store(false, Ordering::SeqCst);
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}

/// An auto-mode daemon on the Podman service, with `extra` appended to its `.env`.
fn daemon_on(service: &PodmanService, targets: &[&str], extra: &str) -> Daemon {
    let (mut cmd, dir) = command(&format!("{}{extra}", auto_env(targets)));
    cmd.env("DOCKER_HOST", service.url());
    let daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("watching");
    daemon
}

/// Neither a lost engine nor a return of it: the loop that Podman's refused list filters and
/// unknown states caused ("reconnected on every pass").
fn assert_no_reconnects(daemon: &Daemon) {
    let out = daemon.output();
    assert!(
        !out.contains("lost the Docker engine") && !out.contains("answers again"),
        "healthther reconnected:\n{out}"
    );
}

#[test]
fn a_killed_podman_container_is_revived_by_its_event() {
    if !tools_present(&[("podman", "--version")]) {
        return;
    }
    let service = PodmanService::start();
    let node = PodNode::start("killed");
    // A pass every 5 minutes: within the test's deadline only the die event can bring it back.
    let daemon = daemon_on(&service, &[&node.name], "HEALTH_POLL_INTERVAL=5m\n");
    for round in 1..=2 {
        let before = node.started_at();
        podman_ok(&["kill", &node.name]);
        node.wait_restarted_since(&before);
        let audit = daemon.wait_audit(round);
        let r = &audit[round - 1];
        assert_eq!(r["decision"], "start", "{r}");
        assert_eq!(r["result"], "running", "{r}");
        assert_eq!(r["state"]["exit_code"], 137, "{r}");
        // Podman names no signal in its kill event: a kill, revived at once, not a stop
        // given a second to settle.
        assert_eq!(r["cause"], "api_kill", "{r}");
    }
    assert_no_reconnects(&daemon);
}

#[test]
fn an_unhealthy_podman_container_is_restarted() {
    if !tools_present(&[("podman", "--version")]) {
        return;
    }
    let service = PodmanService::start();
    let node = PodNode::start("sick");
    wait_until("the Podman fixture to be healthy", || {
        node.health() == "healthy"
    });
    let daemon = daemon_on(&service, &[&node.name], "");
    let before = node.started_at();
    podman_ok(&["exec", &node.name, "/fixture", "sick"]);
    node.wait_restarted_since(&before);
    let audit = daemon.wait_audit(1);
    let r = &audit[0];
    assert_eq!(r["decision"], "restart", "{r}");
    assert_eq!(r["result"], "running", "{r}");
    assert_eq!(r["state"]["health"], "unhealthy", "{r}");
    assert!(r["seen"].as_str().unwrap_or("").contains("sick"), "{r}");
    assert_no_reconnects(&daemon);
}

#[test]
fn passes_against_podman_keep_the_connection() {
    if !tools_present(&[("podman", "--version")]) {
        return;
    }
    let service = PodmanService::start();
    let node = PodNode::start("steady");
    // A stopped container beside it: the not-running list must find it without a filter
    // Podman refuses, and a fresh `stopped` state must not break the list.
    let other = PodNode::start("other");
    podman_ok(&["kill", &other.name]);
    let daemon = daemon_on(&service, &[&node.name], "RUST_LOG=debug\n");
    daemon.wait_passes(8);
    assert_no_reconnects(&daemon);
    assert!(daemon.audit().is_empty(), "acted: {:?}", daemon.audit());
}
