//! Configuration: `.env` and the environment, flags over both, validated once into [`Config`].
//!
//! Two stages, as in ripgrep: clap only parses strings, then [`Config::from_args`] turns them
//! into typed values. After that no mode is a string and no default is an `Option`.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use thiserror::Error;

use crate::backoff::Limits;
use crate::control::Request;
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

    /// auto: revive failed targets at once. manual: ask an operator first
    #[arg(
        long,
        env = "MODE",
        value_name = "auto|manual",
        default_value = "manual"
    )]
    pub mode: String,

    /// The Docker engine: unix:///path/to/docker.sock or tcp://host:port
    #[arg(
        long,
        env = "DOCKER_HOST",
        value_name = "URL",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,

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
    Daemon(Config),
    /// Ask the running daemon something over its control socket.
    Client { socket: PathBuf, request: Request },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Manual,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Manual => "manual",
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
}

impl fmt::Display for DockerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerHost::Unix(p) => write!(f, "unix://{}", p.display()),
            DockerHost::Tcp(url) => f.write_str(url),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub targets: Targets,
    pub mode: Mode,
    pub docker_host: DockerHost,
    pub poll_interval: Duration,
    pub stop_timeout: Duration,
    pub limits: Limits,
    pub log_dir: PathBuf,
    pub control_socket: PathBuf,
    pub log_filter: String,
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
    #[error("MODE (--mode): {0:?} is not a mode; use auto or manual")]
    Mode(String),
    #[error(
        "DOCKER_HOST (--docker-host): {0:?} is not supported; use unix:///path/to/docker.sock \
         or tcp://host:port"
    )]
    DockerHost(String),
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
    /// Loads `.env` (or `--env-file`) into the environment, then parses flags with the
    /// environment as fallback, then validates.
    pub fn load<I, T>(argv: I) -> Result<Invocation, ConfigError>
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
        // clap would say only that some value is not UTF-8; name the variable.
        let command = <Args as clap::CommandFactory>::command();
        for var in command.get_arguments().filter_map(|a| a.get_env()) {
            if std::env::var_os(var).is_some_and(|v| v.to_str().is_none()) {
                return Err(ConfigError::NotUtf8(var.to_string_lossy().into_owned()));
            }
        }
        // First pass only to learn --env-file (and to answer --help or a bad flag at once); the
        // environment it reads is completed by the file before the second pass.
        let first = Args::try_parse_from(&argv)?;
        load_env_file(first.env_file.as_deref())?;
        // An empty variable means "not set", so that compose can pass `${VAR:-}` through and
        // leave the default to us.
        for var in command.get_arguments().filter_map(|a| a.get_env()) {
            if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
                std::env::remove_var(var);
            }
        }

        let mut args = Args::try_parse_from(&argv)?;
        let request = match args.command.take() {
            None => return Ok(Invocation::Daemon(Config::from_args(args)?)),
            Some(Command::Pending) => Request::Pending,
            Some(Command::Probe) => Request::Probe,
            Some(Command::Release { target }) => Request::Release { target },
            Some(Command::Answer { target, answer }) => Request::Answer { target, answer },
        };
        Ok(Invocation::Client {
            socket: args.control_socket,
            request,
        })
    }

    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let targets = Targets::parse(args.targets.as_deref().unwrap_or(""))?;
        let mode = match args.mode.trim().to_ascii_lowercase().as_str() {
            "auto" => Mode::Auto,
            "manual" => Mode::Manual,
            _ => return Err(ConfigError::Mode(args.mode)),
        };
        let docker_host = parse_docker_host(&args.docker_host)?;
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
        Ok(Config {
            targets,
            mode,
            docker_host,
            poll_interval,
            stop_timeout,
            limits,
            log_dir: args.log_dir,
            control_socket: args.control_socket,
            log_filter: args.log_level,
        })
    }
}

fn load_env_file(explicit: Option<&Path>) -> Result<(), ConfigError> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_ENV_FILE));
    match dotenvy::from_path(path) {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::Io(e))
            if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(())
        }
        Err(e) => Err(ConfigError::EnvFile {
            path: path.display().to_string(),
            reason: match e {
                dotenvy::Error::LineParse(text, at) => {
                    let line = std::fs::read_to_string(path)
                        .ok()
                        .and_then(|file| file.lines().position(|l| l.contains(text.trim())))
                        .map(|i| format!("line {}: ", i + 1))
                        .unwrap_or_default();
                    format!(
                        "{line}cannot parse {text:?} (at character {}); quote values that \
                         contain spaces",
                        at + 1
                    )
                }
                other => other.to_string(),
            },
        }),
    }
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
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                return Err(bad());
            }
            return Ok(DockerHost::Tcp(raw.to_string()));
        }
    }
    Err(bad())
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

    fn args(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["healthther"];
        argv.extend_from_slice(extra);
        Config::from_args(Args::try_parse_from(argv)?)
    }

    #[test]
    fn valid_configurations() {
        let c = args(&["--targets", "nodo_1, nodo_2", "--mode", "AUTO"]).unwrap();
        assert_eq!(c.mode, Mode::Auto);
        assert_eq!(c.targets.len(), 2);
        // The flag's default, unless the environment names another engine (CI runs the
        // suite a second time with DOCKER_HOST pointing at a second engine).
        let want = match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => parse_docker_host(&host).unwrap(),
            _ => DockerHost::Unix("/var/run/docker.sock".into()),
        };
        assert_eq!(c.docker_host, want);
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
