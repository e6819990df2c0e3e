//! Configuration: `.env` and the environment, flags over both, validated once into [`Config`].
//!
//! Two stages, as in ripgrep: clap only parses strings, then [`Config::from_args`] turns them
//! into typed values. After that no mode is a string and no default is an `Option`.
//!
//! The flags themselves are in `args`, the variables and the `.env` file in `env`, and where
//! the engine listens (`DOCKER_HOST` and its TLS files) in `docker_host`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use thiserror::Error;

use crate::backoff::Limits;
use crate::control::Request;
use crate::notify;
pub use crate::policy::Mode;
use crate::targets::{TargetError, Targets};

mod args;
mod autoheal;
mod docker_host;
mod env;

pub use args::{Args, Command};
pub use autoheal::ActOn;
pub use docker_host::{parse_docker_host, with_tls, DockerHost, TLS_FILES};
use env::{env_vars, read_env_file, unknown_keys};

/// What this run of the binary is to do.
#[derive(Debug)]
pub enum Invocation {
    /// Run the daemon.
    Daemon(Box<Config>),
    /// Ask the running daemon something over its control socket.
    Client { socket: PathBuf, request: Request },
    /// `healthther notify-test`.
    NotifyTest(notify::Settings),
}

/// What a stop asked through the engine's API (`docker stop`) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// A failure like any other, revived (after a moment for whoever stopped it).
    Revive,
    /// Maintenance: hold the container until someone starts it again.
    Hold,
}

impl OnStop {
    pub fn parse(raw: &str) -> Option<OnStop> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "revive" => Some(OnStop::Revive),
            "hold" => Some(OnStop::Hold),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Manual => "manual",
            Mode::Observe => "observe",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub targets: Targets,
    pub mode: Mode,
    pub on_stop: OnStop,
    pub docker_host: DockerHost,
    pub poll_interval: Duration,
    pub stop_timeout: Duration,
    pub limits: Limits,
    pub log_dir: PathBuf,
    pub control_socket: PathBuf,
    pub log_filter: String,
    /// Said once logging runs: settings that were ignored (a misspelt key in `.env`).
    pub warnings: Vec<String>,
    pub notify: notify::Settings,
    /// Where `GET /metrics` is served; `None`: not at all.
    pub metrics_addr: Option<SocketAddr>,
    /// What auto mode acts on (`HEALTH_ACT_ON`).
    pub act_on: ActOn,
    /// No action this long after healthther starts (`AUTOHEAL_START_PERIOD`).
    pub start_period: Duration,
    /// Said once logging runs: which of autoheal's settings were read, and what they mean.
    pub notes: Vec<String>,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    /// Bad flags, or --help/--version (which clap prints itself).
    #[error("{}; see healthther --help", one_line(.0))]
    Cli(#[from] clap::Error),
    #[error("{0} is not valid UTF-8; use plain text")]
    NotUtf8(String),
    #[error("{path}: {reason}; fix the file or name another with --env-file")]
    EnvFile { path: String, reason: String },
    #[error(transparent)]
    Targets(#[from] TargetError),
    #[error("MODE (--mode): {0:?} is not a mode; use auto, manual or observe")]
    Mode(String),
    #[error("HEALTH_ON_STOP (--on-stop): {0:?} is not understood; use revive or hold")]
    OnStop(String),
    #[error(
        "DOCKER_HOST (--docker-host): {0:?} is not supported; use unix:///path/to/docker.sock \
         or tcp://host:port (an IPv4 address, a name or [IPv6], and a port from 1 to 65535)"
    )]
    DockerHost(String),
    #[error(
        "DOCKER_CERT_PATH (--cert-path): {path}: {reason}; with DOCKER_TLS_VERIFY it must hold \
         ca.pem, cert.pem and key.pem"
    )]
    CertPath { path: String, reason: String },
    #[error("{var} (--{flag}): {value:?} {reason}")]
    Duration {
        var: &'static str,
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("{var} (--{flag}): {value:?} is not a count; use a whole number from 1 to 1000")]
    Count {
        var: &'static str,
        flag: &'static str,
        value: String,
    },
    #[error(
        "RUST_LOG (--log-level): {value:?} is not a log filter ({reason}); use e.g. info or debug"
    )]
    LogFilter { value: String, reason: String },
    #[error("{var}: {reason}; write e.g. http://proxy:3128 (the value is not shown: it may hold a password)")]
    Proxy {
        var: &'static str,
        reason: &'static str,
    },
    /// The URL is redacted: no token or password reaches the console.
    #[error("HEALTH_NOTIFY (--notify): {0}")]
    Notify(#[from] notify::UrlError),
    #[error("HEALTH_NOTIFY_API_BASE (--notify-api-base): {0:?} is not an http:// or https:// URL")]
    ApiBase(String),
    #[error(
        "HEALTH_METRICS_ADDR (--metrics-addr): {0:?} is not an address to listen on; use e.g. \
         127.0.0.1:9102, 0.0.0.0:9102 or :9102"
    )]
    MetricsAddr(String),
    #[error(
        "AUTOHEAL_CONTAINER_LABEL=all is not supported: healthther acts only on containers \
         chosen explicitly; label them (autoheal=true) or name them in HEALTH_TARGETS"
    )]
    AutohealAll,
    #[error(
        "AUTOHEAL_CONTAINER_LABEL: {0:?} is not one label key: write the key alone (autoheal), \
         starting with a letter or digit and continuing with letters, digits, '.', '_', '/' or \
         '-'; the containers carrying it with the value true are chosen"
    )]
    AutohealLabel(String),
    #[error("HEALTH_ACT_ON (--act-on): {0:?} is not understood; use all or unhealthy")]
    ActOn(String),
    #[error("DOCKER_SOCK: {0:?} is not supported; use a socket path such as /var/run/docker.sock or tcp://host:port")]
    DockerSock(String),
    /// The URL is not shown: it may hold a token.
    #[error("WEBHOOK_URL: not an http:// or https:// URL")]
    WebhookUrl,
}

/// clap's error, which names the flag, on one line like every other error: without its usage
/// and tips.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let what: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let what = what.join(" ");
    what.strip_prefix("error: ").unwrap_or(&what).to_string()
}

impl Config {
    /// Reads flags, else the process environment, else `.env` (or `--env-file`), then
    /// validates.
    pub fn load<I, T>(argv: I) -> Result<Invocation, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Config::load_with(argv, |var| std::env::var_os(var))
    }

    /// As [`Config::load`], with `env` standing for the process environment. The file is read
    /// into a map, never into the environment: the process stays as it was started, and tests
    /// do not depend on the environment they run in.
    pub fn load_with<I, T>(
        argv: I,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Invocation, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
        if let Some((i, arg)) = argv
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, a)| a.to_str().is_none())
        {
            return Err(ConfigError::NotUtf8(format!(
                "argument {i} ({:?})",
                arg.to_string_lossy()
            )));
        }
        let vars = env_vars();
        let mut from_env: HashMap<&str, String> = HashMap::new();
        for (_, var) in &vars {
            match env(var).map(OsString::into_string) {
                None => {}
                // clap would say only that some value is not UTF-8; name the variable.
                Some(Err(_)) => return Err(ConfigError::NotUtf8(var.clone())),
                Some(Ok(value)) => drop(from_env.insert(var, value)),
            }
        }
        // First pass only to learn --env-file (and to answer --help or a bad flag at once).
        let first = Args::try_parse_from(&argv)?;
        let file = read_env_file(first.env_file.as_deref())?;
        let known: Vec<&str> = vars.iter().map(|(_, var)| var.as_str()).collect();
        let warnings = unknown_keys(&file, &known);

        // An empty value means "not set", so that compose can pass `${VAR:-}` through and
        // leave the default to us.
        let mut command = <Args as clap::CommandFactory>::command();
        let mut given = std::collections::BTreeSet::new();
        for (id, var) in &vars {
            let value = [from_env.get(var.as_str()), file.get(var)]
                .into_iter()
                .flatten()
                .find(|v| !v.is_empty())
                .cloned();
            if value.is_some() {
                given.insert(var.clone());
            }
            command = command.mut_arg(id, |arg| {
                // Reset: clap would read the process environment itself.
                let arg = arg.env(None);
                match value {
                    Some(v) => arg.default_value(v),
                    None => arg,
                }
            });
        }
        let matches = command.try_get_matches_from(&argv)?;
        let mut args = <Args as clap::FromArgMatches>::from_arg_matches(&matches)?;
        for (id, var) in &vars {
            if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                given.insert(var.clone());
            }
        }
        args.given = given;
        let request = match args.command.take() {
            None => {
                let mut config = Config::from_args(args)?;
                if !config.notify.channels.is_empty() {
                    check_proxies(&env)?;
                }
                config.warnings = warnings;
                let manual = config.mode == Mode::Manual;
                config.warnings.extend(
                    config
                        .notify
                        .channels
                        .iter()
                        .filter_map(|c| c.caution(manual)),
                );
                return Ok(Invocation::Daemon(Box::new(config)));
            }
            Some(Command::NotifyTest) => {
                let settings = notify_settings(&args)?;
                check_proxies(&env)?;
                return Ok(Invocation::NotifyTest(settings));
            }
            Some(Command::Pending) => Request::Pending,
            Some(Command::Probe) => Request::Probe,
            Some(Command::Release { target }) => Request::Release { target },
            Some(Command::Answer { target, answer }) => Request::Answer { target, answer },
            Some(Command::Status { json }) => Request::Status { json },
            Some(Command::Resume { target }) => Request::Resume { target },
            Some(Command::Forget { target }) => Request::Forget { target },
            Some(Command::Hold {
                target,
                duration,
                reason,
            }) => Request::Hold {
                target,
                duration: duration
                    .map(|d| {
                        parse_duration(
                            "DURATION",
                            "hold",
                            &d,
                            Duration::from_secs(1),
                            Duration::from_secs(366 * 24 * 3600),
                        )
                    })
                    .transpose()?,
                reason,
            },
        };
        Ok(Invocation::Client {
            socket: args.control_socket,
            request,
        })
    }

    pub fn from_args(mut args: Args) -> Result<Config, ConfigError> {
        let autoheal = autoheal::apply(&mut args)?;
        let targets = Targets::parse(args.targets.as_deref().unwrap_or(""))?;
        let Some(mode) = Mode::parse(&args.mode) else {
            return Err(ConfigError::Mode(args.mode));
        };
        let Some(on_stop) = OnStop::parse(&args.on_stop) else {
            return Err(ConfigError::OnStop(args.on_stop));
        };
        let docker_host = with_tls(
            parse_docker_host(&args.docker_host)?,
            args.tls_verify.as_deref(),
            args.cert_path.clone(),
        )?;
        let poll_interval = parse_duration(
            "HEALTH_POLL_INTERVAL",
            "poll-interval",
            &args.poll_interval,
            Duration::from_millis(100),
            Duration::from_secs(24 * 3600),
        )?;
        let stop_timeout = parse_duration(
            "HEALTH_STOP_TIMEOUT",
            "stop-timeout",
            &args.stop_timeout,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
        let hour = Duration::from_secs(3600);
        let limits = Limits {
            initial: parse_duration(
                "HEALTH_BACKOFF_INITIAL",
                "backoff-initial",
                &args.backoff_initial,
                Duration::ZERO,
                hour,
            )?,
            cap: parse_duration(
                "HEALTH_BACKOFF_MAX",
                "backoff-max",
                &args.backoff_max,
                Duration::ZERO,
                24 * hour,
            )?,
            reset_after: parse_duration(
                "HEALTH_BACKOFF_RESET",
                "backoff-reset",
                &args.backoff_reset,
                Duration::ZERO,
                24 * hour,
            )?,
            quarantine_after: parse_count(
                "HEALTH_QUARANTINE_AFTER",
                "quarantine-after",
                &args.quarantine_after,
            )?,
            window: parse_duration(
                "HEALTH_QUARANTINE_WINDOW",
                "quarantine-window",
                &args.quarantine_window,
                Duration::from_secs(1),
                7 * 24 * hour,
            )?,
        };
        if let Err(reason) = check_log_filter(&args.log_level) {
            return Err(ConfigError::LogFilter {
                value: args.log_level,
                reason,
            });
        }
        let notify = notify_settings(&args)?;
        let metrics_addr = args
            .metrics_addr
            .as_deref()
            .map(parse_metrics_addr)
            .transpose()?;
        Ok(Config {
            notify,
            metrics_addr,
            targets,
            mode,
            on_stop,
            docker_host,
            poll_interval,
            stop_timeout,
            limits,
            log_dir: args.log_dir,
            control_socket: args.control_socket,
            log_filter: args.log_level,
            warnings: Vec::new(),
            act_on: autoheal.act_on,
            start_period: autoheal.start_period,
            notes: autoheal.note.into_iter().collect(),
        })
    }
}

/// Why `filter` would not do what it says; `Targets`, unlike `EnvFilter` before it, takes a
/// span filter (`[span]=debug`) and a misspelt target for targets no event has, without a word.
fn check_log_filter(filter: &str) -> Result<(), String> {
    use tracing_subscriber::filter::LevelFilter;
    if filter.contains(['[', ']', '{', '}']) {
        return Err("span and field filters ([span]{field}) are not supported; \
                    name targets and levels, e.g. healthther=debug,info"
            .into());
    }
    let targets: tracing_subscriber::filter::Targets = filter
        .parse()
        .map_err(|e: tracing_subscriber::filter::ParseError| e.to_string())?;
    let silenced = targets.default_level() == Some(LevelFilter::OFF)
        || targets.iter().any(|(_, level)| level == LevelFilter::OFF);
    let ours = |t: &str| t == "healthther" || t.starts_with("healthther::");
    let heard = targets
        .default_level()
        .is_some_and(|l| l != LevelFilter::OFF)
        || targets
            .iter()
            .any(|(t, level)| ours(t) && level != LevelFilter::OFF);
    if !silenced && !heard {
        return Err(
            "it lets no message of healthther through, errors included; targets \
                    are module paths in lower case, e.g. healthther=debug, and off silences"
                .into(),
        );
    }
    Ok(())
}

/// Refuses a proxy variable hyper-util would pass by (requests would then go straight, past
/// the proxy named), where something is sent. The process environment only: hyper-util reads
/// it, not `.env`. The value is not shown: it may hold the proxy's password.
fn check_proxies(env: &impl Fn(&str) -> Option<OsString>) -> Result<(), ConfigError> {
    for names in crate::http_client::proxy::ENV_VARS {
        let Some((var, value)) = names.iter().find_map(|n| env(n).map(|v| (*n, v))) else {
            continue;
        };
        if let Some(reason) = crate::http_client::proxy::refusal(&value.to_string_lossy()) {
            return Err(ConfigError::Proxy { var, reason });
        }
    }
    Ok(())
}

/// The notification settings alone: `notify-test` needs no targets.
pub fn notify_settings(args: &Args) -> Result<notify::Settings, ConfigError> {
    let channels = notify::channel::parse_list(args.notify.as_deref().unwrap_or(""))?;
    let remind = parse_duration(
        "HEALTH_NOTIFY_REMIND",
        "notify-remind",
        &args.notify_remind,
        Duration::from_secs(10),
        Duration::from_secs(7 * 24 * 3600),
    )?;
    let api_base = match args.notify_api_base.as_deref().map(str::trim) {
        Some(b) if b.starts_with("http://") || b.starts_with("https://") => Some(b),
        Some(b) => return Err(ConfigError::ApiBase(b.to_string())),
        None => None,
    };
    let host = match args.notify_host.as_deref().map(str::trim) {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => crate::host::hostname(),
    };
    Ok(notify::Settings {
        channels,
        remind,
        host,
        bases: notify::Bases::new(api_base),
    })
}

/// `host:port` with an IP address, or `:port` for every interface.
pub fn parse_metrics_addr(raw: &str) -> Result<SocketAddr, ConfigError> {
    let text = raw.trim();
    let text = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.replace("localhost:", "127.0.0.1:"),
    };
    text.parse()
        .map_err(|_| ConfigError::MetricsAddr(raw.to_string()))
}

/// A whole number from 1 to 1000.
pub fn parse_count(var: &'static str, flag: &'static str, raw: &str) -> Result<u32, ConfigError> {
    match raw.trim().parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(ConfigError::Count {
            var,
            flag,
            value: raw.to_string(),
        }),
    }
}

/// A duration as `30s`, `500ms`, `2m`, or a bare number of seconds, within `min..=max`.
pub fn parse_duration(
    var: &'static str,
    flag: &'static str,
    raw: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let err = |reason: String| ConfigError::Duration {
        var,
        flag,
        value: raw.to_string(),
        reason,
    };
    let text = raw.trim();
    let parsed = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().ok().map(Duration::from_secs)
    } else {
        humantime::parse_duration(text).ok()
    };
    let d = parsed.ok_or_else(|| err("is not a duration; write e.g. 10s, 500ms or 2m".into()))?;
    if d < min || d > max {
        return Err(err(format!(
            "is out of range; use between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        )));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `extra` as flags with an empty environment and no `.env`, whatever the
    /// environment of the test run holds (a developer's DOCKER_HOST included).
    fn args(extra: &[&str]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty.env");
        std::fs::write(&empty, "").expect("write empty.env");
        let mut argv = vec!["healthther".to_string(), "--env-file".into()];
        argv.push(empty.display().to_string());
        argv.extend(extra.iter().map(|s| s.to_string()));
        match Config::load_with(argv, |_| None)? {
            Invocation::Daemon(c) => Ok(*c),
            _ => panic!("not a daemon invocation"),
        }
    }

    fn load_file(dotenv: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("test.env");
        std::fs::write(&file, dotenv).expect("write test.env");
        let argv = [
            "healthther".to_string(),
            "--env-file".into(),
            file.display().to_string(),
        ];
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        match Config::load_with(argv, |k| env.get(k).cloned())? {
            Invocation::Daemon(c) => Ok(*c),
            _ => panic!("not a daemon invocation"),
        }
    }

    #[test]
    fn the_env_file_is_read_without_touching_the_process_environment() {
        let key = "HEALTH_BACKOFF_RESET";
        assert!(std::env::var_os(key).is_none(), "the test run sets {key}");
        let c = load_file(
            "HEALTH_TARGETS=a1\nHEALTH_BACKOFF_RESET=7s\nMODE=auto\nHEALTH_POLL_INTERVAL=\n",
            &[("MODE", "manual"), ("HEALTH_STOP_TIMEOUT", "")],
        )
        .unwrap();
        assert_eq!(c.limits.reset_after, Duration::from_secs(7));
        assert_eq!(c.mode, Mode::Manual, "the environment wins over the file");
        assert_eq!(
            c.poll_interval,
            Duration::from_secs(10),
            "empty means unset"
        );
        assert_eq!(c.stop_timeout, Duration::from_secs(10), "empty means unset");
        assert!(
            std::env::var_os(key).is_none(),
            "{key} leaked into the environment"
        );
    }

    #[test]
    fn a_flag_wins_over_the_environment_and_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("test.env");
        std::fs::write(&file, "HEALTH_TARGETS=a1\nMODE=manual\n").unwrap();
        let argv = [
            "healthther",
            "--env-file",
            file.to_str().unwrap(),
            "--mode",
            "auto",
        ];
        let Invocation::Daemon(c) =
            Config::load_with(argv, |k| (k == "MODE").then(|| OsString::from("manual"))).unwrap()
        else {
            panic!("not a daemon invocation")
        };
        assert_eq!(c.mode, Mode::Auto);
    }

    #[test]
    fn a_nul_byte_in_the_env_file_is_one_line() {
        let e = load_file("HEALTH_TARGETS=a1\nMODE=au\0to\n", &[]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 2") && msg.contains("NUL"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn a_misspelt_key_is_named_with_the_closest_known_one() {
        let c = load_file("HEALTH_TARGETS=a1\nHEALTH_POLL_INTRVAL=5s\nOTHER=1\n", &[]).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        assert!(
            w.contains("HEALTH_POLL_INTRVAL") && w.contains("HEALTH_POLL_INTERVAL"),
            "{w}"
        );
        assert_eq!(c.poll_interval, Duration::from_secs(10));
    }

    #[test]
    fn a_reply_topic_anyone_may_use_or_nobody_reads_is_warned_of() {
        let warned = |env: &str| load_file(env, &[]).unwrap().warnings;
        // No credentials: the prompt topic is readable by whoever the server lets, and the
        // buttons carry what answers a prompt.
        let w = warned(
            "HEALTH_TARGETS=a1\nMODE=manual\n\
             HEALTH_NOTIFY=ntfy://ntfy.sh/ops-prompts?reply=ops-replies\n",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("ntfy.sh/ops-prompts") && w[0].contains("no credentials"),
            "{w:?}"
        );
        let none = warned(
            "HEALTH_TARGETS=a1\nMODE=manual\n\
             HEALTH_NOTIFY=ntfy://:tk_x@ntfy.sh/ops-prompts?reply=ops-replies\n",
        );
        assert!(none.is_empty(), "{none:?}");
        // Outside manual mode nothing asks, so nothing is read back.
        let w = warned(
            "HEALTH_TARGETS=a1\nMODE=auto\n\
             HEALTH_NOTIFY=ntfy://:tk_x@ntfy.sh/p?reply=r,\
             telegram://1:x@telegram?chats=5&approvers=42\n",
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|w| w.contains("MODE=manual")), "{w:?}");
        assert!(!w.iter().any(|w| w.contains("tk_x")), "{w:?}");
    }

    #[test]
    fn valid_configurations() {
        let c = args(&["--targets", "nodo_1, nodo_2", "--mode", "AUTO"]).unwrap();
        assert_eq!(c.mode, Mode::Auto);
        assert_eq!(c.targets.len(), 2);
        // The default, whatever DOCKER_HOST the test runs with: `args` gives no environment.
        assert_eq!(
            c.docker_host,
            DockerHost::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(c.stop_timeout, Duration::from_secs(10));

        let c = args(&[
            "--targets=a1",
            "--docker-host=tcp://proxy:2375",
            "--poll-interval=500ms",
            "--stop-timeout=0",
        ])
        .unwrap();
        assert_eq!(c.docker_host, DockerHost::Tcp("tcp://proxy:2375".into()));
        assert_eq!(c.poll_interval, Duration::from_millis(500));
        assert_eq!(c.stop_timeout, Duration::ZERO);
        assert!(c.notify.channels.is_empty());
        assert_eq!(c.notify.remind, Duration::from_secs(15 * 60));
        assert_eq!(c.metrics_addr, None);

        let c = args(&[
            "--targets=a1",
            "--notify=ntfy://ntfy.sh/a,discord://t@1",
            "--notify-host=box1",
            "--metrics-addr=:9102",
        ])
        .unwrap();
        assert_eq!(c.notify.channels.len(), 2);
        assert_eq!(c.notify.host, "box1");
        assert_eq!(c.metrics_addr, Some("0.0.0.0:9102".parse().unwrap()));
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["--targets", "a1", "--mode", "sometimes"],
                &["MODE", "\"sometimes\""],
            ),
            (&["--targets", ""], &["HEALTH_TARGETS"]),
            (
                &["--targets", "ok1,bad name"],
                &["HEALTH_TARGETS", "\"bad name\""],
            ),
            (
                &[
                    "--targets",
                    "a1",
                    "--docker-host",
                    "npipe:////./pipe/docker",
                ],
                &["DOCKER_HOST", "npipe"],
            ),
            (
                &["--targets", "a1", "--docker-host", "unix://relative.sock"],
                &["DOCKER_HOST"],
            ),
            (
                &["--targets", "a1", "--poll-interval", "soon"],
                &["HEALTH_POLL_INTERVAL", "\"soon\"", "10s"],
            ),
            (
                &["--targets", "a1", "--poll-interval", "-5s"],
                &["HEALTH_POLL_INTERVAL", "\"-5s\""],
            ),
            (
                &["--targets", "a1", "--poll-interval", "1ms"],
                &["HEALTH_POLL_INTERVAL", "out of range"],
            ),
            (
                &["--targets", "a1", "--stop-timeout", "99999999999999999999"],
                &["HEALTH_STOP_TIMEOUT"],
            ),
            (
                &["--targets", "a1", "--stop-timeout", "2h"],
                &["HEALTH_STOP_TIMEOUT", "out of range"],
            ),
            (
                &["--targets", "a1", "--quarantine-after", "0"],
                &["HEALTH_QUARANTINE_AFTER", "\"0\""],
            ),
            (
                &["--targets", "a1", "--quarantine-after", "-3"],
                &["HEALTH_QUARANTINE_AFTER", "\"-3\""],
            ),
            (
                &["--targets", "a1", "--quarantine-after", "1e9"],
                &["HEALTH_QUARANTINE_AFTER"],
            ),
            (
                &["--targets", "a1", "--backoff-max", "forever"],
                &["HEALTH_BACKOFF_MAX", "\"forever\""],
            ),
            (
                &["--targets", "a1", "--quarantine-window", "0s"],
                &["HEALTH_QUARANTINE_WINDOW", "out of range"],
            ),
            (
                &["--targets", "a1", "--log-level", "info,=="],
                &["RUST_LOG", "\"info,==\""],
            ),
            (
                &[
                    "--targets",
                    "a1",
                    "--notify",
                    "ntfy://h/t discord://NoSeCrEt",
                ],
                &["HEALTH_NOTIFY", "discord://", "token"],
            ),
            (
                &["--targets", "a1", "--notify-remind", "1s"],
                &["HEALTH_NOTIFY_REMIND", "out of range"],
            ),
            (
                &["--targets", "a1", "--notify-api-base", "ftp://x"],
                &["HEALTH_NOTIFY_API_BASE", "\"ftp://x\""],
            ),
            (
                &["--targets", "a1", "--metrics-addr", "anywhere:80"],
                &["HEALTH_METRICS_ADDR", "\"anywhere:80\""],
            ),
        ];
        for (argv, needles) in cases {
            let msg = args(argv).unwrap_err().to_string();
            for n in *needles {
                assert!(msg.contains(n), "{argv:?}: {msg:?} lacks {n:?}");
            }
            assert!(!msg.contains('\n'), "{argv:?}: not one line: {msg:?}");
        }
    }

    #[test]
    fn a_log_filter_either_does_what_it_says_or_is_refused() {
        for ok in [
            "healthther=debug,info",
            "debug",
            "info,hyper=off",
            "trace",
            "off",
            "healthther=off",
            "healthther::watch=debug",
            "healthther=debug, info",
        ] {
            assert!(
                args(&["--targets", "a1", "--log-level", ok]).is_ok(),
                "{ok}"
            );
        }
        // What EnvFilter read as span and field filters, `Targets` reads as targets no event
        // has; and a target no healthther event has silences healthther, errors too.
        for (bad, needle) in [
            ("[span]=debug", "span"),
            ("info,healthther[revive]=debug", "span"),
            ("healthther{id}=trace", "span"),
            ("HEALTHTHER=DEBUG", "no message of healthther"),
            ("healthther:debug", "no message of healthther"),
            ("hyper=debug", "no message of healthther"),
        ] {
            let msg = args(&["--targets", "a1", "--log-level", bad])
                .map(drop)
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with("RUST_LOG (--log-level)"), "{bad}: {msg}");
            assert!(msg.contains(needle), "{bad}: {msg}");
            assert!(!msg.contains('\n'), "{bad}: {msg}");
        }
    }

    #[test]
    fn a_proxy_the_webhooks_would_pass_by_is_refused_without_its_password() {
        let file = "HEALTH_TARGETS=a1\nHEALTH_NOTIFY=generic+https://h.example/x\n";
        for (var, value, needle) in [
            ("HTTPS_PROXY", "http://u:SeCrEt@[::1", "not an http"),
            ("https_proxy", "ftp://u:SeCrEt@proxy:21", "not an http"),
            ("ALL_PROXY", "socks5://u:SeCrEt@p:1080", "SOCKS"),
            ("HTTP_PROXY", "not a url SeCrEt", "not an http"),
        ] {
            let msg = load_file(file, &[(var, value)])
                .map(drop)
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with(var), "{var}: {msg}");
            assert!(msg.contains(needle), "{var}: {msg}");
            assert!(
                !msg.contains("SeCrEt") && !msg.contains('\n'),
                "{var}: {msg}"
            );
        }
        assert!(load_file(file, &[("HTTPS_PROXY", "http://u:pw@proxy:3128")]).is_ok());
        // Nothing is sent: the variable is someone else's.
        assert!(load_file("HEALTH_TARGETS=a1\n", &[("HTTPS_PROXY", "ftp://x")]).is_ok());
    }

    fn autoheal(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load_file("", env)
    }

    #[test]
    fn autoheal_settings_choose_labelled_containers_in_auto_mode_unhealthy_only() {
        let c = autoheal(&[("AUTOHEAL_CONTAINER_LABEL", "autoheal-app")]).unwrap();
        let t: Vec<&str> = c.targets.iter().map(|t| t.as_str()).collect();
        assert_eq!(t, ["label:autoheal-app"]);
        assert_eq!((c.mode, c.act_on), (Mode::Auto, ActOn::Unhealthy));
        assert_eq!(c.notes.len(), 1);
        assert!(
            c.notes[0].contains("HEALTH_TARGETS=label:autoheal-app"),
            "{:?}",
            c.notes
        );
        // Any AUTOHEAL_* variable means the label autoheal.
        let c = autoheal(&[
            ("AUTOHEAL_START_PERIOD", "300"),
            ("AUTOHEAL_DEFAULT_STOP_TIMEOUT", "20"),
            ("AUTOHEAL_INTERVAL", "5"),
            ("CURL_TIMEOUT", "30"),
        ])
        .unwrap();
        assert_eq!(c.targets.iter().next().unwrap().as_str(), "label:autoheal");
        assert_eq!(c.start_period, Duration::from_secs(300));
        assert_eq!(c.stop_timeout, Duration::from_secs(20));
        assert!(
            c.notes[0].contains("AUTOHEAL_INTERVAL (not needed"),
            "{:?}",
            c.notes
        );
        assert!(c.notes[0].contains("CURL_TIMEOUT"), "{:?}", c.notes);
    }

    #[test]
    fn healthther_settings_win_over_autoheals() {
        let c = autoheal(&[
            ("AUTOHEAL_CONTAINER_LABEL", "x"),
            ("AUTOHEAL_DEFAULT_STOP_TIMEOUT", "20"),
            ("HEALTH_TARGETS", "web"),
            ("MODE", "manual"),
            ("HEALTH_STOP_TIMEOUT", "5"),
            ("DOCKER_SOCK", "tcp://10.0.0.1:2375"),
            ("DOCKER_HOST", "unix:///run/d.sock"),
        ])
        .unwrap();
        assert_eq!(c.targets.iter().next().unwrap().as_str(), "web");
        assert_eq!((c.mode, c.act_on), (Mode::Manual, ActOn::All));
        assert_eq!(c.stop_timeout, Duration::from_secs(5));
        assert_eq!(
            c.docker_host,
            parse_docker_host("unix:///run/d.sock").unwrap()
        );
        let c = autoheal(&[("AUTOHEAL_CONTAINER_LABEL", "x"), ("HEALTH_ACT_ON", "all")]).unwrap();
        assert_eq!((c.mode, c.act_on), (Mode::Auto, ActOn::All));
    }

    /// Autoheal's ways (auto mode, unhealthy only) come with autoheal's choice of targets: where
    /// HEALTH_TARGETS chooses, a leftover AUTOHEAL_* setting never turns a manual setup into
    /// one that acts unattended.
    #[test]
    fn autoheal_settings_beside_health_targets_change_no_mode() {
        let c = autoheal(&[("HEALTH_TARGETS", "web"), ("AUTOHEAL_START_PERIOD", "30")]).unwrap();
        assert_eq!((c.mode, c.act_on), (Mode::Manual, ActOn::All));
        assert_eq!(c.start_period, Duration::from_secs(30));
    }

    #[test]
    fn webhook_url_is_a_generic_webhook_posting_one_key() {
        let c = autoheal(&[
            ("HEALTH_TARGETS", "web"),
            (
                "WEBHOOK_URL",
                "https://hooks.example.com/services/T0/B0/XYZ",
            ),
        ])
        .unwrap();
        assert_eq!(c.notify.channels.len(), 1);
        assert!(matches!(&c.notify.channels[0].channel,
            notify::channel::Channel::Generic { url, message_key: Some(k), .. }
                if url == "https://hooks.example.com/services/T0/B0/XYZ" && k == "text"));
        let c = autoheal(&[
            ("HEALTH_TARGETS", "web"),
            ("WEBHOOK_URL", "http://h/x?a=1"),
            ("WEBHOOK_JSON_KEY", "content"),
        ])
        .unwrap();
        assert!(matches!(&c.notify.channels[0].channel,
            notify::channel::Channel::Generic { url, message_key: Some(k), .. }
                if url == "http://h/x?a=1" && k == "content"));
        let msg = autoheal(&[("HEALTH_TARGETS", "web"), ("WEBHOOK_URL", "ftp://x/tok3n")])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("WEBHOOK_URL") && !msg.contains("tok3n"),
            "{msg}"
        );
    }

    #[test]
    fn docker_sock_stands_for_docker_host() {
        let c = autoheal(&[
            ("HEALTH_TARGETS", "web"),
            ("DOCKER_SOCK", "/var/run/d.sock"),
        ])
        .unwrap();
        assert_eq!(
            c.docker_host,
            parse_docker_host("unix:///var/run/d.sock").unwrap()
        );
        // DOCKER_SOCK alone is no autoheal setting that changes the mode.
        assert_eq!((c.mode, c.act_on), (Mode::Manual, ActOn::All));
        let c = autoheal(&[("HEALTH_TARGETS", "web"), ("DOCKER_SOCK", "tcp://h:2375")]).unwrap();
        assert_eq!(c.docker_host, parse_docker_host("tcp://h:2375").unwrap());
    }

    #[test]
    fn autoheal_all_and_no_targets_are_refused_in_one_line() {
        let msg = autoheal(&[("AUTOHEAL_CONTAINER_LABEL", "all")])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("AUTOHEAL_CONTAINER_LABEL=all") && !msg.contains('\n'),
            "{msg}"
        );
        let msg = autoheal(&[]).unwrap_err().to_string();
        assert!(
            msg.contains("HEALTH_TARGETS") && msg.contains("AUTOHEAL_CONTAINER_LABEL"),
            "{msg}"
        );
        let msg = autoheal(&[("AUTOHEAL_CONTAINER_LABEL", "a b")])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("AUTOHEAL_CONTAINER_LABEL: \"a b\""), "{msg}");
        let msg = autoheal(&[("HEALTH_TARGETS", "web"), ("HEALTH_ACT_ON", "some")])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("HEALTH_ACT_ON"), "{msg}");
    }

    #[test]
    fn a_bad_autoheal_stop_timeout_names_the_variable_given() {
        // The operator set AUTOHEAL_DEFAULT_STOP_TIMEOUT, not HEALTH_STOP_TIMEOUT.
        let msg = autoheal(&[("AUTOHEAL_DEFAULT_STOP_TIMEOUT", "abc")])
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("AUTOHEAL_DEFAULT_STOP_TIMEOUT") && msg.contains("\"abc\""),
            "{msg}"
        );
    }

    #[test]
    fn autoheal_container_label_is_one_label_key_never_a_list() {
        // autoheal filters on `label=<it>=true`: with a comma or '=' in it, autoheal matches
        // no container. Here it must not become a second entry of HEALTH_TARGETS (a bare
        // name), nor a selector of another value.
        for raw in [
            "autoheal,db",
            "autoheal, label:x",
            "autoheal=false",
            "a b",
            " ",
        ] {
            let msg = match autoheal(&[("AUTOHEAL_CONTAINER_LABEL", raw)]) {
                Ok(c) => panic!(
                    "{raw:?} was accepted as {:?}",
                    c.targets.iter().map(|t| t.as_str()).collect::<Vec<_>>()
                ),
                Err(e) => e.to_string(),
            };
            assert!(
                msg.contains("AUTOHEAL_CONTAINER_LABEL") && !msg.contains('\n'),
                "{raw:?}: {msg}"
            );
        }
    }
}

/// Fuzzing the parsers of user input: whatever comes in, they answer Ok or one line of error,
/// never panic, and what they accept is within the documented bounds.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn durations(raw in "\\PC{0,20}|[0-9]{1,25}(ns|us|ms|s|m|h|d)?|-[0-9]{1,5}s") {
            let min = Duration::from_millis(100);
            let max = Duration::from_secs(3600);
            match parse_duration("V", "v", &raw, min, max) {
                Ok(d) => prop_assert!(d >= min && d <= max),
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(msg.starts_with("V (--v): ") && !msg.contains('\n'));
                }
            }
        }

        #[test]
        fn counts(raw in "\\PC{0,12}|-?[0-9]{1,22}") {
            match parse_count("C", "c", &raw) {
                Ok(n) => prop_assert!((1..=1000).contains(&n)),
                Err(e) => prop_assert!(!e.to_string().contains('\n')),
            }
        }

        #[test]
        fn target_lists(
            raw in "\\PC{0,60}|([a-z0-9_.-]{0,8}[ ,/]{0,2}){0,6}|(label:[a-z0-9_./=-]{0,8}[ ,]{0,2}){0,4}"
        ) {
            match Targets::parse(&raw) {
                Ok(targets) => {
                    let names: Vec<&str> = targets.iter().map(|t| t.as_str()).collect();
                    for n in &names {
                        let valid = match n.strip_prefix(crate::targets::SELECTOR_PREFIX) {
                            Some(rest) => crate::targets::is_valid_selector(rest),
                            None => crate::targets::is_valid_target(n),
                        };
                        prop_assert!(valid, "{n:?}");
                    }
                    let mut unique = names.clone();
                    unique.sort();
                    unique.dedup();
                    prop_assert_eq!(unique.len(), names.len());
                }
                Err(e) => prop_assert!(e.to_string().starts_with("HEALTH_TARGETS")),
            }
        }
    }
}
