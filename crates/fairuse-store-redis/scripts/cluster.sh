#!/usr/bin/env bash
# A three-master Redis Cluster on 127.0.0.1:7001-7003 for the fairuse-store-redis cluster tests.
#
#   cluster.sh start    start the nodes and create the cluster unless it is already up (idempotent)
#   cluster.sh stop     shut the nodes down and remove their data directory
#   cluster.sh status   print `cluster info` of the first node; exit 1 unless cluster_state:ok
#
# Nothing is persisted (--save "" --appendonly no): the cluster is scratch space for tests. The
# node configuration files live in $FAIRUSE_REDIS_CLUSTER_DIR (default /tmp/fairuse-redis-cluster).
set -euo pipefail

PORTS=(7001 7002 7003)
HOST=127.0.0.1
DIR="${FAIRUSE_REDIS_CLUSTER_DIR:-/tmp/fairuse-redis-cluster}"

cli() { redis-cli -h "$HOST" -p "$1" "${@:2}"; }

node_up() { cli "$1" ping >/dev/null 2>&1; }

node_down() { ! node_up "$1"; }

# Every node answers and sees the cluster as ok (one node alone would still say ok for the node
# timeout after another one died).
cluster_ok() {
  local port
  for port in "${PORTS[@]}"; do
    cli "$port" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok' || return 1
  done
}

# How many slots the nodes have been given between them (16384 once the cluster is created).
slots_assigned() {
  cli "${PORTS[0]}" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_slots_assigned://p'
}

wait_for() { # wait_for <what> <seconds> <command...>
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq 1 $((seconds * 10))); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  echo "cluster.sh: timed out after ${seconds}s waiting for $what" >&2
  return 1
}

start() {
  command -v redis-server >/dev/null || { echo "cluster.sh: redis-server is not installed" >&2; exit 1; }
  if cluster_ok; then
    echo "redis cluster already running on ${HOST}:${PORTS[0]}-${PORTS[-1]}"
    return 0
  fi
  local any_up=no
  for port in "${PORTS[@]}"; do
    if node_up "$port"; then any_up=yes; fi
  done
  if [ "$any_up" = yes ]; then
    # Maybe a cluster that is still converging (another start just created it); otherwise a
    # broken one (a node died and lost its slots): it only holds test data, so start over.
    if wait_for "a running cluster to converge" 5 cluster_ok 2>/dev/null; then
      echo "redis cluster already running on ${HOST}:${PORTS[0]}-${PORTS[-1]}"
      return 0
    fi
    echo "cluster.sh: nodes are up but the cluster is not ok; recreating it" >&2
    stop >/dev/null
  fi
  mkdir -p "$DIR"
  for port in "${PORTS[@]}"; do
    # A stale nodes file from an earlier run would make the node rejoin a cluster that is gone.
    rm -f "$DIR/nodes-$port.conf"
    redis-server --port "$port" --bind "$HOST" --cluster-enabled yes \
      --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 5000 \
      --daemonize yes --save "" --appendonly no --dir "$DIR" \
      --logfile "$DIR/redis-$port.log" --pidfile "$DIR/redis-$port.pid"
  done
  for port in "${PORTS[@]}"; do
    wait_for "redis on port $port" 10 node_up "$port"
  done
  if [ "$(slots_assigned)" != "16384" ]; then
    local nodes=()
    for port in "${PORTS[@]}"; do nodes+=("$HOST:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$DIR/create.log" 2>&1 || {
      echo "cluster.sh: redis-cli --cluster create failed:" >&2
      cat "$DIR/create.log" >&2
      exit 1
    }
  fi
  wait_for "cluster_state:ok" 30 cluster_ok
  echo "redis cluster running on ${HOST}:${PORTS[0]}-${PORTS[-1]} (data in $DIR)"
}

stop() {
  for port in "${PORTS[@]}"; do
    if node_up "$port"; then cli "$port" shutdown nosave >/dev/null 2>&1 || true; fi
  done
  for port in "${PORTS[@]}"; do
    wait_for "redis on port $port to stop" 10 node_down "$port"
  done
  rm -rf "$DIR"
  echo "redis cluster stopped"
}

status() {
  if ! node_up "${PORTS[0]}"; then
    echo "redis cluster is not running (nothing on ${HOST}:${PORTS[0]})"
    exit 1
  fi
  cli "${PORTS[0]}" cluster info | tr -d '\r' | grep -E '^cluster_(state|slots_assigned|known_nodes|size):'
  cluster_ok
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
