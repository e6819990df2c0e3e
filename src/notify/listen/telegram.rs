//! Telegram: the prompt's inline keyboard, read with `getUpdates` long polling. Each update
//! is confirmed by the next call's `offset` once it is handled, so none is lost across a cut
//! and none is applied twice. A press is answered (`answerCallbackQuery`) whoever made it; only
//! a press by one of the channel's `approvers` answers the prompt, and then the prompt's
//! message is edited to say who answered and what followed (its buttons go).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::Said;
use crate::control::Input;
use crate::notify::channel::{Channel, Configured, Secret};
use crate::notify::request::{self, Bases, TELEGRAM_POLL};
use crate::notify::send::{self, SendError, Shared};
use crate::prompt::{self, Answer};

/// How long a `getUpdates` may take beyond its own long-polling wait.
const SLACK: Duration = Duration::from_secs(15);
/// The longest `getUpdates` answer read (100 updates of at most a few KiB each).
const UPDATES_MAX: usize = 1 << 20;
/// How many refused users are remembered as logged: past it, more are refused unlogged,
/// so a crowd of accounts cannot grow memory.
const REFUSED_KEPT: usize = 1024;

pub(super) async fn run(
    c: &Configured,
    answers: &mpsc::Sender<Input>,
    shared: &Shared,
    said: &mut Said,
) {
    let Channel::Telegram {
        token, approvers, ..
    } = &c.channel
    else {
        return;
    };
    let mut offset: Option<i64> = None;
    let mut refused: HashSet<i64> = HashSet::new();
    let host_tag = prompt::host_tag(&shared.host);
    let mut told_shared = false;
    loop {
        let body = request::telegram_updates(offset, TELEGRAM_POLL);
        let r = request::telegram_call(&shared.bases, token, "getUpdates", &body);
        let wait = Duration::from_secs(TELEGRAM_POLL) + SLACK;
        // A byte past the most read, so that an answer over it is told as one.
        let read = send::send_http_read(&shared.listen, r, UPDATES_MAX + 1);
        let got = tokio::time::timeout(wait, read)
            .await
            .unwrap_or(Err(SendError::Timeout));
        let updates = match got
            .map_err(|e| e.to_string())
            .and_then(|b| parse_updates(&b))
        {
            Ok(updates) => updates,
            Err(why) => {
                tokio::time::sleep(said.failed(&c.channel.scrub(&why))).await;
                continue;
            }
        };
        said.works();
        for u in updates {
            // An update before the offset was confirmed already: never applied twice.
            if offset.is_some_and(|o| u.id < o) {
                continue;
            }
            offset = Some(u.id.saturating_add(1));
            let Some(press) = u.press else { continue };
            let call = Call {
                bases: &shared.bases,
                token,
                client: &shared.client,
                channel: c,
                host_tag: &host_tag,
            };
            if !handle(
                &press,
                approvers,
                (&mut refused, &mut *said),
                &mut told_shared,
                answers,
                &call,
            )
            .await
            {
                return;
            }
        }
    }
}

/// What a Telegram call needs.
struct Call<'a> {
    bases: &'a Bases,
    token: &'a Secret,
    client: &'a crate::http_client::Client,
    channel: &'a Configured,
    /// The tag this host's tokens begin with.
    host_tag: &'a str,
}

impl Call<'_> {
    /// One call, its failure logged (scrubbed): the press is handled either way.
    async fn call(&self, method: &str, body: &Value) {
        let r = request::telegram_call(self.bases, self.token, method, body);
        let sent = tokio::time::timeout(send::SEND_TIMEOUT, send::send_http(self.client, r))
            .await
            .unwrap_or(Err(SendError::Timeout));
        if let Err(e) = sent {
            warn!(channel = %self.channel.shown, "telegram {method} failed: {}",
                self.channel.channel.scrub(&e.to_string()));
        }
    }
}

/// Handles one press; `false` once the watch loop is gone.
async fn handle(
    press: &Press,
    approvers: &[i64],
    (refused, said): (&mut HashSet<i64>, &mut Said),
    told_shared: &mut bool,
    answers: &mpsc::Sender<Input>,
    call: &Call<'_>,
) -> bool {
    let confirm = |text: &str| request::telegram_confirm(&press.query, text);
    // Who pressed comes first: a user's own client can send any callback data, so what a
    // press carries is read only for an approver, and anyone else is refused (and logged
    // once) whatever they send.
    if !approvers.contains(&press.user) {
        if refused.len() < REFUSED_KEPT && refused.insert(press.user) {
            if let Some(held) = said.stranger() {
                warn!(
                    user = press.user,
                    "a Telegram button press by user {}, who is not among the channel's \
                     approvers: refused{held}",
                    press.user
                );
            }
        }
        call.call(
            "answerCallbackQuery",
            &confirm("refused: you are not among this healthther's approvers"),
        )
        .await;
        return true;
    }
    let Some((token, answer)) = press.answer() else {
        warn!(
            user = press.user,
            "a Telegram button press that is no answer: ignored"
        );
        call.call(
            "answerCallbackQuery",
            &confirm("not an answer healthther knows"),
        )
        .await;
        return true;
    };
    // Another host's prompt: its healthther polls this bot too, and Telegram hands each
    // update to one poller only. Its message keeps its buttons, so the press can be tried
    // again; the misconfiguration is said once.
    if prompt::Token::parse(token).is_some_and(|t| t.tag() != call.host_tag) {
        if !std::mem::replace(told_shared, true) {
            warn!(
                channel = %call.channel.shown,
                "a Telegram press on another host's prompt reached this healthther: the bot is \
                 polled by more than one healthther, and each press reaches only one of them. \
                 Give each host a bot of its own"
            );
        }
        call.call(
            "answerCallbackQuery",
            &confirm(
                "not answered: this prompt is another host's, whose healthther shares this \
                 bot; press again, or answer it on that host",
            ),
        )
        .await;
        return true;
    }
    let peer = format!("telegram (user {})", press.user);
    let Some(reply) = super::answer(answers, token, answer, peer).await else {
        return false;
    };
    debug!(ok = reply.ok, "an answer via telegram: {}", reply.text);
    call.call("answerCallbackQuery", &confirm(&reply.text))
        .await;
    if let Some(m) = &press.message {
        let said = if reply.ok {
            format!(
                "answered {} by user {}: {}",
                answer.word(),
                press.user,
                reply.text
            )
        } else {
            format!(
                "{} pressed by user {}: {}",
                answer.word(),
                press.user,
                reply.text
            )
        };
        let text = format!("{}\n\n{said}", m.text);
        call.call(
            "editMessageText",
            &request::telegram_edit(m.chat, m.id, &text),
        )
        .await;
    }
    true
}

/// One update from `getUpdates`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Update {
    pub id: i64,
    /// `None` for anything but a button press (only those are asked for).
    pub press: Option<Press>,
}

/// A press of an inline keyboard's button.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Press {
    /// The callback query's id, which `answerCallbackQuery` names.
    pub query: String,
    /// Who pressed: a number, so nothing of the chat's text reaches a log through it.
    pub user: i64,
    /// The button's `callback_data`.
    pub data: String,
    /// The message the button was on, where Telegram says.
    pub message: Option<Pressed>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Pressed {
    pub chat: i64,
    pub id: i64,
    pub text: String,
}

impl Press {
    /// `<token>:<answer>`, as the buttons carry it ([`request::telegram_answer`]).
    pub fn answer(&self) -> Option<(&str, Answer)> {
        let (token, word) = self.data.split_once(':')?;
        if self.data.len() > 64 || !token.is_ascii() {
            return None;
        }
        match word {
            "yes" | "no" | "always" | "never" => Some((token, prompt::parse_answer(word)?)),
            _ => None,
        }
    }
}

/// A `getUpdates` answer: its updates, or why it is none.
pub(super) fn parse_updates(body: &[u8]) -> Result<Vec<Update>, String> {
    if body.len() > UPDATES_MAX {
        return Err("an answer over 1 MiB".into());
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "an answer that is not JSON".to_string())?;
    if v["ok"] != Value::Bool(true) {
        let said = v["description"].as_str().unwrap_or("no reason given");
        return Err(format!(
            "Telegram refused: {}",
            crate::escape::control(&said.chars().take(200).collect::<String>())
        ));
    }
    let Some(result) = v["result"].as_array() else {
        return Err("an answer without a list of updates".into());
    };
    // An update without an id cannot be confirmed: left out.
    Ok(result
        .iter()
        .filter_map(|u| {
            Some(Update {
                id: u["update_id"].as_i64()?,
                press: press(&u["callback_query"]),
            })
        })
        .collect())
}

fn press(q: &Value) -> Option<Press> {
    let m = &q["message"];
    Some(Press {
        query: q["id"].as_str().filter(|id| id.len() <= 64)?.to_string(),
        user: q["from"]["id"].as_i64()?,
        data: q["data"].as_str()?.to_string(),
        message: (|| {
            Some(Pressed {
                chat: m["chat"]["id"].as_i64()?,
                id: m["message_id"].as_i64()?,
                text: m["text"].as_str()?.to_string(),
            })
        })(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "0123abcd.0123456789abcdef0123456789abcdef";

    fn update(id: i64, user: Value, data: Value) -> Value {
        json!({"update_id": id, "callback_query": {
            "id": "4382bfdwdsb323b2d9", "from": {"id": user, "is_bot": false, "first_name": "A"},
            "message": {"message_id": 7, "chat": {"id": -100123, "type": "group"}, "date": 1,
                "text": "healthther on h: nodo_1 waiting for an answer"},
            "chat_instance": "1", "data": data}})
    }

    #[test]
    fn presses_are_read_with_who_pressed_and_where() {
        let body = json!({"ok": true, "result": [
            update(10, json!(42), json!(format!("{TOKEN}:yes"))),
            {"update_id": 11, "message": {"text": "hello"}},
        ]});
        let got = parse_updates(body.to_string().as_bytes()).unwrap();
        assert_eq!(got.len(), 2);
        let p = got[0].press.as_ref().unwrap();
        assert_eq!((got[0].id, p.user), (10, 42));
        assert_eq!(p.answer(), Some((TOKEN, Answer::Yes)));
        assert_eq!(p.query, "4382bfdwdsb323b2d9");
        let m = p.message.as_ref().unwrap();
        assert_eq!((m.chat, m.id), (-100123, 7));
        assert_eq!(
            got[1],
            Update {
                id: 11,
                press: None
            }
        );
    }

    #[test]
    fn hostile_updates_answer_nothing() {
        for bad in [
            &b"<html>502</html>"[..],
            b"{\"ok\":false,\"description\":\"Conflict: terminated by other getUpdates\\u001b[2J\"}",
            b"{\"ok\":true}",
            b"{\"ok\":\"true\",\"result\":[]}",
            &[0xff, 0xfe][..],
        ] {
            let e = parse_updates(bad).unwrap_err();
            assert!(!e.contains('\u{1b}'), "{e}");
        }
        let body = json!({"ok": true, "result": [
            {"callback_query": {"id": "q", "from": {"id": 1}, "data": "x"}},
            update(1, json!("42; rm -rf"), json!(format!("{TOKEN}:yes"))),
            update(2, json!(42), json!(42)),
            update(3, json!(42), json!(format!("{TOKEN}:YES"))),
            update(4, json!(42), json!(format!("{TOKEN}:yes:no"))),
            update(5, json!(42), json!(format!("{}:yes", "é".repeat(20)))),
            update(6, json!(42), json!(format!("{}:yes", "a".repeat(70)))),
            update(7, json!(42), json!("yes")),
        ]});
        let got = parse_updates(body.to_string().as_bytes()).unwrap();
        // The one without an id is left out; the rest are confirmed, and answer nothing.
        assert_eq!(
            got.iter().map(|u| u.id).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6, 7]
        );
        for u in &got {
            assert!(u.press.as_ref().and_then(Press::answer).is_none(), "{u:?}");
        }
    }
}
