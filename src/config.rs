//! Configuration: `.env` and the environment, flags over both, validated once into [`Config`].
//!
//! Two stages, as in ripgrep: clap only parses strings, then [`Config::from_args`] turns them
//! into typed values. After that no mode is a string and no default is an `Option`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use thiserror::Error;

use crate::backoff::Limits;
use crate::control::Request;
use crate::notify;
pub use crate::policy::Mode;
use crate::targets::{TargetError, Targets};

const DEFAULT_ENV_FILE: &str = ".env";

#[derive(Debug, Parser)]
#[command(
    name = "healthther",
    version,
    about = "Watches the named Docker containers and revives them when they die or turn unhealthy.",
    long_about = "Watches the named Docker containers and revives them when they die or turn \
                  unhealthy.\n\nEvery setting is a flag, or else an environment variable, or \
                  else a line in .env (real environment variables win over the file)."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Read settings from this file instead of ./.env (a missing ./.env is fine; a missing
    /// --env-file is an error)
    #[arg(long, value_name = "PATH", global = true)]
    pub env_file: Option<PathBuf>,

    /// Containers to watch: comma-separated container names, or project/service for the
    /// containers of one compose service (e.g. nodo_1,shop/web). A name no container has
    /// matches the containers of that compose service: of healthther's own compose project
    /// first, else of the one project that has it. Required.
    #[arg(long, env = "HEALTH_TARGETS", value_name = "NAMES")]
    pub targets: Option<String>,

    /// auto: revive failed targets at once. manual: ask an operator first. observe: detect,
    /// log and record, never act
    #[arg(
        long,
        env = "MODE",
        value_name = "auto|manual|observe",
        default_value = "manual"
    )]
    pub mode: String,

    /// What a target stopped through the engine's API (docker stop) means: revive it (after a
    /// moment for whoever stopped it), or hold it until someone starts it again
    #[arg(
        long,
        env = "HEALTH_ON_STOP",
        value_name = "revive|hold",
        default_value = "revive"
    )]
    pub on_stop: String,

    /// The Docker engine: unix:///path/to/docker.sock or tcp://host:port
    #[arg(
        long,
        env = "DOCKER_HOST",
        value_name = "URL",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,

    /// Speak TLS to a tcp:// engine and verify it, when set to anything (as the docker CLI)
    #[arg(
        long,
        env = "DOCKER_TLS_VERIFY",
        value_name = "ANY",
        num_args = 0..=1,
        default_missing_value = "1"
    )]
    pub tls_verify: Option<String>,

    /// The directory holding ca.pem, cert.pem and key.pem for TLS [default: ~/.docker]
    #[arg(long, env = "DOCKER_CERT_PATH", value_name = "DIR")]
    pub cert_path: Option<PathBuf>,

    /// How often to list all targets in case the event stream missed something (e.g. 10s, 500ms)
    #[arg(
        long,
        env = "HEALTH_POLL_INTERVAL",
        value_name = "DURATION",
        allow_hyphen_values = true,
        default_value = "10s"
    )]
    pub poll_interval: String,

    /// How long a restart waits for an unhealthy target to stop before killing it
    #[arg(
        long,
        env = "HEALTH_STOP_TIMEOUT",
        value_name = "DURATION",
        allow_hyphen_values = true,
        default_value = "10s"
    )]
    pub stop_timeout: String,

    /// Wait before reviving a target whose last revival failed within the reset window; it
    /// doubles with each further failed revival (the first failure is revived at once)
    #[arg(
        long,
        env = "HEALTH_BACKOFF_INITIAL",
        value_name = "DURATION",
        default_value = "1s",
        allow_hyphen_values = true
    )]
    pub backoff_initial: String,

    /// The longest wait between revivals of a crash-looping target
    #[arg(
        long,
        env = "HEALTH_BACKOFF_MAX",
        value_name = "DURATION",
        default_value = "5m",
        allow_hyphen_values = true
    )]
    pub backoff_max: String,

    /// A revived target that runs this long counts as recovered: its back-off starts afresh
    #[arg(
        long,
        env = "HEALTH_BACKOFF_RESET",
        value_name = "DURATION",
        default_value = "10s",
        allow_hyphen_values = true
    )]
    pub backoff_reset: String,

    /// Failed revivals within the quarantine window after which a target is left alone until
    /// it runs well again or `healthther release TARGET`
    #[arg(
        long,
        env = "HEALTH_QUARANTINE_AFTER",
        value_name = "COUNT",
        default_value = "5",
        allow_hyphen_values = true
    )]
    pub quarantine_after: String,

    /// The window in which failed revivals are counted for quarantine
    #[arg(
        long,
        env = "HEALTH_QUARANTINE_WINDOW",
        value_name = "DURATION",
        default_value = "10m",
        allow_hyphen_values = true
    )]
    pub quarantine_window: String,

    /// Where the human-readable log and the JSON Lines audit file go (created if missing)
    #[arg(
        long,
        env = "HEALTH_LOG_DIR",
        value_name = "DIR",
        default_value = "./logs"
    )]
    pub log_dir: PathBuf,

    /// The unix socket on which the daemon takes `pending` and `answer` requests (never TCP)
    #[arg(
        long,
        env = "HEALTH_CONTROL_SOCKET",
        value_name = "PATH",
        default_value = "healthther.sock",
        global = true
    )]
    pub control_socket: PathBuf,

    /// Log level or tracing filter, e.g. info, debug, healthther=trace
    #[arg(long, env = "RUST_LOG", value_name = "FILTER", default_value = "info")]
    pub log_level: String,

    /// Where to tell people what happens: URLs separated by spaces or commas, in shoutrrr's
    /// forms (generic://, generic+http://, ntfy://, slack://, discord://, telegram://,
    /// gotify://, smtp://, alertmanager://host:port)
    #[arg(long, env = "HEALTH_NOTIFY", value_name = "URLS", global = true)]
    pub notify: Option<String>,

    /// Remind of a prompt left unanswered this long (and again as often)
    #[arg(
        long,
        env = "HEALTH_NOTIFY_REMIND",
        value_name = "DURATION",
        default_value = "15m",
        allow_hyphen_values = true,
        global = true
    )]
    pub notify_remind: String,

    /// The host name every notification carries (default: this machine's hostname)
    #[arg(long, env = "HEALTH_NOTIFY_HOST", value_name = "NAME", global = true)]
    pub notify_host: Option<String>,

    /// For tests and egress proxies: send Slack, Discord and Telegram requests to this base URL
    /// instead of their hosted APIs
    #[arg(
        long,
        env = "HEALTH_NOTIFY_API_BASE",
        value_name = "URL",
        global = true
    )]
    pub notify_api_base: Option<String>,

    /// Serve Prometheus metrics (GET /metrics, read-only) on this address, e.g. 0.0.0.0:9102
    /// or :9102 (default: off)
    #[arg(long, env = "HEALTH_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<String>,
}

/// Without a command, healthther runs the daemon.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the prompts that wait for an operator's answer (manual mode), by asking the running
    /// daemon over its control socket
    Pending,
    /// Exit 0 if the running daemon's watch loop is alive and has seen the engine recently, else
    /// 1 with the reason (the container's HEALTHCHECK)
    Probe,
    /// Lift the quarantine of TARGET (after too many failed revivals), so it is revived again
    Release {
        /// The target (or container) to release
        target: String,
    },
    /// Show each target: the containers it resolves to, their state, the last action, back-off,
    /// quarantine, holds and prompts
    Status {
        /// Print a JSON array for scripts (the fields are listed in the README)
        #[arg(long)]
        json: bool,
    },
    /// Take no action on TARGET and ask nothing about it, for DURATION (e.g. 30m) or until
    /// `healthther resume TARGET`
    Hold {
        /// The target, as written in HEALTH_TARGETS
        target: String,
        /// How long, e.g. 30m or 2h; without it, until resumed
        duration: Option<String>,
        /// Why, for the log, the audit file and `status`
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// End the hold on TARGET and look at it at once
    Resume {
        /// The target, as written in HEALTH_TARGETS
        target: String,
    },
    /// Forget the standing `always` or `never` answered for TARGET: its next failure is asked
    /// about again
    Forget {
        /// The target, as written in HEALTH_TARGETS
        target: String,
    },
    /// Send a test message through every channel of HEALTH_NOTIFY and print one line per
    /// channel: ok, or the error (needs no running daemon)
    NotifyTest,
    /// Answer the open prompt of TARGET, by telling the running daemon over its control socket
    Answer {
        /// The target (or container) the prompt is about
        target: String,
        /// yes, no, always or never (or y, n, a, v)
        answer: String,
    },
}

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

/// Where the Docker engine listens. Never a TCP listener of ours: this only says where to
/// connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerHost {
    Unix(PathBuf),
    /// `tcp://` or `http://`, kept as given (e.g. a docker-socket-proxy).
    Tcp(String),
    /// `tcp://` with `DOCKER_TLS_VERIFY`: TLS with the client certificate in `cert_path`,
    /// verifying the engine against its `ca.pem`.
    Tls {
        url: String,
        cert_path: PathBuf,
    },
}

impl fmt::Display for DockerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerHost::Unix(p) => write!(f, "unix://{}", p.display()),
            DockerHost::Tcp(url) | DockerHost::Tls { url, .. } => f.write_str(url),
        }
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
        for (id, var) in &vars {
            let value = [from_env.get(var.as_str()), file.get(var)]
                .into_iter()
                .flatten()
                .find(|v| !v.is_empty())
                .cloned();
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
        let request = match args.command.take() {
            None => {
                let mut config = Config::from_args(args)?;
                config.warnings = warnings;
                return Ok(Invocation::Daemon(Box::new(config)));
            }
            Some(Command::NotifyTest) => {
                return Ok(Invocation::NotifyTest(notify_settings(&args)?))
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

    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
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
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&args.log_level) {
            return Err(ConfigError::LogFilter {
                value: args.log_level,
                reason: e.to_string(),
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
        })
    }
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

/// Every setting read from the environment: (clap's argument id, variable).
fn env_vars() -> Vec<(String, String)> {
    let command = <Args as clap::CommandFactory>::command();
    command
        .get_arguments()
        .filter_map(|a| {
            let var = a.get_env()?.to_str()?.to_string();
            Some((a.get_id().to_string(), var))
        })
        .collect()
}

/// The settings of `.env` (or `--env-file`), the first of a key winning as dotenvy does.
fn read_env_file(explicit: Option<&Path>) -> Result<HashMap<String, String>, ConfigError> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_ENV_FILE));
    let fail = |reason: String| ConfigError::EnvFile {
        path: path.display().to_string(),
        reason,
    };
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(HashMap::new())
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    // No environment variable can hold a NUL byte; say where it is instead of failing later.
    if let Some(at) = bytes.iter().position(|b| *b == 0) {
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        return Err(fail(format!("line {line}: contains a NUL byte; remove it")));
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut map = HashMap::new();
    for item in dotenvy::Iter::new(bytes.as_slice()) {
        match item {
            Ok((key, value)) => drop(map.entry(key).or_insert(value)),
            Err(dotenvy::Error::LineParse(bad, at)) => {
                let line = text
                    .lines()
                    .position(|l| l.contains(bad.trim()))
                    .map(|i| format!("line {}: ", i + 1))
                    .unwrap_or_default();
                return Err(fail(format!(
                    "{line}cannot parse {:?} (at character {}); quote values that contain \
                     spaces",
                    redact_urls(&bad),
                    at + 1
                )));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    Ok(map)
}

/// `text` with every word that holds a URL redacted (`HEALTH_NOTIFY`'s tokens and passwords,
/// `DOCKER_HOST`'s), as a notification URL is wherever it is shown.
fn redact_urls(text: &str) -> String {
    text.split(char::is_whitespace)
        .map(|word| match word.find("://") {
            None => word.to_string(),
            Some(at) => {
                // What precedes the URL (`KEY=`, a quote) is kept as written.
                let start = word[..at]
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
                    .map_or(0, |i| i + 1);
                format!(
                    "{}{}",
                    &word[..start],
                    notify::channel::redact(&word[start..])
                )
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One warning per `HEALTH_*` key of the file that is no setting, naming the closest one.
fn unknown_keys(file: &HashMap<String, String>, known: &[&str]) -> Vec<String> {
    let mut keys: Vec<&String> = file
        .keys()
        .filter(|k| k.starts_with("HEALTH_") && !known.contains(&k.as_str()))
        .collect();
    keys.sort();
    keys.into_iter()
        .map(|key| match closest(key, known) {
            Some(known) => {
                format!(
                    "{key} in the env file is not a setting and is ignored; did you mean {known}?"
                )
            }
            None => format!(
                "{key} in the env file is not a setting and is ignored; see healthther --help"
            ),
        })
        .collect()
}

/// The known variable nearest to `key` by edit distance, if near enough to be a typo.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

pub fn parse_docker_host(raw: &str) -> Result<DockerHost, ConfigError> {
    let raw = raw.trim();
    let bad = || ConfigError::DockerHost(raw.to_string());
    if let Some(path) = raw.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(bad());
        }
        return Ok(DockerHost::Unix(PathBuf::from(path)));
    }
    for scheme in ["tcp://", "http://"] {
        if let Some(rest) = raw.strip_prefix(scheme) {
            // An address that cannot be is said at start, not retried forever.
            let authority = rest.strip_suffix('/').unwrap_or(rest);
            if !valid_host_port(authority) {
                return Err(bad());
            }
            return Ok(DockerHost::Tcp(raw.to_string()));
        }
    }
    Err(bad())
}

/// `host:port`, `1.2.3.4:port` or `[::1]:port`, with a port from 1 to 65535.
fn valid_host_port(authority: &str) -> bool {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, port)) = v6.split_once("]:") else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        (None, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (Some(host), port),
            None => return false,
        }
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = match host {
        None => true,
        // All digits and dots: it must be an IPv4 address, not a name.
        Some(h) if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            h.parse::<std::net::Ipv4Addr>().is_ok()
        }
        Some(h) => {
            !h.is_empty()
                && !h.starts_with(['-', '.'])
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        }
    };
    port_ok && host_ok
}

/// The TLS files the docker CLI would use for a tcp:// engine: with `DOCKER_TLS_VERIFY` set to
/// anything not empty (even `0`, as the CLI), `ca.pem`, `cert.pem` and `key.pem` in
/// `DOCKER_CERT_PATH`, else in `~/.docker`. A missing file stops us at start.
pub fn with_tls(
    host: DockerHost,
    tls_verify: Option<&str>,
    cert_path: Option<PathBuf>,
) -> Result<DockerHost, ConfigError> {
    let DockerHost::Tcp(url) = host else {
        return Ok(host);
    };
    if tls_verify.is_none_or(str::is_empty) {
        return Ok(DockerHost::Tcp(url));
    }
    let cert_path = cert_path.unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker")
    });
    for file in TLS_FILES {
        let path = cert_path.join(file);
        if let Err(e) = std::fs::File::open(&path) {
            return Err(ConfigError::CertPath {
                path: path.display().to_string(),
                reason: e.to_string(),
            });
        }
    }
    Ok(DockerHost::Tls { url, cert_path })
}

/// The files of `DOCKER_CERT_PATH`, as the docker CLI names them.
pub const TLS_FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

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

    #[test]
    fn words_that_hold_urls_are_redacted_in_a_line_shown_in_an_error() {
        let line = "HEALTH_NOTIFY=telegram://1:TgSeCrEt@telegram?chats=1\t\
                    \"generic://u:PwSeCrEt@h/x?token=TokSeCrEt plain words";
        let shown = redact_urls(line);
        assert!(!shown.contains("SeCrEt"), "{shown}");
        assert!(
            shown.starts_with("HEALTH_NOTIFY=telegram://***:***@telegram")
                && shown.contains("\"generic://u:***@h/x?token=***")
                && shown.ends_with("plain words"),
            "{shown}"
        );
    }

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
    fn closest_known_key() {
        let vars = env_vars();
        let known: Vec<&str> = vars.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            closest("HEALTH_STOP_TIMOUT", &known),
            Some("HEALTH_STOP_TIMEOUT")
        );
        assert_eq!(closest("HEALTH_TARGET", &known), Some("HEALTH_TARGETS"));
        assert_eq!(closest("HEALTH_XYZZY_PLUGH_FOO", &known), None);
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
    fn docker_hosts() {
        let cases = [
            ("unix:///var/run/docker.sock", true),
            ("unix:///run/user/1000/docker.sock", true),
            ("tcp://127.0.0.1:2375", true),
            ("http://socket-proxy:2375", true),
            ("tcp://", false),
            ("tcp://256.0.0.1:99999", false),
            ("tcp://256.0.0.1:2375", false),
            ("tcp://10.0.0.1:99999", false),
            ("tcp://[::1", false),
            ("tcp://[::1]:2375", true),
            ("tcp://[zz]:2375", false),
            ("tcp://proxy:0", false),
            ("tcp://proxy:", false),
            ("tcp://proxy", false),
            ("tcp://socket_proxy:2375/", true),
            ("tcp://bad_host!:2375", false),
            ("tcp://10.0.0.1:2375", true),
            ("ssh://me@host", false),
            ("/var/run/docker.sock", false),
            ("", false),
        ];
        for (raw, ok) in cases {
            assert_eq!(parse_docker_host(raw).is_ok(), ok, "{raw}");
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
        fn docker_hosts(raw in "\\PC{0,40}|(unix|tcp|http|ssh|npipe)://\\PC{0,30}") {
            if let Ok(host) = parse_docker_host(&raw) {
                let shown = host.to_string();
                prop_assert!(shown.starts_with("unix:///") || shown.starts_with("tcp://")
                    || shown.starts_with("http://"));
            }
        }

        #[test]
        fn target_lists(raw in "\\PC{0,60}|([a-z0-9_.-]{0,8}[ ,/]{0,2}){0,6}") {
            match Targets::parse(&raw) {
                Ok(targets) => {
                    let names: Vec<&str> = targets.iter().map(|t| t.as_str()).collect();
                    for n in &names {
                        prop_assert!(crate::targets::is_valid_target(n));
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
