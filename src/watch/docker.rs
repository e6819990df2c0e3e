//! What the watch loop needs of the engine, and no more: declared here, by the module that uses
//! it, so that the adapter (`engine.rs`) implements it without reaching the loop.

use std::future::Future;
use std::time::{Duration, SystemTime};

use futures_util::Stream;
use thiserror::Error;

use super::core::event::Event;
use crate::policy::{Listed, Snapshot};
use crate::targets::ContainerRef;

pub trait Docker: Clone + Send + Sync + 'static {
    /// Every container (`full`), or only those that may need attention.
    fn list(&self, full: bool) -> impl Future<Output = Result<Vec<Listed>, DockerError>> + Send;
    /// The container's state, or `None` if it no longer exists.
    fn inspect(
        &self,
        c: &ContainerRef,
    ) -> impl Future<Output = Result<Option<Snapshot>, DockerError>> + Send;
    fn start(&self, c: &ContainerRef) -> impl Future<Output = Result<Started, DockerError>> + Send;
    /// Stops it, waiting up to `timeout` before killing it.
    fn stop(
        &self,
        c: &ContainerRef,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Replaces the container by one of the same name and configuration whose network is
    /// `parent_id`'s (stopping the old one waits up to `stop_timeout`); returns the new
    /// container's id.
    fn recreate(
        &self,
        c: &ContainerRef,
        parent_id: &str,
        stop_timeout: Duration,
    ) -> impl Future<Output = Result<String, DockerError>> + Send;
    /// Container events from `since` on, then live.
    fn events(
        &self,
        since: SystemTime,
    ) -> impl Stream<Item = Result<Event, DockerError>> + Send + 'static;
    /// The API version spoken, for the log.
    fn api_version(&self) -> String;
    /// Finishes the recreations a crash of ours cut short, for the containers `ours` names a
    /// target of; returns each finished one with its target and the container now under its
    /// name.
    fn repair_recreations<T, F>(
        &self,
        ours: F,
        stop_timeout: Duration,
    ) -> impl Future<Output = Vec<(T, ContainerRef)>> + Send
    where
        T: Send,
        F: Fn(&ContainerRef) -> Option<T> + Send + Sync;
}

/// How the loop reaches an engine: once at the start, and again after each loss.
pub trait Connect: Send + Sync + 'static {
    type Docker: Docker;
    fn connect(&self) -> impl Future<Output = Result<Self::Docker, DockerError>> + Send;
}

/// What a start call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    Now,
    /// Nothing: it was running already (the engine's 304).
    Already,
}

/// A call to the engine that failed: its message, the engine's own words, and what kind of
/// failure it was, which is all the loop tells failures apart by.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct DockerError {
    /// With what was being done ("inspecting container nodo_1: ...").
    message: String,
    /// The engine's own words, without our context: what `docker` would print.
    docker_text: String,
    kind: Failure,
}

/// What kind of failure a [`DockerError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer at all: the connection failed, broke or timed out, or the stream ended.
    Unreachable,
    /// The engine (or what stands in front of it) answered with this HTTP status.
    Answered(u16),
    /// The container to recreate was gone.
    Gone,
    /// Anything else: an answer that could not be read, a recreation refused.
    Other,
}

impl DockerError {
    pub fn new(kind: Failure, message: impl Into<String>, docker_text: impl Into<String>) -> Self {
        DockerError {
            message: message.into(),
            docker_text: docker_text.into(),
            kind,
        }
    }

    /// The event stream ended (the engine or a proxy closed it).
    pub fn stream_ended() -> Self {
        let text = "the Docker engine ended the event stream";
        DockerError::new(Failure::Unreachable, text, text)
    }

    pub fn kind(&self) -> Failure {
        self.kind
    }

    /// The engine's own words for the failure (what `docker` would print), without our
    /// context.
    pub fn docker_text(&self) -> String {
        self.docker_text.clone()
    }

    /// Whether the engine's endpoint refused the call as not allowed (HTTP 401 or 403): a
    /// docker-socket-proxy that does not allow it, or an authorization plugin. Trying again
    /// soon cannot help, and the container is not to blame.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self.kind, Failure::Answered(401 | 403))
    }

    /// Whether the engine (or what stands in front of it) answered at all: an HTTP status, as
    /// opposed to a connection that failed or timed out.
    pub fn engine_answered(&self) -> bool {
        matches!(self.kind, Failure::Answered(_))
    }

    /// Whether the call got no answer at all: the connection failed, broke or timed out. Not
    /// an error the engine answered, nor one of ours about what it answered.
    pub fn is_unreachable(&self) -> bool {
        self.kind == Failure::Unreachable
    }
}
