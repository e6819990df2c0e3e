#!/usr/bin/env python3
"""healthther's probe benchmark (issue 23), on the real Docker engine, with fixture nodes serving
HTTP (`fixture http 8080`) and no HEALTHCHECK (`--no-healthcheck`), so only the probe decides.

Measures:
  1. hang reaction: a node probed by `healthther.probe=http://:8080/healthz` is made to hang
     (`docker exec NODE /fixture http-mode hang`: it accepts and reads a request, and never
     answers); from just before that exec to the restart beginning (the stop's `kill` event)
     and done (its `start` event), engine timestamps. With the default probe settings (10s
     interval, 3 retries, 3s timeout) and with 1s/2/1s; each trial hangs at a random moment of
     the probe interval. The goal: restarted within interval x retries + timeout + 1 s.
  2. the cost of probing: healthther watching N running nodes, once with no probe and once all
     probed at the default 10 s interval (a fresh set of N nodes each, the same image and
     command); CPU seconds per minute (utime + stime from /proc/PID/stat, over --seconds after
     a warm-up of one interval and more), peak RSS (VmHWM), and the resident memory's
     anonymous part and the binary's own pages at the end (RssAnon, RssFile). The goal: at most
     0.05 CPU seconds per minute and 1 MiB more with 300 probed targets. A few nodes' own logs
     (a line per request) tell how often they were probed in the window.

Usage:
  python3 bench/probes.py               # 5 + 10 hang trials, 300 nodes, 120 s a side (~25 min)
  python3 bench/probes.py --smoke       # 2 fast hang trials, 20 nodes, 30 s a side (~3 min)
  python3 bench/probes.py --binary B    # measures the healthther binary B instead of this tree's
  (also --nodes, --seconds, --trials)

Writes a Markdown report to stdout and bench/results/probes.md (bench/results/smoke/ for
--smoke). Every container it creates is named hprb<pid>-...; they are removed at the end, on
failure and on Ctrl-C too.
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing bench.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (bench/bench.py: building, the event stream, healthther, helpers)

# hprb: healthther probe bench. Its own fixture tag: a run of bench.py from another tree may
# rebuild the shared one at the same time, with a fixture that may not serve HTTP.
bench.FIXTURE = "hprb-fixture:bench"
PREFIX = f"hprb{os.getpid()}"
PORT = 8080
URL = f"http://:{PORT}/healthz"

# (label, interval s, retries, timeout s): the defaults, then a fast probe.
SETTINGS = [("default (10s / 3 / 3s)", 10, 3, 3), ("fast (1s / 2 / 1s)", 1, 2, 1)]


def log(msg):
    print(f"probes: {msg}", file=sys.stderr, flush=True)


def probe_labels(interval=None, retries=None, timeout=None):
    """The probe's labels; a setting not given is left to its default."""
    labels = ["--label", f"healthther.probe={URL}"]
    for key, value in (("interval", interval and f"{interval}s"), ("retries", retries),
                       ("timeout", timeout and f"{timeout}s")):
        if value is not None:
            labels += ["--label", f"healthther.probe-{key}={value}"]
    return labels


# On every node, so the event stream can be kept to ours.
LABEL = f"hprb.run={PREFIX}"


def http_node(name, *options):
    return bench.start(name, "--no-healthcheck", "--label", LABEL, *options,
                       command=("http", str(PORT)))


def requests_seen(name):
    """How many requests the node has had (its log says each), over all its runs."""
    out = bench.run("docker", "logs", name, check=False)
    return sum(1 for line in out.splitlines() if line.startswith("fixture: request"))


def wait_probed(name, timeout):
    """Until the node has had one more request."""
    seen, deadline = requests_seen(name), time.time() + timeout
    while requests_seen(name) <= seen:
        if time.time() > deadline:
            raise TimeoutError(f"{name} was not probed in {timeout} s")
        time.sleep(0.2)


def hang_reaction(binary, events, setting, trials):
    """Seconds from `http-mode hang` to the restart beginning (kill) and done (start). A fresh
    node each trial: a second failure of the same node soon after its restart is backed off,
    by design, and would measure the back-off instead of the probe."""
    label, interval, retries, timeout = setting
    names = [f"{PREFIX}-hang{interval}s{i}" for i in range(trials)]
    # The defaults are what a bare healthther.probe label gets.
    labels = probe_labels() if setting is SETTINGS[0] else probe_labels(interval, retries, timeout)
    begins, dones = [], []
    hh = bench.Healthther(binary, names)
    try:
        hh.wait_for("watching")
        for i, name in enumerate(names):
            cid = http_node(name, *labels)
            # Probed well first, then a hang at a random moment of the interval.
            wait_probed(name, timeout=3 * interval + 30)
            time.sleep(random.uniform(0, interval))
            t0 = time.time_ns()
            bench.run("docker", "exec", cid, "/fixture", "http-mode", "hang")
            limit = interval * retries + timeout + 60
            begin = events.wait(cid, "kill", t0, timeout=limit)
            done = events.wait(cid, "start", begin, timeout=60)
            begins.append((begin - t0) / 1e9)
            dones.append((done - t0) / 1e9)
            log(f"{label} trial {i + 1}/{trials}: restart begins {begins[-1]:.2f} s, "
                f"done {dones[-1]:.2f} s after the hang")
            bench.remove(name)
    finally:
        hh.stop()
        bench.remove(*names)
    return begins, dones


def start_nodes(names, options):
    """Starts the nodes a few at a time: the engine is the slow part."""
    for i in range(0, len(names), 8):
        batch = [subprocess.Popen(["docker", "run", "-d", "--name", n, "--no-healthcheck",
                                   "--label", LABEL, *options, bench.FIXTURE, "http",
                                   str(PORT)],
                                  stdout=subprocess.DEVNULL)
                 for n in names[i:i + 8]]
        for p in batch:
            p.wait()


def rss_parts(pid):
    """Resident memory now, in KiB: anonymous (the heap, stacks) and the binary's own pages."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {key: int(fields[name].split()[0])
            for key, name in (("anon_kib", "RssAnon"), ("file_kib", "RssFile"))}


def cost(binary, count, seconds, probed):
    """healthther's CPU seconds per minute and peak RSS watching `count` running nodes."""
    arm = "probed" if probed else "plain"
    names = [f"{PREFIX}-{arm}{i}" for i in range(count)]
    try:
        log(f"starting {count} {arm} nodes")
        start_nodes(names, probe_labels() if probed else [])
        hh = bench.Healthther(binary, names)
        try:
            hh.wait_for("watching", timeout=300)
            # First probes are spread over the interval (10 s): all are under way after it.
            time.sleep(15)
            sample = names[:: max(1, count // 5)][:5]
            seen0 = [requests_seen(n) for n in sample]
            cpu0, t0 = hh.cpu_seconds(), time.time()
            log(f"{arm}: measuring {seconds} s")
            time.sleep(seconds)
            cpu1, t1 = hh.cpu_seconds(), time.time()
            seen1 = [requests_seen(n) for n in sample]
            minutes = (t1 - t0) / 60
            probes = [(b - a) / minutes for a, b in zip(seen0, seen1)]
            return {"arm": arm, "nodes": count, "cpu_s_per_min": (cpu1 - cpu0) / minutes,
                    "rss_kib": hh.peak_rss_kib(), **rss_parts(hh.proc.pid),
                    "probes_per_min": sum(probes) / len(probes),
                    "restarts": hh.output().count("reviving")}
        finally:
            hh.stop()
    finally:
        for i in range(0, count, 50):
            bench.remove(*names[i:i + 50])


def reaction_rows(setting, begins, dones):
    label, interval, retries, timeout = setting
    bound = interval * retries + timeout + 1
    rows = []
    for what, values in (("restart begins (kill)", begins), ("restarted (start)", dones)):
        s = bench.summary(values)
        within = sum(1 for v in values if v <= bound)
        rows.append(f"| {label}: hang -> {what} | {s['n']} | {s['median']:.2f} | {s['p90']:.2f} "
                    f"| {s['max']:.2f} | {bound} | {within}/{s['n']} |")
    return rows


def main():
    # A kill (SIGTERM) ends the run as Ctrl-C does: through the `finally`s that remove the
    # nodes and stop healthther.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a short run that checks it works")
    parser.add_argument("--binary", help="a healthther binary to measure instead of building "
                        "this tree's")
    parser.add_argument("--nodes", type=int, help="nodes for the cost (default 300; 20 smoke)")
    parser.add_argument("--seconds", type=int, help="measuring time per side (default 120; 30 "
                        "smoke)")
    parser.add_argument("--trials", type=int, help="hang trials with the fast settings (default "
                        "10; 2 smoke); half as many, at least 1, with the defaults (none smoke)")
    args = parser.parse_args()
    nodes = args.nodes or (20 if args.smoke else 300)
    seconds = args.seconds or (30 if args.smoke else 120)
    fast_trials = args.trials or (2 if args.smoke else 10)
    default_trials = 0 if args.smoke else max(1, fast_trials // 2)

    bench.build_fixture()
    binary = Path(args.binary).resolve() if args.binary else bench.build_healthther()
    results = bench.RESULTS / "smoke" if args.smoke else bench.RESULTS
    results.mkdir(parents=True, exist_ok=True)

    events = bench.Events(filters=[f"label={LABEL}"])
    reactions = []
    try:
        for setting, trials in zip(SETTINGS, (default_trials, fast_trials)):
            if trials:
                reactions.append((setting, *hang_reaction(binary, events, setting, trials)))
    finally:
        events.close()
    plain = cost(binary, nodes, seconds, probed=False)
    probed = cost(binary, nodes, seconds, probed=True)

    lines = [
        f"Run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"`{' '.join(['python3', 'bench/probes.py', *sys.argv[1:]])}`; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end, Docker "
        f"Engine {bench.run('docker', 'version', '-f', '{{.Server.Version}}')}.",
        "",
        "| measure (s) | n | median | p90 | max | goal: within | trials within |",
        "|---|---|---|---|---|---|---|",
    ]
    for setting, begins, dones in reactions:
        lines += reaction_rows(setting, begins, dones)
    lines += [
        "",
        f"| {nodes} running nodes, healthther watching all | CPU s per minute | peak RSS (MiB) "
        "| RSS at the end: anonymous / the binary's pages (MiB) | probes per node per minute "
        "| restarts |",
        "|---|---|---|---|---|---|",
    ]
    for r in (plain, probed):
        what = "probed every 10 s" if r["arm"] == "probed" else "no probe"
        lines.append(f"| {what} | {r['cpu_s_per_min']:.4f} | {r['rss_kib'] / 1024:.2f} | "
                     f"{r['anon_kib'] / 1024:.2f} / {r['file_kib'] / 1024:.2f} | "
                     f"{r['probes_per_min']:.1f} | {r['restarts']} |")
    d_cpu = probed["cpu_s_per_min"] - plain["cpu_s_per_min"]
    d_rss = (probed["rss_kib"] - plain["rss_kib"]) / 1024
    d_anon = (probed["anon_kib"] - plain["anon_kib"]) / 1024
    d_file = (probed["file_kib"] - plain["file_kib"]) / 1024
    lines += [
        f"| probing costs | {d_cpu:+.4f} (goal: at most +0.05) | {d_rss:+.2f} (goal: at most "
        f"+1) | {d_anon:+.2f} / {d_file:+.2f} | | |",
    ]
    report = "\n".join(lines)
    (results / "probes.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
