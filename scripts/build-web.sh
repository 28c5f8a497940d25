#!/usr/bin/env bash
# Builds the page into web/www/pkg: the wasm32 build of saad-web and its JS bindings.
#   scripts/build-web.sh          release build (opt-level "s", stripped): what to deploy
#   scripts/build-web.sh --dev    the dev profile the tests share (dependencies optimised)
# Installs wasm-bindgen-cli at the version in Cargo.lock (without --locked, see STACK notes).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=web
[ "${1:-}" = "--dev" ] && profile=dev
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  echo "installing wasm-bindgen-cli $version" >&2
  cargo install wasm-bindgen-cli --version "$version"
fi
cargo build -p saad-web --target wasm32-unknown-unknown --profile "$profile"
dir=$profile
[ "$profile" = dev ] && dir=debug
# The target directory as cargo sees it (CARGO_TARGET_DIR, a config file, or ./target).
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
wasm-bindgen --target web --no-typescript --out-dir web/www/pkg "$target/wasm32-unknown-unknown/$dir/saad_web.wasm"
ls -l web/www/pkg >&2
