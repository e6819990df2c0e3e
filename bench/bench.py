#!/usr/bin/env python3
"""healthther's benchmark, on the real Docker engine, against locally built fixture containers.

Measures, in one run:
  1. crash reaction: a target's process SIGKILLed from outside the Docker API (its host pid),
     die -> start event, for a healthther target and for a --restart=always container with no
     healthther (a fresh container each trial, so the engine's back-off starts at its floor);
  2. unhealthy reaction: health_status: unhealthy -> the restart beginning (the stop's kill
     event) and done (start event);
  3. healthther's own overhead: die event -> its "reviving" trace line, just before the start
     request, separate from the engine's start time;
  4. cost while idle: peak RSS, CPU seconds per minute and API calls per minute (counted by a
     proxy in front of the socket) while watching 10, 100 and 300 running targets;
  5. start-up: exec -> the first completed reconciliation pass ("watching");
  6. API calls per revival: the requests healthther sends, by kind, from a crash until 2 s
     after the start event, counted by the same proxy;
  and the sizes of the release binary and the runtime image.

Usage:
  python3 bench/bench.py            # the full run (about 10 minutes)
  python3 bench/bench.py --smoke    # a short run that checks it all works (CI)
  python3 bench/bench.py --binary B # measures the healthther binary B instead of building one
                                    # (another commit's, for a before and after)

Writes a Markdown report to stdout and to bench/results/latest.md, and a plot of the reaction
times to bench/results/reaction.png (bench/results/smoke/ for --smoke).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FIXTURE = "healthther-fixture:bench"
RUNTIME_IMAGE = "healthther:bench-runtime"
PREFIX = f"hthb{os.getpid()}"
SHIPPED_COPY = "COPY --from=build /out/healthther /usr/local/bin/healthther"


def run(*args, check=True, env=None, timeout=None):
    try:
        out = subprocess.run(args, check=False, capture_output=True, text=True, env=env,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.exit(f"bench: {' '.join(args)} timed out after {timeout} s")
    if check and out.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def docker_socket():
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        sys.exit("bench: needs a unix DOCKER_HOST")
    return host[len("unix://"):]


# --- building --------------------------------------------------------------------------------

STATIC_TARGET = "x86_64-unknown-linux-musl"  # as the Dockerfile and the tests build it


def cargo_static(*args):
    run("cargo", "build", "-q", "--release", "--target", STATIC_TARGET,
        "--target-dir", str(ROOT / "target" / "static"), "--manifest-path",
        str(ROOT / "Cargo.toml"), *args)
    return ROOT / "target" / "static" / STATIC_TARGET / "release"


def build_image(tag, dockerfile, files):
    with tempfile.TemporaryDirectory() as ctx:
        Path(ctx, "Dockerfile").write_text(dockerfile)
        for name, path in files:
            shutil.copy(path, Path(ctx, name))
        run("docker", "build", "-q", "-t", tag, ctx, timeout=600)


def build_fixture():
    """The fixture image (the static fixture binary FROM scratch, as the tests build it)."""
    out = cargo_static("-p", "fixture", "--bin", "fixture")
    build_image(FIXTURE, (ROOT / "fixture" / "Dockerfile").read_text(),
                [("fixture", out / "fixture")])


def build_healthther():
    """The release binary of healthther, static, as the runtime image ships it."""
    return cargo_static("--bin", "healthther") / "healthther"


def build(binary=None):
    build_fixture()
    binary = Path(binary).resolve() if binary else build_healthther()
    dockerfile = (ROOT / "Dockerfile").read_text()
    stage = dockerfile[dockerfile.index("\nFROM scratch AS runtime"):]
    stage = stage.replace(SHIPPED_COPY, "COPY healthther /usr/local/bin/healthther")
    build_image(RUNTIME_IMAGE, stage, [("healthther", binary)])
    return binary


# --- the engine's events ---------------------------------------------------------------------

class Events:
    """Every container event, with the engine's own nanosecond timestamps. `filters` are more
    `docker events --filter` values; `on_event(id, action, time_ns)`, if given, is called from
    the reader thread for each event as it arrives."""

    def __init__(self, filters=(), on_event=None):
        args = ["docker", "events", "--format", "{{json .}}", "--filter", "type=container"]
        for f in filters:
            args += ["--filter", f]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.on_event = on_event
        self.items = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            item = (e.get("id", ""), e.get("Action", ""), int(e.get("timeNano", 0)))
            with self.cond:
                self.items.append(item)
                self.cond.notify_all()
            if self.on_event:
                self.on_event(*item)

    def wait(self, cid, action, after_ns, timeout=60):
        """The time of the first `action` (a prefix) of `cid` after `after_ns`."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for (i, a, t) in self.items:
                    if i == cid and a.startswith(action) and t >= after_ns:
                        return t
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError(f"no {action} event for {cid[:12]}")
                self.cond.wait(left)

    def close(self):
        self.proc.kill()
        self.proc.wait()


# --- a counting proxy ------------------------------------------------------------------------

class CountingProxy:
    """A unix-socket proxy in front of the engine that counts requests (one per connection:
    healthther keeps none idle), and keeps each request's time and kind (see `kind`)."""

    def __init__(self, path):
        self.path = path
        self.count = 0
        self.requests = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.count += 1
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(docker_socket())
            threading.Thread(target=self._pipe, args=(client, upstream, self._requests()),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _requests(self):
        """A reader of the client's bytes that notes each request line as it comes: headers,
        then a Content-Length body (a chunked body ends the reading; healthther sends none
        on the calls counted here)."""
        buf, skip = b"", 0

        def read(data):
            nonlocal buf, skip
            if skip < 0:
                return
            buf += data
            while buf:
                if skip:
                    n = min(skip, len(buf))
                    buf, skip = buf[n:], skip - n
                    continue
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head, buf = buf[:end].decode("latin-1").split("\r\n"), buf[end + 4:]
                parts = head[0].split(" ")
                if len(parts) >= 2:
                    with self.lock:
                        self.requests.append((time.time_ns(), kind(parts[0], parts[1])))
                for h in head[1:]:
                    name, _, value = h.partition(":")
                    if name.strip().lower() == "content-length" and value.strip().isdigit():
                        skip = int(value)
                    if name.strip().lower() == "transfer-encoding":
                        buf, skip = b"", -1
                        return
        return read

    def since(self, t_ns, until_ns):
        """The requests sent from `t_ns` until `until_ns`, counted by kind."""
        counts = {}
        with self.lock:
            for (t, k) in self.requests:
                if t_ns <= t < until_ns:
                    counts[k] = counts.get(k, 0) + 1
        return counts

    @staticmethod
    def _pipe(a, b, note=None):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if note:
                    note(data)
                b.sendall(data)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def kind(method, path):
    """What an engine API request is: list, inspect, start, stop, events or other."""
    path = re.sub(r"^/v[0-9.]+", "", path.split("?", 1)[0])
    if method == "GET" and path == "/containers/json":
        return "list"
    if method == "GET" and re.fullmatch(r"/containers/[^/]+/json", path):
        return "inspect"
    if method == "POST" and re.fullmatch(r"/containers/[^/]+/(start|stop|restart)", path):
        return path.rsplit("/", 1)[1]
    if path == "/events":
        return "events"
    return "other"


# --- healthther ------------------------------------------------------------------------------

def stamp_ns(text):
    """A tracing timestamp (RFC 3339, UTC, microseconds) in ns since the epoch."""
    stamp = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(stamp.timestamp() * 1e6) * 1000


class Healthther:
    def __init__(self, binary, targets, docker_host=None, extra=None):
        self.dir = tempfile.mkdtemp(prefix="hthb")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("HEALTH_") and k not in ("MODE", "RUST_LOG")}
        env.update(HEALTH_TARGETS=",".join(targets), MODE="auto", **(extra or {}))
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        self.log = open(Path(self.dir, "out.log"), "w+")
        self.started = time.time()
        self.proc = subprocess.Popen([str(binary)], cwd=self.dir, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self):
        return Path(self.dir, "out.log").read_text()

    def wait_for(self, needle, timeout=60):
        deadline = time.time() + timeout
        while needle not in self.output():
            if time.time() > deadline or self.proc.poll() is not None:
                raise TimeoutError(f"healthther did not say {needle!r}:\n{self.output()}")
            time.sleep(0.005)
        return time.time()

    def reviving_times(self):
        """container name -> the time of its first "reviving" line, in ns."""
        return self._first(r"INFO reviving ")

    def inspect_micros(self, name, after_ns):
        """How long the first inspect of `name` that ended after `after_ns` took, in us (needs
        RUST_LOG=debug)."""
        for line in self.output().splitlines():
            m = re.match(r"(\S+Z)\s+DEBUG inspected container=(\S+) took_us=(\d+)", line)
            if m and m.group(2) == name and stamp_ns(m.group(1)) >= after_ns:
                return int(m.group(3))
        return 0

    def _first(self, pattern):
        times = {}
        for line in self.output().splitlines():
            m = re.match(r"(\S+Z)\s+" + pattern + r".*container=(\S+)", line)
            if m and m.group(2) not in times:
                times[m.group(2)] = stamp_ns(m.group(1))
        return times

    def cpu_seconds(self):
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_kib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- containers ------------------------------------------------------------------------------

def engine_post(path, timeout=30):
    """POST `path` to the engine straight over its socket, as a bare client does (no CLI in
    between); returns the HTTP status line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(docker_socket())
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: docker\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
        return sock.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")


def start(name, *options, command=()):
    return run("docker", "run", "-d", "--name", name, *options, FIXTURE, *command)


def remove(*names):
    if names:
        run("docker", "rm", "-f", *names, check=False)


def start_many(names, *options):
    """`docker run -d` for each of `names`, a few at a time (the engine is the slow part)."""
    for i in range(0, len(names), 8):
        procs = [subprocess.Popen(["docker", "run", "-d", "--name", n, "--no-healthcheck",
                                   *options, FIXTURE], stdout=subprocess.DEVNULL)
                 for n in names[i:i + 8]]
        for p in procs:
            p.wait()


def remove_many(names):
    for i in range(0, len(names), 50):
        remove(*names[i:i + 50])


def host_pid(cid):
    return int(run("docker", "inspect", "-f", "{{.State.Pid}}", cid))


def wait_until(what, cond, timeout=60):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def health(cid):
    return run("docker", "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
               cid, check=False)


def percentile(values, p):
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(values):
    return {"n": len(values), "median": statistics.median(values),
            "p90": percentile(values, 90), "p99": percentile(values, 99), "max": max(values)}


# --- the measurements ------------------------------------------------------------------------

def crash_reaction(binary, events, trials):
    """die -> start after a SIGKILL of the host pid: healthther's and the engine's."""
    names = [f"{PREFIX}-crash{i}" for i in range(trials)]
    ours, overhead, waited, own, engines = [], [], [], [], []
    hh = Healthther(binary, names, extra={"RUST_LOG": "healthther=debug"})
    try:
        hh.wait_for("watching")
        for name in names:
            cid = start(name)
            wait_until("it to run", lambda: host_pid(cid) > 0)
            time.sleep(0.3)  # healthther has seen it created and started
            t0 = time.time_ns()
            os.kill(host_pid(cid), signal.SIGKILL)
            die = events.wait(cid, "die", t0)
            started = events.wait(cid, "start", die)
            ours.append((started - die) / 1e6)
            wait_until("its reviving line", lambda: name in hh.reviving_times())
            total = (hh.reviving_times()[name] - die) / 1e6
            engine_ms = hh.inspect_micros(name, die) / 1000
            overhead.append(total)
            waited.append(engine_ms)
            own.append(max(0.0, total - engine_ms))
            remove(name)
    finally:
        hh.stop()
        remove(*names)
    for i in range(trials):
        name = f"{PREFIX}-engine{i}"
        cid = start(name, "--restart=always")
        try:
            wait_until("it to run", lambda: host_pid(cid) > 0)
            time.sleep(0.3)
            t0 = time.time_ns()
            os.kill(host_pid(cid), signal.SIGKILL)
            die = events.wait(cid, "die", t0)
            started = events.wait(cid, "start", die)
            engines.append((started - die) / 1e6)
        finally:
            remove(name)
    return ours, overhead, waited, own, engines


CALL_KINDS = ("inspect", "start", "list", "other")


def revival_calls(binary, events, trials, options=()):
    """The API requests healthther sends for one crash -> revival, by kind: from the SIGKILL
    until 2 s after the start event (our own events may lag that long), counted by a proxy.
    Passes are set an hour apart, so that none falls into a trial's window: what is counted
    is the revival's own cost. `options` go to `docker run` (`--no-healthcheck`: the
    fixture's health check, every second, adds the look its first healthy status asks for)."""
    names = [f"{PREFIX}-calls{i}" for i in range(trials)]
    sock_dir = tempfile.mkdtemp(prefix="hthp")
    proxy = CountingProxy(os.path.join(sock_dir, "docker.sock"))
    hh = Healthther(binary, names, docker_host=f"unix://{proxy.path}",
                    extra={"HEALTH_POLL_INTERVAL": "1h"})
    counts = []
    try:
        hh.wait_for("watching")
        for name in names:
            cid = start(name, *options)
            wait_until("it to run", lambda: host_pid(cid) > 0)
            time.sleep(0.3)  # healthther has seen it created and started
            t0 = time.time_ns()
            os.kill(host_pid(cid), signal.SIGKILL)
            die = events.wait(cid, "die", t0)
            events.wait(cid, "start", die)
            time.sleep(2)
            counts.append(proxy.since(t0, time.time_ns()))
            remove(name)
    finally:
        hh.stop()
        proxy.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
        remove(*names)
    return counts


def calls_row(counts):
    """A table row: each kind's median count per revival, and the total's median and max."""
    totals = [sum(c.values()) for c in counts]
    cells = [statistics.median([c.get(k, 0) for c in counts]) for k in CALL_KINDS]
    return (f"| {len(counts)} | " + " | ".join(f"{v:g}" for v in cells) +
            f" | {statistics.median(totals):g} | {max(totals)} |")


def bare_client_reaction(events, trials):
    """die -> start when a bare client POSTs start the moment the die event reaches it: the
    floor for any client of the engine, healthther included."""
    floor = []
    for i in range(trials):
        name = f"{PREFIX}-bare{i}"
        cid = start(name)
        try:
            wait_until("it to run", lambda: host_pid(cid) > 0)
            time.sleep(0.3)
            t0 = time.time_ns()

            def start_on_die():
                events.wait(cid, "die", t0)
                engine_post(f"/containers/{cid}/start")

            starter = threading.Thread(target=start_on_die)
            starter.start()
            os.kill(host_pid(cid), signal.SIGKILL)
            die = events.wait(cid, "die", t0)
            floor.append((events.wait(cid, "start", die) - die) / 1e6)
            starter.join()
        finally:
            remove(name)
    return floor


def unhealthy_reaction(binary, events, trials):
    """health_status: unhealthy -> the restart beginning (kill) and done (start)."""
    names = [f"{PREFIX}-sick{i}" for i in range(trials)]
    begins, dones = [], []
    hh = Healthther(binary, names)
    try:
        hh.wait_for("watching")
        for name in names:
            cid = start(name, "--health-interval=500ms", "--health-retries=1")
            wait_until("it to be healthy", lambda: health(cid) == "healthy")
            t0 = time.time_ns()
            run("docker", "exec", cid, "/fixture", "sick")
            unhealthy = events.wait(cid, "health_status: unhealthy", t0)
            begins.append((events.wait(cid, "kill", unhealthy) - unhealthy) / 1e6)
            dones.append((events.wait(cid, "start", unhealthy) - unhealthy) / 1e6)
            remove(name)
    finally:
        hh.stop()
        remove(*names)
    return begins, dones


def idle_cost(binary, count, seconds):
    """Peak RSS, CPU seconds and API calls per minute while `count` running targets are fine."""
    names = [f"{PREFIX}-idle{i}" for i in range(count)]
    # Start them a few at a time: the engine is the slow part.
    for i in range(0, count, 8):
        batch = [subprocess.Popen(["docker", "run", "-d", "--name", n, "--no-healthcheck",
                                   FIXTURE], stdout=subprocess.DEVNULL)
                 for n in names[i:i + 8]]
        for p in batch:
            p.wait()
    sock_dir = tempfile.mkdtemp(prefix="hthp")
    proxy = CountingProxy(os.path.join(sock_dir, "docker.sock"))
    hh = Healthther(binary, names, docker_host=f"unix://{proxy.path}")
    try:
        hh.wait_for("watching")
        time.sleep(2)
        cpu0, calls0, t0 = hh.cpu_seconds(), proxy.count, time.time()
        time.sleep(seconds)
        cpu1, calls1, t1 = hh.cpu_seconds(), proxy.count, time.time()
        minutes = (t1 - t0) / 60
        return {"targets": count, "rss_kib": hh.peak_rss_kib(),
                "cpu_s_per_min": (cpu1 - cpu0) / minutes,
                "calls_per_min": (calls1 - calls0) / minutes}
    finally:
        hh.stop()
        proxy.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
        for i in range(0, count, 50):
            remove(*names[i:i + 50])


def startup(binary, runs):
    """exec -> "watching" (the first reconciliation pass done), in ms."""
    names = [f"{PREFIX}-up{i}" for i in range(10)]
    for n in names:
        start(n, "--no-healthcheck")
    times = []
    try:
        for _ in range(runs):
            hh = Healthther(binary, names)
            try:
                times.append((hh.wait_for("watching") - hh.started) * 1000)
            finally:
                hh.stop()
    finally:
        remove(*names)
    return times


# --- the report ------------------------------------------------------------------------------

def fmt_row(label, s):
    return (f"| {label} | {s['n']} | {s['median']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | "
            f"{s['max']:.1f} |")


def plot(ours, engines, begins, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(no plot: matplotlib is not installed; `pip install matplotlib`)"
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.boxplot([ours, engines], showfliers=True)
    a.set_xticks([1, 2], ["healthther", "engine\n--restart=always"])
    a.set_ylabel("die -> start (ms)")
    a.set_title("Crash reaction (SIGKILL of the host pid)")
    b.hist(begins, bins=15, color="tab:green")
    b.set_xlabel("unhealthy -> restart begins (ms)")
    b.set_ylabel("trials")
    b.set_title("Unhealthy reaction (healthther)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return f"![reaction times]({path.relative_to(ROOT / 'bench').as_posix()})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a short run for CI")
    parser.add_argument("--binary", help="a healthther binary to measure instead of building "
                        "this tree's (another commit's, for a before and after)")
    args = parser.parse_args()
    trials = 3 if args.smoke else 20
    sizes = [10] if args.smoke else [10, 100, 300]
    idle_seconds = 5 if args.smoke else 60
    startup_runs = 3 if args.smoke else 10

    binary = build(args.binary)
    # A smoke run must not overwrite the results of a full one.
    results = RESULTS / "smoke" if args.smoke else RESULTS
    results.mkdir(parents=True, exist_ok=True)
    events = Events()
    try:
        ours, overhead, waited, own, engines = crash_reaction(binary, events, trials)
        calls = revival_calls(binary, events, 3 if args.smoke else 10, ["--no-healthcheck"])
        calls_checked = revival_calls(binary, events, 3 if args.smoke else 10)
        floor = bare_client_reaction(events, trials)
        begins, dones = unhealthy_reaction(binary, events, trials)
        idle = [idle_cost(binary, n, idle_seconds) for n in sizes]
        up = startup(binary, startup_runs)
    finally:
        events.close()
    image = int(run("docker", "image", "inspect", "-f", "{{.Size}}", RUNTIME_IMAGE))

    so, se = summary(ours), summary(engines)
    lines = [
        f"Run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"`python3 bench/bench.py{' --smoke' if args.smoke else ''}"
        f"{' --binary ' + args.binary if args.binary else ''}`; "
        f"{os.cpu_count()} cores, Docker Engine {run('docker', 'version', '-f', '{{.Server.Version}}')}.",
        "",
        "| measure (ms) | n | median | p90 | p99 | max |",
        "|---|---|---|---|---|---|",
        fmt_row("crash: die -> start, healthther", so),
        fmt_row("crash: die -> start, engine --restart=always", se),
        fmt_row("crash: die -> start, a bare client starting on the die event", summary(floor)),
        fmt_row("healthther overhead: die -> its start request", summary(overhead)),
        fmt_row("- of which the engine answering the inspect", summary(waited)),
        fmt_row("- of which healthther itself", summary(own)),
        fmt_row("unhealthy -> restart begins (kill)", summary(begins)),
        fmt_row("unhealthy -> restarted (start)", summary(dones)),
        fmt_row("start-up: exec -> first pass done", summary(up)),
        "",
        f"Crash reaction ratio, healthther / engine (medians): "
        f"{so['median'] / se['median']:.2f}",
        "",
        "| targets watched (idle) | peak RSS (MiB) | CPU s per minute | API calls per minute |",
        "|---|---|---|---|",
    ]
    for r in idle:
        lines.append(f"| {r['targets']} | {r['rss_kib'] / 1024:.1f} | {r['cpu_s_per_min']:.4f} | "
                     f"{r['calls_per_min']:.1f} |")
    lines += [
        "",
        "| API calls per crash -> revival (median) | n | inspect | start | list | other | total "
        "| total max |",
        "|---|---|---|---|---|---|---|---|",
        "| healthther, target without a health check " + calls_row(calls),
        "| healthther, target with a health check (1 s) " + calls_row(calls_checked),
        "",
        f"Release binary (static, stripped): {binary.stat().st_size / 1e6:.2f} MB; "
        f"runtime image: {image / 1e6:.2f} MB.",
        "",
        plot(ours, engines, begins, results / "reaction.png"),
    ]
    report = "\n".join(lines)
    (results / "latest.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
