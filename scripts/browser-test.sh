#!/usr/bin/env bash
# Browser test of the page in web/: unit tests of its OAuth module, then end-to-end runs
# in headless Chromium against dev-idp (the real login form) and the resource server,
# once with dev-idp behaving as Dex and once with its MCP-ready switches. Writes
# out/browser/signed-in.png (and signed-in-mcp-ready.png) and the servers' logs.
#
# Needs Node.js 20+, Chromium (Debian: apt-get install chromium chromium-driver) and a
# Rust toolchain. Environment variables are described in interop/browser/browser-test.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    echo "browser test: $chromium not found; install it with: apt-get install chromium chromium-driver" >&2
    exit 1
fi

if [ ! -f interop/browser/node_modules/playwright-core/package.json ]; then
    npm ci --prefix interop/browser --no-audit --no-fund --loglevel=error
fi

echo "== browser: unit tests of web/oauth.js"
node --experimental-detect-module --no-warnings --test interop/browser/test/

echo "== browser: building dev-idp and resource-server"
cargo build --locked -q -p dev-idp -p resource-server --bins
# The binaries are where cargo put them: CARGO_TARGET_DIR is honoured.
export BROWSER_TEST_BIN_DIR="${BROWSER_TEST_BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}"
echo "== browser: binaries from $BROWSER_TEST_BIN_DIR"

status=0
for mode in dex mcp-ready; do
    echo "== browser: end-to-end in headless Chromium, dev-idp in $mode mode"
    BROWSER_TEST_MODE=$mode node interop/browser/browser-test.mjs || status=1
done
exit $status
