#!/usr/bin/env python3
"""healthther's chaos benchmark: random faults on health-checked nodes, availability and recovery.

N nodes (the fixture image, whose HEALTHCHECK runs every second and fails once the node is marked
sick) are hit by a seeded random mix of faults, one every --interval seconds for --duration
seconds, each kind equally often, in random order, on random nodes:

  crash   SIGKILL of the container's main process from the host (`docker inspect` for its pid):
          a crash, which the engine's restart policy undoes;
  kill    `docker kill` (an API kill: the engine's restart policy leaves it down);
  stop    `docker stop -t 1` (an API stop; healthther's HEALTH_ON_STOP=revive waits 2 s on
          purpose before it revives one);
  hung    `docker exec NODE /fixture sick`: the app hangs, its health check fails until the
          container is restarted.

under each of three restarters, each on a fresh set of nodes and the same fault sequence:

  healthther  the release binary (or --binary), MODE=auto, all nodes as HEALTH_TARGETS, every
              other setting at its default;
  engine      the engine's own `--restart=always`, no other restarter: it undoes crashes only
              (an API kill or stop is final for it, and it never acts on health);
  bare        a bare client on the engine's event stream that POSTs start on every `die` of a
              node and restart (t=10) on every `health_status: unhealthy`: the floor for the
              API faults (no client can revive sooner than the die event reaches it).

Every time is the engine's own event timestamp (timeNano), from an event stream opened before
the nodes are created. (`docker events --since/--until` afterwards is no substitute: the engine
replays at most its last 256 events, of all containers, so on a busy engine the start of a run
is gone by its end.)

  down      a node goes down at its `die` event, or at `health_status: unhealthy` while running;
            it is up again at its next `start` event (health `starting` counts as up: it runs
            and is not unhealthy).
  recovery  per fault: from the node's first down event after the fault was injected (`die`
            for crash, kill and stop; `health_status: unhealthy` for hung, so the health check's
            own detection time, up to about 1 s, is not counted) to its next `start` event (for
            hung that is the restart's start). A fault whose node is still down at the end of
            the run plus --settle seconds is "not recovered" and counts as infinitely slow in
            the percentiles ("never").
  availability  node-seconds up / (nodes x duration), over [first fault - interval/2,
            that + duration], the window the faults are spread over.

The fault sequence (time, node, kind) comes from --seed alone. A fault whose node is down, or
has not come back from its previous fault, when its time comes is skipped and counted (under the
engine, API faults and hangs leave nodes down for good, so it sees fewer faults; and which faults
are skipped depends on how fast the restarter undid the earlier ones). A fault that was sent but
whose down event never came before the node's next fault is counted as "no effect". Percentiles
are nearest-rank over the faults of one kind (with n about 7 per kind in the default run, p99
is the maximum).

Usage:
  python3 bench/chaos.py                 # 6 nodes, one fault every 3 s for 90 s (about 5 min)
  python3 bench/chaos.py --smoke         # 2 nodes, a fault every 2 s for 10 s (under a minute)
  python3 bench/chaos.py --only healthther --binary path/to/healthther --duration 30
  (also --nodes, --interval or --rate, --seed, --kinds crash,kill,stop,hung, --settle)

Writes a Markdown report to stdout and bench/results/chaos.md, the raw per-fault records to
bench/results/chaos.json, healthther's own log to bench/results/chaos-healthther.log and a plot
to bench/results/chaos.png (bench/results/smoke/ for --smoke). All containers it creates carry the label hhchaos.run=<pid>-<random>; only those are
ever touched, and they are removed at the end, on failure and on Ctrl-C too.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing bench.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (bench/bench.py: building, the event stream, healthther, helpers)

KINDS = ("crash", "kill", "stop", "hung")
KIND_LABEL = {"crash": "crash (host kill -9)", "kill": "API kill (docker kill)",
              "stop": "API stop (docker stop -t 1)", "hung": "hung (health check fails)"}
RESTARTERS = ("healthther", "engine", "bare")
RESTARTER_LABEL = {
    "healthther": "healthther (MODE=auto, defaults)",
    "engine": "engine --restart=always (undoes crashes only)",
    "bare": "bare client (start on die, restart on unhealthy)",
}
RUN_TOKEN = f"{os.getpid()}-{random.SystemRandom().randrange(16 ** 6):06x}"
LABEL = f"hhchaos.run={RUN_TOKEN}"
DOCKER_TIMEOUT = 30  # seconds, for every docker call


def docker(*args, timeout=DOCKER_TIMEOUT):
    """(return code, stdout, stderr) of a docker command; a timeout is return code -1."""
    try:
        out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return -1, "", f"timed out after {timeout} s"
    return out.returncode, out.stdout.strip(), out.stderr.strip()


def log(msg):
    print(f"chaos: {msg}", file=sys.stderr, flush=True)


# --- the fault sequence ----------------------------------------------------------------------

def schedule(seed, nodes, interval, duration, kinds):
    """[(offset s, node index, kind)], from the seed alone: the same for every restarter. Each
    kind comes equally often (to within one), in a random order, so that a seed cannot make
    the mix lopsided; each fault hits a node chosen at random."""
    rng = random.Random(seed)
    count = max(1, int(duration / interval))
    order = [kinds[k % len(kinds)] for k in range(count)]
    rng.shuffle(order)
    return [((k + 0.5) * interval, rng.randrange(nodes), kind) for k, kind in enumerate(order)]


# --- live state of the nodes, from the event stream ------------------------------------------

class Nodes:
    """A fresh set of fixture nodes and their live state, followed on the engine's events."""

    def __init__(self, restarter, count):
        self.restarter = restarter
        self.names = [f"hhchaos-{os.getpid()}-{restarter}-{i}" for i in range(count)]
        self.ids = {}            # id -> name
        self.lock = threading.Lock()
        self.running = {}        # id -> bool
        self.unhealthy = {}      # id -> bool
        self.pending = {}        # id -> the fault in flight on it (until it is up again after)
        self.seen = set()        # ids the stream has shown an event of
        self.hooks = []          # called with (id, action, time_ns) for our nodes' events
        self.events = bench.Events(filters=[f"label={LABEL}"], on_event=self._on_event)

    def _on_event(self, cid, action, t):
        with self.lock:
            if cid not in self.ids:
                return
            self.seen.add(cid)
            if action == "start":
                self.running[cid] = True
                self.unhealthy[cid] = False
            elif action == "die":
                self.running[cid] = False
            elif action == "health_status: unhealthy":
                self.unhealthy[cid] = True
            elif action == "health_status: healthy":
                self.unhealthy[cid] = False
            fault = self.pending.get(cid)
            if fault is not None:
                if action == fault.down_action and fault.down_seen is None and t >= fault.injected:
                    fault.down_seen = t
                elif action == "start" and fault.down_seen is not None:
                    del self.pending[cid]
        for hook in self.hooks:
            hook(cid, action, t)

    def create(self, options):
        for name in self.names:
            rc, out, err = docker("run", "-d", "--name", name, "--label", LABEL, *options,
                                  bench.FIXTURE)
            if rc != 0:
                raise RuntimeError(f"cannot start {name}: {err}")
            with self.lock:
                self.ids[out] = name
                self.running[out] = True
                self.unhealthy[out] = False

    def up(self, cid):
        with self.lock:
            return self.running.get(cid) and not self.unhealthy.get(cid)

    def all_up(self):
        with self.lock:
            return not self.pending and all(
                self.running.get(c) and not self.unhealthy.get(c) for c in self.ids)

    def wait_ready(self, timeout=60):
        """Every node healthy (asked of the engine) and seen on the event stream."""
        deadline = time.time() + timeout
        for cid, name in list(self.ids.items()):
            while True:
                rc, out, _ = docker("inspect", "-f", "{{.State.Running}} "
                                    "{{if .State.Health}}{{.State.Health.Status}}{{end}}", cid)
                if rc == 0 and out == "true healthy":
                    break
                if time.time() > deadline:
                    raise TimeoutError(f"{name} did not become healthy: {out!r}")
                time.sleep(0.1)
        # Its first health_status: healthy event shows the stream was open in time.
        while True:
            with self.lock:
                if self.seen >= set(self.ids):
                    return
            if time.time() > deadline:
                raise TimeoutError("the event stream shows no events of the nodes")
            time.sleep(0.05)

    def close(self):
        self.events.close()


class Fault:
    def __init__(self, offset, node, kind):
        self.offset, self.node, self.kind = offset, node, kind
        self.name = self.cid = None
        self.injected = None      # ns, just before the fault was sent
        self.outcome = "scheduled"  # injected | skipped | failed
        self.error = ""
        self.down_seen = None
        self.down_action = "health_status: unhealthy" if kind == "hung" else "die"

    def record(self):
        return {k: getattr(self, k) for k in
                ("offset", "node", "kind", "name", "injected", "outcome", "error")}


def cgroup_of(pid):
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


def inject(nodes, fault):
    """Send one fault (in a thread of its own, so a slow docker call never delays the next)."""
    cid = fault.cid
    with nodes.lock:
        busy = cid in nodes.pending
        up = nodes.running.get(cid) and not nodes.unhealthy.get(cid)
        if not busy and up:
            nodes.pending[cid] = fault
    if busy or not up:
        fault.outcome = "skipped"
        fault.error = "not back from its previous fault" if busy else "down"
        return
    fault.outcome = "injected"
    if fault.kind == "crash":
        rc, out, err = docker("inspect", "-f", "{{.State.Pid}}", cid, timeout=10)
        pid = int(out) if rc == 0 and out.isdigit() else 0
        if pid <= 0:
            rc, err = 1, f"no pid ({out or err})"
        elif cid not in cgroup_of(pid):  # never signal a process that is not the node's
            rc, err = 1, f"pid {pid} is not in the node's cgroup"
        else:
            fault.injected = time.time_ns()
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError as e:
                rc, err = 1, str(e)
    else:
        command = {"kill": ("kill", cid), "stop": ("stop", "-t", "1", cid),
                   "hung": ("exec", cid, "/fixture", "sick")}[fault.kind]
        fault.injected = time.time_ns()
        rc, _, err = docker(*command, timeout=20)
    if rc != 0:
        fault.outcome, fault.error = "failed", err
        with nodes.lock:
            if nodes.pending.get(cid) is fault:
                del nodes.pending[cid]


# --- the restarters --------------------------------------------------------------------------

class BareClient:
    """Starts a node on every die event, restarts it on every health_status: unhealthy; each
    request straight to the engine's socket, each in a thread of its own."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.restarting = set()
        self.lock = threading.Lock()
        self.errors = []
        nodes.hooks.append(self.on_event)

    def on_event(self, cid, action, _t):
        if action == "die":
            with self.lock:
                if cid in self.restarting:  # the die of our own restart
                    return
            threading.Thread(target=self._post, args=(cid, "start"), daemon=True).start()
        elif action == "health_status: unhealthy":
            with self.lock:
                self.restarting.add(cid)
            threading.Thread(target=self._post, args=(cid, "restart?t=10"), daemon=True).start()

    def _post(self, cid, what):
        try:
            status = bench.engine_post(f"/containers/{cid}/{what}", timeout=30)
            if not status.split()[1:2] or status.split()[1][0] not in "23":
                self.errors.append(f"{what}: {status}")
        except OSError as e:
            self.errors.append(f"{what}: {e}")
        finally:
            if what.startswith("restart"):
                with self.lock:
                    self.restarting.discard(cid)

    def stop(self):
        self.nodes.hooks.clear()


# --- one run ---------------------------------------------------------------------------------

def run_restarter(restarter, binary, faults_plan, args):
    nodes = Nodes(restarter, args.nodes)
    watcher = None
    notes = {}
    try:
        nodes.create(["--restart=always"] if restarter == "engine" else [])
        nodes.wait_ready()
        if restarter == "healthther":
            watcher = bench.Healthther(binary, nodes.names)
            watcher.wait_for("watching", timeout=60)
        elif restarter == "bare":
            watcher = BareClient(nodes)
        names = list(nodes.ids.items())
        faults = []
        for offset, node, kind in faults_plan:
            f = Fault(offset, node, kind)
            f.cid, f.name = names[node]
            faults.append(f)

        log(f"{restarter}: {len(faults)} faults over {args.duration:g} s on {args.nodes} nodes")
        begin = time.time_ns()
        threads = []
        for f in faults:
            delay = begin / 1e9 + f.offset - time.time()
            if delay > 0:
                time.sleep(delay)
            t = threading.Thread(target=inject, args=(nodes, f), daemon=True)
            t.start()
            threads.append(t)
        end = begin + int(args.duration * 1e9)
        time.sleep(max(0.0, end / 1e9 - time.time()))
        for t in threads:
            t.join(30)
        # Let the last faults be undone, up to --settle seconds (no more: the engine never
        # undoes an API kill).
        deadline = time.time() + args.settle
        while time.time() < deadline and not nodes.all_up():
            time.sleep(0.1)
        time.sleep(0.5)  # the last events reach the stream
        horizon = time.time_ns()

        if restarter == "healthther":
            out = watcher.output()
            notes["log"] = out
            notes["backoff_lines"] = out.count("backing off before the next revival")
            notes["quarantined"] = out.count("QUARANTINED")
            notes["healthther_exited"] = watcher.proc.poll()
        elif restarter == "bare":
            notes["errors"] = watcher.errors[:5]
        with nodes.events.cond:
            items = [e for e in nodes.events.items if e[0] in nodes.ids]
        return analyse(restarter, nodes, faults, items, begin, end, horizon, notes)
    finally:
        if watcher is not None:
            watcher.stop()
        remove_ours(list(nodes.ids))
        nodes.close()


def remove_ours(ids=()):
    """Remove the containers this run created: those with its label, and `ids` in any case."""
    rc, out, _ = docker("ps", "-aq", "--no-trunc", "--filter", f"label={LABEL}")
    found = set(out.split()) if rc == 0 else set()
    doomed = sorted(found | set(ids))
    for i in range(0, len(doomed), 20):
        docker("rm", "-f", *doomed[i:i + 20], timeout=60)


# --- analysis --------------------------------------------------------------------------------

def timeline(items, ids, begin, end):
    """id -> [(from ns, to ns)] intervals when the node was down, clipped to [begin, end]."""
    down = {cid: [] for cid in ids}
    for cid in ids:
        running, unhealthy, since = True, False, None
        for (i, action, t) in sorted((e for e in items if e[0] == cid), key=lambda e: e[2]):
            was_up = running and not unhealthy
            if action == "start":
                running, unhealthy = True, False
            elif action == "die":
                running = False
            elif action == "health_status: unhealthy":
                unhealthy = True
            elif action == "health_status: healthy":
                unhealthy = False
            else:
                continue
            now_up = running and not unhealthy
            if was_up and not now_up:
                since = t
            elif now_up and not was_up and since is not None:
                down[cid].append((since, t))
                since = None
        if since is not None:
            down[cid].append((since, None))
    clipped = {}
    for cid, spans in down.items():
        clipped[cid] = [(max(a, begin), min(b if b is not None else end, end))
                        for (a, b) in spans if a < end and (b is None or b > begin)]
    return clipped


def analyse(restarter, nodes, faults, items, begin, end, horizon, notes):
    ids = list(nodes.ids)
    # The chaos window: faults are spread over [begin, end].
    down = timeline(items, ids, begin, end)
    total = len(ids) * (end - begin)
    down_ns = sum(b - a for spans in down.values() for (a, b) in spans)
    by_node = {}
    for f in faults:
        by_node.setdefault(f.cid, []).append(f)
    records = []
    for f in faults:
        rec = f.record()
        rec["down"] = rec["up"] = rec["recovery_ms"] = rec["detect_ms"] = None
        if f.outcome == "injected":
            later = [g.injected for g in by_node[f.cid]
                     if g.injected is not None and g.injected > f.injected]
            until = min(later) if later else horizon
            evs = sorted((e for e in items if e[0] == f.cid), key=lambda e: e[2])
            d = next((t for (_, a, t) in evs if a == f.down_action and f.injected <= t < until),
                     None)
            if d is None:
                rec["outcome"] = "no effect"
            else:
                rec["down"] = d
                rec["detect_ms"] = (d - f.injected) / 1e6
                u = next((t for (_, a, t) in evs if a == "start" and t > d), None)
                if u is not None:
                    rec["up"] = u
                    rec["recovery_ms"] = (u - d) / 1e6
                else:
                    rec["outcome"] = "not recovered"
        records.append(rec)
    # Plot data: how many nodes were up, over the window.
    steps = []
    for cid, spans in down.items():
        for (a, b) in spans:
            steps += [(a, -1)] + ([(b, +1)] if b < end else [])
    steps.sort()
    series, upn = [(0.0, len(ids))], len(ids)
    for (t, delta) in steps:
        series.append(((t - begin) / 1e9, upn))
        upn += delta
        series.append(((t - begin) / 1e9, upn))
    series.append(((end - begin) / 1e9, upn))
    return {"restarter": restarter, "nodes": len(ids), "begin": begin, "end": end,
            "horizon": horizon, "availability": 1 - down_ns / total if total else 0.0,
            "faults": records, "notes": notes, "up_series": series}


# --- the report ------------------------------------------------------------------------------

def pct(values, p):
    """bench.py's percentile, with None (not recovered) as infinitely slow: None if the
    percentile falls on one."""
    inf = float("inf")
    v = bench.percentile([inf if v is None else v for v in values], p)
    return None if v == inf else v


def ms(v):
    return "never" if v is None else f"{v:.0f}"


def report(results, args, plan, binary):
    lines = [
        f"Run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"`{' '.join(['python3', 'bench/chaos.py', *args.argv])}`; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end, Docker Engine "
        f"{docker('version', '-f', '{{.Server.Version}}')[1]}.",
        f"{args.nodes} nodes, one fault every {args.interval:g} s for {args.duration:g} s "
        f"({len(plan)} faults: " + ", ".join(
            f"{sum(1 for p in plan if p[2] == k)} {k}" for k in args.kinds) +
        f"), seed {args.seed}; recovery = down event (die, or health_status: unhealthy for hung) "
        f"-> next start event; not recovered within {args.settle:g} s after the run = never.",
    ]
    if binary:
        lines.append(f"healthther binary: `{binary}`.")
    lines += [
        "",
        "| restarter | availability | faults injected | skipped (node still down) | no effect "
        "| not recovered |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        fs = r["faults"]
        count = lambda o: sum(1 for f in fs if f["outcome"] == o)  # noqa: E731
        injected = sum(1 for f in fs if f["outcome"] in ("injected", "not recovered",
                                                         "no effect"))
        failed = count("failed")
        lines.append(
            f"| {RESTARTER_LABEL[r['restarter']]} | {100 * r['availability']:.1f}% | {injected}"
            f"{f' (+{failed} failed to inject)' if failed else ''} | {count('skipped')} | "
            f"{count('no effect')} | {count('not recovered')} |")
    lines += [
        "",
        "| recovery (ms) | restarter | faults | recovered | p50 | p99 | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in args.kinds:
        for r in results:
            vals = [f["recovery_ms"] for f in r["faults"]
                    if f["kind"] == kind and f["outcome"] in ("injected", "not recovered")]
            if not vals:
                lines.append(f"| {KIND_LABEL[kind]} | {r['restarter']} | 0 | 0 | - | - | - |")
                continue
            rec = sum(1 for v in vals if v is not None)
            lines.append(f"| {KIND_LABEL[kind]} | {r['restarter']} | {len(vals)} | {rec} | "
                         f"{ms(pct(vals, 50))} | {ms(pct(vals, 99))} | {ms(pct(vals, 100))} |")
    notes = []
    for r in results:
        n = r["notes"]
        if r["restarter"] == "healthther":
            notes.append(f"healthther: {n.get('backoff_lines', 0)} \"backing off\" lines, "
                         f"{n.get('quarantined', 0)} quarantined"
                         + (f"; it EXITED with {n['healthther_exited']}"
                            if n.get("healthther_exited") is not None else "") + ".")
        if r["restarter"] == "bare" and n.get("errors"):
            notes.append(f"bare client: requests refused: {'; '.join(n['errors'])}.")
    by = {r["restarter"]: r for r in results}
    if "healthther" in by and "bare" in by:
        notes.append(goals(by["healthther"], by["bare"]))
    if notes:
        lines += [""] + notes
    return lines


def goals(ours, bare):
    """Issue 16's targets, as measured here."""
    def med(r, kind):
        vals = [f["recovery_ms"] for f in r["faults"]
                if f["kind"] == kind and f["outcome"] in ("injected", "not recovered")]
        return pct(vals, 50) if vals else None
    parts = []
    for kind in ("crash", "kill"):
        a, b = med(ours, kind), med(bare, kind)
        if a is not None and b:
            parts.append(f"{kind} median {a:.0f} / {b:.0f} ms = {a / b:.2f}x the bare client")
    kills = [f["recovery_ms"] for f in ours["faults"]
             if f["kind"] == "kill" and f["outcome"] in ("injected", "not recovered")]
    if kills:
        parts.append(f"worst API kill {ms(pct(kills, 100))} ms")
    parts.append(f"availability {100 * ours['availability']:.1f}%")
    return ("Issue 16's goals (medians within 1.10x of the bare client, worst API kill under "
            "1000 ms, availability at least 95%): healthther " + "; ".join(parts) + ".")


def plot(results, kinds, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(no plot: matplotlib is not installed; `pip install matplotlib`)"
    colours = {"healthther": "tab:blue", "engine": "tab:orange", "bare": "tab:green"}
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    worst = max([f["recovery_ms"] for r in results for f in r["faults"]
                 if f["recovery_ms"] is not None] + [1000])
    never = worst * 2
    width = 0.8 / max(1, len(results))
    for j, r in enumerate(results):
        xs, ys, nx, ny = [], [], [], []
        for i, kind in enumerate(kinds):
            for k, f in enumerate(f for f in r["faults"] if f["kind"] == kind):
                x = i + (j - (len(results) - 1) / 2) * width + (k % 5 - 2) * width / 12
                if f["outcome"] == "injected":
                    xs.append(x)
                    ys.append(f["recovery_ms"])
                elif f["outcome"] == "not recovered":
                    nx.append(x)
                    ny.append(never)
        a.scatter(xs, ys, s=18, color=colours[r["restarter"]], label=r["restarter"])
        if nx:
            a.scatter(nx, ny, s=30, marker="x", color=colours[r["restarter"]])
    a.axhline(never, color="grey", linewidth=0.5, linestyle=":")
    a.text(len(kinds) - 0.5, never * 0.9, "not recovered (x)", fontsize=8, color="grey",
           ha="right", va="top")
    a.set_yscale("log")
    a.set_xticks(range(len(kinds)), [KIND_LABEL[k].replace(" (", "\n(") for k in kinds],
                 fontsize=8)
    a.set_ylabel("down -> start (ms)")
    a.set_title("Recovery per fault")
    a.legend(fontsize=8, loc="upper left")
    for j, r in enumerate(results):
        xs, ys = zip(*r["up_series"])
        shift = (j - (len(results) - 1) / 2) * 0.06  # so that equal lines stay apart
        b.plot(xs, [y + shift for y in ys], color=colours[r["restarter"]], linewidth=1,
               label=f"{r['restarter']} ({100 * r['availability']:.1f}% available)")
    b.set_xlabel("time into the run (s)")
    b.set_ylabel("nodes up (running, not unhealthy)")
    b.set_ylim(-0.2, max(r["nodes"] for r in results) + 0.5)
    b.set_title("Nodes up")
    b.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"![chaos benchmark]({path.relative_to(bench.ROOT / 'bench').as_posix()})"


# --- main ------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Definitions: see the top of bench/chaos.py.")
    parser.add_argument("--nodes", type=int, default=6)
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--interval", type=float, help="seconds between faults (default 3)")
    rate.add_argument("--rate", type=float, help="faults per second (default 1/3)")
    parser.add_argument("--duration", type=float, help="seconds of faults (default 90)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"the fault kinds to mix (default {','.join(KINDS)})")
    parser.add_argument("--settle", type=float,
                        help="seconds after the run for the last faults to be undone (default 10)")
    parser.add_argument("--only", choices=RESTARTERS, action="append",
                        help="run only this restarter (may be repeated)")
    parser.add_argument("--binary", type=Path,
                        help="the healthther binary to measure (default: build the release one)")
    parser.add_argument("--smoke", action="store_true",
                        help="a short run for CI: 2 nodes, 10 s, a fault every 2 s, settle 5 s")
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    if args.smoke:
        args.nodes = 2 if args.nodes == 6 else args.nodes
        args.duration = args.duration or 10
        args.interval = args.interval or (1 / args.rate if args.rate else 2)
        args.settle = 5 if args.settle is None else args.settle
    args.interval = args.interval or (1 / args.rate if args.rate else 3.0)
    args.duration = args.duration or 90.0
    args.settle = 10.0 if args.settle is None else args.settle
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in args.kinds if k not in KINDS]
    if bad or not args.kinds:
        parser.error(f"--kinds: unknown {bad}; choose from {','.join(KINDS)}")
    if args.nodes < 1 or args.interval <= 0 or args.duration < args.interval:
        parser.error("need --nodes >= 1, --interval > 0 and --duration >= --interval")
    restarters = [r for r in RESTARTERS if not args.only or r in args.only]

    # SIGTERM and SIGHUP end the run as Ctrl-C does: through the finally clauses.
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored

    bench.build_fixture()
    binary = None
    if "healthther" in restarters:
        binary = args.binary.resolve() if args.binary else bench.build_healthther()
        if not os.access(binary, os.X_OK):
            sys.exit(f"chaos: {binary} is not an executable")
    results_dir = bench.RESULTS / "smoke" if args.smoke else bench.RESULTS
    results_dir.mkdir(parents=True, exist_ok=True)
    plan = schedule(args.seed, args.nodes, args.interval, args.duration, args.kinds)

    results = []
    started = time.time()
    try:
        for r in restarters:
            results.append(run_restarter(r, binary, plan, args))
    finally:
        remove_ours()
    log(f"done in {time.time() - started:.0f} s")

    lines = report(results, args, plan, binary if args.binary else None)
    lines += ["", plot(results, args.kinds, results_dir / "chaos.png")]
    text = "\n".join(lines)
    (results_dir / "chaos.md").write_text(text + "\n")
    for r in results:
        if "log" in r["notes"]:
            (results_dir / "chaos-healthther.log").write_text(r["notes"].pop("log"))
    (results_dir / "chaos.json").write_text(json.dumps(
        {"args": {k: v for k, v in vars(args).items() if k != "binary"},
         "binary": str(binary) if binary else None,
         "results": [{k: v for k, v in r.items() if k != "up_series"} for r in results]},
        indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("chaos: interrupted; its containers are removed")
