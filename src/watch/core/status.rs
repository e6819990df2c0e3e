//! `healthther status`: what each target resolves to and where it stands, as rows for people
//! and as JSON for scripts (the field names are documented in the README and stay stable).

use std::time::SystemTime;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetStatus {
    /// The target as written in `HEALTH_TARGETS`.
    pub target: String,
    /// `found`, `missing`, `ambiguous` (a bare service name of several projects), or
    /// `opted_out` (only containers labelled `healthther.enable=false` have its name).
    pub resolution: &'static str,
    /// For `ambiguous`: the projects that have the service.
    pub ambiguous_projects: Vec<String>,
    pub held: Option<HoldStatus>,
    /// The operator's standing answer: `always` or `never`.
    pub answer: Option<&'static str>,
    pub containers: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldStatus {
    pub reason: String,
    pub by: String,
    pub since: String,
    /// `None`: until `healthther resume`.
    pub until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerStatus {
    pub name: String,
    /// The short id, as `docker ps` shows it.
    pub id: String,
    pub project: Option<String>,
    /// The engine's state (`running`, `exited`, ...), as last seen.
    pub state: Option<String>,
    /// `healthy`, `unhealthy`, `starting` or `none`.
    pub health: Option<String>,
    /// Since when it has been in that state, when known.
    pub since: Option<String>,
    pub last_action: Option<ActionStatus>,
    /// Revivals that failed within the quarantine window.
    pub failed_revivals: usize,
    /// When the next revival may come, while backing off.
    pub backoff_until: Option<String>,
    pub quarantined: bool,
    pub prompt_open: bool,
    /// Stopped through the engine's API under `HEALTH_ON_STOP=hold`.
    pub held_by_stop: bool,
    /// Why it went down last: `api_kill`, `api_stop`, `crash`, `oom`, `unhealthy`,
    /// `parent_restarted` or `parent_recreated`.
    pub last_cause: Option<&'static str>,
    /// The containers that share its network namespace (or that compose restarts with it):
    /// they are restarted after it, if they are targets.
    pub dependents: Vec<String>,
    /// Held alone (`hold CONTAINER`, for a container a label selector chose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<HoldStatus>,
    /// Its probe, when its labels declare one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeStatus>,
}

/// A probe declared by label, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeStatus {
    /// As the label declares it, with its interval: `http://:8080/healthz every 10s`.
    pub probe: String,
    /// Whether the last probe succeeded; `None` before the first.
    pub up: Option<bool>,
    /// It failed `retries` times in a row: unhealthy.
    pub failing: bool,
    /// Failures in a row that counted.
    pub failures: u32,
    /// When the last probe ended.
    pub last: Option<String>,
    pub took_ms: Option<u64>,
    /// The last probe's error.
    pub error: Option<String>,
    /// Why it is not probed, when it cannot be reached (no shared network).
    pub unreachable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionStatus {
    /// `start` or `restart`.
    pub what: &'static str,
    pub when: String,
    pub result: String,
}

/// A probe in the FLAGS column: `probe up (12 ms)`, `probe FAILING 3x: HTTP 500`.
fn probe_flag(p: &ProbeStatus) -> String {
    let what = if let Some(why) = &p.unreachable {
        format!("not probed: {why}")
    } else {
        match (p.up, p.failing) {
            (None, _) => "not probed yet".to_string(),
            (Some(true), _) => format!("up ({} ms)", p.took_ms.unwrap_or(0)),
            (Some(false), failing) => format!(
                "{} {}x: {}",
                if failing { "FAILING" } else { "failed" },
                p.failures,
                p.error.as_deref().unwrap_or("?")
            ),
        }
    };
    format!("probe {}: {what}", p.probe)
}

pub fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// One row per container of each target (a target with none gets one row of its own).
pub fn render(rows: &[TargetStatus]) -> String {
    let mut table = vec![[
        "TARGET",
        "CONTAINER",
        "STATE",
        "SINCE",
        "LAST ACTION",
        "FAILED",
        "BACKOFF UNTIL",
        "FLAGS",
    ]
    .map(String::from)];
    for t in rows {
        let mut flags = Vec::new();
        match t.resolution {
            "missing" => flags.push("unresolved".to_string()),
            "opted_out" => flags.push("opted out (healthther.enable=false)".to_string()),
            "ambiguous" => flags.push(format!(
                "ambiguous: {} (write project/{})",
                t.ambiguous_projects.join(", "),
                t.target
            )),
            _ => {}
        }
        if let Some(h) = &t.held {
            let until = h.until.as_deref().unwrap_or("resume");
            flags.push(format!("held until {until}: {}", h.reason));
        }
        if let Some(a) = t.answer {
            flags.push(a.to_string());
        }
        if t.containers.is_empty() {
            table.push([
                t.target.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                dash(flags.join("; ")),
            ]);
        }
        for c in &t.containers {
            let mut flags = flags.clone();
            if c.quarantined {
                flags.push("QUARANTINED".into());
            }
            if c.prompt_open {
                flags.push("prompt open".into());
            }
            if c.held_by_stop {
                flags.push("held: stopped through the API".into());
            }
            if let Some(h) = &c.held {
                let until = h.until.as_deref().unwrap_or("resume");
                flags.push(format!("held until {until}: {}", h.reason));
            }
            if !c.dependents.is_empty() {
                flags.push(format!("dependents: {}", c.dependents.join(", ")));
            }
            if let Some(p) = &c.probe {
                flags.push(probe_flag(p));
            }
            let state = match (&c.state, c.health.as_deref()) {
                (Some(s), Some(h)) if h != "none" => format!("{s} ({h})"),
                (Some(s), _) => s.clone(),
                (None, _) => "-".into(),
            };
            let project = c
                .project
                .as_deref()
                .map(|p| format!(", {p}"))
                .unwrap_or_default();
            table.push([
                t.target.clone(),
                format!("{} ({}{project})", c.name, c.id),
                state,
                c.since.clone().unwrap_or_else(|| "-".into()),
                c.last_action
                    .as_ref()
                    .map(|a| format!("{} {} {}", a.what, a.when, a.result))
                    .unwrap_or_else(|| "-".into()),
                c.failed_revivals.to_string(),
                c.backoff_until.clone().unwrap_or_else(|| "-".into()),
                dash(flags.join("; ")),
            ]);
        }
    }
    // Names, projects, results and hold reasons may hold a container's (or anyone's) control
    // characters: one cell stays one cell of one row.
    for cell in table.iter_mut().flatten() {
        if let std::borrow::Cow::Owned(escaped) = crate::escape::control(cell) {
            *cell = escaped;
        }
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    table
        .iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}
