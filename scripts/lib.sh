# Shared by the scripts that need a running runner: sourced, not executed.
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
