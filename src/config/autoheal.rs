//! autoheal's settings (willfarrell/docker-autoheal), read as autoheal reads them, so that
//! putting healthther's image in place of autoheal's in a compose file is the whole migration.
//! healthther's own settings win over them, each over its counterpart.
//!
//! Under autoheal's settings, without `MODE` or `HEALTH_ACT_ON`, healthther does what autoheal
//! did: it restarts unhealthy containers by itself, and only those.

use std::time::Duration;

use super::{parse_duration, Args, ConfigError};

/// What auto mode acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActOn {
    /// Every failure: a stopped target is started, an unhealthy one restarted.
    All,
    /// Only unhealthy targets, restarted; a stopped one is recorded, not started (autoheal).
    Unhealthy,
}

impl ActOn {
    pub fn parse(raw: &str) -> Option<ActOn> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "all" => Some(ActOn::All),
            "unhealthy" => Some(ActOn::Unhealthy),
            _ => None,
        }
    }
}

/// What autoheal's settings add to the configuration.
#[derive(Debug)]
pub(super) struct Autoheal {
    pub act_on: ActOn,
    pub start_period: Duration,
    /// One line for the start-up: which of autoheal's settings were read, and what they mean.
    pub note: Option<String>,
}

/// Reads autoheal's settings into `args` where healthther's own are not given.
pub(super) fn apply(args: &mut Args) -> Result<Autoheal, ConfigError> {
    let given = |var: &str| args.given.contains(var);
    // By value, not by `given`: a flag parsed without the environment counts too.
    let any = [
        &args.autoheal_container_label,
        &args.autoheal_start_period,
        &args.autoheal_default_stop_timeout,
        &args.autoheal_interval,
        &args.autoheal_only_monitor_running,
    ]
    .iter()
    .any(|v| v.is_some());
    let mut meant: Vec<String> = Vec::new();
    let mut ignored: Vec<String> = Vec::new();

    // autoheal's ways (auto mode, unhealthy only) come with its choice of targets: beside
    // HEALTH_TARGETS a leftover AUTOHEAL_* setting must not make a manual setup act unattended.
    let autoheal_chooses = any && args.targets.is_none();
    let act_on = match args.act_on.as_deref() {
        Some(raw) => ActOn::parse(raw).ok_or_else(|| ConfigError::ActOn(raw.to_string()))?,
        None if autoheal_chooses && !given("MODE") => ActOn::Unhealthy,
        None => ActOn::All,
    };
    if !any && args.docker_sock.is_none() && args.webhook_url.is_none() {
        return Ok(Autoheal {
            act_on,
            start_period: Duration::ZERO,
            note: None,
        });
    }

    if any {
        let label = args
            .autoheal_container_label
            .as_deref()
            .map(str::trim)
            .unwrap_or("autoheal")
            .to_string();
        if label == "all" {
            return Err(ConfigError::AutohealAll);
        }
        // One key, as autoheal's `label=<it>=true` filter reads it: a comma would add an entry
        // to HEALTH_TARGETS (a bare name), an '=' a selector of another value.
        if label.contains('=') || !crate::targets::is_valid_selector(&label) {
            return Err(ConfigError::AutohealLabel(label));
        }
        if args.targets.is_some() {
            if given("AUTOHEAL_CONTAINER_LABEL") {
                ignored.push("AUTOHEAL_CONTAINER_LABEL (HEALTH_TARGETS is set)".into());
            }
        } else {
            meant.push(format!("HEALTH_TARGETS=label:{label}"));
            args.targets = Some(format!("{}{label}", crate::targets::SELECTOR_PREFIX));
        }
        if autoheal_chooses && !given("MODE") {
            args.mode = "auto".into();
            meant.push("MODE=auto".into());
        }
        if act_on == ActOn::Unhealthy && !given("HEALTH_ACT_ON") {
            meant.push("HEALTH_ACT_ON=unhealthy".into());
        }
    }

    let start_period = match args.autoheal_start_period.as_deref() {
        Some(raw) => {
            let d = parse_duration(
                "AUTOHEAL_START_PERIOD",
                "autoheal-start-period",
                raw,
                Duration::ZERO,
                Duration::from_secs(24 * 3600),
            )?;
            meant.push(format!(
                "no action for {} after start-up",
                humantime::format_duration(d)
            ));
            d
        }
        None => Duration::ZERO,
    };

    if let Some(raw) = args.autoheal_default_stop_timeout.clone() {
        if given("HEALTH_STOP_TIMEOUT") {
            ignored.push("AUTOHEAL_DEFAULT_STOP_TIMEOUT (HEALTH_STOP_TIMEOUT is set)".into());
        } else {
            // Checked here, with HEALTH_STOP_TIMEOUT's bounds, so that an error names it.
            parse_duration(
                "AUTOHEAL_DEFAULT_STOP_TIMEOUT",
                "autoheal-default-stop-timeout",
                &raw,
                Duration::ZERO,
                Duration::from_secs(3600),
            )?;
            meant.push(format!("HEALTH_STOP_TIMEOUT={}", raw.trim()));
            args.stop_timeout = raw;
        }
    }

    if let Some(raw) = args.docker_sock.clone() {
        if given("DOCKER_HOST") {
            ignored.push("DOCKER_SOCK (DOCKER_HOST is set)".into());
        } else {
            let raw = raw.trim();
            let host = if raw.starts_with('/') {
                format!("unix://{raw}")
            } else if raw.starts_with("tcp://") || raw.starts_with("unix://") {
                raw.to_string()
            } else {
                return Err(ConfigError::DockerSock(raw.to_string()));
            };
            meant.push(format!("DOCKER_HOST={host}"));
            args.docker_host = host;
        }
    }

    if let Some(url) = args.webhook_url.clone() {
        let key = args
            .webhook_json_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .unwrap_or("text");
        let url = url.trim();
        let Some(rest) = url
            .strip_prefix("https://")
            .map(|r| ("https", r))
            .or_else(|| url.strip_prefix("http://").map(|r| ("http", r)))
        else {
            return Err(ConfigError::WebhookUrl);
        };
        let joiner = if rest.1.contains('?') { '&' } else { '?' };
        let key: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
        let channel = format!("generic+{}://{}{joiner}messagekey={key}", rest.0, rest.1);
        args.notify = Some(match args.notify.take() {
            Some(n) if !n.trim().is_empty() => format!("{n} {channel}"),
            _ => channel,
        });
        meant.push("a generic webhook in HEALTH_NOTIFY for WEBHOOK_URL".into());
    }

    for (var, value) in [
        ("AUTOHEAL_INTERVAL", &args.autoheal_interval),
        ("CURL_TIMEOUT", &args.curl_timeout),
    ] {
        if value.is_some() {
            ignored.push(format!(
                "{var} (not needed: healthther follows the engine's events)"
            ));
        }
    }
    if args.autoheal_only_monitor_running.is_some() {
        ignored.push(
            "AUTOHEAL_ONLY_MONITOR_RUNNING (only a running container can be unhealthy)".into(),
        );
    }

    let mut note = String::from("autoheal's settings read");
    if !meant.is_empty() {
        note.push_str(&format!(": they mean {}", meant.join(", ")));
    }
    if !ignored.is_empty() {
        note.push_str(&format!("; ignored: {}", ignored.join(", ")));
    }
    Ok(Autoheal {
        act_on,
        start_period,
        note: Some(note),
    })
}
