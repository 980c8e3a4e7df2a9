#!/usr/bin/env bash
# An emulated AWS (ministack, from PyPI) on 127.0.0.1 for the AWS adapter
# contract suites, the SAM deploy and the end-to-end API tests.
#
#   scripts/aws-emulator.sh install   # venvs: ministack[full]; aws-sam-cli + cfn-lint + cargo-lambda
#   scripts/aws-emulator.sh start     # starts it (if not running) and waits until healthy
#   scripts/aws-emulator.sh stop      # stops the one this script started
#
# ministack[full] and aws-sam-cli pin conflicting boto versions: each gets
# its own venv under $ORDERLY_VENVS.
set -euo pipefail
cd "$(dirname "$0")/.."

VENVS="${ORDERLY_VENVS:-/var/tmp/orderly-venvs}"
PORT="${ORDERLY_AWS_PORT:-4566}"
RUN_DIR="${ORDERLY_AWS_RUN_DIR:-/var/tmp/orderly-aws-emulator}"
MINISTACK_VERSION="${MINISTACK_VERSION:-1.5.33}"
SAM_VERSION="${SAM_VERSION:-1.170.0}"
CFN_LINT_VERSION="${CFN_LINT_VERSION:-1.58.0}"
CARGO_LAMBDA_VERSION="${CARGO_LAMBDA_VERSION:-1.9.2}"

venv() {
    local name="$1"
    shift
    if ! "$VENVS/$name/bin/python" -c 'import sys' >/dev/null 2>&1; then
        python3 -m venv "$VENVS/$name"
    fi
    # pip answers fast when everything is already installed.
    "$VENVS/$name/bin/pip" install --quiet --disable-pip-version-check "$@"
}

install() {
    mkdir -p "$VENVS"
    venv ministack "ministack[full]==$MINISTACK_VERSION" &
    local ministack=$!
    venv sam "aws-sam-cli==$SAM_VERSION" "cfn-lint==$CFN_LINT_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION"
    wait "$ministack"
}

healthy() {
    python3 - "$PORT" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_ministack/health", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}

start() {
    if healthy; then
        echo "emulator already answering on 127.0.0.1:$PORT"
        return 0
    fi
    mkdir -p "$RUN_DIR/state" "$RUN_DIR/tmp"
    # Loopback only; no IoT listener on 0.0.0.0:8883; state and temp files
    # (Lambda zips it runs) under the run directory.
    BIND_HOST=127.0.0.1 GATEWAY_PORT="$PORT" IOT_MTLS_ENABLED=0 \
        STATE_DIR="$RUN_DIR/state" TMPDIR="$RUN_DIR/tmp" \
        setsid "$VENVS/ministack/bin/ministack" >"$RUN_DIR/ministack.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/pid"
    local deadline=$((SECONDS + 60))
    until healthy; do
        if ! kill -0 "$(cat "$RUN_DIR/pid")" 2>/dev/null; then
            echo "the emulator exited; its log:" >&2
            tail -50 "$RUN_DIR/ministack.log" >&2
            return 1
        fi
        if ((SECONDS > deadline)); then
            echo "the emulator did not become healthy within 60 s" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "emulator healthy on http://127.0.0.1:$PORT (pid $(cat "$RUN_DIR/pid"), log $RUN_DIR/ministack.log)"
}

stop() {
    [[ -f "$RUN_DIR/pid" ]] || return 0
    local pid
    pid="$(cat "$RUN_DIR/pid")"
    if kill -0 "$pid" 2>/dev/null; then
        # It leads its own process group (setsid), with the Lambda processes
        # it started: end that group, never ours.
        if [[ "$(ps -o pgid= "$pid" | tr -d ' ')" == "$pid" ]]; then
            kill -- "-$pid" 2>/dev/null || true
        else
            kill "$pid" 2>/dev/null || true
        fi
        local deadline=$((SECONDS + 20))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$RUN_DIR/pid"
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
