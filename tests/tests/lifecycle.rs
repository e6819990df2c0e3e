//! Start-up, targets that come later, manual mode, signals, an absent engine.

use std::time::Duration;

use crate::harness::*;

#[test]
fn target_created_after_start_up_is_picked_up() {
    let name = unique("late");
    let daemon = Daemon::watching(&auto_env(&[&name]));
    daemon.wait_log("target not found");

    let node = Node::start(&name, &[]);
    daemon.wait_log("target found");
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    assert_eq!(
        daemon.output().matches("target not found").count(),
        1,
        "a missing target is reported once:\n{}",
        daemon.output()
    );
}

#[test]
fn manual_mode_does_not_act_on_its_own() {
    let node = Node::start(&unique("manual"), &[]);
    let env = format!("{}RUST_LOG=debug\n", manual_env(&[&node.name]));
    let daemon = Daemon::watching(&env);
    node.kill();
    daemon.wait_log("Revive it?");
    daemon.wait_passes(4);
    assert_eq!(node.status(), "exited");
    assert!(
        events(&daemon.audit(), "action").is_empty(),
        "no action taken"
    );
    assert_eq!(
        daemon.output().matches("Revive it?").count(),
        1,
        "asked once, not once per pass:\n{}",
        daemon.output()
    );
}

#[test]
fn sigterm_stops_cleanly_with_exit_code_zero() {
    let node = Node::start(&unique("term"), &[]);
    let mut daemon = Daemon::watching(&auto_env(&[&node.name]));
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", daemon.output());
    assert!(daemon.output().contains("stopped"));
}

#[test]
fn unreachable_engine_is_retried_not_fatal() {
    let (mut cmd, dir) = command("HEALTH_TARGETS=nodo_1\nMODE=auto\n");
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let mut daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("cannot reach the Docker engine at unix:///nonexistent/docker.sock");
    // Several retries happen in this time (the back-off starts at a quarter second).
    std::thread::sleep(Duration::from_secs(2));
    assert!(daemon.is_running(), "exited:\n{}", daemon.output());
    assert_eq!(
        daemon.output().matches("cannot reach").count(),
        1,
        "the outage is reported once:\n{}",
        daemon.output()
    );
    daemon.signal("INT");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn probe_is_healthy_only_while_the_loop_sees_the_engine() {
    let node = Node::start(&unique("probe"), &[]);
    let daemon = Daemon::watching(&auto_env(&[&node.name]));
    let (code, out, err) = client(daemon.dir.path(), &["probe"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("alive"), "{out}");

    let (mut cmd, dir) = command("HEALTH_TARGETS=nodo_1\n");
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let blind = Daemon::spawn(cmd, dir);
    blind.wait_log("cannot reach");
    let (code, _, err) = client(blind.dir.path(), &["probe"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Docker engine has not answered"), "{err}");
}

#[test]
fn a_torn_audit_line_is_set_aside_and_new_records_stay_whole() {
    let node = Node::start(&unique("torn"), &[]);
    let (cmd, dir) = command(&auto_env(&[&node.name]));
    // As left by a healthther killed in the middle of a write.
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir logs");
    let today = &healthther::audit::now_rfc3339()[..10];
    std::fs::write(
        logs.join(format!("audit.{today}.jsonl")),
        "{\"event\":\"action\",\"target\":\"old\"}\n{\"event\":\"act",
    )
    .expect("write audit file");
    let daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("watching");
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    wait_until("the new record", || {
        healthther::audit::read(&logs).is_ok_and(|l| l.records.len() == 2)
    });
    let log = healthther::audit::read(&logs).expect("read audit");
    assert_eq!(log.torn, ["{\"event\":\"act"]);
    assert_eq!(log.records[1]["container"], node.name.as_str());
}

#[test]
fn sigterm_during_a_restart_lets_it_finish_and_records_it() {
    // Ignores SIGTERM, so the restart waits out the stop timeout before killing it.
    let node = Node::start_with(&unique("slowstop"), &[], &["stubborn"]);
    wait_until("the fixture to be healthy", || node.health() == "healthy");
    let env = format!(
        "HEALTH_TARGETS={}\nMODE=auto\nHEALTH_STOP_TIMEOUT=3s\n",
        node.name
    );
    let mut daemon = Daemon::watching(&env);
    let before = node.started_at();
    docker_ok(&["exec", &node.name, "/fixture", "sick"]);
    daemon.wait_log("reviving");
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", daemon.output());
    assert!(daemon.output().contains("letting in-flight actions finish"));
    node.wait_restarted_since(&before);
    let audit = daemon.audit();
    let actions = events(&audit, "action");
    assert_eq!(actions.len(), 1, "{audit:?}");
    assert_eq!(actions[0]["decision"], "restart");
    assert_eq!(actions[0]["result"], "running");
}
