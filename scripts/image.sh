#!/usr/bin/env bash
# The runner's container image (deploy/container/Containerfile), built and
# checked without a container daemon, as CI does:
#
#  1. a static release build of `orderly` for x86_64-unknown-linux-musl
#     (musl-gcc compiles the bundled SQLite), stripped;
#  2. `podman build --storage-driver vfs --format docker` (the OCI format
#     has no HEALTHCHECK; rootful, its own storage under
#     the run dir: no daemon, no global state) and the image's size;
#  3. `podman create` + `podman export`: the image's filesystem as a tar,
#     unpacked; then the black-box API suite against /orderly from it,
#     bound to 127.0.0.1 on this host (this sandbox may not run containers),
#     restarted empty before each test (scripts/runner_supervisor.py).
#
#   scripts/image.sh             # all of it
#   scripts/image.sh build       # steps 1-2 (the image stays in the run dir's storage)
#
# Settings: ORDERLY_IMAGE_RUN_DIR (/var/tmp/orderly-image), ORDERLY_IMAGE_PORT
# (18060: the runner; +1: its reset; +2: the test payment gateway),
# ORDERLY_MUSL_TARGET_DIR (the musl build's cargo target dir; default
# $CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
RUN_DIR="${ORDERLY_IMAGE_RUN_DIR:-/var/tmp/orderly-image}"
PORT="${ORDERLY_IMAGE_PORT:-18060}"
MUSL_TARGET_DIR="${ORDERLY_MUSL_TARGET_DIR:-$CARGO_TARGET_DIR}"
TARGET=x86_64-unknown-linux-musl
IMAGE=localhost/orderly:ci
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
step() { printf '\n== image: %s\n' "$*"; }
now() { date +%s; }

# A daemonless podman, its storage kept under the run dir.
podman_() {
    podman --root "$RUN_DIR/storage" --runroot "$RUN_DIR/runroot" --storage-driver vfs "$@"
}

step "tools: musl-gcc, podman (Debian packages), the musl target"
missing=()
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v podman >/dev/null || missing+=(podman)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup target add "$TARGET" >/dev/null 2>&1 || rustup target list --installed | grep -qx "$TARGET"
podman --version

step "a static release build of orderly ($TARGET)"
started=$(now)
CARGO_TARGET_DIR="$MUSL_TARGET_DIR" CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --release --locked --target "$TARGET" --bin orderly
binary="$MUSL_TARGET_DIR/$TARGET/release/orderly"
echo "built in $(($(now) - started)) s"

step "podman build --storage-driver vfs"
started=$(now)
context="$RUN_DIR/context"
rm -rf "$context" && mkdir -p "$context/data"
strip -o "$context/orderly" "$binary"
cp /etc/ssl/certs/ca-certificates.crt "$context/"
podman_ build --quiet --format docker --file deploy/container/Containerfile --tag "$IMAGE" "$context" >/dev/null
size=$(podman_ image inspect "$IMAGE" --format '{{.Size}}')
echo "image $IMAGE: $((size / 1000)) kB ($(stat -c %s "$context/orderly") bytes of binary), built in $(($(now) - started)) s"
podman_ image inspect "$IMAGE" --format 'user {{.Config.User}}, ports {{.Config.ExposedPorts}}, volumes {{.Config.Volumes}}, healthcheck {{json .HealthCheck}}'
[[ "${1:-}" == build ]] && exit 0

step "the image's filesystem (podman create + export), and the API suite against its binary"
rootfs="$RUN_DIR/rootfs"
rm -rf "$rootfs" && mkdir -p "$rootfs"
container=$(podman_ create "$IMAGE")
podman_ export "$container" | tar -x -C "$rootfs"
podman_ rm "$container" >/dev/null
file "$rootfs/orderly" | grep -q 'static' || { echo "the image's orderly is not a static binary" >&2; exit 1; }
"$rootfs/orderly" --version

work="$RUN_DIR/work"
rm -rf "$work" && mkdir -p "$work"
supervisor="" gateway=""
stop_servers() {
    local pid
    for pid in $supervisor $gateway; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null || true
}
trap stop_servers EXIT
# The API tests' own secret, and queue timings scaled down as their in-process runner's.
ORDERLY_JWT_SECRET="image-ci-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export ORDERLY_JWT_SECRET
# As on the other stacks under test: card payments through the test gateway
# (the image's own `orderly gateway`), short timeout and cool-down, and the
# browser origin of the CORS cases (tests/api/helpers.rs CORS_ORIGIN).
gateway_port=$((PORT + 2))
"$rootfs/orderly" gateway --addr "127.0.0.1:$gateway_port" >"$work/gateway.log" 2>&1 </dev/null &
gateway=$!
wait_http "http://127.0.0.1:$gateway_port/_gateway/authorizations" 30 "$gateway" "$work/gateway.log"
export ORDERLY_PAYMENT_URL="http://127.0.0.1:$gateway_port" ORDERLY_PAYMENT_TIMEOUT=1s \
    ORDERLY_PAYMENT_BREAKER_THRESHOLD=3 ORDERLY_PAYMENT_BREAKER_COOL_DOWN=2s \
    ORDERLY_CORS_ORIGINS="https://shop.example"
ORDERLY_VISIBILITY_TIMEOUT=5s ORDERLY_RETRY_BASE=20ms ORDERLY_RETRY_MAX=200ms ORDERLY_IDLE_POLL=200ms \
    python3 scripts/runner_supervisor.py "$rootfs/orderly" "$PORT" "$((PORT + 1))" "$work" &
supervisor=$!
wait_http "http://127.0.0.1:$PORT/health" 60 "$supervisor" "$work/runner-1.log"
# The image's own health check, run as its HEALTHCHECK would (ORDERLY_ADDR=0.0.0.0:PORT).
ORDERLY_ADDR="0.0.0.0:$PORT" "$rootfs/orderly" health >/dev/null && echo "orderly health: passes"
ORDERLY_TEST_BASE_URL="http://127.0.0.1:$PORT" ORDERLY_TEST_JWT_SECRET="$ORDERLY_JWT_SECRET" \
    ORDERLY_TEST_RESET_URL="http://127.0.0.1:$((PORT + 1))/reset" ORDERLY_TEST_GATEWAY_URL="$ORDERLY_PAYMENT_URL" \
    cargo test --workspace --all-features --test api -- --test-threads=1
