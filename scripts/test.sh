#!/usr/bin/env bash
# The whole test suite: installs its system dependencies, checks that the core builds for the
# browser (wasm32), then runs every test on flex and on wgpu over lavapipe (software Vulkan).
# One dev-profile build of burn per target (dependencies optimised), shared target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export SAAD_REQUIRE_WGPU=1
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
cargo build -p saad-web --target wasm32-unknown-unknown
cargo test --workspace "$@"
