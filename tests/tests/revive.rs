//! Auto mode brings targets back: killed, stopped, unhealthy.

use crate::harness::*;

#[test]
fn killed_target_is_started_again_and_each_action_is_audited() {
    let node = Node::start(&unique("nodo_1"), &[]);
    let daemon = Daemon::watching(&auto_env(&[&node.name]));

    for round in 1..=2 {
        let before = node.started_at();
        node.kill();
        node.wait_restarted_since(&before);
        let audit = daemon.wait_audit(round);
        assert_eq!(audit.len(), round, "one record per action: {audit:?}");
    }

    let audit = daemon.audit();
    for r in &audit {
        assert_eq!(r["event"], "action");
        assert_eq!(r["by"], "auto");
        assert_eq!(r["target"], node.name.as_str());
        assert_eq!(r["container"], node.name.as_str());
        assert_eq!(r["decision"], "start");
        assert_eq!(r["result"], "running");
        assert_eq!(r["state"]["status"], "exited");
        assert_eq!(r["state"]["exit_code"], 137);
        assert!(r["seen"].as_str().unwrap().contains("code 137"), "{r}");
        assert!(
            r["container_id"].as_str().is_some_and(|id| id.len() == 64),
            "{r}"
        );
        assert!(r["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{r}");
    }
    // The console and the human log tell people the same.
    daemon.wait_log("revived");
    wait_until("the human log to say revived", || {
        daemon.human_log().contains("revived") && daemon.human_log().contains(&node.name)
    });
}

#[test]
fn stopped_target_is_started_again() {
    let node = Node::start(&unique("nodo_s"), &[]);
    let daemon = Daemon::watching(&auto_env(&[&node.name]));
    let before = node.started_at();
    docker_ok(&["stop", "-t", "1", &node.name]);
    node.wait_restarted_since(&before);
    let audit = daemon.wait_audit(1);
    assert_eq!(audit[0]["decision"], "start");
}

#[test]
fn unhealthy_target_is_restarted() {
    let node = Node::start(&unique("nodo_u"), &[]);
    wait_until("the fixture to be healthy", || node.health() == "healthy");
    let daemon = Daemon::watching(&auto_env(&[&node.name]));
    let before = node.started_at();

    docker_ok(&["exec", &node.name, "/fixture", "sick"]);

    node.wait_restarted_since(&before);
    wait_until("the restarted node to be healthy", || {
        node.health() == "healthy"
    });
    let audit = daemon.wait_audit(1);
    let r = &audit[0];
    assert_eq!(r["decision"], "restart");
    assert_eq!(r["result"], "running");
    assert_eq!(r["state"]["health"], "unhealthy");
    assert!(
        r["seen"].as_str().unwrap().contains("sick"),
        "last check output: {r}"
    );
}

#[test]
fn engine_reached_over_tcp_as_behind_a_socket_proxy() {
    let node = Node::start(&unique("tcp"), &[]);
    let (mut cmd, dir) = command(&auto_env(&[&node.name]));
    cmd.env("DOCKER_HOST", tcp_proxy());
    let daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("watching");
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    assert_eq!(daemon.wait_audit(1)[0]["result"], "running");
}
