#!/usr/bin/env bash
# The AWS host's benchmark (not a test; figures go to docs/aws.md):
#  1. cold start of each Lambda binary against a local Runtime API stub, side
#     by side with a bare lambda_runtime "hello" built with the same profile
#     (cargo lambda build --release, as `sam build` runs it), and zip sizes;
#  2. DynamoDB/SQS/SSM requests per order, on the intake path and downstream,
#     read off the functions' logs on the stack deployed to the emulator.
#
#   scripts/aws-emulator.sh start && scripts/aws-bench.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."

VENVS="${ORDERLY_VENVS:-/var/tmp/orderly-venvs}"
BUILD_DIR="${ORDERLY_SAM_BUILD_DIR:-/var/tmp/orderly-sam-build}"
RUNS="${1:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
export AWS_ENDPOINT_URL="http://127.0.0.1:${ORDERLY_AWS_PORT:-4566}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

printf '\n== the test payment gateway; build (release, x86_64) and deploy to the emulator\n'
# Orders are paid by card: the gateway must outlive aws-e2e.sh's deploy.
start_gateway "$((${ORDERLY_AWS_PORT:-4566} + 14000))" "$(mktemp)"
trap 'kill "$gateway_pid" 2>/dev/null || true' EXIT
base_url="$(ORDERLY_SAM_BUILD_MODE=release ./scripts/aws-e2e.sh deploy | tee /dev/stderr | sed -n 's/^API: //p')"
# The baseline: bench/hello-lambda, a bare lambda_runtime function, built
# like the functions are (cargo lambda, the workspace's release profile, stripped).
(cd bench/hello-lambda && PATH="$VENVS/sam/bin:$PATH" cargo lambda build --release --bin hello-lambda)

printf '\n== cold start: process start to its first request for an event (%s runs each)\n' "$RUNS"
python3 scripts/aws_cold_start.py "$RUNS" "${ORDERLY_BENCH_OUT:-/var/tmp}/aws-cold-start.json" \
    hello="$CARGO_TARGET_DIR/lambda/hello-lambda/bootstrap" \
    order-intake="$BUILD_DIR/OrderIntakeFunction/bootstrap" \
    inventory="$BUILD_DIR/InventoryFunction/bootstrap" \
    notification="$BUILD_DIR/NotificationFunction/bootstrap" \
    analytics="$BUILD_DIR/AnalyticsFunction/bootstrap"

printf '\n== AWS requests per order (one order, through the deployed stack)\n'
# Bearer tokens signed with the secret aws-e2e.sh put in the stack's SSM
# parameter, minted by the runner's own `orderly token`.
cargo build -q --bin orderly
token() { ORDERLY_JWT_SECRET="$E2E_JWT_SECRET" "$CARGO_TARGET_DIR/debug/orderly" token "$@"; }
ORDERLY_ADMIN_TOKEN="$(token --sub admin --admin)" ORDERLY_CUSTOMER_TOKEN="$(token --sub alice)" \
    "$VENVS/ministack/bin/python" scripts/aws_requests_per_order.py "$base_url" e2e \
    "${ORDERLY_BENCH_OUT:-/var/tmp}/aws-requests.json"
