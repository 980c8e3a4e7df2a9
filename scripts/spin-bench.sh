#!/usr/bin/env bash
# The Spin host's benchmark (not a test): component sizes, and per-request
# latency of GET /api/v1/products/{sku} and POST /api/v1/orders under a
# wasi:http host CI uses (`wasmtime serve` or jco), side by side in one run
# with a hello-world spin-sdk 5.2 component under the same host; the same
# requests through the same routers natively against the same emulator give
# the emulator's share.
#
#   scripts/spin-bench.sh [--host wasmtime|jco] [--requests N] [--baseline WASM]
#       # defaults: wasmtime, 300; JSON in docs/spin-benchmark-<host>.json
#       # --baseline: another build of inventory-http (e.g. main's, from
#       # `scripts/spin-build.sh inventory http --env` in a checkout of it),
#       # served beside the new one and measured in the same rounds
#
# Ports: the stack's (scripts/spin-test.sh), then the hello world on
# ORDERLY_SPIN_HELLO_PORT and the baseline on the port after it.
#
# Starts the stack with scripts/spin-test.sh --up (emulator, components,
# harness), everything on 127.0.0.1, and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
RUN_DIR="${ORDERLY_SPIN_RUN_DIR:-/var/tmp/orderly-spin-stack}"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
REQUESTS=300
HOST=wasmtime
BASELINE=
while (($#)); do
    case "$1" in
    --requests) REQUESTS="$2"; shift 2 ;;
    --host) HOST="$2"; shift 2 ;;
    --baseline) BASELINE="$(realpath "$2")"; shift 2 ;;
    *) echo "usage: $0 [--host wasmtime|jco] [--requests N] [--baseline WASM]" >&2; exit 2 ;;
    esac
done
COMPONENT_PORT="${ORDERLY_SPIN_COMPONENT_PORT:-18081}"
HELLO_PORT="${ORDERLY_SPIN_HELLO_PORT:-$((COMPONENT_PORT + 10))}"
mkdir -p "$RUN_DIR"

# The hello world: bench/hello-spin, the smallest spin-sdk 5.2 HTTP
# component, with the components' profile (its own Cargo.toml).
cargo build --quiet --release --target wasm32-wasip2 --manifest-path bench/hello-spin/Cargo.toml
HELLO_WASM="$CARGO_TARGET_DIR/wasm32-wasip2/release/hello_spin.wasm"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# Limits far above the benchmark's rate: the buckets are still taken (two
# DynamoDB round trips per request), never refused.
export ORDERLY_RATE_LIMIT_ANON_READ=100000/s:100000 ORDERLY_RATE_LIMIT_AUTH_WRITE=100000/s:100000
ORDERLY_TEST_JWT_SECRET="bench-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export ORDERLY_TEST_JWT_SECRET
: >"$RUN_DIR/bench-stack.log"   # not an earlier run's "the stack is up"
# No queue loops or relays: their polling would slow the emulator the
# requests measured here wait on.
ORDERLY_SPIN_HOSTS="$HOST" ORDERLY_SPIN_HARNESS_FLAGS=--no-triggers setsid ./scripts/spin-test.sh --up >"$RUN_DIR/bench-stack.log" 2>&1 </dev/null &
PIDS+=($!)
deadline=$((SECONDS + 1800))
until grep -q "the stack is up" "$RUN_DIR/bench-stack.log"; do
    if ! kill -0 "${PIDS[0]}" 2>/dev/null || ((SECONDS > deadline)); then
        echo "the stack did not come up; its log:" >&2
        tail -40 "$RUN_DIR/bench-stack.log" >&2
        exit 1
    fi
    sleep 1
done
# The hello world under the same host (installed by the stack's start).
serve_component "$HOST" "$HELLO_WASM" "$HELLO_PORT" "$RUN_DIR/hello.log"
PIDS+=($!)
wait_http "http://127.0.0.1:$HELLO_PORT/" 120 "${PIDS[-1]}" "$RUN_DIR/hello.log"
# The settings the stack runs with (tables, queues), for the native side.
eval "$(grep '^export ORDERLY_' "$RUN_DIR/settings.env")"
# The baseline build, with the same settings as the stack's.
COMPARE=()
if [[ -n "$BASELINE" ]]; then
    serve_component "$HOST" "$BASELINE" "$((HELLO_PORT + 1))" "$RUN_DIR/baseline.log"
    PIDS+=($!)
    wait_http "http://127.0.0.1:$((HELLO_PORT + 1))/health" 120 "${PIDS[-1]}" "$RUN_DIR/baseline.log"
    COMPARE=(--baseline "http://127.0.0.1:$((HELLO_PORT + 1))")
fi

# The native side measures the emulator's share: build it optimized.
cargo build --quiet --release --workspace --all-features --example spin-harness

echo "== component sizes (bytes)"
wc -c target/spin/env/*-http.wasm "$HELLO_WASM"
echo "== latency, $REQUESTS sequential requests each, interleaved"
"$CARGO_TARGET_DIR/release/examples/spin-harness" bench \
    --hello "http://127.0.0.1:$HELLO_PORT/" \
    --intake "http://127.0.0.1:$COMPONENT_PORT" \
    --inventory "http://127.0.0.1:$((COMPONENT_PORT + 1))" \
    --requests "$REQUESTS" --host "$HOST" --json "docs/spin-benchmark-$HOST.json" "${COMPARE[@]}"
