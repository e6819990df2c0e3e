//! `HEALTH_NOTIFY` URLs, in the shoutrrr forms watchtower users already write, parsed into a
//! plain [`Channel`]. Secrets (tokens, passwords) are kept in [`Secret`], whose `Debug` hides
//! them, and every URL shown anywhere is [`redact`]ed first.

use std::fmt;

use base64::Engine as _;
use thiserror::Error;
use url::Url;

/// A token or password: never printed, only handed to the request that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basic {
    pub user: String,
    pub password: Secret,
}

/// How an SMTP connection is protected, as shoutrrr's `encryption` option says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// STARTTLS when the server offers it (shoutrrr's `Auto`; TLS from the start on port 465).
    Auto,
    None,
    /// STARTTLS, required.
    ExplicitTls,
    /// TLS from the first byte (SMTPS).
    ImplicitTls,
}

/// Where one channel delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// A JSON POST to any URL.
    Generic {
        /// The whole URL, scheme `http` or `https`, without user info.
        url: String,
        basic: Option<Basic>,
        /// From `@Name=value` query parameters.
        headers: Vec<(String, Secret)>,
        /// From `messagekey=KEY`: post `{KEY: text}` alone (a Slack-style `{"text": ...}`, as
        /// autoheal's `WEBHOOK_URL` does) instead of healthther's own JSON.
        message_key: Option<String>,
    },
    Ntfy {
        /// `https://ntfy.sh` or the user's own server.
        base: String,
        topic: String,
        auth: Option<Basic>,
        priority: Option<String>,
        tags: Option<String>,
        /// From `reply=TOPIC`: the topic on the same server that a prompt's buttons publish
        /// its answer to, and that healthther subscribes to. Without it the channel only
        /// tells: a reply topic is opt-in, since whoever can publish to it answers prompts.
        reply: Option<String>,
    },
    /// An incoming webhook: `https://hooks.slack.com/services/A/B/C`.
    Slack {
        /// `A/B/C`.
        token: Secret,
        username: Option<String>,
    },
    Discord {
        id: String,
        token: Secret,
        username: Option<String>,
    },
    Telegram {
        token: Secret,
        chats: Vec<String>,
        /// From `approvers=ID[,ID]`: the users whose button presses answer prompts. Without
        /// any, prompts go without buttons: anyone in the chat could press them.
        approvers: Vec<i64>,
    },
    Gotify {
        base: String,
        token: Secret,
        priority: Option<i64>,
    },
    Smtp(Smtp),
    /// Alertmanager's v2 API.
    Alertmanager {
        base: String,
        basic: Option<Basic>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub auth: Option<Basic>,
    pub from: String,
    pub to: Vec<String>,
    pub encryption: Encryption,
}

impl Channel {
    /// Whether it carries a prompt's answer back (ntfy with a reply topic, Telegram with
    /// approvers): its prompts get buttons, and healthther reads the presses.
    pub fn two_way(&self) -> bool {
        match self {
            Channel::Ntfy { reply, .. } => reply.is_some(),
            Channel::Telegram { approvers, .. } => !approvers.is_empty(),
            _ => false,
        }
    }

    /// The kind, for metrics' `channel` label and for people.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Generic { .. } => "generic",
            Channel::Ntfy { .. } => "ntfy",
            Channel::Slack { .. } => "slack",
            Channel::Discord { .. } => "discord",
            Channel::Telegram { .. } => "telegram",
            Channel::Gotify { .. } => "gotify",
            Channel::Smtp(_) => "smtp",
            Channel::Alertmanager { .. } => "alertmanager",
        }
    }

    /// Every secret it holds, in every form a request carries it (as is, URL-encoded, and a
    /// Basic pair as its `Authorization` header has it), so that error texts can be scrubbed
    /// of them. A receiver's error page may echo the request.
    pub fn secrets(&self) -> Vec<String> {
        let mut plain: Vec<String> = Vec::new();
        let mut encoded: Vec<String> = Vec::new();
        let mut basic = |b: &Option<Basic>, plain: &mut Vec<String>| {
            if let Some(b) = b {
                plain.push(b.password.expose().to_string());
                let pair = format!("{}:{}", b.user, b.password.expose());
                encoded.push(base64::engine::general_purpose::STANDARD.encode(pair));
            }
        };
        match self {
            Channel::Generic {
                url,
                basic: b,
                headers,
                ..
            } => {
                basic(b, &mut plain);
                plain.extend(headers.iter().map(|(_, v)| v.expose().to_string()));
                plain.extend(url_secrets(url));
            }
            Channel::Ntfy { auth, .. } => basic(auth, &mut plain),
            Channel::Slack { token, .. }
            | Channel::Discord { token, .. }
            | Channel::Telegram { token, .. }
            | Channel::Gotify { token, .. } => plain.push(token.expose().to_string()),
            Channel::Smtp(s) => basic(&s.auth, &mut plain),
            Channel::Alertmanager { basic: b, .. } => basic(b, &mut plain),
        }
        for s in &plain {
            let form: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            encoded.push(form.replace('+', "%20"));
            encoded.push(form);
        }
        let mut all: Vec<String> = plain.into_iter().chain(encoded).collect();
        all.retain(|s| !s.is_empty());
        // Longest first: a secret that holds another is replaced whole.
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        all
    }

    /// Replaces every secret of this channel in `text` (an error's words) with `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for s in self.secrets() {
            text = text.replace(&s, "***");
        }
        text
    }
}

/// Query keys whose values are secrets: tokens, keys, passwords, signatures, headers (`@Name`).
fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.starts_with('@')
        || ["token", "key", "secret", "pass", "auth"]
            .iter()
            .any(|w| key.contains(w))
        || matches!(key.as_str(), "code" | "sig" | "signature")
}

/// Whether a path segment of a generic webhook may be shown: a plain word (`hooks`,
/// `services`, `webhook`). Anything else (digits, a long run of letters) may be a token.
fn plain_segment(segment: &str) -> bool {
    segment.len() <= 20
        && segment
            .chars()
            .all(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '_' | '.'))
}

/// The secrets in a generic webhook's URL: its path segments that are not plain words, and its
/// query values under secret keys.
fn url_secrets(url: &str) -> Vec<String> {
    let Ok(url) = Url::parse(url) else {
        return Vec::new();
    };
    let mut found: Vec<String> = url
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !plain_segment(s))
        .flat_map(|s| [s.to_string(), decode(s)])
        .collect();
    found.extend(
        url.query_pairs()
            .filter(|(k, _)| secret_key(k))
            .map(|(_, v)| v.into_owned()),
    );
    found
}

/// One configured channel: what it is, and its URL as it may be shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Configured {
    pub channel: Channel,
    /// The URL with its secrets replaced by `***`.
    pub shown: String,
}

impl Configured {
    /// What a careless setting of a two-way channel risks, said once at the start: a reply
    /// topic without credentials (whoever reads the prompts there answers them), or buttons
    /// set up where nothing asks (`manual` is false: nothing is read back).
    pub fn caution(&self, manual: bool) -> Option<String> {
        if !self.channel.two_way() {
            return None;
        }
        if !manual {
            return Some(format!(
                "HEALTH_NOTIFY: {} has answer buttons (reply= or approvers=), but only \
                 MODE=manual asks, so no answer is read through it",
                self.shown
            ));
        }
        match &self.channel {
            Channel::Ntfy { auth: None, .. } => Some(format!(
                "HEALTH_NOTIFY: {} has a reply topic but no credentials: whoever can read its \
                 prompt topic on that server can answer prompts (revive, always, never). Use \
                 an access token or user and password, with topics only they may read and \
                 write",
                self.shown
            )),
            _ => None,
        }
    }
}

impl fmt::Debug for Configured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{url}: {reason}")]
pub struct UrlError {
    /// Redacted.
    pub url: String,
    pub reason: String,
}

/// Telegram's `chats=a,b` and SMTP's `to=a,b` hold commas of their own: a piece without `://`
/// continues the URL before it.
fn rejoin(raw: &str) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for piece in raw
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        match urls.last_mut() {
            Some(last) if !piece.contains("://") => {
                last.push(',');
                last.push_str(piece);
            }
            _ => urls.push(piece.to_string()),
        }
    }
    urls
}

/// Splits `HEALTH_NOTIFY` (spaces or commas between URLs) and parses each URL, keeping the
/// commas inside a URL's query (`chats=a,b`, `to=a,b`).
pub fn parse_list(raw: &str) -> Result<Vec<Configured>, UrlError> {
    rejoin(raw).iter().map(|u| parse(u)).collect()
}

/// Parses one URL.
pub fn parse(raw: &str) -> Result<Configured, UrlError> {
    let shown = redact(raw);
    let bad = |reason: &str| UrlError {
        url: shown.clone(),
        reason: reason.to_string(),
    };
    let url = Url::parse(raw).map_err(|e| bad(&format!("not a URL ({e})")))?;
    let query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    let yes = |key: &str| {
        get(key).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1"))
    };
    let user = decode(url.username());
    let password = url.password().map(decode);
    let basic = match (&password, user.is_empty()) {
        (Some(p), _) => Some(Basic {
            user: user.clone(),
            password: Secret::new(p.clone()),
        }),
        (None, false) => Some(Basic {
            user: user.clone(),
            password: Secret::new(""),
        }),
        (None, true) => None,
    };
    let host = url.host_str().unwrap_or("").to_string();
    // The binary carries no IDNA tables (idna_adapter 1.0.0): a host in Unicode would fail at
    // every send, so it is refused here. The `generic+https` and other schemes of ours are not
    // the URL standard's special ones, so such a host stays percent-encoded.
    if !decode(&host).is_ascii() {
        return Err(bad(
            "has a host name in Unicode; write its ASCII (xn--…) form, as `idn2` prints it",
        ));
    }
    let host_port = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(decode).collect())
        .unwrap_or_default();
    let path = url.path().trim_end_matches('/').to_string();
    let need_host = || {
        if host.is_empty() {
            Err(bad("has no host"))
        } else {
            Ok(())
        }
    };
    let channel = match url.scheme() {
        "generic" | "generic+http" | "generic+https" => {
            need_host()?;
            let scheme = if url.scheme() == "generic+http" || yes("disabletls") {
                "http"
            } else {
                "https"
            };
            let mut headers = Vec::new();
            let mut rest = Vec::new();
            for (k, v) in &query {
                if let Some(name) = k.strip_prefix('@') {
                    headers.push((name.to_string(), Secret::new(v.clone())));
                } else if !matches!(
                    k.to_ascii_lowercase().as_str(),
                    "disabletls"
                        | "template"
                        | "contenttype"
                        | "method"
                        | "title"
                        | "messagekey"
                        | "titlekey"
                ) {
                    rest.push((k.clone(), v.clone()));
                }
            }
            let mut target = format!("{scheme}://{host_port}{}", url.path());
            if !rest.is_empty() {
                let q: String = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(rest)
                    .finish();
                target.push('?');
                target.push_str(&q);
            }
            Channel::Generic {
                url: target,
                basic,
                headers,
                message_key: get("messagekey").filter(|k| !k.is_empty()),
            }
        }
        "ntfy" => {
            need_host()?;
            let Some(topic) = segments.last().cloned() else {
                return Err(bad("names no topic; write ntfy://ntfy.sh/TOPIC"));
            };
            let scheme = match get("scheme").as_deref() {
                Some("http") => "http",
                _ if yes("disabletls") => "http",
                _ => "https",
            };
            let prefix: Vec<&str> = segments[..segments.len() - 1]
                .iter()
                .map(String::as_str)
                .collect();
            let mut base = format!("{scheme}://{host_port}");
            for p in prefix {
                base.push('/');
                base.push_str(p);
            }
            let reply = match get("reply") {
                None => None,
                Some(r) if ntfy_topic(&r) && r != topic => Some(r),
                Some(_) => {
                    return Err(bad(
                        "has a reply topic that is no ntfy topic of its own (up to 64 of \
                         A-Z, a-z, 0-9, - and _, not the topic itself)",
                    ))
                }
            };
            Channel::Ntfy {
                base,
                topic,
                auth: basic,
                priority: get("priority"),
                tags: get("tags"),
                reply,
            }
        }
        "slack" => {
            // slack://[botname@]A/B/C, or shoutrrr's newer slack://hook:A-B-C@webhook.
            let (token, username) = if user == "hook" {
                let Some(p) = password.clone() else {
                    return Err(bad(
                        "has no webhook token; write slack://hook:A-B-C@webhook",
                    ));
                };
                (
                    p.replace('-', "/"),
                    get("botname").or_else(|| get("username")),
                )
            } else if user.starts_with("xox") {
                return Err(bad(
                    "is a bot token; use an incoming webhook: slack://A/B/C (from https://hooks.slack.com/services/A/B/C)",
                ));
            } else {
                let mut parts = vec![host.clone()];
                parts.extend(segments.iter().cloned());
                let user = (!user.is_empty()).then(|| user.clone());
                (parts.join("/"), user.or_else(|| get("botname")))
            };
            if token.split('/').filter(|s| !s.is_empty()).count() != 3 {
                return Err(bad(
                    "is not an incoming webhook; write slack://A/B/C (from https://hooks.slack.com/services/A/B/C)",
                ));
            }
            Channel::Slack {
                token: Secret::new(token),
                username,
            }
        }
        "discord" => {
            need_host()?;
            if user.is_empty() {
                return Err(bad("has no token; write discord://TOKEN@WEBHOOK_ID"));
            }
            Channel::Discord {
                id: host.clone(),
                token: Secret::new(user.clone()),
                username: get("username"),
            }
        }
        "telegram" => {
            let token = match &password {
                Some(p) => format!("{user}:{p}"),
                None => user.clone(),
            };
            if token.is_empty() || !token.contains(':') {
                return Err(bad(
                    "has no bot token; write telegram://TOKEN@telegram?chats=CHAT_ID",
                ));
            }
            let chats: Vec<String> = get("chats")
                .or_else(|| get("channels"))
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect();
            if chats.is_empty() {
                return Err(bad("names no chat; add ?chats=CHAT_ID[,CHAT_ID]"));
            }
            let mut approvers = Vec::new();
            for a in get("approvers")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
            {
                // A user id is digits: `@name` cannot be checked against a button press.
                match a.parse::<i64>() {
                    Ok(id) if id > 0 && a.bytes().all(|b| b.is_ascii_digit()) => approvers.push(id),
                    _ => {
                        return Err(bad(&format!(
                            "has an approver {a:?} that is no user id; approvers=ID[,ID] takes \
                             the numeric ids of Telegram users"
                        )))
                    }
                }
            }
            Channel::Telegram {
                token: Secret::new(token),
                chats,
                approvers,
            }
        }
        "gotify" => {
            need_host()?;
            let Some(token) = segments.last().cloned() else {
                return Err(bad("has no app token; write gotify://HOST/TOKEN"));
            };
            let scheme = if yes("disabletls") { "http" } else { "https" };
            let mut base = format!("{scheme}://{host_port}");
            for p in &segments[..segments.len() - 1] {
                base.push('/');
                base.push_str(p);
            }
            let priority = match get("priority") {
                Some(p) => Some(
                    p.parse::<i64>()
                        .map_err(|_| bad("has a priority that is not a number"))?,
                ),
                None => None,
            };
            Channel::Gotify {
                base,
                token: Secret::new(token),
                priority,
            }
        }
        "smtp" => {
            need_host()?;
            let from = get("fromaddress")
                .or_else(|| get("from"))
                .unwrap_or_default();
            let to: Vec<String> = get("toaddresses")
                .or_else(|| get("to"))
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            if from.is_empty() || to.is_empty() {
                return Err(bad("needs ?from=ADDRESS&to=ADDRESS[,ADDRESS]"));
            }
            for a in to.iter().chain(std::iter::once(&from)) {
                if a.parse::<lettre::Address>().is_err() {
                    return Err(bad(&format!("{a:?} is not an email address")));
                }
            }
            let encryption = match get("encryption")
                .unwrap_or_default()
                .to_ascii_lowercase()
                .as_str()
            {
                "" | "auto" => {
                    if url.port() == Some(465) {
                        Encryption::ImplicitTls
                    } else {
                        Encryption::Auto
                    }
                }
                "none" => Encryption::None,
                "explicittls" => Encryption::ExplicitTls,
                "implicittls" => Encryption::ImplicitTls,
                _ => {
                    return Err(bad(
                        "has an unknown encryption; use auto, none, explicittls or implicittls",
                    ))
                }
            };
            Channel::Smtp(Smtp {
                host: host.clone(),
                port: url.port().unwrap_or(25),
                auth: basic,
                from,
                to,
                encryption,
            })
        }
        "alertmanager" | "alertmanager+http" | "alertmanager+https" => {
            need_host()?;
            let scheme = if url.scheme() == "alertmanager+https"
                || get("scheme").as_deref() == Some("https")
            {
                "https"
            } else {
                "http"
            };
            Channel::Alertmanager {
                base: format!("{scheme}://{host_port}{path}"),
                basic,
            }
        }
        other => {
            return Err(bad(&format!(
                "unknown kind {other:?}; use generic, generic+http, generic+https, ntfy, slack, \
                 discord, telegram, gotify, smtp or alertmanager"
            )))
        }
    };
    Ok(Configured { channel, shown })
}

/// What ntfy takes as a topic name.
fn ntfy_topic(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn decode(s: &str) -> String {
    percent_decode(s)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// The URL with whatever may be a secret replaced by `***`: passwords, the user part where it
/// is a token (discord, telegram, slack), the path where it is a token (slack, gotify) or may
/// be one (a generic webhook's segments that are not plain words), and query values that name
/// keys, tokens, signatures or headers.
pub fn redact(raw: &str) -> String {
    let Ok(mut url) = Url::parse(raw) else {
        // Not a URL: keep the scheme and the host, hide the rest.
        let (scheme, rest) = raw.split_once("://").unwrap_or(("", raw));
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let more = if host.len() < rest.len() { "/***" } else { "" };
        let user = if raw.contains('@') { "***@" } else { "" };
        return format!("{scheme}://{user}{host}{more}");
    };
    let scheme = url.scheme().to_string();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if !url.username().is_empty()
        && matches!(scheme.as_str(), "discord" | "telegram" | "slack")
        && url.username() != "hook"
    {
        let _ = url.set_username("***");
    }
    match scheme.as_str() {
        "generic" | "generic+http" | "generic+https" => {
            let segs: Vec<String> = url
                .path_segments()
                .map(|s| {
                    s.map(|s| {
                        if plain_segment(s) {
                            s.to_string()
                        } else {
                            "***".to_string()
                        }
                    })
                    .collect()
                })
                .unwrap_or_default();
            if !segs.is_empty() {
                url.set_path(&segs.join("/"));
            }
        }
        "slack" if url.username() != "hook" => {
            let _ = url.set_host(Some("***"));
            url.set_path("");
        }
        "gotify" => {
            let mut segs: Vec<String> = url
                .path_segments()
                .map(|s| s.filter(|s| !s.is_empty()).map(String::from).collect())
                .unwrap_or_default();
            if let Some(last) = segs.last_mut() {
                *last = "***".into();
            }
            url.set_path(&segs.join("/"));
        }
        _ => {}
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if secret_key(&k) {
                "***".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    if !pairs.is_empty() {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        url.set_query(Some(&q));
    }
    url.to_string().replace("%2A%2A%2A", "***")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(raw: &str) -> Channel {
        parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}")).channel
    }

    #[test]
    fn shoutrrr_forms() {
        assert_eq!(
            one("generic://example.com:8080/hook?x=1&@Authorization=Bearer%20abc"),
            Channel::Generic {
                url: "https://example.com:8080/hook?x=1".into(),
                basic: None,
                headers: vec![("Authorization".into(), Secret::new("Bearer abc"))],
                message_key: None,
            }
        );
        assert!(matches!(one("generic+https://h/x?messagekey=text"),
            Channel::Generic { url, message_key: Some(k), .. } if url == "https://h/x" && k == "text"));
        assert!(matches!(one("generic+http://127.0.0.1:9/h"),
            Channel::Generic { url, .. } if url == "http://127.0.0.1:9/h"));
        assert!(matches!(one("generic://h/x?disabletls=yes"),
            Channel::Generic { url, .. } if url == "http://h/x"));
        assert!(matches!(one("generic+https://u:p@h/x"),
            Channel::Generic { url, basic: Some(b), .. } if url == "https://h/x" && b.user == "u" && b.password.expose() == "p"));
        assert_eq!(
            one("ntfy://ntfy.sh/alerts?priority=high&tags=warning"),
            Channel::Ntfy {
                base: "https://ntfy.sh".into(),
                topic: "alerts".into(),
                auth: None,
                priority: Some("high".into()),
                tags: Some("warning".into()),
                reply: None,
            }
        );
        assert!(matches!(one("ntfy://h/alerts?reply=alerts-replies"),
            Channel::Ntfy { reply: Some(r), .. } if r == "alerts-replies"));
        assert!(matches!(one("ntfy://me:pw@127.0.0.1:8080/t?scheme=http"),
            Channel::Ntfy { base, auth: Some(_), .. } if base == "http://127.0.0.1:8080"));
        assert_eq!(
            one("slack://watchtower@T000/B000/XXXX"),
            Channel::Slack {
                token: Secret::new("T000/B000/XXXX"),
                username: Some("watchtower".into()),
            }
        );
        assert!(matches!(one("slack://hook:T000-B000-XXXX@webhook"),
            Channel::Slack { token, .. } if token.expose() == "T000/B000/XXXX"));
        assert_eq!(
            one("discord://tok-en_1@123456"),
            Channel::Discord {
                id: "123456".into(),
                token: Secret::new("tok-en_1"),
                username: None,
            }
        );
        assert_eq!(
            one("telegram://110201543:AAHdqTcv@telegram?chats=@ops,-100123"),
            Channel::Telegram {
                token: Secret::new("110201543:AAHdqTcv"),
                chats: vec!["@ops".into(), "-100123".into()],
                approvers: vec![],
            }
        );
        assert!(
            matches!(one("telegram://1:x@telegram?chats=5&approvers=42,%2043"),
            Channel::Telegram { approvers, .. } if approvers == vec![42, 43])
        );
        assert_eq!(
            one("gotify://push.example.com/sub/AbC123?priority=8"),
            Channel::Gotify {
                base: "https://push.example.com/sub".into(),
                token: Secret::new("AbC123"),
                priority: Some(8),
            }
        );
        assert_eq!(
            one("smtp://me:pw@mail.example.com:587/?from=h@example.com&to=a@example.com,b@example.com"),
            Channel::Smtp(Smtp {
                host: "mail.example.com".into(),
                port: 587,
                auth: Some(Basic {
                    user: "me".into(),
                    password: Secret::new("pw")
                }),
                from: "h@example.com".into(),
                to: vec!["a@example.com".into(), "b@example.com".into()],
                encryption: Encryption::Auto,
            })
        );
        assert_eq!(
            one("alertmanager://127.0.0.1:9093"),
            Channel::Alertmanager {
                base: "http://127.0.0.1:9093".into(),
                basic: None,
            }
        );
    }

    #[test]
    fn lists_split_on_spaces_and_commas_but_keep_query_commas() {
        let all = parse_list(
            "ntfy://ntfy.sh/a, discord://t@1 telegram://1:x@telegram?chats=a,b,generic+http://h/x",
        )
        .unwrap();
        assert_eq!(all.len(), 4);
        assert!(matches!(&all[2].channel, Channel::Telegram { chats, .. } if chats.len() == 2));
        assert_eq!(
            parse_list("ntfy://ntfy.sh/a ntfy://ntfy.sh/b")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn bad_urls_are_named_redacted() {
        let cases = [
            ("bogus://x", "unknown kind"),
            ("ntfy://ntfy.sh", "topic"),
            ("slack://xoxb:secrettoken@channel", "bot token"),
            ("slack://only/two", "incoming webhook"),
            ("discord://123456", "token"),
            ("telegram://1:secretbot@telegram", "chat"),
            ("smtp://u:secretpw@h/?from=a@b.c", "to="),
            ("smtp://h/?from=nope&to=a@b.c", "email address"),
            ("gotify://h/t?priority=high", "priority"),
            ("not a url", "not a URL"),
            ("ntfy://h/t?reply=t", "reply topic"),
            ("ntfy://h/t?reply=a/b", "reply topic"),
            (
                "telegram://1:secretbot@telegram?chats=1&approvers=@me",
                "user id",
            ),
            (
                "telegram://1:secretbot@telegram?chats=1&approvers=-5",
                "user id",
            ),
            // No IDNA tables in the binary: a Unicode host would fail at every send.
            ("generic+https://bücher.example/x", "xn--"),
            ("ntfy://u:secretpw@bücher.example/t", "xn--"),
            ("smtp://u:secretpw@mail.bücher.example/?to=a@b.c", "xn--"),
        ];
        for (raw, needle) in cases {
            let e = parse(raw).unwrap_err().to_string();
            assert!(e.contains(needle), "{raw}: {e}");
            assert!(!e.contains("secret"), "{raw}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn redaction_hides_every_secret() {
        let cases = [
            ("discord://mytoken@123", "discord://***@123"),
            (
                "telegram://1:abc@telegram?chats=x",
                "telegram://***:***@telegram?chats=x",
            ),
            ("slack://bot@T0/B0/X0", "slack://***@***"),
            ("slack://hook:T0-B0-X0@webhook", "slack://hook:***@webhook"),
            ("gotify://h/app/tok", "gotify://h/app/***"),
            ("ntfy://u:pw@h/t", "ntfy://u:***@h/t"),
            (
                "generic://h/x?@Authorization=Bearer+abc&a=1",
                "generic://h/x?%40Authorization=***&a=1",
            ),
            ("generic://h/x?token=abc", "generic://h/x?token=***"),
            (
                "smtp://u:pw@h:25/?from=a@b.c&to=d@e.f",
                "smtp://u:***@h:25/?from=a%40b.c&to=d%40e.f",
            ),
            (
                "weird://user:pw@host/path withspace",
                "weird://user:***@host/path%20withspace",
            ),
            ("slack://to:ken@[bad/x", "slack://***@[bad/***"),
            (
                "generic://h/x?code=abc&sig=def&signature=ghi&signal=on",
                "generic://h/x?code=***&sig=***&signature=***&signal=on",
            ),
            (
                "generic+https://hooks.example.com/services/T0123/B0456/XyZsecret789",
                "generic+https://hooks.example.com/services/***/***/***",
            ),
            (
                "generic://h/webhook/aGVsbG8td29ybGQtdG9rZW4",
                "generic://h/webhook/***",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(redact(raw), want, "{raw}");
        }
        let c = parse("telegram://1:abc@telegram?chats=x").unwrap();
        assert_eq!(
            c.channel.scrub("posting to /bot1:abc/sendMessage"),
            "posting to /bot***/sendMessage"
        );
        assert_eq!(format!("{c:?}"), c.shown);
    }

    #[test]
    fn scrubbing_hides_every_form_a_generic_channel_sends_its_secrets_in() {
        let c = parse("generic+http://u:pw%2Bx@h/hook/PaTh123?token=t%20k&code=cd&a=1").unwrap();
        // The request line as sent, and the Authorization header: Basic base64("u:pw+x").
        let echoed = "POST /hook/PaTh123?token=t+k&code=cd&a=1 HTTP/1.1 \
            Authorization: Basic dTpwdyt4 token t k, t%20k";
        let scrubbed = c.channel.scrub(echoed);
        for secret in ["PaTh123", "t+k", "t k", "t%20k", "cd", "dTpwdyt4", "pw+x"] {
            assert!(!scrubbed.contains(secret), "{secret}: {scrubbed}");
        }
        assert!(scrubbed.contains("a=1"), "{scrubbed}");
    }
}
