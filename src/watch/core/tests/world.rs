//! A model engine for the core's tests, as quinn-proto's `tests/util.rs` drives a connection
//! pair: a scripted set of containers that answers the core's [`Command::Inspect`] and
//! [`Command::Act`] from its own state, and sends the events Docker would send. A test says
//! what happens (`w.kill("nodo_1").drive()`); [`World::drive`] feeds answers back until the
//! core has nothing more to ask. The clock moves only when told ([`World::advance`]).
//!
//! Races are scripted with the hooks: [`World::hold_inspects`], [`World::hold_acts`] and
//! [`World::hold_probes`] keep the answers back until [`World::release`]; [`World::look`] takes a snapshot now, to be
//! delivered later with [`World::inspected`] (a look that saw the world before an event).

use std::collections::VecDeque;

use super::*;

/// One container as the model engine knows it.
#[derive(Debug, Clone)]
pub struct Ctr {
    pub c: ContainerRef,
    pub status: Status,
    pub health: Health,
    pub has_check: bool,
    pub started: Option<SystemTime>,
    pub finished: Option<SystemTime>,
    pub exit_code: Option<i64>,
    pub oom: bool,
    pub network_parent: Option<String>,
    pub removed: bool,
    /// What a probe of it finds while it runs (a stopped one refuses).
    pub probe: Result<(), crate::probe::Failure>,
    /// Its address on `net` while it runs, when not the one its place in the world gives
    /// (`docker network connect --ip`).
    pub address: Option<std::net::IpAddr>,
}

pub struct World {
    /// The core and its clock, for whatever a test feeds by hand.
    pub s: Script,
    pub containers: Vec<Ctr>,
    /// Inspects and acts the core asked for and the world has not answered yet.
    pending: VecDeque<Command>,
    /// Acts withdrawn before they were answered.
    withdrawn: Vec<String>,
    /// What came out of the core since the last [`World::drive`].
    out: Vec<Command>,
    /// Everything that came out of the core.
    pub log: Vec<Command>,
    hold_inspects: bool,
    hold_acts: bool,
    hold_probes: bool,
    /// The result the next act on a container (by id) gets, instead of the world's own.
    scripted: Vec<(String, ActResult)>,
    /// The result every act on a container (by id) gets, instead of the world's own.
    failing: Vec<(String, ActResult)>,
    next_id: u32,
}

impl World {
    pub fn new(mode: &str, targets: &str) -> World {
        World::of(Script::new(mode, targets))
    }

    pub fn with(config: Arc<Config>) -> World {
        World::of(Script::with(config))
    }

    pub fn of(s: Script) -> World {
        World {
            s,
            containers: Vec::new(),
            pending: VecDeque::new(),
            withdrawn: Vec::new(),
            out: Vec::new(),
            log: Vec::new(),
            hold_inspects: false,
            hold_acts: false,
            hold_probes: false,
            scripted: Vec::new(),
            failing: Vec::new(),
            next_id: 0,
        }
    }

    // --- The containers ------------------------------------------------------------------

    /// A container that runs, started now.
    pub fn add(&mut self, c: &ContainerRef) -> &mut Self {
        let now = self.s.now().wall;
        self.containers.push(Ctr {
            c: c.clone(),
            status: Status::Running,
            health: Health::None,
            has_check: false,
            started: Some(now),
            finished: None,
            exit_code: None,
            oom: false,
            network_parent: None,
            removed: false,
            probe: Ok(()),
            address: None,
        });
        self
    }

    /// A running container that shares `parent`'s network (by id, as compose writes it).
    pub fn add_in(&mut self, c: &ContainerRef, parent: &str) -> &mut Self {
        self.add(c);
        self.last().network_parent = Some(parent.into());
        self
    }

    /// A running container with a health check that passes.
    pub fn add_healthy(&mut self, c: &ContainerRef) -> &mut Self {
        self.add(c);
        let last = self.last();
        last.has_check = true;
        last.health = Health::Healthy;
        self
    }

    fn last(&mut self) -> &mut Ctr {
        self.containers
            .last_mut()
            .expect("a container was just added")
    }

    fn at(&self, name: &str) -> usize {
        self.containers
            .iter()
            .rposition(|x| x.c.name == name && !x.removed)
            .or_else(|| self.containers.iter().rposition(|x| x.c.name == name))
            .or_else(|| self.containers.iter().rposition(|x| x.c.id == name))
            .unwrap_or_else(|| panic!("no container {name} in the world"))
    }

    fn at_id(&self, id: &str) -> Option<usize> {
        self.containers.iter().rposition(|x| x.c.id == id)
    }

    /// The container called `name` (or with that id) as the world knows it: the one still
    /// there, or else the last one removed.
    pub fn get(&self, name: &str) -> &Ctr {
        &self.containers[self.at(name)]
    }

    pub fn get_mut(&mut self, name: &str) -> &mut Ctr {
        let i = self.at(name);
        &mut self.containers[i]
    }

    pub fn id(&self, name: &str) -> String {
        self.get(name).c.id.clone()
    }

    /// What an inspect of `name` would answer now.
    pub fn look(&self, name: &str) -> Snapshot {
        self.snapshot(self.at(name))
    }

    fn snapshot(&self, i: usize) -> Snapshot {
        let x = &self.containers[i];
        let down = x.status != Status::Running;
        Snapshot {
            container: x.c.clone(),
            status: x.status.clone(),
            health: if down { Health::None } else { x.health },
            exit_code: if down { x.exit_code } else { None },
            oom_killed: x.oom,
            has_run: x.started.is_some(),
            started_at: x
                .started
                .map(|t| humantime::format_rfc3339_nanos(t).to_string()),
            finished_at: if down { x.finished } else { None },
            error: None,
            health_output: None,
            network_parent: x.network_parent.clone(),
            has_check: x.has_check,
            addresses: self.addresses(i),
            probe_error: None,
            host_network: false,
        }
    }

    fn listed(&self, x: &Ctr) -> Listed {
        let i = self
            .containers
            .iter()
            .position(|y| y.c.id == x.c.id)
            .expect("a container of the world");
        Listed {
            container: x.c.clone(),
            status: x.status.clone(),
            health: x.health,
            network_parent: x.network_parent.clone(),
            addresses: self.addresses(i),
            host_network: false,
        }
    }

    /// Every running container has an address on network `net` (save one that shares
    /// another's network): 10.0.0.2 for the first, and so on.
    fn addresses(&self, i: usize) -> Vec<crate::policy::Address> {
        let x = &self.containers[i];
        if x.status != Status::Running || x.network_parent.is_some() {
            return Vec::new();
        }
        let n = u32::try_from(i).expect("a small world") + 2;
        vec![crate::policy::Address {
            network: "net".into(),
            ip: x
                .address
                .unwrap_or_else(|| std::net::Ipv4Addr::from(0x0a00_0000 + n).into()),
        }]
    }

    // --- Talking to the core -------------------------------------------------------------

    /// Feeds `input` to the core and keeps what it asks for; answers nothing yet.
    pub fn feed(&mut self, input: Input) -> &mut Self {
        let out = self.s.feed(input);
        for c in &out {
            match c {
                Command::Inspect(_) | Command::Act(_) | Command::Probe(_) => {
                    self.pending.push_back(c.clone())
                }
                Command::Withdraw(id) => self.withdrawn.push(id.clone()),
                _ => {}
            }
        }
        self.log.extend(out.iter().cloned());
        self.out.extend(out);
        self
    }

    fn event_at(&mut self, kind: EventKind, i: usize) -> &mut Self {
        let time = self.s.now().wall;
        let container = self.containers[i].c.clone();
        self.feed(Input::Event(Event {
            kind,
            container,
            time,
        }))
    }

    /// An event about `name`, as it is named now.
    pub fn event(&mut self, kind: EventKind, name: &str) -> &mut Self {
        let i = self.at(name);
        self.event_at(kind, i)
    }

    /// Answers what the core asks for, from the world, until it asks nothing more (answers
    /// held back stay out); returns everything the core said since the last drive.
    pub fn drive(&mut self) -> Vec<Command> {
        for _ in 0..10_000 {
            let next = self.pending.iter().position(|c| match c {
                Command::Inspect(_) => !self.hold_inspects,
                Command::Probe(_) => !self.hold_probes,
                _ => !self.hold_acts,
            });
            let Some(next) = next else {
                return std::mem::take(&mut self.out);
            };
            match self.pending.remove(next) {
                Some(Command::Inspect(c)) => self.answer_inspect(&c.id),
                Some(Command::Act(a)) => self.answer_act(a),
                Some(Command::Probe(job)) => self.answer_probe(job),
                _ => unreachable!("only inspects, acts and probes are pending"),
            }
        }
        panic!("the core never stops asking: {:?}", self.pending);
    }

    /// What the core said since the last drive, answering nothing.
    pub fn said(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.out)
    }

    /// The connection is made and the first whole list shows the world; driven.
    pub fn connect(&mut self) -> Vec<Command> {
        let session_start = self.s.now().wall;
        self.feed(Input::Connected { session_start });
        self.list(true).drive()
    }

    /// A pass: every container (`full`), or only those that may need attention.
    pub fn list(&mut self, full: bool) -> &mut Self {
        let containers = self
            .containers
            .iter()
            .filter(|x| !x.removed)
            .filter(|x| {
                full || x.status != Status::Running
                    || matches!(x.health, Health::Unhealthy | Health::Starting)
            })
            .map(|x| self.listed(x))
            .collect();
        let asked = self.s.now().at;
        self.feed(Input::Listed {
            full,
            containers,
            asked,
        })
    }

    /// Moves the clock on and lets every wait that ended go off (not driven).
    pub fn advance(&mut self, d: Duration) -> &mut Self {
        self.s.elapsed += d;
        self.feed(Input::Tick)
    }

    /// Moves the clock on, without a tick.
    pub fn pass(&mut self, d: Duration) -> &mut Self {
        self.s.elapsed += d;
        self
    }

    /// A request on the control socket; driven. Returns the reply and what else came out.
    pub fn request(&mut self, request: Request) -> (Reply, Vec<Command>) {
        self.request_by(request, "test")
    }

    /// A request from `by` (a chat's reader names who pressed); driven.
    pub fn request_by(&mut self, request: Request, by: &str) -> (Reply, Vec<Command>) {
        self.feed(Input::Request {
            request,
            by: by.into(),
        });
        let mut out = self.drive();
        let at = out
            .iter()
            .position(|c| matches!(c, Command::Reply(_)))
            .expect("a reply");
        let Command::Reply(reply) = out.remove(at) else {
            unreachable!("found above")
        };
        (reply, out)
    }

    /// The operator answers `target`'s prompt; driven.
    pub fn answer(&mut self, target: &str, answer: &str) -> (Reply, Vec<Command>) {
        self.request(Request::Answer {
            target: target.into(),
            answer: answer.into(),
        })
    }

    /// A line typed at the terminal (not driven).
    pub fn line(&mut self, text: &str) -> &mut Self {
        self.feed(Input::Line(text.into()))
    }

    // --- What happens to containers ------------------------------------------------------

    fn down(&mut self, i: usize, code: i64) {
        let now = self.s.now().wall;
        let x = &mut self.containers[i];
        x.status = Status::Exited;
        x.exit_code = Some(code);
        x.finished = Some(now);
        x.health = Health::None;
    }

    fn up(&mut self, i: usize) {
        let now = self.s.now().wall;
        let x = &mut self.containers[i];
        x.status = Status::Running;
        // Every run has a start time of its own, as the engine's clock moves on while the
        // world's stands still: a run started in the same instant as the last one is 1 ms on.
        x.started = Some(match x.started {
            Some(last) if last >= now => last + MS,
            _ => now,
        });
        x.exit_code = None;
        x.oom = false;
        x.health = if x.has_check {
            Health::Starting
        } else {
            Health::None
        };
    }

    /// `docker kill`: a SIGKILL through the API, and the death (exit 137).
    pub fn kill(&mut self, name: &str) -> &mut Self {
        let i = self.at(name);
        self.event_at(KILL, i);
        self.down(i, 137);
        self.event_at(EventKind::Die, i)
    }

    /// It dies by itself with `code`.
    pub fn crash(&mut self, name: &str, code: i64) -> &mut Self {
        let i = self.at(name);
        self.down(i, code);
        self.event_at(EventKind::Die, i)
    }

    /// The kernel's OOM killer ends it.
    pub fn oom(&mut self, name: &str) -> &mut Self {
        let i = self.at(name);
        self.down(i, 137);
        self.containers[i].oom = true;
        self.event_at(EventKind::Oom, i);
        self.event_at(EventKind::Die, i)
    }

    /// `docker stop`: SIGTERM through the API, the death (exit 143), the stop.
    pub fn stop(&mut self, name: &str) -> &mut Self {
        let i = self.at(name);
        self.event_at(TERM, i);
        self.down(i, 143);
        self.event_at(EventKind::Die, i);
        self.event_at(EventKind::Stop, i)
    }

    /// Someone else starts it (`docker start`).
    pub fn start(&mut self, name: &str) -> &mut Self {
        let i = self.at(name);
        self.up(i);
        self.event_at(EventKind::Start, i)
    }

    /// Someone else starts it while nobody watches: no event tells.
    pub fn start_unseen(&mut self, name: &str) -> &mut Self {
        let i = self.at(name);
        self.up(i);
        self
    }

    /// It dies, and no event tells yet (the stream lags behind a list or an inspect).
    pub fn crash_unseen(&mut self, name: &str, code: i64) -> &mut Self {
        let i = self.at(name);
        self.down(i, code);
        self
    }

    /// compose v1 recreating `name`: the old one stopped and renamed out of the way, the
    /// new one created and started under the name, the old one removed. Returns the new id.
    pub fn compose_recreate_v1(&mut self, name: &str) -> String {
        let i = self.at(name);
        self.stop(name);
        let old = self.containers[i].clone();
        let short = &old.c.id[..old.c.id.len().min(12)];
        self.containers[i].c.name = format!("{short}_{}", old.c.name);
        self.event_at(EventKind::Rename, i);
        let new = self.new_id();
        self.create(
            &ContainerRef {
                id: new.clone(),
                ..old.c.clone()
            },
            old.has_check,
        );
        let j = self.containers.len() - 1;
        self.containers[j].network_parent = old.network_parent;
        self.up(j);
        self.event_at(EventKind::Start, j);
        self.containers[i].removed = true;
        self.event_at(EventKind::Destroy, i);
        new
    }

    /// The task carrying out the look or action on `name` ended without an answer.
    pub fn lose_task(&mut self, name: &str) -> &mut Self {
        let id = self.id(name);
        self.pending.retain(|c| match c {
            Command::Inspect(c) => c.id != id,
            Command::Act(a) => a.seen.container.id != id,
            _ => true,
        });
        self.feed(Input::TaskLost { container_id: id })
    }

    /// Someone else restarts it (`docker restart`).
    pub fn restart(&mut self, name: &str) -> &mut Self {
        self.stop(name).start(name)
    }

    /// Its health check fails.
    pub fn unhealthy(&mut self, name: &str) -> &mut Self {
        let i = self.at(name);
        self.containers[i].has_check = true;
        self.containers[i].health = Health::Unhealthy;
        self.event_at(EventKind::Health(Health::Unhealthy), i)
    }

    /// Its health check passes.
    pub fn healthy(&mut self, name: &str) -> &mut Self {
        let i = self.at(name);
        self.containers[i].has_check = true;
        self.containers[i].health = Health::Healthy;
        self.event_at(EventKind::Health(Health::Healthy), i)
    }

    /// `docker rm` (`-f`: a running one is killed first).
    pub fn remove(&mut self, name: &str) -> &mut Self {
        let i = self.at(name);
        if self.containers[i].status == Status::Running {
            self.kill(name);
        }
        self.containers[i].removed = true;
        self.event_at(EventKind::Destroy, i)
    }

    /// `docker rename`.
    /// A network connected to or disconnected from `name` (its `address` may have changed):
    /// the engine's event names the container by its id alone.
    pub fn network_changed(&mut self, name: &str) -> &mut Self {
        let time = self.s.now().wall;
        let container = ContainerRef {
            id: self.id(name),
            ..ContainerRef::default()
        };
        self.feed(Input::Event(Event {
            kind: EventKind::Network,
            container,
            time,
        }))
    }

    pub fn rename(&mut self, name: &str, to: &str) -> &mut Self {
        let i = self.at(name);
        self.containers[i].c.name = to.into();
        self.event_at(EventKind::Rename, i)
    }

    /// `docker create`: a new container that never ran, with a health check if `has_check`.
    pub fn create(&mut self, c: &ContainerRef, has_check: bool) -> &mut Self {
        self.add(c);
        let last = self.last();
        last.status = Status::Created;
        last.started = None;
        last.has_check = has_check;
        let i = self.containers.len() - 1;
        self.event_at(EventKind::Create, i)
    }

    /// `docker compose down`: every container of `project` asked to stop, then each dies
    /// and stops, then each is removed.
    pub fn compose_down(&mut self, project: &str) -> &mut Self {
        let all: Vec<usize> = (0..self.containers.len())
            .filter(|&i| {
                let x = &self.containers[i];
                !x.removed && x.c.project.as_deref() == Some(project)
            })
            .collect();
        for &i in &all {
            self.event_at(TERM, i);
        }
        for &i in &all {
            if self.containers[i].status == Status::Running {
                self.down(i, 143);
                self.event_at(EventKind::Die, i);
            }
            self.event_at(EventKind::Stop, i);
        }
        for &i in &all {
            self.containers[i].removed = true;
            self.event_at(EventKind::Destroy, i);
        }
        self
    }

    /// A new id, unlike any in the world.
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!(
            "{:012x}0000",
            0xcccc_cccc_0000_u64 + u64::from(self.next_id)
        )
    }

    // --- Hooks for races -----------------------------------------------------------------

    /// Inspects stay unanswered until [`World::release`].
    pub fn hold_inspects(&mut self) -> &mut Self {
        self.hold_inspects = true;
        self
    }

    /// Acts stay unanswered until [`World::release`].
    pub fn hold_acts(&mut self) -> &mut Self {
        self.hold_acts = true;
        self
    }

    /// Probes stay unanswered (hanging) until [`World::release`].
    pub fn hold_probes(&mut self) -> &mut Self {
        self.hold_probes = true;
        self
    }

    /// Answers are given again (on the next drive).
    pub fn release(&mut self) -> &mut Self {
        self.hold_inspects = false;
        self.hold_acts = false;
        self.hold_probes = false;
        self
    }

    /// The ids of the containers whose inspects are out.
    pub fn inspects_out(&self) -> Vec<String> {
        self.pending
            .iter()
            .filter_map(|c| match c {
                Command::Inspect(c) => Some(c.id.clone()),
                _ => None,
            })
            .collect()
    }

    /// Answers the first inspect out about the snapshot's container with it (a look taken
    /// earlier with [`World::look`]), whatever the world is now; not driven.
    pub fn inspected(&mut self, seen: Snapshot) -> &mut Self {
        if let Some(i) = self
            .pending
            .iter()
            .position(|c| matches!(c, Command::Inspect(c) if c.id == seen.container.id))
        {
            self.pending.remove(i);
        }
        self.feed(Input::Inspected {
            container: seen.container.clone(),
            result: Ok(Some(seen)),
        })
    }

    /// Takes the action out on `name` (held with [`World::hold_acts`]) for the test to answer
    /// by hand with [`Input::Acted`]: the world does not carry it out, nor withdraw it.
    pub fn take_act(&mut self, name: &str) -> Act {
        let id = self.id(name);
        self.withdrawn.retain(|w| *w != id);
        let at = self
            .pending
            .iter()
            .position(|c| matches!(c, Command::Act(a) if a.seen.container.id == id))
            .unwrap_or_else(|| panic!("no action out on {name}"));
        match self.pending.remove(at) {
            Some(Command::Act(a)) => a,
            _ => unreachable!("found above"),
        }
    }

    /// The next act on `name` gets `result`, and the world does not change (but for a
    /// failed recreation, whose replacement comes and goes).
    pub fn next_act(&mut self, name: &str, result: ActResult) -> &mut Self {
        let id = self.id(name);
        self.scripted.push((id, result));
        self
    }

    /// Every act on `name` from now on gets `result` (as [`World::next_act`]).
    pub fn fail_acts(&mut self, name: &str, result: ActResult) -> &mut Self {
        let id = self.id(name);
        self.failing.push((id, result));
        self
    }

    // --- Answers -------------------------------------------------------------------------

    fn answer_inspect(&mut self, id: &str) {
        let (container, result) = match self.at_id(id) {
            Some(i) if !self.containers[i].removed => {
                (self.containers[i].c.clone(), Ok(Some(self.snapshot(i))))
            }
            Some(i) => (self.containers[i].c.clone(), Ok(None)),
            None => panic!("an inspect of {id}, which never was in the world"),
        };
        self.feed(Input::Inspected { container, result });
    }

    /// A probe finds what the `probe` of the container at its address says while it runs (a
    /// stopped one refuses): the container it was sent for, or whoever has its address now. A
    /// probe of a host name reaches the container it was sent for.
    fn answer_probe(&mut self, job: ProbeJob) {
        // As `probe::run`: only to the container's own addresses.
        if let Ok(ip) = job.host.parse::<std::net::IpAddr>() {
            if !job.allowed.addresses.contains(&ip) {
                let refused = crate::probe::Failure::NotTheContainer {
                    host: job.host.clone(),
                    container: job.allowed.container.clone(),
                };
                return self.feed_probed(job, Err(refused));
            }
        }
        let at_address = job.host.parse::<std::net::IpAddr>().ok().map(|ip| {
            (0..self.containers.len()).find(|&j| {
                !self.containers[j].removed && self.addresses(j).iter().any(|a| a.ip == ip)
            })
        });
        let i = match at_address {
            Some(Some(j)) => j,
            // Nobody has the address: refused.
            Some(None) => {
                return self.feed_probed(job, Err(crate::probe::Failure::Refused));
            }
            None => self
                .at_id(&job.container_id)
                .expect("a probe of a container of the world"),
        };
        let x = &self.containers[i];
        let result = if x.status == Status::Running && !x.removed {
            x.probe.clone()
        } else {
            Err(crate::probe::Failure::Refused)
        };
        self.feed_probed(job, result);
    }

    fn feed_probed(&mut self, job: ProbeJob, result: Result<(), crate::probe::Failure>) {
        self.feed(Input::Probed(Probed {
            container_id: job.container_id,
            run: job.run,
            result,
            took: MS,
        }));
    }

    fn answer_act(&mut self, act: Act) {
        let id = act.seen.container.id.clone();
        let result = if let Some(w) = self.withdrawn.iter().position(|w| *w == id) {
            self.withdrawn.remove(w);
            ActResult::Withdrawn
        } else if let Some(result) = self
            .scripted
            .iter()
            .position(|(x, _)| *x == id)
            .map(|k| self.scripted.remove(k).1)
            .or_else(|| {
                let failing = self.failing.iter().find(|(x, _)| *x == id);
                failing.map(|(_, r)| r.clone())
            })
        {
            if act.action == Action::Recreate {
                self.failed_recreation(&id);
            }
            result
        } else {
            self.carry_out(&act)
        };
        self.feed(Input::Acted(Acted {
            act,
            result,
            took: MS,
        }));
    }

    fn carry_out(&mut self, act: &Act) -> ActResult {
        let id = &act.seen.container.id;
        let Some(i) = self.at_id(id).filter(|&i| !self.containers[i].removed) else {
            return ActResult::Removed;
        };
        let running = self.containers[i].status == Status::Running;
        match act.action {
            Action::Start if running => ActResult::AlreadyRunning,
            Action::Start => {
                self.up(i);
                self.event_at(EventKind::Start, i);
                ActResult::Running
            }
            Action::Restart => {
                if running {
                    self.event_at(TERM, i);
                    self.down(i, 143);
                    self.event_at(EventKind::Die, i);
                    self.event_at(EventKind::Stop, i);
                }
                self.up(i);
                self.event_at(EventKind::Start, i);
                ActResult::Running
            }
            Action::Stop => {
                if running {
                    self.event_at(TERM, i);
                    self.down(i, 143);
                    self.event_at(EventKind::Die, i);
                }
                self.event_at(EventKind::Stop, i);
                ActResult::Stopped
            }
            Action::Recreate => {
                let old = self.containers[i].clone();
                let new = self.new_id();
                let temp = ContainerRef {
                    id: new.clone(),
                    name: crate::recreate::temporary_name(&old.c.id, &old.c.name),
                    ..old.c.clone()
                };
                self.create(&temp, old.has_check);
                let j = self.containers.len() - 1;
                self.containers[j].network_parent = act
                    .parent
                    .as_ref()
                    .map(|p| p.id.clone())
                    .or(old.network_parent);
                if running {
                    self.event_at(TERM, i);
                    self.down(i, 143);
                    self.event_at(EventKind::Die, i);
                    self.event_at(EventKind::Stop, i);
                }
                self.containers[i].removed = true;
                self.event_at(EventKind::Destroy, i);
                self.containers[j].c.name = old.c.name;
                self.event_at(EventKind::Rename, j);
                self.up(j);
                self.event_at(EventKind::Start, j);
                ActResult::Recreated { id: new }
            }
        }
    }

    /// A recreation that fails at the start: the replacement is created under the temporary
    /// name, the old one stopped, and the replacement removed.
    fn failed_recreation(&mut self, id: &str) {
        let Some(i) = self.at_id(id) else { return };
        let old = self.containers[i].clone();
        let temp = ContainerRef {
            id: self.new_id(),
            name: crate::recreate::temporary_name(&old.c.id, &old.c.name),
            ..old.c.clone()
        };
        self.create(&temp, old.has_check);
        let j = self.containers.len() - 1;
        self.event_at(TERM, i);
        if old.status == Status::Running {
            self.down(i, 143);
        }
        self.event_at(EventKind::Die, i);
        self.event_at(EventKind::Stop, i);
        self.containers[j].removed = true;
        self.event_at(EventKind::Destroy, j);
    }

    // --- What happened -------------------------------------------------------------------

    /// Every record written so far, as the audit file writes it.
    pub fn records(&self) -> Vec<crate::audit::Record> {
        records(&self.log)
    }

    /// Every action the core asked for so far.
    pub fn acts(&self) -> Vec<Act> {
        acts(&self.log).into_iter().cloned().collect()
    }
}
