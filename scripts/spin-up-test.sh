#!/usr/bin/env bash
# The whole application on a real Spin, against the AWS emulator, with the
# black-box API suite through Spin's own router: what CI cannot run, since no
# Spin binary can be installed there (scripts/spin-test.sh is CI's version).
#
# Needs `spin` (v4.0.2; or SPIN=/path/to/spin) with the trigger-sqs and
# trigger-cron plugins installed (README "Spin"), and `openssl`.
#
#  1. `spin build`: all ten components, reading Spin variables;
#  2. starts the emulator on 127.0.0.1:4566 (the queue URLs in spin.toml's
#     [[trigger.sqs]] point there) and creates the tables and queues of stage
#     `local` (the names spin.toml's queue URLs use);
#  3. `spin up --listen 127.0.0.1:$ORDERLY_SPIN_UP_PORT` with every variable
#     as SPIN_VARIABLE_*: Spin routes HTTP, spin-trigger-sqs runs the queue
#     components, spin-trigger-cron the relays;
#  4. the harness in front (`serve --spin`), only for the tests' reset
#     route, and the API suite against it.
#
#   scripts/spin-up-test.sh          # all of it
#   scripts/spin-up-test.sh --up     # steps 1-4 without the tests; Ctrl-C stops
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
SPIN="${SPIN:-spin}"
RUN_DIR="${ORDERLY_SPIN_RUN_DIR:-/var/tmp/orderly-spin-up}"
SPIN_PORT="${ORDERLY_SPIN_UP_PORT:-3000}"
FRONT_PORT="${ORDERLY_SPIN_PORT:-18090}"
AWS_PORT=4566
UP_ONLY=false
[[ "${1:-}" == "--up" ]] && UP_ONLY=true
command -v "$SPIN" >/dev/null || { echo "no Spin binary ('$SPIN'): see README \"Spin\"" >&2; exit 2; }

step() { printf '\n== spin up: %s\n' "$*"; }
mkdir -p "$RUN_DIR"
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    ORDERLY_AWS_PORT="$AWS_PORT" ORDERLY_AWS_RUN_DIR="$RUN_DIR/aws" ./scripts/aws-emulator.sh stop || true
    exit "$status"
}
trap cleanup EXIT INT TERM

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

"$SPIN" --version
"$SPIN" plugins list --installed

step "spin build (ten components)"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
"$SPIN" build

step "the emulator on 127.0.0.1:$AWS_PORT, tables and queues of stage local"
emulator_and_harness "$AWS_PORT" "$RUN_DIR/aws"
export ORDERLY_JWT_SECRET="${ORDERLY_TEST_JWT_SECRET:-$(openssl rand -hex 32)}"
"$HARNESS" setup --stage local --max-receives 3 >"$RUN_DIR/settings.env"
eval "$(cat "$RUN_DIR/settings.env")"

step "spin up on 127.0.0.1:$SPIN_PORT"
# spin.toml's variables, from the same settings.
eval "$(sed 's/^export ORDERLY_/export SPIN_VARIABLE_/' "$RUN_DIR/settings.env")"
export SPIN_VARIABLE_AWS_ENDPOINT_URL="$ORDERLY_AWS_ENDPOINT_URL" \
    SPIN_VARIABLE_DYNAMODB_HOST="$ORDERLY_AWS_ENDPOINT_URL" SPIN_VARIABLE_SQS_HOST="$ORDERLY_AWS_ENDPOINT_URL" \
    SPIN_VARIABLE_AWS_ACCESS_KEY_ID=test SPIN_VARIABLE_AWS_SECRET_ACCESS_KEY=test \
    SPIN_VARIABLE_JWT_SECRET="$ORDERLY_JWT_SECRET"
# spin-trigger-sqs reads the standard AWS settings.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL_SQS="$ORDERLY_AWS_ENDPOINT_URL"
setsid "$SPIN" up --listen "127.0.0.1:$SPIN_PORT" >"$RUN_DIR/spin.log" 2>&1 </dev/null &
PIDS+=($!)
wait_http "http://127.0.0.1:$SPIN_PORT/health" 300 "${PIDS[-1]}" "$RUN_DIR/spin.log"
curl -s "http://127.0.0.1:$SPIN_PORT/health"
echo

setsid "$HARNESS" serve --listen "127.0.0.1:$FRONT_PORT" --manifest spin.toml --spin "127.0.0.1:$SPIN_PORT" \
    >"$RUN_DIR/harness.log" 2>&1 </dev/null &
PIDS+=($!)
wait_http "http://127.0.0.1:$FRONT_PORT/health" 60 "${PIDS[-1]}" "$RUN_DIR/harness.log"

export ORDERLY_TEST_BASE_URL="http://127.0.0.1:$FRONT_PORT"
export ORDERLY_TEST_JWT_SECRET="$ORDERLY_JWT_SECRET"
export ORDERLY_TEST_RESET_URL="$ORDERLY_TEST_BASE_URL/__harness/reset"
if $UP_ONLY; then
    echo "Spin is up on http://127.0.0.1:$SPIN_PORT (logs in $RUN_DIR); Ctrl-C stops it"
    wait "${PIDS[0]}"
    exit 0
fi

step "the API tests through Spin's router"
cargo test --workspace --all-features --test api -- --test-threads=1
