#!/usr/bin/env bash
# Gathers what bench/gpu/run.sh needs on a GPU machine that has no Rust and no network, into one
# ignored folder (default out/gpu): release builds of `saad` (symbol table kept, debug information out) (the default feature set,
# and one without cubecl autotune for the feature comparison), the Debian Vulkan loader packages
# (the driver's ICD is the machine's own), and the reference AutoAttack (pyautoattack's modules)
# for the PyTorch twin. Everything must stay under the GPU machine's 64 MiB transfer limit here. Runs on an x86-64 Debian machine with the project's toolchain and network to the package
# registries. The PyTorch twin itself is bench/torch_reference.py (tracked, travels with the tree).
#
#   bench/gpu/prepare.sh [BUNDLE_DIR]      # then copy the repository with BUNDLE_DIR to the GPU machine
#   SAAD_GPU_VARIANTS="default" bench/gpu/prepare.sh   # only the default build (saves a build)
set -euo pipefail
cd "$(dirname "$0")/../.."
bundle="${1:-out/gpu}"
variants="${SAAD_GPU_VARIANTS:-default noautotune}"
mkdir -p "$bundle/debs"

for v in $variants; do
    case "$v" in
        default) flags=() ;;
        noautotune) flags=(--no-default-features) ;;
        *) echo "unknown variant $v (default, noautotune)" >&2; exit 2 ;;
    esac
    # One target directory: cargo keeps both feature sets' artifacts side by side, so the second
    # variant rebuilds only the crates the feature touches (burn-cubecl and above).
    cargo build --release -p saad-native --bin saad "${flags[@]}"
    name="saad"; [ "$v" = default ] || name="saad-$v"
    # Debug information out, the symbol table kept: `saad bench --host-profile` names functions
    # from it. ~78 MB fully stripped, ~12 MB as xz; the symbol table adds about a third (measured
    # on the dev build: 169 -> 233 MB, 23.9 -> 30.6 MB as xz). What travels is the .xz.
    strip --strip-debug -o "$bundle/$name" "${CARGO_TARGET_DIR:-target}/release/saad"
    xz -T0 -6 -f "$bundle/$name"
done

# The Vulkan loader (libvulkan1) and its GL companions, downloaded for amd64 whatever this
# machine is; run.sh unpacks them only where the GPU machine has no loader.
lists=/tmp/saad-apt-amd64
mkdir -p "$lists/partial"
apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
apt-get "${apt_opts[@]}" update >/dev/null
(cd "$bundle/debs" && apt-get "${apt_opts[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 2>/dev/null)

# The reference AutoAttack (pure Python), without the 45 MB of example models its wheel carries:
# its modules alone, unpacked into a folder run.sh puts on PYTHONPATH.
wheels="$(mktemp -d)"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform any -d "$wheels" pyautoattack==0.2.0
rm -rf "$bundle/site"; mkdir -p "$bundle/site"
(cd "$bundle/site" && unzip -q "$wheels"/pyautoattack-0.2.0-py3-none-any.whl 'pyautoattack/*.py')
rm -rf "$wheels"

du -sh "$bundle"
ls -l "$bundle" "$bundle/debs" "$bundle/site/pyautoattack"
