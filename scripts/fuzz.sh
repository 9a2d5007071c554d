#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on any crash.
#
#   scripts/fuzz.sh          # 20 s per target
#   scripts/fuzz.sh 300      # 5 minutes per target
#
# Targets: www_authenticate (the WWW-Authenticate parser and the Bearer view),
# as_metadata and protected_resource_metadata (the metadata parsers and the well-known
# URL logic fed by them), sse_events (the client's event-stream parser) and
# token_precheck (the resource server's Authorization header parsing and token
# pre-checks). Each starts from the committed seeds in fuzz/corpus/<target>; new inputs
# go to a scratch directory, so the committed corpus stays as it is. A crash leaves its
# input in fuzz/artifacts/<target>/.
#
# cargo-fuzz needs nightly-only compiler flags: on a stable toolchain they are allowed
# with RUSTC_BOOTSTRAP=1. cargo-fuzz itself is installed from crates.io when missing.
# FUZZ_SANITIZER=address turns AddressSanitizer on (default: none; the code under test
# has no unsafe code of its own, and the build is much quicker without it).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
    echo "usage: $0 [seconds per target]" >&2
    exit 2
fi
sanitizer=${FUZZ_SANITIZER:-none}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd fuzz
targets=$(cargo fuzz list)
echo "== fuzz: building $(echo "$targets" | wc -w) targets (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer" --debug-assertions

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failed=()
for target in $targets; do
    echo "== fuzz: $target for ${seconds} s"
    mkdir -p "$scratch/$target" "corpus/$target"
    log="$scratch/$target.log"
    if cargo fuzz run --sanitizer "$sanitizer" --debug-assertions "$target" \
        "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units)' "$log" | tail -n 2 | sed 's/^/   /'
    else
        echo "== fuzz: $target FAILED"
        tail -n 60 "$log"
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "fuzz: no crash in $(echo "$targets" | wc -w) targets, ${seconds} s each"
