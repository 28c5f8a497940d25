#!/usr/bin/env bash
# The whole test suite: installs its system dependencies, then runs every test on flex and on
# wgpu over lavapipe (software Vulkan). One dev-profile build (dependencies optimised).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export SAAD_REQUIRE_WGPU=1
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
cargo test --workspace "$@"
