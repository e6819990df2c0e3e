//! Test harness: real containers on the real engine, the real binary, generous deadlines.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Long enough for a slow CI machine; the tests poll, so a fast run is not slowed by it.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// The image every test node runs; built once per test run.
const FIXTURE_IMAGE: &str = "healthther-fixture:test";

/// Runs `docker` with `args`, returning its output whatever the exit status.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
}

/// Runs `docker` with `args` and returns its trimmed stdout; panics, with stderr, on failure.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The target the images are built for: musl, static by default, and smaller than a static
/// glibc (the Dockerfile builds the same on x86_64).
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// Builds `cargo ARGS` statically linked, the way the images want it, and returns the path of
/// the binary `name`. Both static builds share one target directory.
pub fn static_binary(args: &[&str], name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = root.join("target").join("static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--target", STATIC_TARGET])
        .args(args)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(root)
        .status()
        .expect("cannot run cargo for a static build");
    assert!(status.success(), "static build of {name} failed");
    target_dir.join(STATIC_TARGET).join("release").join(name)
}

/// Builds an image tagged `tag` from `dockerfile` with `files` (name, path) as its context.
pub fn build_image(tag: &str, dockerfile: &str, files: &[(&str, &Path)]) {
    let context = tempfile::tempdir().expect("temp dir");
    std::fs::write(context.path().join("Dockerfile"), dockerfile).expect("write Dockerfile");
    for (name, path) in files {
        std::fs::copy(path, context.path().join(name)).expect("copy into build context");
    }
    let ctx = context.path().to_string_lossy().to_string();
    docker_ok(&["build", "-q", "-t", tag, &ctx]);
}

/// The fixture image: the static fixture binary in a `FROM scratch` image.
pub fn fixture_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let binary = static_binary(&["-p", "fixture"], "fixture");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dockerfile = std::fs::read_to_string(root.join("fixture/Dockerfile"))
            .expect("read fixture/Dockerfile");
        build_image(FIXTURE_IMAGE, &dockerfile, &[("fixture", &binary)]);
    });
    FIXTURE_IMAGE
}

/// A container name no other test (or earlier run) uses, ending in `label`.
pub fn unique(label: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("htt{}x{n}-{label}", std::process::id())
}

/// A fixture container, removed when dropped (also when the test fails).
pub struct Node {
    pub name: String,
}

impl Node {
    /// Starts a fixture container called `name`, with extra `docker run` options.
    pub fn start(name: &str, options: &[&str]) -> Node {
        Node::start_with(name, options, &[])
    }

    /// Starts a fixture container running `command` (see fixture/src/main.rs).
    pub fn start_with(name: &str, options: &[&str], command: &[&str]) -> Node {
        let image = fixture_image();
        let node = Node {
            name: name.to_string(),
        };
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(options);
        args.push(image);
        args.extend_from_slice(command);
        docker_ok(&args);
        node
    }

    pub fn inspect(&self, format: &str) -> String {
        docker_ok(&["inspect", "-f", format, &self.name])
    }

    pub fn status(&self) -> String {
        self.inspect("{{.State.Status}}")
    }

    pub fn started_at(&self) -> String {
        self.inspect("{{.State.StartedAt}}")
    }

    pub fn health(&self) -> String {
        self.inspect("{{if .State.Health}}{{.State.Health.Status}}{{end}}")
    }

    pub fn kill(&self) {
        docker_ok(&["kill", &self.name]);
    }

    /// Waits until the container runs again after having been started at `before`.
    pub fn wait_restarted_since(&self, before: &str) {
        wait_until(&format!("{} to run again", self.name), || {
            self.status() == "running" && self.started_at() != before
        });
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

/// Polls `cond` until it holds, panicking after [`DEADLINE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// The healthther binary, running in its own working directory, its output captured.
pub struct Daemon {
    child: Child,
    output: Arc<Mutex<String>>,
    /// How many of stdout and stderr have reached their end: 2 once the process is gone.
    closed: Arc<AtomicUsize>,
    pub dir: tempfile::TempDir,
}

/// The engine the tests use, passed on to the daemon.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// The path of the engine's unix socket, for proxies and socket mounts.
pub fn docker_socket() -> String {
    docker_host()
        .strip_prefix("unix://")
        .expect("these tests need a unix DOCKER_HOST")
        .to_string()
}

/// The binary with a cleared environment: only what it needs to run, so a developer's own
/// settings (`HEALTH_*`, `MODE`, `RUST_LOG`, `NO_COLOR`, ...) never leak into a test.
fn bare_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_healthther"));
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// A command for the binary in a fresh working directory holding `dotenv` as its `.env`, with
/// none of the test's environment but `PATH` and the engine's `DOCKER_HOST`.
pub fn command(dotenv: &str) -> (Command, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(".env"), dotenv).expect("write .env");
    let mut cmd = bare_command();
    cmd.current_dir(dir.path())
        .env("DOCKER_HOST", docker_host())
        .stdin(Stdio::null());
    (cmd, dir)
}

impl Daemon {
    /// Starts the daemon with `dotenv` as its `.env`.
    pub fn start(dotenv: &str) -> Daemon {
        let (cmd, dir) = command(dotenv);
        Daemon::spawn(cmd, dir)
    }

    /// Starts the daemon and waits until its first pass is done and it watches events.
    pub fn watching(dotenv: &str) -> Daemon {
        let d = Daemon::start(dotenv);
        d.wait_log("watching");
        d
    }

    pub fn spawn(mut cmd: Command, dir: tempfile::TempDir) -> Daemon {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start healthther");
        let output = Arc::new(Mutex::new(String::new()));
        let closed = Arc::new(AtomicUsize::new(0));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = Arc::clone(&output);
            let closed = Arc::clone(&closed);
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut out = output.lock().unwrap_or_else(|p| p.into_inner());
                    out.push_str(&line);
                    out.push('\n');
                }
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
        Daemon {
            child,
            output,
            closed,
            dir,
        }
    }

    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until the console output contains `needle`.
    pub fn wait_log(&self, needle: &str) {
        let start = Instant::now();
        while !self.output().contains(needle) {
            assert!(
                self.closed.load(Ordering::SeqCst) < 2 || self.output().contains(needle),
                "healthther exited before saying {needle:?}:\n{}",
                self.output()
            );
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {needle:?} in healthther's output:\n{}",
                self.output()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Every record of the audit files, each line parsed as one JSON object.
    pub fn audit(&self) -> Vec<Value> {
        read_audit(self.dir.path())
    }

    /// Waits until the audit files hold `n` records, and returns them.
    pub fn wait_audit(&self, n: usize) -> Vec<Value> {
        wait_until(&format!("{n} audit records"), || self.audit().len() >= n);
        self.audit()
    }

    /// The human-readable log files' contents.
    pub fn human_log(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.log_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("healthther.") {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit, panicking after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for healthther") {
                // Let the readers take in what it wrote last.
                wait_until("its output to end", || {
                    self.closed.load(Ordering::SeqCst) >= 2
                });
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "healthther did not exit within {limit:?}; output:\n{}",
                self.output()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("poll healthther").is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `.env` text for an auto-mode daemon watching `targets`, with a short poll so the tests that
/// wait for "nothing happened" need not wait long.
pub fn auto_env(targets: &[&str]) -> String {
    format!(
        "HEALTH_TARGETS={}\nMODE=auto\nHEALTH_POLL_INTERVAL=500ms\nHEALTH_STOP_TIMEOUT=2s\n",
        targets.join(",")
    )
}

impl Daemon {
    /// Waits until `n` more reconciliation passes have run (needs `RUST_LOG=debug`), so that a
    /// test asserting that nothing happened has given the daemon every chance to act.
    pub fn wait_passes(&self, n: usize) {
        let count = |s: &str| s.matches("reconcile pass").count();
        let base = count(&self.output());
        wait_until(&format!("{n} reconcile passes"), || {
            count(&self.output()) >= base + n
        });
    }
}

/// A unix-socket proxy in front of the real engine's socket that injects faults: it can be
/// cut and restored (the engine going away), stall the event stream while other calls work, or
/// answer chosen calls with an error or garbage instead of the engine. The engine itself is
/// never touched. Each request comes on a connection of its own (healthther keeps none idle).
pub struct Proxy {
    pub path: PathBuf,
    /// The directory holding the socket, when the proxy made its own.
    _dir: Option<tempfile::TempDir>,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<UnixStream>>>,
    faults: Arc<Mutex<Faults>>,
    /// Request lines refused for their API version (see [`Faults::min_api`]).
    refused: Arc<Mutex<Vec<String>>>,
}

/// What the proxy does instead of forwarding.
#[derive(Default, Clone)]
pub struct Faults {
    /// Hold /events requests unanswered.
    pub stall_events: bool,
    /// Answer requests whose method is `.0` and whose path contains `.1` with status `.2` and
    /// body `.3`.
    pub answer: Vec<(&'static str, &'static str, u16, &'static str)>,
    /// Forward requests whose method is `.0` and whose path contains `.1` only after `.2`.
    pub delay: Vec<(&'static str, &'static str, Duration)>,
    /// Be a strict engine of this API version: refuse, with a 400 as the engine words it, every
    /// request whose path carries no `/vX.Y` prefix or an older one, except `/_ping` and
    /// `/version` (which clients ask before they know a version).
    pub min_api: Option<(u32, u32)>,
}

/// The API version a path asks for: `/v1.45/containers/json` is `Some(Some((1, 45)))`, an
/// unversioned path `Some(None)`, `/_ping` and `/version` `None` (never refused).
fn asked_version(path: &str) -> Option<Option<(u32, u32)>> {
    let path = path.split('?').next().unwrap_or("");
    if matches!(path, "/_ping" | "/version") {
        return None;
    }
    let version = path
        .strip_prefix("/v")
        .and_then(|rest| rest.split('/').next())
        .and_then(|v| v.split_once('.'))
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
    Some(version)
}

impl Proxy {
    /// A proxy listening at `path`, forwarding to the engine's unix socket.
    pub fn start(path: PathBuf) -> Proxy {
        let upstream = docker_socket();
        let proxy = Proxy {
            path: path.clone(),
            _dir: None,
            up: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
            faults: Arc::new(Mutex::new(Faults::default())),
            refused: Arc::new(Mutex::new(Vec::new())),
        };
        let (up, stop, conns, faults, refused) = (
            Arc::clone(&proxy.up),
            Arc::clone(&proxy.stop),
            Arc::clone(&proxy.conns),
            Arc::clone(&proxy.faults),
            Arc::clone(&proxy.refused),
        );
        let bind = |p: &Path| {
            let _ = std::fs::remove_file(p);
            let l = UnixListener::bind(p).expect("bind proxy socket");
            l.set_nonblocking(true).expect("nonblocking listener");
            l
        };
        let mut listener = Some(bind(&path));
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let want_up = up.load(Ordering::SeqCst);
                if want_up && listener.is_none() {
                    listener = Some(bind(&path));
                } else if !want_up && listener.is_some() {
                    listener = None;
                    let _ = std::fs::remove_file(&path);
                }
                match listener.as_ref().map(UnixListener::accept) {
                    Some(Ok((client, _))) => {
                        let _ = client.set_nonblocking(false);
                        let (upstream, conns, faults, refused) = (
                            upstream.clone(),
                            Arc::clone(&conns),
                            Arc::clone(&faults),
                            Arc::clone(&refused),
                        );
                        thread::spawn(move || serve(client, &upstream, &conns, &faults, &refused));
                    }
                    _ => thread::sleep(Duration::from_millis(10)),
                }
            }
            let _ = std::fs::remove_file(&path);
        });
        proxy
    }

    /// A proxy with its socket in a temporary directory of its own.
    pub fn in_temp_dir() -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut proxy = Proxy::start(dir.path().join("docker.sock"));
        proxy._dir = Some(dir);
        proxy
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// The request lines refused for their API version so far.
    pub fn refused(&self) -> Vec<String> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Cuts every connection and stops answering: the socket disappears.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        for c in conns.drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        drop(conns);
        wait_until("the proxy socket to go", || !self.path.exists());
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        wait_until("the proxy socket to return", || self.path.exists());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

/// One client connection: read the request head, then forward it, hold it, or answer it.
fn serve(
    mut client: UnixStream,
    upstream: &str,
    conns: &Mutex<Vec<UnixStream>>,
    faults: &Mutex<Faults>,
    refused: &Mutex<Vec<String>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let faults = faults.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Ok(c) = client.try_clone() {
        conns.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }
    if faults.stall_events && path.contains("/events") {
        // Keep the connection open and silent until the proxy is cut or the client gives up.
        let _ = client.read(&mut buf);
        return;
    }
    if let (Some(min), Some(asked)) = (faults.min_api, asked_version(path)) {
        // The engine's own words (Docker 25+) for both cases.
        let message = match asked {
            None => Some("unversioned API requests are refused here".to_string()),
            Some(v) if v < min => Some(format!(
                "client version {}.{} is too old. Minimum supported API version is {}.{}, \
                 please upgrade your client to a newer version",
                v.0, v.1, min.0, min.1
            )),
            Some(_) => None,
        };
        if let Some(message) = message {
            refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line.clone());
            let body = serde_json::json!({ "message": message }).to_string();
            let reply = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(reply.as_bytes());
            return;
        }
    }
    if let Some((_, _, status, body)) = faults
        .answer
        .iter()
        .find(|(m, p, _, _)| *m == method && path.contains(p))
    {
        let reply = format!(
            "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(reply.as_bytes());
        return;
    }
    if let Some((_, _, d)) = faults
        .delay
        .iter()
        .find(|(m, p, _)| *m == method && path.contains(p))
    {
        thread::sleep(*d);
    }
    let Ok(mut server) = UnixStream::connect(upstream) else {
        return;
    };
    if server.write_all(&head).is_err() {
        return;
    }
    if let Ok(c) = server.try_clone() {
        conns.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }
    pipe(&client, &server);
    pipe(&server, &client);
}

/// Copies `from` to `to` on a thread until either side closes.
fn pipe(from: &UnixStream, to: &UnixStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

/// A TCP listener on loopback forwarding to the engine's unix socket, as a docker-socket-proxy
/// would; returns its `tcp://` address. It lives as long as the test process.
pub fn tcp_proxy() -> String {
    let upstream = docker_socket();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = UnixStream::connect(&upstream) else {
                continue;
            };
            let (Ok(mut c_in), Ok(mut c_out)) = (client.try_clone(), client.try_clone()) else {
                continue;
            };
            let (Ok(mut s_in), Ok(mut s_out)) = (server.try_clone(), server.try_clone()) else {
                continue;
            };
            thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            thread::spawn(move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    format!("tcp://{addr}")
}

/// Every record of the audit files of a daemon run in `workdir`; none may be torn.
pub fn read_audit(workdir: &Path) -> Vec<Value> {
    let log = healthther::audit::read(&workdir.join("logs")).unwrap_or_default();
    assert!(log.torn.is_empty(), "torn audit lines: {:?}", log.torn);
    log.records
}

/// The audit records of one kind (`action`, `prompt`, `answer`, `prompt_dropped`).
/// The daemon's audit records with `event` about `container`.
pub fn records_for(daemon: &Daemon, event: &str, container: &str) -> Vec<Value> {
    events(&daemon.audit(), event)
        .into_iter()
        .filter(|r| r["container"] == container)
        .cloned()
        .collect()
}

pub fn events<'a>(audit: &'a [Value], event: &str) -> Vec<&'a Value> {
    audit.iter().filter(|r| r["event"] == event).collect()
}

/// `.env` text for a manual-mode daemon watching `targets`.
pub fn manual_env(targets: &[&str]) -> String {
    format!(
        "HEALTH_TARGETS={}\nMODE=manual\nHEALTH_POLL_INTERVAL=500ms\nHEALTH_STOP_TIMEOUT=2s\n",
        targets.join(",")
    )
}

/// Runs `healthther ARGS` as a client of the daemon working in `workdir`; returns the exit
/// code, stdout and stderr.
pub fn client(workdir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = bare_command()
        .args(args)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .output()
        .expect("run healthther client");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The daemon in a real pseudo-terminal, as an operator attached to it sees it.
pub struct Terminal {
    pub session: rexpect::session::PtySession,
    pub dir: tempfile::TempDir,
}

impl Terminal {
    pub fn start(dotenv: &str) -> Terminal {
        let (mut cmd, dir) = command(dotenv);
        // The pty is stdin, stdout and stderr; nothing of ours may override it.
        cmd.stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        let timeout_ms = u64::try_from(DEADLINE.as_millis()).unwrap_or(u64::MAX);
        let session = rexpect::session::spawn_command(cmd, Some(timeout_ms))
            .expect("start healthther in a pty");
        Terminal { session, dir }
    }

    /// Reads the terminal until `needle` appears; returns what came before it.
    pub fn expect(&mut self, needle: &str) -> String {
        self.session
            .exp_string(needle)
            .unwrap_or_else(|e| panic!("waiting for {needle:?} on the terminal: {e}"))
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        self.session.send_line(line).expect("type on the terminal");
    }

    pub fn audit(&self) -> Vec<Value> {
        read_audit(self.dir.path())
    }
}

/// The compose tool, in the two versions users have. Compose v1 is `docker-compose` 1.x; v2 is
/// the CLI plugin run directly (`.ci/compose-v2` fetches it), which works as a standalone
/// `docker-compose` too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compose {
    V1,
    V2,
}

impl Compose {
    /// The program to run, or `None` (after saying so in one line) when this version is not
    /// installed; under `CI=true` a missing version fails the test instead.
    pub fn program(self) -> Option<PathBuf> {
        static FOUND: OnceLock<[Option<PathBuf>; 2]> = OnceLock::new();
        let found = FOUND.get_or_init(|| [find_compose(Compose::V1), find_compose(Compose::V2)])
            [self as usize]
            .clone();
        if found.is_none() {
            skip(match self {
                Compose::V1 => "Compose v1 (docker-compose 1.x) is not installed",
                Compose::V2 => {
                    "Compose v2 is not installed (.ci/compose-v2 fetches it, or set \
                     HEALTHTHER_COMPOSE_V2)"
                }
            });
        }
        found
    }
}

impl Compose {
    /// A command running this version against the engine under test, or `None` as
    /// [`Compose::program`].
    ///
    /// Compose v1 reads `ContainerConfig` from an image when it recreates a container, and
    /// Engine 25+ (API 1.45+) no longer sends it: `up --force-recreate` dies with
    /// `KeyError: 'ContainerConfig'` whatever healthther does. Users of v1 on such engines pin
    /// the API with `COMPOSE_API_VERSION=1.44`, and so does this (only there: older engines
    /// refuse 1.44).
    pub fn command(self) -> Option<Command> {
        let mut cmd = Command::new(self.program()?);
        if self == Compose::V1 && engine_api_version() >= (1, 45) {
            cmd.env("COMPOSE_API_VERSION", "1.44");
        }
        Some(cmd)
    }
}

/// The API version of the engine under test, as `(1, 45)`: the newest it speaks.
pub fn engine_api_version() -> (u32, u32) {
    static VERSION: OnceLock<(u32, u32)> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let v = docker_ok(&["version", "--format", "{{.Server.APIVersion}}"]);
        let (major, minor) = v.split_once('.').expect("an API version like 1.45");
        (
            major.parse().expect("major version"),
            minor.parse().expect("minor version"),
        )
    })
}

fn find_compose(compose: Compose) -> Option<PathBuf> {
    match compose {
        Compose::V1 => works(PathBuf::from("docker-compose"), &["version 1."]),
        Compose::V2 => {
            let mut candidates: Vec<PathBuf> = Vec::new();
            if let Some(p) = std::env::var_os("HEALTHTHER_COMPOSE_V2") {
                candidates.push(p.into());
            }
            candidates.push("/opt/healthther-ci/compose-v2/cli-plugins/docker-compose".into());
            if let Some(home) = std::env::var_os("HOME") {
                candidates.push(PathBuf::from(home).join(".docker/cli-plugins/docker-compose"));
            }
            candidates.push("/usr/libexec/docker/cli-plugins/docker-compose".into());
            candidates.push("/usr/local/lib/docker/cli-plugins/docker-compose".into());
            candidates.push("/usr/lib/docker/cli-plugins/docker-compose".into());
            // Upstream says `version v2.26.1`, Debian's build `version 2.26.1-4`.
            candidates
                .into_iter()
                .find_map(|p| works(p, &["version v2.", "version 2."]))
        }
    }
}

/// `program` if `program version` runs and says one of `needles`.
fn works(program: PathBuf, needles: &[&str]) -> Option<PathBuf> {
    let out = Command::new(&program)
        .arg("version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    (out.status.success() && needles.iter().any(|n| text.contains(n))).then_some(program)
}

/// Held by the tests that bring up the shipped compose files, whose `container_name`s
/// (healthther, nodo_1, nodo_2) are fixed: one of them at a time in this test process. Each
/// still checks that no one else has those names.
pub fn shipped_names_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Panics with a clear message unless the shipped compose files' fixed container names are
/// free on the engine.
pub fn assert_shipped_names_free() {
    for name in ["healthther", "nodo_1", "nodo_2"] {
        assert!(
            !docker(&["container", "inspect", name]).status.success(),
            "a container named {name} exists already on {}; this test brings up the shipped \
             compose files, whose container names are fixed: remove it to run this test",
            docker_host()
        );
    }
}

/// Whether the `tools` (each with an argument that makes it say its version) can be run here:
/// a test that needs them is skipped (see [`skip`]) on a developer's machine without them, and
/// fails under CI=true, where `.ci/run` installs them and nothing may be skipped.
pub fn tools_present(tools: &[(&str, &str)]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(tool, arg)| {
            !Command::new(tool)
                .arg(arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|(tool, _)| *tool)
        .collect();
    if !missing.is_empty() {
        skip(&format!("{} not installed", missing.join(", ")));
    }
    missing.is_empty()
}

/// What installs every tool the tests need (and starts a Docker engine if none runs).
pub const INSTALL: &str = "sudo .ci/install";

/// The running test is skipped, because of `why` (a tool that is not installed): said in one
/// line with the test's output, and counted in a line that ends the test binary's output, so
/// that a run that skipped is never read as a full one. Under CI=true nothing may be skipped:
/// the test fails instead.
pub fn skip(why: &str) {
    let test = thread::current().name().unwrap_or("a test").to_string();
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {why}, and under CI=true nothing may be skipped ({INSTALL} installs it all)"
    );
    eprintln!("skipped {test}: {why}");
    SKIPPED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(format!("{test}: {why}"));
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: `report_skips` is a plain function that never unwinds; atexit only keeps
        // its address, to call it once when the process exits (after libtest's summary).
        let registered = unsafe { nix::libc::atexit(report_skips) };
        if registered != 0 {
            eprintln!("cannot count the skipped tests at exit");
        }
    });
}

static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Writes the skipped tests and their count to the real standard error, past libtest's capture
/// (which only takes `print!` and `eprint!`), as the last lines of the test binary's output.
extern "C" fn report_skips() {
    let skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    if skipped.is_empty() {
        return;
    }
    let mut text = String::from("\n");
    for line in skipped.iter() {
        text.push_str(&format!("skipped {line}\n"));
    }
    text.push_str(&format!(
        "{} skipped: counted as passed above, they did not run; {INSTALL} installs what they need\n",
        skipped.len()
    ));
    let _ = std::io::stderr().write_all(text.as_bytes());
}
