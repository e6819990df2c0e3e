//! Many hosts: the shipped `docker-stack.yml` as a Swarm global service on a real Swarm of two
//! nodes. The first is the engine under test (the machine's, or Docker 26 in CI's second run);
//! the second is an engine of the test's own (`tests/swarm/second-node`: its own network,
//! mount and UTS namespaces, so its own address, socket and hostname). Each node's task revives
//! its own node's standalone target, leaves a Swarm service's task alone (saying so once), and a
//! real Prometheus (Debian's binary, in an image made here) scrapes both tasks through Swarm's
//! DNS, each series with its node's hostname.
//!
//! One test function: only one Swarm may be held at a time, and a file lock keeps other test
//! processes on this machine out while it is. Everything it makes is named `hsw<pid>...` and is
//! taken away on drop, the Swarm left (`docker swarm leave --force`) on both nodes even when the
//! test fails. An engine already in a Swarm the test did not make is left alone: one line on a
//! developer's machine, a failure under CI=true.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// Swarm's scheduling, a task's start and Prometheus's DNS refresh all take their time.
const SWARM_DEADLINE: Duration = Duration::from_secs(180);
const PROMETHEUS_IMAGE: &str = "hsw-prometheus:test";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `docker -H host args`, its output whatever the exit status.
fn docker_at(host: &str, args: &[&str]) -> Output {
    Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
}

/// `docker -H host args`, its trimmed stdout; panics with stderr on failure.
fn docker_at_ok(host: &str, args: &[&str]) -> String {
    let out = docker_at(host, args);
    assert!(
        out.status.success(),
        "docker -H {host} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_long(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < SWARM_DEADLINE,
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(500));
    }
}

/// Prometheus from Debian's package in an image FROM scratch, with the libraries it links.
fn prometheus_image() {
    let binary = Path::new("/usr/bin/prometheus");
    let ldd = Command::new("ldd").arg(binary).output().expect("run ldd");
    let libs: Vec<PathBuf> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    let mut dockerfile = String::from("FROM scratch\n");
    let mut files: Vec<(String, PathBuf)> = vec![("prometheus".into(), binary.into())];
    for (i, lib) in libs.iter().enumerate() {
        let name = format!("lib{i}");
        dockerfile.push_str(&format!("COPY {name} {}\n", lib.display()));
        files.push((name, lib.clone()));
    }
    dockerfile.push_str("COPY prometheus /bin/prometheus\nENTRYPOINT [\"/bin/prometheus\"]\n");
    let files: Vec<(&str, &Path)> = files
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    build_image(PROMETHEUS_IMAGE, &dockerfile, &files);
}

/// The Swarm of the test and everything in it; all of it goes on drop.
struct Fleet {
    /// The engine under test, the manager.
    manager: String,
    /// `hsw<pid>`: the stack, the second node's namespaces and veth pair, the prefix of names.
    id: String,
    /// The second node: its engine and its directory.
    worker: Option<(String, tempfile::TempDir)>,
    /// Whether docker_gwbridge was there before the Swarm made it.
    had_gwbridge: bool,
    services: Vec<String>,
    containers: Vec<(String, String)>,
}

impl Fleet {
    fn second_node(&self, args: &[&str]) -> Output {
        Command::new(root().join("tests/swarm/second-node"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tests/swarm/second-node")
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let m = self.manager.clone();
        let _ = docker_at(&m, &["stack", "rm", &self.id]);
        for s in &self.services {
            let _ = docker_at(&m, &["service", "rm", s]);
        }
        // The stack's containers go before the Swarm is left, and its volume after them.
        let label = format!("label=com.docker.stack.namespace={}", self.id);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60)
            && !String::from_utf8_lossy(&docker_at(&m, &["ps", "-aq", "--filter", &label]).stdout)
                .trim()
                .is_empty()
        {
            thread::sleep(Duration::from_millis(500));
        }
        for (host, name) in &self.containers {
            let _ = docker_at(host, &["rm", "-f", name]);
        }
        if let Some((host, _)) = &self.worker {
            let _ = docker_at(host, &["swarm", "leave", "--force"]);
        }
        let _ = docker_at(&m, &["swarm", "leave", "--force"]);
        let _ = docker_at(&m, &["volume", "rm", &format!("{}_logs", self.id)]);
        if !self.had_gwbridge {
            let _ = docker_at(&m, &["network", "rm", "docker_gwbridge"]);
        }
        if let Some((_, dir)) = &self.worker {
            let dir = dir.path().to_string_lossy().to_string();
            let out = self.second_node(&["stop", &self.id, &dir]);
            if !out.status.success() {
                eprintln!("second-node stop: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}

/// The audit records in a volume of the engine at `host` (its mountpoint is on this machine).
fn audit_in(host: &str, volume: &str) -> Vec<Value> {
    let out = docker_at(
        host,
        &["volume", "inspect", "-f", "{{.Mountpoint}}", volume],
    );
    if !out.status.success() {
        return Vec::new();
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    healthther::audit::read(Path::new(&dir))
        .map(|log| log.records)
        .unwrap_or_default()
}

/// The running container of a Swarm service on the engine at `host`, if any.
fn task_of(host: &str, service: &str) -> Option<String> {
    let label = format!("label=com.docker.swarm.service.name={service}");
    let out = docker_at_ok(host, &["ps", "-q", "--filter", &label]);
    out.lines().next().map(str::to_string)
}

fn started_at(host: &str, name: &str) -> String {
    docker_at_ok(host, &["inspect", "-f", "{{.State.StartedAt}}", name])
}

fn status(host: &str, name: &str) -> String {
    docker_at_ok(host, &["inspect", "-f", "{{.State.Status}}", name])
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// GET `path` from 127.0.0.1:`port`, the body when it answers 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

/// The `host` labels of the series a Prometheus query returns.
fn hosts_in(port: u16, query: &str) -> BTreeSet<String> {
    let path = format!("/api/v1/query?query={query}");
    let Some(body) = http_get(port, &path) else {
        return BTreeSet::new();
    };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["metric"]["host"].as_str().map(str::to_string))
        .collect()
}

/// The test's additions to the shipped stack file: Prometheus on the stack's network, with the
/// shipped scrape config (its intervals shortened), published on the manager's loopback.
fn test_stack(port: u16) -> String {
    format!(
        r#"version: "3.8"
services:
  prometheus:
    image: {PROMETHEUS_IMAGE}
    command: ["--config.file=/etc/prometheus.yml", "--storage.tsdb.path=/prometheus"]
    configs:
      - source: scrape
        target: /etc/prometheus.yml
    ports:
      - target: 9090
        published: {port}
        mode: host
    networks: [metrics]
    deploy:
      placement:
        constraints: ["node.role == manager"]
configs:
  scrape:
    file: ./prometheus.yml
"#
    )
}

#[test]
fn a_global_service_on_two_nodes_revives_each_nodes_own_targets_and_prometheus_sees_both() {
    if !tools_present(&[
        ("ip", "-V"),
        ("nsenter", "--version"),
        ("unshare", "--version"),
        ("ldd", "--version"),
        ("prometheus", "--version"),
    ]) {
        return;
    }
    // One Swarm at a time on this machine, whichever test process wants it.
    let lock = std::fs::File::create(std::env::temp_dir().join("healthther-swarm-test.lock"))
        .expect("create the Swarm test's lock file");
    lock.lock().expect("take the Swarm test's lock");

    let manager = docker_host();
    let state = docker_at_ok(&manager, &["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    if state != "inactive" {
        skip(&format!(
            "the engine at {manager} is in a Swarm this test did not make ({state})"
        ));
        return;
    }
    let runtime = crate::sidecar::runtime_image();
    let fixture = fixture_image();
    prometheus_image();

    let pid = std::process::id();
    let id = format!("hsw{pid}");
    let octet = pid % 256;
    let (host_addr, node_addr) = (format!("10.231.{octet}.1"), format!("10.231.{octet}.2"));
    let had_gwbridge = docker_at(&manager, &["network", "inspect", "docker_gwbridge"])
        .status
        .success();
    let mut fleet = Fleet {
        manager: manager.clone(),
        id: id.clone(),
        worker: None,
        had_gwbridge,
        services: Vec::new(),
        containers: Vec::new(),
    };

    // The second node: an engine in namespaces of its own, with the main engine's socket path
    // (the stack mounts the same path on every node).
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_s = dir.path().to_string_lossy().to_string();
    let out = Command::new(root().join("tests/swarm/second-node"))
        .args(["start", &id, &dir_s, &host_addr, &node_addr])
        .env("SECOND_NODE_SOCKET", docker_socket())
        .stdin(Stdio::null())
        .output()
        .expect("run tests/swarm/second-node");
    let worker = String::from_utf8_lossy(&out.stdout).trim().to_string();
    fleet.worker = Some((worker.clone(), dir));
    assert!(
        out.status.success(),
        "the second node did not start: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The Swarm, advertised on the veth pair's host end: the second node reaches it there.
    docker_at_ok(
        &manager,
        &[
            "swarm",
            "init",
            "--advertise-addr",
            &host_addr,
            "--listen-addr",
            &format!("{host_addr}:2377"),
        ],
    );
    let token = docker_at_ok(&manager, &["swarm", "join-token", "-q", "worker"]);
    docker_at_ok(
        &worker,
        &[
            "swarm",
            "join",
            "--token",
            &token,
            "--advertise-addr",
            &node_addr,
            "--listen-addr",
            &format!("{node_addr}:2377"),
            &format!("{host_addr}:2377"),
        ],
    );
    let manager_host = docker_at_ok(&manager, &["info", "--format", "{{.Name}}"]);
    let worker_host = docker_at_ok(&worker, &["info", "--format", "{{.Name}}"]);
    assert_eq!(worker_host, id, "the second node has a hostname of its own");
    assert_ne!(manager_host, worker_host);

    // No registry: the second node gets the images from the first.
    let save = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker -H '{manager}' save {runtime} {fixture} | docker -H '{worker}' load"
        ))
        .output()
        .expect("docker save | docker load");
    assert!(
        save.status.success(),
        "{}",
        String::from_utf8_lossy(&save.stderr)
    );

    // Each node's standalone target, and a Swarm service named among the targets.
    let t1 = format!("{id}-t1");
    let t2 = format!("{id}-t2");
    let svc = format!("{id}-svc");
    let selected = format!("{id}.selected=on");
    let selector = format!("label:{selected}");
    fleet.containers.push((manager.clone(), t1.clone()));
    docker_at_ok(&manager, &["run", "-d", "--name", &t1, fixture, "run"]);
    fleet.containers.push((worker.clone(), t2.clone()));
    docker_at_ok(&worker, &["run", "-d", "--name", &t2, fixture, "run"]);
    fleet.services.push(svc.clone());
    docker_at_ok(
        &manager,
        &[
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            &svc,
            "--constraint",
            "node.role == manager",
            // A label a selector of HEALTH_TARGETS chooses: a Swarm task is never chosen.
            "--container-label",
            &selected,
            fixture,
            "run",
        ],
    );

    // The stack: the shipped file as it is, and the test's Prometheus beside it.
    let stack_dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        root().join("docker-stack.yml"),
        stack_dir.path().join("docker-stack.yml"),
    )
    .expect("copy docker-stack.yml");
    let scrape = std::fs::read_to_string(root().join("swarm/prometheus.yml"))
        .expect("read swarm/prometheus.yml");
    assert!(scrape.contains("tasks.healthther"), "{scrape}");
    let scrape = scrape
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("refresh_interval: 30s", "refresh_interval: 2s");
    std::fs::write(stack_dir.path().join("prometheus.yml"), scrape).expect("write");
    let port = free_port();
    std::fs::write(stack_dir.path().join("test.yml"), test_stack(port)).expect("write");
    let deploy = Command::new("docker")
        .args([
            "-H",
            &manager,
            "stack",
            "deploy",
            "--resolve-image",
            "never",
        ])
        .args(["-c", "docker-stack.yml", "-c", "test.yml", &id])
        .current_dir(stack_dir.path())
        .env("HEALTHTHER_IMAGE", runtime)
        .env("HEALTH_TARGETS", format!("{t1},{t2},{svc},{selector}"))
        .env("MODE", "auto")
        .env("DOCKER_SOCKET", docker_socket())
        .env_remove("HEALTH_METRICS_ADDR")
        .env_remove("HEALTHTHER_USER")
        .stdin(Stdio::null())
        .output()
        .expect("docker stack deploy");
    assert!(
        deploy.status.success(),
        "docker stack deploy failed: {}{}",
        String::from_utf8_lossy(&deploy.stdout),
        String::from_utf8_lossy(&deploy.stderr)
    );

    // One task per node, each watching its own node.
    let service = format!("{id}_healthther");
    let logs = format!("{id}_logs");
    let mut tasks = Vec::new();
    for (host, label) in [(&manager, "first"), (&worker, "second")] {
        let mut task = None;
        wait_long(
            &format!("healthther's task on the {label} node to watch"),
            || {
                task = task_of(host, &service);
                task.as_deref().is_some_and(|t| {
                    String::from_utf8_lossy(&docker_at(host, &["logs", t]).stdout)
                        .contains("watching")
                })
            },
        );
        tasks.push(task.expect("found above"));
    }
    let n = docker_at_ok(
        &manager,
        &[
            "service",
            "ps",
            "-q",
            "--filter",
            "desired-state=running",
            &service,
        ],
    );
    assert_eq!(n.lines().count(), 2, "one task per node: {n}");

    // The shipped hardening, as the task runs it.
    let hardening = docker_at_ok(
        &manager,
        &[
            "inspect",
            "-f",
            "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}}",
            &tasks[0],
        ],
    );
    assert_eq!(hardening, "true [ALL]", "read-only, no capabilities");

    // The Swarm service's task is told of once on its node, and left alone.
    let told = |host: &str, container: &str| -> usize {
        audit_in(host, &logs)
            .iter()
            .filter(|r| r["result"] == "swarm_task" && r["container_id"] == container)
            .count()
    };
    let old_task = task_of(&manager, &svc).expect("the service's task runs");
    let old_task_id = docker_at_ok(&manager, &["inspect", "-f", "{{.Id}}", &old_task]);
    wait_long("the Swarm task to be told of", || {
        told(&manager, &old_task_id) == 1
    });
    let note = audit_in(&manager, &logs)
        .into_iter()
        .find(|r| r["result"] == "swarm_task")
        .expect("found above");
    assert!(
        note["note"].as_str().is_some_and(|n| n.contains(&format!(
            "is a task of Swarm service {svc}: Swarm replaces failed tasks itself"
        ))),
        "{note}"
    );

    // Kill each node's target: each comes back, by its own node's task.
    let before1 = started_at(&manager, &t1);
    let before2 = started_at(&worker, &t2);
    docker_at_ok(&manager, &["kill", &t1]);
    docker_at_ok(&worker, &["kill", &t2]);
    wait_long(&format!("{t1} to run again"), || {
        status(&manager, &t1) == "running" && started_at(&manager, &t1) != before1
    });
    wait_long(&format!("{t2} to run again"), || {
        status(&worker, &t2) == "running" && started_at(&worker, &t2) != before2
    });
    let revived = |host: &str, target: &str| -> usize {
        audit_in(host, &logs)
            .iter()
            .filter(|r| r["event"] == "action" && r["target"] == target && r["result"] == "running")
            .count()
    };
    wait_long("each node's audit file to tell its revival", || {
        revived(&manager, &t1) == 1 && revived(&worker, &t2) == 1
    });
    assert_eq!(
        revived(&manager, &t2),
        0,
        "the first node never acts on the second's target"
    );
    assert_eq!(
        revived(&worker, &t1),
        0,
        "the second node never acts on the first's target"
    );

    // Kill the Swarm service's task: Swarm replaces it with a new task; healthther tells of the
    // new one once, and never starts the old one.
    let old_started = started_at(&manager, &old_task_id);
    docker_at_ok(&manager, &["kill", &old_task_id]);
    let mut new_task = None;
    wait_long("Swarm to replace its task", || {
        new_task = task_of(&manager, &svc).filter(|t| !old_task_id.starts_with(t.as_str()));
        new_task.is_some()
    });
    let new_task_id = docker_at_ok(
        &manager,
        &["inspect", "-f", "{{.Id}}", &new_task.expect("found above")],
    );
    wait_long("the new task to be told of", || {
        told(&manager, &new_task_id) == 1
    });
    // The old task's container is kept by Swarm (task history) and stays as Swarm left it.
    assert_ne!(status(&manager, &old_task_id), "running");
    assert_eq!(started_at(&manager, &old_task_id), old_started);
    assert_eq!(told(&manager, &old_task_id), 1, "said once");
    let acted_on_svc = audit_in(&manager, &logs)
        .into_iter()
        .filter(|r| r["target"] == svc.as_str() && r["event"] != "skipped")
        .count();
    assert_eq!(
        acted_on_svc, 0,
        "nothing but the note about the Swarm service"
    );
    let by_selector: Vec<Value> = audit_in(&manager, &logs)
        .into_iter()
        .filter(|r| r["target"] == selector.as_str())
        .collect();
    assert!(
        by_selector.is_empty(),
        "the label selector chose the Swarm task: {by_selector:?}"
    );

    // Prometheus finds both tasks through Swarm's DNS; every series says its node.
    let want: BTreeSet<String> = [manager_host.clone(), worker_host.clone()].into();
    let mut seen = BTreeSet::new();
    wait_long("Prometheus to scrape both nodes' tasks", || {
        seen = hosts_in(port, "healthther_engine_up");
        seen == want
    });
    let q = format!("healthther_actions_total%7Btarget%3D%22{t1}%22%2Cresult%3D%22running%22%7D");
    wait_long("Prometheus to have the first node's revival", || {
        hosts_in(port, &q) == [manager_host.clone()].into()
    });
    let q = format!("healthther_actions_total%7Btarget%3D%22{t2}%22%2Cresult%3D%22running%22%7D");
    wait_long("Prometheus to have the second node's revival", || {
        hosts_in(port, &q) == [worker_host.clone()].into()
    });
    drop(fleet);
    drop(lock);
}
