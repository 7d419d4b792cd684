#!/usr/bin/env bash
# Build Jaeger v2 once (build.sh), start it in the background on 127.0.0.1 with config.yaml,
# wait until it answers, and print shell lines that point pflow-trace's tests at it:
#
#   eval "$(bash dashboards/jaeger/start.sh)"     # then: bash dashboards/jaeger/stop.sh
#
# Ports: Jaeger's usual ones (4317, 4318, 16686, 16685, 13133), or those set in the
# PFLOW_TRACE_JAEGER_*_PORT variables config.yaml lists; with --free-ports, ones the OS picks.
# The log and pid file are kept in ${PFLOW_TRACE_CACHE:-~/.cache/pflow-trace}/jaeger-run/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ "${1:-}" = "--free-ports" ]; then
  for name in OTLP_GRPC OTLP_HTTP QUERY QUERY_GRPC HEALTH; do
    export "PFLOW_TRACE_JAEGER_${name}_PORT=$(free_port)"
  done
elif [ -n "${1:-}" ]; then
  echo "error: unknown option $1 (expected nothing or --free-ports)" >&2
  exit 2
fi
export PFLOW_TRACE_JAEGER_OTLP_GRPC_PORT="${PFLOW_TRACE_JAEGER_OTLP_GRPC_PORT:-4317}"
export PFLOW_TRACE_JAEGER_OTLP_HTTP_PORT="${PFLOW_TRACE_JAEGER_OTLP_HTTP_PORT:-4318}"
export PFLOW_TRACE_JAEGER_QUERY_PORT="${PFLOW_TRACE_JAEGER_QUERY_PORT:-16686}"
export PFLOW_TRACE_JAEGER_QUERY_GRPC_PORT="${PFLOW_TRACE_JAEGER_QUERY_GRPC_PORT:-16685}"
export PFLOW_TRACE_JAEGER_HEALTH_PORT="${PFLOW_TRACE_JAEGER_HEALTH_PORT:-13133}"

binary=$(bash "$here/build.sh")
state_dir="${PFLOW_TRACE_CACHE:-$HOME/.cache/pflow-trace}/jaeger-run"
mkdir -p "$state_dir"
pid_file="$state_dir/jaeger-$PFLOW_TRACE_JAEGER_QUERY_PORT.pid"
log_file="$state_dir/jaeger-$PFLOW_TRACE_JAEGER_QUERY_PORT.log"
if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  echo "error: Jaeger already runs on port $PFLOW_TRACE_JAEGER_QUERY_PORT (pid $(cat "$pid_file"));" \
    "stop it with: PFLOW_TRACE_JAEGER_PIDFILE=$pid_file bash $here/stop.sh" >&2
  exit 1
fi

# One GET over bash's /dev/tcp; succeeds when the answer's status line says 200.
http_ok() {
  local port=$1 path=$2 status
  # (The braces keep 2>/dev/null to this one redirection; on a bare exec it would stay.)
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  IFS= read -r -t 5 status <&3 || status=""
  exec 3<&- 3>&-
  [[ "$status" == *" 200 "* ]]
}

started_ns=$(date +%s%N)
nohup "$binary" --config "$here/config.yaml" >"$log_file" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pid_file"
deadline=$(( $(date +%s) + ${PFLOW_TRACE_JAEGER_START_TIMEOUT:-60} ))
until http_ok "$PFLOW_TRACE_JAEGER_HEALTH_PORT" /status \
  && http_ok "$PFLOW_TRACE_JAEGER_QUERY_PORT" /api/services; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pid_file"
    echo "error: Jaeger exited while starting; the end of $log_file:" >&2
    tail -n 20 "$log_file" >&2
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    kill "$pid" 2>/dev/null || true
    rm -f "$pid_file"
    echo "error: Jaeger did not answer within ${PFLOW_TRACE_JAEGER_START_TIMEOUT:-60}s; see $log_file" >&2
    exit 1
  fi
  sleep 0.1
done
elapsed_ms=$(( ($(date +%s%N) - started_ns) / 1000000 ))
query="http://127.0.0.1:$PFLOW_TRACE_JAEGER_QUERY_PORT"
echo "Jaeger is up after ${elapsed_ms} ms (pid $pid, log $log_file)" >&2
echo "  query API         $query" >&2
echo "  OTLP/HTTP         http://127.0.0.1:$PFLOW_TRACE_JAEGER_OTLP_HTTP_PORT" >&2
echo "  OTLP/gRPC         http://127.0.0.1:$PFLOW_TRACE_JAEGER_OTLP_GRPC_PORT" >&2
echo "export PFLOW_TRACE_JAEGER_URL=$query"
echo "export PFLOW_TRACE_JAEGER_OTLP_HTTP=http://127.0.0.1:$PFLOW_TRACE_JAEGER_OTLP_HTTP_PORT"
echo "export PFLOW_TRACE_JAEGER_OTLP_GRPC=http://127.0.0.1:$PFLOW_TRACE_JAEGER_OTLP_GRPC_PORT"
echo "export PFLOW_TRACE_JAEGER_PIDFILE=$pid_file"
