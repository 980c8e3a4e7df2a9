#!/usr/bin/env bash
# Builds Orderly's Spin components: wasm32-wasip2, release, optimized for
# size (opt-level z, fat LTO, one codegen unit, stripped, panic=abort, then
# binaryen's wasm-opt -Oz on the core module through `jco opt`), into
# target/spin/<function>-<trigger>.wasm, where spin.toml looks for them.
# jco comes from tests/spin/package-lock.json (npm ci, once).
#
#   scripts/spin-build.sh <function> <trigger>   # one component (spin.toml's build commands)
#   scripts/spin-build.sh all                    # every component spin.toml names
#   scripts/spin-build.sh http --env             # the four HTTP components, settings from
#                                                # ORDERLY_* environment variables (what CI
#                                                # runs under wasmtime and jco; no Spin import
#                                                # at all), into target/spin/env/
#
# function: order-intake | inventory | notification | analytics
# trigger:  http (HTTP trigger) | queue (spin-trigger-sqs) | relay (spin-trigger-cron)
#
# By default a component reads Spin variables (`spin-variables`), which only
# Spin provides; `--env` builds read the environment instead.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT=target/spin
SETTINGS=spin-variables
ARGS=()
for arg in "$@"; do
    case "$arg" in
    --env) SETTINGS="" OUT=target/spin/env ;;
    *) ARGS+=("$arg") ;;
    esac
done
set -- "${ARGS[@]}"

# opt-level: "z" (size) by default; ORDERLY_WASM_OPT_LEVEL=3 for speed.
case "${ORDERLY_WASM_OPT_LEVEL:-z}" in
s | z) OPT_LEVEL="\"${ORDERLY_WASM_OPT_LEVEL:-z}\"" ;;
*) OPT_LEVEL="${ORDERLY_WASM_OPT_LEVEL}" ;;
esac

build() {
    local function="$1" trigger="$2"
    local features="spin-$trigger${SETTINGS:+,$SETTINGS}"
    local out="$OUT/$function-$trigger.wasm" stamp="$features opt-level=$OPT_LEVEL"
    # Built since anything it is built from last changed: keep it. (The
    # builds share one cargo output per crate, so cargo would relink it.)
    if [[ -f "$out" && "$(cat "$out.features" 2>/dev/null)" == "$stamp" &&
        -z "$(find shared functions Cargo.toml Cargo.lock -newer "$out" -type f -print -quit)" ]]; then
        printf '%s\t%s bytes (up to date)\n' "$out" "$(wc -c <"$out")"
        return
    fi
    cargo rustc --quiet -p "$function" --target wasm32-wasip2 --release --crate-type cdylib \
        --features "$features" \
        --config "profile.release.opt-level=$OPT_LEVEL" \
        --config 'profile.release.lto="fat"' \
        --config 'profile.release.codegen-units=1' \
        --config 'profile.release.strip=true' \
        --config 'profile.release.debug=false' \
        --config 'profile.release.panic="abort"'
    mkdir -p "$OUT"
    local built="$TARGET_DIR/wasm32-wasip2/release/${function//-/_}.wasm"
    # wasm-opt needs the features rustc's wasm32-wasip2 output uses spelled out.
    "$JCO" opt "$built" -o "$out" -- -Oz \
        --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
        --enable-multivalue --enable-reference-types >/dev/null
    echo "$stamp" >"$out.features"
    printf '%s\t%s bytes\n' "$out" "$(wc -c <"$out")"
}

JCO="$PWD/tests/spin/node_modules/.bin/jco"
if [[ ! -x "$JCO" ]]; then
    (cd tests/spin && npm ci --no-audit --no-fund --loglevel=error)
fi

FUNCTIONS=(order-intake inventory notification analytics)
case "${1:-}" in
all)
    for f in "${FUNCTIONS[@]}"; do build "$f" http; done
    for f in "${FUNCTIONS[@]}"; do build "$f" queue; done
    for f in order-intake inventory; do build "$f" relay; done
    ;;
http | queue)
    for f in "${FUNCTIONS[@]}"; do build "$f" "$1"; done
    ;;
order-intake | inventory | notification | analytics)
    build "$1" "${2:?trigger: http, queue or relay}"
    ;;
*)
    echo "usage: $0 all | http|queue [--env] | <function> <http|queue|relay> [--env]" >&2
    exit 2
    ;;
esac
