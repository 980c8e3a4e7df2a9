#!/usr/bin/env bash
# The Spin host end to end, as CI runs it:
#
#  1. builds the four HTTP components for wasm32-wasip2 (release, optimized;
#     the `--env` build: settings from ORDERLY_* variables, no Spin import);
#  2. installs jco (npm, tests/spin/package-lock.json) and the AWS emulator;
#  3. starts the emulator, creates the tables and queues;
#  4. serves each HTTP component with `jco serve` on its own loopback port,
#     and starts the harness (tests/spin/harness.rs): the front that routes
#     paths to components as spin.toml does, the queue consumers with
#     spin-trigger-sqs semantics and the outbox relays (natively, over the
#     same component code);
#  5. runs the black-box API tests (tests/api) against the front, one at a
#     time, the stack emptied before each.
#
#   scripts/spin-test.sh            # all of it
#   scripts/spin-test.sh --up       # steps 1-4, then waits (Ctrl-C stops): poke it with curl
#
# Everything listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
RUN_DIR="${ORDERLY_SPIN_RUN_DIR:-/var/tmp/orderly-spin-stack}"
AWS_PORT="${ORDERLY_SPIN_AWS_PORT:-4577}"
FRONT_PORT="${ORDERLY_SPIN_PORT:-18080}"
COMPONENT_PORT="${ORDERLY_SPIN_COMPONENT_PORT:-18081}"
UP_ONLY=false
[[ "${1:-}" == "--up" ]] && UP_ONLY=true

step() { printf '\n== spin: %s\n' "$*"; }
mkdir -p "$RUN_DIR"
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    ORDERLY_AWS_PORT="$AWS_PORT" ORDERLY_AWS_RUN_DIR="$RUN_DIR/aws" ./scripts/aws-emulator.sh stop || true
    exit "$status"
}
trap cleanup EXIT INT TERM

# Waits until `url` answers (any HTTP status), or fails after `seconds`,
# also failing at once if the process `pid` died.
wait_http() {
    local url="$1" seconds="$2" pid="$3" log="$4"
    local deadline=$((SECONDS + seconds))
    until curl -s -o /dev/null --max-time 2 "$url"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the process behind $url exited; its log:" >&2
            tail -40 "$log" >&2
            return 1
        fi
        if ((SECONDS > deadline)); then
            echo "$url did not answer within ${seconds}s; log:" >&2
            tail -40 "$log" >&2
            return 1
        fi
        sleep 0.2
    done
}

step "build the HTTP components (wasm32-wasip2, release)"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target list --installed | grep -q wasm32-wasip2
started=$SECONDS
./scripts/spin-build.sh http --env
echo "built in $((SECONDS - started))s"

step "install jco and the AWS emulator"
(cd tests/spin && npm ci --no-audit --no-fund --loglevel=error)
ORDERLY_AWS_PORT="$AWS_PORT" ORDERLY_AWS_RUN_DIR="$RUN_DIR/aws" ./scripts/aws-emulator.sh install

step "start the emulator, create tables and queues"
ORDERLY_AWS_PORT="$AWS_PORT" ORDERLY_AWS_RUN_DIR="$RUN_DIR/aws" ./scripts/aws-emulator.sh start
# --workspace --all-features: the same feature set as the main test build,
# so the harness and the API tests reuse its compiled dependencies.
cargo build --quiet --workspace --all-features --example spin-harness
HARNESS="$CARGO_TARGET_DIR/debug/examples/spin-harness"
export ORDERLY_AWS_ENDPOINT_URL="http://127.0.0.1:$AWS_PORT"
export ORDERLY_AWS_ACCESS_KEY_ID=test ORDERLY_AWS_SECRET_ACCESS_KEY=test ORDERLY_AWS_REGION=us-east-1
export ORDERLY_JWT_SECRET="${ORDERLY_TEST_JWT_SECRET:-spin-ci-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
# Every setting the components and the harness run with, for anyone to source.
{
    "$HARNESS" setup --stage "spin-$AWS_PORT" --max-receives 3
    for name in AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION JWT_SECRET; do
        echo "export ORDERLY_$name=$(printenv "ORDERLY_$name")"
    done
} >"$RUN_DIR/settings.env"
eval "$(cat "$RUN_DIR/settings.env")"

step "serve the HTTP components under jco, and the harness in front"
JCO="$PWD/tests/spin/node_modules/.bin/jco"
ARGS=()
port=$COMPONENT_PORT
for function in order-intake inventory notification analytics; do
    log="$RUN_DIR/$function-http.log"
    # Each under its own process group, so that cleanup ends jco's workers too.
    setsid "$JCO" serve --host 127.0.0.1 --port "$port" --jco-dir "$RUN_DIR/jco-$function" \
        "target/spin/$function-http.wasm" >"$log" 2>&1 </dev/null &
    PIDS+=($!)
    ARGS+=(--component "$function-http=127.0.0.1:$port")
    port=$((port + 1))
done
port=$COMPONENT_PORT
i=0
for function in order-intake inventory notification analytics; do
    wait_http "http://127.0.0.1:$port/" 120 "${PIDS[$i]}" "$RUN_DIR/$function-http.log"
    port=$((port + 1))
    i=$((i + 1))
done
setsid "$HARNESS" serve --listen "127.0.0.1:$FRONT_PORT" --manifest spin.toml "${ARGS[@]}" \
    >"$RUN_DIR/harness.log" 2>&1 </dev/null &
PIDS+=($!)
wait_http "http://127.0.0.1:$FRONT_PORT/health" 60 "${PIDS[-1]}" "$RUN_DIR/harness.log"
curl -s "http://127.0.0.1:$FRONT_PORT/health"
echo

export ORDERLY_TEST_BASE_URL="http://127.0.0.1:$FRONT_PORT"
export ORDERLY_TEST_JWT_SECRET="$ORDERLY_JWT_SECRET"
export ORDERLY_TEST_RESET_URL="$ORDERLY_TEST_BASE_URL/__harness/reset"
if $UP_ONLY; then
    echo "the stack is up on $ORDERLY_TEST_BASE_URL (logs in $RUN_DIR); Ctrl-C stops it"
    wait "${PIDS[-1]}"
    exit 0
fi

step "the API tests against the Spin components"
cargo test --workspace --all-features --test api -- --test-threads=1
