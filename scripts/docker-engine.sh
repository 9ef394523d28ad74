#!/usr/bin/env bash
# A Docker engine for `make docker-images` and the Docker tests (tests/docker).
#   scripts/docker-engine.sh start   prints `DOCKER_HOST=...` and `ATELIER_DOCKERD_PID=<pid|external>`
#   scripts/docker-engine.sh stop PID   stops a dockerd this script started (by its pid), nothing else
# `start` uses the engine DOCKER_HOST points to (or the default socket) when one answers. Otherwise it
# starts Debian's dockerd (docker.io, scripts/system-deps.sh) as root with a data root, socket and
# exec root of its own, so it never meets another engine on the machine. The data root stays in a
# fixed place outside the clone (ATELIER_DOCKER_ROOT), so later runs on the same machine reuse the
# images and the build cache.
#
# The engine started here is offline by construction: its registry traffic goes through a proxy
# address where nothing listens, so a pull of any registry name fails within a second, loudly,
# instead of hanging or fetching anything (builds get the stand-ins, scripts/docker-standins.sh).
set -euo pipefail
ROOT=${ATELIER_DOCKER_ROOT:-/var/lib/atelier-docker}
RUN_DIR=${ATELIER_DOCKER_RUN:-/run/atelier-docker}
SOCKET=$RUN_DIR/docker.sock
PIDFILE=$RUN_DIR/dockerd.pid
LOG=${ATELIER_DOCKER_LOG:-/var/log/atelier-dockerd.log}
DOCKER=${DOCKER:-/usr/bin/docker}  # Debian's client: built-in BuildKit, no buildx plugin needed

answers() { timeout 20 env DOCKER_HOST="$1" "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
  local host=${DOCKER_HOST:-unix:///var/run/docker.sock}
  if answers "$host"; then
    echo "DOCKER_HOST=$host"; echo "ATELIER_DOCKERD_PID=external"; return
  fi
  host=unix://$SOCKET
  if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && answers "$host"; then
    echo "docker-engine: a dockerd of ours is already running (pid $(cat "$PIDFILE")); using it" >&2
    echo "DOCKER_HOST=$host"; echo "ATELIER_DOCKERD_PID=external"; return
  fi
  [ "$(id -u)" -eq 0 ] || { echo "docker-engine: no engine answers at $host and dockerd needs root" >&2; exit 1; }
  command -v dockerd >/dev/null || { echo "docker-engine: dockerd missing: run scripts/system-deps.sh" >&2; exit 1; }
  mkdir -p "$ROOT" "$RUN_DIR"
  # 127.0.0.1:9 (discard) has no listener: registry connections are refused at once.
  HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY= \
    setsid dockerd --data-root "$ROOT" --exec-root "$RUN_DIR/exec" --host "unix://$SOCKET" \
      --pidfile "$PIDFILE" --ip-forward=true --iptables=true \
      --log-level warn >>"$LOG" 2>&1 </dev/null &
  local pid=$!
  for _ in $(seq 1 120); do
    if answers "$host"; then echo "DOCKER_HOST=$host"; echo "ATELIER_DOCKERD_PID=$pid"; return; fi
    kill -0 "$pid" 2>/dev/null || { echo "docker-engine: dockerd exited; its log:" >&2; tail -30 "$LOG" >&2; exit 1; }
    sleep 0.5
  done
  echo "docker-engine: dockerd did not answer in 60 s; stopping it. Its log:" >&2; tail -30 "$LOG" >&2
  stop "$pid"; exit 1
}

stop() {
  local pid=${1:?pid}
  [ "$pid" = external ] && return
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  echo "docker-engine: dockerd $pid did not stop in 30 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

case ${1:-} in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop PID" >&2; exit 2 ;;
esac
