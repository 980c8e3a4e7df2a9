#!/usr/bin/env bash
# One command per host for local development, on the AWS emulator:
#
#   scripts/dev.sh lambda [--smoke]   the four Lambda functions under `cargo lambda watch`
#   scripts/dev.sh spin [--smoke]     the Spin app under `spin up` (needs a Spin binary)
#
# (The local runner needs none of this: `cargo run --release`.)
#
# `lambda`:
#  1. starts the emulator (scripts/aws-emulator.sh) and creates the tables and
#     FIFO queues of stage `dev` with the harness's `setup` (scripts/lib.sh,
#     tests/spin/harness.rs: the same as the Spin stack's);
#  2. runs `cargo lambda watch` for each function (rebuilt on change) with
#     every ORDERLY_* setting, each behind its own invoke port, and waits
#     until each has answered once (the first answer compiles it);
#  3. starts the harness in front: one address routing paths to the
#     functions as the HTTP API does, and Lambda's triggers delivered through
#     cargo lambda's invoke API (SQS batches with ReportBatchItemFailures,
#     the outbox sweep every 250 ms);
#  4. prints where it listens and how to mint a token, and waits: Ctrl-C
#     stops everything it started. With --smoke it instead sends one order
#     through the stack, waits until it is `confirmed`, and stops.
#
# `spin`: scripts/spin-up-test.sh --up (spin build, the emulator on 4566 with
# stage `local`, `spin up` with the trigger plugins, the harness's front),
# then the same token hint or smoke order.
#
# Everything listens on 127.0.0.1. Settings (defaults): ORDERLY_DEV_PORT
# (3000: the front), ORDERLY_DEV_AWS_PORT (4566; `lambda` only: spin.toml's
# queue URLs name 4566), ORDERLY_DEV_LAMBDA_PORT (9000: the first of four
# invoke ports), ORDERLY_DEV_RUN_DIR (/var/tmp/orderly-dev-<host>: logs and
# settings.env), ORDERLY_DEV_SPIN_PORT (3001: `spin up` itself).
set -euo pipefail
cd "$(dirname "$0")/.."

HOST="${1:-}"
SMOKE=false
[[ "${2:-}" == "--smoke" ]] && SMOKE=true
case "$HOST" in
lambda | spin) ;;
*)
    echo "usage: scripts/dev.sh lambda|spin [--smoke]" >&2
    exit 2
    ;;
esac

started=$SECONDS
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
VENVS="${ORDERLY_VENVS:-/var/tmp/orderly-venvs}"
RUN_DIR="${ORDERLY_DEV_RUN_DIR:-/var/tmp/orderly-dev-$HOST}"
FRONT_PORT="${ORDERLY_DEV_PORT:-3000}"
AWS_PORT="${ORDERLY_DEV_AWS_PORT:-4566}"
LAMBDA_PORT="${ORDERLY_DEV_LAMBDA_PORT:-9000}"
FUNCTIONS=(order-intake inventory notification analytics)
FRONT="http://127.0.0.1:$FRONT_PORT"
mkdir -p "$RUN_DIR"

step() { printf '\n== dev %s: %s\n' "$HOST" "$*"; }

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

PIDS=()
EMULATOR=false
cleanup() {
    local status=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if $EMULATOR; then
        ORDERLY_AWS_PORT="$AWS_PORT" ORDERLY_AWS_RUN_DIR="$RUN_DIR/aws" ./scripts/aws-emulator.sh stop || true
    fi
    if ((${#PIDS[@]})) || $EMULATOR; then echo "dev $HOST: stopped"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The HS256 secret every function (and `orderly token`) signs and checks with:
# development only; deployed stacks read theirs from SSM or a Secret.
ORDERLY_JWT_SECRET="dev-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
export ORDERLY_JWT_SECRET

up_lambda() {
    step "the emulator on 127.0.0.1:$AWS_PORT, the tables and queues of stage dev"
    EMULATOR=true
    emulator_and_harness "$AWS_PORT" "$RUN_DIR/aws"
    {
        "$HARNESS" setup --stage dev --max-receives 3
        for name in AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION JWT_SECRET; do
            echo "export ORDERLY_$name=$(printenv "ORDERLY_$name")"
        done
    } >"$RUN_DIR/settings.env"
    # shellcheck disable=SC1091 # written just above
    source "$RUN_DIR/settings.env"
    # The SDK's own credential chain (the functions build their clients from it).
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

    step "build the Lambda binaries (what cargo lambda watch runs; rebuilt there on change)"
    local function features=()
    for function in "${FUNCTIONS[@]}"; do features+=("$function/lambda"); done
    (IFS=,; cargo build "${FUNCTIONS[@]/#/--package=}" --features "${features[*]}" --bins)

    step "cargo lambda watch: ${FUNCTIONS[*]} on 127.0.0.1:$LAMBDA_PORT-$((LAMBDA_PORT + 3))"
    local port=$LAMBDA_PORT args=() lambdas=()
    for function in "${FUNCTIONS[@]}"; do
        (cd "functions/$function" && exec setsid env PATH="$VENVS/sam/bin:$PATH" cargo lambda watch --features lambda \
            --invoke-address 127.0.0.1 --invoke-port "$port" --timeout 900 \
            >"$RUN_DIR/$function.log" 2>&1 </dev/null) &
        PIDS+=($!)
        args+=(--component "$function-http=127.0.0.1:$port/lambda-url/$function-lambda")
        lambdas+=(--lambda "$function=http://127.0.0.1:$port")
        port=$((port + 1))
    done
    # Each function's first answer starts it (cargo run behind the watcher).
    # One patient request each: cargo lambda queues every invocation, and
    # abandoned ones would hold up the function.
    port=$LAMBDA_PORT
    local i=0 deadline
    for function in "${FUNCTIONS[@]}"; do
        deadline=$((SECONDS + 300))
        # Any HTTP answer will do (only order-intake serves /health).
        until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 300 "http://127.0.0.1:$port/lambda-url/$function-lambda/health")" != 000 ]]; do
            if ! kill -0 "${PIDS[$i]}" 2>/dev/null || ((SECONDS > deadline)); then
                echo "$function-lambda did not answer; its log:" >&2
                tail -40 "$RUN_DIR/$function.log" >&2
                return 1
            fi
            sleep 0.5
        done
        echo "$function-lambda answers (${SECONDS}s since start)"
        port=$((port + 1))
        i=$((i + 1))
    done

    step "the front on $FRONT, Lambda's triggers through the invoke API"
    setsid "$HARNESS" serve --listen "127.0.0.1:$FRONT_PORT" --manifest spin.toml "${args[@]}" "${lambdas[@]}" \
        >"$RUN_DIR/harness.log" 2>&1 </dev/null &
    PIDS+=($!)
    wait_http "$FRONT/health" 60 "${PIDS[-1]}" "$RUN_DIR/harness.log"
}

up_spin() {
    local spin="${SPIN:-spin}"
    if ! command -v "$spin" >/dev/null; then
        cat >&2 <<EOF
dev spin: no Spin binary ('$spin') on the PATH. Install Spin v4.0.2 and its
trigger plugins, then run this again:
  https://spinframework.dev/install (or build spinframework/spin at v4.0.2:
  docs/spin.md), then
  spin plugins install trigger-sqs --yes && spin plugins install trigger-cron --yes
Without Spin, scripts/spin-test.sh --up serves the same HTTP components under
wasmtime (what CI runs).
EOF
        exit 2
    fi
    step "scripts/spin-up-test.sh --up (spin build, the emulator on 4566, spin up, the front on $FRONT)"
    ORDERLY_TEST_JWT_SECRET="$ORDERLY_JWT_SECRET" ORDERLY_SPIN_PORT="$FRONT_PORT" \
        ORDERLY_SPIN_UP_PORT="${ORDERLY_DEV_SPIN_PORT:-3001}" ORDERLY_SPIN_RUN_DIR="$RUN_DIR" \
        setsid ./scripts/spin-up-test.sh --up </dev/null &
    PIDS+=($!)
    # spin build and the Spin start can take minutes the first time.
    wait_http "$FRONT/health" 1800 "${PIDS[-1]}" "$RUN_DIR/spin.log"
    HARNESS="$CARGO_TARGET_DIR/debug/examples/spin-harness"
    echo "export ORDERLY_JWT_SECRET=$ORDERLY_JWT_SECRET" >"$RUN_DIR/token.env"
}

# One order through the stack: a product, an order, and the saga's answer.
smoke() {
    # Tokens as `orderly token` mints them, from the harness already built.
    local admin alice order status="" deadline
    admin="$("$HARNESS" token --sub smoke-admin --admin)"
    alice="$("$HARNESS" token --sub smoke-alice)"
    curl -fsS -X PUT "$FRONT/api/v1/products/SMOKE-TEA" -H "Authorization: Bearer $admin" \
        -H 'Content-Type: application/json' -d '{"name":"Smoke tea","price":"2.50","currency":"EUR","stock":5}' >/dev/null
    order="$(curl -fsS -X POST "$FRONT/api/v1/orders" -H "Authorization: Bearer $alice" \
        -H 'Content-Type: application/json' -H "Idempotency-Key: smoke-$RANDOM" \
        -d '{"items":[{"sku":"SMOKE-TEA","quantity":2}]}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
    echo "order $order placed"
    deadline=$((SECONDS + 120))
    until [[ "$status" == confirmed ]]; do
        if ((SECONDS > deadline)); then
            echo "order $order is '$status', not confirmed, after 120 s; logs in $RUN_DIR" >&2
            tail -20 "$RUN_DIR"/*.log >&2
            return 1
        fi
        sleep 0.2
        status="$(curl -fsS "$FRONT/api/v1/orders/$order" -H "Authorization: Bearer $alice" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
    done
    echo "order $order confirmed"
}

"up_$HOST"
echo "dev $HOST: first answer after $((SECONDS - started))s"

if $SMOKE; then
    step "smoke: one order to confirmed"
    smoke
    exit 0
fi

cat <<EOF

Orderly ($HOST) listens on $FRONT (logs and settings in $RUN_DIR).
A token, signed with this session's secret:
  ADMIN=\$(. $RUN_DIR/$([[ $HOST == lambda ]] && echo settings.env || echo token.env) && cargo run -q --release -- token --sub shopkeeper --admin)
  curl -s $FRONT/health
Ctrl-C stops everything this started.
EOF
wait "${PIDS[-1]}"
