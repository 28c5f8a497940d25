#!/usr/bin/env bash
# Builds the page into web/www/pkg: the wasm32 build of saad-web and its JS bindings.
#   scripts/build-web.sh               release build (opt-level "s", stripped), then binaryen's
#                                      wasm-opt, then .br/.gz copies for static servers: what to deploy
#   scripts/build-web.sh --no-wasm-opt the release build without the wasm-opt pass (still precompressed)
#   scripts/build-web.sh --dev         the dev profile the tests share (dependencies optimised)
# Installs wasm-bindgen-cli at the version in Cargo.lock (without --locked, see STACK notes) and,
# for the release build, binaryen from npm (web/package.json, web/node_modules).
# SAAD_WASM_OPT picks wasm-opt's level (default -Oz, the smallest; see the README's load-time figures).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=web
wasm_opt=1
case "${1:-}" in
  --dev) profile=dev ;;
  --no-wasm-opt) wasm_opt=0 ;;
  "") ;;
  *) echo "usage: scripts/build-web.sh [--dev | --no-wasm-opt]" >&2; exit 2 ;;
esac
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  echo "installing wasm-bindgen-cli $version" >&2
  cargo install wasm-bindgen-cli --version "$version"
fi
# The wasm32 build has a target folder of its own, web/ inside cargo's (CARGO_TARGET_DIR, a
# config file, or ./target): it shares no compiled crate with the native build, and with its own
# folder it never waits for a native cargo command's lock (scripts/test.sh runs both at once).
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/web
cargo build -p saad-web --target wasm32-unknown-unknown --profile "$profile" --target-dir "$target"
dir=$profile
[ "$profile" = dev ] && dir=debug
rm -f web/www/pkg/*.br web/www/pkg/*.gz
wasm-bindgen --target web --no-typescript --out-dir web/www/pkg "$target/wasm32-unknown-unknown/$dir/saad_web.wasm"
if [ "$profile" = web ]; then
  if [ "$wasm_opt" = 1 ]; then
    [ -x web/node_modules/.bin/wasm-opt ] || (cd web && npm ci --no-audit --no-fund)
    # wasm-bindgen drops the target_features section, so the features rustc used are named here.
    features=(--enable-bulk-memory --enable-bulk-memory-opt --enable-nontrapping-float-to-int
      --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue
      --enable-call-indirect-overlong --enable-simd)
    echo "wasm-opt ${SAAD_WASM_OPT:--Oz} (binaryen in node: several minutes on 2 cores)" >&2
    web/node_modules/.bin/wasm-opt "${SAAD_WASM_OPT:--Oz}" "${features[@]}" \
      web/www/pkg/saad_web_bg.wasm -o web/www/pkg/saad_web_bg.opt.wasm
    mv web/www/pkg/saad_web_bg.opt.wasm web/www/pkg/saad_web_bg.wasm
  fi
  node scripts/compress-web.mjs web/www/pkg
fi
ls -l web/www/pkg >&2
