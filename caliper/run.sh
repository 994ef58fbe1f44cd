#!/usr/bin/env bash
# make caliper: install Caliper, start (or reuse) the bench network, generate Caliper's network
# configuration from its profile, run benchmarks/config.yaml, then stop the network unless
# CALIPER_KEEP_NETWORK=1. Settings: CALIPER_BASE_PORT (19000), CALIPER_STATE_DIR (.state/bench),
# CALIPER_PROFILE (use a running network's profile.json instead of starting one).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
py="$root/.venv/bin/python"
base_port="${CALIPER_BASE_PORT:-19000}"
state_dir="${CALIPER_STATE_DIR:-$root/.state/bench}"
profile="${CALIPER_PROFILE:-}"

command -v npm >/dev/null || { echo "error: Caliper needs Node.js and npm (apt-get install nodejs npm)" >&2; exit 1; }
# npm ci wipes node_modules first (minutes); do it only when the lock file changed since the last one.
if [[ ! -f "$here/node_modules/.package-lock.json" || "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
    echo "==> Installing Caliper (npm ci)"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

started=0
if [[ -z "$profile" ]]; then
    echo "==> Starting the bench network (base port $base_port, state $state_dir)"
    (cd "$root" && "$py" -m network --base-port "$base_port" --state-dir "$state_dir" up --with-test-chaincodes --no-gateways)
    profile="$state_dir/profile.json"
    started=1
fi
stop() {
    if [[ "$started" == 1 && "${CALIPER_KEEP_NETWORK:-0}" != 1 ]]; then
        echo "==> Stopping the bench network"
        (cd "$root" && "$py" -m network --base-port "$base_port" --state-dir "$state_dir" down)
    fi
}
trap stop EXIT

node "$here/generate-network-config.js" "$profile" "$here/networks/generated"
cd "$here"
npx caliper launch manager \
    --caliper-workspace . \
    --caliper-networkconfig networks/generated/network.yaml \
    --caliper-benchconfig benchmarks/config.yaml \
    --caliper-flow-only-test \
    --caliper-report-path "$here/report.html"
