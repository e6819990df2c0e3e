//! The translation of a message into the HTTP requests each service's documented API expects:
//! plain data, no I/O, so each channel's request is a table test.

use base64::Engine as _;
use serde_json::json;

use super::alert::Alert;
use super::channel::{Basic, Channel};
use super::message::Message;
use crate::prompt::{Answer, Token};

/// The hosted services' addresses, overridable for tests and for egress proxies
/// (`HEALTH_NOTIFY_API_BASE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bases {
    pub slack: String,
    pub discord: String,
    pub telegram: String,
}

impl Bases {
    pub fn new(over: Option<&str>) -> Bases {
        match over {
            Some(b) => {
                let b = b.trim_end_matches('/');
                Bases {
                    slack: b.into(),
                    discord: b.into(),
                    telegram: b.into(),
                }
            }
            None => Bases {
                slack: "https://hooks.slack.com".into(),
                discord: "https://discord.com".into(),
                telegram: "https://api.telegram.org".into(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Discord cuts nothing for you: it refuses content over 2000 characters.
const DISCORD_MAX: usize = 2000;
/// Telegram refuses texts over 4096 characters.
const TELEGRAM_MAX: usize = 4096;

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut t: String = text.chars().take(max - 4).collect();
    t.push_str(" ...");
    t
}

fn basic_header(b: &Basic) -> (String, String) {
    let raw = format!("{}:{}", b.user, b.password.expose());
    (
        "Authorization".into(),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ),
    )
}

fn json_post(
    url: String,
    body: &serde_json::Value,
    mut headers: Vec<(String, String)>,
) -> HttpRequest {
    headers.insert(0, ("Content-Type".into(), "application/json".into()));
    HttpRequest {
        method: "POST",
        url,
        headers,
        body: body.to_string().into_bytes(),
    }
}

/// The requests that deliver `m` through `channel` (one per chat for Telegram; none for SMTP,
/// which is not HTTP, and for Alertmanager, which takes alerts: see [`alerts`]).
pub fn request(channel: &Channel, m: &Message, bases: &Bases) -> Vec<HttpRequest> {
    let text = format!("{}\n{}", m.title, m.message);
    match channel {
        Channel::Generic {
            url,
            basic,
            headers,
            message_key,
        } => {
            let mut h: Vec<(String, String)> = basic.iter().map(basic_header).collect();
            h.extend(
                headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_string())),
            );
            let body = match message_key {
                Some(key) => json!({ key.as_str(): text }),
                None => serde_json::to_value(m).unwrap_or_else(|_| json!({"message": text})),
            };
            vec![json_post(url.clone(), &body, h)]
        }
        Channel::Ntfy {
            base,
            topic,
            auth,
            priority,
            tags,
            ..
        } => {
            let mut headers = vec![
                (
                    "Content-Type".to_string(),
                    "text/plain; charset=utf-8".to_string(),
                ),
                ("Title".to_string(), ascii(&m.title)),
            ];
            if let Some(p) = priority {
                headers.push(("Priority".into(), p.clone()));
            }
            if let Some(t) = tags {
                headers.push(("Tags".into(), t.clone()));
            }
            headers.extend(ntfy_auth(auth.as_ref()));
            vec![HttpRequest {
                method: "POST",
                url: format!("{base}/{topic}"),
                headers,
                body: m.message.clone().into_bytes(),
            }]
        }
        Channel::Slack { token, username } => {
            let text = format!("*{}*\n{}", slack_text(&m.title), slack_text(&m.message));
            let mut body = json!({ "text": text });
            if let Some(u) = username {
                body["username"] = json!(u);
            }
            vec![json_post(
                format!("{}/services/{}", bases.slack, token.expose()),
                &body,
                vec![],
            )]
        }
        Channel::Discord {
            id,
            token,
            username,
        } => {
            let text = format!(
                "**{}**\n{}",
                discord_text(&m.title),
                discord_text(&m.message)
            );
            // Mentions in the text (`@everyone`, `<@id>`) ping nobody: no kind is parsed.
            let mut body = json!({
                "content": cut(&text, DISCORD_MAX),
                "allowed_mentions": { "parse": [] },
            });
            if let Some(u) = username {
                body["username"] = json!(u);
            }
            vec![json_post(
                format!("{}/api/webhooks/{id}/{}", bases.discord, token.expose()),
                &body,
                vec![],
            )]
        }
        Channel::Telegram { token, chats, .. } => chats
            .iter()
            .map(|chat| {
                json_post(
                    format!("{}/bot{}/sendMessage", bases.telegram, token.expose()),
                    &json!({
                        "chat_id": chat,
                        "text": cut(&text, TELEGRAM_MAX),
                        "disable_web_page_preview": true,
                    }),
                    vec![],
                )
            })
            .collect(),
        Channel::Gotify {
            base,
            token,
            priority,
        } => {
            let mut body = json!({ "title": m.title, "message": m.message });
            if let Some(p) = priority {
                body["priority"] = json!(p);
            }
            // The key goes in a header, not the URL, so no log of a URL can show it.
            vec![json_post(
                format!("{base}/message"),
                &body,
                vec![("X-Gotify-Key".into(), token.expose().to_string())],
            )]
        }
        Channel::Smtp(_) | Channel::Alertmanager { .. } => vec![],
    }
}

/// ntfy's credentials as a header: an access token goes as a bearer token
/// (`ntfy://:tk_xxx@host/topic`), a user and password as Basic.
pub fn ntfy_auth(auth: Option<&Basic>) -> Option<(String, String)> {
    match auth {
        Some(b) if b.user.is_empty() => Some((
            "Authorization".into(),
            format!("Bearer {}", b.password.expose()),
        )),
        Some(b) => Some(basic_header(b)),
        None => None,
    }
}

/// A prompt's answer buttons: the token they carry, and whether the first one restarts (a
/// running, unhealthy container) or starts.
#[derive(Debug, Clone, Copy)]
pub struct Buttons<'a> {
    pub token: &'a Token,
    pub restart: bool,
}

impl Buttons<'_> {
    fn revive(&self) -> &'static str {
        if self.restart {
            "Restart"
        } else {
            "Revive"
        }
    }

    /// Each button's label and answer, in the order shown.
    fn all(&self) -> [(&'static str, Answer); 4] {
        [
            (self.revive(), Answer::Yes),
            ("Leave", Answer::No),
            ("Always", Answer::Always),
            ("Never", Answer::Never),
        ]
    }
}

/// What an answer published to an ntfy reply topic says: the token and the answer's word.
pub fn ntfy_answer(token: &Token, answer: Answer) -> String {
    format!("{} {}", token.as_str(), answer.word())
}

/// What a Telegram button's `callback_data` holds: the token and the answer's word (at most
/// 41 + 1 + 6 bytes, within Telegram's 64).
pub fn telegram_answer(token: &Token, answer: Answer) -> String {
    format!("{}:{}", token.as_str(), answer.word())
}

/// ntfy shows at most three actions: `never` is left to `healthther answer`, and the message
/// says so.
pub const NTFY_NEVER: &str =
    "  never: answered with healthther answer only (ntfy shows three buttons)";

/// The requests that deliver the prompt `m` through a two-way `channel` with its answer
/// buttons: ntfy's `http` actions, which publish the answer to the reply topic with the
/// channel's own credentials; Telegram's inline keyboard. Any other channel (or one without a
/// reply topic or approvers) gets the plain message.
pub fn prompt(channel: &Channel, m: &Message, buttons: Buttons, bases: &Bases) -> Vec<HttpRequest> {
    if !channel.two_way() {
        return request(channel, m, bases);
    }
    match channel {
        Channel::Ntfy {
            base, reply, auth, ..
        } => {
            let Some(reply) = reply else {
                return request(channel, m, bases);
            };
            let mut m = m.clone();
            m.message.push('\n');
            m.message.push_str(NTFY_NEVER);
            let headers: serde_json::Map<String, serde_json::Value> = ntfy_auth(auth.as_ref())
                .into_iter()
                .map(|(k, v)| (k, json!(v)))
                .collect();
            let actions: Vec<serde_json::Value> = buttons.all()[..3]
                .iter()
                .map(|(label, answer)| {
                    json!({
                        "action": "http",
                        "label": label,
                        "url": format!("{base}/{reply}"),
                        "method": "POST",
                        "headers": headers,
                        "body": ntfy_answer(buttons.token, *answer),
                        "clear": true,
                    })
                })
                .collect();
            let mut reqs = request(channel, &m, bases);
            for r in &mut reqs {
                // The JSON form of ntfy's `Actions` header: no quoting rules of its own.
                r.headers
                    .push(("Actions".into(), json!(actions).to_string()));
            }
            reqs
        }
        Channel::Telegram { token, chats, .. } => {
            let text = format!("{}\n{}", m.title, m.message);
            let keys: Vec<serde_json::Value> = buttons
                .all()
                .iter()
                .map(|(label, answer)| {
                    json!({
                        "text": label,
                        "callback_data": telegram_answer(buttons.token, *answer),
                    })
                })
                .collect();
            chats
                .iter()
                .map(|chat| {
                    json_post(
                        format!("{}/bot{}/sendMessage", bases.telegram, token.expose()),
                        &json!({
                            "chat_id": chat,
                            "text": cut(&text, TELEGRAM_MAX),
                            "disable_web_page_preview": true,
                            "reply_markup": { "inline_keyboard": [&keys[..2], &keys[2..]] },
                        }),
                        vec![],
                    )
                })
                .collect()
        }
        _ => request(channel, m, bases),
    }
}

/// ntfy's JSON stream of `topic` from `since` (a message id, or a Unix time before the first
/// message was seen): a connection healthther opens and keeps.
pub fn ntfy_subscribe(base: &str, topic: &str, auth: Option<&Basic>, since: &str) -> HttpRequest {
    let since: String = url::form_urlencoded::byte_serialize(since.as_bytes()).collect();
    HttpRequest {
        method: "GET",
        url: format!("{base}/{topic}/json?since={since}"),
        headers: ntfy_auth(auth).into_iter().collect(),
        body: Vec::new(),
    }
}

/// Telegram's long-polling wait, in seconds: a `getUpdates` is answered at once when a button
/// is pressed, else after this.
pub const TELEGRAM_POLL: u64 = 30;

/// A call of Telegram's Bot API: `method` with `body`.
pub fn telegram_call(
    bases: &Bases,
    token: &super::channel::Secret,
    method: &str,
    body: &serde_json::Value,
) -> HttpRequest {
    json_post(
        format!("{}/bot{}/{method}", bases.telegram, token.expose()),
        body,
        vec![],
    )
}

/// `getUpdates` from `offset` (which confirms every update before it), button presses only.
pub fn telegram_updates(offset: Option<i64>, timeout: u64) -> serde_json::Value {
    let mut body = json!({
        "timeout": timeout,
        "allowed_updates": ["callback_query"],
    });
    if let Some(o) = offset {
        body["offset"] = json!(o);
    }
    body
}

/// Telegram shows at most 200 characters of an `answerCallbackQuery` text.
pub const TELEGRAM_ALERT_MAX: usize = 200;

/// `answerCallbackQuery`: the press is confirmed, with `text` shown to whoever pressed.
pub fn telegram_confirm(query: &str, text: &str) -> serde_json::Value {
    json!({ "callback_query_id": query, "text": cut(text, TELEGRAM_ALERT_MAX) })
}

/// `editMessageText` of a prompt's message: its text now says who answered and what
/// followed, and its buttons go (an edit without `reply_markup` has none).
pub fn telegram_edit(chat: i64, message: i64, text: &str) -> serde_json::Value {
    json!({
        "chat_id": chat,
        "message_id": message,
        "text": cut(text, TELEGRAM_MAX),
        "disable_web_page_preview": true,
    })
}

/// Alertmanager's `POST /api/v2/alerts` with `alerts`.
pub fn alerts(base: &str, basic: Option<&Basic>, alerts: &[Alert]) -> HttpRequest {
    let body = serde_json::to_value(alerts).unwrap_or_else(|_| json!([]));
    json_post(
        format!("{base}/api/v2/alerts"),
        &body,
        basic.map(basic_header).into_iter().collect(),
    )
}

/// Slack acts on `<!channel>`, `<@U123>` and `<url|text>` anywhere in a text: `&`, `<` and `>`
/// are escaped as Slack documents (api.slack.com, "Formatting text for app surfaces").
fn slack_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Discord reads markdown in a webhook's content (a masked link `[text](url)`, a heading, a
/// quote, code, a spoiler, a mention, a timestamp): each character that can begin one gets a
/// backslash, which Discord shows as the character itself.
fn discord_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '[' | ']' | '#' | '@'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// HTTP header values are ASCII here: anything else becomes `?`.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::channel::parse;

    fn message() -> Message {
        Message {
            host: "box1".into(),
            title: "healthther on box1: nodo_1 revived".into(),
            message: "nodo_1: exited (code 137) -> start: running in 12 ms".into(),
            records: vec![],
            engine: None,
            test: false,
            silent: false,
        }
    }

    fn header<'a>(r: &'a HttpRequest, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A URL, the request's URL, headers that must be there, what the body must be.
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, serde_json::Value);

    #[test]
    fn each_channel_makes_the_request_its_api_documents() {
        let m = message();
        let title_and_text = format!("{}\n{}", m.title, m.message);
        let cases: Vec<Case> = vec![
            (
                "generic+http://127.0.0.1:8080/hook?@X-Token=abc",
                "http://127.0.0.1:8080/hook",
                vec![("Content-Type", "application/json"), ("X-Token", "abc")],
                serde_json::to_value(&m).unwrap(),
            ),
            (
                "generic+https://hooks.example.com/services/x?messagekey=text",
                "https://hooks.example.com/services/x",
                vec![("Content-Type", "application/json")],
                serde_json::json!({ "text": title_and_text }),
            ),
            (
                "generic://u:p@example.com/h",
                "https://example.com/h",
                vec![("Authorization", "Basic dTpw")],
                serde_json::to_value(&m).unwrap(),
            ),
            (
                "slack://bot@T000/B000/XXXX",
                "https://hooks.slack.com/services/T000/B000/XXXX",
                vec![("Content-Type", "application/json")],
                json!({
                    "text": "*healthther on box1: nodo_1 revived*\n\
                             nodo_1: exited (code 137) -&gt; start: running in 12 ms",
                    "username": "bot",
                }),
            ),
            (
                "discord://tok@123",
                "https://discord.com/api/webhooks/123/tok",
                vec![("Content-Type", "application/json")],
                json!({
                    "content": "**healthther on box1: nodo\\_1 revived**\n\
                                nodo\\_1: exited (code 137) -\\> start: running in 12 ms",
                    "allowed_mentions": {"parse": []},
                }),
            ),
            (
                "telegram://1:abc@telegram?chats=@ops",
                "https://api.telegram.org/bot1:abc/sendMessage",
                vec![("Content-Type", "application/json")],
                json!({"chat_id": "@ops", "text": title_and_text, "disable_web_page_preview": true}),
            ),
            (
                "gotify://push.example.com/AbC?priority=8",
                "https://push.example.com/message",
                vec![("X-Gotify-Key", "AbC")],
                json!({"title": m.title, "message": m.message, "priority": 8}),
            ),
        ];
        for (raw, url, headers, body) in cases {
            let c = parse(raw).unwrap().channel;
            let reqs = request(&c, &m, &Bases::new(None));
            assert_eq!(reqs.len(), 1, "{raw}");
            let r = &reqs[0];
            assert_eq!(r.method, "POST", "{raw}");
            assert_eq!(r.url, url, "{raw}");
            for (k, v) in headers {
                assert_eq!(header(r, k), Some(v), "{raw}: header {k}");
            }
            let got: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(got, body, "{raw}");
        }
    }

    #[test]
    fn ntfy_posts_the_text_to_the_topic() {
        let m = message();
        let c = parse("ntfy://:tk_1@ntfy.example.com/alerts?priority=high&tags=warning")
            .unwrap()
            .channel;
        let r = &request(&c, &m, &Bases::new(None))[0];
        assert_eq!(r.url, "https://ntfy.example.com/alerts");
        assert_eq!(header(r, "Title"), Some(m.title.as_str()));
        assert_eq!(header(r, "Priority"), Some("high"));
        assert_eq!(header(r, "Tags"), Some("warning"));
        assert_eq!(header(r, "Authorization"), Some("Bearer tk_1"));
        assert_eq!(r.body, m.message.as_bytes());
    }

    #[test]
    fn telegram_sends_to_each_chat_and_bases_can_be_overridden() {
        let c = parse("telegram://1:abc@telegram?chats=a,b")
            .unwrap()
            .channel;
        let reqs = request(&c, &message(), &Bases::new(Some("http://127.0.0.1:9/")));
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[1].url, "http://127.0.0.1:9/bot1:abc/sendMessage");
    }

    #[test]
    fn slack_and_discord_markup_in_the_text_is_escaped() {
        let mut m = message();
        m.message = "a & <!channel> <https://x.example|click> @everyone [x](https://x.example) \
                     # h `c` ||s|| > q \\ *b* _i_ ~s~"
            .into();
        let body = |raw: &str| -> serde_json::Value {
            let c = parse(raw).unwrap().channel;
            serde_json::from_slice(&request(&c, &m, &Bases::new(None))[0].body).unwrap()
        };
        let slack = body("slack://T000/B000/XXXX");
        assert_eq!(
            slack["text"].as_str().unwrap().split_once('\n').unwrap().1,
            "a &amp; &lt;!channel&gt; &lt;https://x.example|click&gt; @everyone \
             [x](https://x.example) # h `c` ||s|| &gt; q \\ *b* _i_ ~s~"
        );
        let discord = body("discord://t@1");
        assert_eq!(
            discord["content"]
                .as_str()
                .unwrap()
                .split_once('\n')
                .unwrap()
                .1,
            "a & \\<!channel\\> \\<https://x.example\\|click\\> \\@everyone \
             \\[x\\](https://x.example) \\# h \\`c\\` \\|\\|s\\|\\| \\> q \\\\ \
             \\*b\\* \\_i\\_ \\~s\\~"
        );
        assert_eq!(discord["allowed_mentions"], json!({"parse": []}));
    }

    #[test]
    fn discord_content_is_cut_to_its_limit() {
        let mut m = message();
        m.message = "x".repeat(5000);
        let c = parse("discord://t@1").unwrap().channel;
        let body: serde_json::Value =
            serde_json::from_slice(&request(&c, &m, &Bases::new(None))[0].body).unwrap();
        assert_eq!(
            body["content"].as_str().unwrap().chars().count(),
            DISCORD_MAX
        );
    }

    #[test]
    fn a_prompt_on_a_two_way_channel_carries_its_buttons() {
        let m = message();
        let token = Token::of("0123abcd", 7);
        let b = Buttons {
            token: &token,
            restart: true,
        };
        let c = parse("ntfy://:tk_1@ntfy.example.com/alerts?reply=alerts-replies")
            .unwrap()
            .channel;
        let r = &prompt(&c, &m, b, &Bases::new(None))[0];
        assert_eq!(r.url, "https://ntfy.example.com/alerts");
        let actions: serde_json::Value =
            serde_json::from_str(header(r, "Actions").unwrap()).unwrap();
        assert_eq!(actions.as_array().unwrap().len(), 3, "ntfy shows three");
        assert_eq!(
            actions[0],
            json!({"action": "http", "label": "Restart", "method": "POST", "clear": true,
                "url": "https://ntfy.example.com/alerts-replies",
                "headers": {"Authorization": "Bearer tk_1"},
                "body": format!("{} yes", token.as_str())})
        );
        assert_eq!(actions[1]["label"], "Leave");
        assert_eq!(actions[2]["body"], format!("{} always", token.as_str()));
        assert!(String::from_utf8_lossy(&r.body).ends_with(NTFY_NEVER));

        let c = parse("telegram://1:abc@telegram?chats=5&approvers=42")
            .unwrap()
            .channel;
        let b = Buttons {
            token: &token,
            restart: false,
        };
        let r = &prompt(&c, &m, b, &Bases::new(None))[0];
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let keys = &body["reply_markup"]["inline_keyboard"];
        let pressed: Vec<(&str, &str)> = keys
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap())
            .map(|k| {
                (
                    k["text"].as_str().unwrap(),
                    k["callback_data"].as_str().unwrap(),
                )
            })
            .collect();
        let t = token.as_str();
        assert_eq!(
            pressed,
            [
                ("Revive", format!("{t}:yes").as_str()),
                ("Leave", format!("{t}:no").as_str()),
                ("Always", format!("{t}:always").as_str()),
                ("Never", format!("{t}:never").as_str()),
            ]
        );
        assert!(pressed.iter().all(|(_, d)| d.len() <= 64));

        // Without approvers, nobody's press could be trusted: no buttons at all.
        let c = parse("telegram://1:abc@telegram?chats=5").unwrap().channel;
        let body: serde_json::Value =
            serde_json::from_slice(&prompt(&c, &m, b, &Bases::new(None))[0].body).unwrap();
        assert!(body.get("reply_markup").is_none());
    }
}
