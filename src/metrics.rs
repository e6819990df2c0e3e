//! Prometheus metrics on `HEALTH_METRICS_ADDR`: `GET /metrics` and nothing else. The listener
//! only reads: no request on it changes state, and it never reaches the Docker API.
//!
//! Counters are fed from the audit records as they are written, gauges from a status snapshot
//! the watch loop answers at each scrape (the same rows `healthther status` shows).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::policy::{Snapshot, Status};
use crate::slots::Slots;
use crate::watch::core::outcome::{ActResult, Outcome, What};
use crate::watch::core::status::TargetStatus;

/// A scrape's question to the watch loop: where each target stands now.
pub type StatusAsk = oneshot::Sender<Vec<TargetStatus>>;

/// How long a scrape waits for the watch loop's answer before serving the counters alone.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// A client must send its request head within this: a scraper sends it as it connects.
const HEAD_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection lasts this long at most, however slowly its client reads the reply.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
#[error("cannot listen for metrics on {addr} (HEALTH_METRICS_ADDR, --metrics-addr): {source}")]
pub struct BindError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    target: String,
    container: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    target: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    target: String,
    action: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

pub struct Metrics {
    registry: Registry,
    target_up: Family<ContainerLabels, Gauge>,
    failures: Family<FailureLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    recovery: Histogram,
    quarantined: Family<TargetLabel, Gauge>,
    held: Family<TargetLabel, Gauge>,
    prompts_pending: Gauge,
    engine_up: Gauge,
    notifications: Family<ChannelLabels, Counter>,
    probe_up: Family<ContainerLabels, Gauge>,
    probe_duration: Family<ContainerLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new(&crate::host::hostname())
    }
}

impl Metrics {
    /// Every series carries `host` (`HEALTH_NOTIFY_HOST`, by default the machine's hostname):
    /// one Prometheus scraping a fleet finds the tasks by address (Swarm's DNS), and the
    /// address says nothing to a person, so each series says which host it is from.
    pub fn new(host: &str) -> Metrics {
        let mut registry = Registry::with_prefix_and_labels(
            "healthther",
            std::iter::once(("host".into(), label_value(host).into())),
        );
        let m = Metrics {
            target_up: Family::default(),
            failures: Family::default(),
            actions: Family::default(),
            // 50 ms to about 7 hours: an immediate revival to a prompt answered next morning.
            recovery: Histogram::new(exponential_buckets(0.05, 2.0, 20)),
            quarantined: Family::default(),
            held: Family::default(),
            prompts_pending: Gauge::default(),
            engine_up: Gauge::default(),
            notifications: Family::default(),
            probe_up: Family::default(),
            probe_duration: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "target_up",
            "1 when the target's container runs and is not unhealthy",
            m.target_up.clone(),
        );
        registry.register(
            "failures",
            "Failures seen that led to an action, a prompt or an observation, by kind (exited, oom, dead, unhealthy, probe)",
            m.failures.clone(),
        );
        registry.register(
            "actions",
            "Starts and restarts, by result",
            m.actions.clone(),
        );
        registry.register(
            "recovery_seconds",
            "From a failure's first record (or the revival itself) to running again",
            m.recovery.clone(),
        );
        registry.register(
            "quarantined",
            "1 while a container of the target is quarantined",
            m.quarantined.clone(),
        );
        registry.register(
            "held",
            "1 while the target is held (by an operator, or stopped under HEALTH_ON_STOP=hold)",
            m.held.clone(),
        );
        registry.register(
            "prompts_pending",
            "Prompts waiting for an operator's answer",
            m.prompts_pending.clone(),
        );
        registry.register(
            "engine_up",
            "1 while the Docker engine answers",
            m.engine_up.clone(),
        );
        registry.register(
            "probe_up",
            "1 when the last probe a label declares (healthther.probe) succeeded",
            m.probe_up.clone(),
        );
        registry.register(
            "probe_duration_seconds",
            "How long the last probe took, answer or failure",
            m.probe_duration.clone(),
        );
        registry.register(
            "notifications",
            "Notifications sent, by channel and result (ok, failed, dropped)",
            m.notifications.clone(),
        );
        let build = Family::<VersionLabel, Gauge>::default();
        build
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register("build_info", "healthther's version", build);
        Metrics { registry, ..m }
    }

    /// Counts what the core reports: each failure once (at its first word), each action, and
    /// how long a failure lasted when our action ended it.
    pub fn observe(&self, o: &Outcome) {
        if let What::Acted { action, result, .. } = &o.what {
            self.actions
                .get_or_create(&ActionLabels {
                    target: target_of(o),
                    action: action.word().to_string(),
                    result: action_result(result).to_string(),
                })
                .inc();
        }
        let Some(down) = o.down else { return };
        // Told of a failure (a prompt, an observation, an action, a quarantine, a failure not
        // acted on): counted at its first word.
        if down.first {
            self.failures
                .get_or_create(&FailureLabels {
                    target: target_of(o),
                    kind: failure_kind(o.state.as_ref()).to_string(),
                })
                .inc();
        }
        if let What::Acted {
            result: ActResult::Running | ActResult::Recreated { .. },
            took,
            ..
        } = &o.what
        {
            let lasted = o.at.duration_since(down.since).unwrap_or_default();
            self.recovery.observe(lasted.max(*took).as_secs_f64());
        }
    }

    pub fn engine(&self, up: bool) {
        self.engine_up.set(i64::from(up));
    }

    pub fn notification(&self, channel: &str, result: &str) {
        self.notifications
            .get_or_create(&ChannelLabels {
                channel: channel.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// Sets the gauges from where each target stands now.
    pub fn snapshot(&self, rows: &[TargetStatus]) {
        self.target_up.clear();
        self.probe_up.clear();
        self.probe_duration.clear();
        self.quarantined.clear();
        self.held.clear();
        let mut prompts = 0;
        for t in rows {
            let target = TargetLabel {
                target: label_value(&t.target),
            };
            let quarantined = t.containers.iter().any(|c| c.quarantined);
            // Held as a whole, or one of its containers: held alone (`hold CONTAINER`, for a
            // container a selector chose) or stopped under HEALTH_ON_STOP=hold.
            let held = t.held.is_some()
                || t.containers
                    .iter()
                    .any(|c| c.held_by_stop || c.held.is_some());
            self.quarantined
                .get_or_create(&target)
                .set(i64::from(quarantined));
            self.held.get_or_create(&target).set(i64::from(held));
            if t.containers.is_empty() {
                self.target_up
                    .get_or_create(&ContainerLabels {
                        target: target.target.clone(),
                        container: String::new(),
                    })
                    .set(0);
            }
            for c in &t.containers {
                prompts += i64::from(c.prompt_open);
                let probe = c.probe.as_ref();
                let up = c.state.as_deref() == Some("running")
                    && c.health.as_deref() != Some("unhealthy")
                    && !probe.is_some_and(|p| p.failing);
                let labels = ContainerLabels {
                    target: target.target.clone(),
                    container: label_value(&c.name),
                };
                self.target_up.get_or_create(&labels).set(i64::from(up));
                if let Some(p) = probe.filter(|p| p.up.is_some()) {
                    let ok = p.up == Some(true);
                    self.probe_up.get_or_create(&labels).set(i64::from(ok));
                    let took = p.took_ms.unwrap_or(0) as f64 / 1000.0;
                    self.probe_duration.get_or_create(&labels).set(took);
                }
            }
        }
        self.prompts_pending.set(prompts);
    }

    /// The Prometheus text format (0.0.4), which every scraper and `promtool check metrics`
    /// read.
    pub fn encode(&self) -> String {
        let mut open = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut open, &self.registry);
        openmetrics_to_text(&open)
    }
}

/// The result words an action's metric is labelled with: a fixed few, whatever the engine said.
fn action_result(result: &ActResult) -> &'static str {
    match result {
        ActResult::Running | ActResult::Recreated { .. } => "running",
        ActResult::AlreadyRunning => "already_running",
        ActResult::Removed => "removed",
        ActResult::Stopped => "stopped",
        ActResult::Withdrawn => "withdrawn",
        ActResult::LeftStopped { .. } => "left_stopped",
        ActResult::Failed { .. } | ActResult::Unreachable { .. } => "failed",
        ActResult::Unknown { .. } => "unknown",
        ActResult::NotRunning { .. } => "not_running",
    }
}

fn failure_kind(state: Option<&Snapshot>) -> &'static str {
    match state {
        Some(s) if s.oom_killed => "oom",
        Some(s) if s.status == Status::Dead => "dead",
        Some(s) if s.status == Status::Running && s.probe_error.is_some() => "probe",
        Some(s) if s.status == Status::Running => "unhealthy",
        _ => "exited",
    }
}

fn target_of(o: &Outcome) -> String {
    o.target
        .as_ref()
        .map_or_else(String::new, |t| label_value(t.as_str()))
}

/// `text` as the text format needs a label value: prometheus-client writes it as it is, and a
/// selector's value may hold '"' or '\' (as a Docker label's may), which would end the value
/// early and make Prometheus reject the whole scrape.
fn label_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// prometheus-client writes OpenMetrics; the classic text format differs in three ways for
/// what we expose: no `# EOF`, no `# UNIT`, and a counter's family is named with its `_total`.
fn openmetrics_to_text(open: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in open.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|l| l.strip_suffix(" counter"))
        {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::new();
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# TYPE ", "# HELP "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Binds the metrics listener; a failure names the setting.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Serves `GET /metrics` until `cancel`, holding at most `slots` connections (see
/// [`crate::slots`]), one request each.
pub async fn serve(
    listener: TcpListener,
    slots: Slots,
    metrics: Arc<Metrics>,
    asks: mpsc::Sender<StatusAsk>,
    cancel: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        info!("serving metrics on http://{addr}/metrics");
    }
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    debug!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slot = tokio::select! {
            _ = cancel.cancelled() => return,
            slot = slots.take() => slot,
        };
        let (metrics, asks) = (Arc::clone(&metrics), asks.clone());
        slots
            .spawn(slot, move |heard| async move {
                let service = hyper::service::service_fn(move |req| {
                    heard.now();
                    let (metrics, asks) = (Arc::clone(&metrics), asks.clone());
                    async move { Ok::<_, Infallible>(answer(req, &metrics, &asks).await) }
                });
                // One request per connection (a scrape every few seconds needs no more), so
                // a connection is silent until its request comes, and then soon closed.
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                match tokio::time::timeout(CONNECTION_TIMEOUT, served).await {
                    Ok(Err(e)) => {
                        debug!(%peer, error = %e, "metrics: connection ended with an error")
                    }
                    Err(_) => debug!(%peer, "metrics: connection took too long; closed"),
                    Ok(Ok(())) => {}
                }
            })
            .await;
    }
}

async fn answer<B>(
    req: Request<B>,
    metrics: &Metrics,
    asks: &mpsc::Sender<StatusAsk>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "only /metrics is here\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /metrics only: nothing here changes state\n".into(),
        );
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    let (tx, rx) = oneshot::channel();
    if asks.try_send(tx).is_ok() {
        if let Ok(Ok(rows)) = tokio::time::timeout(ASK_TIMEOUT, rx).await {
            metrics.snapshot(&rows);
        }
    }
    let mut r = reply(StatusCode::OK, metrics.encode());
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::core::outcome::sample::{record, Kind};

    #[test]
    fn counts_actions_failures_and_recoveries_each_series_with_the_host() {
        let m = Metrics::new("web-01");
        m.observe(&record(Kind::Action, "nodo_1", Some("running")));
        m.observe(&record(Kind::Action, "nodo_1", Some("exited (code 1)")));
        m.engine(true);
        m.notification("slack", "ok");
        let text = m.encode();
        for want in [
            "healthther_actions_total{host=\"web-01\",target=\"nodo_1\",action=\"start\",result=\"running\"} 1",
            "healthther_actions_total{host=\"web-01\",target=\"nodo_1\",action=\"start\",result=\"not_running\"} 1",
            "healthther_failures_total{host=\"web-01\",target=\"nodo_1\",kind=\"exited\"} 2",
            "healthther_recovery_seconds_count{host=\"web-01\"} 1",
            "healthther_engine_up{host=\"web-01\"} 1",
            "healthther_notifications_total{host=\"web-01\",channel=\"slack\",result=\"ok\"} 1",
            "healthther_build_info{host=\"web-01\",version=\"",
            "# TYPE healthther_actions_total counter",
        ] {
            assert!(text.contains(want), "{want} not in:\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn failures_of_held_and_quarantined_targets_count() {
        let m = Metrics::new("web-01");
        m.observe(&record(Kind::Skipped, "held_1", Some("held")));
        m.observe(&record(Kind::Skipped, "sick_1", Some("quarantined")));
        m.observe(&record(Kind::Skipped, "other", Some("not_a_target")));
        let text = m.encode();
        for want in [
            "healthther_failures_total{host=\"web-01\",target=\"held_1\",kind=\"exited\"} 1",
            "healthther_failures_total{host=\"web-01\",target=\"sick_1\",kind=\"exited\"} 1",
        ] {
            assert!(text.contains(want), "{want} not in:\n{text}");
        }
        assert!(!text.contains("target=\"other\""), "{text}");
    }

    /// The death that brings a quarantine is a failure like any other: the first word of it
    /// (the quarantine itself) counts it, and later words of it do not.
    #[test]
    fn the_failure_that_brings_a_quarantine_counts_once() {
        let m = Metrics::new("web-01");
        let mut q = record(Kind::Skipped, "sick_1", Some("quarantined"));
        q.what = What::Quarantined {
            note: "2 revivals failed".into(),
        };
        m.observe(&q);
        let mut more = record(Kind::Skipped, "sick_1", Some("quarantined"));
        if let Some(d) = more.down.as_mut() {
            d.first = false;
        }
        m.observe(&more);
        let text = m.encode();
        let want = "healthther_failures_total{host=\"web-01\",target=\"sick_1\",kind=\"exited\"} 1";
        assert!(text.contains(want), "{want} not in:\n{text}");
    }

    #[test]
    fn a_selector_with_quotes_or_backslashes_keeps_the_exposition_valid() {
        // A Docker label value may hold '"' and '\', so a selector may: written raw into a
        // label value, it ends the value early and Prometheus rejects the whole scrape.
        let m = Metrics::new("web-01");
        m.observe(&record(Kind::Action, r#"label:tier="a\b"#, Some("running")));
        let text = m.encode();
        let want = r#"healthther_actions_total{host="web-01",target="label:tier=\"a\\b",action="start",result="running"} 1"#;
        assert!(text.contains(want), "{want} not in:\n{text}");
    }

    #[test]
    fn a_container_held_alone_marks_its_selector_held() {
        use crate::watch::core::status::{ContainerStatus, HoldStatus, TargetStatus};
        let container = |name: &str, held: bool| ContainerStatus {
            name: name.into(),
            id: "0123456789ab".into(),
            project: None,
            state: Some("exited".into()),
            health: None,
            since: None,
            last_action: None,
            failed_revivals: 0,
            backoff_until: None,
            quarantined: false,
            prompt_open: false,
            held_by_stop: false,
            last_cause: None,
            dependents: Vec::new(),
            held: held.then(|| HoldStatus {
                reason: "held by the operator".into(),
                by: "control socket".into(),
                since: "2026-01-01T00:00:00Z".into(),
                until: None,
            }),
            probe: None,
        };
        let m = Metrics::new("web-01");
        m.snapshot(&[TargetStatus {
            target: "label:autoheal".into(),
            resolution: "found",
            ambiguous_projects: Vec::new(),
            held: None,
            answer: None,
            containers: vec![container("a1", true), container("a2", false)],
        }]);
        let text = m.encode();
        let want = r#"healthther_held{host="web-01",target="label:autoheal"} 1"#;
        assert!(text.contains(want), "{want} not in:\n{text}");
    }

    #[test]
    fn a_failing_probe_is_down_in_target_up_and_probe_up() {
        use crate::watch::core::status::{ContainerStatus, ProbeStatus, TargetStatus};
        let container = |name: &str, up: Option<bool>, failing: bool| ContainerStatus {
            name: name.into(),
            id: "0123456789ab".into(),
            project: None,
            state: Some("running".into()),
            health: Some("none".into()),
            since: None,
            last_action: None,
            failed_revivals: 0,
            backoff_until: None,
            quarantined: false,
            prompt_open: false,
            held_by_stop: false,
            last_cause: None,
            dependents: Vec::new(),
            held: None,
            probe: Some(ProbeStatus {
                probe: "http://:8080/ every 10s".into(),
                up,
                failing,
                failures: if failing { 3 } else { 0 },
                last: None,
                took_ms: up.map(|_| 1500),
                error: None,
                unreachable: None,
            }),
        };
        let m = Metrics::new("h");
        m.snapshot(&[TargetStatus {
            target: "web".into(),
            resolution: "found",
            ambiguous_projects: Vec::new(),
            held: None,
            answer: None,
            containers: vec![
                container("ok", Some(true), false),
                container("hung", Some(false), true),
                container("new", None, false),
            ],
        }]);
        let text = m.encode();
        for want in [
            r#"healthther_probe_up{host="h",target="web",container="ok"} 1"#,
            r#"healthther_probe_up{host="h",target="web",container="hung"} 0"#,
            r#"healthther_probe_duration_seconds{host="h",target="web",container="hung"} 1.5"#,
            r#"healthther_target_up{host="h",target="web",container="ok"} 1"#,
            r#"healthther_target_up{host="h",target="web",container="hung"} 0"#,
        ] {
            assert!(text.contains(want), "{want} not in:\n{text}");
        }
        assert!(
            !text.contains(r#"probe_up{host="h",target="web",container="new"}"#),
            "{text}"
        );
    }
}
