//! Faults between healthther and the engine, injected by a proxy in front of the real socket,
//! and a log directory that fills up.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

/// A node, a proxy, and an auto-mode daemon that reaches the engine through the proxy.
fn through_proxy(extra_env: &str) -> (Node, Proxy, Daemon) {
    let node = Node::start(&unique("faults"), &[]);
    let proxy = Proxy::in_temp_dir();
    let env = format!("{}{extra_env}", auto_env(&[&node.name]));
    let (mut cmd, workdir) = command(&env);
    cmd.env("DOCKER_HOST", proxy.url());
    let daemon = Daemon::spawn(cmd, workdir);
    daemon.wait_log("watching");
    (node, proxy, daemon)
}

/// The engine's API disappears for `outage`; a target killed meanwhile is revived once it is
/// back, and the outage is reported once, not once per retry.
fn survives_an_outage_of(outage: Duration) {
    let (node, proxy, mut daemon) = through_proxy("");
    proxy.cut();
    daemon.wait_log("lost the Docker engine");
    daemon.wait_log("cannot reach the Docker engine");
    let before = node.started_at();
    node.kill();
    std::thread::sleep(outage);
    assert!(daemon.is_running(), "exited:\n{}", daemon.output());
    assert_eq!(node.status(), "exited", "revived without an engine?");

    proxy.restore();
    node.wait_restarted_since(&before);
    daemon.wait_log("the Docker engine answers again");
    assert_eq!(
        daemon.output().matches("cannot reach").count(),
        1,
        "the outage is reported once:\n{}",
        daemon.output()
    );
    assert_eq!(events(&daemon.wait_audit(1), "action").len(), 1);
}

#[test]
fn an_outage_of_1s_is_survived() {
    survives_an_outage_of(Duration::from_secs(1));
}

#[test]
fn an_outage_of_10s_is_survived() {
    survives_an_outage_of(Duration::from_secs(10));
}

#[test]
fn an_outage_of_60s_is_survived() {
    survives_an_outage_of(Duration::from_secs(60));
}

#[test]
fn a_stalled_event_stream_is_covered_by_polling() {
    let node = Node::start(&unique("stall"), &[]);
    let proxy = Proxy::in_temp_dir();
    proxy.set_faults(Faults {
        stall_events: true,
        ..Faults::default()
    });
    let (mut cmd, workdir) = command(&auto_env(&[&node.name]));
    cmd.env("DOCKER_HOST", proxy.url());
    let daemon = Daemon::spawn(cmd, workdir);
    daemon.wait_log("watching");
    let before = node.started_at();
    node.kill();
    // No event can arrive; the half-second reconciliation pass finds it.
    node.wait_restarted_since(&before);
    assert_eq!(events(&daemon.wait_audit(1), "action").len(), 1);
}

#[test]
fn an_ended_event_stream_is_covered_by_polling_and_asked_for_again() {
    let (node, proxy, daemon) = through_proxy("");
    proxy.set_faults(Faults {
        answer: vec![("GET", "/events", 200, "")],
        ..Faults::default()
    });
    // Cut the live stream; the next subscription gets an empty answer.
    proxy.cut();
    proxy.restore();
    daemon.wait_log("lost the event stream");
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    assert_eq!(
        daemon.output().matches("lost the event stream").count(),
        1,
        "said once:\n{}",
        daemon.output()
    );
}

#[test]
fn refused_starts_are_recorded_and_retried_under_the_back_off() {
    let (node, proxy, mut daemon) = through_proxy(
        "HEALTH_BACKOFF_INITIAL=300ms\nHEALTH_BACKOFF_MAX=2s\nHEALTH_QUARANTINE_AFTER=100\n",
    );
    proxy.set_faults(Faults {
        answer: vec![("POST", "/start", 500, r#"{"message":"injected failure"}"#)],
        ..Faults::default()
    });
    let before = node.started_at();
    node.kill();
    wait_until("two refused starts in the audit file", || {
        let audit = daemon.audit();
        let failed = events(&audit, "action")
            .into_iter()
            .filter(|r| r["result"] == "failed")
            .filter(|r| {
                r["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("injected failure (HTTP 500)"))
            })
            .count();
        failed >= 2
    });
    proxy.set_faults(Faults {
        answer: vec![(
            "POST",
            "/start",
            409,
            r#"{"message":"Conflict. The container is being removed"}"#,
        )],
        ..Faults::default()
    });
    wait_until("a conflict in the audit file", || {
        daemon.audit().iter().any(|r| {
            r["error"]
                .as_str()
                .is_some_and(|e| e.contains("(HTTP 409)"))
        })
    });
    proxy.set_faults(Faults {
        answer: vec![(
            "POST",
            "/start",
            404,
            r#"{"message":"No such container: removed meanwhile"}"#,
        )],
        ..Faults::default()
    });
    wait_until("a missing container in the audit file", || {
        daemon.audit().iter().any(|r| {
            r["error"]
                .as_str()
                .is_some_and(|e| e.contains("removed meanwhile (HTTP 404)"))
        })
    });
    proxy.set_faults(Faults::default());
    node.wait_restarted_since(&before);
    assert!(daemon.is_running());
}

#[test]
fn garbage_from_the_engine_is_survived() {
    let (node, proxy, mut daemon) = through_proxy("");
    proxy.set_faults(Faults {
        answer: vec![("GET", "/containers/json", 200, "this is not json{")],
        ..Faults::default()
    });
    daemon.wait_log("lost the Docker engine");
    assert!(daemon.is_running(), "{}", daemon.output());
    proxy.set_faults(Faults::default());
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
}

/// A tiny tmpfs, unmounted when dropped.
struct TinyFs(std::path::PathBuf);

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_log_directory_does_not_stop_revivals() {
    let node = Node::start(&unique("fulllog"), &[]);
    let (mut cmd, workdir) = command(&auto_env(&[&node.name]));
    let logs = workdir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir logs");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&logs)
        .status()
        .expect("run mount");
    assert!(
        mounted.success(),
        "this test mounts a small tmpfs and needs root"
    );
    let _fs = TinyFs(logs.clone());
    cmd.env("HEALTH_LOG_DIR", &logs);
    let daemon = Daemon::spawn(cmd, workdir);
    daemon.wait_log("watching");

    // Fill it to the last byte.
    let filler = std::fs::File::create(logs.join("filler")).expect("create filler");
    let mut filler = std::io::BufWriter::new(filler);
    let block = vec![b'x'; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);

    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    daemon.wait_log("cannot write the audit file");
    daemon.wait_log("revived: running again");
}

#[test]
fn a_list_the_engine_holds_back_holds_up_nothing_else() {
    let (node, proxy, daemon) = through_proxy("");
    // Every list from now on waits longer than any deadline of this test.
    proxy.set_faults(Faults {
        delay: vec![("GET", "/containers/json", Duration::from_secs(300))],
        ..Faults::default()
    });
    // Let a pass start and get stuck.
    std::thread::sleep(Duration::from_secs(2));
    let (code, out, err) = client(daemon.dir.path(), &["pending"]);
    assert_eq!(code, Some(0), "pending waited behind the list: {err}");
    assert!(out.starts_with("no open prompts"), "{out}");
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    assert_eq!(events(&daemon.wait_audit(1), "action").len(), 1);
}

/// A strict engine, such as Docker 29 (which refuses versions below 1.44), or a proxy that
/// allows only versioned paths: every request but the version check must carry the negotiated
/// `/vX.Y` prefix, and no older one. healthther watches and revives through it, and no request
/// of its was refused. (bollard 0.21 sends paths without the prefix; engine.rs puts it back.)
#[test]
fn a_server_refusing_unversioned_and_older_requests_is_watched_through() {
    let node = Node::start(&unique("strict_api"), &[]);
    let proxy = Proxy::in_temp_dir();
    // The engine's own version is the newest it speaks, so negotiation arrives at it exactly.
    let api = engine_api_version();
    proxy.set_faults(Faults {
        min_api: Some(api),
        ..Faults::default()
    });
    let (mut cmd, workdir) = command(&auto_env(&[&node.name]));
    cmd.env("DOCKER_HOST", proxy.url());
    let daemon = Daemon::spawn(cmd, workdir);
    daemon.wait_log("watching");
    assert!(
        daemon
            .output()
            .contains(&format!("api={}.{}", api.0, api.1)),
        "negotiated another version than the engine's {api:?}:\n{}",
        daemon.output()
    );
    // Killed: seen through the event stream, started with a hand-made request.
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    let audit = daemon.wait_audit(1);
    let acted = events(&audit, "action");
    assert_eq!(acted[0]["result"], "running", "{audit:?}");
    // Made unhealthy: a restart (stop, then start) through the same proxy.
    wait_until("the node to be healthy", || node.health() == "healthy");
    let before = node.started_at();
    docker_ok(&["exec", &node.name, "/fixture", "sick"]);
    node.wait_restarted_since(&before);
    let audit = daemon.wait_audit(2);
    assert_eq!(
        events(&audit, "action")[1]["decision"],
        "restart",
        "{audit:?}"
    );
    assert_eq!(
        proxy.refused(),
        Vec::<String>::new(),
        "requests refused for their API version:\n{}",
        daemon.output()
    );
}

/// A destroy event the engine never delivers (dropped under load; here the stream is held
/// unanswered) leaves no removed container behind: a whole list now and then prunes it, so
/// `status` shows what is there.
#[test]
fn a_removal_whose_event_never_came_is_pruned_by_a_later_pass() {
    let service = unique("web");
    let label = format!("com.docker.compose.service={service}");
    let keep = Node::start(&format!("{service}-1"), &["--label", &label]);
    let gone = Node::start(&format!("{service}-2"), &["--label", &label]);
    let proxy = Proxy::in_temp_dir();
    proxy.set_faults(Faults {
        stall_events: true,
        ..Faults::default()
    });
    let (mut cmd, workdir) = command(&auto_env(&[&service]));
    cmd.env("DOCKER_HOST", proxy.url());
    let daemon = Daemon::spawn(cmd, workdir);
    daemon.wait_log("watching");
    docker_ok(&["rm", "-f", &gone.name]);
    wait_until("status to forget the removed replica", || {
        let (_, out, _) = client(daemon.dir.path(), &["status", "--json"]);
        out.contains(&keep.name) && !out.contains(&gone.name)
    });
}
