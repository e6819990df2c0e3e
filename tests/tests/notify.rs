//! Notifications and metrics against real servers: a local HTTP server standing in for each
//! hosted service's API (checking the exact request), Prometheus scraping the daemon,
//! Alertmanager delivering to its webhook receiver, an SMTP server, and an egress proxy
//! (tinyproxy) between healthther and a webhook. Prometheus, Alertmanager, aiosmtpd and
//! tinyproxy are skipped with one line where they are not installed, except under `CI=true`,
//! where that is a failure (`.ci/run` installs them). Every server binds 127.0.0.1 only.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// One request a [`Capture`] server received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// An HTTP server on loopback that records every request and answers 200.
pub struct Capture {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Capture {
    pub fn start() -> Capture {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let log = Arc::clone(&log);
                thread::spawn(move || serve(stream, &log));
            }
        });
        Capture { port, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn on(&self, path_prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.starts_with(path_prefix))
            .collect()
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Reads requests off one connection (clients keep it alive) until it closes.
fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut words = line.split_whitespace();
        let (method, path) = (
            words.next().unwrap_or("").to_string(),
            words.next().unwrap_or("").to_string(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        log.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
            method,
            path,
            headers,
            body,
        });
        let reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A TCP port that accepts connections and never answers: a channel that hangs.
pub fn black_hole() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("address").port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().map_while(Result::ok) {
            held.push(s);
        }
    });
    port
}

/// A free loopback port (bound and let go).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A plain HTTP/1.1 GET on loopback; the status and the body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Whether `component` is installed; if not, says so in one line, and under `CI=true` fails.
fn have(component: &str, installed: bool) -> bool {
    if !installed {
        skip(&format!("{component} is not installed"));
    }
    installed
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A server process of the test's, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, log: &Path) -> Server {
    let out = std::fs::File::create(log).expect("server log");
    let err = out.try_clone().expect("server log");
    Server(
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
    )
}

fn env_with(base: &str, extra: &[(&str, &str)]) -> String {
    let mut text = base.to_string();
    for (k, v) in extra {
        text.push_str(&format!("{k}=\"{v}\"\n"));
    }
    text
}

/// All the `records` the generic channel received, over all its messages.
pub fn generic_records(seen: &[Seen]) -> Vec<Value> {
    seen.iter()
        .flat_map(|s| s.json()["records"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[test]
fn hosted_services_get_the_requests_their_apis_document() {
    let server = Capture::start();
    let p = server.port;
    let node = Node::start(&unique("ntf"), &[]);
    let urls = [
        format!("generic+http://127.0.0.1:{p}/hook?@X-Secret=HdrSeCrEt"),
        format!("ntfy://127.0.0.1:{p}/ops-alerts?scheme=http&priority=high"),
        "slack://hcbot@TSeCrEt/BSeCrEt/XSeCrEt".to_string(),
        "discord://DiscSeCrEt@4242".to_string(),
        "telegram://777:TgSeCrEt@telegram?chats=@ops".to_string(),
        format!("gotify://127.0.0.1:{p}/GotSeCrEt?disabletls=yes"),
    ];
    let dotenv = env_with(
        &auto_env(&[&node.name]),
        &[
            ("HEALTH_NOTIFY", &urls.join(" ")),
            ("HEALTH_NOTIFY_API_BASE", &server.base()),
            ("HEALTH_NOTIFY_HOST", "testbox"),
        ],
    );
    let daemon = Daemon::watching(&dotenv);
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    wait_until("a request on each of the six APIs", || {
        [
            "/hook",
            "/ops-alerts",
            "/services/",
            "/api/webhooks/",
            "/bot",
            "/message",
        ]
        .iter()
        .all(|p| !server.on(p).is_empty())
    });
    let name = node.name.as_str();
    let title = format!("healthther on testbox: {name} revived");

    let g = &server.on("/hook")[0];
    assert_eq!(g.method, "POST");
    assert_eq!(g.headers["content-type"], "application/json");
    assert_eq!(g.headers["x-secret"], "HdrSeCrEt");
    let body = g.json();
    assert_eq!(body["host"], "testbox");
    assert_eq!(body["title"], title.as_str());
    assert_eq!(body["records"][0]["event"], "action");
    assert_eq!(body["records"][0]["target"], name);
    assert_eq!(body["records"][0]["result"], "running");
    assert_eq!(body["records"][0]["v"], 1);

    let n = &server.on("/ops-alerts")[0];
    assert_eq!(
        (n.method.as_str(), n.path.as_str()),
        ("POST", "/ops-alerts")
    );
    assert_eq!(n.headers["title"], title.as_str());
    assert_eq!(n.headers["priority"], "high");
    assert!(n.text().contains(name), "{}", n.text());

    let s = &server.on("/services/")[0];
    assert_eq!(s.path, "/services/TSeCrEt/BSeCrEt/XSeCrEt");
    assert_eq!(s.headers["content-type"], "application/json");
    assert_eq!(s.json()["username"], "hcbot");
    assert!(s.json()["text"]
        .as_str()
        .unwrap_or("")
        .starts_with(&format!("*{title}*")));

    let d = &server.on("/api/webhooks/")[0];
    assert_eq!(d.path, "/api/webhooks/4242/DiscSeCrEt");
    assert!(d.json()["content"].as_str().unwrap_or("").contains(name));

    let t = &server.on("/bot")[0];
    assert_eq!(t.path, "/bot777:TgSeCrEt/sendMessage");
    assert_eq!(t.json()["chat_id"], "@ops");
    assert!(t.json()["text"].as_str().unwrap_or("").contains(name));

    let m = &server.on("/message")[0];
    assert_eq!(m.headers["x-gotify-key"], "GotSeCrEt");
    assert_eq!(m.json()["title"], title.as_str());
    assert!(m.json()["message"].as_str().unwrap_or("").contains(name));

    // No secret reaches the console or the logs.
    let said = daemon.output() + &daemon.human_log();
    assert!(said.contains("notifying through"), "{said}");
    assert!(!said.contains("SeCrEt"), "a secret in the output:\n{said}");
}

/// News still in the grouping window when healthther is told to stop is sent, not lost.
#[test]
fn news_still_grouping_at_sigterm_is_sent_before_it_exits() {
    let server = Capture::start();
    let node = Node::start(&unique("lastword"), &[]);
    let url = format!("generic+http://127.0.0.1:{}/last", server.port);
    let mut daemon = Daemon::watching(&env_with(
        &auto_env(&[&node.name]),
        &[("HEALTH_NOTIFY", &url)],
    ));
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    daemon.wait_audit(1);
    // Well inside the 2 s the group stays open for more news.
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{}", daemon.output());
    assert_eq!(
        generic_records(&server.seen()).len(),
        1,
        "the revival was told before the exit: {}",
        daemon.output()
    );
}

#[test]
fn a_storm_of_twenty_deaths_is_a_few_messages() {
    let server = Capture::start();
    let nodes: Vec<Node> = (0..20)
        .map(|i| Node::start(&unique(&format!("storm{i}")), &[]))
        .collect();
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let url = format!("generic+http://127.0.0.1:{}/storm", server.port);
    let daemon = Daemon::watching(&env_with(&auto_env(&names), &[("HEALTH_NOTIFY", &url)]));
    let before: Vec<String> = nodes.iter().map(Node::started_at).collect();
    let mut args = vec!["kill"];
    args.extend(names.iter().copied());
    docker_ok(&args);
    for (n, b) in nodes.iter().zip(&before) {
        n.wait_restarted_since(b);
    }
    daemon.wait_audit(20);
    wait_until("the 20 revivals to be told", || {
        generic_records(&server.seen()).len() >= 20
    });
    let messages = server.seen();
    eprintln!("20 deaths made {} message(s)", messages.len());
    assert!(
        messages.len() <= 3,
        "20 deaths within a moment are grouped: {} messages",
        messages.len()
    );
    assert!(messages[0].json()["title"]
        .as_str()
        .unwrap_or("")
        .contains("revived"));
}

#[test]
fn a_channel_that_never_answers_delays_no_revival_and_no_other_channel() {
    let server = Capture::start();
    let hole = black_hole();
    let node = Node::start(&unique("dead"), &[]);
    let dead_url = format!("generic+http://127.0.0.1:{hole}/hangs");
    let urls = format!("{dead_url} generic+http://127.0.0.1:{}/alive", server.port);
    // Kills in quick succession are no crash loop here: no back-off to blur the timings.
    let daemon = Daemon::watching(&env_with(
        &auto_env(&[&node.name]),
        &[("HEALTH_NOTIFY", &urls), ("HEALTH_BACKOFF_RESET", "0s")],
    ));
    // Revivals go on while the dead channel's first send still hangs (it waits 10 s a try).
    for round in 1..=3 {
        let before = node.started_at();
        let killed = Instant::now();
        node.kill();
        node.wait_restarted_since(&before);
        let took = daemon.wait_audit(round)[round - 1]["took_ms"].clone();
        eprintln!(
            "round {round}: running again {} ms after the kill (start took {took} ms) with a dead channel",
            killed.elapsed().as_millis()
        );
    }
    wait_until("the live channel to be told", || {
        !server.on("/alive").is_empty()
    });
    // The dead channel is said once, by its redacted URL, when its tries run out.
    daemon.wait_log(&format!("notifications through {dead_url} fail"));
}

#[test]
fn notify_test_tries_every_channel_and_says_which_failed() {
    let server = Capture::start();
    let refused = free_port();
    let urls = format!(
        "ntfy://:TokSeCrEt@127.0.0.1:{}/t?scheme=http,generic+http://u:PwSeCrEt@127.0.0.1:{refused}/x",
        server.port
    );
    let (mut cmd, _dir) = command(&format!("HEALTH_NOTIFY={urls}\n"));
    let out = cmd.arg("notify-test").output().expect("run notify-test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "one line per channel: {stdout}");
    assert!(lines[0].starts_with("ok "), "{stdout}");
    assert!(lines[1].starts_with("failed "), "{stdout}");
    assert!(!stdout.contains("SeCrEt"), "{stdout}");
    assert_eq!(out.status.code(), Some(1));
    let t = &server.on("/t")[0];
    assert_eq!(t.headers["authorization"], "Bearer TokSeCrEt");
    assert!(
        t.headers["title"].contains("test message"),
        "{:?}",
        t.headers
    );
}

#[test]
fn a_bad_notification_url_stops_the_start_naming_it_redacted() {
    for (url, needle) in [
        ("slack://xoxb:BotSeCrEt@channel", "bot token"),
        ("nosuch://u:PwSeCrEt@host", "unknown kind"),
        ("telegram://1:TgSeCrEt@telegram", "chat"),
    ] {
        let (mut cmd, _dir) = command(&format!("HEALTH_TARGETS=a1\nHEALTH_NOTIFY={url}\n"));
        let out = cmd.output().expect("run healthther");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{url}: {stderr}");
        assert!(
            stderr.contains("HEALTH_NOTIFY") && stderr.contains(needle),
            "{stderr}"
        );
        assert!(!stderr.contains("SeCrEt"), "{stderr}");
    }
    let (mut cmd, _dir) = command("HEALTH_TARGETS=a1\nHEALTH_METRICS_ADDR=nowhere\n");
    let out = cmd.output().expect("run healthther");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HEALTH_METRICS_ADDR"));
}

#[test]
fn prometheus_scrapes_the_actions_of_a_revived_target() {
    if !have("prometheus", on_path("prometheus") && on_path("promtool")) {
        return;
    }
    let node = Node::start(&unique("prom"), &[]);
    let mport = free_port();
    let daemon = Daemon::watching(&env_with(
        &auto_env(&[&node.name]),
        &[("HEALTH_METRICS_ADDR", &format!("127.0.0.1:{mport}"))],
    ));
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    daemon.wait_audit(1);

    // The exposition is what promtool accepts.
    let (status, text) = http_get(mport, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    assert!(text.contains("healthther_actions_total"), "{text}");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let checked = check.wait_with_output().expect("promtool");
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // Nothing on the listener changes state.
    assert_eq!(http_get(mport, "/").map(|r| r.0), Some(404));

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: healthther\n    \
             static_configs:\n      - targets: ['127.0.0.1:{mport}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let pport = free_port();
    let _prometheus = spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}")),
        &dir.path().join("prometheus.log"),
    );
    let query = format!(
        "/api/v1/query?query=healthther_actions_total%7Btarget%3D%22{}%22%2Cresult%3D%22running%22%7D",
        node.name
    );
    let mut last = String::new();
    let start = Instant::now();
    loop {
        if let Some((200, body)) = http_get(pport, &query) {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if v["data"]["result"][0]["value"][1] == "1" {
                break;
            }
            last = body;
        }
        assert!(
            start.elapsed() < DEADLINE * 2,
            "Prometheus never had healthther_actions_total for {}: {last}\n{}",
            node.name,
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(500));
    }
}

/// A real Alertmanager on loopback whose webhook receiver is a capture: what it tells is what
/// Alertmanager decided from healthther's posts.
struct Alertmanager {
    hook: Capture,
    port: u16,
    _server: Server,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// `None` (the test skips) where the package is missing.
    fn start() -> Option<Alertmanager> {
        if !have(
            "prometheus-alertmanager",
            on_path("prometheus-alertmanager"),
        ) {
            return None;
        }
        let hook = Capture::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: hook\n  group_by: ['alertname', 'target']\n  group_wait: 1s\n  \
                 group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    \
                 webhook_configs:\n      - url: http://127.0.0.1:{}/am\n        send_resolved: true\n",
                hook.port
            ),
        )
        .expect("write alertmanager.yml");
        let port = free_port();
        let server = spawn(
            Command::new("prometheus-alertmanager")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // No gossip port on every interface: one Alertmanager, on loopback.
                .arg("--cluster.listen-address="),
            &dir.path().join("alertmanager.log"),
        );
        wait_until("Alertmanager to answer", || {
            http_get(port, "/-/ready").is_some_and(|r| r.0 == 200)
        });
        Some(Alertmanager {
            hook,
            port,
            _server: server,
            _dir: dir,
        })
    }

    /// healthther's settings for it, beside `env`.
    fn env(&self, env: &str) -> String {
        let url = format!("alertmanager://127.0.0.1:{}", self.port);
        env_with(
            env,
            &[("HEALTH_NOTIFY", &url), ("HEALTH_NOTIFY_HOST", "ambox")],
        )
    }

    /// Whether the webhook told of `target`'s alert in `status` (`firing`, `resolved`), with
    /// `severity` if given.
    fn told(&self, target: &str, status: &str, severity: Option<&str>) -> bool {
        self.hook.on("/am").into_iter().any(|s| {
            let v = s.json();
            v["status"] == status
                && v["alerts"].as_array().is_some_and(|a| {
                    a.iter().any(|a| {
                        a["labels"]["target"] == target
                            && a["labels"]["alertname"] == "HealththerTargetDown"
                            && a["labels"]["instance"] == "ambox"
                            && a["status"] == status
                            && severity.is_none_or(|sev| {
                                a["labels"]["severity"] == sev
                                    || a["annotations"]["severity"] == sev
                            })
                    })
                })
        })
    }

    fn wait(&self, target: &str, status: &str, severity: Option<&str>) {
        wait_until_long(
            &format!("Alertmanager's webhook to deliver {target}'s alert {status}"),
            || self.told(target, status, severity),
        );
    }
}

#[test]
fn alertmanager_gets_the_alert_and_its_resolution() {
    let Some(am) = Alertmanager::start() else {
        return;
    };
    let node = Node::start(&unique("am"), &[]);
    let daemon = Daemon::watching(&am.env(&manual_env(&[&node.name])));
    node.kill();
    am.wait(&node.name, "firing", None);
    let (code, _, err) = client(daemon.dir.path(), &["answer", &node.name, "yes"]);
    assert_eq!(code, Some(0), "{err}");
    wait_until("the node to run again", || node.status() == "running");
    am.wait(&node.name, "resolved", None);
}

/// A hold says the target is down on purpose: its alert ends. A hold is about the target, not
/// one container (its record names none), and no prompt is dropped with it in auto mode.
#[test]
fn a_held_targets_alert_is_resolved() {
    let Some(am) = Alertmanager::start() else {
        return;
    };
    let node = Node::start_with(&unique("amhold"), &[], &["exit-after", "300", "3"]);
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=500ms\nHEALTH_QUARANTINE_AFTER=2\n",
        auto_env(&[&node.name])
    );
    let daemon = Daemon::watching(&am.env(&env));
    daemon.wait_log("QUARANTINED");
    am.wait(&node.name, "firing", Some("critical"));
    let (code, _, err) = client(
        daemon.dir.path(),
        &["hold", &node.name, "--reason", "maintenance"],
    );
    assert_eq!(code, Some(0), "{err}");
    am.wait(&node.name, "resolved", None);
}

/// A quarantined target raises a critical alert; compose replacing the container (here by
/// hand: removed, and a healthy one of the same name made) ends it.
#[test]
fn a_recreated_quarantined_targets_alert_is_resolved() {
    let Some(am) = Alertmanager::start() else {
        return;
    };
    let name = unique("amquar");
    let node = Node::start_with(&name, &[], &["exit-after", "300", "3"]);
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=500ms\nHEALTH_QUARANTINE_AFTER=2\n",
        auto_env(&[&node.name])
    );
    let daemon = Daemon::watching(&am.env(&env));
    daemon.wait_log("QUARANTINED");
    am.wait(&node.name, "firing", Some("critical"));
    docker_ok(&["rm", "-f", &node.name]);
    let _again = Node::start(&name, &[]);
    am.wait(&node.name, "resolved", None);
}

/// Compose replacing a failing container first renames it `<12 hex>_<name>` (no target while
/// so named), then removes it: its alert ends with it, though it was no target at the end.
#[test]
fn a_failing_container_renamed_away_then_removed_resolves_its_alert() {
    let Some(am) = Alertmanager::start() else {
        return;
    };
    let name = format!("hadv-{}", unique("amren"));
    let node = Node::start_with(&name, &[], &["exit-after", "300", "3"]);
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=500ms\nHEALTH_QUARANTINE_AFTER=2\n",
        auto_env(&[&node.name])
    );
    let daemon = Daemon::watching(&am.env(&env));
    daemon.wait_log("QUARANTINED");
    am.wait(&node.name, "firing", Some("critical"));
    let aside = format!("0123456789ab_{name}");
    docker_ok(&["rename", &node.name, &aside]);
    docker_ok(&["rm", "-f", &aside]);
    am.wait(&node.name, "resolved", None);
}

/// One container of a target stopped under `HEALTH_ON_STOP=hold` holds that container, not
/// its target: the alert of a sibling that is quarantined still fires.
#[test]
fn a_stop_hold_of_one_container_leaves_its_siblings_alert_firing() {
    let Some(am) = Alertmanager::start() else {
        return;
    };
    let service = format!("hadv-{}", unique("amsib"));
    let labels = |n: &str| {
        [
            "--label".to_string(),
            "com.docker.compose.project=hadvp".to_string(),
            "--label".to_string(),
            format!("com.docker.compose.service={service}"),
            "--label".to_string(),
            format!("com.docker.compose.container-number={n}"),
        ]
    };
    let (l1, l2) = (labels("1"), labels("2"));
    let l1: Vec<&str> = l1.iter().map(String::as_str).collect();
    let l2: Vec<&str> = l2.iter().map(String::as_str).collect();
    let failing = Node::start_with(&format!("{service}-1"), &l1, &["exit-after", "300", "3"]);
    let fine = Node::start(&format!("{service}-2"), &l2);
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=500ms\nHEALTH_QUARANTINE_AFTER=2\nHEALTH_ON_STOP=hold\n",
        auto_env(&[&service])
    );
    let daemon = Daemon::watching(&am.env(&env));
    daemon.wait_log("QUARANTINED");
    am.wait(&service, "firing", Some("critical"));
    docker_ok(&["stop", "-t", "1", &fine.name]);
    daemon.wait_log("held until it is started again");
    // Alertmanager groups for a second and delivers at once: a resolution would be here.
    thread::sleep(Duration::from_secs(6));
    let resolved: Vec<Value> = am
        .hook
        .on("/am")
        .iter()
        .flat_map(|s| s.json()["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["container"] == failing.name.as_str() && a["status"] == "resolved")
        .collect();
    assert!(
        resolved.is_empty(),
        "{} is quarantined, yet its alert was resolved by a hold of {}: {resolved:?}",
        failing.name,
        fine.name
    );
}

/// A hold ends a quarantined target's alert; when the hold ends and it is still quarantined,
/// the alert fires again: nobody is told otherwise that it stays down.
#[test]
fn a_quarantined_targets_alert_fires_again_when_its_hold_ends() {
    let Some(am) = Alertmanager::start() else {
        return;
    };
    let node = Node::start_with(
        &format!("hadv-{}", unique("amres")),
        &[],
        &["exit-after", "300", "3"],
    );
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=500ms\nHEALTH_QUARANTINE_AFTER=2\n",
        auto_env(&[&node.name])
    );
    let daemon = Daemon::watching(&am.env(&env));
    daemon.wait_log("QUARANTINED");
    am.wait(&node.name, "firing", Some("critical"));
    let (code, _, err) = client(daemon.dir.path(), &["hold", &node.name]);
    assert_eq!(code, Some(0), "{err}");
    am.wait(&node.name, "resolved", None);
    let resolved_at = am.hook.on("/am").len();
    let (code, _, err) = client(daemon.dir.path(), &["resume", &node.name]);
    assert_eq!(code, Some(0), "{err}");
    wait_until_long("the alert to fire again after the hold", || {
        am.hook.on("/am").iter().skip(resolved_at).any(|s| {
            s.json()["alerts"].as_array().is_some_and(|a| {
                a.iter().any(|a| {
                    a["labels"]["container"] == node.name.as_str() && a["status"] == "firing"
                })
            })
        })
    });
}

/// The sum of `healthther_failures_total` for `target` on the metrics endpoint at `port`.
fn failures_total(port: u16, target: &str) -> u64 {
    let (_, text) = http_get(port, "/metrics").expect("GET /metrics");
    let label = format!("target=\"{target}\"");
    text.lines()
        .filter(|l| l.starts_with("healthther_failures_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A failure the operator answered `no` to, then started by hand, is over: the next death is
/// another failure, counted once more.
#[test]
fn a_failure_answered_no_then_started_by_hand_ends_and_the_next_counts() {
    let node = Node::start(&format!("hadv-{}", unique("mno")), &[]);
    let mport = free_port();
    let daemon = Daemon::watching(&env_with(
        &manual_env(&[&node.name]),
        &[("HEALTH_METRICS_ADDR", &format!("127.0.0.1:{mport}"))],
    ));
    node.kill();
    wait_until("the first failure counted", || {
        failures_total(mport, &node.name) == 1
    });
    let (code, _, err) = client(daemon.dir.path(), &["answer", &node.name, "no"]);
    assert_eq!(code, Some(0), "{err}");
    docker_ok(&["start", &node.name]);
    // Running for a while, as the operator left it.
    thread::sleep(Duration::from_secs(3));
    node.kill();
    wait_until("the second prompt", || {
        daemon
            .audit()
            .iter()
            .filter(|r| r["event"] == "prompt")
            .count()
            == 2
    });
    assert_eq!(
        failures_total(mport, &node.name),
        2,
        "two deaths, a start by hand between them"
    );
}

/// A failing target renamed away, started while it is no target, and renamed back runs: its
/// failure is over, and its next death is another one, counted.
#[test]
fn a_target_renamed_away_started_and_back_counts_its_next_failure() {
    let node = Node::start(&format!("hadv-{}", unique("mren")), &[]);
    let aside = format!("{}-aside", node.name);
    let mport = free_port();
    let daemon = Daemon::watching(&env_with(
        &manual_env(&[&node.name]),
        &[("HEALTH_METRICS_ADDR", &format!("127.0.0.1:{mport}"))],
    ));
    node.kill();
    wait_until("the first failure counted", || {
        failures_total(mport, &node.name) == 1
    });
    docker_ok(&["rename", &node.name, &aside]);
    docker_ok(&["start", &aside]);
    docker_ok(&["rename", &aside, &node.name]);
    thread::sleep(Duration::from_secs(3));
    node.kill();
    wait_until("the second prompt", || {
        daemon
            .audit()
            .iter()
            .filter(|r| r["event"] == "prompt")
            .count()
            == 2
    });
    assert_eq!(failures_total(mport, &node.name), 2, "two failures");
}

/// Compose recreating a quarantined service of 20 replicas (a new configuration, `up -d`):
/// every replica's critical alert ends with the container it was about, whichever way this
/// compose version renames the old and new containers meanwhile.
fn a_recreated_service_at_scale_ends_every_alert(compose: Compose) {
    let Some(am) = Alertmanager::start() else {
        return;
    };
    if compose.command().is_none() {
        return;
    }
    const REPLICAS: usize = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let project = format!("hadv-{}", unique("amp"));
    let service = unique("amsvc");
    let write = |command: &str| {
        let image = fixture_image();
        std::fs::write(
            dir.path().join("docker-compose.yml"),
            format!(
                "services:\n  {service}:\n    image: {image}\n{command}    \
                 stop_grace_period: 1s\n    restart: \"no\"\n"
            ),
        )
        .expect("write compose file");
    };
    let compose_run = |args: &[&str]| {
        compose
            .command()
            .expect("found above")
            .arg("-p")
            .arg(&project)
            .args(args)
            .current_dir(dir.path())
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE")
            .stdin(Stdio::null())
            .output()
            .expect("run compose")
    };
    let run = |args: &[&str]| {
        let out = compose_run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let scale = format!("{service}={REPLICAS}");
    struct Down<'a>(&'a dyn Fn(&[&str]) -> std::process::Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-t", "1"]);
        }
    }
    write("    command: exit-after 300 3\n");
    run(&["up", "-d", "--scale", &scale]);
    let _down = Down(&compose_run);
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=500ms\nHEALTH_QUARANTINE_AFTER=2\n",
        auto_env(&[&service])
    );
    let _daemon = Daemon::watching(&am.env(&env));
    let active = || -> Vec<String> {
        // Alertmanager answers a long list chunked: curl reads it.
        let out = Command::new("curl")
            .args([
                "-sf",
                &format!("http://127.0.0.1:{}/api/v2/alerts", am.port),
            ])
            .output()
            .expect("run curl");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|a| a["labels"]["target"] == service.as_str())
            .filter(|a| a["status"]["state"] == "active")
            .map(|a| a["labels"]["container"].as_str().unwrap_or("").to_string())
            .collect()
    };
    wait_until_long("every replica's alert to fire", || {
        active().len() == REPLICAS
    });
    write("");
    run(&["up", "-d", "--scale", &scale]);
    wait_until_long("every replica's alert to end", || active().is_empty());
}

#[test]
fn a_recreated_service_at_scale_ends_every_alert_compose_v1() {
    a_recreated_service_at_scale_ends_every_alert(Compose::V1);
}

#[test]
fn a_recreated_service_at_scale_ends_every_alert_compose_v2() {
    a_recreated_service_at_scale_ends_every_alert(Compose::V2);
}

/// A failure asked about, answered yes, and removed while the start is under way is one
/// failure: the removal ends it, and the action that finds it removed counts no second one.
#[test]
fn a_target_removed_while_its_revival_runs_is_one_failure() {
    let node = Node::start(&format!("hadv-{}", unique("mrm")), &[]);
    let proxy = Proxy::in_temp_dir();
    let mport = free_port();
    let env = env_with(
        &manual_env(&[&node.name]),
        &[("HEALTH_METRICS_ADDR", &format!("127.0.0.1:{mport}"))],
    );
    let (mut cmd, workdir) = command(&env);
    cmd.env("DOCKER_HOST", proxy.url());
    let daemon = Daemon::spawn(cmd, workdir);
    daemon.wait_log("watching");
    node.kill();
    wait_until("the failure counted", || {
        failures_total(mport, &node.name) == 1
    });
    proxy.set_faults(Faults {
        delay: vec![("POST", "/start", Duration::from_secs(3))],
        ..Faults::default()
    });
    let (code, _, err) = client(daemon.dir.path(), &["answer", &node.name, "yes"]);
    assert_eq!(code, Some(0), "{err}");
    thread::sleep(Duration::from_millis(500));
    docker_ok(&["rm", "-f", &node.name]);
    wait_until("the action's record", || {
        daemon.audit().iter().any(|r| r["event"] == "action")
    });
    let actions: Vec<Value> = daemon
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "action")
        .collect();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(
        failures_total(mport, &node.name),
        1,
        "one failure: {actions:?}"
    );
}

/// A target removed while its revival is on its way: the action fails (the engine knows the
/// container no more), and whatever alert that raises ends with the container.
#[test]
fn a_target_removed_while_its_revival_runs_leaves_no_alert() {
    let Some(am) = Alertmanager::start() else {
        return;
    };
    let node = Node::start(&format!("hadv-{}", unique("amrm")), &[]);
    let proxy = Proxy::in_temp_dir();
    let (mut cmd, workdir) = command(&am.env(&auto_env(&[&node.name])));
    cmd.env("DOCKER_HOST", proxy.url());
    let daemon = Daemon::spawn(cmd, workdir);
    daemon.wait_log("watching");
    proxy.set_faults(Faults {
        delay: vec![("POST", "/start", Duration::from_secs(3))],
        ..Faults::default()
    });
    node.kill();
    thread::sleep(Duration::from_secs(1));
    docker_ok(&["rm", "-f", &node.name]);
    wait_until("the action's record", || {
        daemon.audit().iter().any(|r| r["event"] == "action")
    });
    // Past the notifications' grouping: what was posted is in Alertmanager.
    thread::sleep(Duration::from_secs(8));
    let out = Command::new("curl")
        .args([
            "-sf",
            &format!("http://127.0.0.1:{}/api/v2/alerts", am.port),
        ])
        .output()
        .expect("run curl");
    let alerts: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let active: Vec<&Value> = alerts
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["labels"]["target"] == node.name.as_str())
        .filter(|a| a["status"]["state"] == "active")
        .collect();
    assert!(active.is_empty(), "the container is gone: {active:?}");
}

/// A quarantined target renamed away (no target any more) and started by hand runs: its
/// failure is over, and so is its alert.
#[test]
fn a_failing_container_renamed_away_and_started_resolves_its_alert() {
    let Some(am) = Alertmanager::start() else {
        return;
    };
    let name = format!("hadv-{}", unique("amaway"));
    let node = Node::start_with(&name, &[], &["exit-after", "300", "3"]);
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=500ms\nHEALTH_QUARANTINE_AFTER=2\n",
        auto_env(&[&node.name])
    );
    let daemon = Daemon::watching(&am.env(&env));
    daemon.wait_log("QUARANTINED");
    am.wait(&node.name, "firing", Some("critical"));
    let aside = Node {
        name: format!("{name}-debug"),
    };
    docker_ok(&["rename", &node.name, &aside.name]);
    docker_ok(&["start", &aside.name]);
    am.wait(&node.name, "resolved", None);
}

/// Someone else restarts a target, then kills it, while our start of it is on its way: their
/// start event is not taken for ours. Our start brings it back; one action, one record, and
/// its alert (if any) ends.
#[test]
fn a_restart_by_someone_else_during_a_revival_is_looked_at() {
    let Some(am) = Alertmanager::start() else {
        return;
    };
    let node = Node::start(&format!("hadv-{}", unique("amrace")), &[]);
    let proxy = Proxy::in_temp_dir();
    let (mut cmd, workdir) = command(&am.env(&auto_env(&[&node.name])));
    cmd.env("DOCKER_HOST", proxy.url());
    let daemon = Daemon::spawn(cmd, workdir);
    daemon.wait_log("watching");
    proxy.set_faults(Faults {
        delay: vec![("POST", "/start", Duration::from_secs(3))],
        ..Faults::default()
    });
    node.kill();
    thread::sleep(Duration::from_secs(1));
    docker_ok(&["restart", "-t", "0", &node.name]);
    docker_ok(&["kill", &node.name]);
    wait_until("the action's record", || {
        daemon.audit().iter().any(|r| r["event"] == "action")
    });
    proxy.set_faults(Faults::default());
    wait_until("the node to run", || node.status() == "running");
    thread::sleep(Duration::from_secs(3));
    assert_eq!(node.status(), "running");
    let audit = daemon.audit();
    let actions: Vec<&Value> = audit.iter().filter(|r| r["event"] == "action").collect();
    assert!(
        actions.iter().any(|a| a["result"] == "running"),
        "revived in the end: {actions:?}"
    );
    if am.told(&node.name, "firing", None) {
        am.wait(&node.name, "resolved", None);
    }
}

/// A failure while the target is held, revived when the hold ends, is one failure.
#[test]
fn a_failure_held_then_resumed_counts_once() {
    let node = Node::start(&format!("hadv-{}", unique("mhold")), &[]);
    let mport = free_port();
    let daemon = Daemon::watching(&env_with(
        &auto_env(&[&node.name]),
        &[("HEALTH_METRICS_ADDR", &format!("127.0.0.1:{mport}"))],
    ));
    let (code, _, err) = client(daemon.dir.path(), &["hold", &node.name]);
    assert_eq!(code, Some(0), "{err}");
    node.kill();
    wait_until("the held failure counted", || {
        failures_total(mport, &node.name) == 1
    });
    let before = node.started_at();
    let (code, _, err) = client(daemon.dir.path(), &["resume", &node.name]);
    assert_eq!(code, Some(0), "{err}");
    node.wait_restarted_since(&before);
    wait_until("the action's record", || {
        daemon.audit().iter().any(|r| r["event"] == "action")
    });
    assert_eq!(failures_total(mport, &node.name), 1);
}

/// Observe mode sees the same failures as auto: it raises the alert, and the container
/// running again (started by someone) ends it.
#[test]
fn observe_mode_raises_the_alert_and_resolves_it() {
    let Some(am) = Alertmanager::start() else {
        return;
    };
    let node = Node::start(&unique("amobs"), &[]);
    let env = auto_env(&[&node.name]).replace("MODE=auto", "MODE=observe");
    assert!(env.contains("MODE=observe"), "{env}");
    let _daemon = Daemon::watching(&am.env(&env));
    node.kill();
    am.wait(&node.name, "firing", None);
    assert_eq!(node.status(), "exited", "observe mode acts on nothing");
    docker_ok(&["start", &node.name]);
    am.wait(&node.name, "resolved", None);
}

#[test]
fn an_smtp_server_receives_the_email() {
    let aiosmtpd = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have("aiosmtpd (Python)", aiosmtpd) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let sport = free_port();
    let log = dir.path().join("smtp.log");
    let _smtp = spawn(
        Command::new("python3").args([
            "-u",
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{sport}"),
            "-c",
            "aiosmtpd.handlers.Debugging",
        ]),
        &log,
    );
    wait_until("the SMTP server to listen", || {
        TcpStream::connect(("127.0.0.1", sport)).is_ok()
    });
    let node = Node::start(&unique("mail"), &[]);
    let url = format!(
        "smtp://127.0.0.1:{sport}/?from=healthther@example.com&to=ops@example.com,oncall@example.com&encryption=none"
    );
    let _daemon = Daemon::watching(&env_with(
        &auto_env(&[&node.name]),
        &[("HEALTH_NOTIFY", &url), ("HEALTH_NOTIFY_HOST", "mailbox1")],
    ));
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    let mail = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("the email to arrive", || mail().contains(&node.name));
    let mail = mail();
    assert!(mail.contains("From: healthther@example.com"), "{mail}");
    assert!(
        mail.contains("ops@example.com") && mail.contains("oncall@example.com"),
        "{mail}"
    );
    assert!(
        mail.contains(&format!(
            "Subject: healthther on mailbox1: {} revived",
            node.name
        )),
        "{mail}"
    );
}

/// Like [`wait_until`], for what another server delivers on its own schedule.
fn wait_until_long(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLINE * 2,
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// A receiver whose error page echoes the request line and its Authorization header.
fn echoing_receiver() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("address").port();
    thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let Ok(mut out) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let mut auth = String::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if h.to_ascii_lowercase().starts_with("authorization:") {
                    auth = h.trim().to_string();
                }
            }
            let body = format!("bad request: {} {auth}", line.trim());
            let _ = write!(
                out,
                "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn an_error_page_that_echoes_the_request_shows_no_secret_of_the_channel() {
    use base64::Engine as _;
    let port = echoing_receiver();
    let url = format!(
        "generic+http://u:PwSeCrEt@127.0.0.1:{port}/hook/PaThSeCrEt42?token=TokSeCrEt&code=CoDeSeCrEt"
    );
    let (mut cmd, _dir) = command(&format!("HEALTH_NOTIFY={url}\n"));
    let out = cmd.arg("notify-test").output().expect("run notify-test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("bad request"),
        "the page is shown: {stdout}"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("u:PwSeCrEt");
    for text in [&stdout, &stderr] {
        assert!(!text.contains("SeCrEt") && !text.contains(&basic), "{text}");
    }
}

/// A receiver that keeps the first bytes of each connection and answers nothing: what a
/// client sent through a tunnel (a TLS ClientHello, with the name asked for).
fn first_bytes_receiver() -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("address").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&got);
    thread::spawn(move || {
        for mut s in listener.incoming().map_while(Result::ok) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            kept.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(&buf[..n]);
        }
    });
    (port, got)
}

/// Debian's tinyproxy on loopback, asking for `user` and `password`, its log kept.
struct Tinyproxy {
    port: u16,
    log: std::path::PathBuf,
    _server: Server,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start(user: &str, password: &str) -> Tinyproxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let conf = dir.path().join("tinyproxy.conf");
        // No ConnectPort: CONNECT to any port (the receivers' are random). In the foreground
        // (-d) it logs to its output.
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nLogLevel Info\n\
                 BasicAuth {user} {password}\n"
            ),
        )
        .expect("write tinyproxy.conf");
        let log = dir.path().join("tinyproxy.log");
        let server = spawn(
            Command::new("tinyproxy").arg("-d").arg("-c").arg(&conf),
            &log,
        );
        wait_until("tinyproxy to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Tinyproxy {
            port,
            log,
            _server: server,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `healthther notify-test` through `url`, with `env` as the environment's proxy settings;
/// its output.
fn notify_test_with(url: &str, env: &[(&str, &str)]) -> String {
    let (mut cmd, _dir) = command(&format!("HEALTH_NOTIFY={url}\n"));
    cmd.envs(env.iter().copied());
    let out = cmd.arg("notify-test").output().expect("run notify-test");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// Behind an egress proxy (Debian's tinyproxy, asking for credentials): a webhook goes through
/// it as `HTTP_PROXY` says, with the credentials of its URL; a wrong password is the proxy's
/// refusal, said without the password; `NO_PROXY`'s hosts go straight; HTTPS goes through its
/// CONNECT tunnel, with TLS to the real host by its name.
#[test]
fn webhooks_go_through_the_proxy_the_environment_names() {
    if !have("tinyproxy", on_path("tinyproxy")) {
        return;
    }
    let proxy = Tinyproxy::start("hh", "PrOxYpW");
    let with_credentials = format!("http://hh:PrOxYpW@127.0.0.1:{}", proxy.port);
    let server = Capture::start();
    let hook = |path: &str| format!("generic+http://127.0.0.1:{}{path}", server.port);

    let said = notify_test_with(&hook("/via-proxy"), &[("HTTP_PROXY", &with_credentials)]);
    assert!(said.starts_with("ok "), "{said}");
    assert_eq!(server.on("/via-proxy").len(), 1);
    let relayed = format!("POST http://127.0.0.1:{}/via-proxy HTTP/1.1", server.port);
    assert!(proxy.log().contains(&relayed), "{}", proxy.log());

    let wrong = format!("http://hh:WrOnGpW@127.0.0.1:{}", proxy.port);
    let said = notify_test_with(&hook("/refused"), &[("http_proxy", &wrong)]);
    // tinyproxy refuses wrong credentials with 401 (none at all with 407).
    let refused = said.contains("answered 401") || said.contains("answered 407");
    assert!(said.starts_with("failed ") && refused, "{said}");
    assert!(!said.contains("WrOnGpW"), "{said}");
    assert!(server.on("/refused").is_empty());

    let said = notify_test_with(
        &hook("/straight"),
        &[
            ("HTTP_PROXY", &with_credentials),
            ("NO_PROXY", "example.com, 127.0.0.1"),
        ],
    );
    assert!(said.starts_with("ok "), "{said}");
    assert_eq!(server.on("/straight").len(), 1);
    assert!(!proxy.log().contains("/straight"), "{}", proxy.log());

    // The receiver holds no certificate the web's roots know: the send fails, after the
    // tunnel carried the TLS handshake to it.
    let (port, got) = first_bytes_receiver();
    let url = format!("generic+https://localhost:{port}/tls");
    let said = notify_test_with(&url, &[("HTTPS_PROXY", &with_credentials)]);
    assert!(said.starts_with("failed "), "{said}");
    let connect = format!("CONNECT localhost:{port} HTTP/1.1");
    assert!(proxy.log().contains(&connect), "{}", proxy.log());
    let hello = got.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(hello.first(), Some(&0x16), "a TLS handshake: {hello:?}");
    assert!(
        hello.windows(9).any(|w| w == b"localhost"),
        "the name asked for (SNI): {hello:?}"
    );
}
