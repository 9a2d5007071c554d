#!/usr/bin/env bash
# Soak run on loopback, bounded in time: dev-idp (signing key rotated every minute,
# auto-login) and the resource server as separate release processes, a load of
# Streamable HTTP tool calls plus legacy SSE streams held open and used, fresh tokens
# every 15 s (so each rotation reaches the resource server), the resource server's
# resident memory sampled from /proc every 5 s.
#
# Prints the figures (requests, 4xx/5xx, lost answers, SSE messages, signing keys seen,
# RSS first/last/growth) and fails on any 5xx, transport error, lost answer, or RSS
# growth of 10 % or more after warm-up.
#
#   scripts/soak.sh            # 60 s (as in CI)
#   scripts/soak.sh 600        # the 10-minute run
#
# Tuning through the environment: SOAK_WORKERS (8), SOAK_SSE_STREAMS (3),
# SOAK_MAX_RSS_GROWTH (10), SOAK_WARMUP (a sixth of the run, at least 10 s).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 10)); then
    echo "usage: $0 [seconds >= 10]" >&2
    exit 2
fi

echo "== soak: building release binaries"
cargo build --release --locked -q -p dev-idp -p resource-server -p security-tests --bins
bin=target/release

# A free loopback port (the kernel picks it; there is a small window before use).
free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

wait_port() {
    local port=$1
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "soak: nothing listens on 127.0.0.1:$port" >&2
    return 1
}

logs=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$logs"
}
trap cleanup EXIT

idp_port=$(free_port)
rs_port=$(free_port)
issuer="http://127.0.0.1:$idp_port/dex"
rs_url="http://127.0.0.1:$rs_port"

RUST_LOG=warn "$bin/dev-idp" \
    --config dex-config.yaml \
    --issuer "$issuer" \
    --listen "127.0.0.1:$idp_port" \
    --mcp-ready \
    --key-rotation 60s \
    --auto-login alice@example.com \
    >"$logs/dev-idp.log" 2>&1 &
pids+=($!)
wait_port "$idp_port"

RUST_LOG=warn "$bin/resource-server" \
    --listen "127.0.0.1:$rs_port" \
    --public-url "$rs_url" \
    --issuer "$issuer" \
    >"$logs/resource-server.log" 2>&1 &
rs_pid=$!
pids+=("$rs_pid")
wait_port "$rs_port"

echo "== soak: ${seconds} s against $rs_url (issuer $issuer), resource server pid $rs_pid"
status=0
"$bin/soak-driver" \
    --resource-server "$rs_url" \
    --issuer "$issuer" \
    --seconds "$seconds" \
    --pid "$rs_pid" || status=$?

if ! kill -0 "$rs_pid" 2>/dev/null; then
    echo "soak: the resource server exited during the run" >&2
    status=1
fi
if ((status != 0)); then
    echo "--- resource server log (last 40 lines)"
    tail -n 40 "$logs/resource-server.log" || true
    echo "--- dev-idp log (last 20 lines)"
    tail -n 20 "$logs/dev-idp.log" || true
fi
exit "$status"
