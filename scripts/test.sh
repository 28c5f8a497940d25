#!/usr/bin/env bash
# The whole test suite: installs its system dependencies, builds the page (wasm32, dev profile),
# runs every Rust test on flex and on wgpu over lavapipe (software Vulkan), then the page in
# headless Chromium (tests/web: CPU and WebGPU backends; screenshots and timings in tests/output/).
# One dev-profile build of burn per target (dependencies optimised), shared target directory.
# Fails on unformatted code and on any clippy warning.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export SAAD_REQUIRE_WGPU=1
# cubecl autotune (on in native builds) tunes each convolution shape once per machine; on the
# software Vulkan device the least effort is enough (the tests check results, not speed).
export CUBECL_AUTOTUNE_LEVEL="${CUBECL_AUTOTUNE_LEVEL:-minimal}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
# Formatting and lints first: rustfmt.toml, clippy with every warning an error. Clippy runs as
# the compiler of the workspace's own crates inside the test build (what `cargo clippy` does
# inside `cargo check`), so the dependencies are compiled once, for the tests, not a second time
# in check mode (that costs about 10 minutes of a cold run on 2 cores).
cargo fmt --all --check
scripts/build-web.sh --dev
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)" CLIPPY_ARGS="-Dwarnings__CLIPPY_HACKERY__" \
  cargo test --workspace "$@"
(cd tests/web && node --test chart.test.mjs page.test.mjs)
