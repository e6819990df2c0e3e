//! Dependents (issue 14): containers that share a target's network namespace
//! (`--network container:P`, compose's `network_mode: service:vpn`). They keep running when
//! their parent restarts but lose its network; once the parent is recreated (a new id) they
//! cannot start at all. Each test proves connectivity from the dependent itself
//! (`/fixture connect PORT` to the port its parent serves on 127.0.0.1), not only a restart.
//!
//! What Engine 20.10 (API 1.41) does, found by hand:
//! - `HostConfig.NetworkMode` is always `container:<full id>`, also when created with a name.
//! - After `docker restart P` (or a kill and a start) a running dependent stays running, its
//!   StartedAt unchanged, in a namespace that is no longer P's: connect is refused. Restarting
//!   it joins P's new namespace again.
//! - Starting a dependent while P is not running: `cannot join network of a non running
//!   container: <P id>`. After P is removed and a new P made under the same name:
//!   `No such container: <old P id>`, whether it was created with P's name or id.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// The port every parent serves, in its own namespace (no host port: any test may use it).
const PORT: &str = "8080";
/// The daemon's own debug lines, for `wait_passes`, without the HTTP client's.
const DEBUG: &str = "RUST_LOG=info,healthther=debug\n";

// ---------------------------------------------------------------------------------------------
// Helpers

/// A parent: the fixture serving [`PORT`], with the image's HEALTHCHECK.
fn parent(label: &str) -> Node {
    Node::start_with(&unique(label), &[], &["serve", PORT])
}

/// A dependent sharing `parent`'s network namespace, running `command`.
fn dependent(parent: &Node, label: &str, options: &[&str], command: &[&str]) -> Node {
    let network = format!("container:{}", parent.name);
    let mut opts = vec!["--network", network.as_str()];
    opts.extend_from_slice(options);
    Node::start_with(&unique(label), &opts, command)
}

/// Whether `container` reaches 127.0.0.1:[`PORT`] from inside: it shares its parent's live
/// network namespace.
fn connects(container: &str) -> bool {
    docker(&["exec", container, "/fixture", "connect", PORT])
        .status
        .success()
}

fn wait_connects(container: &str) {
    wait_until(&format!("{container} to reach its parent's port"), || {
        connects(container)
    });
}

/// The daemon's audit and console, for failure messages.
fn context(daemon: &Daemon) -> String {
    format!(
        "audit: {:#?}\nconsole:\n{}",
        daemon.audit(),
        daemon.output()
    )
}

/// Waits for the restart of `dep` the daemon makes because its parent `parent` started again,
/// and returns its record.
fn wait_parent_restarted_record(daemon: &Daemon, dep: &str, parent: &str) -> Value {
    let found = |d: &Daemon| {
        records_for(d, "action", dep).into_iter().find(|r| {
            r["decision"] == "restart"
                && r["cause"] == "parent_restarted"
                && r["by"].as_str().is_some_and(|b| b.contains(parent))
        })
    };
    let start = Instant::now();
    loop {
        if let Some(r) = found(daemon) {
            return r;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no parent_restarted action for {dep} by {parent}: {}",
            context(daemon)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `node` runs and is healthy again after having been started at `before`.
fn wait_revived_healthy(node: &Node, before: &str) {
    node.wait_restarted_since(before);
    wait_until(&format!("{} to be healthy", node.name), || {
        node.health() == "healthy"
    });
}

// ---------------------------------------------------------------------------------------------
// Plain docker

/// P killed and revived in auto mode: the dependent D (a target) is restarted once P runs and
/// is healthy, and reaches P's port again.
#[test]
fn a_revived_parent_brings_its_dependents_network_back() {
    let p = parent("vpn");
    let d = dependent(&p, "torrent", &[], &[]);
    wait_connects(&d.name);
    let daemon = Daemon::watching(&format!("{}{DEBUG}", auto_env(&[&p.name, &d.name])));
    let (p_before, d_before) = (p.started_at(), d.started_at());

    p.kill();
    wait_revived_healthy(&p, &p_before);
    let record = wait_parent_restarted_record(&daemon, &d.name, &p.name);
    d.wait_restarted_since(&d_before);
    wait_connects(&d.name);
    assert_ne!(d.started_at(), d_before, "{record}");
    assert!(
        records_for(&daemon, "action", &p.name).len() == 1,
        "P revived once: {}",
        context(&daemon)
    );
}

/// P restarted by someone else (`docker restart`): D is restarted all the same.
#[test]
fn a_parent_restarted_by_docker_restart_brings_its_dependents_network_back() {
    let p = parent("vpn");
    let d = dependent(&p, "torrent", &[], &[]);
    wait_connects(&d.name);
    let daemon = Daemon::watching(&auto_env(&[&p.name, &d.name]));
    let d_before = d.started_at();

    docker_ok(&["restart", "-t", "2", &p.name]);
    // The engine leaves D running in a namespace that is no longer P's.
    wait_parent_restarted_record(&daemon, &d.name, &p.name);
    d.wait_restarted_since(&d_before);
    wait_connects(&d.name);
    assert!(
        records_for(&daemon, "action", &p.name).is_empty(),
        "P was restarted by someone else, not by healthther: {}",
        context(&daemon)
    );
}

/// D is not a target: it is reported once (console and audit) and never touched, even after a
/// second kill of P.
#[test]
fn a_dependent_that_is_not_a_target_is_reported_once_and_untouched() {
    let p = parent("vpn");
    let d = dependent(&p, "outsider", &[], &[]);
    wait_connects(&d.name);
    let daemon = Daemon::watching(&format!("{}{DEBUG}", auto_env(&[&p.name])));
    let d_before = d.started_at();

    for round in 0..2 {
        let p_before = p.started_at();
        p.kill();
        wait_revived_healthy(&p, &p_before);
        wait_until("the dependent to be reported", || {
            !records_for(&daemon, "skipped", &d.name).is_empty()
        });
        // Give the daemon every chance to act (wrongly) before looking.
        daemon.wait_passes(4);
        assert_eq!(
            d.started_at(),
            d_before,
            "round {round}: {}",
            context(&daemon)
        );
        assert!(
            !connects(&d.name),
            "untouched, D stays cut off from P's new namespace"
        );
    }
    let out = daemon.output();
    assert!(out.contains(&d.name), "{out}");
    assert!(out.contains("lost its network"), "{out}");
    assert!(out.contains("add it to HEALTH_TARGETS"), "{out}");
    let skipped = records_for(&daemon, "skipped", &d.name);
    assert_eq!(skipped.len(), 1, "reported once: {}", context(&daemon));
    assert_eq!(skipped[0]["result"], "dependent_not_a_target");
    assert!(records_for(&daemon, "action", &d.name).is_empty());
}

/// A crash-looping dependent (a target) is revived and backed off on its own: its parent is
/// never restarted because of it.
#[test]
fn a_crash_looping_dependent_never_restarts_its_parent() {
    let p = parent("vpn");
    let d = dependent(&p, "crashy", &[], &["exit-after", "300"]);
    let daemon = Daemon::watching(&format!("{}{DEBUG}", auto_env(&[&p.name, &d.name])));
    let p_before = p.started_at();

    wait_until("the daemon to revive the dependent", || {
        !records_for(&daemon, "action", &d.name).is_empty()
    });
    // A window, not a timing assertion: whatever D does in it, P stays as it was.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        assert_eq!(
            p.started_at(),
            p_before,
            "P restarted: {}",
            context(&daemon)
        );
        assert_eq!(p.status(), "running");
        std::thread::sleep(Duration::from_millis(500));
    }
    daemon.wait_passes(2);
    assert!(
        records_for(&daemon, "action", &p.name).is_empty(),
        "no action on P: {}",
        context(&daemon)
    );
}

/// Manual mode: the prompt for P names its dependent D; one yes brings P back and then D, with
/// no second prompt.
#[test]
fn manual_mode_asks_once_for_the_parent_and_names_its_dependents() {
    let p = parent("vpn");
    let d = dependent(&p, "torrent", &[], &[]);
    wait_connects(&d.name);
    // stdin is /dev/null: the prompt is on stdout, answered through the control socket.
    let daemon = Daemon::watching(&manual_env(&[&p.name, &d.name]));
    daemon.wait_log("healthther answer TARGET");
    let (p_before, d_before) = (p.started_at(), d.started_at());

    p.kill();
    wait_until("the prompt for P", || {
        !records_for(&daemon, "prompt", &p.name).is_empty()
    });
    let out = daemon.output();
    let asked = &out[out.find(&format!("{} exited", p.name)).unwrap_or(0)..];
    assert!(asked.contains(&d.name), "the prompt names D: {out}");

    let (code, _, err) = client(daemon.dir.path(), &["answer", &p.name, "yes"]);
    assert_eq!(code, Some(0), "{err}");
    wait_revived_healthy(&p, &p_before);
    let record = wait_parent_restarted_record(&daemon, &d.name, &p.name);
    assert!(
        record["by"]
            .as_str()
            .is_some_and(|b| b.contains("operator")),
        "{record}"
    );
    d.wait_restarted_since(&d_before);
    wait_connects(&d.name);
    assert_eq!(
        events(&daemon.audit(), "prompt").len(),
        1,
        "one prompt, for P: {}",
        context(&daemon)
    );
}

/// `status --json` lists a parent's dependents on its container row.
#[test]
fn status_json_lists_a_parents_dependents() {
    let p = parent("vpn");
    let d = dependent(&p, "torrent", &[], &[]);
    let daemon = Daemon::watching(&auto_env(&[&p.name, &d.name]));
    let (code, out, err) = client(daemon.dir.path(), &["status", "--json"]);
    assert_eq!(code, Some(0), "status failed: {err}");
    let rows: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    let row = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["target"] == p.name.as_str()))
        .unwrap_or_else(|| panic!("no row for {}: {out}", p.name));
    assert_eq!(
        row["containers"][0]["dependents"],
        serde_json::json!([d.name]),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Engine::recreate, called through the library

/// An anonymous volume, removed on drop (after the container that used it).
struct Volume(String);

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = docker(&["volume", "rm", "-f", &self.0]);
    }
}

/// A dependent whose parent was replaced (removed, a new one under the same name) is recreated
/// by `Engine::recreate` with its configuration, joined to the new parent.
#[test]
fn engine_recreate_joins_a_dependent_to_its_new_parent_with_its_configuration() {
    let p = parent("vpn");
    let bind_dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(bind_dir.path().join("kept"), "yes").expect("write bind file");
    let bind = format!("{}:/bind:ro", bind_dir.path().display());
    let d = dependent(
        &p,
        "torrent",
        &[
            "-e",
            "FOO=bar",
            "-l",
            "app=torrent",
            "-l",
            "healthther.recreate=true",
            "--restart",
            "on-failure:3",
            "-v",
            &bind,
            "-v",
            "/data",
        ],
        &["serve", "9090"],
    );
    let old_id = d.inspect("{{.Id}}");
    let anon =
        d.inspect(r#"{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}"#);
    let _volume = Volume(anon.clone());
    let before = d.inspect("{{json .Config.Labels}} {{json .Config.Env}} {{json .Config.Cmd}} {{json .HostConfig.RestartPolicy}}");

    // The parent replaced: D holds an id that is gone.
    docker_ok(&["rm", "-f", &p.name]);
    let p2 = parent_named(&p.name);
    let new_parent = p2.inspect("{{.Id}}");
    assert!(!connects(&d.name));

    let new_id =
        recreate_by_library(&d, &new_parent).unwrap_or_else(|e| panic!("recreate failed: {e}"));

    assert_eq!(d.inspect("{{.Id}}"), new_id, "same name, new container");
    assert_ne!(new_id, old_id);
    assert_eq!(d.status(), "running");
    assert_eq!(
        d.inspect("{{.HostConfig.NetworkMode}}"),
        format!("container:{new_parent}")
    );
    assert_eq!(
        d.inspect("{{json .Config.Labels}} {{json .Config.Env}} {{json .Config.Cmd}} {{json .HostConfig.RestartPolicy}}"),
        before
    );
    assert_eq!(
        docker_ok(&["exec", &d.name, "/fixture", "connect", PORT]),
        "connected to 127.0.0.1:8080"
    );
    let mounts = d.inspect(
        "{{range .Mounts}}{{if .Name}}{{.Name}}{{else}}{{.Source}}{{end}}:{{.Destination}} {{end}}",
    );
    assert!(
        mounts.contains(&format!("{}:/bind", bind_dir.path().display())),
        "{mounts}"
    );
    assert!(
        mounts.contains(&format!("{anon}:/data")),
        "the anonymous volume's data kept: {mounts}"
    );
    // The old container is gone, under either name.
    assert!(!docker(&["container", "inspect", &old_id]).status.success());
    drop(d);
}

fn parent_named(name: &str) -> Node {
    Node::start_with(name, &[], &["serve", PORT])
}

// ---------------------------------------------------------------------------------------------
// Compose

/// A compose project: `vpn` serving [`PORT`] and `torrent` with `network_mode: service:vpn`,
/// both with unique service names; taken down on drop.
struct Pair {
    compose: Compose,
    program: PathBuf,
    name: String,
    vpn: String,
    torrent: String,
    dir: tempfile::TempDir,
}

impl Pair {
    /// Writes the compose file and brings the project up; `None` when `compose` is missing.
    fn up(compose: Compose, recreate_label: bool) -> Option<Pair> {
        let program = compose.program()?;
        let image = fixture_image();
        let dir = tempfile::tempdir().expect("temp dir");
        let (vpn, torrent) = (unique("vpn"), unique("torrent"));
        let label = if recreate_label {
            "    labels:\n      healthther.recreate: \"true\"\n"
        } else {
            ""
        };
        let yml = format!(
            "services:\n  {vpn}:\n    image: {image}\n    command: [\"serve\", \"{PORT}\"]\n    \
             stop_grace_period: 2s\n  {torrent}:\n    image: {image}\n    command: [\"run\"]\n    \
             network_mode: \"service:{vpn}\"\n    stop_grace_period: 2s\n{label}"
        );
        std::fs::write(dir.path().join("docker-compose.yml"), yml).expect("write compose file");
        let pair = Pair {
            compose,
            program,
            name: unique("proj"),
            vpn,
            torrent,
            dir,
        };
        pair.run_ok(&["up", "-d"]);
        wait_connects(&pair.container(&pair.torrent));
        Some(pair)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.compose
            .command()
            .expect("found when the project was made")
            .arg("-p")
            .arg(&self.name)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.program))
    }

    fn run_ok(&self, args: &[&str]) {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "compose {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The name compose gives a service's first container.
    fn container(&self, service: &str) -> String {
        match self.compose {
            Compose::V1 => format!("{}_{}_1", self.name, service),
            Compose::V2 => format!("{}-{}-1", self.name, service),
        }
    }

    fn id(&self, service: &str) -> String {
        docker_ok(&["inspect", "-f", "{{.Id}}", &self.container(service)])
    }

    fn inspect(&self, service: &str, format: &str) -> String {
        docker_ok(&["inspect", "-f", format, &self.container(service)])
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "1"]);
    }
}

/// `docker kill` of a compose parent: the daemon revives it, then restarts the dependent, which
/// reaches the parent's port again.
fn compose_kill(compose: Compose) {
    let Some(pair) = Pair::up(compose, false) else {
        return;
    };
    let (vpn, torrent) = (pair.container(&pair.vpn), pair.container(&pair.torrent));
    let daemon = Daemon::watching(&auto_env(&[&pair.vpn, &pair.torrent]));
    let (vpn_before, torrent_before) = (
        pair.inspect(&pair.vpn, "{{.State.StartedAt}}"),
        pair.inspect(&pair.torrent, "{{.State.StartedAt}}"),
    );
    docker_ok(&["kill", &vpn]);
    wait_until("vpn revived", || {
        pair.inspect(&pair.vpn, "{{.State.Status}} {{.State.StartedAt}}")
            != format!("running {vpn_before}")
            && pair.inspect(&pair.vpn, "{{.State.Status}}") == "running"
    });
    wait_parent_restarted_record(&daemon, &torrent, &vpn);
    wait_until("torrent restarted", || {
        pair.inspect(&pair.torrent, "{{.State.StartedAt}}") != torrent_before
    });
    wait_connects(&torrent);
}

#[test]
fn compose_v1_a_killed_parent_brings_its_dependents_network_back() {
    compose_kill(Compose::V1);
}

#[test]
fn compose_v2_a_killed_parent_brings_its_dependents_network_back() {
    compose_kill(Compose::V2);
}

/// The parent alone recreated by compose (`up -d --force-recreate --no-deps vpn`: compose v1
/// 1.29 then leaves torrent running, pointing at the old vpn's id, and a later `up -d` calls it
/// "up-to-date"). With the label the daemon recreates torrent joined to the new vpn; without it
/// the daemon reports the compose command that fixes it and touches nothing.
fn compose_recreated_parent(compose: Compose, labelled: bool) {
    let Some(pair) = Pair::up(compose, labelled) else {
        return;
    };
    let torrent = pair.container(&pair.torrent);
    let daemon = Daemon::watching(&format!("{}{DEBUG}", auto_env(&[&pair.vpn, &pair.torrent])));
    let (old_vpn, old_torrent) = (pair.id(&pair.vpn), pair.id(&pair.torrent));

    let up = pair.run(&["up", "-d", "--force-recreate", "--no-deps", &pair.vpn]);
    assert!(
        up.status.success(),
        "compose's recreate failed: {}\n{}",
        String::from_utf8_lossy(&up.stderr),
        context(&daemon)
    );
    let new_vpn = pair.id(&pair.vpn);
    assert_ne!(new_vpn, old_vpn);
    if labelled {
        wait_until("torrent recreated", || {
            records_for(&daemon, "action", &torrent)
                .iter()
                .any(|r| r["decision"] == "recreate" && r["result"] == "running")
        });
        wait_until("torrent under its name with a new id", || {
            docker(&["inspect", "-f", "{{.Id}}", &torrent])
                .status
                .success()
                && pair.id(&pair.torrent) != old_torrent
        });
        assert_eq!(
            pair.inspect(&pair.torrent, "{{.HostConfig.NetworkMode}}"),
            format!("container:{new_vpn}")
        );
        wait_connects(&torrent);
        // The console names the same action as the audit record.
        let out = daemon.output();
        let reviving: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("reviving") && l.contains(&torrent))
            .collect();
        assert!(
            !reviving.is_empty() && reviving.iter().all(|l| l.contains("decision=recreate")),
            "the console's reviving line for {torrent} does not say decision=recreate: \
             {reviving:?}\n{out}"
        );
    } else {
        wait_until("torrent reported as needing a recreate", || {
            records_for(&daemon, "skipped", &torrent)
                .iter()
                .any(|r| r["result"] == "needs_recreate")
        });
        // The console may say it a moment after the audit file.
        daemon.wait_log("--force-recreate --no-deps");
        let out = daemon.output();
        let line = out
            .lines()
            .find(|l| l.contains("up -d") && l.contains(&pair.torrent))
            .unwrap_or_else(|| panic!("no `up -d {}` in the output:\n{out}", pair.torrent));
        let tool = match compose {
            Compose::V1 => "docker-compose",
            Compose::V2 => "docker compose",
        };
        assert!(line.contains(tool), "{line}");
        daemon.wait_passes(4);
        assert_eq!(pair.id(&pair.torrent), old_torrent, "torrent untouched");
        assert!(
            records_for(&daemon, "action", &torrent).is_empty(),
            "{}",
            context(&daemon)
        );
    }
}

#[test]
fn compose_v1_a_recreated_parent_gets_its_labelled_dependent_recreated() {
    compose_recreated_parent(Compose::V1, true);
}

#[test]
fn compose_v2_a_recreated_parent_gets_its_labelled_dependent_recreated() {
    compose_recreated_parent(Compose::V2, true);
}

#[test]
fn compose_v1_an_unlabelled_dependent_of_a_recreated_parent_is_reported() {
    compose_recreated_parent(Compose::V1, false);
}

#[test]
fn compose_v2_an_unlabelled_dependent_of_a_recreated_parent_is_reported() {
    compose_recreated_parent(Compose::V2, false);
}

// ---------------------------------------------------------------------------------------------
// Recreation (issue 20): what it keeps, how it fails, and a crash in the middle of it

/// Removes, when dropped, whatever may be left under `name` (a temporary name).
struct Leftover(String);

impl Drop for Leftover {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

/// An image built FROM the fixture, removed when dropped (after the containers using it).
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

/// Builds an image from the fixture with `label` under `tag`; returns its id.
fn fixture_variant(tag: &str, label: &str) -> Image {
    let dockerfile = format!("FROM {}\nLABEL hr.variant={label}\n", fixture_image());
    build_image(tag, &dockerfile, &[]);
    Image(docker_ok(&["image", "inspect", "-f", "{{.Id}}", tag]))
}

/// `Engine::recreate_container` of `d` joined to `new_parent`, through the library.
fn recreate_by_library(
    d: &Node,
    new_parent: &str,
) -> Result<String, healthther::engine::EngineError> {
    let engine_ref = healthther::targets::ContainerRef {
        id: d.inspect("{{.Id}}"),
        name: d.name.clone(),
        project: None,
        service: None,
        labels: BTreeMap::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let host = healthther::config::DockerHost::Unix(PathBuf::from(docker_socket()));
        let engine = healthther::engine::Engine::connect(&host, Duration::from_secs(30))
            .await
            .expect("connect to the engine");
        engine
            .recreate_container(&engine_ref, new_parent, Duration::from_secs(10))
            .await
    })
}

/// Replaces the parent `p`: removed, and a new one under its name. Returns the new one's id.
fn replace_parent(p: &Node) -> String {
    docker_ok(&["rm", "-f", &p.name]);
    let p2 = parent_named(&p.name);
    let id = p2.inspect("{{.Id}}");
    // `p` removes it when the test ends.
    std::mem::forget(p2);
    id
}

/// The image a container was created from is the one it runs again, by id: not the image its
/// tag names by now, and also once the tag is gone.
#[test]
fn a_recreated_dependent_runs_the_image_it_ran_whatever_its_tag_names_now() {
    let tag = format!("{}:t", unique("hrimg"));
    let first = fixture_variant(&tag, "first");
    let p = parent("vpn");
    let d = Node {
        name: unique("torrent"),
    };
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &d.name,
        "--network",
        &format!("container:{}", p.name),
        "-l",
        "healthther.recreate=true",
        &tag,
    ]);
    assert_eq!(d.inspect("{{.Image}}"), first.0);
    let second = fixture_variant(&tag, "second");
    assert_ne!(first.0, second.0, "the tag moved");

    let new_parent = replace_parent(&p);
    recreate_by_library(&d, &new_parent).unwrap_or_else(|e| panic!("recreate failed: {e}"));
    assert_eq!(
        d.inspect("{{.Image}}"),
        first.0,
        "the image it ran, not the tag's"
    );
    assert_eq!(
        d.inspect(r#"{{index .Config.Labels "hr.variant"}}"#),
        "first"
    );
    assert_eq!(d.status(), "running");

    // The tag gone (the second image was unused): recreating again works all the same.
    docker_ok(&["rmi", &tag]);
    let newer_parent = replace_parent(&p);
    recreate_by_library(&d, &newer_parent).unwrap_or_else(|e| panic!("recreate failed: {e}"));
    assert_eq!(d.inspect("{{.Image}}"), first.0);
    assert_eq!(d.status(), "running");
    assert_eq!(
        d.inspect("{{.HostConfig.NetworkMode}}"),
        format!("container:{newer_parent}")
    );
    wait_connects(&d.name);
    drop(d);
}

/// An anonymous volume stays anonymous: `docker rm -v` of the recreated container removes it
/// (and a named one stays), as it would have of the old one.
#[test]
fn a_recreated_dependents_anonymous_volume_goes_with_docker_rm_v() {
    let p = parent("vpn");
    let named = unique("hrvol");
    let _named = Volume(named.clone());
    let d = dependent(
        &p,
        "torrent",
        &[
            "-l",
            "healthther.recreate=true",
            "-v",
            "/data",
            "-v",
            &format!("{named}:/named"),
        ],
        &[],
    );
    let anon =
        d.inspect(r#"{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}"#);
    let _anon = Volume(anon.clone());
    let new_parent = replace_parent(&p);
    recreate_by_library(&d, &new_parent).unwrap_or_else(|e| panic!("recreate failed: {e}"));
    let mounts = d.inspect("{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}");
    assert!(mounts.contains(&format!("{anon}:/data")), "{mounts}");
    assert!(mounts.contains(&format!("{named}:/named")), "{mounts}");

    docker_ok(&["rm", "-f", "-v", &d.name]);
    assert!(
        !docker(&["volume", "inspect", &anon]).status.success(),
        "the anonymous volume outlived `docker rm -v`"
    );
    assert!(
        docker(&["volume", "inspect", &named]).status.success(),
        "the named volume is kept"
    );
}

/// A dependent that cannot be recreated (`--rm`: the engine would remove it as it stops) is
/// refused as a failure: backed off and quarantined, not retried on every pass as if the
/// engine were away.
#[test]
fn a_dependent_that_cannot_be_recreated_is_backed_off_and_quarantined() {
    let p = parent("vpn");
    let d = dependent(
        &p,
        "torrent",
        &["--rm", "-l", "healthther.recreate=true"],
        &[],
    );
    let env = format!(
        "{}HEALTH_BACKOFF_INITIAL=300ms\nHEALTH_BACKOFF_MAX=1s\nHEALTH_QUARANTINE_AFTER=2\n",
        auto_env(&[&d.name])
    );
    let daemon = Daemon::watching(&env);
    replace_parent(&p);
    let quarantined = || {
        let (code, out, _) = client(daemon.dir.path(), &["status", "--json"]);
        code == Some(0)
            && serde_json::from_str::<Value>(&out).is_ok_and(|rows| {
                rows.as_array().is_some_and(|rows| {
                    rows.iter().any(|r| {
                        r["target"] == d.name.as_str() && r["containers"][0]["quarantined"] == true
                    })
                })
            })
    };
    let start = Instant::now();
    while !quarantined() {
        assert!(
            start.elapsed() < DEADLINE,
            "not quarantined: {}",
            context(&daemon)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let failed = records_for(&daemon, "action", &d.name);
    assert!(
        failed.iter().all(|r| r["decision"] == "recreate"
            && r["result"] == "failed"
            && r["error"].as_str().is_some_and(|e| e.contains("--rm"))),
        "{}",
        context(&daemon)
    );
    assert_eq!(d.status(), "running", "left as it was");
}

/// A recreation cut short after its create, made by hand as healthther makes it: `d`'s parent
/// replaced, and `d`'s replacement created under its temporary name, joined to `new_parent`.
struct CutShort {
    _parent: Node,
    d: Node,
    old_id: String,
    new_parent: String,
    temporary: String,
    _leftover: Leftover,
}

impl CutShort {
    fn made() -> CutShort {
        let p = parent("vpn");
        let d = dependent(&p, "torrent", &["-l", "healthther.recreate=true"], &[]);
        let old_id = d.inspect("{{.Id}}");
        let new_parent = replace_parent(&p);
        let temporary = healthther::recreate::temporary_name(&old_id, &d.name);
        let leftover = Leftover(temporary.clone());
        docker_ok(&[
            "create",
            "--name",
            &temporary,
            "--network",
            &format!("container:{new_parent}"),
            "--volumes-from",
            &old_id,
            "-l",
            "healthther.recreate=true",
            fixture_image(),
        ]);
        CutShort {
            _parent: p,
            d,
            old_id,
            new_parent,
            temporary,
            _leftover: leftover,
        }
    }
}

/// What a crash of healthther in the middle of a recreation leaves: the replacement created
/// under its temporary name, the old container still in its place (killed after the create;
/// made here by hand as healthther makes it). A healthther started afterwards finishes it.
#[test]
fn a_recreation_cut_short_after_the_create_is_finished_at_start_up() {
    let CutShort {
        _parent,
        d,
        old_id,
        new_parent,
        temporary,
        _leftover,
    } = CutShort::made();

    let daemon = Daemon::watching(&auto_env(&[&d.name]));
    wait_recreated_in_order(&daemon, &d, &old_id, &new_parent, &temporary);
    // What it did is in the audit file, as any action of its own.
    let done = records_for(&daemon, "action", &d.name);
    assert!(
        done.iter()
            .any(|r| r["decision"] == "recreate" && r["result"] == "running"),
        "{}",
        context(&daemon)
    );
}

/// The same leftover under `MODE=observe` (the operator's dry run) is left as it is; and a
/// container named and labelled like a replacement of a target whose parent is still there
/// (anyone can make one) never takes the target's place.
#[test]
fn a_recreation_cut_short_is_only_finished_where_auto_mode_would_act() {
    // Under observe.
    let CutShort {
        _parent,
        d,
        old_id,
        temporary,
        _leftover,
        ..
    } = CutShort::made();
    let env = format!(
        "HEALTH_TARGETS={}\nMODE=observe\nHEALTH_POLL_INTERVAL=500ms\n{DEBUG}",
        d.name
    );
    let daemon = Daemon::watching(&env);
    daemon.wait_passes(3);
    assert_eq!(d.inspect("{{.Id}}"), old_id, "{}", context(&daemon));
    assert!(docker(&["container", "inspect", &temporary])
        .status
        .success());
    drop(daemon);

    // A forged replacement of a healthy target, whose parent is there.
    let q = parent("vpn2");
    let e = dependent(&q, "torrent2", &["-l", "healthther.recreate=true"], &[]);
    let e_id = e.inspect("{{.Id}}");
    let forged = healthther::recreate::temporary_name(&e_id, &e.name);
    let _forged = Leftover(forged.clone());
    docker_ok(&[
        "create",
        "--name",
        &forged,
        "--volumes-from",
        &e_id,
        "-l",
        "healthther.recreate=true",
        fixture_image(),
        "exit-after",
        "999999",
        "7",
    ]);
    let daemon = Daemon::watching(&format!("{}{DEBUG}", auto_env(&[&e.name])));
    daemon.wait_passes(3);
    assert_eq!(e.inspect("{{.Id}}"), e_id, "{}", context(&daemon));
    assert_eq!(e.status(), "running");
    assert!(records_for(&daemon, "action", &e.name).is_empty());
}

/// Waits until `d` runs under its name, a container other than `old_id`, joined to
/// `new_parent`, with nothing left under `temporary` nor of `old_id`.
fn wait_recreated_in_order(
    daemon: &Daemon,
    d: &Node,
    old_id: &str,
    new_parent: &str,
    temporary: &str,
) {
    let start = Instant::now();
    loop {
        let now = docker(&[
            "inspect",
            "-f",
            "{{.Id}} {{.State.Status}} {{.HostConfig.NetworkMode}}",
            &d.name,
        ]);
        let now = String::from_utf8_lossy(&now.stdout).trim().to_string();
        let temp_left = docker(&["container", "inspect", temporary])
            .status
            .success();
        let old_left = docker(&["container", "inspect", old_id]).status.success();
        if !temp_left
            && !old_left
            && now.ends_with(&format!("running container:{new_parent}"))
            && !now.starts_with(old_id)
        {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "not recreated in order: {d:?} is {now:?}, {temporary} left: {temp_left}, \
             the old one left: {old_left}\n{}",
            context(daemon),
            d = d.name
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_connects(&d.name);
}

/// healthther killed (-9) while the engine holds the recreation's stop of the old container
/// (`/stop`) or start of the new one (`/start`): a healthther started afterwards finishes it,
/// whether the held call went through before it looked or not. The proxy forwards the held
/// call after `HOLD`, so the test waits that long before its last look.
fn a_recreation_killed_while_the_engine_holds(path: &'static str) {
    const HOLD: Duration = Duration::from_secs(6);
    let p = parent("vpn");
    let d = dependent(&p, "torrent", &["-l", "healthther.recreate=true"], &[]);
    let old_id = d.inspect("{{.Id}}");
    let temporary = healthther::recreate::temporary_name(&old_id, &d.name);
    let _leftover = Leftover(temporary.clone());
    let proxy = Proxy::in_temp_dir();
    proxy.set_faults(Faults {
        delay: vec![("POST", path, HOLD)],
        ..Faults::default()
    });
    let (mut cmd, workdir) = command(&auto_env(&[&d.name]));
    cmd.env("DOCKER_HOST", proxy.url());
    let mut first = Daemon::spawn(cmd, workdir);
    first.wait_log("watching");

    let new_parent = replace_parent(&p);
    // The new container is created, and the old one still runs (the stop held) or has
    // stopped (the start held).
    let old_state = if path == "/stop" { "running" } else { "exited" };
    wait_until(&format!("the recreation to reach {path}"), || {
        let new = docker(&["inspect", "-f", "{{.State.Status}}", &temporary]);
        let old = docker(&["inspect", "-f", "{{.State.Status}}", &old_id]);
        String::from_utf8_lossy(&new.stdout).trim() == "created"
            && String::from_utf8_lossy(&old.stdout).trim() == old_state
    });
    let held_at = Instant::now();
    first.signal("KILL");
    first.wait_exit(DEADLINE);

    let second = Daemon::watching(&auto_env(&[&d.name]));
    wait_recreated_in_order(&second, &d, &old_id, &new_parent, &temporary);
    // Whatever the held call did when it went through, the order stays.
    wait_until("the held call to have gone through", || {
        held_at.elapsed() > HOLD + Duration::from_secs(1)
    });
    wait_recreated_in_order(&second, &d, &old_id, &new_parent, &temporary);
}

#[test]
fn a_recreation_killed_at_its_stop_is_finished_at_start_up() {
    a_recreation_killed_while_the_engine_holds("/stop");
}

#[test]
fn a_recreation_killed_at_its_start_is_finished_at_start_up() {
    a_recreation_killed_while_the_engine_holds("/start");
}

/// Compose recreating the parent and its labelled dependent together, again and again, while
/// healthther may recreate the same dependent: compose's temporary name for its new container
/// (v2; v1's for the old one) must never be the one healthther uses, so every `up` succeeds and
/// one container of each service is left, in order.
fn compose_and_healthther_recreate_together(compose: Compose) {
    let Some(pair) = Pair::up(compose, true) else {
        return;
    };
    let daemon = Daemon::watching(&auto_env(&[&pair.vpn, &pair.torrent]));
    for round in 0..5 {
        let up = pair.run(&["up", "-d", "--force-recreate", &pair.vpn, &pair.torrent]);
        assert!(
            up.status.success(),
            "round {round}: compose's up failed: {}\n{}",
            String::from_utf8_lossy(&up.stderr),
            context(&daemon)
        );
    }
    let names = |service: &str| {
        let filter_project = format!("label=com.docker.compose.project={}", pair.name);
        let filter_service = format!("label=com.docker.compose.service={service}");
        docker_ok(&[
            "ps",
            "-a",
            "--filter",
            &filter_project,
            "--filter",
            &filter_service,
            "--format",
            "{{.Names}} {{.State}}",
        ])
    };
    let (vpn, torrent) = (pair.container(&pair.vpn), pair.container(&pair.torrent));
    let start = Instant::now();
    loop {
        let (v, t) = (names(&pair.vpn), names(&pair.torrent));
        let joined = docker(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", &torrent]);
        let joined = String::from_utf8_lossy(&joined.stdout).trim().to_string();
        if v == format!("{vpn} running")
            && t == format!("{torrent} running")
            && joined == format!("container:{}", pair.id(&pair.vpn))
        {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "not one of each in order: vpn {v:?}, torrent {t:?} ({joined})\n{}",
            context(&daemon)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_connects(&torrent);
}

#[test]
fn compose_v1_and_healthther_recreating_together_never_collide() {
    compose_and_healthther_recreate_together(Compose::V1);
}

#[test]
fn compose_v2_and_healthther_recreating_together_never_collide() {
    compose_and_healthther_recreate_together(Compose::V2);
}

/// The moment the two meet: healthther has created the replacement of a dependent under its
/// temporary name (done here by hand) when compose v2 recreates the same service. Compose
/// creates its new container as `<12 hex of the old id>_<name>` and renames it after;
/// healthther's name must not be that one, or compose's `up` fails.
#[test]
fn compose_v2_recreates_a_dependent_healthther_is_recreating() {
    let Some(pair) = Pair::up(Compose::V2, true) else {
        return;
    };
    let torrent = pair.container(&pair.torrent);
    let old_id = pair.id(&pair.torrent);
    let temporary = healthther::recreate::temporary_name(&old_id, &torrent);
    let _leftover = Leftover(temporary.clone());
    docker_ok(&[
        "create",
        "--name",
        &temporary,
        "--network",
        &format!("container:{}", pair.id(&pair.vpn)),
        fixture_image(),
    ]);
    let up = pair.run(&["up", "-d", "--force-recreate", "--no-deps", &pair.torrent]);
    assert!(
        up.status.success(),
        "compose's up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    wait_connects(&torrent);
}

/// P replaced while healthther was not running: at start-up it cannot know P's successor, so
/// the dead dependent D (a target) is told once with the command that fixes it, and no start
/// that cannot work is tried (it used to start-loop into quarantine).
#[test]
fn a_dependent_whose_parent_was_replaced_while_healthther_was_down_is_told_once() {
    let p = parent("vpn");
    let d = dependent(&p, "torrent", &[], &[]);
    wait_connects(&d.name);
    let p_name = p.name.clone();
    drop(p);
    let _p = Node::start_with(&p_name, &[], &["serve", PORT]);
    d.kill();
    // Past the 2 s of events the engine replays to a new subscriber: nothing tells healthther
    // which container replaced P.
    std::thread::sleep(Duration::from_secs(3));
    let daemon = Daemon::watching(&format!("{}{DEBUG}", auto_env(&[&p_name, &d.name])));
    wait_until("the dependent to be reported", || {
        !records_for(&daemon, "skipped", &d.name).is_empty()
    });
    daemon.wait_passes(4);
    let skipped = records_for(&daemon, "skipped", &d.name);
    assert_eq!(skipped.len(), 1, "told once: {}", context(&daemon));
    assert_eq!(skipped[0]["result"], "needs_recreate");
    assert!(
        skipped[0]["note"]
            .as_str()
            .is_some_and(|n| n.contains("cannot start again until it is recreated")),
        "{}",
        context(&daemon)
    );
    assert!(
        records_for(&daemon, "action", &d.name).is_empty(),
        "no start that cannot work: {}",
        context(&daemon)
    );
}
