//! Answers from a phone (issue 24): a prompt's buttons on a real ntfy server (Debian's `ntfy`,
//! which `.ci/ntfy` fetches; found through `HEALTHTHER_NTFY`) and on a local stand-in of
//! Telegram's Bot API; healthther reads the answers over connections it opens itself, in manual
//! mode with no terminal attached. Every server binds 127.0.0.1 only.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

/// A plain HTTP/1.1 request on loopback, one connection; the status and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to loopback");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("send request");
    s.write_all(body.as_bytes()).expect("send body");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The ntfy server binary, or `None` (said in one line; a failure under CI=true).
fn ntfy_binary() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("HEALTHTHER_NTFY") {
        candidates.push(p.into());
    }
    candidates.push("/opt/healthther-ci/ntfy/ntfy".into());
    candidates.push("ntfy".into());
    // `serve --help` tells ntfy's server from PyPI's unrelated `ntfy` client.
    let found = candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["serve", "--help"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        skip("the ntfy server is not installed (.ci/ntfy fetches it, or set HEALTHTHER_NTFY)");
    }
    found
}

/// A real ntfy server on loopback: anonymous users may do nothing, a user `hc` may do
/// everything with an access token; messages are kept in a cache file, so `since=` reaches
/// back across a restart.
struct Ntfy {
    bin: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    token: String,
}

impl Ntfy {
    fn start() -> Option<Ntfy> {
        let bin = ntfy_binary()?;
        let mut n = Ntfy {
            bin,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            token: String::new(),
        };
        n.serve();
        // The auth file exists once the server has started; users are added to it beside.
        let auth = n.dir.path().join("auth.db");
        let added = Command::new(&n.bin)
            .args(["user", "--config", "/dev/null", "--auth-file"])
            .arg(&auth)
            .args(["add", "--role=admin", "hc"])
            .env("NTFY_PASSWORD", "hc-password")
            .output()
            .expect("run ntfy user add");
        assert!(added.status.success(), "ntfy user add: {added:?}");
        let out = Command::new(&n.bin)
            .args(["token", "--config", "/dev/null", "--auth-file"])
            .arg(&auth)
            .args(["add", "hc"])
            .output()
            .expect("run ntfy token add");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        n.token = text
            .split_whitespace()
            .find(|w| w.starts_with("tk_"))
            .unwrap_or_else(|| panic!("no token in {text:?}"))
            .to_string();
        Some(n)
    }

    fn serve(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("ntfy.log"))
            .expect("ntfy log");
        let d = self.dir.path();
        let child = Command::new(&self.bin)
            .args(["serve", "--config", "/dev/null", "--listen-http"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--cache-file")
            .arg(d.join("cache.db"))
            .arg("--auth-file")
            .arg(d.join("auth.db"))
            .args(["--auth-default-access", "deny-all"])
            .args(["--visitor-request-limit-exempt-hosts", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("ntfy log"))
            .stderr(log)
            .spawn()
            .expect("start ntfy serve");
        self.child = Some(child);
        wait_until("ntfy to answer", || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Every message on `topic` so far.
    fn messages(&self, topic: &str) -> Vec<Value> {
        let auth = self.bearer();
        let (status, body) = http(
            self.port,
            "GET",
            &format!("/{topic}/json?poll=1&since=all"),
            &[("Authorization", &auth)],
            "",
        );
        assert_eq!(status, 200, "{body}");
        body.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The prompt messages of `topic` naming `container`, with their actions.
    fn prompts(&self, topic: &str, container: &str) -> Vec<Value> {
        self.messages(topic)
            .into_iter()
            .filter(|m| {
                m["actions"].is_array()
                    && m["title"].as_str().is_some_and(|t| t.contains(container))
            })
            .collect()
    }

    /// Waits for the `n`th prompt of `container`, and returns it.
    fn wait_prompt(&self, topic: &str, container: &str, n: usize) -> Value {
        wait_until(&format!("prompt {n} of {container} on ntfy"), || {
            self.prompts(topic, container).len() >= n
        });
        self.prompts(topic, container)[n - 1].clone()
    }

    /// Does what the phone app does for an `http` action: its method, URL, headers and body,
    /// exactly, to `port` (the server's own, or a forwarder's).
    fn press(&self, action: &Value, port: u16) -> u16 {
        let url = action["url"].as_str().expect("an action URL");
        let path = url
            .split_once("127.0.0.1:")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, p)| format!("/{p}"))
            .expect("a loopback URL");
        let headers: Vec<(String, String)> = action["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let method = action["method"].as_str().unwrap_or("POST");
        let body = action["body"].as_str().unwrap_or("");
        http(port, method, &path, &headers, body).0
    }
}

impl Drop for Ntfy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The action labelled `label` of a prompt message.
fn action<'a>(prompt: &'a Value, label: &str) -> &'a Value {
    prompt["actions"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["label"] == label))
        .unwrap_or_else(|| panic!("no {label} action: {prompt}"))
}

fn ntfy_env(targets: &[&str], host: &str, notify: &str) -> String {
    format!(
        "{}HEALTH_NOTIFY=\"{notify}\"\nHEALTH_NOTIFY_HOST={host}\n",
        manual_env(targets)
    )
}

fn actions_of(daemon: &Daemon) -> Vec<Value> {
    events(&daemon.audit(), "action")
        .into_iter()
        .cloned()
        .collect()
}

#[test]
fn ntfy_buttons_revive_and_leave_and_nothing_else_answers() {
    let Some(ntfy) = Ntfy::start() else { return };
    let node = Node::start(&unique("chat_ntfy"), &[]);
    let notify = format!(
        "ntfy://:{}@127.0.0.1:{}/hc-prompts?scheme=http&reply=hc-replies",
        ntfy.token, ntfy.port
    );
    let daemon = Daemon::watching(&ntfy_env(&[&node.name], "phone-box", &notify));
    let before = node.started_at();
    node.kill();

    let prompt = ntfy.wait_prompt("hc-prompts", &node.name, 1);
    let labels: Vec<&str> = prompt["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["label"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(labels, ["Revive", "Leave", "Always"], "{prompt}");
    let revive = action(&prompt, "Revive");
    assert_eq!(revive["action"], "http");
    assert_eq!(revive["method"], "POST");
    assert_eq!(
        revive["url"],
        format!("http://127.0.0.1:{}/hc-replies", ntfy.port)
    );
    assert_eq!(revive["headers"]["Authorization"], ntfy.bearer());
    let body = revive["body"].as_str().unwrap();
    let (token, word) = body.split_once(' ').unwrap();
    assert_eq!(word, "yes");
    let text = prompt["message"].as_str().unwrap();
    assert!(
        text.contains("never: answered with healthther answer"),
        "{text}"
    );
    assert_eq!(node.status(), "exited", "nothing happens before the answer");

    // The phone presses Revive.
    assert_eq!(ntfy.press(revive, ntfy.port), 200);
    node.wait_restarted_since(&before);
    wait_until("the action record", || actions_of(&daemon).len() == 1);
    let audit = daemon.audit();
    assert_eq!(events(&audit, "answer")[0]["by"], "ntfy");
    assert_eq!(events(&audit, "action")[0]["by"], "operator: yes via ntfy");

    // Pressed again, and a made-up token of this host: nothing.
    assert_eq!(ntfy.press(revive, ntfy.port), 200);
    let made_up = format!("{}.{:032x} yes", &token[..8], 0xdead_beef_u128);
    let auth = ntfy.bearer();
    let posted = http(
        ntfy.port,
        "POST",
        "/hc-replies",
        &[("Authorization", &auth)],
        &made_up,
    );
    assert_eq!(posted.0, 200, "{posted:?}");
    // Garbled and oversized messages: logged once each, nothing else.
    http(
        ntfy.port,
        "POST",
        "/hc-replies",
        &[("Authorization", &auth)],
        "revive it please",
    );
    daemon.wait_log("the prompt is closed");
    daemon.wait_log("no prompt of healthther's has this token");
    daemon.wait_log("is no answer (not `TOKEN ANSWER`)");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(actions_of(&daemon).len(), 1, "{:?}", daemon.audit());
    assert_eq!(node.status(), "running");

    // Leave leaves it dead.
    node.kill();
    let prompt = ntfy.wait_prompt("hc-prompts", &node.name, 2);
    assert_ne!(
        action(&prompt, "Revive")["body"].as_str(),
        Some(body),
        "a fresh token"
    );
    assert_eq!(ntfy.press(action(&prompt, "Leave"), ntfy.port), 200);
    wait_until("the answer no", || {
        events(&daemon.audit(), "answer")
            .iter()
            .any(|a| a["answer"] == "no")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(node.status(), "exited");
    assert_eq!(actions_of(&daemon).len(), 1);

    // No token, and no credential of the channel, reaches the console or the log files.
    let said = daemon.output() + &daemon.human_log();
    assert!(!said.contains(token), "a token in the output:\n{said}");
    assert!(
        !said.contains(&ntfy.token),
        "a credential in the output:\n{said}"
    );
    let audit_text = std::fs::read_dir(daemon.log_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(!audit_text.contains(&token[9..]), "a token in the logs");
}

/// A TCP forwarder to a loopback port that can be cut: every connection through it closed,
/// and new ones closed at once, until restored.
struct Forwarder {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Forwarder {
    fn start(upstream: u16) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("address").port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (up2, conns2) = (Arc::clone(&up), Arc::clone(&conns));
        thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mut list = conns2.lock().unwrap_or_else(|p| p.into_inner());
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        list.push(c);
                    }
                }
                drop(list);
                let (Ok(mut c_in), Ok(mut c_out)) = (client.try_clone(), client.try_clone()) else {
                    continue;
                };
                let (Ok(mut s_in), Ok(mut s_out)) = (server.try_clone(), server.try_clone()) else {
                    continue;
                };
                thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(Shutdown::Write);
                });
                thread::spawn(move || {
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                    let _ = c_out.shutdown(Shutdown::Write);
                });
            }
        });
        Forwarder { port, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn an_ntfy_answer_given_while_the_subscription_is_cut_is_read_when_it_resumes() {
    let Some(mut ntfy) = Ntfy::start() else {
        return;
    };
    let node = Node::start(&unique("chat_cut"), &[]);
    // healthther reaches ntfy through a forwarder the test cuts; the phone reaches it directly.
    let fwd = Forwarder::start(ntfy.port);
    let notify = format!(
        "ntfy://:{}@127.0.0.1:{}/hc-prompts?scheme=http&reply=hc-replies",
        ntfy.token, fwd.port
    );
    let daemon = Daemon::watching(&ntfy_env(&[&node.name], "cut-box", &notify));
    // A message read before the cut, so that healthther resumes from its id.
    let auth = ntfy.bearer();
    http(
        ntfy.port,
        "POST",
        "/hc-replies",
        &[("Authorization", &auth)],
        "hello",
    );
    daemon.wait_log("is no answer");
    let before = node.started_at();
    node.kill();
    let prompt = ntfy.wait_prompt("hc-prompts", &node.name, 1);

    // The subscription is cut, and the server restarted (its cache file kept): the answer is
    // given while healthther cannot hear it.
    fwd.cut();
    daemon.wait_log("cannot read answers through");
    ntfy.stop();
    ntfy.serve();
    assert_eq!(ntfy.press(action(&prompt, "Revive"), ntfy.port), 200);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(node.status(), "exited", "heard through a cut subscription?");

    fwd.restore();
    node.wait_restarted_since(&before);
    daemon.wait_log("answers through");
    wait_until("the action record", || actions_of(&daemon).len() == 1);
    assert_eq!(events(&daemon.audit(), "answer")[0]["by"], "ntfy");
    // Said once, however many tries it took.
    assert_eq!(
        daemon
            .output()
            .matches("cannot read answers through")
            .count(),
        1,
        "{}",
        daemon.output()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(actions_of(&daemon).len(), 1, "applied twice");

    // Its open subscription holds up no stop.
    let mut daemon = daemon;
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(15)).success());
}

#[test]
fn two_hosts_on_one_ntfy_topic_pair_each_answer_their_own_prompt() {
    let Some(ntfy) = Ntfy::start() else { return };
    let a = Node::start(&unique("chat_ha"), &[]);
    let b = Node::start(&unique("chat_hb"), &[]);
    let notify = format!(
        "ntfy://:{}@127.0.0.1:{}/fleet-prompts?scheme=http&reply=fleet-replies",
        ntfy.token, ntfy.port
    );
    let da = Daemon::watching(&ntfy_env(&[&a.name], "host-a", &notify));
    let db = Daemon::watching(&ntfy_env(&[&b.name], "host-b", &notify));
    let (before_a, before_b) = (a.started_at(), b.started_at());
    a.kill();
    b.kill();
    let pa = ntfy.wait_prompt("fleet-prompts", &a.name, 1);
    let pb = ntfy.wait_prompt("fleet-prompts", &b.name, 1);
    assert!(pa["title"].as_str().unwrap().contains("host-a"), "{pa}");

    assert_eq!(ntfy.press(action(&pa, "Revive"), ntfy.port), 200);
    a.wait_restarted_since(&before_a);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        b.status(),
        "exited",
        "host-a's answer revived host-b's container"
    );
    assert!(actions_of(&db).is_empty());

    assert_eq!(ntfy.press(action(&pb, "Revive"), ntfy.port), 200);
    b.wait_restarted_since(&before_b);
    wait_until("both action records", || {
        actions_of(&da).len() == 1 && actions_of(&db).len() == 1
    });
    assert_eq!(actions_of(&da)[0]["target"], a.name.as_str());
    assert_eq!(actions_of(&db)[0]["target"], b.name.as_str());
    // Another host's answer is not ours: nothing logged of it.
    for d in [&da, &db] {
        assert!(
            !d.output().contains("an answer that does nothing"),
            "{}",
            d.output()
        );
    }
}

/// A local stand-in of Telegram's Bot API: it records every call, answers `sendMessage` with a
/// message, and `getUpdates` with the queued updates from `offset` on (holding the call up to a
/// second when there are none), as Telegram forgets what an offset confirmed.
#[derive(Clone)]
struct Telegram {
    port: u16,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    updates: Arc<(Mutex<VecDeque<Value>>, Condvar)>,
}

impl Telegram {
    fn start() -> Telegram {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let t = Telegram {
            port: listener.local_addr().expect("address").port(),
            calls: Arc::new(Mutex::new(Vec::new())),
            updates: Arc::new((Mutex::new(VecDeque::new()), Condvar::new())),
        };
        let server = t.clone();
        thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let server = server.clone();
                thread::spawn(move || server.serve(stream));
            }
        });
        t
    }

    fn serve(&self, stream: TcpStream) {
        let Ok(mut out) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut len = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                if h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let method = path.rsplit('/').next().unwrap_or("").to_string();
            self.calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((path.clone(), body.clone()));
            let result = match method.as_str() {
                "sendMessage" => json!({"message_id": 7001, "date": 1,
                    "chat": {"id": -100200, "type": "group"}, "text": body["text"]}),
                "getUpdates" => self.updates_from(body["offset"].as_i64().unwrap_or(0)),
                _ => json!(true),
            };
            let reply = json!({"ok": true, "result": result}).to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                reply.len()
            );
            if out.write_all(head.as_bytes()).is_err() || out.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn updates_from(&self, offset: i64) -> Value {
        let (queue, cond) = &*self.updates;
        let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
        // What an offset confirms is forgotten.
        q.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
        if q.is_empty() {
            q = cond
                .wait_timeout(q, Duration::from_secs(1))
                .map(|(q, _)| q)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        Value::Array(q.iter().cloned().collect())
    }

    /// A button press by `user`, as Telegram sends it.
    fn press(&self, id: i64, user: i64, data: &str, text: &str) {
        let update = json!({"update_id": id, "callback_query": {
            "id": format!("cbq{id}"), "chat_instance": "-1",
            "from": {"id": user, "is_bot": false, "first_name": "Op\u{1b}[2J\nerator"},
            "message": {"message_id": 7001, "date": 1, "chat": {"id": -100200, "type": "group"},
                "text": text},
            "data": data}});
        let (queue, cond) = &*self.updates;
        queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(update);
        cond.notify_all();
    }

    fn calls(&self, method: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(p, _)| p.ends_with(&format!("/{method}")))
            .map(|(_, b)| b.clone())
            .collect()
    }

    fn paths(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

#[test]
fn telegram_presses_by_approvers_revive_and_others_are_refused() {
    let tg = Telegram::start();
    let node = Node::start(&unique("chat_tg"), &[]);
    let env = format!(
        "{}HEALTH_NOTIFY=\"telegram://777:TgSeCrEt@telegram?chats=-100200&approvers=42,43\"\n\
         HEALTH_NOTIFY_API_BASE=http://127.0.0.1:{}\nHEALTH_NOTIFY_HOST=tg-box\n",
        manual_env(&[&node.name]),
        tg.port
    );
    let daemon = Daemon::watching(&env);
    let before = node.started_at();
    node.kill();
    wait_until("the prompt with its keyboard", || {
        tg.calls("sendMessage")
            .iter()
            .any(|m| m["reply_markup"].is_object())
    });
    let sent = tg
        .calls("sendMessage")
        .into_iter()
        .find(|m| m["reply_markup"].is_object())
        .unwrap();
    assert!(tg
        .paths()
        .iter()
        .all(|p| p.starts_with("/bot777:TgSeCrEt/")));
    assert_eq!(sent["chat_id"], "-100200");
    let text = sent["text"].as_str().unwrap().to_string();
    assert!(text.contains(&node.name), "{text}");
    let keys: Vec<&Value> = sent["reply_markup"]["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .collect();
    let labels: Vec<&str> = keys.iter().map(|k| k["text"].as_str().unwrap()).collect();
    assert_eq!(labels, ["Revive", "Leave", "Always", "Never"]);
    let data: Vec<&str> = keys
        .iter()
        .map(|k| k["callback_data"].as_str().unwrap())
        .collect();
    assert!(data.iter().all(|d| d.len() <= 64), "{data:?}");
    let revive = data[0];
    assert!(revive.ends_with(":yes"), "{revive}");
    let polls = tg.calls("getUpdates");
    assert_eq!(polls[0]["timeout"], 30);
    assert_eq!(polls[0]["allowed_updates"], json!(["callback_query"]));

    // Someone in the chat who is no approver.
    tg.press(100, 99, revive, &text);
    wait_until("the refusal", || {
        !tg.calls("answerCallbackQuery").is_empty()
    });
    let refusal = &tg.calls("answerCallbackQuery")[0];
    assert_eq!(refusal["callback_query_id"], "cbq100");
    assert!(
        refusal["text"].as_str().unwrap().contains("refused"),
        "{refusal}"
    );
    daemon.wait_log("by user 99, who is not among the channel's approvers");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(node.status(), "exited");

    // An approver.
    tg.press(101, 42, revive, &text);
    node.wait_restarted_since(&before);
    wait_until("the edit", || !tg.calls("editMessageText").is_empty());
    let confirms = tg.calls("answerCallbackQuery");
    assert_eq!(confirms[1]["callback_query_id"], "cbq101");
    assert!(
        confirms[1]["text"].as_str().unwrap().contains("reviving"),
        "{}",
        confirms[1]
    );
    let edit = &tg.calls("editMessageText")[0];
    assert_eq!(edit["chat_id"], -100200);
    assert_eq!(edit["message_id"], 7001);
    let edited = edit["text"].as_str().unwrap();
    assert!(edited.starts_with(&text), "{edited}");
    assert!(
        edited.contains("answered yes by user 42: reviving"),
        "{edited}"
    );
    assert!(edit.get("reply_markup").is_none(), "the buttons go");

    wait_until("the action record", || actions_of(&daemon).len() == 1);
    let audit = daemon.audit();
    assert_eq!(events(&audit, "answer")[0]["by"], "telegram (user 42)");
    assert_eq!(
        events(&audit, "action")[0]["by"],
        "operator: yes via telegram (user 42)"
    );
    // Each update is confirmed by the next call's offset, and applied once.
    wait_until("the offset past the last press", || {
        tg.calls("getUpdates").iter().any(|p| p["offset"] == 102)
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(actions_of(&daemon).len(), 1);
    assert_eq!(tg.calls("answerCallbackQuery").len(), 2);
    let said = daemon.output() + &daemon.human_log();
    assert!(
        !said.contains("TgSeCrEt"),
        "a secret in the output:\n{said}"
    );
    let token = revive.trim_end_matches(":yes");
    assert!(!said.contains(token), "a token in the output:\n{said}");
    assert!(!said.contains('\u{1b}'), "a chat's escape in the output");
}

#[test]
fn telegram_without_approvers_sends_prompts_without_buttons_and_reads_nothing() {
    let tg = Telegram::start();
    let node = Node::start(&unique("chat_tgn"), &[]);
    let env = format!(
        "{}HEALTH_NOTIFY=\"telegram://777:TgSeCrEt@telegram?chats=-100200\"\n\
         HEALTH_NOTIFY_API_BASE=http://127.0.0.1:{}\n",
        manual_env(&[&node.name]),
        tg.port
    );
    let _daemon = Daemon::watching(&env);
    node.kill();
    wait_until("the prompt", || !tg.calls("sendMessage").is_empty());
    let sent = &tg.calls("sendMessage")[0];
    assert!(sent.get("reply_markup").is_none(), "{sent}");
    assert!(tg.calls("getUpdates").is_empty());
}

#[test]
fn telegram_presses_by_others_are_refused_once_whatever_they_carry() {
    let tg = Telegram::start();
    let node = Node::start(&unique("chat_tgo"), &[]);
    let env = format!(
        "{}HEALTH_NOTIFY=\"telegram://777:TgSeCrEt@telegram?chats=-100200&approvers=42\"\n\
         HEALTH_NOTIFY_API_BASE=http://127.0.0.1:{}\nHEALTH_NOTIFY_HOST=tg-box\n",
        manual_env(&[&node.name]),
        tg.port
    );
    let daemon = Daemon::watching(&env);
    node.kill();
    wait_until("the prompt with its keyboard", || {
        tg.calls("sendMessage")
            .iter()
            .any(|m| m["reply_markup"].is_object())
    });
    // A user's own client can send any callback data, not only what a button holds: over 64
    // bytes, garbage with escapes, a made-up token, over and over.
    let long = format!("{}:yes", "0".repeat(80));
    let made_up = format!("{}.{:032x}:yes", "0123abcd", 7);
    let sent = [
        "\u{1b}[2Jnope",
        long.as_str(),
        made_up.as_str(),
        "x",
        "\u{1b}[2Jnope",
    ];
    for (i, data) in sent.iter().enumerate() {
        tg.press(200 + i as i64, 99, data, "healthther on tg-box");
    }
    wait_until("every press confirmed", || {
        tg.calls("answerCallbackQuery").len() == sent.len()
    });
    for confirm in tg.calls("answerCallbackQuery") {
        assert!(
            confirm["text"].as_str().unwrap_or("").contains("refused"),
            "{confirm}"
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let out = daemon.output();
    let about_99: Vec<&str> = out.lines().filter(|l| l.contains("user=99")).collect();
    assert_eq!(
        about_99.len(),
        1,
        "logged once, with who sent it: {about_99:#?}"
    );
    assert!(
        about_99[0].contains("not among the channel's approvers"),
        "{}",
        about_99[0]
    );
    assert_eq!(node.status(), "exited");
    assert!(tg.calls("editMessageText").is_empty());
}

#[test]
fn telegram_press_for_another_hosts_prompt_is_said_once_and_leaves_its_buttons() {
    // Two hosts' healthther polling one bot (against the docs): each press reaches one of
    // them. One that reaches the wrong one must not take the other's buttons away.
    let tg = Telegram::start();
    let node = Node::start(&unique("chat_tgs"), &[]);
    let env = format!(
        "{}HEALTH_NOTIFY=\"telegram://777:TgSeCrEt@telegram?chats=-100200&approvers=42\"\n\
         HEALTH_NOTIFY_API_BASE=http://127.0.0.1:{}\nHEALTH_NOTIFY_HOST=tg-box\n",
        manual_env(&[&node.name]),
        tg.port
    );
    let daemon = Daemon::watching(&env);
    node.kill();
    wait_until("the prompt with its keyboard", || {
        tg.calls("sendMessage")
            .iter()
            .any(|m| m["reply_markup"].is_object())
    });
    // Another host's tag (not tg-box's), as its buttons carry it.
    let foreign = format!("{}.{:032x}:yes", "0123abcd", 7);
    tg.press(
        300,
        42,
        &foreign,
        "healthther on other-box: x waiting for an answer",
    );
    tg.press(
        301,
        42,
        &foreign.replace(":yes", ":no"),
        "healthther on other-box",
    );
    wait_until("both presses confirmed", || {
        tg.calls("answerCallbackQuery").len() == 2
    });
    let confirm = &tg.calls("answerCallbackQuery")[0];
    assert!(
        confirm["text"]
            .as_str()
            .unwrap_or("")
            .contains("another host"),
        "{confirm}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        tg.calls("editMessageText").is_empty(),
        "another host's prompt lost its buttons: {:?}",
        tg.calls("editMessageText")
    );
    assert_eq!(
        daemon.output().matches("polled by more than one").count(),
        1,
        "{}",
        daemon.output()
    );
    assert_eq!(node.status(), "exited");
}
