#!/usr/bin/env python3
"""The floor under a probe's CPU (issue 23): what the kernel alone costs a prober per probe, on
this machine, for the probes healthther sends, measured with a bare C client (bench/floor/
client.c: one process, one epoll, every node probed once a second, all at once, as healthther
batches 300 targets at 10 s) against fixture nodes on the default bridge:

  - http: a new connection, `GET /healthz`, the status read, close (healthther's HTTP probe);
  - tcp: a new connection, close (healthther's TCP probe);
  - keep-alive: one connection per node kept open, a `GET` on it each time (what HTTP
    keep-alive would cost at best; against bench/floor/keepalive.c, since the fixture closes
    every connection).

Issue 23's goal, at most 0.05 CPU seconds a minute for 300 targets probed every 10 s (1800
probes a minute), is 27.8 us a probe: the report gives each floor per probe and as CPU seconds
a minute at that rate.

Usage:
  python3 bench/floor.py               # 30 nodes of each, 3 rounds of 20 s per kind (~4 min)
  python3 bench/floor.py --smoke       # 5 nodes, 1 round of 3 s (~1 min)
  (also --nodes, --seconds, --rounds)

Needs gcc and musl-gcc (Debian's musl-tools). Writes a Markdown report to stdout and
bench/results/floor.md (bench/results/smoke/ for --smoke). Every container it creates is named
hflr<pid>-...; they are removed at the end, on failure and on Ctrl-C too.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing bench.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (bench/bench.py: building, helpers)

bench.FIXTURE = "hflr-fixture:bench"
KEEPALIVE = "hflr-keepalive:bench"
PREFIX = f"hflr{os.getpid()}"
SOURCES = Path(__file__).resolve().parent / "floor"
PORT = 8080
GOAL_PER_MIN = 0.05
PROBES_PER_MIN = 1800


def compile_tools(work):
    client = Path(work, "client")
    bench.run("gcc", "-O2", "-o", str(client), str(SOURCES / "client.c"))
    server = Path(work, "keepalive")
    bench.run("musl-gcc", "-static", "-O2", "-o", str(server), str(SOURCES / "keepalive.c"))
    bench.build_image(KEEPALIVE, 'FROM scratch\nCOPY keepalive /keepalive\n'
                      'ENTRYPOINT ["/keepalive"]\n', [("keepalive", server)])
    return client


def start(names, image, command):
    for i in range(0, len(names), 8):
        procs = [subprocess.Popen(["docker", "run", "-d", "--name", n, "--no-healthcheck", image,
                                   *command], stdout=subprocess.DEVNULL)
                 for n in names[i:i + 8]]
        for p in procs:
            p.wait()
    addresses = []
    for n in names:
        ip = bench.run("docker", "inspect", "-f",
                       "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", n)
        if not ip:
            sys.exit(f"floor: {n} has no address on the default bridge")
        addresses.append(ip)
    return addresses


def measure(client, mode, seconds, addresses):
    out = bench.run(str(client), mode, str(seconds), str(PORT), *addresses, timeout=seconds + 60)
    _, probes, failed, micros = out.split()
    if int(failed):
        sys.exit(f"floor: {failed} of the {mode} probes failed: the nodes are not serving")
    return float(micros)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a short run that checks it works")
    parser.add_argument("--nodes", type=int, help="nodes of each kind (default 30; 5 smoke)")
    parser.add_argument("--seconds", type=int, help="seconds per measurement (default 20; 3 "
                        "smoke)")
    parser.add_argument("--rounds", type=int, help="rounds of the three kinds, interleaved "
                        "(default 3; 1 smoke)")
    args = parser.parse_args()
    count = args.nodes or (5 if args.smoke else 30)
    seconds = args.seconds or (3 if args.smoke else 20)
    rounds = args.rounds or (1 if args.smoke else 3)
    results = bench.RESULTS / "smoke" if args.smoke else bench.RESULTS
    results.mkdir(parents=True, exist_ok=True)

    bench.build_fixture()
    fixtures = [f"{PREFIX}-http-{i}" for i in range(count)]
    servers = [f"{PREFIX}-ka-{i}" for i in range(count)]
    samples = {"http": [], "tcp": [], "keepalive": []}
    with tempfile.TemporaryDirectory() as work:
        try:
            client = compile_tools(work)
            fixture_ips = start(fixtures, bench.FIXTURE, ["http", str(PORT)])
            server_ips = start(servers, KEEPALIVE, [str(PORT)])
            for r in range(rounds):
                for mode, ips in (("http", fixture_ips), ("tcp", fixture_ips),
                                  ("keepalive", server_ips)):
                    samples[mode].append(measure(client, mode, seconds, ips))
                    print(f"floor: round {r + 1}/{rounds} {mode}: "
                          f"{samples[mode][-1]:.1f} us a probe", file=sys.stderr)
        finally:
            bench.remove_many(fixtures + servers)

    goal = GOAL_PER_MIN / PROBES_PER_MIN * 1e6
    lines = [
        f"Run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"`{' '.join(['python3', 'bench/floor.py', *sys.argv[1:]])}`; {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at the end, Docker Engine "
        f"{bench.run('docker', 'version', '-f', '{{.Server.Version}}')}; {count} nodes probed "
        f"at once each second, {rounds} x {seconds} s.",
        "",
        "| the bare kernel's CPU, per probe (us) | min | median | max | CPU s a minute at "
        f"{PROBES_PER_MIN} probes (median) | within issue 23's {goal:.1f} us |",
        "|---|---|---|---|---|---|",
    ]
    names = {"http": "HTTP, a new connection (as healthther)",
             "tcp": "TCP, a new connection (as healthther)",
             "keepalive": "HTTP on a kept connection (keep-alive)"}
    for mode, values in samples.items():
        med = statistics.median(values)
        lines.append(f"| {names[mode]} | {min(values):.1f} | {med:.1f} | {max(values):.1f} | "
                     f"{med * PROBES_PER_MIN / 1e6:.3f} | {'yes' if med <= goal else 'no'} |")
    report = "\n".join(lines)
    (results / "floor.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
