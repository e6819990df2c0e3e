//! ntfy: the prompt's buttons publish `<token> <answer>` to the reply topic, and healthther
//! reads that topic's JSON stream (`GET /<topic>/json?since=`), one message a line. After a cut
//! it asks again from the last message it read, so an answer given meanwhile is read then; each
//! message's id is remembered, so none is applied twice.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{answer, Said, ANSWER_MAX};
use crate::control::Input;
use crate::notify::channel::{Channel, Configured};
use crate::notify::request;
use crate::notify::send::{self, Shared};
use crate::prompt::{self, Answer};

/// ntfy sends a keepalive every 45 s by default: a stream silent this long is dead.
const SILENT: Duration = Duration::from_secs(150);
/// The longest line read; past it the line is dropped up to its end.
const LINE_MAX: usize = 64 * 1024;
/// How many message ids are remembered, so that none is applied twice.
const IDS_KEPT: usize = 1024;

pub(super) async fn run(
    c: &Configured,
    answers: &mpsc::Sender<Input>,
    shared: &Shared,
    said: &mut Said,
) {
    let Channel::Ntfy {
        base,
        auth,
        reply: Some(topic),
        ..
    } = &c.channel
    else {
        return;
    };
    // Only what is published from now on: an earlier run's answers name its own prompts.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut reader = Reader::new(now.to_string());
    loop {
        let r = request::ntfy_subscribe(base, topic, auth.as_ref(), &reader.since);
        let why = match read(&shared.listen, r, &mut reader, answers, said).await {
            Ok(Stop::Gone) => return,
            Ok(Stop::Cut) => "the server closed the stream".to_string(),
            Err(e) => c.channel.scrub(&e.to_string()),
        };
        tokio::time::sleep(said.failed(&why)).await;
    }
}

enum Stop {
    /// The watch loop is gone: healthther stops.
    Gone,
    /// The stream ended.
    Cut,
}

/// One subscription, read until it ends.
async fn read(
    client: &crate::http_client::Client,
    r: request::HttpRequest,
    reader: &mut Reader,
    answers: &mpsc::Sender<Input>,
    said: &mut Said,
) -> Result<Stop, send::SendError> {
    let silent = || send::SendError::Transport(format!("nothing heard for {}s", SILENT.as_secs()));
    // The answer's head is bounded as each piece of the stream is: a server that takes the
    // subscription and says nothing would otherwise hold the reader for good.
    let mut resp = tokio::time::timeout(SILENT, send::open(client, r))
        .await
        .map_err(|_| silent())??;
    loop {
        let chunk = match tokio::time::timeout(SILENT, resp.chunk()).await {
            Err(_) => return Err(silent()),
            Ok(Err(e)) => return Err(send::transport(e)),
            Ok(Ok(None)) => return Ok(Stop::Cut),
            Ok(Ok(Some(chunk))) => chunk,
        };
        for got in reader.feed(&chunk) {
            said.works();
            match got {
                Got::Nothing => {}
                Got::Garbled { id, why } => {
                    if let Some(held) = said.stranger() {
                        warn!(
                            ntfy_message = id.as_deref().unwrap_or("?"),
                            "a message on the ntfy reply topic that is no answer ({why}): \
                             ignored{held}"
                        );
                    }
                }
                Got::Answer { token, answer: a } => {
                    let Some(reply) = answer(answers, &token, a, "ntfy".into()).await else {
                        return Ok(Stop::Gone);
                    };
                    debug!(ok = reply.ok, "an answer via ntfy: {}", reply.text);
                }
            }
        }
    }
}

/// What one line of the stream holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Got {
    /// The stream's own events (`open`, `keepalive`), or a message read before.
    Nothing,
    /// An answer: the token as it came (the watch loop judges it) and the answer.
    Answer { token: String, answer: Answer },
    /// A message that is no answer, with its id where it has one: logged, once, and ignored.
    Garbled {
        id: Option<String>,
        why: &'static str,
    },
}

/// The stream's lines, read as they come in chunks; where to resume after a cut.
pub(super) struct Reader {
    /// The last message's id (or, before any, the time the subscription began).
    pub since: String,
    seen: VecDeque<String>,
    partial: Vec<u8>,
    /// A line over [`LINE_MAX`] is being dropped to its end.
    dropping: bool,
}

impl Reader {
    pub fn new(since: String) -> Reader {
        Reader {
            since,
            seen: VecDeque::new(),
            partial: Vec::new(),
            dropping: false,
        }
    }

    /// What each line completed by `chunk` holds.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Got> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(end);
            rest = &tail[1..];
            if std::mem::take(&mut self.dropping) {
                self.partial.clear();
                continue;
            }
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(head);
            if line.len() > LINE_MAX {
                out.push(Got::Garbled {
                    id: None,
                    why: "a line over 64 KiB",
                });
                continue;
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.push(self.take(&line));
            }
        }
        if !self.dropping {
            self.partial.extend_from_slice(rest);
            if self.partial.len() > LINE_MAX {
                self.partial.clear();
                self.dropping = true;
                out.push(Got::Garbled {
                    id: None,
                    why: "a line over 64 KiB",
                });
            }
        }
        out
    }

    /// What one line holds; a message id read before holds nothing.
    fn take(&mut self, line: &[u8]) -> Got {
        let (id, got) = parse_line(line);
        let Some(id) = id else { return got };
        if self.seen.contains(&id) {
            return Got::Nothing;
        }
        if self.seen.len() == IDS_KEPT {
            self.seen.pop_front();
        }
        self.seen.push_back(id.clone());
        self.since = id;
        got
    }
}

/// One line of ntfy's JSON stream: the message's id (messages only) and what it holds.
pub(super) fn parse_line(line: &[u8]) -> (Option<String>, Got) {
    let garbled = |id: Option<String>, why| {
        let got = Got::Garbled {
            id: id.clone(),
            why,
        };
        (id, got)
    };
    let Ok(text) = std::str::from_utf8(line) else {
        return garbled(None, "not UTF-8");
    };
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return garbled(None, "not JSON");
    };
    if v["event"].as_str() != Some("message") {
        return (None, Got::Nothing);
    }
    // ntfy's ids are 12 letters and digits; anything else cannot be resumed from.
    let id = v["id"]
        .as_str()
        .filter(|id| (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    let Some(id) = id.map(String::from) else {
        return garbled(None, "a message without a proper id");
    };
    // ntfy makes a body that is too long or not UTF-8 an attachment.
    if !v["attachment"].is_null() {
        return garbled(Some(id), "an attachment: too long, or not UTF-8");
    }
    let Some(message) = v["message"].as_str() else {
        return garbled(Some(id), "no message text");
    };
    if message.len() > ANSWER_MAX {
        return garbled(Some(id), "over 4 KiB");
    }
    match parse_answer(message) {
        Some((token, answer)) => (
            Some(id),
            Got::Answer {
                token: token.to_string(),
                answer,
            },
        ),
        None => garbled(Some(id), "not `TOKEN ANSWER`"),
    }
}

/// `<token> <answer>`, as the buttons publish it ([`request::ntfy_answer`]).
pub(super) fn parse_answer(text: &str) -> Option<(&str, Answer)> {
    let mut words = text.split_ascii_whitespace();
    let (token, word) = (words.next()?, words.next()?);
    if words.next().is_some() || token.len() > 64 || !token.is_ascii() {
        return None;
    }
    match word {
        "yes" | "no" | "always" | "never" => Some((token, prompt::parse_answer(word)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123abcd.0123456789abcdef0123456789abcdef";

    fn message(id: &str, text: &str) -> String {
        serde_json::json!({"id": id, "time": 1, "event": "message", "topic": "r", "message": text})
            .to_string()
    }

    #[test]
    fn answers_are_read_off_the_stream_in_any_chunks() {
        let mut r = Reader::new("100".into());
        let stream = format!(
            "{{\"id\":\"o1\",\"event\":\"open\",\"topic\":\"r\"}}\n{}\n{{\"event\":\"keepalive\",\"id\":\"k\"}}\n{}\n",
            message("AbC123", &format!("{TOKEN} yes")),
            message("AbC124", &format!(" {TOKEN}\tnever \n")),
        );
        let mut got = Vec::new();
        for chunk in stream.as_bytes().chunks(7) {
            got.extend(r.feed(chunk));
        }
        let answers: Vec<&Got> = got.iter().filter(|g| **g != Got::Nothing).collect();
        assert_eq!(
            answers,
            [
                &Got::Answer {
                    token: TOKEN.into(),
                    answer: Answer::Yes
                },
                &Got::Answer {
                    token: TOKEN.into(),
                    answer: Answer::Never
                },
            ]
        );
        assert_eq!(r.since, "AbC124");
        // Read again after a cut (`since` may give the last one back): nothing twice.
        assert_eq!(
            r.feed(format!("{}\n", message("AbC124", &format!("{TOKEN} yes"))).as_bytes()),
            [Got::Nothing]
        );
    }

    #[test]
    fn hostile_lines_are_garbled_and_the_stream_goes_on() {
        let mut r = Reader::new("1".into());
        let long = message("L1", &"x".repeat(ANSWER_MAX + 1));
        let attached = serde_json::json!({"id": "A1", "event": "message",
            "message": "You received a file", "attachment": {"name": "a.bin"}})
        .to_string();
        let lines: Vec<Vec<u8>> = vec![
            b"{not json".to_vec(),
            vec![0xff, 0xfe, b'{', b'}'],
            message("x/../y", &format!("{TOKEN} yes")).into_bytes(),
            serde_json::json!({"event": "message", "message": "t yes"})
                .to_string()
                .into_bytes(),
            long.into_bytes(),
            attached.into_bytes(),
            message("G1", "yes").into_bytes(),
            message("G2", &format!("{TOKEN} yes please")).into_bytes(),
            message("G3", &format!("{TOKEN} y")).into_bytes(),
            message("G4", &format!("{TOKEN} YES")).into_bytes(),
            message("G5", &format!("{} yes", "a".repeat(65))).into_bytes(),
            message("G6", "\u{1b}[2J\u{202e} yes").into_bytes(),
            message("G7", "").into_bytes(),
        ];
        for line in &lines {
            let mut chunk = line.clone();
            chunk.push(b'\n');
            let got = r.feed(&chunk);
            assert!(
                matches!(got.as_slice(), [Got::Garbled { .. }]),
                "{:?}: {got:?}",
                String::from_utf8_lossy(line)
            );
        }
        // Each is one message, read once: none is told of again after a cut.
        assert_eq!(
            r.feed(format!("{}\n", message("G1", "yes")).as_bytes()),
            [Got::Nothing]
        );
        assert_eq!(r.since, "G7");
        // A token that is no token of ours still goes to the watch loop, which judges it.
        assert!(matches!(
            &r.feed(format!("{}\n", message("M1", "made-up never")).as_bytes())[..],
            [Got::Answer { token, .. }] if token == "made-up"
        ));
    }

    /// A server that takes the subscription and never answers it: the stream's silence limit
    /// holds before its head too, so the reader tries again rather than wait forever.
    #[tokio::test(start_paused = true)]
    async fn a_subscription_never_answered_is_given_up_on() {
        let hole = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = hole.local_addr().expect("address").port();
        let _held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = hole.accept().await {
                held.push(conn);
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let c = crate::notify::channel::parse(&format!(
            "ntfy://127.0.0.1:{port}/t?scheme=http&reply=r"
        ))
        .expect("a channel");
        let (answers, _rx) = mpsc::channel(1);
        let mut said = Said::new(&c);
        let mut reader = Reader::new("1".into());
        let r = request::ntfy_subscribe(&base, "r", None, "1");
        let listening = send::listening_client();
        let got = tokio::time::timeout(
            SILENT * 2,
            read(&listening, r, &mut reader, &answers, &mut said),
        )
        .await;
        assert!(matches!(got, Ok(Err(_))), "{:?}", got.map(|r| r.map(drop)));
    }

    #[test]
    fn an_endless_line_is_dropped_to_its_end() {
        let mut r = Reader::new("1".into());
        let mut got = Vec::new();
        for _ in 0..20 {
            got.extend(r.feed(&[b'x'; 8192]));
        }
        got.extend(r.feed(format!("x\n{}\n", message("N1", &format!("{TOKEN} no"))).as_bytes()));
        assert_eq!(
            got,
            [
                Got::Garbled {
                    id: None,
                    why: "a line over 64 KiB"
                },
                Got::Answer {
                    token: TOKEN.into(),
                    answer: Answer::No
                },
            ]
        );
        assert!(r.partial.is_empty());
    }
}
