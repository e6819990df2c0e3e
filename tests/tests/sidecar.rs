//! The sidecar as users run it: the shipped Dockerfile's runtime stage and docker-compose files,
//! on the real engine with the real compose tool, v1 and v2 (see [`Compose`]: a missing
//! version is one line on a dev machine and a failure under `CI=true`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::harness::*;

const IMAGE: &str = "healthther:test-runtime";
/// The line of the shipped runtime stage that takes the binary from the build stage.
const SHIPPED_COPY: &str = "COPY --from=build /out/healthther /usr/local/bin/healthther";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped runtime image, made from the Dockerfile's runtime stage as it is, with a binary
/// compiled here instead of in the build stage (whose base image cannot be pulled here).
pub fn runtime_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let binary = static_binary(&["--bin", "healthther"], "healthther");
        let dockerfile =
            std::fs::read_to_string(root().join("Dockerfile")).expect("read Dockerfile");
        let start = dockerfile
            .find("\nFROM scratch AS runtime")
            .expect("the Dockerfile has a runtime stage");
        let stage = &dockerfile[start..];
        assert_eq!(stage.matches(SHIPPED_COPY).count(), 1, "{stage}");
        let stage = stage.replace(SHIPPED_COPY, "COPY healthther /usr/local/bin/healthther");
        build_image(IMAGE, &stage, &[("healthther", &binary)]);
    });
    IMAGE
}

/// A compose project made of the shipped files (plus `extra`), taken down when dropped.
struct Project {
    compose: Compose,
    name: String,
    dir: tempfile::TempDir,
    files: Vec<&'static str>,
}

impl Project {
    /// `None` (after saying so) when `compose` is not installed.
    fn new(compose: Compose, extra: &str) -> Option<Project> {
        compose.program()?;
        let dir = tempfile::tempdir().expect("temp dir");
        for f in ["docker-compose.yml", "docker-compose.override.yml"] {
            std::fs::copy(root().join(f), dir.path().join(f)).expect("copy compose file");
        }
        std::fs::write(dir.path().join("docker-compose.test.yml"), extra).expect("write");
        Some(Project {
            compose,
            name: unique("sidecar").replace('-', "_"),
            dir,
            files: vec![
                "docker-compose.yml",
                "docker-compose.override.yml",
                "docker-compose.test.yml",
            ],
        })
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self
            .compose
            .command()
            .expect("found when the project was made");
        cmd.arg("-p").arg(&self.name);
        for f in &self.files {
            cmd.arg("-f").arg(f);
        }
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("TEST_IMAGE", runtime_image())
            .env("TEST_NODE_IMAGE", fixture_image())
            // The engine under test, mounted into the sidecar: not always the machine's.
            .env("DOCKER_SOCKET", docker_socket())
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE")
            .env_remove("HEALTH_TARGETS")
            .env_remove("MODE")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.compose))
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "compose {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Everything compose made for this project that is still there.
    fn leftovers(&self) -> String {
        let label = format!("label=com.docker.compose.project={}", self.name);
        let containers = docker_ok(&["ps", "-aq", "--filter", &label]);
        let networks = docker_ok(&["network", "ls", "-q", "--filter", &label]);
        format!("{containers}{networks}")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "1"]);
    }
}

/// The test override: locally built images instead of pulled ones, and a quick healthcheck.
const TEST_OVERRIDE: &str = r#"
services:
  healthther:
    image: ${TEST_IMAGE}
    healthcheck:
      interval: 1s
  nodo_1:
    image: ${TEST_NODE_IMAGE}
    command: ["run"]
  nodo_2:
    image: ${TEST_NODE_IMAGE}
    command: ["run"]
"#;

fn inspect(name: &str, format: &str) -> String {
    docker_ok(&["inspect", "-f", format, name])
}

/// The shipped compose files, up with `compose`: the sidecar revives a killed node, and `down`
/// takes it all away.
fn compose_sidecar(compose: Compose) {
    // Taken first, so that it is released only after the project's `down` on drop.
    let _names = shipped_names_lock();
    let Some(project) = Project::new(compose, TEST_OVERRIDE) else {
        return;
    };
    assert_shipped_names_free();
    let size: u64 = docker_ok(&["image", "inspect", "-f", "{{.Size}}", runtime_image()])
        .parse()
        .expect("image size");
    assert!(size < 10_000_000, "runtime image is {size} bytes");

    // No .env in the project: every setting falls back to its default.
    project.run_ok(&["up", "-d", "--no-build"]);
    wait_until("healthther to report healthy", || {
        inspect("healthther", "{{.State.Health.Status}}") == "healthy"
    });
    assert_eq!(
        inspect("healthther", "{{.HostConfig.ReadonlyRootfs}}"),
        "true"
    );
    assert_eq!(inspect("healthther", "{{.HostConfig.CapDrop}}"), "[ALL]");
    assert!(inspect("healthther", "{{.HostConfig.SecurityOpt}}").contains("no-new-privileges"));

    let before = inspect("nodo_1", "{{.State.StartedAt}}");
    docker_ok(&["kill", "nodo_1"]);
    wait_until("nodo_1 to be revived", || {
        inspect("nodo_1", "{{.State.Status}}") == "running"
            && inspect("nodo_1", "{{.State.StartedAt}}") != before
    });
    // The action is in the host's ./logs.
    wait_until("the audit record on the host", || {
        events(&read_audit(project.dir.path()), "action").len() == 1
    });
    let audit = read_audit(project.dir.path());
    assert_eq!(events(&audit, "action")[0]["container"], "nodo_1");
    assert_eq!(events(&audit, "action")[0]["mode"], "auto");

    // The operator's commands work through docker exec, on a read-only root filesystem.
    let pending = docker_ok(&["exec", "healthther", "healthther", "pending"]);
    assert!(pending.starts_with("no open prompts"), "{pending}");

    project.run_ok(&["down", "-t", "5"]);
    assert_eq!(
        project.leftovers(),
        "",
        "compose down left something behind"
    );
    // healthther stopped before the nodes, so it revived none of them on the way down.
    assert_eq!(events(&read_audit(project.dir.path()), "action").len(), 1);
}

#[test]
fn compose_v1_sidecar_revives_a_killed_node_and_leaves_nothing_behind() {
    compose_sidecar(Compose::V1);
}

#[test]
fn compose_v2_sidecar_revives_a_killed_node_and_leaves_nothing_behind() {
    compose_sidecar(Compose::V2);
}

#[test]
fn runtime_image_runs_hardened_as_a_non_root_user_in_the_socket_group() {
    let node = Node::start(&unique("nonroot_node"), &[]);
    let socket = docker_socket();
    let gid = std::fs::metadata(&socket).expect("stat the socket").gid();
    let work = tempfile::tempdir().expect("temp dir");
    let logs = work.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir logs");
    // Writable for the unprivileged user, as docs/sidecar.md tells users to make it.
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o777)).expect("chmod logs");
    let name = unique("healthther_nonroot");
    let sidecar = Node { name: name.clone() };
    let user = format!("65532:{gid}");
    let socket_mount = format!("{socket}:/var/run/docker.sock");
    let logs_mount = format!("{}:/app/logs", logs.display());
    let targets = format!("HEALTH_TARGETS={}", node.name);
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--user",
        &user,
        "--read-only",
        "--tmpfs",
        "/run",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-v",
        &socket_mount,
        "-v",
        &logs_mount,
        "-e",
        &targets,
        "-e",
        "MODE=auto",
        runtime_image(),
    ]);
    wait_until("the sidecar to watch", || {
        docker(&["exec", &name, "healthther", "probe"])
            .status
            .success()
    });
    assert_eq!(sidecar.inspect("{{.Config.User}}"), user);

    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    wait_until("the audit record", || {
        events(&read_audit(work.path()), "action").len() == 1
    });
}

#[test]
fn manual_mode_in_the_sidecar_is_answered_through_docker_attach_and_docker_exec() {
    const CHOICES: &str = "Revive it? [y]es / [n]o / [a]lways / ne[v]er > ";
    let node = Node::start(&unique("attach_node"), &[]);
    let socket = docker_socket();
    let name = unique("healthther_attach");
    let sidecar = Node { name: name.clone() };
    let socket_mount = format!("{socket}:/var/run/docker.sock");
    let targets = format!("HEALTH_TARGETS={}", node.name);
    // As docker-compose.yml runs it: a terminal, stdin open, read-only root.
    docker_ok(&[
        "run",
        "-d",
        "-t",
        "-i",
        "--name",
        &name,
        "--read-only",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/app/logs",
        "-v",
        &socket_mount,
        "-e",
        &targets,
        "-e",
        "MODE=manual",
        runtime_image(),
    ]);
    wait_until("the sidecar to watch", || {
        docker(&["exec", &name, "healthther", "probe"])
            .status
            .success()
    });

    // Nobody is attached when it dies; attaching later and pressing Enter shows the prompt.
    let before = node.started_at();
    node.kill();
    wait_until("the prompt", || {
        docker(&["exec", &name, "healthther", "pending"])
            .status
            .success()
            && docker_ok(&["exec", &name, "healthther", "pending"]).contains(&node.name)
    });
    // The prompt is in `docker logs` too, for whoever looks there first.
    wait_until("the prompt in docker logs", || {
        let logs = docker(&["logs", &name]);
        String::from_utf8_lossy(&logs.stdout).contains(CHOICES)
    });
    let mut attach = Command::new("docker");
    attach.args(["attach", &name]);
    let timeout_ms = u64::try_from(DEADLINE.as_millis()).unwrap_or(u64::MAX);
    let mut term =
        rexpect::session::spawn_command(attach, Some(timeout_ms)).expect("docker attach");
    term.send_line("").expect("press Enter");
    term.exp_string(CHOICES).expect("the prompt, reprinted");
    term.send_line("y").expect("answer");
    node.wait_restarted_since(&before);
    // Detach with Ctrl-P Ctrl-Q: healthther keeps running.
    term.send_control('p').expect("ctrl-p");
    term.send_control('q').expect("ctrl-q");
    assert_eq!(sidecar.status(), "running");

    // The next failure, answered without a terminal.
    let before = node.started_at();
    node.kill();
    wait_until("the next prompt", || {
        docker_ok(&["exec", &name, "healthther", "pending"]).contains(&node.name)
    });
    docker_ok(&["exec", &name, "healthther", "answer", &node.name, "yes"]);
    node.wait_restarted_since(&before);
}

/// The `stop_grace_period` of the shipped compose service, in seconds.
fn compose_stop_grace() -> Option<u64> {
    let compose = std::fs::read_to_string(root().join("docker-compose.yml")).ok()?;
    let value = compose
        .lines()
        .find_map(|l| l.trim().strip_prefix("stop_grace_period:"))?;
    value.trim().strip_suffix('s')?.parse().ok()
}

#[test]
fn stopping_the_sidecar_during_a_restart_lets_it_finish_and_record_it() {
    // Ignores SIGTERM: a restart waits out the whole default stop timeout (10s) before the
    // kill, the same as docker's default grace for the sidecar itself.
    let node = Node::start_with(&unique("stubborn_node"), &[], &["stubborn"]);
    wait_until("the node to be healthy", || node.health() == "healthy");
    let grace = compose_stop_grace().expect("docker-compose.yml sets stop_grace_period: Ns");
    let logs = tempfile::tempdir().expect("temp dir");
    let name = unique("healthther_stop");
    let sidecar = Node { name: name.clone() };
    let socket_mount = format!("{}:/var/run/docker.sock", docker_socket());
    let logs_mount = format!("{}/logs:/app/logs", logs.path().display());
    let targets = format!("HEALTH_TARGETS={}", node.name);
    // As docker-compose.yml runs it: its grace period, a terminal, NO_COLOR.
    docker_ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        &name,
        "--stop-timeout",
        &grace.to_string(),
        "--read-only",
        "--tmpfs",
        "/run",
        "-v",
        &socket_mount,
        "-v",
        &logs_mount,
        "-e",
        &targets,
        "-e",
        "MODE=auto",
        "-e",
        "NO_COLOR=1",
        runtime_image(),
    ]);
    let docker_logs = || {
        let out = docker(&["logs", &name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    wait_until("the sidecar to watch", || {
        docker_logs().contains("watching")
    });
    let before = node.started_at();
    docker_ok(&["exec", &node.name, "/fixture", "sick"]);
    wait_until("the restart to begin", || {
        docker_logs().contains("reviving")
    });
    docker_ok(&["stop", &name]);
    assert_eq!(
        sidecar.inspect("{{.State.ExitCode}}"),
        "0",
        "{}",
        docker_logs()
    );
    node.wait_restarted_since(&before);
    let audit = read_audit(logs.path());
    let actions = events(&audit, "action");
    assert_eq!(actions.len(), 1, "{audit:?}\n{}", docker_logs());
    let human = std::fs::read_dir(logs.path().join("logs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("healthther."))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(human.contains("stopped"), "{human}");
    assert_eq!(actions[0]["decision"], "restart");
    assert_eq!(actions[0]["result"], "running");
    // Item 6: plain text in docker logs, with a terminal.
    assert!(!docker_logs().contains('\u{1b}'), "{:?}", docker_logs());
}

/// The sidecar's compose project for the probe test: `web` shares the project's network with
/// healthther, `lonely` is only on a network of its own; both are HTTP-probed every second.
const PROBED_PROJECT: &str = r#"
x-probed: &probed
  image: ${TEST_NODE_IMAGE}
  command: ["http", "8080"]
  healthcheck:
    disable: true
  labels:
    healthther.probe: "http://:8080/healthz"
    healthther.probe-interval: "1s"
    healthther.probe-timeout: "1s"
    healthther.probe-retries: "2"
services:
  healthther:
    image: ${TEST_IMAGE}
    user: "0:0"
    environment:
      HEALTH_TARGETS: web,lonely
      MODE: auto
      NO_COLOR: "1"
    volumes:
      - ${DOCKER_SOCKET}:/var/run/docker.sock
      - ./logs:/app/logs
  web: *probed
  lonely:
    <<: *probed
    networks: [other]
networks:
  other: {}
"#;

#[test]
fn compose_sidecar_probes_a_node_on_its_network_and_names_the_network_it_lacks() {
    let Some(mut project) = Project::new(Compose::V2, "") else {
        return;
    };
    std::fs::write(project.dir.path().join("probed.yml"), PROBED_PROJECT).expect("write");
    project.files = vec!["probed.yml"];
    project.run_ok(&["up", "-d", "--no-build"]);
    let of = |service: &str| {
        let project_label = format!("label=com.docker.compose.project={}", project.name);
        let service_label = format!("label=com.docker.compose.service={service}");
        docker_ok(&[
            "ps",
            "-aq",
            "--filter",
            &project_label,
            "--filter",
            &service_label,
        ])
    };
    let (sidecar, web, lonely) = (of("healthther"), of("web"), of("lonely"));
    let status = || docker(&["exec", &sidecar, "healthther", "status"]);
    wait_until("web's probe to be up", || {
        String::from_utf8_lossy(&status().stdout).contains("every 1s: up (")
    });
    let lonely_started = inspect(&lonely, "{{.State.StartedAt}}");
    docker_ok(&["exec", &lonely, "/fixture", "http-mode", "hang"]);
    let web_started = inspect(&web, "{{.State.StartedAt}}");
    docker_ok(&["exec", &web, "/fixture", "http-mode", "hang"]);
    wait_until("web to be restarted by its probe", || {
        inspect(&web, "{{.State.StartedAt}}") != web_started
    });
    wait_until("the audit record", || {
        !events(&read_audit(project.dir.path()), "action").is_empty()
    });
    let audit = read_audit(project.dir.path());
    let actions = events(&audit, "action");
    assert_eq!(actions.len(), 1, "{audit:?}");
    assert_eq!(actions[0]["cause"], "probe");
    assert_eq!(actions[0]["decision"], "restart");
    // lonely shares no network with the sidecar: said once, naming the network, never touched.
    let mut logs = String::new();
    for entry in std::fs::read_dir(project.dir.path().join("logs"))
        .expect("the sidecar's logs")
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("healthther.")
        {
            logs.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    let other = format!("attach healthther to {}_other", project.name);
    assert_eq!(logs.matches(&other).count(), 1, "{logs}");
    assert_eq!(inspect(&lonely, "{{.State.StartedAt}}"), lonely_started);
    let shown = String::from_utf8_lossy(&status().stdout).to_string();
    assert!(shown.contains(&other), "{shown}");
}
