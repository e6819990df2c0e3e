use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use healthther::audit;
use healthther::config::{Config, ConfigError, Invocation, Mode};
use healthther::control::{self, ControlSocket};
use healthther::engine::Connector;
use healthther::metrics::{self, Metrics};
use healthther::notify;
use healthther::slots::{self, Slots};
use healthther::state::{self, StateError};
use healthther::tap::Tap;
use healthther::watch::{self, Operator};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Exit codes: 0 after a clean stop, 2 for bad configuration (as clap does for bad flags),
/// 1 for anything else that stops us, or a request the daemon refused.
const EXIT_CONFIG: u8 = 2;
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let config = match Config::load(std::env::args_os()) {
        Ok(Invocation::Daemon(config)) => *config,
        Ok(Invocation::Client { socket, request }) => return client(&socket, &request),
        Ok(Invocation::NotifyTest(settings)) => return notify_test(&settings),
        // clap prints help and version itself.
        Err(ConfigError::Cli(e)) if !e.use_stderr() => e.exit(),
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    let color = audit::console_color(std::env::var_os("NO_COLOR").as_deref());
    // The guard lives to the end of main, after the runtime: the last lines are flushed.
    let (audit, _log_guard) = match audit::init(&config.log_dir, &config.log_filter, color) {
        Ok(logging) => logging,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    for note in &config.notes {
        tracing::info!("{note}");
    }
    // Read before anything is bound: a state file that is no file stops the start.
    let restored = match state::load(&state::path_in(&config.log_dir)) {
        Ok(loaded) => {
            if let Some(dropped) = loaded.dropped {
                tracing::warn!("{dropped}");
            }
            loaded.saved
        }
        Err(e @ StateError::NotAFile { .. }) => return fail(EXIT_CONFIG, &e),
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    };
    // One thread is plenty: the work is waiting on the engine.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_FAILURE, &e),
    };
    runtime.block_on(async {
        let cancel = CancellationToken::new();
        match Signals::install() {
            Ok(signals) => tokio::spawn(signals.cancel_on_signal(cancel.clone())),
            Err(e) => return fail(EXIT_FAILURE, &e),
        };
        // The operator's words: typed at the terminal (manual mode) or sent to the socket.
        let (inputs_tx, inputs) = mpsc::channel(64);
        let answers_tx = inputs_tx.clone();
        let terminal = config.mode == Mode::Manual && std::io::stdin().is_terminal();
        if terminal {
            control::read_terminal(inputs_tx.clone());
        }
        // The two listeners share the files the limit leaves; engine calls keep a reserve.
        let per_listener = slots::for_this_process();
        match ControlSocket::bind(&config.control_socket) {
            Ok(socket) => {
                let serving = socket.serve(Slots::new(per_listener), inputs_tx, cancel.clone());
                drop(tokio::spawn(serving));
            }
            // Manual mode does not run without its socket, terminal or not: the operator's
            // `healthther answer`, `hold` and `pending` would reach nobody, or whoever holds
            // the path.
            Err(e) if config.mode == Mode::Manual => {
                eprintln!("healthther: {e} (MODE=manual needs its control socket)");
                return ExitCode::from(EXIT_CONFIG);
            }
            Err(e) => tracing::warn!("{e}"),
        }
        let operator = Operator { inputs, terminal };
        // Two-way channels carry prompts' answers back in manual mode, as the socket does.
        let answers = (config.mode == Mode::Manual).then_some(answers_tx);
        let tap = tap(&config, per_listener, &cancel, answers).await;
        let (config, audit) = (Arc::new(config), Arc::new(audit));
        let engine = Connector::new(config.docker_host.clone(), config.stop_timeout);
        watch::run(engine, config, restored, audit, operator, tap, cancel).await;
        ExitCode::SUCCESS
    })
}

/// Metrics (when `HEALTH_METRICS_ADDR` is set) and notifications (when `HEALTH_NOTIFY` is).
async fn tap(
    config: &Config,
    per_listener: usize,
    cancel: &CancellationToken,
    answers: Option<mpsc::Sender<control::Input>>,
) -> Tap {
    let mut asks = None;
    let metrics = config
        .metrics_addr
        .map(|_| Arc::new(Metrics::new(&config.notify.host)));
    if let (Some(addr), Some(m)) = (config.metrics_addr, &metrics) {
        // Healing goes on without metrics: a taken port is said loudly, and Prometheus's own
        // `up` shows the scrape failing.
        match metrics::bind(addr).await {
            Ok(listener) => {
                let (tx, rx) = mpsc::channel(4);
                asks = Some(rx);
                let slots = Slots::new(per_listener);
                let serving = metrics::serve(listener, slots, Arc::clone(m), tx, cancel.clone());
                tokio::spawn(serving);
            }
            Err(e) => tracing::error!("{e}; running without metrics"),
        }
    }
    let notifier = notify::start(config.notify.clone(), metrics.clone(), answers);
    if !config.notify.channels.is_empty() {
        let shown: Vec<&str> = config
            .notify
            .channels
            .iter()
            .map(|c| c.shown.as_str())
            .collect();
        tracing::info!(host = %config.notify.host, "notifying through {}", shown.join(", "));
    }
    Tap::new(notifier, metrics, asks)
}

/// `healthther notify-test`: one line per channel, ok or the error; exit 1 if any failed.
fn notify_test(settings: &notify::Settings) -> ExitCode {
    if settings.channels.is_empty() {
        eprintln!("healthther: no channel to test: set HEALTH_NOTIFY (--notify)");
        return ExitCode::from(EXIT_FAILURE);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_FAILURE, &e),
    };
    let results = runtime.block_on(notify::test_all(settings));
    let mut failed = false;
    for (shown, result) in results {
        match result {
            Ok(()) => println!("ok      {shown}"),
            Err(e) => {
                failed = true;
                println!("failed  {shown}: {e}");
            }
        }
    }
    if failed {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

/// `healthther pending` and `healthther answer`: one request to the running daemon.
fn client(socket: &std::path::Path, request: &control::Request) -> ExitCode {
    match control::request(socket, request) {
        Ok(reply) if reply.ok => {
            println!("{}", reply.text);
            ExitCode::SUCCESS
        }
        Ok(reply) => {
            eprintln!("healthther: {}", reply.text);
            ExitCode::from(EXIT_FAILURE)
        }
        Err(e) => fail(EXIT_FAILURE, &e),
    }
}

fn fail(code: u8, e: &dyn std::error::Error) -> ExitCode {
    eprintln!("healthther: {e}");
    ExitCode::from(code)
}

/// SIGTERM (docker stop; we are PID 1 in the container) and SIGINT (Ctrl-C).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The first signal stops cleanly; a second one, while in-flight actions finish, exits at
    /// once.
    async fn cancel_on_signal(mut self, cancel: CancellationToken) {
        self.next().await;
        tracing::info!("signal received: stopping");
        cancel.cancel();
        self.next().await;
        eprintln!("healthther: second signal: exiting now");
        std::process::exit(130);
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
