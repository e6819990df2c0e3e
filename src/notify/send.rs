//! Delivery: one task per channel, each with its own bounded queue, so a dead channel holds up
//! no other and nothing the watch loop does. Each send has a timeout and a few retries with
//! back-off; a channel that fails is said once on the console, and once when it works again.

use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::alert::{self, Book};
use super::channel::{Channel, Configured, Encryption, Smtp};
use super::message::{self, Message, Note};
use super::request::{self, Bases, Buttons, HttpRequest};
use crate::http_client::{self, Client, Response};
use crate::metrics::Metrics;
use crate::prompt::Token;
use crate::watch::core::outcome::What;

/// One try at a send may take this long, connecting included.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Waits before the second and third tries.
const RETRY_WAITS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];
/// Firing alerts are posted again this often: Alertmanager resolves an alert it has not heard
/// of for its `resolve_timeout` (5 minutes by default).
const ALERT_REPOST: Duration = Duration::from_secs(60);
/// How much of a refusing server's answer goes into the error.
const BODY_SHOWN: usize = 200;
/// How much of it is kept to be scrubbed of secrets first: a secret across the cut at
/// [`BODY_SHOWN`] would otherwise show its first half.
const BODY_KEPT: usize = 4096;

/// Why a send failed. Its words never hold a secret of the channel.
#[derive(Debug, Error)]
pub enum SendError {
    #[error("the server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("{0}")]
    Transport(String),
    #[error("no answer within {}s", SEND_TIMEOUT.as_secs())]
    Timeout,
    #[error("email: {0}")]
    Smtp(String),
}

/// What every channel's task shares.
pub struct Shared {
    pub client: Client,
    /// For the connections that read answers: long polls and streams, which a whole-request
    /// timeout would cut.
    pub listen: Client,
    pub bases: Bases,
    pub host: String,
    pub metrics: Option<Arc<Metrics>>,
}

/// One group of notes, and the message they make.
pub struct Batch {
    pub notes: Vec<Note>,
    pub message: Message,
}

/// An HTTP client for notifications: each send within [`SEND_TIMEOUT`] as a whole. Redirects
/// are not followed: a webhook that redirects is misconfigured, and following it could carry
/// a token elsewhere.
pub fn client() -> Client {
    Client::new(Some(SEND_TIMEOUT), SEND_TIMEOUT)
}

/// An HTTP client for reading answers: as [`client`], without a limit on the whole request
/// (a stream stays open; each read has its own).
pub fn listening_client() -> Client {
    Client::new(None, SEND_TIMEOUT)
}

/// Runs one channel until its queue closes.
pub async fn run(
    c: Configured,
    label: String,
    mut queue: mpsc::Receiver<Arc<Batch>>,
    shared: Arc<Shared>,
) {
    let mut failing = false;
    let mut book = Book::default();
    let is_alertmanager = matches!(c.channel, Channel::Alertmanager { .. });
    let mut repost = tokio::time::interval(ALERT_REPOST);
    repost.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let alerts = tokio::select! {
            batch = queue.recv() => {
                let Some(batch) = batch else { return };
                if !is_alertmanager {
                    for (m, buttons) in parts(&c, &batch, &shared.host) {
                        let buttons = buttons.as_ref().map(|(token, restart)| Buttons {
                            token,
                            restart: *restart,
                        });
                        let result = with_retries(|| deliver_with(&c, &m, buttons, &shared)).await;
                        report(&c, &label, result, &mut failing, &shared);
                    }
                    continue;
                }
                book.apply(&shared.host, &batch.notes, &batch.message)
            }
            _ = repost.tick(), if is_alertmanager => book.firing(),
        };
        if alerts.is_empty() {
            continue;
        }
        let result = with_retries(|| post_alerts(&c, &alerts, &shared)).await;
        report(&c, &label, result, &mut failing, &shared);
    }
}

/// The messages a batch makes on channel `c`, each with the buttons it carries: the batch's
/// one message; on a two-way channel, its prompts each in a message of their own, with their
/// buttons (a button answers one prompt: in a group it could not say which), and the rest
/// together.
fn parts(c: &Configured, batch: &Batch, host: &str) -> Vec<(Message, Option<(Token, bool)>)> {
    let buttons = |n: &Note| match n {
        Note::Outcome(o) => match &o.what {
            What::Asked {
                token: Some(token),
                restart,
                ..
            } => Some((token.clone(), *restart)),
            _ => None,
        },
        _ => None,
    };
    if !c.channel.two_way() || !batch.notes.iter().any(|n| buttons(n).is_some()) {
        return if batch.message.silent {
            vec![]
        } else {
            vec![(batch.message.clone(), None)]
        };
    }
    let (prompts, rest): (Vec<&Note>, Vec<&Note>) =
        batch.notes.iter().partition(|n| buttons(n).is_some());
    let rest: Vec<Note> = rest.into_iter().cloned().collect();
    let mut out = Vec::new();
    let m = message::compose(host, &rest);
    if !m.silent {
        out.push((m, None));
    }
    for p in prompts {
        out.push((message::compose(host, std::slice::from_ref(p)), buttons(p)));
    }
    out
}

fn report(
    c: &Configured,
    label: &str,
    result: Result<(), SendError>,
    failing: &mut bool,
    shared: &Shared,
) {
    let ok = result.is_ok();
    if let Some(m) = &shared.metrics {
        m.notification(label, if ok { "ok" } else { "failed" });
    }
    match result {
        Ok(()) if std::mem::take(failing) => {
            info!(channel = %c.shown, "notifications through {} work again", c.shown)
        }
        Ok(()) => {}
        Err(e) if !std::mem::replace(failing, true) => warn!(
            channel = %c.shown,
            "notifications through {} fail: {}; trying again with the next message",
            c.shown, c.channel.scrub(&e.to_string())
        ),
        Err(_) => {}
    }
}

async fn with_retries<F, Fut>(mut send: F) -> Result<(), SendError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SendError>>,
{
    let mut last = send().await;
    for wait in RETRY_WAITS {
        // A refusal for bad credentials or a bad request does not get better by asking again.
        if matches!(
            &last,
            Ok(())
                | Err(SendError::Status {
                    status: 400..=499,
                    ..
                })
        ) {
            break;
        }
        tokio::time::sleep(wait).await;
        last = send().await;
    }
    last
}

/// One try at delivering `m` through `c`.
pub async fn deliver(c: &Configured, m: &Message, shared: &Shared) -> Result<(), SendError> {
    deliver_with(c, m, None, shared).await
}

/// One try at delivering `m` through `c`, a prompt's answer buttons with it where `c` carries
/// answers back.
async fn deliver_with(
    c: &Configured,
    m: &Message,
    buttons: Option<Buttons<'_>>,
    shared: &Shared,
) -> Result<(), SendError> {
    let sent = tokio::time::timeout(SEND_TIMEOUT, async {
        match &c.channel {
            Channel::Smtp(s) => send_email(s, m).await,
            Channel::Alertmanager { .. } => {
                let notes = [Note::Test];
                let alerts = Book::default().apply(&shared.host, &notes, m);
                post_alerts(c, &alerts, shared).await
            }
            channel => {
                let requests = match buttons {
                    Some(b) => request::prompt(channel, m, b, &shared.bases),
                    None => request::request(channel, m, &shared.bases),
                };
                for r in requests {
                    send_http(&shared.client, r).await?;
                }
                Ok(())
            }
        }
    })
    .await
    .unwrap_or(Err(SendError::Timeout));
    sent.map_err(|e| scrub(c, e))
}

async fn post_alerts(
    c: &Configured,
    alerts: &[alert::Alert],
    shared: &Shared,
) -> Result<(), SendError> {
    let Channel::Alertmanager { base, basic } = &c.channel else {
        return Ok(());
    };
    let r = request::alerts(base, basic.as_ref(), alerts);
    tokio::time::timeout(SEND_TIMEOUT, send_http(&shared.client, r))
        .await
        .unwrap_or(Err(SendError::Timeout))
        .map_err(|e| scrub(c, e))
}

fn scrub(c: &Configured, e: SendError) -> SendError {
    match e {
        SendError::Status { status, body } => SendError::Status {
            status,
            body: c
                .channel
                .scrub(&body)
                .chars()
                .take(BODY_SHOWN)
                .collect::<String>()
                .trim()
                .to_string(),
        },
        SendError::Transport(t) => SendError::Transport(c.channel.scrub(&t)),
        SendError::Smtp(t) => SendError::Smtp(c.channel.scrub(&t)),
        SendError::Timeout => SendError::Timeout,
    }
}

pub async fn send_http(client: &Client, r: HttpRequest) -> Result<(), SendError> {
    open(client, r).await.map(drop)
}

/// Sends `r`; the body of a successful answer, its first `most` bytes where it is longer.
pub async fn send_http_read(
    client: &Client,
    r: HttpRequest,
    most: usize,
) -> Result<bytes::Bytes, SendError> {
    open(client, r).await?.bytes(most).await.map_err(transport)
}

/// Sends `r`; the response, once its status says success, its body still to be read.
pub async fn open(client: &Client, r: HttpRequest) -> Result<Response, SendError> {
    // The client's errors never hold the URL, which may hold a token (Slack, Discord,
    // Telegram put it in the path).
    let resp = client
        .request(r.method, &r.url, &r.headers, r.body)
        .await
        .map_err(transport)?;
    let status = resp.status();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    // As much as is kept (a character is at most 4 bytes), and not waited for past a send's
    // time: a listening client's answer has no limit of its own.
    let body = tokio::time::timeout(SEND_TIMEOUT, resp.bytes(BODY_KEPT * 4))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Err(SendError::Status {
        status,
        body: String::from_utf8_lossy(&body)
            .chars()
            .take(BODY_KEPT)
            .collect::<String>()
            .trim()
            .to_string(),
    })
}

/// A failure of the HTTP client, as a send's.
pub fn transport(e: http_client::Error) -> SendError {
    match e {
        http_client::Error::Timeout => SendError::Timeout,
        e => SendError::Transport(crate::errors::error_chain(&e)),
    }
}

async fn send_email(s: &Smtp, m: &Message) -> Result<(), SendError> {
    let err = |e: &dyn std::error::Error| SendError::Smtp(crate::errors::error_chain(e));
    let mut email = lettre::Message::builder()
        .from(s.from.parse().map_err(|e| err(&e))?)
        .subject(m.title.clone());
    for to in &s.to {
        email = email.to(to.parse().map_err(|e| err(&e))?);
    }
    let email = email.body(m.message.clone()).map_err(|e| err(&e))?;
    let params = || TlsParameters::new(s.host.clone()).map_err(|e| err(&e));
    let tls = match s.encryption {
        Encryption::None => Tls::None,
        Encryption::Auto => Tls::Opportunistic(params()?),
        Encryption::ExplicitTls => Tls::Required(params()?),
        Encryption::ImplicitTls => Tls::Wrapper(params()?),
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
        .port(s.port)
        .timeout(Some(SEND_TIMEOUT))
        .tls(tls);
    if let Some(b) = &s.auth {
        transport = transport.credentials(Credentials::new(
            b.user.clone(),
            b.password.expose().to_string(),
        ));
    }
    transport
        .build()
        .send(email)
        .await
        .map(drop)
        .map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::channel::parse;
    use crate::watch::core::outcome::sample::{record, Kind};

    fn prompt(name: &str, bits: u128) -> Note {
        let mut r = record(Kind::Prompt, name, None);
        r.what = What::Asked {
            prompt: format!("{name} exited"),
            token: Some(Token::of("0123abcd", bits)),
            restart: false,
        };
        Note::Outcome(Box::new(r))
    }

    /// A group holding two prompts and a revival: one message on a one-way channel; on a
    /// two-way one, the revival, then each prompt alone with its own token.
    #[test]
    fn a_two_way_channel_gets_each_prompt_in_a_message_of_its_own() {
        let notes = vec![
            prompt("a", 1),
            Note::Outcome(Box::new(record(Kind::Action, "b", Some("running")))),
            prompt("c", 2),
        ];
        let batch = Batch {
            message: message::compose("h", &notes),
            notes,
        };
        let one_way = parse("ntfy://h/t").unwrap();
        let parts_one = parts(&one_way, &batch, "h");
        assert_eq!(parts_one.len(), 1);
        assert!(parts_one[0].1.is_none());

        let two_way = parse("ntfy://h/t?reply=r").unwrap();
        let got = parts(&two_way, &batch, "h");
        let titles: Vec<&str> = got.iter().map(|(m, _)| m.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "healthther on h: b revived",
                "healthther on h: a waiting for an answer",
                "healthther on h: c waiting for an answer",
            ]
        );
        let tokens: Vec<Option<Token>> = got.into_iter().map(|(_, b)| b.map(|b| b.0)).collect();
        assert_eq!(
            tokens,
            [
                None,
                Some(Token::of("0123abcd", 1)),
                Some(Token::of("0123abcd", 2))
            ]
        );
    }
}
