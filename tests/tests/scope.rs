//! healthther acts on the named targets and on nothing else.

use crate::harness::*;

#[test]
fn lookalike_names_are_never_touched() {
    let target = Node::start(&unique("nodo_1"), &[]);
    // Docker's name filter is an unanchored regex and its events filter matches by prefix: each
    // of these would be caught by one of them.
    let lookalikes = [
        Node::start(&format!("{}0", target.name), &[]),
        Node::start(&format!("{}x", target.name), &[]),
        Node::start(&format!("a{}", target.name), &[]),
    ];
    let env = format!("{}RUST_LOG=debug\n", auto_env(&[&target.name]));
    let daemon = Daemon::watching(&env);

    for l in &lookalikes {
        l.kill();
    }
    let before = target.started_at();
    target.kill();
    target.wait_restarted_since(&before);
    daemon.wait_passes(3);

    for l in &lookalikes {
        assert_eq!(l.status(), "exited", "{} was touched", l.name);
    }
    let audit = daemon.audit();
    assert_eq!(audit.len(), 1, "only the target was acted on: {audit:?}");
    assert_eq!(audit[0]["container"], target.name.as_str());
}

#[test]
fn compose_service_name_finds_its_containers() {
    let service = unique("web");
    let replicas = [
        Node::start(
            &format!("proj-{service}-1"),
            &["--label", &format!("com.docker.compose.service={service}")],
        ),
        Node::start(
            &format!("proj-{service}-2"),
            &["--label", &format!("com.docker.compose.service={service}")],
        ),
    ];
    // Another service whose name only starts the same.
    let other = Node::start(
        &format!("proj-{service}x-1"),
        &["--label", &format!("com.docker.compose.service={service}x")],
    );
    let env = format!("{}RUST_LOG=debug\n", auto_env(&[&service]));
    let daemon = Daemon::watching(&env);

    other.kill();
    let before: Vec<String> = replicas.iter().map(Node::started_at).collect();
    for r in &replicas {
        r.kill();
    }
    for (r, before) in replicas.iter().zip(&before) {
        r.wait_restarted_since(before);
    }
    let audit = daemon.wait_audit(2);
    assert!(
        audit.iter().all(|r| r["target"] == service.as_str()),
        "{audit:?}"
    );
    daemon.wait_passes(3);
    assert_eq!(other.status(), "exited", "a different service was touched");
}

#[test]
fn exact_name_wins_over_compose_service() {
    let name = unique("db");
    let exact = Node::start(&name, &[]);
    let labelled = Node::start(
        &format!("proj-{name}-1"),
        &["--label", &format!("com.docker.compose.service={name}")],
    );
    let env = format!("{}RUST_LOG=debug\n", auto_env(&[&name]));
    let daemon = Daemon::watching(&env);

    labelled.kill();
    let before = exact.started_at();
    exact.kill();
    exact.wait_restarted_since(&before);
    daemon.wait_passes(3);
    assert_eq!(labelled.status(), "exited");
}

/// `MODE=observe` is the operator's dry run: a target's own `healthther.mode=auto` label does
/// not end it (a label may narrow what the operator allowed, never widen it).
#[test]
fn a_label_cannot_end_the_operators_observe_mode() {
    let target = Node::start(&unique("eager"), &["--label", "healthther.mode=auto"]);
    let env = format!(
        "HEALTH_TARGETS={}\nMODE=observe\nHEALTH_POLL_INTERVAL=500ms\nRUST_LOG=info,healthther=debug\n",
        target.name
    );
    let daemon = Daemon::watching(&env);
    target.kill();
    wait_until("the death to be observed", || {
        !events(&daemon.audit(), "observed").is_empty()
    });
    daemon.wait_passes(3);
    assert_eq!(target.status(), "exited", "{}", daemon.output());
    assert!(events(&daemon.audit(), "action").is_empty());
    assert!(
        daemon
            .output()
            .contains("label healthther.mode=auto is ignored"),
        "{}",
        daemon.output()
    );
}
