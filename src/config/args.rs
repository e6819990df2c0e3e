//! The first stage of configuration: the flags (and the variables that stand for them), only
//! parsed as strings. [`super::Config::from_args`] makes typed values of them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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

    /// What auto mode acts on: all (a stopped target is started, an unhealthy one restarted)
    /// or unhealthy (only unhealthy ones restarted; a stopped one is recorded). Default: all,
    /// or unhealthy under autoheal's settings without MODE
    #[arg(long, env = "HEALTH_ACT_ON", value_name = "WHAT")]
    pub act_on: Option<String>,

    // autoheal's settings, read as autoheal reads them (see docs/migrating-from-autoheal.md).
    #[arg(long, env = "AUTOHEAL_CONTAINER_LABEL", hide = true)]
    pub autoheal_container_label: Option<String>,
    #[arg(long, env = "AUTOHEAL_START_PERIOD", hide = true)]
    pub autoheal_start_period: Option<String>,
    #[arg(long, env = "AUTOHEAL_DEFAULT_STOP_TIMEOUT", hide = true)]
    pub autoheal_default_stop_timeout: Option<String>,
    #[arg(long, env = "AUTOHEAL_INTERVAL", hide = true)]
    pub autoheal_interval: Option<String>,
    #[arg(long, env = "AUTOHEAL_ONLY_MONITOR_RUNNING", hide = true)]
    pub autoheal_only_monitor_running: Option<String>,
    #[arg(long, env = "CURL_TIMEOUT", hide = true)]
    pub curl_timeout: Option<String>,
    #[arg(long, env = "DOCKER_SOCK", hide = true)]
    pub docker_sock: Option<String>,
    #[arg(long, env = "WEBHOOK_URL", hide = true)]
    pub webhook_url: Option<String>,
    #[arg(long, env = "WEBHOOK_JSON_KEY", hide = true)]
    pub webhook_json_key: Option<String>,

    /// The variables given a value (by flag, environment or `.env`): a default differs from a
    /// value written out when autoheal's settings are read beside healthther's.
    #[arg(skip)]
    pub given: std::collections::BTreeSet<String>,
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
