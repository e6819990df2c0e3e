//! HTTP and TCP probes of targets that declare one by label (`healthther.probe`): when each is
//! due, where it reaches the container, and what its results mean. The shell only opens the
//! connections ([`Command::Probe`] out, [`Input::Probed`](super::Input::Probed) back).
//!
//! A probe runs only while its container runs and is a target. Each start begins a new run:
//! failures of the last one are forgotten, and none counts during the label's start period.
//! `retries` failures in a row make the container unhealthy (`failing`), which a look turns
//! into a restart as for a failed HEALTHCHECK (see `decide`); a success ends it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use super::{Command, Core, Now, Phase, Watched};
use crate::policy::{Address, Status};
use crate::probe::run::Allowed;
use crate::probe::{self, Failure, ProbeSpec};

/// How soon a due probe whose container's addresses are not known yet for this run (it has
/// just started) is tried again, after an inspect to learn them.
const ADDRESS_WAIT: Duration = Duration::from_secs(1);
/// Probes due within this part of their interval (at most [`MOST_EARLY`]) go out with the one
/// that is due now, early. Waking up costs a sidecar on a busy machine more than the probe
/// itself (caches gone cold, the kernel's own wake-up): 300 targets probed every 10 s wake it
/// once a second for 30 probes, rather than 30 times for one.
const EARLY_PART: u32 = 10;
const MOST_EARLY: Duration = Duration::from_secs(1);

/// A probe for the shell to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeJob {
    /// The container's id, for the result; its name is in `allowed`.
    pub container_id: String,
    /// Which run of the container it probes: a result for an older one is dropped.
    pub run: u64,
    /// An address or a host name, as the probe connects to it.
    pub host: String,
    /// The container's own addresses: the only ones the probe may connect to.
    pub allowed: Allowed,
    pub spec: Arc<ProbeSpec>,
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    pub container_id: String,
    pub run: u64,
    pub result: Result<(), Failure>,
    pub took: Duration,
}

/// Where healthther can reach containers from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// On the host, or in a container on the host's network: any container's address.
    Anywhere,
    /// In a container on these networks (by name): an address on one of them.
    Networks(Vec<String>),
}

/// A target's probe and where it stands.
#[derive(Debug, Clone)]
pub(super) struct Probing {
    pub(super) spec: Arc<ProbeSpec>,
    /// Counts the container's runs (each start, each death) and its moves to other addresses:
    /// see [`ProbeJob::run`].
    run: u64,
    /// Since when the current run has been known to run; `None` while it does not run.
    running_since: Option<Instant>,
    /// When a network was last connected to it or disconnected from it in this run: what was
    /// known of its addresses before is no more (another container may have one of them now).
    moved: Option<Instant>,
    /// When the next probe is due.
    next: Option<Instant>,
    /// A probe is out (never two at once): until its answer comes back, whatever run it was
    /// for (a probe always ends, by its timeout at the latest).
    out: bool,
    /// Failures in a row that counted.
    fails: u32,
    /// `retries` failures in a row: unhealthy until a probe succeeds or it starts again.
    pub(super) failing: bool,
    last: Option<LastProbe>,
    /// What was said about not being able to reach it, so it is said once.
    unreachable: Option<String>,
}

#[derive(Debug, Clone)]
struct LastProbe {
    at: SystemTime,
    took: Duration,
    error: Option<Failure>,
}

impl Probing {
    pub(super) fn new(spec: ProbeSpec) -> Probing {
        Probing {
            spec: Arc::new(spec),
            run: 0,
            running_since: None,
            moved: None,
            next: None,
            out: false,
            fails: 0,
            failing: false,
            last: None,
            unreachable: None,
        }
    }

    /// The last probe's error while it is failing, for the record.
    pub(super) fn error(&self) -> Option<String> {
        self.last
            .as_ref()
            .filter(|_| self.failing)
            .and_then(|l| l.error.as_ref())
            .map(Failure::to_string)
    }

    /// When the next probe is due, if one is to be sent.
    pub(super) fn due(&self) -> Option<Instant> {
        self.next
            .filter(|_| !self.out && self.running_since.is_some())
    }

    /// A new run began at `at` (a start, or first seen running): probed from an interval
    /// on, or from `first` on when given.
    fn begin(&mut self, at: Instant, first: Option<Instant>) {
        self.run += 1;
        self.running_since = Some(at);
        self.moved = None;
        self.next = Some(first.unwrap_or(at + self.spec.interval));
        self.fails = 0;
        self.failing = false;
    }

    /// It stopped being a target (or became another): what its probes found counts no more.
    pub(super) fn forget(&mut self) {
        self.fails = 0;
        self.failing = false;
    }

    fn end(&mut self) {
        self.run += 1;
        self.running_since = None;
        self.moved = None;
        self.next = None;
        self.fails = 0;
        self.failing = false;
    }

    /// For `status` and the metrics.
    pub(super) fn status(&self) -> super::status::ProbeStatus {
        super::status::ProbeStatus {
            probe: probe::spec::shown(&self.spec),
            up: self.last.as_ref().map(|l| l.error.is_none()),
            failing: self.failing,
            failures: self.fails,
            last: self.last.as_ref().map(|l| super::status::time(l.at)),
            took_ms: self
                .last
                .as_ref()
                .map(|l| u64::try_from(l.took.as_millis()).unwrap_or(u64::MAX)),
            error: self
                .last
                .as_ref()
                .and_then(|l| l.error.as_ref())
                .map(Failure::to_string),
            unreachable: self.unreachable.clone(),
        }
    }
}

/// How early a probe may go out with others: see [`EARLY_PART`].
fn early(interval: Duration) -> Duration {
    (interval / EARLY_PART).min(MOST_EARLY)
}

/// The first probe of a container seen running at start-up comes within one interval, at a
/// place in it fixed by its id: 300 targets are not probed all at once.
fn spread(id: &str, interval: Duration) -> Duration {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    interval.mul_f64(0.1 + 0.9 * (h % 1000) as f64 / 1000.0)
}

impl Core {
    /// It started: a new run, probed from an interval on at its new address, which an
    /// inspect tells (a restart may give it another).
    pub(super) fn probe_on_start(
        &mut self,
        id: &str,
        time: SystemTime,
        now: Now,
        out: &mut Vec<Command>,
    ) {
        let (engine_up, synced) = (self.engine_up, self.synced);
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        // Whatever was seen of it before this start is of another run.
        r.run_started = Some(time);
        r.readdressed = Some(now.at);
        let Some(p) = r.probing.as_mut() else {
            return;
        };
        p.begin(now.at, None);
        if engine_up && synced && r.phase == Phase::Idle && !r.learning {
            r.learning = true;
            out.push(Command::Inspect(r.container.clone()));
        }
    }

    /// A network was connected to it or disconnected from it: it is probed again once a look
    /// tells its addresses now. A probe under way went to an address of before, which may be
    /// another container's by now: its result is dropped.
    pub(super) fn probe_on_network(&mut self, id: &str, now: Now) {
        if let Some(r) = self.records.get_mut(id) {
            r.readdressed = Some(now.at);
        }
        if let Some(p) = self.records.get_mut(id).and_then(|r| r.probing.as_mut()) {
            p.moved = Some(now.at);
            p.run += 1;
        }
    }

    /// It died: no probe until it runs again, its own or that of a container sharing its
    /// network, whose addresses went with it (another container may have them by now).
    pub(super) fn probe_on_die(&mut self, id: &str, now: Now) {
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        r.addresses.clear();
        r.addresses_at = Some(now.at);
        if let Some(p) = r.probing.as_mut() {
            p.end();
        }
    }

    /// A list or an inspect saw it in `status`: a run not known of (at start-up, or a start
    /// whose event was missed) begins, a death whose event was missed ends one.
    pub(super) fn probe_seen(&mut self, id: &str, status: &Status, now: Now) {
        let Some(p) = self.records.get_mut(id).and_then(|r| r.probing.as_mut()) else {
            return;
        };
        match (status, p.running_since) {
            (Status::Running, None) => {
                let first = now.at + spread(id, p.spec.interval);
                p.begin(now.at, Some(first));
            }
            (Status::Running, Some(_)) => {}
            (_, Some(_)) => p.end(),
            (_, None) => {}
        }
    }

    /// Sends the probes that are due, and those due soon enough to go with them (see
    /// [`EARLY_PART`]).
    pub(super) fn probe_due(&mut self, now: Now, out: &mut Vec<Command>) {
        let due: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| r.target.is_some())
            .filter(|(_, r)| {
                r.probing.as_ref().is_some_and(|p| {
                    p.due()
                        .is_some_and(|t| t <= now.at + early(p.spec.interval))
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.send_probe(&id, now, out);
        }
    }

    fn send_probe(&mut self, id: &str, now: Now, out: &mut Vec<Command>) {
        let (host, allowed) = match self.records.get(id) {
            Some(r) => (self.probe_host(r), self.probe_allowed(r)),
            None => return,
        };
        let (engine_up, synced) = (self.engine_up, self.synced);
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        let target = r.target.clone();
        let Some(p) = r.probing.as_mut() else {
            return;
        };
        let host = match host {
            Ok(host) => host,
            Err(NoHost::NotYet(holder)) => {
                // Its address for this run is not known yet: an inspect tells.
                p.next = Some(now.at + ADDRESS_WAIT.min(p.spec.interval));
                if let Some(h) = self.records.get_mut(&holder) {
                    if engine_up && synced && h.phase == Phase::Idle && !h.learning {
                        h.learning = true;
                        out.push(Command::Inspect(h.container.clone()));
                    }
                }
                return;
            }
            Err(NoHost::Unreachable(why)) => {
                p.next = Some(now.at + p.spec.interval);
                if p.unreachable.as_deref() != Some(why.as_str()) {
                    warn!(target = %target.as_ref().map(ToString::to_string).unwrap_or_default(),
                        container = %r.container.name,
                        "not probing {}: {why}; nothing counts against it until it can be reached",
                        r.container.name);
                    p.unreachable = Some(why);
                }
                return;
            }
        };
        // A host the label names is found out to be the container's or not by the probe.
        if p.spec.host.is_none() && p.unreachable.take().is_some() {
            info!(container = %r.container.name, host = %host, "{} can be probed now", r.container.name);
        }
        p.out = true;
        // An early probe keeps its schedule: the next is an interval after the time this one
        // was due, so that going early never makes probes more frequent.
        let due = p.next.map_or(now.at, |t| t.max(now.at));
        p.next = Some(due + p.spec.interval);
        out.push(Command::Probe(ProbeJob {
            container_id: r.container.id.clone(),
            run: p.run,
            host,
            allowed,
            spec: Arc::clone(&p.spec),
        }));
    }

    /// The container whose network namespace `r` shares (`--network container:X`, by id or
    /// name), when it has one and it is known.
    fn network_holder<'a>(&'a self, r: &Watched) -> Option<&'a Watched> {
        let parent = r.network_parent.as_ref()?;
        self.records
            .get(parent)
            .or_else(|| self.records.values().find(|x| &x.container.name == parent))
    }

    /// The addresses a probe of `r` may connect to: its own (for `--network container:X`,
    /// X's), and loopback for one on the host's network when healthther is on the host too.
    fn probe_allowed(&self, r: &Watched) -> Allowed {
        let holder = self.network_holder(r).unwrap_or(r);
        let mut addresses: Vec<IpAddr> = holder.addresses.iter().map(|a| a.ip).collect();
        if holder.host_network && self.own_reach == Some(Reach::Anywhere) {
            addresses.extend([
                IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ]);
        }
        Allowed {
            container: r.container.name.clone(),
            addresses,
        }
    }

    /// Where the probe of `r` connects: the host its label names, or its address on a network
    /// healthther shares with it (for `--network container:X`, X's).
    fn probe_host(&self, r: &Watched) -> Result<String, NoHost> {
        let Some(p) = &r.probing else {
            return Err(NoHost::NotYet(r.container.id.clone()));
        };
        let holder = match (&r.network_parent, self.network_holder(r), &p.spec.host) {
            (Some(parent), None, None) => {
                return Err(NoHost::Unreachable(format!(
                    "it uses the network of {parent}, which healthther does not see"
                )))
            }
            (_, holder, _) => holder.unwrap_or(r),
        };
        let since = p
            .running_since
            .ok_or_else(|| NoHost::NotYet(r.container.id.clone()))?;
        let since = p.moved.map_or(since, |moved| moved.max(since));
        if holder.addresses_at.is_none_or(|t| t < since) && holder.container.id == r.container.id {
            return Err(NoHost::NotYet(r.container.id.clone()));
        }
        // The container whose network it shares started again or moved since its addresses
        // were seen: a look at it tells where it is now.
        if holder
            .readdressed
            .is_some_and(|t| holder.addresses_at.is_none_or(|a| a < t))
        {
            return Err(NoHost::NotYet(holder.container.id.clone()));
        }
        // A host the label names is probed as written, but only once the addresses it is
        // checked against are this run's: those of before may be another container's now.
        if let Some(host) = &p.spec.host {
            return Ok(host.clone());
        }
        let Some(reach) = &self.own_reach else {
            return Err(NoHost::Unreachable(
                "healthther does not know its own networks yet".into(),
            ));
        };
        if holder.container.id != r.container.id && holder.addresses.is_empty() {
            return Err(NoHost::Unreachable(format!(
                "it uses the network of {}, which has no address now (it is not running, or \
                 on no network)",
                holder.container.name
            )));
        }
        pick(&holder.addresses, reach)
            .map(|ip| ip.to_string())
            .ok_or_else(|| NoHost::Unreachable(unreachable_why(&holder.addresses, reach)))
    }

    /// A probe's result: counted, unless it is of an older run or in the start period; the
    /// container is looked at when it turns unhealthy, or well again.
    pub(super) fn on_probed(
        &mut self,
        probed: Probed,
        now: Now,
        out: &mut Vec<Command>,
    ) -> Counted {
        let Some(r) = self.records.get_mut(&probed.container_id) else {
            return Counted::Alone(None);
        };
        // Borrowed, not copied: it is needed only for the rare line said.
        let name = &r.container.name;
        let Some(p) = r.probing.as_mut() else {
            return Counted::Alone(None);
        };
        // Whatever run it was for, the one probe out is back: its connection is closed, and
        // only now may another go out (a new run's, too).
        p.out = false;
        if probed.run != p.run {
            return Counted::Alone(p.due());
        }
        let not_run = match &probed.result {
            Err(e) => not_run(e, name),
            Ok(()) => None,
        };
        if p.spec.host.is_some() && not_run.is_none() && p.unreachable.take().is_some() {
            info!(container = %name, "{name} can be probed now");
        }
        if r.target.is_none() {
            // Renamed away while the probe was out: nothing to count, nothing to say.
            p.forget();
            return Counted::Alone(None);
        }
        p.last = Some(LastProbe {
            at: now.wall,
            took: probed.took,
            error: probed.result.clone().err(),
        });
        let changed = match (probed.result, not_run) {
            // Not probed at all: its label names a host that is not the container, or one that
            // does not resolve from here. Said once, and nothing counts, either way.
            (Err(_), Some(why)) => {
                if p.unreachable.as_deref() != Some(why.as_str()) {
                    warn!(container = %name, host = p.spec.host.as_deref().unwrap_or_default(),
                        "not probing {name}: {why}");
                    p.unreachable = Some(why);
                }
                false
            }
            (Ok(()), _) => {
                p.fails = 0;
                std::mem::replace(&mut p.failing, false)
            }
            (Err(e), None) => {
                let in_start_period = p
                    .running_since
                    .is_some_and(|s| now.at < s + p.spec.start_period);
                if in_start_period {
                    false
                } else {
                    p.fails += 1;
                    let now_failing = p.fails >= p.spec.retries && !p.failing;
                    if now_failing {
                        p.failing = true;
                        warn!(container = %name, error = %e,
                            "probe failed {} times in a row: {name} is unhealthy", p.fails);
                    }
                    now_failing
                }
            }
        };
        if !changed {
            return Counted::Alone(p.due());
        }
        let id = probed.container_id;
        self.look(&id, None, out);
        Counted::Looked
    }
}

/// What a probe's result changed in the core.
pub(super) enum Counted {
    /// Its own probe's counts and nothing else: no prompt, history, hold or phase, no other
    /// container's timer. Its next probe is due then, if one is to be sent: the one timer that
    /// may have come (it was out, so it had none).
    Alone(Option<Instant>),
    /// The container was looked at: anything may follow.
    Looked,
}

/// Why no probe can be sent now.
enum NoHost {
    /// Its address for this run is not known yet: a look at this container (its own, or the
    /// one whose network it shares) tells.
    NotYet(String),
    /// Said once: why it cannot be reached.
    Unreachable(String),
}

/// Why a probe of `container` that failed with `e` never reached it, when it did not: its
/// label names a host that is not the container, or a name that does not resolve from where
/// healthther runs (a compose service's name, with healthther on the host). Neither is the
/// container's failure. Said once: the text does not carry the resolver's varying words.
fn not_run(e: &Failure, container: &str) -> Option<String> {
    match e {
        Failure::NotTheContainer { .. } => Some(e.to_string()),
        Failure::Resolve { host, .. } => Some(format!(
            "cannot resolve {host} from where healthther runs: run healthther on a network \
             where {host} resolves, or leave the host empty (as in http://:PORT/) to probe \
             {container}'s own address"
        )),
        _ => None,
    }
}

/// The address to probe: on a network healthther is on, IPv4 first.
fn pick(addresses: &[Address], reach: &Reach) -> Option<IpAddr> {
    let usable = addresses.iter().filter(|a| match reach {
        Reach::Anywhere => true,
        Reach::Networks(ours) => ours.contains(&a.network),
    });
    let (v4, v6): (Vec<&Address>, Vec<&Address>) = usable.partition(|a| a.ip.is_ipv4());
    v4.first().or(v6.first()).map(|a| a.ip)
}

fn unreachable_why(addresses: &[Address], reach: &Reach) -> String {
    let mut theirs: Vec<&str> = addresses.iter().map(|a| a.network.as_str()).collect();
    theirs.dedup();
    match (theirs.is_empty(), reach) {
        (true, _) => "it has no address on any network (host network, or none): write the \
                      host in the label, as healthther.probe=http://HOST:PORT/"
            .into(),
        (false, Reach::Networks(_)) => format!(
            "it shares no network with healthther: attach healthther to {} (`networks:` in \
             compose, or `docker network connect`)",
            theirs.join(" or ")
        ),
        (false, Reach::Anywhere) => "none of its addresses is usable".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(network: &str, ip: &str) -> Address {
        Address {
            network: network.into(),
            ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn picks_an_address_on_a_shared_network_ipv4_first() {
        let a = [
            addr("other", "10.0.0.2"),
            addr("p_default", "fd00::3"),
            addr("p_default", "172.18.0.3"),
        ];
        let ours = Reach::Networks(vec!["p_default".into()]);
        assert_eq!(pick(&a, &ours), Some("172.18.0.3".parse().unwrap()));
        assert_eq!(
            pick(&a, &Reach::Anywhere),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(pick(&a, &Reach::Networks(vec!["x".into()])), None);
        let why = unreachable_why(&a, &Reach::Networks(vec!["x".into()]));
        assert!(
            why.contains("attach healthther to other or p_default"),
            "{why}"
        );
    }

    #[test]
    fn first_probes_are_spread_over_the_interval() {
        let i = Duration::from_secs(10);
        let firsts: std::collections::BTreeSet<u128> = (0..300)
            .map(|n| spread(&format!("{n:064x}"), i).as_millis() / 1000)
            .collect();
        assert!(firsts.len() >= 9, "{firsts:?}");
        assert!((0..300).all(|n| spread(&n.to_string(), i) <= i));
    }
}
