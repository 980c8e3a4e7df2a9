#!/usr/bin/env bash
# The Spin host end to end, as CI runs it:
#
#  1. builds the four HTTP components for wasm32-wasip2 (release, optimized;
#     the `--env` build: settings from ORDERLY_* variables, no Spin import);
#  2. installs the wasi:http hosts (wasmtime-cli, pinned, via cargo install
#     into a cache reused when present; jco from tests/spin/package-lock.json)
#     and the AWS emulator;
#  3. starts the emulator, creates the tables and queues;
#  4. for each host (wasmtime, then jco): serves each HTTP component on its
#     own loopback port (`wasmtime serve` / `jco serve`), starts the harness
#     (tests/spin/harness.rs): the front that routes paths to components as
#     spin.toml does, the queue consumers with spin-trigger-sqs semantics and
#     the outbox relays (natively, over the same component code); and runs
#     the black-box API tests (tests/api) against the front, one at a time,
#     the stack emptied before each.
#
#   scripts/spin-test.sh                          # all of it
#   scripts/spin-test.sh --up                     # steps 1-4 with the first host, then waits
#                                                 # (Ctrl-C stops): poke it with curl
#   ORDERLY_SPIN_HOSTS=jco scripts/spin-test.sh   # one host only
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
GATEWAY_PORT="${ORDERLY_SPIN_GATEWAY_PORT:-$((FRONT_PORT + 10))}"
HOSTS=(${ORDERLY_SPIN_HOSTS:-wasmtime jco})
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

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

step "build the HTTP components (wasm32-wasip2, release)"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target list --installed | grep -q wasm32-wasip2
started=$SECONDS
./scripts/spin-build.sh http --env
echo "built in $((SECONDS - started))s"

step "install the wasi:http hosts (${HOSTS[*]})"
for host in "${HOSTS[@]}"; do
    case "$host" in
    wasmtime)
        if [[ "$("$WASMTIME" --version 2>/dev/null)" != "wasmtime $WASMTIME_VERSION"* ]]; then
            started=$SECONDS
            # Only the `serve` and `run` commands and what they need, to keep the build short.
            cargo install --quiet --locked wasmtime-cli --version "$WASMTIME_VERSION" --root "$WASMTIME_ROOT" \
                --no-default-features --features serve,run,cranelift,cache,parallel-compilation,pooling-allocator,component-model,component-model-async
            echo "wasmtime-cli $WASMTIME_VERSION built in $((SECONDS - started))s"
        fi
        "$WASMTIME" --version
        ;;
    jco) (cd tests/spin && npm ci --no-audit --no-fund --loglevel=error) ;;
    *) echo "unknown wasi:http host '$host' (ORDERLY_SPIN_HOSTS: wasmtime, jco)" >&2; exit 2 ;;
    esac
done

step "start the emulator, create tables and queues; start the test payment gateway"
emulator_and_harness "$AWS_PORT" "$RUN_DIR/aws"
start_gateway "$GATEWAY_PORT" "$RUN_DIR/gateway.log"
PIDS+=("$gateway_pid")
export ORDERLY_JWT_SECRET="${ORDERLY_TEST_JWT_SECRET:-spin-ci-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
# Card payments through the test gateway, with a short timeout and cool-down
# so that the degraded-mode tests run in seconds.
export ORDERLY_PAYMENT_URL="http://127.0.0.1:$GATEWAY_PORT" ORDERLY_PAYMENT_TIMEOUT=1s \
    ORDERLY_PAYMENT_BREAKER_THRESHOLD=3 ORDERLY_PAYMENT_BREAKER_COOL_DOWN=2s
# The browser origin the API tests' CORS cases use (tests/api/helpers.rs CORS_ORIGIN).
export ORDERLY_CORS_ORIGINS="https://shop.example"
# Every setting the components and the harness run with, for anyone to source.
{
    "$HARNESS" setup --stage "spin-$AWS_PORT" --max-receives 3
    for name in AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION JWT_SECRET CORS_ORIGINS \
        PAYMENT_URL PAYMENT_TIMEOUT PAYMENT_BREAKER_THRESHOLD PAYMENT_BREAKER_COOL_DOWN; do
        echo "export ORDERLY_$name=$(printenv "ORDERLY_$name")"
    done
} >"$RUN_DIR/settings.env"
eval "$(cat "$RUN_DIR/settings.env")"

# Serves each HTTP component under `host` (its own port, its own process
# group so that cleanup ends the host's workers too) and the harness in front;
# appends their pids to PIDS and leaves the host's pids in HOST_PIDS.
serve_stack() {
    local host="$1" port=$COMPONENT_PORT function log
    ARGS=()
    HOST_PIDS=()
    for function in order-intake inventory notification analytics; do
        log="$RUN_DIR/$host-$function-http.log"
        serve_component "$host" "target/spin/env/$function-http.wasm" "$port" "$log"
        PIDS+=($!)
        HOST_PIDS+=($!)
        ARGS+=(--component "$function-http=127.0.0.1:$port")
        port=$((port + 1))
    done
    port=$COMPONENT_PORT
    local i=0
    for function in order-intake inventory notification analytics; do
        wait_http "http://127.0.0.1:$port/" 120 "${HOST_PIDS[$i]}" "$RUN_DIR/$host-$function-http.log"
        port=$((port + 1))
        i=$((i + 1))
    done
    # shellcheck disable=SC2086 # ORDERLY_SPIN_HARNESS_FLAGS: words, e.g. --no-triggers
    setsid "$HARNESS" serve --listen "127.0.0.1:$FRONT_PORT" --manifest spin.toml "${ARGS[@]}" ${ORDERLY_SPIN_HARNESS_FLAGS:-} \
        >"$RUN_DIR/$host-harness.log" 2>&1 </dev/null &
    PIDS+=($!)
    HOST_PIDS+=($!)
    wait_http "http://127.0.0.1:$FRONT_PORT/health" 60 "${PIDS[-1]}" "$RUN_DIR/$host-harness.log"
    curl -s "http://127.0.0.1:$FRONT_PORT/health"
    echo
}

stop_stack() {
    local pid
    for pid in "${HOST_PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
    for pid in "${HOST_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    HOST_PIDS=()
}

export ORDERLY_TEST_BASE_URL="http://127.0.0.1:$FRONT_PORT"
export ORDERLY_TEST_JWT_SECRET="$ORDERLY_JWT_SECRET"
export ORDERLY_TEST_RESET_URL="$ORDERLY_TEST_BASE_URL/__harness/reset"
export ORDERLY_TEST_GATEWAY_URL="$ORDERLY_PAYMENT_URL"
if $UP_ONLY; then
    step "serve the HTTP components under ${HOSTS[0]}, and the harness in front"
    serve_stack "${HOSTS[0]}"
    echo "the stack is up on $ORDERLY_TEST_BASE_URL (logs in $RUN_DIR); Ctrl-C stops it"
    wait "${PIDS[-1]}"
    exit 0
fi

# Built once, before any host is up: the tests' first run must not compile.
cargo test --quiet --workspace --all-features --test api --no-run
for host in "${HOSTS[@]}"; do
    step "serve the HTTP components under $host, and the harness in front"
    serve_stack "$host"
    step "the API tests against the components under $host"
    cargo test --workspace --all-features --test api -- --test-threads=1
    stop_stack
done
