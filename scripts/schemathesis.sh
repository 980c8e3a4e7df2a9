#!/usr/bin/env bash
# Hostile input against the running API, driven by its own OpenAPI document:
# schemathesis (PyPI) generates requests for every operation and checks that
# none answers 5xx and every documented response matches its schema.
# EXAMPLES (per operation, default 50) bounds the run; REPORT=path keeps the
# JSON report. Rate limits are off for the run: they would only answer 429.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ORDERLY_VENVS:-/var/tmp/orderly-venvs}/schemathesis"

if [ ! -x "$venv/bin/st" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi

. scripts/lib.sh
start_runner ORDERLY_RATE_LIMIT=off

admin="$("$bin" token --sub schemathesis-admin --admin)"
# Seed the catalog so that generated orders can reach the saga.
for sku in TEA A B; do
    curl -fsS -X PUT "$base/api/v1/products/$sku" -H "Authorization: Bearer $admin" \
        -H 'Content-Type: application/json' -d '{"name":"Seeded","price":"1.00","currency":"EUR","stock":1000000}' >/dev/null
done

report="${REPORT:-$work/schemathesis.json}"
status=0
"$venv/bin/st" run "$base/api/v1/openapi.json" \
    --header "Authorization: Bearer $admin" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "${EXAMPLES:-50}" \
    --seed 20261127 | tee "$work/st.out" || status=$?
# "724 generated, 724 passed" (and ", N failed" when any did).
python3 - "$work/st.out" "$report" "$status" "${EXAMPLES:-50}" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
summary = re.search(r"(\d+) generated, (\d+) passed(?:, (\d+) failed)?", text)
json.dump({
    "cases_generated": int(summary.group(1)) if summary else None,
    "cases_passed": int(summary.group(2)) if summary else None,
    "cases_failed": int(summary.group(3) or 0) if summary else None,
    "max_examples_per_operation": int(sys.argv[4]),
    "checks": ["not_a_server_error", "response_schema_conformance"],
    "exit_status": int(sys.argv[3]),
}, open(sys.argv[2], "w"), indent=2)
PY
exit "$status"
