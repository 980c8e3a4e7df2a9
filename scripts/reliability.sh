#!/usr/bin/env bash
# Regenerates docs/reliability.md from runs, not by hand: the fault suite
# (release build, each scenario writes its figures as JSON), the parser
# property tests, and schemathesis against the live OpenAPI document.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
out=docs/reliability
mkdir -p "$out"
rm -f "$out"/*.json

ORDERLY_RELIABILITY_DIR="$PWD/$out" cargo test --release --test faults -- --test-threads=1

cases="${PROPTEST_CASES:-10000}"
PROPTEST_CASES="$cases" cargo test --release --test hostile_input 2>&1 | tee "$out/proptest.log" | tail -3
properties="$(grep -c '^test .* ok$' "$out/proptest.log" || true)"
printf '{"properties": %s, "cases_per_property": %s}\n' "$properties" "$cases" > "$out/proptest.json"
rm -f "$out/proptest.log"

REPORT="$PWD/$out/schemathesis.json" EXAMPLES="${EXAMPLES:-100}" ./scripts/schemathesis.sh > /dev/null

python3 scripts/render_reliability.py "$out" > docs/reliability.md
echo "wrote docs/reliability.md"
