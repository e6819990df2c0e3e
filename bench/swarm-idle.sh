#!/usr/bin/env bash
# The idle cost of healthther per node in a Swarm, against the same image as a plain container
# (the single-host sidecar): peak RSS (VmHWM) and CPU seconds per minute of its process, watching
# TARGETS standalone containers, over SECONDS of idle after it has settled.
#
#   bash bench/swarm-idle.sh [TARGETS] [SECONDS]
#
# Uses the images the tests build (healthther:test-runtime, healthther-fixture:test; run
# `cargo test --test tests swarm::` once first) or HEALTHTHER_IMAGE / NODE_IMAGE. Needs an
# engine that is in no Swarm: it makes a one-node Swarm (advertised on ADVERTISE, by default the
# first address of `hostname -I`) and leaves it at the end. Every name starts with hswbench$$.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=${1:-10}
SECONDS_IDLE=${2:-60}
IMAGE=${HEALTHTHER_IMAGE:-healthther:test-runtime}
NODE_IMAGE=${NODE_IMAGE:-healthther-fixture:test}
ADVERTISE=${ADVERTISE:-$(hostname -I | awk '{print $1}')}
id=hswbench$$
hz=$(getconf CLK_TCK)

[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = inactive ] \
  || { echo "swarm-idle: the engine is in a Swarm already; not touching it" >&2; exit 1; }
had_gwbridge=$(docker network inspect docker_gwbridge >/dev/null 2>&1 && echo 1 || true)

cleanup() {
  docker stack rm "$id" >/dev/null 2>&1 || true
  docker rm -f "$id-sidecar" >/dev/null 2>&1 || true
  for i in $(seq 1 "$TARGETS"); do docker rm -f "$id-n$i" >/dev/null 2>&1 || true; done
  for _ in $(seq 1 60); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$id")" ] && break
    sleep 1
  done
  docker swarm leave --force >/dev/null 2>&1 || true
  docker volume rm "${id}_logs" >/dev/null 2>&1 || true
  [ -n "$had_gwbridge" ] || docker network rm docker_gwbridge >/dev/null 2>&1 || true
}
trap cleanup EXIT

names=
for i in $(seq 1 "$TARGETS"); do
  docker run -d --name "$id-n$i" "$NODE_IMAGE" run >/dev/null
  names="${names:+$names,}$id-n$i"
done

# measure CONTAINER: "peak RSS MiB, CPU s per minute" of its main process over SECONDS_IDLE.
measure() {
  local pid t0 t1
  sleep 10 # settled: its first pass and the event stream are up
  pid=$(docker inspect -f '{{.State.Pid}}' "$1")
  if [ "$pid" = 0 ]; then
    echo "swarm-idle: $1 is not running:" >&2
    docker logs "$1" 2>&1 | tail -n 5 >&2
    return 1
  fi
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  sleep "$SECONDS_IDLE"
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  awk -v hwm="$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")" -v d=$((t1 - t0)) \
    -v hz="$hz" -v s="$SECONDS_IDLE" 'BEGIN { printf "%.1f | %.4f", hwm / 1024, d / hz * 60 / s }'
}

# The single host: the image as a plain container, as the sidecar runs it.
docker run -d --name "$id-sidecar" --read-only --tmpfs /run --tmpfs /app/logs --cap-drop ALL \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -e HEALTH_TARGETS="$names" -e MODE=auto -e NO_COLOR=1 -e HEALTH_METRICS_ADDR=0.0.0.0:9102 \
  "$IMAGE" >/dev/null
sidecar=$(measure "$id-sidecar") || exit 1
docker rm -f "$id-sidecar" >/dev/null

# A Swarm task of the shipped stack, on this node.
docker swarm init --advertise-addr "$ADVERTISE" >/dev/null
HEALTHTHER_IMAGE=$IMAGE HEALTH_TARGETS=$names MODE=auto \
  docker stack deploy --resolve-image never -c docker-stack.yml "$id" >/dev/null
task=
for _ in $(seq 1 120); do
  task=$(docker ps -q --filter "label=com.docker.swarm.service.name=${id}_healthther")
  [ -n "$task" ] && docker logs "$task" 2>&1 | grep -q watching && break
  sleep 1
done
[ -n "$task" ] || { echo "swarm-idle: the task never started" >&2; exit 1; }
swarm=$(measure "$task") || exit 1

echo "| how it runs (idle, $TARGETS targets, ${SECONDS_IDLE} s) | peak RSS (MiB) | CPU s per minute |"
echo "|---|---|---|"
echo "| plain container (one host) | $sidecar |"
echo "| Swarm global service, one node's task | $swarm |"
