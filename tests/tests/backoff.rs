//! Every failure path backs off (issue 20): a failure no error can make look like a first one.

use std::time::{Duration, Instant};

use crate::harness::*;

/// A labelled dependent whose recreation cannot succeed (its bind mount's source is gone) is
/// tried under the back-off and quarantined, not retried at once: the rename to the temporary
/// name must not make it a new container with a clean history.
#[test]
fn a_recreation_that_keeps_failing_backs_off_and_is_quarantined() {
    let vpn = unique("vpn");
    let p = Node::start_with(&vpn, &[], &["serve", "8080"]);
    let source = tempfile::tempdir().expect("temp dir");
    // `--mount`, not `-v`: the engine creates a missing `-v` source, but refuses a missing
    // `--mount` one.
    let bind = format!("type=bind,source={},target=/data", source.path().display());
    let network = format!("container:{vpn}");
    let d = Node::start(
        &unique("torrent"),
        &[
            "--network",
            &network,
            "--mount",
            &bind,
            "--label",
            "healthther.recreate=true",
        ],
    );
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=1s\nHEALTH_QUARANTINE_AFTER=3\n",
        auto_env(&[&vpn, &d.name])
    );
    let daemon = Daemon::watching(&env);

    // The create of any recreation now fails: the bind source is gone.
    drop(source);
    // `docker rm -f vpn`, then a new vpn.
    drop(p);
    let _p = Node::start_with(&vpn, &[], &["serve", "8080"]);

    let began = Instant::now();
    while records_for(&daemon, "quarantine", &d.name).is_empty() {
        assert!(
            began.elapsed() < DEADLINE,
            "no quarantine: {:#?}\n{}",
            daemon.audit(),
            daemon.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let tries = records_for(&daemon, "action", &d.name);
    assert!(
        tries
            .iter()
            .all(|r| r["decision"] == "recreate" && r["result"] == "failed"),
        "{tries:#?}"
    );
    assert_eq!(
        tries.len(),
        3,
        "HEALTH_QUARANTINE_AFTER=3 failed tries, each after a back-off: {tries:#?}\n{}",
        daemon.output()
    );
    // 1 s and 2 s of back-off between the three tries.
    assert!(began.elapsed() >= Duration::from_secs(3), "{tries:#?}");
    // And nothing more after the quarantine.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(records_for(&daemon, "action", &d.name).len(), 3);
    assert_eq!(
        d.inspect("{{.Name}}"),
        format!("/{}", d.name),
        "its name given back"
    );
}
