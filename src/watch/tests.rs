//! The shell against a scripted engine, under paused time: reconnecting after the engine is
//! lost, a cut event stream, the replay on subscribing, and what was wanted while the engine
//! was away. The real-engine proof of the same stays in `tests/tests/proxies.rs` (haproxy).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use clap::Parser;
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::core::event::{Event, EventKind};
use super::docker::{Connect, Docker, DockerError, Failure, Started};
use super::{run, Operator, RECONNECT, REPLAY, SESSION_STABLE};
use crate::audit;
use crate::config::{Args, Config};
use crate::policy::{Health, Listed, Snapshot, Status};
use crate::tap::Tap;
use crate::targets::ContainerRef;

type Item = Result<Event, DockerError>;

/// The scripted engine's world: its containers, whether it answers, and what the shell asked.
#[derive(Default)]
struct World {
    containers: BTreeMap<String, Snapshot>,
    /// Whether calls get an answer.
    up: bool,
    /// Connections still to be refused, whether up or not.
    refuse_connects: u32,
    /// When each connection was tried.
    connects: Vec<Instant>,
    /// Each subscription: when it was asked for, its `since`, and the wall clock then.
    subscriptions: Vec<(Instant, SystemTime, SystemTime)>,
    /// The live event streams: dropping a sender ends its stream.
    streams: Vec<mpsc::UnboundedSender<Item>>,
    /// Every event that happened, for the replay.
    history: Vec<Event>,
    /// The containers started, by name, and when.
    starts: Vec<(String, Instant)>,
    /// The inspects and starts, in the order they came: `inspect nodo_1`, `start nodo_1`.
    calls: Vec<String>,
    lists: u32,
}

/// A handle on the world, shared by the test, the connector and every engine it gives.
#[derive(Clone)]
struct Fake(Arc<Mutex<World>>);

impl Fake {
    /// An engine that answers, with `names` running.
    fn new(names: &[&str]) -> Fake {
        let mut world = World {
            up: true,
            ..World::default()
        };
        for (i, name) in names.iter().enumerate() {
            let s = snapshot(&format!("id{i}"), name);
            world.containers.insert(s.container.id.clone(), s);
        }
        Fake(Arc::new(Mutex::new(world)))
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A test that panicked while holding it fails anyway.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The container `name` dies (exit 137, no kill asked): the event goes out on the live
    /// streams when `told`, and into the history for the replay either way.
    fn kill(&self, name: &str, told: bool) {
        let mut w = self.world();
        let Some(s) = w.containers.values_mut().find(|s| s.container.name == name) else {
            panic!("no container {name}");
        };
        s.status = Status::Exited;
        s.exit_code = Some(137);
        s.finished_at = Some(SystemTime::now());
        let event = Event {
            kind: EventKind::Die,
            container: s.container.clone(),
            time: SystemTime::now(),
        };
        w.history.push(event.clone());
        if told {
            w.streams.retain(|tx| tx.send(Ok(event.clone())).is_ok());
        }
    }

    /// The event streams end, as a proxy's idle timeout ends them.
    fn cut(&self) {
        self.world().streams.clear();
    }

    /// The engine stops answering: its streams end with an error.
    fn lose(&self) {
        let mut w = self.world();
        w.up = false;
        for tx in w.streams.drain(..) {
            let _ = tx.send(Err(unreachable()));
        }
    }

    fn restore(&self) {
        self.world().up = true;
    }

    fn starts(&self, name: &str) -> Vec<Instant> {
        let w = self.world();
        w.starts
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, at)| *at)
            .collect()
    }

    fn status(&self, name: &str) -> Status {
        let w = self.world();
        w.containers
            .values()
            .find(|s| s.container.name == name)
            .map_or(Status::Other("removed".into()), |s| s.status.clone())
    }

    fn answer<T>(&self, f: impl FnOnce(&mut World) -> T) -> Result<T, DockerError> {
        let mut w = self.world();
        if !w.up {
            return Err(unreachable());
        }
        Ok(f(&mut w))
    }
}

fn unreachable() -> DockerError {
    DockerError::new(
        Failure::Unreachable,
        "cannot reach the Docker engine at fake: connection refused",
        "connection refused",
    )
}

fn snapshot(id: &str, name: &str) -> Snapshot {
    Snapshot {
        container: ContainerRef {
            id: id.into(),
            name: name.into(),
            ..ContainerRef::default()
        },
        status: Status::Running,
        health: Health::None,
        exit_code: Some(0),
        oom_killed: false,
        has_run: true,
        started_at: Some("2026-12-06T00:00:00Z".into()),
        finished_at: None,
        error: None,
        health_output: None,
        network_parent: None,
        has_check: false,
        addresses: Vec::new(),
        probe_error: None,
        host_network: false,
    }
}

impl Docker for Fake {
    async fn list(&self, _: bool) -> Result<Vec<Listed>, DockerError> {
        self.answer(|w| {
            w.lists += 1;
            w.containers
                .values()
                .map(|s| Listed {
                    container: s.container.clone(),
                    status: s.status.clone(),
                    health: s.health,
                    network_parent: None,
                    addresses: Vec::new(),
                    host_network: false,
                })
                .collect()
        })
    }

    async fn inspect(&self, c: &ContainerRef) -> Result<Option<Snapshot>, DockerError> {
        self.answer(|w| {
            w.calls.push(format!("inspect {}", c.name));
            w.containers.get(&c.id).cloned()
        })
    }

    async fn start(&self, c: &ContainerRef) -> Result<Started, DockerError> {
        self.answer(|w| {
            let Some(s) = w.containers.get_mut(&c.id) else {
                return Started::Already;
            };
            if s.status == Status::Running {
                return Started::Already;
            }
            s.status = Status::Running;
            s.started_at = Some(format!("{:?}", Instant::now()));
            w.starts.push((c.name.clone(), Instant::now()));
            w.calls.push(format!("start {}", c.name));
            Started::Now
        })
    }

    async fn stop(&self, c: &ContainerRef, _: Duration) -> Result<(), DockerError> {
        self.answer(|w| {
            if let Some(s) = w.containers.get_mut(&c.id) {
                s.status = Status::Exited;
            }
        })
    }

    async fn recreate(
        &self,
        _: &ContainerRef,
        _: &str,
        _: Duration,
    ) -> Result<String, DockerError> {
        Err(DockerError::new(
            Failure::Other,
            "not scripted",
            "not scripted",
        ))
    }

    fn events(&self, since: SystemTime) -> impl Stream<Item = Item> + Send + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut w = self.world();
        w.subscriptions
            .push((Instant::now(), since, SystemTime::now()));
        if w.up {
            for e in w.history.iter().filter(|e| e.time >= since) {
                let _ = tx.send(Ok(e.clone()));
            }
            w.streams.push(tx);
        } else {
            let _ = tx.send(Err(unreachable()));
        }
        futures_util::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            Some((item, rx))
        })
    }

    fn api_version(&self) -> String {
        "1.41".into()
    }

    async fn repair_recreations<T, F>(&self, _: F, _: Duration) -> Vec<(T, ContainerRef)>
    where
        T: Send,
        F: Fn(&ContainerRef) -> Option<T> + Send + Sync,
    {
        Vec::new()
    }
}

impl Connect for Fake {
    type Docker = Fake;

    async fn connect(&self) -> Result<Fake, DockerError> {
        let mut w = self.world();
        w.connects.push(Instant::now());
        if w.refuse_connects > 0 {
            w.refuse_connects -= 1;
            return Err(unreachable());
        }
        if !w.up {
            return Err(unreachable());
        }
        Ok(self.clone())
    }
}

/// A shell running against `fake`, watching `targets` in auto mode.
struct Running {
    cancel: CancellationToken,
    shell: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
    // Kept so the operator's channel stays open.
    _operator: mpsc::Sender<crate::control::Input>,
    _log: audit::LogGuard,
}

fn start(fake: &Fake, targets: &str, poll: &str) -> Running {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log_dir = dir.path().join("log");
    let args = Args::try_parse_from([
        "healthther",
        "--targets",
        targets,
        "--mode",
        "auto",
        "--poll-interval",
        poll,
        "--log-dir",
        log_dir.to_str().expect("a UTF-8 temporary path"),
        "--control-socket",
        dir.path()
            .join("control.sock")
            .to_str()
            .expect("a UTF-8 temporary path"),
    ])
    .expect("valid test arguments");
    let config = Arc::new(Config::from_args(args).expect("valid test configuration"));
    let (audit, log) = audit::init(&log_dir, "warn", false).expect("a writable log directory");
    let (tx, inputs) = mpsc::channel(1);
    let cancel = CancellationToken::new();
    let shell = tokio::spawn(run(
        fake.clone(),
        config,
        None,
        Arc::new(audit),
        Operator {
            inputs,
            terminal: false,
        },
        Tap::default(),
        cancel.clone(),
    ));
    Running {
        cancel,
        shell,
        dir,
        _operator: tx,
        _log: log,
    }
}

impl Running {
    /// The audit records about `container` whose event is `event`.
    fn records(&self, event: &str, container: &str) -> Vec<serde_json::Value> {
        records_in(&self.dir.path().join("log"), event, container)
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.shell.await.expect("the shell ends without a panic");
    }
}

fn records_in(dir: &Path, event: &str, container: &str) -> Vec<serde_json::Value> {
    audit::read(dir)
        .expect("the audit file reads")
        .records
        .into_iter()
        .filter(|r| r["event"] == event && r["container"] == container)
        .collect()
}

/// Lets (paused) time run in small steps until `cond` holds; panics after `limit`.
async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The revival's record: an action that left the container running.
fn assert_revived(shell: &Running, name: &str, times: usize) {
    let records = shell.records("action", name);
    assert_eq!(records.len(), times, "{records:?}");
    for r in &records {
        assert_eq!(r["result"], "running", "{r}");
        assert!(r["seen"].as_str().is_some_and(|s| s.contains("137")), "{r}");
    }
}

#[tokio::test(start_paused = true)]
async fn reconnects_under_the_back_off_and_revives_what_died_meanwhile() {
    let fake = Fake::new(&["nodo_1"]);
    let shell = start(&fake, "nodo_1", "10s");
    until("connected", Duration::from_secs(1), || {
        fake.world().subscriptions.len() == 1
    })
    .await;

    // A session that lasted: the outage starts its back-off afresh.
    tokio::time::sleep(SESSION_STABLE + Duration::from_secs(1)).await;
    let lost_at = Instant::now();
    fake.lose();
    fake.kill("nodo_1", false);
    // Refused three times: the waits between tries double.
    until("three tries refused", Duration::from_secs(10), || {
        fake.world().connects.len() >= 4
    })
    .await;
    let connects = fake.world().connects.clone();
    let first = connects[1] - lost_at;
    assert!(
        first >= RECONNECT.after(1) && first < RECONNECT.after(1) * 2,
        "the first try after {first:?}"
    );
    let waits: Vec<Duration> = connects[1..].windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        waits,
        [RECONNECT.after(2), RECONNECT.after(3)],
        "the tries back off: {connects:?}"
    );
    assert!(
        fake.starts("nodo_1").is_empty(),
        "nothing started while away"
    );

    // Back: the list after reconnecting finds it dead, and it is revived at once. (Its death
    // is forgotten by the replay, whose wall clock does not pause: the list alone tells.)
    fake.world().history.clear();
    // Its first answer is a refusal still: one more wait, twice as long.
    fake.world().refuse_connects = 1;
    let tries = fake.world().connects.len();
    let back = Instant::now();
    fake.restore();
    until(
        "revived",
        RECONNECT.after(4) + RECONNECT.after(5) + Duration::from_secs(2),
        || fake.status("nodo_1") == Status::Running,
    )
    .await;
    let started = fake.starts("nodo_1");
    assert_eq!(started.len(), 1, "started once");
    let connects = fake.world().connects.clone();
    assert_eq!(connects.len(), tries + 2, "refused once, then connected");
    assert_eq!(connects[tries + 1] - connects[tries], RECONNECT.after(5));
    let reconnected = connects[tries + 1];
    assert!(
        reconnected - back <= RECONNECT.after(4) + RECONNECT.after(5),
        "{:?}",
        reconnected - back
    );
    // A death no event told of is acted on after the core's own short wait (a second here,
    // within STOP_SETTLE), long before the next pass.
    let after = started[0] - reconnected;
    assert!(after <= super::core::STOP_SETTLE, "started {after:?} after");
    assert_revived(&shell, "nodo_1", 1);

    // A session lost soon after it began: the next outage's first wait is longer.
    let connects_before = fake.world().connects.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lost_at = Instant::now();
    fake.lose();
    until(
        "a try after the short session",
        Duration::from_secs(5),
        || fake.world().connects.len() > connects_before,
    )
    .await;
    let first = fake.world().connects[connects_before] - lost_at;
    assert!(
        first >= RECONNECT.after(2),
        "a flapping engine waits longer: {first:?}"
    );
    fake.restore();
    shell.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_cut_stream_is_asked_for_again_at_once_and_quick_cuts_back_off() {
    let fake = Fake::new(&["nodo_1"]);
    // A long poll interval: whatever is noticed at once came through the event stream.
    let shell = start(&fake, "nodo_1", "1h");
    until("subscribed", Duration::from_secs(1), || {
        fake.world().subscriptions.len() == 1
    })
    .await;

    // A stream that worked a while is cut: subscribed again at once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cut_at = Instant::now();
    fake.cut();
    until("subscribed again", Duration::from_millis(100), || {
        fake.world().subscriptions.len() == 2
    })
    .await;
    assert_eq!(fake.world().subscriptions[1].0, cut_at, "at once");

    // The new stream carries the next death, and the revival follows at once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let died = Instant::now();
    fake.kill("nodo_1", true);
    until("revived", Duration::from_secs(1), || {
        !fake.starts("nodo_1").is_empty()
    })
    .await;
    assert!(fake.starts("nodo_1")[0] - died < Duration::from_millis(100));
    assert_revived(&shell, "nodo_1", 1);

    // Streams that end as soon as they are asked for: QUICK_CUTS of them are asked for again
    // at once, then the back-off, with a list to see whether the engine is still there.
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The death is past the replay by now (the wall clock does not pause: forget it by hand),
    // so no event comes through to show a stream working.
    fake.world().history.clear();
    let lists = fake.world().lists;
    let mut delays = Vec::new();
    for _ in 0..=super::QUICK_CUTS {
        let before = fake.world().subscriptions.len();
        let cut_at = Instant::now();
        fake.cut();
        until("asked for again", Duration::from_secs(5), || {
            fake.world().subscriptions.len() > before
        })
        .await;
        delays.push(fake.world().subscriptions[before].0 - cut_at);
    }
    let quick = usize::try_from(super::QUICK_CUTS).expect("a small number");
    assert!(
        delays[..quick].iter().all(|d| d.is_zero()),
        "the first cuts are answered at once: {delays:?}"
    );
    assert_eq!(
        delays[quick],
        RECONNECT.after(1),
        "then under the back-off: {delays:?}"
    );
    assert!(
        fake.world().lists > lists,
        "a list looks whether the engine is there"
    );
    shell.stop().await;
}

#[tokio::test(start_paused = true)]
async fn each_subscription_replays_what_happened_just_before() {
    let fake = Fake::new(&["nodo_1"]);
    let shell = start(&fake, "nodo_1", "1h");
    until("subscribed", Duration::from_secs(1), || {
        fake.world().subscriptions.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    // It dies just as the stream is cut, its event lost with the stream: the replay of the
    // next subscription brings it, long before the next pass would have.
    fake.kill("nodo_1", false);
    fake.cut();
    until("revived from the replay", Duration::from_secs(1), || {
        !fake.starts("nodo_1").is_empty()
    })
    .await;
    assert_revived(&shell, "nodo_1", 1);

    for (_, since, asked) in fake.world().subscriptions.iter() {
        let back = asked.duration_since(*since).expect("since is in the past");
        // The wall clock runs on between the shell's reading and the fake's.
        assert!(
            back >= REPLAY && back < REPLAY + Duration::from_millis(500),
            "{back:?}"
        );
    }
    shell.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_look_wanted_while_the_engine_is_away_happens_once_it_returns() {
    let fake = Fake::new(&["nodo_1", "nodo_2"]);
    let shell = start(&fake, "nodo_1,nodo_2", "10s");
    until("subscribed", Duration::from_secs(1), || {
        fake.world().subscriptions.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    // The die comes through, but the engine answers no call any more: the look fails, and
    // nothing can be started.
    fake.world().up = false;
    fake.kill("nodo_1", true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(fake.starts("nodo_1").is_empty());
    // Its stream ends too; the shell learns the engine is gone.
    fake.lose();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(fake.starts("nodo_1").is_empty());
    assert!(shell.records("action", "nodo_1").is_empty());

    // The replay would tell of the death again (the wall clock does not pause): forgotten,
    // so that what revives it is the look the core still owes.
    fake.world().history.clear();
    let back = Instant::now();
    fake.restore();
    until("revived once back", Duration::from_secs(40), || {
        !fake.starts("nodo_1").is_empty()
    })
    .await;
    assert!(fake.starts("nodo_1")[0] >= back);
    // Once, and the other target, which never died, is left alone.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(fake.starts("nodo_1").len(), 1);
    assert!(fake.starts("nodo_2").is_empty());
    assert_revived(&shell, "nodo_1", 1);
    assert!(shell.records("action", "nodo_2").is_empty());
    shell.stop().await;
}

/// A crash costs one look before the start and one after it: the start's own check of who the
/// container is adds none when the look is that fresh (see `task.rs`).
#[tokio::test(start_paused = true)]
async fn a_crash_is_revived_with_one_look_before_the_start_and_one_after() {
    let fake = Fake::new(&["nodo_1"]);
    let shell = start(&fake, "nodo_1", "1h");
    until("connected", Duration::from_secs(1), || {
        fake.world().subscriptions.len() == 1 && fake.world().lists >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = fake.world().calls.len();
    fake.kill("nodo_1", true);
    until("revived", Duration::from_secs(5), || {
        fake.starts("nodo_1").len() == 1 && fake.status("nodo_1") == Status::Running
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = fake.world().calls[before..].to_vec();
    assert_eq!(
        calls,
        ["inspect nodo_1", "start nodo_1", "inspect nodo_1"],
        "one look before the start, one after"
    );
    shell.stop().await;
}
