//! Socket proxies: healthther behind Debian's haproxy running the rules of the two common
//! docker-socket-proxies, in front of the real engine's socket. The rules are written here in
//! our own form with the same semantics as the upstream configurations (each proxy's rules
//! decide by the environment variables the upstream image reads, as `env(NAME) -m bool`):
//!
//! - Tecnativa/docker-socket-proxy, `haproxy.cfg`: non-GET methods are refused unless `POST`,
//!   before anything else; then a path section is allowed by its variable (`CONTAINERS`,
//!   `EVENTS`, ...), `ALLOW_START`/`ALLOW_STOP`/`ALLOW_RESTARTS` allow those container
//!   actions; everything else is refused. Events go to a backend without a server timeout.
//! - linuxserver/docker-socket-proxy, `root/templates/haproxy.cfg`: archive, changes, export,
//!   logs and top are refused unless their `ALLOW_*`; then the container actions
//!   (`ALLOW_START`, `ALLOW_STOP`, `ALLOW_RESTARTS`, `ALLOW_PAUSE`, `ALLOW_UNPAUSE`, also under
//!   `/libpod`) are allowed *before* the method check; then non-GET methods are refused unless
//!   `POST`; then the sections as above. Events share the one backend, so its 10-minute
//!   server timeout cuts a quiet event stream.
//!
//! The difference decides least privilege: behind Tecnativa's rules a start needs `POST=1`,
//! which with `CONTAINERS=1` (list and inspect) also lets create, delete and exec through;
//! behind linuxserver's, `ALLOW_START`/`ALLOW_STOP` work with `POST=0`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// The fixture needs no network; without one these tests do not depend on the engine's
/// default bridge.
const NO_NETWORK: &[&str] = &["--network", "none"];

/// The API sections both proxies switch by a variable of the same name.
const SECTIONS: &[(&str, &str)] = &[
    ("AUTH", "auth"),
    ("BUILD", "build"),
    ("COMMIT", "commit"),
    ("CONFIGS", "configs"),
    ("CONTAINERS", "containers"),
    ("DISTRIBUTION", "distribution"),
    ("EVENTS", "events"),
    ("EXEC", "exec"),
    ("GRPC", "grpc"),
    ("IMAGES", "images"),
    ("INFO", "info"),
    ("NETWORKS", "networks"),
    ("NODES", "nodes"),
    ("PING", "_ping"),
    ("PLUGINS", "plugins"),
    ("SECRETS", "secrets"),
    ("SERVICES", "services"),
    ("SESSION", "session"),
    ("SWARM", "swarm"),
    ("SYSTEM", "system"),
    ("TASKS", "tasks"),
    ("VERSION", "version"),
    ("VOLUMES", "volumes"),
];

/// A path rule: the API version prefix is optional, `rest` follows, case is ignored.
fn path_is(rest: &str) -> String {
    format!(r"{{ path,url_dec -m reg -i ^(/v[\d\.]+)?{rest} }}")
}

fn on(var: &str) -> String {
    format!("{{ env({var}) -m bool }}")
}

/// Which upstream proxy's rules.
#[derive(Clone, Copy, Debug)]
enum Rules {
    Tecnativa,
    Linuxserver,
}

impl Rules {
    /// The frontend's `http-request` rules, in the upstream order (order is the semantics).
    fn frontend(self) -> Vec<String> {
        let method_check = format!("http-request deny unless METH_GET || {}", on("POST"));
        let sections = SECTIONS.iter().map(|(var, p)| {
            format!(
                "http-request allow if {} {}",
                path_is(&format!("/{p}")),
                on(var)
            )
        });
        match self {
            Rules::Tecnativa => {
                let actions = [
                    ("ALLOW_RESTARTS", "((stop)|(restart)|(kill))"),
                    ("ALLOW_START", "start"),
                    ("ALLOW_STOP", "stop"),
                ]
                .into_iter()
                .map(|(var, a)| {
                    format!(
                        "http-request allow if {} {}",
                        path_is(&format!("/containers/[a-zA-Z0-9_.-]+/{a}")),
                        on(var)
                    )
                });
                std::iter::once(method_check)
                    .chain(actions)
                    .chain(sections)
                    .chain(["http-request deny".to_string()])
                    .collect()
            }
            Rules::Linuxserver => {
                let guarded = [
                    ("ALLOW_ARCHIVE", "archive"),
                    ("ALLOW_CHANGES", "change"),
                    ("ALLOW_EXPORT", "export"),
                    ("ALLOW_LOGS", "logs"),
                    ("ALLOW_TOP", "top"),
                ]
                .into_iter()
                .map(|(var, a)| {
                    format!(
                        "http-request deny if {} !{{ env({var}) -m bool }}",
                        path_is(&format!(
                            "(/libpod)?/(containers|pods)/[a-zA-Z0-9_.-]+/({a})"
                        ))
                    )
                });
                let actions = [
                    ("ALLOW_RESTARTS", "((stop)|(restart)|(kill))"),
                    ("ALLOW_START", "start"),
                    ("ALLOW_STOP", "stop"),
                    ("ALLOW_PAUSE", "pause"),
                    ("ALLOW_UNPAUSE", "unpause"),
                ]
                .into_iter()
                .map(|(var, a)| {
                    format!(
                        "http-request allow if {} {}",
                        path_is(&format!("(/libpod)?/(containers|pods)/[a-zA-Z0-9_.-]+/{a}")),
                        on(var)
                    )
                });
                guarded
                    .chain(actions)
                    .chain(std::iter::once(method_check))
                    .chain(sections)
                    .chain(["http-request deny".to_string()])
                    .collect()
            }
        }
    }

    /// The whole configuration: listening on `port`, forwarding to the engine's socket, with
    /// an admin socket in `dir`. With `idle`, quiet connections (the event stream among them)
    /// are cut after it, as the upstream's 10-minute timeouts do, only sooner.
    fn config(self, port: u16, dir: &std::path::Path, idle: Option<Duration>) -> String {
        let socket = docker_socket();
        let timeout = idle.map_or("10m".to_string(), |d| format!("{}ms", d.as_millis()));
        let admin = dir.join("admin.sock");
        let mut text = format!(
            "global\n    maxconn 200\n    stats socket {} level admin\n\n\
             defaults\n    mode http\n    option http-server-close\n    option redispatch\n    \
             retries 3\n    timeout http-request 10s\n    timeout queue 1m\n    \
             timeout connect 10s\n    timeout client {timeout}\n    timeout server {timeout}\n    \
             timeout http-keep-alive 10s\n\n\
             backend engine\n    server socket {socket}\n\n",
            admin.display()
        );
        // Tecnativa's own backend for events has no server timeout; linuxserver's events share
        // the one backend, so a backend of the same settings is the same for them, and lets a
        // test cut the event stream alone.
        let events_timeout = match self {
            Rules::Tecnativa => "0".to_string(),
            Rules::Linuxserver => timeout,
        };
        text.push_str(&format!(
            "backend engine-events\n    server socket {socket}\n    \
             timeout server {events_timeout}\n\n"
        ));
        text.push_str(&format!("frontend proxy\n    bind 127.0.0.1:{port}\n"));
        for rule in self.frontend() {
            text.push_str(&format!("    {rule}\n"));
        }
        text.push_str("    default_backend engine\n");
        text.push_str(&format!(
            "    use_backend engine-events if {}\n",
            path_is("/events")
        ));
        text
    }
}

/// haproxy with `rules` and the proxy's settings `env` (as given to the upstream image), on a
/// loopback port; stopped, by its pid, when dropped.
struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Haproxy {
    fn start(rules: Rules, env: &[(&str, &str)], idle: Option<Duration>) -> Haproxy {
        let dir = tempfile::Builder::new()
            .prefix("hhpod")
            .tempdir()
            .expect("temp dir");
        // A free port, let go just before haproxy takes it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, rules.config(port, dir.path(), idle)).expect("write haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            // Only the proxy's settings: an unset variable is off, as in the upstream images
            // for anything they do not default to on.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let proxy = Haproxy {
            child,
            _dir: dir,
            port,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < DEADLINE, "haproxy did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Cuts every event stream through the proxy, as its idle timeout does to a quiet one (a
    /// busy engine's stream is never quiet long enough for a test to wait for that).
    fn cut_event_streams(&self) {
        use std::os::unix::net::UnixStream;
        if let Ok(mut admin) = UnixStream::connect(self._dir.path().join("admin.sock")) {
            let _ = admin.write_all(b"shutdown sessions server engine-events/socket\n");
            let mut answer = String::new();
            let _ = admin.read_to_string(&mut answer);
        }
    }

    /// Sends one request through the proxy and returns the reply's status.
    fn status_of(&self, method: &str, path: &str, body: &str) -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to haproxy");
        s.set_read_timeout(Some(DEADLINE)).expect("read timeout");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).expect("send");
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP reply to {method} {path}: {reply:?}"))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The settings under which healthther works behind linuxserver's proxy and nothing that
/// creates, deletes or executes gets through (docs/proxies-and-tls.md's).
const LINUXSERVER_LEAST: &[(&str, &str)] = &[
    ("CONTAINERS", "1"),
    ("EVENTS", "1"),
    ("PING", "1"),
    ("VERSION", "1"),
    ("ALLOW_START", "1"),
    ("ALLOW_STOP", "1"),
    ("POST", "0"),
];

/// The settings healthther needs behind Tecnativa's proxy (docs/proxies-and-tls.md's): list,
/// inspect and events, and a start and a stop, which its rules let through only with `POST=1`.
const TECNATIVA_NEEDED: &[(&str, &str)] = &[
    ("CONTAINERS", "1"),
    ("EVENTS", "1"),
    ("PING", "1"),
    ("VERSION", "1"),
    ("POST", "1"),
];

/// What a compromised client would try: the three writes that must be refused. Returns
/// their statuses, in order. `victim` is a container of the test's own that a DELETE let
/// through would remove.
fn dangerous_calls(proxy: &Haproxy, victim: &str) -> [u16; 3] {
    let name = format!("{victim}-created");
    let create = proxy.status_of(
        "POST",
        &format!("/v1.41/containers/create?name={name}"),
        r#"{"Image":"healthther-fixture:test"}"#,
    );
    // Whatever got through, the test removes what it made.
    let _ = docker(&["rm", "-f", &name]);
    let exec = proxy.status_of(
        "POST",
        &format!("/v1.41/containers/{victim}/exec"),
        r#"{"Cmd":["/fixture","check"]}"#,
    );
    let delete = proxy.status_of("DELETE", &format!("/v1.41/containers/{victim}?force=1"), "");
    [create, delete, exec]
}

/// healthther behind `proxy`: a killed target comes back, and an unhealthy one is restarted
/// (a stop and a start).
fn revives_through(proxy: &Haproxy, label: &str) {
    let node = Node::start(&format!("hhpod{}-{label}", unique("")), NO_NETWORK);
    wait_until("the fixture to be healthy", || node.health() == "healthy");
    let (mut cmd, dir) = command(&auto_env(&[&node.name]));
    cmd.env("DOCKER_HOST", proxy.url());
    let daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("watching");

    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    let audit = daemon.wait_audit(1);
    assert_eq!(audit[0]["result"], "running", "{audit:?}");

    // Past the back-off's reset window, so the restart is not held back.
    std::thread::sleep(Duration::from_secs(11));
    let before = node.started_at();
    docker_ok(&["exec", &node.name, "/fixture", "sick"]);
    node.wait_restarted_since(&before);
    let audit = daemon.wait_audit(2);
    assert_eq!(audit[1]["decision"], "restart", "{audit:?}");
    assert_eq!(audit[1]["result"], "running", "{audit:?}");
}

#[test]
fn linuxserver_least_privilege_revives_and_refuses_create_delete_exec() {
    if !tools_present(&[("haproxy", "-v")]) {
        return;
    }
    let proxy = Haproxy::start(Rules::Linuxserver, LINUXSERVER_LEAST, None);
    revives_through(&proxy, "lsio");
    let victim = Node::start(&format!("hhpod{}", unique("victim")), NO_NETWORK);
    assert_eq!(dangerous_calls(&proxy, &victim.name), [403, 403, 403]);
    assert_eq!(
        victim.status(),
        "running",
        "the refused DELETE left it alone"
    );
}

#[test]
fn tecnativa_lets_create_delete_exec_through_whenever_healthther_can_start() {
    if !tools_present(&[("haproxy", "-v")]) {
        return;
    }
    // What healthther needs works...
    let proxy = Haproxy::start(Rules::Tecnativa, TECNATIVA_NEEDED, None);
    revives_through(&proxy, "tecn");
    // ...and lets the dangerous calls through: no 403 (docs/proxies-and-tls.md says so).
    let victim = Node::start(&format!("hhpod{}", unique("victim")), NO_NETWORK);
    let statuses = dangerous_calls(&proxy, &victim.name);
    assert!(
        statuses.iter().all(|s| *s != 403),
        "Tecnativa's rules refused one: {statuses:?}"
    );
    drop(proxy);

    // Without POST they are refused, and so is healthther's start: no setting has both.
    let read_only: Vec<(&str, &str)> = TECNATIVA_NEEDED
        .iter()
        .map(|&(k, v)| if k == "POST" { (k, "0") } else { (k, v) })
        .chain([("ALLOW_START", "1"), ("ALLOW_STOP", "1")])
        .collect();
    let proxy = Haproxy::start(Rules::Tecnativa, &read_only, None);
    let victim = Node::start(&format!("hhpod{}", unique("victim")), NO_NETWORK);
    assert_eq!(dangerous_calls(&proxy, &victim.name), [403, 403, 403]);
    let node = Node::start(&format!("hhpod{}", unique("refused")), NO_NETWORK);
    let (mut cmd, dir) = command(&auto_env(&[&node.name]));
    cmd.env("DOCKER_HOST", proxy.url());
    let daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("watching");
    node.kill();
    wait_until("a refused start in the audit file", || {
        events(&daemon.audit(), "action")
            .iter()
            .any(|r| r["error"].as_str().unwrap_or("").contains("HTTP 403"))
    });
}

#[test]
fn an_event_stream_cut_by_an_idle_timeout_is_asked_for_again_at_once() {
    if !tools_present(&[("haproxy", "-v")]) {
        return;
    }
    // linuxserver's rules, whose event stream shares the backend's server timeout: here 2 s
    // instead of 10 minutes, and, since other tests keep the engine's stream busy, a cut every
    // 3 s through haproxy's admin socket as well.
    let proxy = std::sync::Arc::new(Haproxy::start(
        Rules::Linuxserver,
        LINUXSERVER_LEAST,
        Some(Duration::from_secs(2)),
    ));
    // Holds the proxy weakly: when the test ends, however it ends, the proxy goes and so
    // does this thread.
    let weak = std::sync::Arc::downgrade(&proxy);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(3));
        match weak.upgrade() {
            Some(proxy) => proxy.cut_event_streams(),
            None => return,
        }
    });
    let node = Node::start(&format!("hhpod{}", unique("idle")), NO_NETWORK);
    // A pass every 5 minutes: within the deadline only events can bring the target back.
    let env = format!(
        "{}HEALTH_POLL_INTERVAL=5m\nRUST_LOG=debug\n",
        auto_env(&[&node.name])
    );
    let (mut cmd, dir) = command(&env);
    cmd.env("DOCKER_HOST", proxy.url());
    let daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("watching");
    let cuts = || daemon.output().matches("the event stream was cut").count();
    for round in 1..=2 {
        let seen = cuts();
        wait_until("three more cuts of the event stream", || cuts() >= seen + 3);
        let before = node.started_at();
        node.kill();
        node.wait_restarted_since(&before);
        assert_eq!(events(&daemon.wait_audit(round), "action").len(), round);
    }
    let out = daemon.output();
    assert_eq!(
        out.matches("subscribed again at once").count(),
        1,
        "said once:\n{out}"
    );
    assert!(
        !out.contains("lost the event stream") && !out.contains("lost the Docker engine"),
        "a cut is no loss:\n{out}"
    );
}
