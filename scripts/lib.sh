# Shared by the test scripts: sourced, not executed.
#
#   emulator_and_harness PORT DIR  installs and starts the AWS emulator on
#                                  127.0.0.1:PORT (state and log in DIR), builds
#                                  the Spin harness ($HARNESS) and exports the
#                                  ORDERLY_AWS_* settings that reach it; the
#                                  caller stops it (aws-emulator.sh stop).
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

start_runner() {
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
    cargo build -q --bin orderly
    bin="$CARGO_TARGET_DIR/debug/orderly"
    work="$(mktemp -d)"
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    base="http://127.0.0.1:$port"
    export ORDERLY_DATA_DIR="$work/data" ORDERLY_JWT_SECRET="script-secret-$(date +%s%N)-0123456789abcdef"
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
    HARNESS="$CARGO_TARGET_DIR/debug/examples/spin-harness"
    export ORDERLY_AWS_ENDPOINT_URL="http://127.0.0.1:$port"
    export ORDERLY_AWS_ACCESS_KEY_ID=test ORDERLY_AWS_SECRET_ACCESS_KEY=test ORDERLY_AWS_REGION=us-east-1
}
