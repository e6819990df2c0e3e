//! What the watch loop lets out besides the audit file: every record and the engine's comings
//! and goings go to the metrics and the notifier, and a scrape's question about where the
//! targets stand comes in. Both are optional; neither can hold up the loop: counters are
//! atomics and notes are `try_send`s.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::audit;
use crate::metrics::{Metrics, StatusAsk};
use crate::notify::{Note, Notifier};
use crate::watch::core::outcome::Outcome;

#[derive(Default)]
pub struct Tap {
    notifier: Option<Notifier>,
    metrics: Option<Arc<Metrics>>,
    asks: Option<mpsc::Receiver<StatusAsk>>,
    /// Whether the engine was last said to be up, so that each change is told once (and the
    /// first connection is no "back").
    engine_up: Option<bool>,
}

impl Tap {
    pub fn new(
        notifier: Option<Notifier>,
        metrics: Option<Arc<Metrics>>,
        asks: Option<mpsc::Receiver<StatusAsk>>,
    ) -> Tap {
        Tap {
            notifier,
            metrics,
            asks,
            engine_up: None,
        }
    }

    pub fn report(&self, o: &Outcome) {
        if let Some(m) = &self.metrics {
            m.observe(o);
        }
        if let Some(n) = &self.notifier {
            n.tell(Note::Outcome(Box::new(o.clone())));
        }
    }

    /// The engine answers (`why` is `None`), or stopped answering.
    pub fn engine(&mut self, why: Option<String>) {
        let up = why.is_none();
        if let Some(m) = &self.metrics {
            m.engine(up);
        }
        let before = self.engine_up.replace(up);
        if before == Some(up) || (before.is_none() && up) {
            return;
        }
        if let Some(n) = &self.notifier {
            n.tell(Note::Engine {
                up,
                why,
                time: audit::now_rfc3339(),
            });
        }
    }

    /// At the stop: lets the notifications still grouped or queued out (bounded).
    pub async fn close(&mut self) {
        if let Some(n) = self.notifier.take() {
            n.close().await;
        }
    }

    /// The next scrape's question; never, without metrics.
    pub async fn next_ask(&mut self) -> StatusAsk {
        match &mut self.asks {
            Some(rx) => match rx.recv().await {
                Some(ask) => ask,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }
}
