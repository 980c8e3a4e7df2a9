#!/usr/bin/env bash
# End to end on emulated AWS: `sam build` (x86_64: the emulator runs the zips
# on this machine), `sam deploy` of template.yaml to ministack, the two
# emulator fix-ups (HttpApi routes, TTL; see docs/aws.md), then the same
# black-box API tests as against the local runner, through the HTTP API, so
# that every order flows through real Lambda invocations, SQS event source
# mappings, DynamoDB Streams and DynamoDB.
#
#   scripts/aws-emulator.sh install && scripts/aws-emulator.sh start
#   scripts/aws-e2e.sh            # build, deploy, test
#   scripts/aws-e2e.sh deploy     # build and deploy only (prints the API URL)
set -euo pipefail
cd "$(dirname "$0")/.."

VENVS="${ORDERLY_VENVS:-/var/tmp/orderly-venvs}"
PORT="${ORDERLY_AWS_PORT:-4566}"
BUILD_DIR="${ORDERLY_SAM_BUILD_DIR:-/var/tmp/orderly-sam-build}"
GATEWAY_PORT="${ORDERLY_GATEWAY_PORT:-$((PORT + 14000))}"
STACK=orderly-e2e
STAGE=e2e
# The stack reads its JWT secret ($E2E_JWT_SECRET) from SSM like any deployment.
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export SAM_CLI_TELEMETRY=0
export PATH="$VENVS/sam/bin:$PATH"
py() { "$VENVS/ministack/bin/python" "$@"; }
step() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
started=$(now)

# ORDERLY_SAM_BUILD_MODE=debug (what CI uses) builds unoptimised binaries:
# the same code, a third of the compile time; the release build is what the
# benchmark (scripts/aws-bench.sh) and a real deployment use.
if [[ "${ORDERLY_SAM_BUILD_MODE:-release}" == debug ]]; then
    export SAM_BUILD_MODE=debug
fi
step "sam build (x86_64, ${ORDERLY_SAM_BUILD_MODE:-release})"
sam build --build-dir "$BUILD_DIR" --parameter-overrides Architecture=x86_64
for zip_dir in "$BUILD_DIR"/*Function; do
    printf '%-28s %s bytes\n' "$(basename "$zip_dir")" "$(stat -c %s "$zip_dir/bootstrap")"
done
built=$(now)

step "start the test payment gateway; sam deploy to the emulator"
gateway_url="http://127.0.0.1:$GATEWAY_PORT"
# A caller that outlives this script (aws-bench.sh) starts its own gateway first.
if ! curl -fs -o /dev/null "$gateway_url/_gateway/authorizations"; then
    gateway_log="$(mktemp)"
    start_gateway "$GATEWAY_PORT" "$gateway_log"
    trap 'kill "$gateway_pid" 2>/dev/null || true; rm -f "$gateway_log"' EXIT
fi
py - "$E2E_JWT_SECRET" "$gateway_url" <<'EOF'
import sys, boto3
ssm = boto3.client("ssm")
ssm.put_parameter(Name="/orderly/e2e/jwt-secret", Value=sys.argv[1], Type="SecureString", Overwrite=True)
ssm.put_parameter(Name="/orderly/e2e/payment-url", Value=sys.argv[2], Type="SecureString", Overwrite=True)
EOF
sam deploy --template-file "$BUILD_DIR/template.yaml" --stack-name "$STACK" --resolve-s3 \
    --capabilities CAPABILITY_IAM --no-confirm-changeset --no-fail-on-empty-changeset \
    --parameter-overrides Stage="$STAGE" Architecture=x86_64 MaxReceiveCount=3 StockShards=4 \
    QueueVisibilityTimeout=10 JwtSecretParameter=/orderly/e2e/jwt-secret MetricMathAlarms=false \
    PayWithGateway=true PaymentUrlParameter=/orderly/e2e/payment-url PaymentTimeout=2s PaymentBreakerThreshold=3 PaymentBreakerCoolDown=2s \
    AwsEndpointUrl="$AWS_ENDPOINT_URL" CorsOrigins=https://shop.example EnableWaf=true
api_id="$(py scripts/aws_emulator_fixups.py template.yaml "$STACK")"
base_url="$AWS_ENDPOINT_URL/_aws/execute-api/$api_id/\$default"
echo "API: $base_url"
deployed=$(now)

# The first request of each function is its cold start; wait until the API answers.
deadline=$((SECONDS + 120))
until py -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1] + '/health', timeout=30)" "$base_url" 2>/dev/null; do
    if ((SECONDS > deadline)); then
        echo "the deployed API did not answer /health within 120 s" >&2
        exit 1
    fi
    sleep 0.5
done
[[ "${1:-}" == "deploy" ]] && exit 0

step "the API tests, through the emulated HTTP API"
flash_sale_report="$BUILD_DIR/flash-sale.json"
rm -f "$flash_sale_report"
ORDERLY_TEST_BASE_URL="$base_url" ORDERLY_TEST_AWS_ENDPOINT="$AWS_ENDPOINT_URL" ORDERLY_TEST_STAGE="$STAGE" \
    ORDERLY_TEST_GATEWAY_URL="$gateway_url" ORDERLY_TEST_FLASH_SALE_REPORT="$flash_sale_report" \
    cargo test --workspace --all-features --test api --test aws_e2e -- --test-threads=1
py - "$flash_sale_report" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
f, post = r["flash_sale"], r["routes"]["POST /api/v1/orders"]
print(f"flash sale through the stack: {f['accepted']} buyers at {r['per_second']:.0f}/s, "
      f"{f['confirmed']} confirmed, {f['rejected']} rejected, {f['pending']} pending; "
      f"POST p50 {post['p50_ms']:.0f} ms p99 {post['p99_ms']:.0f} ms; "
      f"202 -> final p50 {r['accepted_to_final_p50_ms']:.0f} ms p99 {r['accepted_to_final_p99_ms']:.0f} ms")
EOF

step "every function's metrics reached its logs as CloudWatch EMF"
py scripts/aws_emf_check.py "$STAGE"

step "every request a function made is an action its role grants (the emulator does not enforce IAM)"
py scripts/aws_iam_check.py "$STAGE"
tested=$(now)

py - "$started" "$built" "$deployed" "$tested" <<'EOF'
import sys
s, b, d, t = map(float, sys.argv[1:])
print(f"e2e timings: build {b - s:.0f} s, deploy + fix-ups {d - b:.0f} s, API tests {t - d:.0f} s")
EOF
