//! The restart policy on the real engine: back-off, quarantine, release, and no storms.

use std::time::{Duration, SystemTime};

use crate::harness::*;

fn time_of(record: &serde_json::Value) -> SystemTime {
    humantime::parse_rfc3339_weak(record["time"].as_str().expect("time")).expect("rfc3339")
}

#[test]
fn a_crash_loop_backs_off_then_is_quarantined_until_released() {
    // Runs 300 ms, then exits 3: every revival fails again at once.
    let node = Node::start_with(&unique("crashloop"), &[], &["exit-after", "300", "3"]);
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=700ms\nHEALTH_BACKOFF_RESET=5s\nHEALTH_QUARANTINE_AFTER=3\n\
         RUST_LOG=debug\n",
        auto_env(&[&node.name])
    );
    let daemon = Daemon::watching(&env);
    daemon.wait_log("QUARANTINED");
    let audit = daemon.audit();
    let actions = events(&audit, "action");
    assert_eq!(
        actions.len(),
        3,
        "revived three times, then stopped: {audit:?}"
    );
    assert_eq!(events(&audit, "quarantine").len(), 1);

    // The waits grow: the second revival came at least 700 ms after the first, the third at
    // least 1.4 s after the second (each on top of the 300 ms run).
    let gap = |a: usize, b: usize| {
        time_of(actions[b])
            .duration_since(time_of(actions[a]))
            .unwrap_or_default()
    };
    assert!(gap(0, 1) >= Duration::from_millis(700), "{:?}", gap(0, 1));
    assert!(gap(1, 2) >= Duration::from_millis(1400), "{:?}", gap(1, 2));

    // Quarantined: passes go by and nothing more is done.
    daemon.wait_passes(4);
    assert_eq!(events(&daemon.audit(), "action").len(), 3);
    assert_eq!(node.status(), "exited");

    let (code, out, err) = client(daemon.dir.path(), &["release", &node.name]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("released"), "{out}");
    wait_until("a revival after the release", || {
        events(&daemon.audit(), "action").len() >= 4
    });
    let (code, _, err) = client(daemon.dir.path(), &["release", &node.name]);
    assert_eq!(code, Some(1));
    assert!(err.contains("is not quarantined"), "{err}");
    // A name that is no target is told so, with the targets.
    let (code, _, err) = client(daemon.dir.path(), &["release", "nodo_nobody"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("not a target") && err.contains(&node.name),
        "{err}"
    );
}

#[test]
fn kills_spaced_out_are_revived_every_time_and_never_quarantined() {
    let node = Node::start(&unique("chaos"), &[]);
    let env = format!(
        "{}HEALTH_BACKOFF_RESET=1s\nHEALTH_QUARANTINE_AFTER=2\n",
        auto_env(&[&node.name])
    );
    let daemon = Daemon::watching(&env);
    for round in 1..=4 {
        // Let it run past the reset window, as a node does between a chaos test's kills.
        std::thread::sleep(Duration::from_millis(1500));
        let before = node.started_at();
        node.kill();
        node.wait_restarted_since(&before);
        daemon.wait_audit(round);
    }
    assert!(
        !daemon.output().contains("QUARANTINED"),
        "{}",
        daemon.output()
    );
}

#[test]
fn twenty_targets_dying_at_once_are_all_revived() {
    let nodes: Vec<Node> = (0..20)
        .map(|i| Node::start(&unique(&format!("many{i}")), &[]))
        .collect();
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let daemon = Daemon::watching(&auto_env(&names));
    let before: Vec<String> = nodes.iter().map(Node::started_at).collect();
    let mut kill = vec!["kill"];
    kill.extend_from_slice(&names);
    docker_ok(&kill);
    for (node, before) in nodes.iter().zip(&before) {
        node.wait_restarted_since(before);
    }
    assert_eq!(events(&daemon.wait_audit(20), "action").len(), 20);
}

/// The `start` events the engine logged for `container` since `since` (a unix time).
fn starts_since(container: &str, since: &str) -> usize {
    let until = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1;
    let filter = format!("container={container}");
    docker_ok(&[
        "events",
        "--since",
        since,
        "--until",
        &until.to_string(),
        "--filter",
        &filter,
        "--filter",
        "event=start",
        "--format",
        "{{.ID}}",
    ])
    .lines()
    .count()
}

fn unix_now() -> String {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        .to_string()
}

#[test]
fn two_replicas_revive_a_target_once() {
    let node = Node::start(&unique("replicas"), &[]);
    wait_until("the fixture to be healthy", || node.health() == "healthy");
    let env = format!("{}RUST_LOG=debug\n", auto_env(&[&node.name]));
    let first = Daemon::watching(&env);
    let second = Daemon::watching(&env);
    let id = node.inspect("{{.Id}}");

    let since = unix_now();
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    first.wait_passes(2);
    second.wait_passes(2);
    assert_eq!(
        starts_since(&id, &since),
        1,
        "started once, not once per replica"
    );

    wait_until("the fixture to be healthy", || node.health() == "healthy");
    let since = unix_now();
    let before = node.started_at();
    docker_ok(&["exec", &node.name, "/fixture", "sick"]);
    node.wait_restarted_since(&before);
    wait_until("healthy again", || node.health() == "healthy");
    first.wait_passes(2);
    second.wait_passes(2);
    assert_eq!(
        starts_since(&id, &since),
        1,
        "restarted once, not once per replica"
    );
}

#[test]
fn failing_checks_in_the_start_period_are_not_acted_on() {
    // Checks fail from the start, but within its start period the engine reports `starting`.
    let node = Node::start(
        &unique("startperiod"),
        &["--health-start-period=60s", "--health-interval=300ms"],
    );
    docker_ok(&["exec", &node.name, "/fixture", "sick"]);
    let env = format!("{}RUST_LOG=debug\n", auto_env(&[&node.name]));
    let daemon = Daemon::watching(&env);
    daemon.wait_passes(4);
    assert_eq!(node.health(), "starting");
    assert!(daemon.audit().is_empty(), "acted during the start period");
}

#[test]
fn kills_through_the_api_are_revived_at_once_however_often() {
    // Five `docker kill`s in about 20 s, each well inside the reset window after the last
    // revival: a chaos test's doing, not a crash loop. No health check: on a loaded machine
    // the fixture's may time out, and an unhealthy restart is not what this test is about.
    let node = Node::start(&unique("apikills"), &["--no-healthcheck"]);
    let daemon = Daemon::watching(&auto_env(&[&node.name]));
    for round in 1..=5 {
        std::thread::sleep(Duration::from_secs(3));
        let before = node.started_at();
        node.kill();
        node.wait_restarted_since(&before);
        daemon.wait_audit(round);
    }
    // Each came at once: none waited out a back-off.
    let output = daemon.output();
    assert!(!output.contains("backing off"), "{output}");
    assert!(!output.contains("QUARANTINED"), "{output}");
    let audit = daemon.audit();
    assert!(events(&audit, "quarantine").is_empty());
    let actions = events(&audit, "action");
    assert_eq!(actions.len(), 5, "{audit:?}");
    for a in &actions {
        assert_eq!(a["cause"], "api_kill", "{a}");
    }
}
