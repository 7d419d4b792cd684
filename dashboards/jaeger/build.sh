#!/usr/bin/env bash
# Build Jaeger v2 (all-in-one) from source with the Go toolchain, once per version.
#
# The version is pinned by build/go.mod and build/go.sum (a module that requires
# github.com/jaegertracing/jaeger and lists its program as a tool); the binary is cached under
# ${PFLOW_TRACE_CACHE:-~/.cache/pflow-trace}/jaeger-<version>/jaeger so a second run is instant.
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version=$(awk '$1 == "github.com/jaegertracing/jaeger" {print $2; exit}' "$here/build/go.mod")
if [ -z "$version" ]; then
  echo "error: $here/build/go.mod does not require github.com/jaegertracing/jaeger" >&2
  exit 2
fi
cache_dir="${PFLOW_TRACE_CACHE:-$HOME/.cache/pflow-trace}/jaeger-$version"
binary="$cache_dir/jaeger"
if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "error: building Jaeger needs Go 1.24 or newer (https://go.dev/dl/); 'go' is not on PATH" >&2
  exit 2
fi
mkdir -p "$cache_dir"
echo "building Jaeger $version into $binary (several minutes on a small machine)" >&2
started=$(date +%s)
# -mod=readonly: go.sum must already hold every checksum, so the build cannot drift.
(cd "$here/build" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false ${GOFLAGS:-}" \
  go build -trimpath -o "$binary.partial" github.com/jaegertracing/jaeger/cmd/jaeger)
mv "$binary.partial" "$binary"
echo "built Jaeger $version in $(( $(date +%s) - started ))s" >&2
echo "$binary"
