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

/// What a health check may say to reach a chat: Slack's `<!channel>` and a link with a text of
/// its own, Discord's `@everyone` and a masked link, then a forged line and an OSC.
fn chat_payload() -> String {
    format!(
        "<!channel> <https://evil.example|click> @everyone [x](https://evil.example){}",
        payload()
    )
}

#[test]
fn chats_get_container_text_with_their_markup_and_mentions_escaped() {
    let server = crate::notify::Capture::start();
    let image = Image::build();
    let node = image.run(&unique("chat"), &[]);
    wait_until("the target to be healthy", || node.health() == "healthy");
    let urls = [
        format!("generic+http://127.0.0.1:{}/hook", server.port),
        "slack://TSeCrEt/BSeCrEt/XSeCrEt".to_string(),
        "discord://DiscSeCrEt@4242".to_string(),
        "telegram://777:TgSeCrEt@telegram?chats=@ops".to_string(),
    ];
    let dotenv = format!(
        "{}HEALTH_NOTIFY=\"{}\"\nHEALTH_NOTIFY_API_BASE={}\n",
        auto_env(&[&node.name]),
        urls.join(" "),
        server.base()
    );
    let _daemon = Daemon::watching(&dotenv);
    let before = node.started_at();
    docker_ok(&["exec", &node.name, "/fixture", "sick", &chat_payload()]);
    node.wait_restarted_since(&before);
    wait_until("a request on each of the four APIs", || {
        ["/hook", "/services/", "/api/webhooks/", "/bot"]
            .iter()
            .all(|p| !server.on(p).is_empty())
    });
    let told = |path: &str, field: &str| -> String {
        server
            .on(path)
            .iter()
            .map(|s| s.json()[field].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let generic = told("/hook", "message");
    let slack = told("/services/", "text");
    let discord = told("/api/webhooks/", "content");
    let telegram = told("/bot", "text");
    for (what, text) in [
        ("the webhook's message", &generic),
        ("Slack", &slack),
        ("Discord", &discord),
        ("Telegram", &telegram),
    ] {
        assert!(
            text.contains("sick"),
            "{what} did not tell the output: {text}"
        );
        assert!(
            forged_lines(text).is_empty(),
            "{what} has a forged line:\n{text}"
        );
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{what} has raw controls: {text:?}"
        );
    }
    // The webhook's records keep the text as it was, for machines (JSON escapes it).
    let records: Vec<serde_json::Value> = server
        .on("/hook")
        .iter()
        .flat_map(|s| s.json()["records"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["seen"].as_str().unwrap_or("").contains(&chat_payload())),
        "{records:?}"
    );

    // Slack acts on <!channel> and <url|text>: escaped as Slack documents.
    assert!(slack.contains("&lt;!channel&gt;"), "{slack}");
    assert!(
        slack.contains("&lt;https://evil.example|click&gt;"),
        "{slack}"
    );
    assert!(!slack.contains("<!channel>"), "{slack}");
    // Discord pings no one, whatever the text says, and shows no masked link.
    for d in server.on("/api/webhooks/") {
        assert_eq!(
            d.json()["allowed_mentions"],
            serde_json::json!({ "parse": [] }),
            "{}",
            d.text()
        );
    }
    assert!(!discord.contains("[x](https"), "{discord}");
    // Telegram gets plain text: no parse mode that would read markup.
    for t in server.on("/bot") {
        assert!(t.json().get("parse_mode").is_none(), "{}", t.text());
    }
}
