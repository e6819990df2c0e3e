//! The operator in control: status, holds, HEALTH_ON_STOP, labels, observe mode, and decisions
//! that survive a restart of healthther.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::harness::*;

const DEBUG: &str = "RUST_LOG=info,healthther=debug\n";

fn status(daemon: &Daemon) -> Value {
    let (code, out, err) = client(daemon.dir.path(), &["status", "--json"]);
    assert_eq!(code, Some(0), "status failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {out}"))
}

/// Stops `daemon` with SIGTERM and starts another in the same working directory (same `.env`,
/// same log directory and state file).
fn restart(mut daemon: Daemon) -> Daemon {
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let dir = std::mem::replace(&mut daemon.dir, tempfile::tempdir().expect("temp dir"));
    drop(daemon);
    let (mut cmd, _unused) = command("");
    cmd.current_dir(dir.path());
    let next = Daemon::spawn(cmd, dir);
    next.wait_log("watching");
    next
}

fn time_of(record: &Value) -> SystemTime {
    humantime::parse_rfc3339_weak(record["time"].as_str().expect("time")).expect("rfc3339")
}

#[test]
fn status_json_names_each_target_and_its_container() {
    let node = Node::start(&unique("status"), &[]);
    let ghost = unique("ghost");
    let daemon = Daemon::watching(&auto_env(&[&node.name, &ghost]));
    let rows = status(&daemon);
    assert_eq!(rows[0]["target"], node.name.as_str());
    assert_eq!(rows[0]["resolution"], "found");
    let c = &rows[0]["containers"][0];
    assert_eq!(c["name"], node.name.as_str());
    assert_eq!(c["id"], &node.inspect("{{.Id}}")[..12]);
    assert_eq!(c["state"], "running");
    assert_eq!(c["quarantined"], false);
    assert_eq!(rows[1]["target"], ghost.as_str());
    assert_eq!(rows[1]["resolution"], "missing");

    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    daemon.wait_audit(1);
    let rows = status(&daemon);
    let last = &rows[0]["containers"][0]["last_action"];
    assert_eq!(last["what"], "start");
    assert_eq!(last["result"], "running");
    let (code, text, _) = client(daemon.dir.path(), &["status"]);
    assert_eq!(code, Some(0));
    assert!(text.starts_with("TARGET"), "{text}");
    assert!(
        text.contains(&node.name) && text.contains("unresolved"),
        "{text}"
    );
}

#[test]
fn a_held_target_stays_down_until_resumed_and_a_hold_with_a_time_ends_by_itself() {
    let node = Node::start(&unique("held"), &[]);
    let daemon = Daemon::watching(&format!("{}{DEBUG}", auto_env(&[&node.name])));
    let (code, out, err) = client(
        daemon.dir.path(),
        &["hold", &node.name, "--reason", "swapping the disk"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("holding"), "{out}");
    node.kill();
    daemon.wait_passes(4);
    assert_eq!(node.status(), "exited", "revived while held");
    // The failure is recorded all the same (metrics count it), not acted on.
    let skipped = events(&daemon.audit(), "skipped")
        .into_iter()
        .filter(|r| r["result"] == "held")
        .count();
    assert_eq!(skipped, 1, "{:?}", daemon.audit());
    let held = &status(&daemon)[0]["held"];
    assert_eq!(held["reason"], "swapping the disk");

    let before = node.started_at();
    let (code, _, err) = client(daemon.dir.path(), &["resume", &node.name]);
    assert_eq!(code, Some(0), "{err}");
    node.wait_restarted_since(&before);

    // A hold with a time ends by itself, and the target is revived then.
    let (code, _, err) = client(daemon.dir.path(), &["hold", &node.name, "3s"]);
    assert_eq!(code, Some(0), "{err}");
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    let audit = daemon.audit();
    assert_eq!(events(&audit, "hold").len(), 2, "{audit:?}");
    assert_eq!(events(&audit, "resume").len(), 2, "{audit:?}");
    let (code, _, err) = client(daemon.dir.path(), &["hold", "nodo_nobody"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not a target"), "{err}");
}

#[test]
fn on_stop_hold_leaves_a_docker_stop_alone_until_it_is_started() {
    let node = Node::start(&unique("onstop"), &[]);
    let env = format!("{}HEALTH_ON_STOP=hold\n{DEBUG}", auto_env(&[&node.name]));
    let daemon = Daemon::watching(&env);
    docker_ok(&["stop", "-t", "1", &node.name]);
    daemon.wait_log("held until it is started again");
    daemon.wait_passes(6);
    assert_eq!(node.status(), "exited", "a docker stop was undone");
    assert_eq!(status(&daemon)[0]["containers"][0]["held_by_stop"], true);

    docker_ok(&["start", &node.name]);
    daemon.wait_log("no longer held");
    // A kill (not a stop) is revived as ever.
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
}

#[test]
fn an_unhealthy_after_label_delays_the_restart_that_long() {
    let node = Node::start(
        &unique("patient"),
        &["--label", "healthther.unhealthy-after=5s"],
    );
    wait_until("the fixture to be healthy", || node.health() == "healthy");
    let daemon = Daemon::watching(&auto_env(&[&node.name]));
    let before = node.started_at();
    let sick_at = SystemTime::now();
    docker_ok(&["exec", &node.name, "/fixture", "sick"]);
    node.wait_restarted_since(&before);
    let audit = daemon.wait_audit(1);
    let action = events(&audit, "action")[0];
    assert_eq!(action["decision"], "restart");
    let waited = time_of(action).duration_since(sick_at).unwrap_or_default();
    assert!(
        waited >= Duration::from_secs(5),
        "restarted {waited:?} after it turned sick"
    );
}

#[test]
fn observe_mode_never_starts_a_killed_target() {
    let node = Node::start(&unique("observe"), &[]);
    let env = format!(
        "HEALTH_TARGETS={}\nMODE=observe\nHEALTH_POLL_INTERVAL=500ms\n{DEBUG}",
        node.name
    );
    let daemon = Daemon::watching(&env);
    node.kill();
    daemon.wait_log("observed");
    daemon.wait_passes(4);
    assert_eq!(node.status(), "exited");
    let audit = daemon.audit();
    assert!(events(&audit, "action").is_empty(), "{audit:?}");
    assert_eq!(events(&audit, "observed").len(), 1, "{audit:?}");
}

#[test]
fn a_quarantine_survives_a_restart_of_healthther() {
    let node = Node::start_with(&unique("remember"), &[], &["exit-after", "300", "3"]);
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=300ms\nHEALTH_QUARANTINE_AFTER=2\n{DEBUG}",
        auto_env(&[&node.name])
    );
    let daemon = Daemon::watching(&env);
    daemon.wait_log("QUARANTINED");
    let actions = events(&daemon.audit(), "action").len();
    let daemon = restart(daemon);
    assert_eq!(status(&daemon)[0]["containers"][0]["quarantined"], true);
    daemon.wait_passes(4);
    assert_eq!(node.status(), "exited");
    assert_eq!(
        events(&daemon.audit(), "action").len(),
        actions,
        "revived after the restart although quarantined"
    );
}

#[test]
fn an_always_answer_survives_a_restart_of_healthther() {
    let node = Node::start(&unique("always"), &[]);
    let daemon = Daemon::watching(&manual_env(&[&node.name]));
    let before = node.started_at();
    node.kill();
    daemon.wait_log("Revive it?");
    let (code, _, err) = client(daemon.dir.path(), &["answer", &node.name, "always"]);
    assert_eq!(code, Some(0), "{err}");
    node.wait_restarted_since(&before);
    let daemon = restart(daemon);
    assert_eq!(status(&daemon)[0]["answer"], "always");
    // Past the reset window, so the next kill is a fresh failure.
    std::thread::sleep(Duration::from_secs(11));
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    let audit = daemon.audit();
    let last = events(&audit, "action").into_iter().last().cloned();
    assert_eq!(
        last.map(|a| a["by"].clone()),
        Some(Value::from("operator: always"))
    );
}

#[test]
fn a_corrupt_state_file_is_set_aside_and_healthther_starts_afresh() {
    let node = Node::start(&unique("corrupt"), &[]);
    let (cmd, dir) = command(&auto_env(&[&node.name]));
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir logs");
    std::fs::write(logs.join("state.json"), "{\"v\":1,\"holds\":[{").expect("write");
    let daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("set aside");
    daemon.wait_log("watching");
    let aside: Vec<String> = std::fs::read_dir(&logs)
        .expect("read logs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "set aside, not deleted");
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
}

#[test]
fn a_fifo_in_place_of_the_state_file_stops_the_start_with_one_line() {
    let (cmd, dir) = command(&auto_env(&["nodo_1"]));
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir logs");
    let fifo = logs.join("state.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let mut daemon = Daemon::spawn(cmd, dir);
    let status = daemon.wait_exit(Duration::from_secs(30));
    let out = daemon.output();
    assert_eq!(status.code(), Some(2), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(
        out.contains("logs/state.json") && out.contains("not a regular file (a FIFO)"),
        "{out}"
    );
    assert!(
        !daemon.dir.path().join("healthther.sock").exists(),
        "nothing was bound"
    );
}

#[test]
fn a_malformed_entry_in_the_state_file_costs_only_itself() {
    let node = Node::start(&unique("partial"), &[]);
    let (cmd, dir) = command(&auto_env(&[&node.name]));
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir logs");
    let state = serde_json::json!({
        "v": 1,
        "holds": [{"target": node.name, "reason": "disk swap", "by": "test",
                   "since": null, "until": null}],
        "always": [], "never": [],
        "containers": [{"id": "abc", "name": "gone", "history": "garbled"}],
    });
    std::fs::write(logs.join("state.json"), state.to_string()).expect("write");
    let daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("containers[0]");
    daemon.wait_log("watching");
    // The hold is still there: a killed target stays down.
    assert!(!status(&daemon)[0]["held"].is_null(), "{}", daemon.output());
    let copies = std::fs::read_dir(&logs)
        .expect("read logs")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.bad-")
        })
        .count();
    assert_eq!(copies, 1, "the file as it was is kept");
}
