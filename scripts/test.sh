#!/usr/bin/env bash
# Runs every test of the project: unit and integration tests, the official MCP
# conformance suites (server, client and authorization server), the headless
# end-to-end demo and the browser test. Prints one line per stage, the client
# conformance totals, and a closing "N passed, N failed" line.
#
# Needs: a Rust toolchain, Node.js and npm (the pinned peers are installed from
# interop/package-lock.json when missing), Chromium and chromedriver for the
# browser stage (Debian: apt-get install chromium chromium-driver).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ ! -d interop/node_modules ]; then
    npm ci --prefix interop --no-audit --no-fund --loglevel=error || exit 1
fi

passed=0
failed=0
failures=()

stage() {
    local name=$1
    shift
    echo
    echo "=== stage: $name"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "=== stage $name: ok ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "=== stage $name: FAILED ($((SECONDS - start)) s)"
    fi
}

stage "cargo test" cargo test --workspace --locked
stage "conformance: server" scripts/conformance-server.sh
stage "conformance: server 0.2.0-alpha.12" scripts/conformance-server.sh --release 0.2.0-alpha.12
rm -f out/conformance-client/summary-*.txt
stage "conformance: client" scripts/conformance-client.sh
stage "conformance: client 0.2.0-alpha.12 requirements" \
    scripts/conformance-client.sh --release 0.2.0-alpha.12 requirements
stage "conformance: client extensions (0.2.0-alpha.12)" scripts/conformance-client.sh --release 0.2.0-alpha.12 extensions
stage "conformance: authorization" scripts/conformance-authorization.sh
stage "demo --headless" cargo run --locked -q -p demo -- --headless
stage "browser" scripts/browser-test.sh

echo
if compgen -G "out/conformance-client/summary-*.txt" >/dev/null; then
    echo "conformance totals:"
    sed 's/^/  /' out/conformance-client/summary-*.txt
fi
if ((failed)); then
    echo "failed stages: ${failures[*]}"
fi
echo "stages: $passed passed, $failed failed"
((failed == 0))
