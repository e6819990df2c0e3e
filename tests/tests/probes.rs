//! HTTP and TCP probes declared by label (`healthther.probe`), for images without a HEALTHCHECK:
//! the fixture serving HTTP (`fixture http PORT`) and made to hang, fail or close its listening
//! socket (`fixture http-mode`). Every node runs with `--no-healthcheck`, so only the probe
//! decides. The daemon runs on the host and reaches a node at its bridge address.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const PORT: &str = "8080";

/// A container name of this module's own: `hprb-` and a name no other test uses.
fn name(label: &str) -> String {
    format!("hprb-{}", unique(label))
}

/// The fixture image under this module's own tag: another test run may build the shared tag
/// from another tree at the same time, one whose fixture may not serve HTTP yet.
fn image() -> &'static str {
    const TAG: &str = "hprb-fixture:test";
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let binary = static_binary(&["-p", "fixture"], "fixture");
        let dockerfile = std::fs::read_to_string(root.join("fixture/Dockerfile"))
            .expect("read fixture/Dockerfile");
        build_image(TAG, &dockerfile, &[("fixture", &binary)]);
    });
    TAG
}

/// A fixture serving HTTP on `PORT`, with no HEALTHCHECK and `labels` (`key=value`).
fn http_node(label: &str, labels: &[&str]) -> Node {
    let node = Node { name: name(label) };
    let mut args = vec!["run", "-d", "--name", &node.name, "--no-healthcheck"];
    for l in labels {
        args.extend(["--label", l]);
    }
    args.extend([image(), "http", PORT]);
    docker_ok(&args);
    wait_until("the node to serve HTTP", || {
        logs(&node).contains("serving HTTP")
    });
    node
}

/// A probe of `url`, every second, failing on the second failure in a row of a second each.
fn fast_probe(url: &str) -> [String; 4] {
    [
        format!("healthther.probe={url}"),
        "healthther.probe-interval=1s".into(),
        "healthther.probe-timeout=1s".into(),
        "healthther.probe-retries=2".into(),
    ]
}

fn http_probe() -> [String; 4] {
    fast_probe(&format!("http://:{PORT}/healthz"))
}

fn refs(labels: &[String]) -> Vec<&str> {
    labels.iter().map(String::as_str).collect()
}

fn logs(node: &Node) -> String {
    let out = docker(&["logs", &node.name]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How many requests (or bare connections, for TCP) the node has had.
fn probed(node: &Node) -> usize {
    logs(node)
        .lines()
        .filter(|l| l.starts_with("fixture: request") || l.contains("without a request"))
        .count()
}

fn mode(node: &Node, mode: &str) {
    docker_ok(&["exec", &node.name, "/fixture", "http-mode", mode]);
}

/// The daemon's audit records about `node`.
fn about<'a>(audit: &'a [Value], event: &str, node: &Node) -> Vec<&'a Value> {
    events(audit, event)
        .into_iter()
        .filter(|r| r["container"] == node.name.as_str())
        .collect()
}

/// Waits until `node` has been probed `n` more times.
fn wait_probed(node: &Node, n: usize) {
    let base = probed(node);
    wait_until(&format!("{n} more probes of {}", node.name), || {
        probed(node) >= base + n
    });
}

/// Makes `node` fail its probe as `how`, waits for the restart, and returns its action record;
/// a restart cures it, and it is not restarted again.
fn restarted_for(node: &Node, daemon: &Daemon, how: &str) -> Value {
    wait_probed(node, 2);
    let before = node.started_at();
    mode(node, how);
    node.wait_restarted_since(&before);
    let audit = daemon.wait_audit(1);
    let actions = about(&audit, "action", node);
    assert_eq!(actions.len(), 1, "{audit:?}");
    let action = actions[0].clone();
    // Cured: probed well after the restart, and left running.
    wait_probed(node, 3);
    let audit = daemon.audit();
    assert_eq!(about(&audit, "action", node).len(), 1, "{audit:?}");
    action
}

#[test]
fn a_hung_http_server_is_restarted_by_its_probe() {
    let node = http_node("hang", &refs(&http_probe()));
    let daemon = Daemon::watching(&auto_env(&[&node.name]));
    let action = restarted_for(&node, &daemon, "hang");
    assert_eq!(action["decision"], "restart", "{action}");
    assert_eq!(action["cause"], "probe", "{action}");
    let error = action["state"]["probe_error"].as_str().unwrap_or_default();
    assert!(error.contains("no answer within 1s"), "{action}");
}

#[test]
fn an_http_500_is_restarted_by_its_probe() {
    let node = http_node("h500", &refs(&http_probe()));
    let daemon = Daemon::watching(&auto_env(&[&node.name]));
    let action = restarted_for(&node, &daemon, "500");
    assert_eq!(action["cause"], "probe", "{action}");
    let error = action["state"]["probe_error"].as_str().unwrap_or_default();
    assert!(error.contains("500"), "{action}");
}

#[test]
fn a_closed_listening_socket_is_restarted_by_a_tcp_probe() {
    let node = http_node("tcp", &refs(&fast_probe(&format!("tcp://:{PORT}"))));
    let daemon = Daemon::watching(&auto_env(&[&node.name]));
    let action = restarted_for(&node, &daemon, "close-listener");
    assert_eq!(action["cause"], "probe", "{action}");
    let error = action["state"]["probe_error"].as_str().unwrap_or_default();
    assert!(error.contains("refused"), "{action}");
}

#[test]
fn a_healthy_http_server_is_never_restarted_and_its_probe_shows_up() {
    let node = http_node("well", &refs(&http_probe()));
    let daemon = Daemon::watching(&auto_env(&[&node.name]));
    let before = node.started_at();
    // A minute of probes, one a second.
    wait_probed(&node, 2);
    std::thread::sleep(Duration::from_secs(60));
    assert!(probed(&node) >= 30, "probed {} times", probed(&node));
    assert_eq!(node.started_at(), before, "restarted");
    let audit = daemon.audit();
    assert!(about(&audit, "action", &node).is_empty(), "{audit:?}");

    let (code, out, err) = client(daemon.dir.path(), &["status", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Value = serde_json::from_str(&out).expect("status --json is JSON");
    let probe = &rows[0]["containers"][0]["probe"];
    assert_eq!(probe["up"], true, "{out}");
    assert_eq!(probe["failing"], false, "{out}");
    let (code, text, err) = client(daemon.dir.path(), &["status"]);
    assert_eq!(code, Some(0), "{err}");
    let shown = format!("probe http://:{PORT}/healthz every 1s: up (");
    assert!(text.contains(&shown), "{text}");
}

#[test]
fn a_container_that_is_no_target_is_never_probed() {
    let target = http_node("tgt", &refs(&http_probe()));
    let bystander = http_node("bystander", &refs(&http_probe()));
    mode(&bystander, "hang");
    let before = bystander.started_at();
    let daemon = Daemon::watching(&auto_env(&[&target.name]));
    // The target's probes show the daemon probing; the bystander's none.
    wait_probed(&target, 5);
    assert_eq!(probed(&bystander), 0, "{}", logs(&bystander));
    assert_eq!(bystander.started_at(), before);
    let audit = daemon.audit();
    assert!(about(&audit, "action", &bystander).is_empty(), "{audit:?}");
}

#[test]
fn manual_mode_asks_before_restarting_a_probe_failure() {
    let node = http_node("ask", &refs(&http_probe()));
    let daemon = Daemon::watching(&manual_env(&[&node.name]));
    wait_probed(&node, 2);
    let before = node.started_at();
    mode(&node, "500");
    let mut pending = String::new();
    wait_until("the prompt", || {
        pending = client(daemon.dir.path(), &["pending"]).1;
        pending.contains(&node.name)
    });
    assert!(pending.contains("probe"), "{pending}");
    // Not before the answer: failures go on, the node runs as it was.
    wait_probed(&node, 3);
    assert_eq!(node.started_at(), before, "restarted before the answer");

    let (code, _, err) = client(daemon.dir.path(), &["answer", &node.name, "yes"]);
    assert_eq!(code, Some(0), "{err}");
    node.wait_restarted_since(&before);
    wait_until("the action record", || {
        !about(&daemon.audit(), "action", &node).is_empty()
    });
    let audit = daemon.audit();
    let action = about(&audit, "action", &node)[0];
    assert_eq!(action["cause"], "probe", "{action}");
    assert!(
        action["by"]
            .as_str()
            .is_some_and(|b| b.starts_with("operator")),
        "{action}"
    );
}

#[test]
fn observe_mode_only_records_a_probe_failure() {
    let node = http_node("observe", &refs(&http_probe()));
    let env = auto_env(&[&node.name]).replace("MODE=auto", "MODE=observe");
    let daemon = Daemon::watching(&env);
    wait_probed(&node, 2);
    let before = node.started_at();
    mode(&node, "hang");
    wait_until("the observed record", || {
        !about(&daemon.audit(), "observed", &node).is_empty()
    });
    // A few more failed probes: still only observed.
    wait_probed(&node, 3);
    assert_eq!(node.started_at(), before, "restarted in observe mode");
    let audit = daemon.audit();
    assert!(about(&audit, "action", &node).is_empty(), "{audit:?}");
    let observed = about(&audit, "observed", &node);
    assert_eq!(observed[0]["decision"], "restart", "{observed:?}");
}

#[test]
fn a_bad_probe_label_is_said_once_and_the_container_left_alone() {
    bad_label_said_once("badlabel", "ftp://:21");
}

#[test]
fn a_probe_path_no_request_may_carry_is_a_bad_label_said_once() {
    // Taken once, every probe failed to be built ("invalid uri character"): restarted in a loop.
    bad_label_said_once("badpath", &format!("http://:{PORT}/a<b"));
}

fn bad_label_said_once(label: &str, value: &str) {
    let node = http_node(label, &[&format!("healthther.probe={value}")]);
    let env = format!(
        "{}RUST_LOG=info,healthther=debug\n",
        auto_env(&[&node.name])
    );
    let daemon = Daemon::watching(&env);
    let before = node.started_at();
    daemon.wait_passes(6);
    let log = daemon.human_log();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("not understood") && l.contains("healthther.probe"))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}\n{log}");
    let quoted = format!("{value:?}");
    for part in [node.name.as_str(), &quoted, "runs without a probe"] {
        assert!(said[0].contains(part), "{part} not in {}", said[0]);
    }
    assert_eq!(probed(&node), 0, "probed: {}", logs(&node));
    assert_eq!(node.started_at(), before);
    let audit = daemon.audit();
    assert!(
        audit.iter().all(|r| r["container"] != node.name.as_str()),
        "{audit:?}"
    );
}

#[test]
fn a_probe_host_that_does_not_resolve_from_the_daemon_counts_nothing_against_it() {
    // Like a compose service's name with the daemon on the host: it resolves nowhere here.
    let host = name("nowhere");
    let labels = [
        format!("healthther.probe=http://{host}:{PORT}/healthz"),
        "healthther.probe-interval=1s".into(),
        // Room for a resolver that is slow to say no: a timeout would count.
        "healthther.probe-timeout=5s".into(),
        "healthther.probe-retries=2".into(),
    ];
    let node = http_node("nores", &refs(&labels));
    let daemon = Daemon::watching(&auto_env(&[&node.name]));
    let before = node.started_at();
    wait_until("the probe to be said not run", || {
        daemon.human_log().contains("not probing")
    });
    // Two failures in a row would have restarted it within three seconds.
    std::thread::sleep(Duration::from_secs(8));
    let log = daemon.human_log();
    let said: Vec<&str> = log.lines().filter(|l| l.contains("not probing")).collect();
    assert_eq!(said.len(), 1, "{said:?}\n{log}");
    for part in [
        node.name.as_str(),
        &format!("cannot resolve {host}"),
        "leave the host empty",
    ] {
        assert!(said[0].contains(part), "{part} not in {}", said[0]);
    }
    assert_eq!(node.started_at(), before, "restarted");
    let audit = daemon.audit();
    assert!(about(&audit, "action", &node).is_empty(), "{audit:?}");
    let (code, text, err) = client(daemon.dir.path(), &["status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("not probed: cannot resolve"), "{text}");
    assert!(!text.contains("FAILING"), "{text}");
}

#[test]
fn on_the_host_another_containers_shared_memory_is_not_taken_for_our_own_container() {
    // A running container with --ipc=shareable (the engine's default before 20.10) has its
    // /dev/shm mounted on the host under its own directory, in the host's mount table.
    let shareable = Node { name: name("shm") };
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &shareable.name,
        "--ipc=shareable",
        // On no network: taken for ours, it would leave us sharing none with the node.
        "--network=none",
        "--no-healthcheck",
        image(),
    ]);
    let node = http_node("host", &refs(&http_probe()));
    let daemon = Daemon::watching(&auto_env(&[&node.name]));
    wait_probed(&node, 3);
    let output = daemon.output();
    assert!(
        !output.contains("shares no network") && !output.contains("runs in compose project"),
        "{output}"
    );
}
