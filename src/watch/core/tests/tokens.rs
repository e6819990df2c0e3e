//! Answers carried back by a chat's buttons: each bound by its token to one open prompt, on
//! the host that asked; anything else does nothing.

use super::world::World;
use super::*;
use crate::prompt::{host_tag, Answer, Token};

/// The token of the prompt opened among `out`.
fn token(out: &[Command]) -> Token {
    outcomes(out)
        .into_iter()
        .find_map(|w| match w {
            What::Asked { token, .. } => token.clone(),
            _ => None,
        })
        .expect("a prompt with a token")
}

fn by_token(w: &mut World, token: &str, answer: Answer, by: &str) -> (Reply, Vec<Command>) {
    let token = token.into();
    w.request_by(Request::AnswerToken { token, answer }, by)
}

fn manual() -> World {
    let mut w = World::new("manual", "nodo_1,nodo_2");
    w.add(&c("1", "nodo_1", None, None))
        .add(&c("2", "nodo_2", None, None))
        .connect();
    w
}

#[test]
fn a_button_pressed_revives_its_container_once_and_says_who_and_where() {
    let mut w = manual();
    let t = token(&w.kill("nodo_1").drive());
    let (reply, out) = by_token(&mut w, t.as_str(), Answer::Yes, "telegram (user 42)");
    assert!(reply.ok, "{}", reply.text);
    let a = acts(&out);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].seen.container.id, "1");
    let action = records(&out)
        .into_iter()
        .find(|r| r.event == RecordEvent::Action)
        .expect("the action's record");
    assert_eq!(
        action.by.as_deref(),
        Some("operator: yes via telegram (user 42)")
    );
    // Pressed again (a retry, a replay): nothing more, and told why.
    let (reply, out) = by_token(&mut w, t.as_str(), Answer::Yes, "telegram (user 42)");
    assert!(!reply.ok);
    assert!(reply.text.contains("closed"), "{}", reply.text);
    assert!(acts(&out).is_empty());
}

#[test]
fn a_token_answers_only_its_own_prompt_and_the_first_answer_wins() {
    let mut w = manual();
    let t1 = token(&w.kill("nodo_1").drive());
    let t2 = token(&w.kill("nodo_2").drive());
    assert_ne!(t1, t2);
    let (reply, out) = by_token(&mut w, t2.as_str(), Answer::Yes, "ntfy");
    assert!(reply.ok, "{}", reply.text);
    let a = acts(&out);
    assert_eq!((a.len(), a[0].seen.container.id.as_str()), (1, "2"));
    // The terminal answers nodo_1 first; the button pressed after it does nothing.
    let (reply, _) = w.answer("nodo_1", "no");
    assert!(reply.ok, "{}", reply.text);
    let (reply, out) = by_token(&mut w, t1.as_str(), Answer::Yes, "ntfy");
    assert!(!reply.ok);
    assert!(reply.text.contains("answered no"), "{}", reply.text);
    assert!(acts(&out).is_empty());
    assert_eq!(w.get("nodo_1").status, Status::Exited);
}

#[test]
fn made_up_foreign_and_garbled_tokens_do_nothing() {
    let mut w = manual();
    let real = token(&w.kill("nodo_1").drive());
    let ours = real.tag().to_string();
    let other_host = host_tag("another-host");
    for (token, why) in [
        (Token::of(&ours, 7).as_str().to_string(), "no such prompt"),
        (
            Token::of(&other_host, 7).as_str().to_string(),
            "not this host's",
        ),
        (format!("{}\u{1b}[2J", real.as_str()), "not an answer"),
        ("yes".to_string(), "not an answer"),
        (real.as_str()[..40].to_string(), "not an answer"),
    ] {
        let (reply, out) = by_token(&mut w, &token, Answer::Yes, "ntfy");
        assert!(!reply.ok, "{token:?}");
        assert!(reply.text.contains(why), "{token:?}: {}", reply.text);
        assert!(acts(&out).is_empty(), "{token:?}");
    }
    // The real one still works.
    let (reply, out) = by_token(&mut w, real.as_str(), Answer::Yes, "ntfy");
    assert!(reply.ok, "{}", reply.text);
    assert_eq!(acts(&out).len(), 1);
}

#[test]
fn a_prompt_dropped_because_it_runs_again_closes_its_token() {
    let mut w = manual();
    let t = token(&w.kill("nodo_1").drive());
    // Someone starts it by hand: the prompt is dropped.
    w.start("nodo_1").drive();
    let (reply, out) = by_token(&mut w, t.as_str(), Answer::Yes, "ntfy");
    assert!(!reply.ok);
    assert!(
        reply.text.contains("closed: it was dropped"),
        "{}",
        reply.text
    );
    assert!(acts(&out).is_empty());
}

#[test]
fn a_new_failure_gets_a_new_token_and_the_old_one_is_closed() {
    let mut w = manual();
    let t1 = token(&w.kill("nodo_1").drive());
    w.start("nodo_1").drive();
    w.advance(Duration::from_secs(1)).drive();
    let t2 = token(&w.kill("nodo_1").drive());
    assert_ne!(t1, t2);
    let (reply, _) = by_token(&mut w, t1.as_str(), Answer::Yes, "ntfy");
    assert!(!reply.ok, "{}", reply.text);
    let (reply, out) = by_token(&mut w, t2.as_str(), Answer::No, "ntfy");
    assert!(reply.ok, "{}", reply.text);
    assert!(acts(&out).is_empty(), "no leaves it: {out:?}");
    assert_eq!(w.get("nodo_1").status, Status::Exited);
}

#[test]
fn tokens_never_reach_the_audit_file_or_status() {
    let mut w = manual();
    let out = w.kill("nodo_1").drive();
    let t = token(&out);
    for r in records(&out) {
        let line = serde_json::to_string(&r).expect("a record serializes");
        assert!(!line.contains(&t.as_str()[9..]), "{line}");
    }
    for json in [true, false] {
        let (reply, _) = w.request(Request::Status { json });
        assert!(!reply.text.contains(&t.as_str()[9..]), "{}", reply.text);
    }
    let (reply, _) = w.request(Request::Pending);
    assert!(!reply.text.contains(&t.as_str()[9..]), "{}", reply.text);
}

/// What the core logs while `f` runs.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Kept(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Kept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let kept = Kept::default();
    let writer = kept.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = kept.0.lock().expect("not poisoned").clone();
    String::from_utf8(text).expect("UTF-8")
}

#[test]
fn a_flood_of_made_up_answers_is_a_few_lines_a_minute_not_one_each() {
    let mut w = manual();
    let real = token(&w.kill("nodo_1").drive());
    let text = logged(|| {
        for n in 0..500u128 {
            by_token(
                &mut w,
                Token::of(real.tag(), n).as_str(),
                Answer::Yes,
                "ntfy",
            );
        }
    });
    let lines = text.matches("an answer that does nothing").count();
    assert!((1..=20).contains(&lines), "{lines} lines:\n{text}");
    // A minute on, the next is said, with how many were not.
    w.advance(Duration::from_secs(61));
    let text = logged(|| {
        by_token(
            &mut w,
            Token::of(real.tag(), 1000).as_str(),
            Answer::Yes,
            "ntfy",
        );
    });
    assert!(text.contains("an answer that does nothing"), "{text}");
    assert!(text.contains("more like it were not logged"), "{text}");
}
