#!/usr/bin/env bash
# The whole test suite: installs its system dependencies, builds the page (wasm32, dev profile),
# runs every Rust test on flex and on wgpu over lavapipe (software Vulkan), then the page in
# headless Chromium (tests/web: CPU and WebGPU backends; screenshots and timings in tests/output/).
# One dev-profile build of burn per target (dependencies optimised): the native one in target/
# (the README's first command built it already), the page's in target/web.
# Fails on unformatted code and on any clippy warning.
#
# Prints how long each phase took in one table at the end (also in target/test-phases.txt), and
# on a failure which phase (and which test) failed. Arguments go to `cargo test`
# (`scripts/test.sh -p saad-native`, `scripts/test.sh -- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/phases.sh

# Arguments before `--` select what cargo builds and runs; those after it go to the test binaries.
cargo_args=()
harness_args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then
    shift
    harness_args=("$@")
    break
  fi
  cargo_args+=("$1")
  shift
done

phase "install (scripts/install-test-deps.sh)" scripts/install-test-deps.sh
export SAAD_REQUIRE_WGPU=1
# cubecl autotune (on in native builds) tunes each convolution shape once per machine; on the
# software Vulkan device the least effort is enough (the tests check results, not speed).
export CUBECL_AUTOTUNE_LEVEL="${CUBECL_AUTOTUNE_LEVEL:-minimal}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
# CI builds once from a clean clone: incremental compilation's caches would only be written.
[ "${CI:-}" = true ] && export CARGO_INCREMENTAL=0
phase "formatting check (cargo fmt --check)" cargo fmt --all --check
# The page's wasm32 build shares no compiled crate with the native one (another target, its own
# folder), so it runs beside the native build and tests at the lowest CPU priority: it takes the
# cycles they leave idle (about half of them while the tests run), and the browser test waits
# for it (bench/NOTES.md section 7).
background "page: wasm32 build (build-web.sh --dev), beside the phases below" \
  nice -n 19 scripts/build-web.sh --dev
# Clippy with every warning an error runs as the compiler of the workspace's own crates inside
# the test build (what `cargo clippy` does inside `cargo check`), so the dependencies are compiled
# once, for the tests, not a second time in check mode (about 10 minutes of a cold run).
export RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
export CLIPPY_ARGS="-Dwarnings__CLIPPY_HACKERY__"
# Compiling and running are two cargo calls, so that the table can tell them apart; the same
# environment and arguments, so the second compiles nothing.
compile_tests "${cargo_args[@]}"
run_tests "${cargo_args[@]}" -- "${harness_args[@]}"
wait_background
phase "page in headless Chromium (tests/web, both backends)" \
  bash -c 'cd tests/web && node --test chart.test.mjs page.test.mjs'
