//! Identity (issue 9): healthther acts only on what is a target at the moment of acting. Each
//! test is one item of the issue's "Seen", checked as a user would: container states, the
//! compose tool's exit codes, the audit file and the console.
//!
//! The compose tests run with Compose v1 (`docker-compose`) and v2 (the CLI plugin run
//! directly; `.ci/compose-v2` fetches it). Where a version is not installed the test says so in
//! one line and passes, except under `CI=true`, where that is a failure.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

// ---------------------------------------------------------------------------------------------
// Helpers

/// `.env` line for the daemon's own debug lines (the passes `wait_passes` counts, the events it
/// handles) without the HTTP client's, which would bury a failure message.
const DEBUG: &str = "RUST_LOG=info,healthther=debug\n";

/// The audit's action records.
fn actions(audit: &[Value]) -> Vec<Value> {
    events(audit, "action").into_iter().cloned().collect()
}

/// Whether `name` is what compose renames a container to while recreating it: the first 12
/// hex digits of an id, `_`, then the old name.
fn is_compose_temp_name(name: &str) -> bool {
    name.split_once('_').is_some_and(|(prefix, _)| {
        prefix.len() >= 12 && prefix.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// Waits, by reconciliation passes (`RUST_LOG=debug`), until at least `at_least` has gone by
/// since `since`: long enough for a timer of the daemon to have fired.
fn settle_until(daemon: &Daemon, since: Instant, at_least: Duration) {
    daemon.wait_passes(2);
    while since.elapsed() < at_least {
        daemon.wait_passes(1);
    }
}

/// `docker rename`, keeping `node` pointed at its container so it is still removed on drop.
fn rename(node: &mut Node, to: &str) {
    docker_ok(&["rename", &node.name, to]);
    node.name = to.to_string();
}

/// The daemon's audit and console, for failure messages.
fn context(daemon: &Daemon) -> String {
    format!("audit: {:?}\nconsole:\n{}", daemon.audit(), daemon.output())
}

/// A compose project of one fixture service, both with unique names; taken down on drop.
struct Project {
    compose: Compose,
    program: PathBuf,
    name: String,
    service: String,
    dir: tempfile::TempDir,
}

impl Project {
    /// Writes the compose file and brings the project up; `None` when `compose` is missing.
    fn up(compose: Compose) -> Option<Project> {
        let program = compose.program()?;
        let image = fixture_image();
        let dir = tempfile::tempdir().expect("temp dir");
        let service = unique("svc");
        let yml = format!(
            "services:\n  {service}:\n    image: {image}\n    command: [\"run\"]\n    \
             stop_grace_period: 2s\n"
        );
        std::fs::write(dir.path().join("docker-compose.yml"), yml).expect("write compose file");
        let project = Project {
            compose,
            program,
            name: unique("proj"),
            service,
            dir,
        };
        project.run_ok(&["up", "-d"]);
        wait_until("the compose service to run", || {
            project.containers() == vec![(project.container_name(), "running".to_string())]
        });
        Some(project)
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
            .env_remove("HEALTH_TARGETS")
            .env_remove("MODE")
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

    /// The name compose gives the service's first container.
    fn container_name(&self) -> String {
        match self.compose {
            Compose::V1 => format!("{}_{}_1", self.name, self.service),
            Compose::V2 => format!("{}-{}-1", self.name, self.service),
        }
    }

    /// Every container of the project, as (name, status), sorted.
    fn containers(&self) -> Vec<(String, String)> {
        let label = format!("label=com.docker.compose.project={}", self.name);
        let ids = docker_ok(&["ps", "-aq", "--filter", &label]);
        let mut found: Vec<(String, String)> = ids
            .lines()
            .filter_map(|id| {
                // A container may go away between the list and the inspect.
                let out = docker(&["inspect", "-f", "{{.Name}} {{.State.Status}}", id]);
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let (name, status) = text.split_once(' ')?;
                Some((name.trim_start_matches('/').to_string(), status.to_string()))
            })
            .collect();
        found.sort();
        found
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "1"]);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Compose recreate and down work as without healthther.

/// `up -d --force-recreate` of a project whose service is a target. What the engine reports
/// (Engine 20.10, fixture stopping at once on SIGTERM), times from the first event:
///
/// ```text
/// v1 1.29:  +0 kill old (signal 15), +27 die old (exit 0), +95 stop old,
///           +98 rename old -> <old id 12>_<name>, +115 create new <name>, +337 start new,
///           +342 destroy old (named <old id 12>_<name>)
/// v2 2.26:  +0 create new as <old id 12>_<name> (label com.docker.compose.replace=<old id>),
///           +9 kill old, +31 die old (exit 0), +92 stop old, +97 destroy old (still <name>),
///           +98 rename new -> <name>, +333 start new
/// ```
///
/// In both the old container dies while it still has the target's name, so no action at all
/// is the only right outcome, not only none on a `<hex>_` name.
fn compose_recreate(compose: Compose, manual: bool) {
    let Some(project) = Project::up(compose) else {
        return;
    };
    let targets = [project.service.as_str()];
    let env = if manual {
        manual_env(&targets)
    } else {
        auto_env(&targets)
    };
    let daemon = Daemon::watching(&format!("{env}{DEBUG}"));
    daemon.wait_passes(2);

    let out = project.run(&["up", "-d", "--force-recreate"]);
    daemon.wait_passes(3);
    let after = project.containers();
    assert!(
        out.status.success(),
        "{compose:?} up --force-recreate failed with healthther watching: {}{}\ncontainers: \
         {after:?}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        context(&daemon)
    );
    assert_eq!(
        after,
        vec![(project.container_name(), "running".to_string())],
        "one container of the service, running\n{}",
        context(&daemon)
    );
    let audit = daemon.audit();
    let acted = actions(&audit);
    assert!(
        !acted
            .iter()
            .any(|a| is_compose_temp_name(a["container"].as_str().unwrap_or(""))),
        "acted on a container compose had renamed for the recreate: {acted:?}\n{}",
        context(&daemon)
    );
    assert!(
        acted.is_empty(),
        "a recreate is compose's business, yet healthther acted: {acted:?}\n{}",
        context(&daemon)
    );
    if manual {
        let (code, out, err) = client(daemon.dir.path(), &["pending"]);
        assert_eq!(
            (code, out.trim()),
            (Some(0), "no open prompts"),
            "a prompt left open after the recreate: {err}\n{}",
            context(&daemon)
        );
    }
}

/// `down` of a project whose service is a target.
fn compose_down(compose: Compose, manual: bool) {
    let Some(project) = Project::up(compose) else {
        return;
    };
    let targets = [project.service.as_str()];
    let env = if manual {
        manual_env(&targets)
    } else {
        auto_env(&targets)
    };
    let daemon = Daemon::watching(&format!("{env}{DEBUG}"));
    daemon.wait_passes(2);
    let acted_before = actions(&daemon.audit()).len();

    let out = project.run(&["down", "-t", "2"]);
    daemon.wait_passes(3);
    let left = project.containers();
    assert!(
        out.status.success(),
        "{compose:?} down failed with healthther watching: {}{}\ncontainers: {left:?}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        context(&daemon)
    );
    assert!(
        left.is_empty(),
        "{compose:?} down left containers behind: {left:?}\n{}",
        context(&daemon)
    );
    let acted = actions(&daemon.audit());
    assert_eq!(
        acted.len(),
        acted_before,
        "healthther acted while compose took the project down: {acted:?}\n{}",
        context(&daemon)
    );
    if manual {
        let (code, out, err) = client(daemon.dir.path(), &["pending"]);
        assert_eq!(
            (code, out.trim()),
            (Some(0), "no open prompts"),
            "a prompt left open for a removed container: {err}\n{}",
            context(&daemon)
        );
    }
}

#[test]
fn compose_v1_recreate_in_auto_mode_is_left_to_compose() {
    compose_recreate(Compose::V1, false);
}

#[test]
fn compose_v2_recreate_in_auto_mode_is_left_to_compose() {
    compose_recreate(Compose::V2, false);
}

#[test]
fn compose_v1_recreate_in_manual_mode_is_left_to_compose() {
    compose_recreate(Compose::V1, true);
}

#[test]
fn compose_v2_recreate_in_manual_mode_is_left_to_compose() {
    compose_recreate(Compose::V2, true);
}

#[test]
fn compose_v1_down_in_auto_mode_removes_everything() {
    compose_down(Compose::V1, false);
}

#[test]
fn compose_v2_down_in_auto_mode_removes_everything() {
    compose_down(Compose::V2, false);
}

#[test]
fn compose_v1_down_in_manual_mode_removes_everything_and_leaves_no_prompt() {
    compose_down(Compose::V1, true);
}

#[test]
fn compose_v2_down_in_manual_mode_removes_everything_and_leaves_no_prompt() {
    compose_down(Compose::V2, true);
}

// ---------------------------------------------------------------------------------------------
// 2. A container renamed away from a target name is no longer a target.

#[test]
fn a_target_renamed_during_its_back_off_is_not_started() {
    const BACKOFF: Duration = Duration::from_secs(4);
    // Runs 300 ms, then exits 3: the first revival fails, and the next waits out the back-off.
    let mut node = Node::start_with(&unique("renamed"), &[], &["exit-after", "300", "3"]);
    let target = node.name.clone();
    let env = format!("{}HEALTH_BACKOFF_INITIAL=4s\n{DEBUG}", auto_env(&[&target]));
    let daemon = Daemon::watching(&env);
    wait_until("the first revival", || !actions(&daemon.audit()).is_empty());
    // The revived container ran (the record says so); now it dies again, within the reset
    // window, so the next revival waits out the back-off.
    wait_until("its second death", || node.status() == "exited");
    let acted = actions(&daemon.audit()).len();
    let renamed_at = Instant::now();
    rename(&mut node, &unique("forensics"));

    settle_until(&daemon, renamed_at, BACKOFF * 2);
    assert_eq!(
        node.status(),
        "exited",
        "the container renamed away from {target} was started\n{}",
        context(&daemon)
    );
    let after = actions(&daemon.audit());
    assert_eq!(
        after.len(),
        acted,
        "acted after the rename: {after:?}\n{}",
        context(&daemon)
    );
    assert!(
        daemon.output().contains("no longer a target"),
        "the console does not say that {} is no longer a target:\n{}",
        node.name,
        daemon.output()
    );
}

#[test]
fn an_answer_after_the_target_was_renamed_does_not_start_it() {
    let mut node = Node::start(&unique("answered"), &[]);
    let target = node.name.clone();
    let daemon = Daemon::watching(&format!("{}{DEBUG}", manual_env(&[&target])));
    node.kill();
    wait_until("the prompt", || {
        client(daemon.dir.path(), &["pending"]).1.contains(&target)
    });
    rename(&mut node, &unique("forensics"));
    // The daemon has seen the rename before the operator, reading the old prompt, answers.
    daemon.wait_passes(2);

    let (code, out, err) = client(daemon.dir.path(), &["answer", &target, "yes"]);
    daemon.wait_passes(3);
    assert_eq!(
        node.status(),
        "exited",
        "the answer for {target} started the container renamed to {}: answer said {out}{err}\n{}",
        node.name,
        context(&daemon)
    );
    let acted = actions(&daemon.audit());
    assert!(acted.is_empty(), "acted: {acted:?}\n{}", context(&daemon));
    assert_eq!(
        code,
        Some(1),
        "the answer should be refused (no open prompt / no longer a target); it said: \
         {out}{err}"
    );
    let (_, pending, _) = client(daemon.dir.path(), &["pending"]);
    assert!(
        !pending.contains(&target),
        "a prompt is still open for {target}: {pending}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A bare service name and compose projects.

/// A fixture container labelled as the first container of `service` in compose `project`.
fn compose_node(project: &str, service: &str) -> Node {
    Node::start(
        &format!("{project}-{service}-1"),
        &[
            "--label",
            &format!("com.docker.compose.project={project}"),
            "--label",
            &format!("com.docker.compose.service={service}"),
        ],
    )
}

#[test]
fn a_bare_service_name_in_two_projects_is_acted_on_for_neither() {
    let (p1, p2, service) = (unique("pa"), unique("pb"), unique("svc"));
    let nodes = [compose_node(&p1, &service), compose_node(&p2, &service)];
    let daemon = Daemon::watching(&format!("{}{DEBUG}", auto_env(&[&service])));
    for n in &nodes {
        n.kill();
    }
    daemon.wait_passes(3);
    for n in &nodes {
        assert_eq!(
            n.status(),
            "exited",
            "{} was started although {service} is ambiguous\n{}",
            n.name,
            context(&daemon)
        );
    }
    let acted = actions(&daemon.audit());
    assert!(acted.is_empty(), "acted: {acted:?}");

    // Said once, naming both projects and the spelling that picks one.
    let spelling = format!("{p1}/{service}");
    let output = daemon.output();
    let said: Vec<&str> = output.lines().filter(|l| l.contains(&spelling)).collect();
    assert_eq!(
        said.len(),
        1,
        "expected one line naming {p1}, {p2} and {spelling:?}:\n{output}"
    );
    assert!(
        said[0].contains(&p2),
        "the ambiguity line does not name {p2}: {}",
        said[0]
    );
}

#[test]
fn project_slash_service_picks_that_project_only() {
    let (p1, p2, service) = (unique("pa"), unique("pb"), unique("svc"));
    let (mine, theirs) = (compose_node(&p1, &service), compose_node(&p2, &service));
    let target = format!("{p1}/{service}");
    let daemon = Daemon::watching(&format!("{}{DEBUG}", auto_env(&[&target])));
    let before = mine.started_at();
    theirs.kill();
    mine.kill();
    mine.wait_restarted_since(&before);
    daemon.wait_passes(3);
    assert_eq!(
        theirs.status(),
        "exited",
        "{p2}'s {service} was started\n{}",
        context(&daemon)
    );
    let acted = actions(&daemon.audit());
    assert!(
        !acted.is_empty() && acted.iter().all(|a| a["container"] == mine.name.as_str()),
        "the audit should name only {}: {acted:?}",
        mine.name
    );
}

/// Guards a promise that holds today: with one project having the service, the bare name is
/// that project's.
#[test]
fn a_bare_service_name_in_one_project_is_revived() {
    let (p1, p2, service) = (unique("pa"), unique("pb"), unique("svc"));
    let mine = compose_node(&p1, &service);
    let other = compose_node(&p2, &format!("{service}x"));
    let daemon = Daemon::watching(&format!("{}{DEBUG}", auto_env(&[&service])));
    let before = mine.started_at();
    other.kill();
    mine.kill();
    mine.wait_restarted_since(&before);
    daemon.wait_passes(3);
    assert_eq!(other.status(), "exited", "another service was started");
    let acted = actions(&daemon.audit());
    assert_eq!(acted.len(), 1, "{acted:?}");
    assert_eq!(acted[0]["container"], mine.name.as_str());
}

// ---------------------------------------------------------------------------------------------
// 5. Smaller: someone else's restart, a second replica, a fast down/up.

#[test]
fn someone_elses_docker_restart_is_left_alone() {
    let node = Node::start(&unique("restarted"), &[]);
    let daemon = Daemon::watching(&format!("{}{DEBUG}", auto_env(&[&node.name])));
    // A few times: the race between the restart's stop and its start is narrow.
    for _ in 0..3 {
        let before = node.started_at();
        let out = docker(&["restart", "-t", "2", &node.name]);
        assert!(
            out.status.success(),
            "docker restart failed with healthther watching: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            context(&daemon)
        );
        node.wait_restarted_since(&before);
    }
    daemon.wait_passes(3);
    assert_eq!(node.status(), "running");
    let acted = actions(&daemon.audit());
    assert!(
        acted.is_empty(),
        "acted on a container someone else was restarting: {acted:?}\n{}",
        context(&daemon)
    );
    assert!(
        !daemon.output().contains("reviving"),
        "the console says it revived it:\n{}",
        daemon.output()
    );
}

/// Both replicas reach the engine through proxies that hold their starts back: the first's a
/// little, the second's a second and a half. So both look while the target is still down (on
/// any engine, however fast), the first starts it, and the second's start lands after that:
/// the engine answers 304 and did nothing. (Two starts that reach Engine 20.10 at the same
/// moment are both answered 204, one of them having done nothing; no client can tell which.)
#[test]
fn of_two_replicas_only_the_one_that_started_it_records_running() {
    const ROUNDS: usize = 3;
    let node = Node::start(&unique("replicas"), &[]);
    let env = format!(
        "{}HEALTH_BACKOFF_RESET=1s\n{DEBUG}",
        auto_env(&[&node.name])
    );
    let replica = |hold: Duration| {
        let proxy = Proxy::in_temp_dir();
        proxy.set_faults(Faults {
            delay: vec![("POST", "/start", hold)],
            ..Faults::default()
        });
        let (mut cmd, dir) = command(&env);
        cmd.env("DOCKER_HOST", proxy.url());
        let daemon = Daemon::spawn(cmd, dir);
        daemon.wait_log("watching");
        (daemon, proxy)
    };
    let (first, _first_proxy) = replica(Duration::from_millis(300));
    let (second, _second_proxy) = replica(Duration::from_millis(1500));
    let results = || {
        let mut all = actions(&first.audit());
        all.extend(actions(&second.audit()));
        let count = |r: &str| all.iter().filter(|a| a["result"] == r).count();
        (count("running"), count("already_running"), all)
    };
    for round in 1..=ROUNDS {
        // Past the reset window, so every kill is a first failure revived at once.
        std::thread::sleep(Duration::from_millis(1500));
        let before = node.started_at();
        node.kill();
        node.wait_restarted_since(&before);
        // Four half-second passes: longer than the proxies hold a start back.
        first.wait_passes(4);
        second.wait_passes(4);
        let (n, _, all) = results();
        assert_eq!(
            n, round,
            "killed {round} times, each started once, yet {n} records say result \"running\": \
             {all:?}"
        );
    }
    let (_, already, all) = results();
    assert!(
        already >= 1,
        "the held-back start never came back as already_running: {all:?}"
    );
}

#[test]
fn a_fast_down_and_up_is_not_reported_as_a_removal() {
    let name = unique("fastdownup");
    docker_ok(&["run", "-d", "--name", &name, fixture_image()]);
    docker_ok(&["rm", "-f", &name]);
    let node = Node::start(&name, &[]);
    // Within the event replay window (2 s) of the removal.
    let daemon = Daemon::start(&format!("{}{DEBUG}", auto_env(&[&name])));
    daemon.wait_log("watching");
    daemon.wait_passes(3);
    assert_eq!(node.status(), "running");
    assert!(
        !daemon.output().contains("target container removed"),
        "the replayed removal of the previous {name} was reported:\n{}",
        daemon.output()
    );
    let acted = actions(&daemon.audit());
    assert!(acted.is_empty(), "acted: {acted:?}");
}

/// healthther as a bare binary in a `FROM scratch` image, for running it inside a compose
/// project of its own.
fn daemon_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    const TAG: &str = "healthther:test-identity";
    BUILT.get_or_init(|| {
        let binary = static_binary(&["--bin", "healthther"], "healthther");
        build_image(
            TAG,
            "FROM scratch\nCOPY healthther /healthther\nENTRYPOINT [\"/healthther\"]\n",
            &[("healthther", &binary)],
        );
    });
    TAG
}

/// Two compose projects with the same service; healthther runs in the first, its target the
/// bare service name: it means its own project's service, and the other project's is left
/// alone (without knowing its own project, the name would be ambiguous and act on neither).
#[test]
fn a_bare_service_name_means_healththers_own_project_first() {
    let Some(program) = Compose::V1.program() else {
        return;
    };
    let service = unique("web");
    let fixture = fixture_image();
    let socket = docker_socket();
    let ours = unique("own");
    let theirs = unique("other");
    let dir = tempfile::tempdir().expect("temp dir");
    let with_healthther = format!(
        "services:\n  {service}:\n    image: {fixture}\n    command: [\"run\"]\n  \
         watcher:\n    image: {image}\n    environment:\n      HEALTH_TARGETS: {service}\n      \
         MODE: auto\n      HEALTH_POLL_INTERVAL: 500ms\n      HEALTH_LOG_DIR: /tmp/logs\n      \
         HEALTH_CONTROL_SOCKET: /tmp/control.sock\n      \
         DOCKER_HOST: unix:///var/run/docker.sock\n    volumes:\n      \
         - {socket}:/var/run/docker.sock\n    tmpfs:\n      - /tmp\n",
        image = daemon_image()
    );
    let without =
        format!("services:\n  {service}:\n    image: {fixture}\n    command: [\"run\"]\n");
    std::fs::write(dir.path().join("ours.yml"), with_healthther).expect("write");
    std::fs::write(dir.path().join("theirs.yml"), without).expect("write");
    struct Down<'a>(
        &'a std::path::Path,
        &'a std::path::Path,
        [(&'a str, &'a str); 2],
    );
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            for (project, file) in self.2 {
                let _ = Command::new(self.0)
                    .args(["-p", project, "-f", file, "down", "-t", "1"])
                    .current_dir(self.1)
                    .output();
            }
        }
    }
    let _down = Down(
        &program,
        dir.path(),
        [(&ours, "ours.yml"), (&theirs, "theirs.yml")],
    );
    let compose = |project: &str, file: &str, args: &[&str]| {
        let out = Command::new(&program)
            .args(["-p", project, "-f", file])
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run compose");
        assert!(
            out.status.success(),
            "compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    compose(&theirs, "theirs.yml", &["up", "-d"]);
    compose(&ours, "ours.yml", &["up", "-d"]);
    let name = |project: &str, svc: &str| format!("{project}_{svc}_1");
    let watcher = name(&ours, "watcher");
    let logs = || String::from_utf8_lossy(&docker(&["logs", &watcher]).stdout).to_string();
    wait_until("healthther in the container to watch", || {
        logs().contains("watching")
    });
    assert!(
        logs().contains(&format!("compose project {ours}")),
        "healthther did not learn its own project:\n{}",
        logs()
    );
    let (mine, other) = (name(&ours, &service), name(&theirs, &service));
    let started = |c: &str| docker_ok(&["inspect", "-f", "{{.State.StartedAt}}", c]);
    let before = started(&mine);
    docker_ok(&["kill", &other]);
    docker_ok(&["kill", &mine]);
    wait_until("our project's service to be revived", || {
        docker_ok(&["inspect", "-f", "{{.State.Status}}", &mine]) == "running"
            && started(&mine) != before
    });
    // Give it the time it took for ours, and more, to (wrongly) act on theirs.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.State.Status}}", &other]),
        "exited",
        "the other project's service was touched:\n{}",
        logs()
    );
}
