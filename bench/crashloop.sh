#!/usr/bin/env bash
# A crash loop under three restart schedules, for DURATION seconds (default 300):
#  - healthther with its default settings (back-off 1s doubling to 5m, quarantine after 5
#    failed revivals in 10m), on a container that exits 300 ms after every start;
#  - the engine's own --restart=always on the same kind of container;
#  - the kubelet's documented schedule (10s doubling to 5m), computed.
# Prints a Markdown table of how many times each restarted the container.
#
#   bash bench/crashloop.sh            # 5 minutes
#   DURATION=60 bash bench/crashloop.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-300}

build_fixture_image
build_healthther
work=$(mktemp -d)
ours="hth-bench-loop-$$"
engines="hth-bench-engine-$$"
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
  docker rm -f "$ours" "$engines" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

docker run -d --name "$engines" --restart=always "$FIXTURE_IMAGE" exit-after 300 1 >/dev/null
docker run -d --name "$ours" "$FIXTURE_IMAGE" exit-after 300 1 >/dev/null
(cd "$work" && HEALTH_TARGETS="$ours" MODE=auto "$HEALTHTHER" >"$work/out.log" 2>&1) &
pid=$!
sleep "$DURATION"

ours_restarts=$(grep -c '"event":"action"' "$work"/logs/audit.*.jsonl || true)
quarantined_at=$(grep -m1 QUARANTINED "$work/out.log" | cut -c1-23 || true)
engine_restarts=$(docker inspect -f '{{.RestartCount}}' "$engines")
kubelet_restarts=$(awk -v d="$DURATION" 'BEGIN { t = 0; wait = 10; n = 0;
  while (t + wait <= d) { t += wait + 0.3; n++; wait = (wait * 2 > 300) ? 300 : wait * 2 } print n }')

echo "Crash loop (the container exits 300 ms after each start), ${DURATION} s:"
echo
echo "| restarter | restarts in ${DURATION} s | then |"
echo "|---|---|---|"
echo "| healthther (defaults) | ${ours_restarts} | quarantined${quarantined_at:+ at ${quarantined_at}}, no more restarts until released |"
echo "| Docker Engine --restart=always | ${engine_restarts} | keeps going, every 60 s at most |"
echo "| kubelet CrashLoopBackOff (schedule) | ${kubelet_restarts} | keeps going, every 300 s |"
