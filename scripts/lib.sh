# shellcheck shell=bash
# Shared by the test scripts: sourced, not executed.
#
#   emulator_and_harness PORT DIR  installs and starts the AWS emulator on
#                                  127.0.0.1:PORT (state and log in DIR), builds
#                                  the Spin harness ($HARNESS) and exports the
#                                  ORDERLY_AWS_* settings that reach it; the
#                                  caller stops it (aws-emulator.sh stop).
#   serve_component HOST WASM PORT LOG
#                                  serves a wasi:http component under HOST
#                                  (wasmtime | jco) on 127.0.0.1:PORT in its own
#                                  process group, passing every ORDERLY_*
#                                  variable; its pid in $!.
#   wait_http URL SECONDS PID LOG  waits until URL answers (any HTTP status);
#                                  fails after SECONDS, or at once if the
#                                  process PID died, showing the end of LOG.
#
#   start_runner [ENV=VALUE ...]   builds the debug binary, starts it on a free
#                                  loopback port with a throwaway data dir and a
#                                  fresh secret, waits until /health answers,
#                                  and stops it when the script exits.
# After it: $bin (the binary), $base (http://127.0.0.1:PORT), $work (temp dir),
# ORDERLY_DATA_DIR and ORDERLY_JWT_SECRET exported (so `$bin token` works).
#
#   E2E_JWT_SECRET                 the HS256 secret of the stack aws-e2e.sh
#                                  deploys (its SSM parameter); the API tests
#                                  sign with the same (tests/api/helpers.rs
#                                  SECRET), aws-bench.sh through `orderly token`.

# shellcheck disable=SC2034 # for the scripts that source this
E2E_JWT_SECRET="test-secret-test-secret-test-secret-0123456789"

start_runner() {
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
    cargo build -q --bin orderly
    bin="$CARGO_TARGET_DIR/debug/orderly"
    work="$(mktemp -d)"
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    base="http://127.0.0.1:$port"
    ORDERLY_JWT_SECRET="script-secret-$(date +%s%N)-0123456789abcdef"
    export ORDERLY_DATA_DIR="$work/data" ORDERLY_JWT_SECRET
    env "$@" ORDERLY_ADDR="127.0.0.1:$port" "$bin" > "$work/runner.log" 2>&1 &
    runner=$!
    trap 'kill "$runner" 2>/dev/null || true; wait "$runner" 2>/dev/null || true; rm -rf "$work"' EXIT
    for _ in $(seq 1 300); do
        curl -fsS "$base/health" >/dev/null 2>&1 && return 0
        kill -0 "$runner" 2>/dev/null || break
        sleep 0.1
    done
    echo "the runner did not come up:" >&2
    cat "$work/runner.log" >&2
    return 1
}

# start_gateway PORT LOG: `orderly gateway` (the test payment gateway, the
# protocol of docs/contract.md §6) on 127.0.0.1:PORT, waited for; its pid in
# $gateway_pid. The caller stops it.
start_gateway() {
    local port="$1" log="$2"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
    cargo build -q --bin orderly
    "$CARGO_TARGET_DIR/debug/orderly" gateway --addr "127.0.0.1:$port" >"$log" 2>&1 </dev/null &
    gateway_pid=$!
    wait_http "http://127.0.0.1:$port/_gateway/authorizations" 30 "$gateway_pid" "$log"
}

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

emulator_and_harness() {
    local port="$1" dir="$2"
    ORDERLY_AWS_PORT="$port" ORDERLY_AWS_RUN_DIR="$dir" ./scripts/aws-emulator.sh install
    ORDERLY_AWS_PORT="$port" ORDERLY_AWS_RUN_DIR="$dir" ./scripts/aws-emulator.sh start
    # --workspace --all-features: the same feature set as the main test build,
    # so the harness and the API tests reuse its compiled dependencies.
    cargo build --quiet --workspace --all-features --example spin-harness
    # shellcheck disable=SC2034 # for the caller
    HARNESS="$CARGO_TARGET_DIR/debug/examples/spin-harness"
    export ORDERLY_AWS_ENDPOINT_URL="http://127.0.0.1:$port"
    export ORDERLY_AWS_ACCESS_KEY_ID=test ORDERLY_AWS_SECRET_ACCESS_KEY=test ORDERLY_AWS_REGION=us-east-1
}

# wasmtime-cli 48 is the newest that builds with Rust 1.95 (49 needs 1.96);
# scripts/spin-test.sh installs it here.
WASMTIME_VERSION=48.0.8
WASMTIME_ROOT="${ORDERLY_TOOLS_DIR:-/var/tmp/orderly-tools}/wasmtime-$WASMTIME_VERSION"
WASMTIME="$WASMTIME_ROOT/bin/wasmtime"
JCO="$PWD/tests/spin/node_modules/.bin/jco"

serve_component() {
    local host="$1" wasm="$2" port="$3" log="$4"
    case "$host" in
    wasmtime)
        # -S cli: Rust's std needs wasi:cli; --env: the ORDERLY_* settings
        # (the --env build reads nothing else); outgoing HTTP is wasi:http.
        local env_args=() name
        for name in $(compgen -e | grep '^ORDERLY_'); do env_args+=(--env "$name"); done
        setsid "$WASMTIME" serve -S cli "${env_args[@]}" --addr "127.0.0.1:$port" "$wasm" >"$log" 2>&1 </dev/null &
        ;;
    jco)
        setsid "$JCO" serve --host 127.0.0.1 --port "$port" --jco-dir "$log.jco" "$wasm" >"$log" 2>&1 </dev/null &
        ;;
    *)
        echo "unknown wasi:http host '$host' (wasmtime, jco)" >&2
        return 2
        ;;
    esac
}
