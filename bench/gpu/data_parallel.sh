#!/usr/bin/env bash
# Data-parallel training on a GPU machine (issue 16), one call: `saad bench --servers 2` starts
# two `saad serve` processes on this machine, each hosting the GPU through wgpu, and times the
# SAAD step on the local GPU, on one server and split over both (burn's remote backend over
# localhost), with the bytes every process wrote per step; then the PyTorch twin of the same
# SAAD step on CUDA as the baseline users know. With one GPU the two servers share it: the run
# measures what splitting costs, not what a second GPU gains.
#
#   bench/gpu/data_parallel.sh [BUNDLE_DIR [RESULTS_DIR]]   # bundle: a `saad` (or saad.xz) and debs/
#
# Environment: SAAD_DP_SHAPE (default: resnet18 student, dm-wrn-28-10 teacher, batch 128),
# SAAD_DP_STEPS (timed steps, default 2), SAAD_SERVERS (default 2).
set -uo pipefail
cd "$(dirname "$0")/../.."
bundle="$(realpath "${1:-out/gpu}")"
results="${2:-${OUT:-out/gpu-results}}"
mkdir -p "$results"
results="$(realpath "$results")"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
export CUBECL_AUTOTUNE_LEVEL="${CUBECL_AUTOTUNE_LEVEL:-minimal}"
log="$results/data_parallel.log"
say() { echo "== $*" | tee -a "$log"; }

if [ ! -x "$bundle/saad" ] && [ -f "$bundle/saad.xz" ]; then
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$bundle/saad.xz" "$bundle/saad"
    chmod +x "$bundle/saad"
fi
if ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in "$bundle"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
    export VK_DRIVER_FILES="$icd"
fi

read -r -a shape <<< "${SAAD_DP_SHAPE:---arch resnet18 --teacher-arch dm-wrn-28-10 --batch-size 128}"
steps="${SAAD_DP_STEPS:-2}"
say "machine"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi") | tee -a "$log"
"$bundle/saad" devices 2>&1 | tee -a "$log"

say "saad bench --method saad ${shape[*]} --steps $steps --servers ${SAAD_SERVERS:-2} --device wgpu"
timeout 420 "$bundle/saad" bench --device wgpu --method saad "${shape[@]}" --steps "$steps" \
    --servers "${SAAD_SERVERS:-2}" --json > "$results/data_parallel.json" 2>> "$log"
echo "exit $?" | tee -a "$log"
cat "$results/data_parallel.json" | tee -a "$log"

say "PyTorch twin (CUDA): SAAD step"
timeout 120 python3 bench/torch_reference.py --workload saad --device cuda "${shape[@]}" \
    --steps "$steps" --json "$results/torch_saad.json" >> "$log" 2>&1
echo "exit $?" | tee -a "$log"
cat "$results/torch_saad.json" 2>/dev/null | tee -a "$log"
