//! The work the loop hands out: inspect a container, or act on it. Each runs as a task of its
//! own so the loop never waits on the engine, and reports back what it found or did.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::audit::{now_rfc3339, ActionRecord, Audit};
use crate::config::Mode;
use crate::engine::{Engine, EngineError};
use crate::policy::{classify, describe, Snapshot, Status, Verdict};
use crate::prompt::Answer;
use crate::targets::{ContainerRef, TargetName};

/// Who allowed an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// MODE=auto.
    Auto,
    /// The operator once answered `always` for this target.
    Always,
    /// The operator answered this very prompt.
    Operator { answer: Answer, by: String },
}

impl Approval {
    /// For the logs and the audit file's `by`.
    pub fn by(&self) -> String {
        match self {
            Approval::Auto => "auto".into(),
            Approval::Always => "operator: always".into(),
            Approval::Operator { answer, by } => {
                let word = match answer {
                    Answer::Yes => "yes",
                    Answer::No => "no",
                    Answer::Always => "always",
                    Answer::Never => "never",
                };
                format!("operator: {word} ({by})")
            }
        }
    }
}

/// What a task found or did.
pub struct Done {
    pub container: ContainerRef,
    pub target: TargetName,
    pub approval: Option<Approval>,
    pub outcome: Outcome,
}

pub enum Outcome {
    /// The container no longer exists.
    Gone,
    /// Looked at it.
    Seen(Snapshot, Verdict),
    /// Acted on it (logged and recorded already); `call_failed` when the engine refused,
    /// `denied` when it refused as not allowed (HTTP 401/403: a permission problem).
    Acted { call_failed: bool, denied: bool },
    /// The engine did not answer the inspect call.
    Failed(EngineError),
}

/// What tasks share: the engine, the audit file, and a bound on engine calls at once, so that
/// twenty targets dying together are revived in parallel without a storm of requests.
#[derive(Clone)]
pub struct Tasks {
    pub engine: Engine,
    pub audit: Arc<Audit>,
    pub mode: Mode,
    pub stop_timeout: Duration,
    pub calls: Arc<Semaphore>,
}

impl Tasks {
    pub async fn inspect(
        self,
        container: ContainerRef,
        target: TargetName,
        approval: Option<Approval>,
    ) -> Done {
        let outcome = {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = self.calls.acquire().await;
            let began = Instant::now();
            let inspected = self.engine.inspect(&container).await;
            // How long the engine took: after a die it holds the container while it finishes
            // the exit, and the benchmark tells that apart from our own time.
            let took_us = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
            tracing::debug!(container = %container.name, took_us, "inspected");
            match inspected {
                Ok(None) => Outcome::Gone,
                Err(e) => Outcome::Failed(e),
                Ok(Some(snapshot)) => {
                    let verdict = classify(&snapshot);
                    Outcome::Seen(snapshot, verdict)
                }
            }
        };
        Done {
            container,
            target,
            approval,
            outcome,
        }
    }

    /// Starts or restarts the container, checks that it runs again, and records it.
    pub async fn act(
        self,
        target: TargetName,
        s: Snapshot,
        verdict: Verdict,
        approval: Approval,
    ) -> Done {
        let _permit = self.calls.acquire().await;
        let c = &s.container;
        let seen = describe(&s);
        let by = approval.by();
        info!(target = %target, container = %c.name, seen = %seen, decision = %verdict, by = %by, "reviving");
        let began = Instant::now();
        let done = match verdict {
            Verdict::Restart => self.engine.restart(c, self.stop_timeout).await,
            _ => self.engine.start(c).await,
        };
        let call_failed = done.is_err();
        let denied = done.as_ref().is_err_and(EngineError::is_permission_denied);
        let (result, error) = match done {
            Err(e) => ("failed".to_string(), Some(e.docker_text())),
            Ok(()) => match self.engine.inspect(c).await {
                Ok(Some(after)) if after.status == Status::Running => ("running".to_string(), None),
                Ok(Some(after)) => (describe(&after), after.error.clone()),
                Ok(None) => ("removed".to_string(), None),
                Err(e) => ("unknown".to_string(), Some(e.docker_text())),
            },
        };
        let took_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &error {
            None if result == "running" => {
                info!(target = %target, container = %c.name, took_ms, "revived: running again")
            }
            _ => warn!(
                target = %target, container = %c.name, result = %result,
                error = error.as_deref().unwrap_or(""), "revival did not bring it back"
            ),
        }
        self.audit.record(&ActionRecord {
            time: now_rfc3339(),
            event: "action",
            target: target.as_str(),
            container: &c.name,
            container_id: &c.id,
            mode: match self.mode {
                Mode::Auto => "auto",
                Mode::Manual => "manual",
            },
            by: &by,
            seen,
            state: &s,
            decision: verdict,
            result,
            error,
            took_ms,
        });
        Done {
            container: c.clone(),
            target,
            approval: Some(approval),
            outcome: Outcome::Acted {
                call_failed,
                denied,
            },
        }
    }
}
