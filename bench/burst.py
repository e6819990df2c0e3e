#!/usr/bin/env python3
"""healthther's burst benchmark (issue 25), on the real Docker engine, with fixture targets.

N targets (30 by default) running the fixture with no health check have their processes all
SIGKILLed at once from outside the Docker API (their host pids: real crashes). The makespan is
from the first `die` event to the last `start` event, engine timestamps, when every one runs
again. Three restarters, side by side, a fresh set of containers for each run:
  - healthther (MODE=auto, defaults);
  - the engine's own policy (`--restart=always`, no healthther);
  - a bare client: a thread per `die` event that POSTs start the moment the event reaches it,
    with no inspect and no limit: the floor for any client of the engine.
The goal: healthther's makespan at most 1.0x the engine's.

Usage:
  python3 bench/burst.py                # 30 targets, 3 runs of each (~3 minutes)
  python3 bench/burst.py --smoke        # 5 targets, 1 run of each
  python3 bench/burst.py --binary B     # measures the healthther binary B (another commit's)
  (also --targets, --runs)

Writes a Markdown table to stdout. Every container it creates is named hbst<pid>-...; they are
removed at the end, on failure and on Ctrl-C too.
"""

import argparse
import os
import signal
import statistics
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing bench.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the builds, the fixture, the events and the healthther process)

PREFIX = f"hbst{os.getpid()}"


def crash_all(events, ids, on_die=None):
    """SIGKILLs every target at once; the makespan in ms once every one has started again."""
    pids = {cid: bench.host_pid(cid) for cid in ids.values()}
    t0 = time.time_ns()
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    dies = [events.wait(cid, "die", t0) for cid in ids.values()]
    starts = [events.wait(cid, "start", t0, timeout=120) for cid in ids.values()]
    return (max(starts) - min(dies)) / 1e6


def one_run(binary, events, count, side, run_no):
    names = [f"{PREFIX}-{side}{run_no}-{i}" for i in range(count)]
    hh = None
    try:
        bench.start_many(names, *(["--restart=always"] if side == "engine" else []))
        ids = dict(zip(names, bench.run("docker", "inspect", "-f", "{{.Id}}", *names).split("\n")))
        if side == "healthther":
            hh = bench.Healthther(binary, names)
            hh.wait_for("watching")
        # Every container runs and has been seen running.
        bench.wait_until("every target to run",
                         lambda: all(bench.host_pid(c) > 0 for c in ids.values()))
        time.sleep(1)
        if side == "bare":
            t_ref = time.time_ns()

            def start_on_die(cid):
                events.wait(cid, "die", t_ref)
                bench.engine_post(f"/containers/{cid}/start")

            threads = [threading.Thread(target=start_on_die, args=(c,)) for c in ids.values()]
            for t in threads:
                t.start()
            span = crash_all(events, ids)
            for t in threads:
                t.join()
            return span
        return crash_all(events, ids)
    finally:
        if hh:
            hh.stop()
        bench.remove_many(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a short run")
    parser.add_argument("--binary", help="a healthther binary to measure instead of this tree's")
    parser.add_argument("--targets", type=int)
    parser.add_argument("--runs", type=int)
    args = parser.parse_args()
    count = args.targets or (5 if args.smoke else 30)
    runs = args.runs or (1 if args.smoke else 3)

    binary = bench.build(args.binary)
    events = bench.Events()
    spans = {"healthther": [], "engine": [], "bare": []}
    try:
        # Interleaved, so that a slow spell of the engine falls on every side alike.
        for r in range(runs):
            for side in spans:
                spans[side].append(one_run(binary, events, count, side, r))
    finally:
        events.close()

    print(f"Run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
          f"`python3 bench/burst.py{' --smoke' if args.smoke else ''}"
          f"{' --binary ' + args.binary if args.binary else ''}`; {count} targets SIGKILLed at "
          f"once, first die -> last start.")
    print()
    print("| restarter | makespan of each run (ms) | median (ms) | median / engine's |")
    print("|---|---|---|---|")
    engine = statistics.median(spans["engine"])
    labels = {"healthther": "healthther (MODE=auto, defaults)",
              "engine": "engine `--restart=always`",
              "bare": "bare client, start on each die event"}
    for side, values in spans.items():
        m = statistics.median(values)
        print(f"| {labels[side]} | {', '.join(f'{v:.0f}' for v in values)} | {m:.0f} | "
              f"{m / engine:.2f} |")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
