//! Manual mode: an operator answers at a real terminal, or through `pending` and `answer`.

use std::time::Duration;

use rexpect::process::{Signal, WaitStatus};

use crate::harness::*;

const CHOICES: &str = "Revive it? [y]es / [n]o / [a]lways / ne[v]er > ";

/// The prompt's first words for a killed node.
fn asked(node: &Node) -> String {
    format!("{} exited (code 137)", node.name)
}

#[test]
fn yes_revives_and_a_wrong_answer_asks_again() {
    let node = Node::start(&unique("ask_y"), &[]);
    let mut term = Terminal::start(&manual_env(&[&node.name]));
    term.expect("watching");
    let before = node.started_at();
    node.kill();

    term.expect(&asked(&node));
    term.expect(CHOICES);
    assert_eq!(node.status(), "exited", "nothing happens before the answer");

    term.type_line("perhaps");
    term.expect("Please answer y");
    term.expect(CHOICES);
    // An empty Enter shows the prompt again, for whoever attached late.
    term.type_line("");
    term.expect(&asked(&node));

    term.type_line("Y");
    node.wait_restarted_since(&before);
    term.expect("revived: running again");

    let audit = term.audit();
    assert_eq!(events(&audit, "prompt").len(), 1, "{audit:?}");
    let answer = events(&audit, "answer");
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0]["answer"], "yes");
    assert_eq!(answer[0]["by"], "terminal");
    let action = events(&audit, "action");
    assert_eq!(action.len(), 1);
    assert_eq!(action[0]["result"], "running");
    assert_eq!(action[0]["by"], "operator: yes via terminal");
}

#[test]
fn no_leaves_it_until_its_next_failure() {
    let node = Node::start(&unique("ask_n"), &[]);
    let mut term = Terminal::start(&manual_env(&[&node.name]));
    term.expect("watching");
    node.kill();
    term.expect(CHOICES);
    term.type_line("no");
    term.expect("leaving");

    // Several reconciliation passes (every 500 ms) see it exited; none asks again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(node.status(), "exited");
    let (code, out, _) = client(term.dir.path(), &["pending"]);
    assert_eq!((code, out.trim()), (Some(0), "no open prompts"));

    // Someone starts it, and it fails again: that is a new failure, asked about.
    docker_ok(&["start", &node.name]);
    node.kill();
    term.expect(CHOICES);
    assert_eq!(events(&term.audit(), "prompt").len(), 2);
    assert!(events(&term.audit(), "action").is_empty());
}

#[test]
fn always_revives_now_and_later_without_asking() {
    let node = Node::start(&unique("ask_a"), &[]);
    let mut term = Terminal::start(&manual_env(&[&node.name]));
    term.expect("watching");
    let before = node.started_at();
    node.kill();
    term.expect(CHOICES);
    term.type_line("always");
    node.wait_restarted_since(&before);

    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);

    let audit = term.audit();
    assert_eq!(events(&audit, "prompt").len(), 1, "asked once: {audit:?}");
    let actions = events(&audit, "action");
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[1]["by"], "operator: always");
}

#[test]
fn two_failures_are_asked_one_at_a_time_oldest_first() {
    let first = Node::start(&unique("ask_1"), &[]);
    let second = Node::start(&unique("ask_2"), &[]);
    let mut term = Terminal::start(&manual_env(&[&second.name, &first.name]));
    term.expect("watching");
    let (before1, before2) = (first.started_at(), second.started_at());
    first.kill();
    second.kill();

    term.expect(&asked(&first));
    wait_until("both prompts to be open", || {
        client(term.dir.path(), &["pending"]).1.lines().count() == 2
    });
    let (_, pending, _) = client(term.dir.path(), &["pending"]);
    let order: Vec<&str> = pending
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(""))
        .collect();
    assert_eq!(order, [first.name.as_str(), second.name.as_str()]);

    term.type_line("y");
    first.wait_restarted_since(&before1);
    term.expect(&asked(&second));
    assert_eq!(
        second.status(),
        "exited",
        "only the answered one is revived"
    );
    term.type_line("y");
    second.wait_restarted_since(&before2);
}

#[test]
fn pending_and_answer_work_without_a_terminal() {
    let node = Node::start(&unique("ask_sock"), &[]);
    // stdin is /dev/null here.
    let daemon = Daemon::watching(&manual_env(&[&node.name]));
    daemon.wait_log("stdin is not a terminal");
    daemon.wait_log("healthther answer TARGET");
    let before = node.started_at();
    node.kill();
    // The prompt is on stdout all the same, for `docker logs`.
    daemon.wait_log(CHOICES);

    let dir = daemon.dir.path();
    let (code, out, _) = client(dir, &["pending"]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with(&format!("{}\texited (code 137)\t", node.name)),
        "{out}"
    );

    let (code, _, err) = client(dir, &["answer", &node.name, "maybe"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("\"maybe\" is not an answer"), "{err}");
    let (code, _, err) = client(dir, &["answer", "nodo_nobody", "yes"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no open prompt for nodo_nobody"), "{err}");

    let (code, out, err) = client(dir, &["answer", &node.name, "yes"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("reviving"), "{out}");
    node.wait_restarted_since(&before);

    let audit = daemon.wait_audit(3);
    let answer = events(&audit, "answer");
    assert!(
        answer[0]["by"]
            .as_str()
            .is_some_and(|b| b.starts_with("control socket (uid ")),
        "{answer:?}"
    );
    assert_eq!(events(&audit, "action").len(), 1);
}

#[test]
fn answering_with_no_daemon_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, _, err) = client(dir.path(), &["pending"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot reach healthther at healthther.sock"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_prompt_is_dropped_when_the_target_comes_back_by_itself() {
    let node = Node::start(&unique("ask_back"), &[]);
    let daemon = Daemon::watching(&manual_env(&[&node.name]));
    node.kill();
    daemon.wait_log(CHOICES);
    docker_ok(&["start", &node.name]);
    daemon.wait_log("dropping the prompt");
    let (_, out, _) = client(daemon.dir.path(), &["pending"]);
    assert_eq!(out.trim(), "no open prompts");
    assert_eq!(events(&daemon.audit(), "prompt_dropped").len(), 1);
}

#[test]
fn sigterm_while_a_prompt_waits_exits_zero() {
    let node = Node::start(&unique("ask_term"), &[]);
    let mut term = Terminal::start(&manual_env(&[&node.name]));
    term.expect("watching");
    node.kill();
    term.expect(CHOICES);
    term.session
        .process_mut()
        .signal(Signal::SIGTERM)
        .expect("send SIGTERM");
    term.expect("stopped");
    let status = term.session.process().wait().expect("wait for healthther");
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "exit status: {status:?}"
    );
}

#[test]
fn an_answer_given_while_a_look_is_under_way_is_not_asked_again() {
    // Every inspect takes 300 ms and a pass starts every 100 ms, so when the answer comes a
    // look at the same container is almost always under way.
    let node = Node::start(&unique("ask_race"), &[]);
    let proxy = Proxy::in_temp_dir();
    proxy.set_faults(Faults {
        delay: vec![("GET", "/json", Duration::from_millis(300))],
        ..Faults::default()
    });
    let env = format!(
        "{}RUST_LOG=debug\n",
        manual_env(&[&node.name]).replace("500ms", "100ms")
    );
    let (mut cmd, dir) = command(&env);
    cmd.env("DOCKER_HOST", proxy.url());
    let daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("watching");
    for round in 1..=3 {
        let before = node.started_at();
        node.kill();
        wait_until("the prompt", || {
            client(daemon.dir.path(), &["pending"])
                .1
                .contains(&node.name)
        });
        let (code, _, err) = client(daemon.dir.path(), &["answer", &node.name, "yes"]);
        assert_eq!(code, Some(0), "{err}");
        node.wait_restarted_since(&before);
        wait_until("the action record", || {
            events(&daemon.audit(), "action").len() == round
        });
        std::thread::sleep(Duration::from_secs(1));
        let audit = daemon.audit();
        assert_eq!(
            events(&audit, "prompt").len(),
            round,
            "asked again: {audit:?}"
        );
    }
}
