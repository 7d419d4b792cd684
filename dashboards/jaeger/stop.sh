#!/usr/bin/env bash
# Stop the Jaeger that start.sh started: the pid in $PFLOW_TRACE_JAEGER_PIDFILE (start.sh
# prints it), else the one on the default query port. Only a process running the Jaeger
# binary is signalled.
set -euo pipefail
state_dir="${PFLOW_TRACE_CACHE:-$HOME/.cache/pflow-trace}/jaeger-run"
pid_file="${PFLOW_TRACE_JAEGER_PIDFILE:-$state_dir/jaeger-16686.pid}"
if [ ! -f "$pid_file" ]; then
  echo "Jaeger is not running (no $pid_file)" >&2
  exit 0
fi
pid=$(cat "$pid_file")
rm -f "$pid_file"
if ! kill -0 "$pid" 2>/dev/null; then
  echo "Jaeger (pid $pid) had already stopped" >&2
  exit 0
fi
if [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null || echo unknown)")" != "jaeger" ]; then
  echo "error: pid $pid from $pid_file is not Jaeger; left alone" >&2
  exit 1
fi
kill "$pid"
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || { echo "Jaeger (pid $pid) stopped" >&2; exit 0; }
  sleep 0.1
done
kill -9 "$pid" 2>/dev/null || true
echo "Jaeger (pid $pid) did not stop within 10s; killed" >&2
