#!/usr/bin/env bash
# The dashboard in headless Chromium: starts a runner on a free loopback port
# with a throwaway data dir, runs tests/dashboard (node:test + playwright-core
# driving Debian's chromium), stops the runner. SCREENSHOT=path keeps a picture.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"

if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
(cd tests/dashboard && npm ci --no-audit --no-fund --loglevel=error)

cargo build -q --bin orderly
bin="$CARGO_TARGET_DIR/debug/orderly"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export ORDERLY_DATA_DIR="$work/data" ORDERLY_JWT_SECRET="dashboard-test-secret-$(date +%s%N)-0123456789"
ORDERLY_ADDR="127.0.0.1:$port" "$bin" > "$work/runner.log" 2>&1 &
runner=$!
trap 'kill "$runner" 2>/dev/null || true; wait "$runner" 2>/dev/null || true; rm -rf "$work"' EXIT

for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/health" >/dev/null || { cat "$work/runner.log"; exit 1; }

ORDERLY_URL="http://127.0.0.1:$port" \
ORDERLY_ADMIN_TOKEN="$("$bin" token --sub dashboard-admin --admin)" \
ORDERLY_CUSTOMER_TOKEN="$("$bin" token --sub dashboard-customer)" \
    node --test tests/dashboard/
