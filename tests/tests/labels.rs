//! Targets chosen by a label on the container (`HEALTH_TARGETS=label:KEY=VALUE`), and
//! healthther in autoheal's place in a compose file written for autoheal.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::harness::*;
use crate::notify::{free_port, generic_records, http_get, Capture};

/// A container name of this module's own: `hlab-` and a name no other test uses.
fn name(label: &str) -> String {
    format!("hlab-{}", unique(label))
}

/// A label key no other test (or earlier run) uses.
fn key() -> String {
    format!("hlab.{}", unique("sel"))
}

#[test]
fn a_label_selector_revives_the_labelled_containers_and_nothing_else() {
    let key = key();
    let label = format!("{key}=on");
    let labelled = Node::start(&name("web"), &["--label", &label]);
    // The same image without the label, with another value, opted out, and a compose one-off.
    let plain = Node::start(&name("plain"), &[]);
    let other = Node::start(&name("other"), &["--label", &format!("{key}=off")]);
    let shy = Node::start(
        &name("shy"),
        &["--label", &label, "--label", "healthther.enable=false"],
    );
    let oneoff = Node::start(
        &name("run"),
        &[
            "--label",
            &label,
            "--label",
            "com.docker.compose.project=hlabp",
            "--label",
            "com.docker.compose.service=web",
            "--label",
            "com.docker.compose.oneoff=True",
        ],
    );
    let selector = format!("label:{label}");
    let hook = Capture::start();
    let metrics = free_port();
    let env = format!(
        "{}RUST_LOG=debug\nHEALTH_NOTIFY=generic+http://127.0.0.1:{}/hook\n\
         HEALTH_METRICS_ADDR=127.0.0.1:{metrics}\n",
        auto_env(&[&selector]),
        hook.port
    );
    let daemon = Daemon::watching(&env);

    for n in [&plain, &other, &shy, &oneoff] {
        n.kill();
    }
    let before = labelled.started_at();
    labelled.kill();
    labelled.wait_restarted_since(&before);

    // Created afterwards with the label: watched from its create event.
    let late = Node::start(&name("late"), &["--label", &label]);
    daemon.wait_log(&format!("{} resolves to", selector));
    let before = late.started_at();
    late.kill();
    late.wait_restarted_since(&before);

    daemon.wait_passes(3);
    for n in [&plain, &other, &shy, &oneoff] {
        assert_eq!(n.status(), "exited", "{} was touched", n.name);
    }
    let audit = daemon.audit();
    let acted: Vec<&Value> = events(&audit, "action");
    assert_eq!(acted.len(), 2, "{audit:?}");
    assert!(
        acted.iter().all(|r| r["target"] == selector.as_str()),
        "{acted:?}"
    );

    let (code, out, err) = client(daemon.dir.path(), &["status", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Value = serde_json::from_str(&out).expect("status --json is JSON");
    let row = &rows[0];
    assert_eq!(row["target"], selector.as_str(), "{out}");
    let mut names: Vec<&str> = row["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    names.sort_unstable();
    let mut want = [labelled.name.as_str(), late.name.as_str()];
    want.sort_unstable();
    assert_eq!(names, want, "{out}");

    // Metrics and notifications name the selector as the target, and the container.
    let (_, text) = http_get(metrics, "/metrics").expect("the metrics answer");
    for c in [&labelled, &late] {
        let up = format!(
            "healthther_target_up{{host=\"{}\",target=\"{selector}\",container=\"{}\"}} 1",
            host_label(&text),
            c.name
        );
        assert!(text.contains(&up), "{up} not in:\n{text}");
    }
    let revivals = format!(
        "healthther_actions_total{{host=\"{}\",target=\"{selector}\",action=\"start\",result=\"running\"}} 2",
        host_label(&text)
    );
    assert!(text.contains(&revivals), "{revivals} not in:\n{text}");
    let mut told = Vec::new();
    wait_until("both revivals notified", || {
        told = generic_records(&hook.on("/hook"))
            .into_iter()
            .filter(|r| r["event"] == "action" && r["target"] == selector.as_str())
            .filter_map(|r| r["container"].as_str().map(String::from))
            .collect();
        told.len() == 2
    });
    told.sort_unstable();
    assert_eq!(told, want, "the notifications name the containers");
}

/// The `host` label every series carries (the machine's hostname by default).
fn host_label(metrics: &str) -> String {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("healthther_engine_up{host=\""))
        .and_then(|rest| rest.split('"').next())
        .expect("an engine_up series")
        .to_string()
}

#[test]
fn a_selector_that_matches_nothing_is_said_once_and_a_bad_one_exits_2() {
    let key = key();
    let env = format!("{}RUST_LOG=debug\n", auto_env(&[&format!("label:{key}")]));
    let daemon = Daemon::watching(&env);
    daemon.wait_log(&format!("no container has label {key}=true yet"));

    let (mut cmd, _dir) = command("HEALTH_TARGETS=web,label:\nMODE=auto\n");
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("\"label:\""), "{err}");
}

/// healthther's runtime image, built from the shipped Dockerfile's runtime stage with a binary
/// compiled here, under this module's own tag (another test may build the shared one from
/// another tree at the same time).
fn healer_image() -> &'static str {
    const TAG: &str = "hlab-healthther:test";
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let binary = static_binary(&["--bin", "healthther"], "healthther");
        let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("read Dockerfile");
        let start = dockerfile
            .find("\nFROM scratch AS runtime")
            .expect("the Dockerfile has a runtime stage");
        let stage = dockerfile[start..].replace(
            "COPY --from=build /out/healthther /usr/local/bin/healthther",
            "COPY healthther /usr/local/bin/healthther",
        );
        build_image(TAG, &stage, &[("healthther", &binary)]);
    });
    TAG
}

/// A compose file as autoheal's users write it, with only the healer's image changed.
const AUTOHEAL_COMPOSE: &str = r#"
services:
  app:
    image: ${NODE_IMAGE}
    labels:
      - "${KEY}=true"
  other:
    image: ${NODE_IMAGE}
  autoheal:
    image: ${HEALER_IMAGE}
    restart: always
    environment:
      - AUTOHEAL_CONTAINER_LABEL=${KEY}
      - AUTOHEAL_INTERVAL=5
      - AUTOHEAL_START_PERIOD=0
      - AUTOHEAL_DEFAULT_STOP_TIMEOUT=2
    volumes:
      - ${DOCKER_SOCKET}:/var/run/docker.sock
"#;

struct Project {
    compose: Compose,
    name: String,
    key: String,
    dir: tempfile::TempDir,
}

impl Project {
    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut cmd: Command = self.compose.command().expect("checked by the caller");
        cmd.arg("-p")
            .arg(&self.name)
            .args(args)
            .current_dir(self.dir.path())
            .env("NODE_IMAGE", fixture_image())
            .env("HEALER_IMAGE", healer_image())
            .env("KEY", &self.key)
            .env("DOCKER_SOCKET", docker_socket())
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE")
            .stdin(Stdio::null())
            .output()
            .expect("run compose")
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "compose {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The one container of `service` (not a one-off).
    fn container(&self, service: &str) -> Node {
        let filter = [
            format!("label=com.docker.compose.project={}", self.name),
            format!("label=com.docker.compose.service={service}"),
            "label=com.docker.compose.oneoff=False".to_string(),
        ];
        let name = docker_ok(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &filter[0],
            "--filter",
            &filter[1],
            "--filter",
            &filter[2],
        ]);
        Node {
            name: name.trim().to_string(),
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "1"]);
    }
}

#[test]
fn in_autoheals_place_it_restarts_the_labelled_unhealthy_service_only() {
    let compose = Compose::V1;
    if compose.program().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("docker-compose.yml"), AUTOHEAL_COMPOSE).expect("write");
    let project = Project {
        compose,
        name: name("ah").replace('-', "_").to_lowercase(),
        key: key(),
        dir,
    };
    project.run_ok(&["up", "-d"]);
    let app = project.container("app");
    let other = project.container("other");
    let healer = project.container("autoheal");
    wait_until("the healer to watch", || {
        let logs = docker(&["logs", &healer.name]);
        String::from_utf8_lossy(&logs.stdout).contains("watching")
            || String::from_utf8_lossy(&logs.stderr).contains("watching")
    });
    let logs = docker(&["logs", &healer.name]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(text.contains("autoheal's settings read"), "{text}");
    // A one-off of the labelled service: never chosen by the label.
    project.run_ok(&["run", "-d", "app"]);
    let oneoff_name = docker_ok(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("label=com.docker.compose.project={}", project.name),
        "--filter",
        "label=com.docker.compose.oneoff=True",
    ]);
    let oneoff = Node {
        name: oneoff_name.trim().to_string(),
    };
    assert!(!oneoff.name.is_empty());

    wait_until("app to be healthy", || app.health() == "healthy");
    let before = app.started_at();
    let other_before = other.started_at();
    docker_ok(&["exec", &app.name, "/fixture", "sick"]);
    docker_ok(&["exec", &other.name, "/fixture", "sick"]);
    docker_ok(&["exec", &oneoff.name, "/fixture", "sick"]);
    app.wait_restarted_since(&before);
    wait_until("app to be healthy again", || app.health() == "healthy");
    // Give it every chance to touch the others.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        other.started_at(),
        other_before,
        "the unlabelled service was restarted"
    );
    assert_eq!(other.health(), "unhealthy");
    assert_eq!(oneoff.health(), "unhealthy", "the one-off was touched");
}
