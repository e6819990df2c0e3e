//! Text a container controls (its health check's output, its labels) trying to forge log lines
//! or drive the operator's terminal (issue 20), and labels of containers that are not targets.

use std::path::Path;

use crate::harness::*;

/// A timestamp no real line of the test's daemon has: a line that starts with it is forged.
const FORGED: &str = "2026-12-06T00:00:00Z";

/// A health check's output: a new line that looks like the daemon's own, then an OSC that sets
/// the terminal's title.
fn payload() -> String {
    format!("\n{FORGED}  INFO healthther: revived\u{1b}]0;pwned\u{7}")
}

/// The fixture image under a tag of this test's own: the shared tag may be rebuilt meanwhile
/// from another checkout, whose fixture may not say what `sick TEXT` asks. Removed on drop.
struct Image(String);

impl Image {
    fn build() -> Image {
        let binary = static_binary(&["-p", "fixture"], "fixture");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dockerfile = std::fs::read_to_string(root.join("fixture/Dockerfile"))
            .expect("read fixture/Dockerfile");
        let tag = format!("healthther-fixture:{}", unique("hostile").to_lowercase());
        build_image(&tag, &dockerfile, &[("fixture", &binary)]);
        Image(tag)
    }

    fn run(&self, name: &str, options: &[&str]) -> Node {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(options);
        args.push(&self.0);
        docker_ok(&args);
        Node {
            name: name.to_string(),
        }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["image", "rm", "-f", &self.0]);
    }
}

/// Lines of `text` that begin with the forged timestamp.
fn forged_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.trim_start().starts_with(FORGED))
        .collect()
}

#[test]
fn container_text_cannot_forge_lines_or_reach_the_terminal_raw() {
    let image = Image::build();
    let bad_label = format!("healthther.mode=bogus\n{FORGED}  WARN healthther: forged\u{1b}[2J");
    let sick = image.run(&unique("hostile"), &["--label", &bad_label]);
    // Someone else's container, with a bad label of ours: not healthther's business.
    let bystander = image.run(&unique("bystander"), &["--label", &bad_label]);
    wait_until("the target to be healthy", || sick.health() == "healthy");
    let daemon = Daemon::watching(&manual_env(&[&sick.name]));

    docker_ok(&["exec", &sick.name, "/fixture", "sick", &payload()]);
    wait_until("the prompt's record", || {
        !events(&daemon.audit(), "prompt").is_empty()
    });
    daemon.wait_log("[y]es / [n]o");
    let (code, pending, err) = client(daemon.dir.path(), &["pending"]);
    assert_eq!(code, Some(0), "pending failed: {err}");

    // The audit file keeps what was seen as it was (JSON escapes it): the payload got through.
    let prompt = events(&daemon.audit(), "prompt")[0].clone();
    let seen = prompt["seen"].as_str().unwrap_or("");
    assert!(
        seen.contains(&payload()),
        "the payload did not arrive: {prompt}"
    );

    let output = daemon.output();
    let log = daemon.human_log();
    for (what, text) in [
        ("the console", &output),
        ("the human log", &log),
        ("`healthther pending`", &pending),
    ] {
        assert!(
            forged_lines(text).is_empty(),
            "{what} has a forged line: {:?}\n{text}",
            forged_lines(text)
        );
        assert!(!text.contains('\u{1b}'), "{what} has a raw ESC:\n{text:?}");
        assert!(!text.contains('\u{7}'), "{what} has a raw BEL:\n{text:?}");
    }
    // Shown, escaped, where the operator looks.
    let escaped = format!("\\n{FORGED}  INFO healthther: revived\\x1b]0;pwned\\x07");
    assert!(
        log.contains(&escaped),
        "no escaped payload in the log:\n{log}"
    );
    assert!(
        output.contains(&escaped),
        "no escaped payload in the prompt:\n{output}"
    );
    assert!(
        pending.contains(&escaped),
        "no escaped payload in `pending`:\n{pending}"
    );

    // The target's bad label is said once, escaped; the bystander's not at all.
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("is not understood"))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}\n{log}");
    assert!(said[0].contains(&sick.name), "{}", said[0]);
    assert!(
        !output.contains(&bystander.name) && !log.contains(&bystander.name),
        "a container that is not a target was reported:\n{output}"
    );
}
