//! The two-way channels' other half: a task per channel that reads the answers its prompts'
//! buttons send back (ntfy's reply topic, Telegram's button presses), over connections
//! healthther opens itself: nothing listens. Each answer goes to the watch loop as the control
//! socket's requests do ([`Input::Request`] with [`Request::AnswerToken`]); the loop applies it
//! to the open prompt with that token alone, and replies with what followed.
//!
//! A channel that cannot be reached is said once, tried again with back-off, and said once
//! more when it works again; prompts are still answered at the terminal and the control socket.

mod ntfy;
mod telegram;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::channel::{Channel, Configured};
use super::send::Shared;
use crate::backoff::Backoff;
use crate::control::{Input, Reply, Request};
use crate::prompt::Answer;
use crate::quota::{self, Quota, Say};

/// Waits between tries at a channel that cannot be reached.
const RETRY: Backoff = Backoff {
    first: Duration::from_secs(1),
    cap: Duration::from_secs(60),
};

/// Reads the answers that come back through `c` until the watch loop is gone (or the task is
/// aborted at the stop). Channels that carry none return at once.
pub async fn run(c: Configured, answers: mpsc::Sender<Input>, shared: Arc<Shared>) {
    let mut said = Said::new(&c);
    match &c.channel {
        Channel::Ntfy { .. } => ntfy::run(&c, &answers, &shared, &mut said).await,
        Channel::Telegram { .. } => telegram::run(&c, &answers, &shared, &mut said).await,
        _ => {}
    }
}

/// Hands an answer to the watch loop and waits for what followed; `None` once it is gone.
async fn answer(
    answers: &mpsc::Sender<Input>,
    token: &str,
    answer: Answer,
    peer: String,
) -> Option<Reply> {
    let (reply, replied) = oneshot::channel();
    let input = Input::Request {
        request: Request::AnswerToken {
            token: token.to_string(),
            answer,
        },
        peer,
        reply,
    };
    answers.send(input).await.ok()?;
    replied.await.ok()
}

/// Whether the channel is failing, so that a failure is said once and its end once; and how
/// many lines about strangers' messages were said lately (see [`Quota`]).
struct Said {
    shown: String,
    failures: u32,
    strangers: Quota,
}

impl Said {
    fn new(c: &Configured) -> Said {
        Said {
            shown: c.shown.clone(),
            failures: 0,
            strangers: Quota::default(),
        }
    }

    /// Whether to log a line about a stranger's message now: `Some` with what to add to it
    /// (how many were not logged before it), or `None` past the minute's few.
    fn stranger(&mut self) -> Option<String> {
        match self.strangers.take(std::time::Instant::now()) {
            Say::Yes { held } => Some(quota::held_note(held)),
            Say::No => None,
        }
    }

    /// It works (again).
    fn works(&mut self) {
        if std::mem::take(&mut self.failures) > 0 {
            info!(channel = %self.shown, "answers through {} are read again", self.shown);
        }
    }

    /// It failed for `why` (scrubbed of the channel's secrets): said the first time; the wait
    /// before the next try.
    fn failed(&mut self, why: &str) -> Duration {
        if self.failures == 0 {
            warn!(
                channel = %self.shown,
                "cannot read answers through {}: {}; trying again, and prompts are still \
                 answered with `healthther answer`",
                self.shown,
                crate::escape::control(why)
            );
        }
        self.failures = self.failures.saturating_add(1);
        RETRY.after(self.failures)
    }
}

/// The longest answer message read: a token and a word are 48 bytes.
pub const ANSWER_MAX: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strangers_messages_are_a_few_lines_a_minute() {
        let c = crate::notify::channel::parse("ntfy://ntfy.sh/t?reply=r").expect("a channel");
        let mut said = Said::new(&c);
        let lines = (0..1000).filter_map(|_| said.stranger()).count();
        assert_eq!(lines, quota::PER_WINDOW as usize);
    }
}
