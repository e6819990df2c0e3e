#!/usr/bin/env python3
"""healthther's memory benchmark (issue 25), on the real Docker engine, with fixture targets.

Measures peak RSS (VmHWM from /proc) of the static release binary, with its default settings:
  1. idle: watching N running targets (300 by default) for --seconds after the first pass;
  2. burst: watching B targets (30 by default) whose processes are all SIGKILLed at once from
     outside the Docker API (their host pids: real crashes), until every one runs again;
each once with notifications and metrics off, and once with both on (metrics served on a
loopback port, scraped once; notifications to a generic webhook on a loopback sink, which
every revival of the burst reaches). The goals: at most 6 MiB idle at 300 targets, at most
7 MiB over the burst, and at most 1 MiB more with notifications and metrics on.

Usage:
  python3 bench/rss.py                  # 300 idle targets, a burst of 30, both settings (~4 min)
  python3 bench/rss.py --smoke          # 20 idle targets, a burst of 5
  python3 bench/rss.py --binary B       # measures the healthther binary B (another commit's)
  (also --targets, --burst, --seconds)

Writes a Markdown table to stdout. Every container it creates is named hrss<pid>-...; they are
removed at the end, on failure and on Ctrl-C too.
"""

import argparse
import contextlib
import http.server
import os
import signal
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing bench.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the builds, the fixture and the healthther process, shared)

PREFIX = f"hrss{os.getpid()}"


class Sink(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that counts what it is sent."""
    count = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with Sink.lock:
            Sink.count += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings(on, sink_port):
    """The environment for one side: nothing extra, or a webhook and a metrics listener."""
    if not on:
        return {}, None
    metrics = free_port()
    return {
        "HEALTH_NOTIFY": f"generic+http://127.0.0.1:{sink_port}/hook",
        "HEALTH_METRICS_ADDR": f"127.0.0.1:{metrics}",
    }, metrics


def scrape(port):
    if port:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            r.read()


@contextlib.contextmanager
def watching(binary, names, on, sink_port):
    """healthther watching `names`, freshly started, its first pass done; all removed after."""
    bench.start_many(names)
    extra, metrics = settings(on, sink_port)
    hh = bench.Healthther(binary, names, extra=extra)
    try:
        hh.wait_for("watching")
        scrape(metrics)
        yield hh, metrics
    finally:
        hh.stop()
        bench.remove_many(names)


def idle(binary, count, seconds, on, sink_port, tag):
    names = [f"{PREFIX}-{tag}-idle{i}" for i in range(count)]
    with watching(binary, names, on, sink_port) as (hh, metrics):
        time.sleep(seconds)
        scrape(metrics)
        return hh.peak_rss_kib()


def burst(binary, count, on, sink_port, tag):
    names = [f"{PREFIX}-{tag}-burst{i}" for i in range(count)]
    with watching(binary, names, on, sink_port) as (hh, metrics):
        pids = {n: bench.host_pid(n) for n in names}
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)

        def all_back():
            out = bench.run("docker", "inspect", "-f", "{{.State.Running}} {{.State.Pid}}",
                            *names, check=False).split("\n")
            return len(out) == len(names) and all(
                line.split()[0] == "true" and int(line.split()[1]) != pids[n]
                for n, line in zip(names, out))
        bench.wait_until("every target of the burst to run again", all_back, timeout=180)
        # The revivals' records and notes, written and sent.
        time.sleep(3)
        scrape(metrics)
        return hh.peak_rss_kib()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a short run")
    parser.add_argument("--binary", help="a healthther binary to measure instead of this tree's")
    parser.add_argument("--targets", type=int)
    parser.add_argument("--burst", type=int)
    parser.add_argument("--seconds", type=int)
    args = parser.parse_args()
    targets = args.targets or (20 if args.smoke else 300)
    count = args.burst or (5 if args.smoke else 30)
    seconds = args.seconds or (5 if args.smoke else 30)

    binary = bench.build(args.binary)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink_port = server.server_address[1]
    rows = []
    for on in (False, True):
        tag = "on" if on else "off"
        rows.append((on, idle(binary, targets, seconds, on, sink_port, tag),
                     burst(binary, count, on, sink_port, tag)))
    server.shutdown()

    mib = lambda kib: f"{kib / 1024:.2f}"  # noqa: E731
    print(f"Run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
          f"`python3 bench/rss.py{' --smoke' if args.smoke else ''}"
          f"{' --binary ' + args.binary if args.binary else ''}`; binary "
          f"{binary.stat().st_size:,} bytes; {Sink.count} webhook posts received.")
    print()
    print(f"| notifications and metrics | peak RSS idle, {targets} targets (MiB) "
          f"| peak RSS over {count} revivals at once (MiB) |")
    print("|---|---|---|")
    for on, i, b in rows:
        print(f"| {'on' if on else 'off'} | {mib(i)} | {mib(b)} |")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
