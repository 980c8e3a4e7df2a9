#!/usr/bin/env bash
# The dashboard in headless Chromium: starts a runner on a free loopback port
# with a throwaway data dir, runs tests/dashboard (node:test + playwright-core
# driving Debian's chromium), stops the runner. SCREENSHOT=path keeps a picture.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
(cd tests/dashboard && npm ci --no-audit --no-fund --loglevel=error)

. scripts/lib.sh
start_runner

ORDERLY_URL="$base" \
ORDERLY_ADMIN_TOKEN="$("$bin" token --sub dashboard-admin --admin)" \
ORDERLY_CUSTOMER_TOKEN="$("$bin" token --sub dashboard-customer)" \
    node --test tests/dashboard/
