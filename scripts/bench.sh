#!/usr/bin/env bash
# Benchmark harness: builds in release mode, installs what it drives (wrk, the pinned
# TypeScript SDK peers) when missing, and runs `bench` with the given arguments.
#
#   scripts/bench.sh            # full run (about 12 minutes); rewrites BENCHMARKS.md
#   scripts/bench.sh --smoke    # a few seconds per case; writes to out/bench/
#   scripts/bench.sh --help     # every option
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
if [ ! -d interop/node_modules/@modelcontextprotocol/sdk ]; then
    npm ci --prefix interop --no-audit --no-fund --loglevel=error
fi
# 10,000 SSE streams need as many sockets in the server and in the harness.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --locked -q -p bench -p mcp-auth-client -p dev-idp
BENCH_COMMAND="scripts/bench.sh${*:+ $*}" exec target/release/bench "$@"
