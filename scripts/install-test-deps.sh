#!/usr/bin/env bash
# Installs what the test suite needs on Debian/Ubuntu: a software Vulkan device (lavapipe) so the
# wgpu backend is tested without a GPU, the wasm32 target the browser build needs, and for the
# page's browser test Debian's chromium, node/npm and playwright-core (tests/web, npm ci), and the
# mold linker (scripts/linker.sh uses it when present: the test executables link several times faster).
# Idempotent; uses sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pkg in mesa-vulkan-drivers libvulkan1 chromium mold; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# Any node >= 18 will do (a NodeSource nodejs already carries npm).
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
for component in clippy rustfmt; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
if [ ! -d tests/web/node_modules/playwright-core ]; then
  (cd tests/web && npm ci --no-audit --no-fund)
fi
