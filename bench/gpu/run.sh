#!/usr/bin/env bash
# The GPU run anyone can repeat (bench/gpu/prepare.sh first): on the GPU machine, from the
# repository root with the bundle beside it. Checks that wgpu finds the GPU through Vulkan, runs
# `saad selftest` on it, then the training-step benchmarks of each build variant in the bundle,
# the PyTorch twin (bench/torch_reference.py) on CUDA in the same call, and standard AutoAttack
# against a PGD-AT ResNet-18 in both; JSON results in RESULTS_DIR, one table printed last.
#
#   bench/gpu/run.sh [BUNDLE_DIR [RESULTS_DIR]]       # defaults: out/gpu, $OUT or out/gpu-results
#
# Environment: SAAD_GPU_SIZE=full (ResNet-18 / DM-WRN-28-10, batch 128: the workload of the
# README) or small (narrow models, batch 32: checks the scripts end to end on lavapipe and a CPU
# PyTorch in minutes); SAAD_DEVICE (default wgpu), TORCH_DEVICE (default cuda if PyTorch sees
# one, else cpu with 2 threads); SAAD_AA_N (images for AutoAttack, default 1000 full / 16 small: lavapipe takes ~190 s for 16);
# SAAD_SKIP=selftest,torch,bench,host,autoattack skips those stages (to rerun one that failed);
# the host stage samples the CPU during a PGD-AT step (`saad bench --host-profile`, this machine
# has no perf) and times the step again with CUBECL_WGPU_MAX_TASKS=${SAAD_MAX_TASKS:-256};
# SAAD_PROFILE=1 adds a per-kernel profile of the default build (profile.txt, profile.log.xz;
# SAAD_PROFILE_CONV picks its wgpu convolution, default columns);
# SAAD_VARIANTS=saad,saad-noautotune picks the builds to benchmark (default: all in the bundle);
# SAAD_SELFTEST_ARCHS overrides the architectures `saad selftest` checks; SAAD_WGPU_CONV the
# wgpu convolutions each build is timed with (default burn,columns,tiled; see core/src/kernels/gemm_conv.rs
# and tiled_conv.rs).
set -uo pipefail
cd "$(dirname "$0")/../.."
bundle="$(realpath "${1:-out/gpu}")"
results="${2:-${OUT:-out/gpu-results}}"
mkdir -p "$results"
results="$(realpath "$results")"
size="${SAAD_GPU_SIZE:-full}"
dev="${SAAD_DEVICE:-wgpu}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
log="$results/run.log"
say() { echo "== $*" | tee -a "$log"; }
skip() { [[ ",${SAAD_SKIP:-}," == *",$1,"* ]]; }

# The binaries travel xz-compressed (a stripped release `saad` is ~78 MB, the transfer limit 64 MiB).
for packed in "$bundle"/saad*.xz; do
    [ -f "$packed" ] || continue
    [ -x "${packed%.xz}" ] || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$packed" "${packed%.xz}"
    chmod +x "${packed%.xz}"
done

# Vulkan loader: unpack the bundled packages only where the machine has none.
if ! ldconfig -p | grep -q libvulkan.so.1; then
    say "no Vulkan loader on this machine: unpacking the bundled one"
    for f in "$bundle"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
# NVIDIA containers keep the ICD outside the loader's default search path.
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
    export VK_DRIVER_FILES="$icd"
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi

if [ "$size" = full ]; then
    shape=(--arch resnet18 --teacher-arch dm-wrn-28-10 --batch-size 128 --steps 3)
    torch_shape=(--arch resnet18 --teacher-arch dm-wrn-28-10 --batch-size 128 --steps 3)
    aa_arch=resnet18; aa_n="${SAAD_AA_N:-1000}"; aa_epochs="${SAAD_AA_EPOCHS:-3}"; aa_train=(--eval-n 256)
    selftest_archs="small-cnn-8,resnet18,preact-resnet18-w16,mobilenetv2,wrn-10-2,dm-wrn-10-2,dm-wrn-28-10"
else
    # One step per method: llvmpipe takes ~15 s per PGD-AT step at this size, and the stage has
    # to fit its timeout with both convolutions.
    shape=(--arch resnet18-w8 --teacher-arch dm-wrn-10-1 --batch-size 32 --steps 1)
    torch_shape=(--arch resnet18-w8 --teacher-arch dm-wrn-10-1 --batch-size 32 --steps 1)
    # The scripts' check on a software adapter: a model and an attack small enough to train there.
    aa_arch=small-cnn-8; aa_n="${SAAD_AA_N:-16}"; aa_epochs=1; aa_train=(--attack-steps 2 --eval-n 32)
    selftest_archs="small-cnn-8,resnet18-w8,dm-wrn-10-1"
    # The tiled convolution's steps are 3-6x burn's on llvmpipe (bench/NOTES.md section 12).
    : "${SAAD_BENCH_TIMEOUT:=900}"
fi
# The small size is the end-to-end check on a software adapter (lavapipe): tune as little as the
# tests do there; a real GPU keeps cubecl's default (balanced) unless told otherwise.
[ "$size" = small ] && export CUBECL_AUTOTUNE_LEVEL="${CUBECL_AUTOTUNE_LEVEL:-minimal}"
# The wgpu convolutions to time (saad bench --wgpu-conv): burn's, the project's columns one and
# its tiled implicit-GEMM kernels.
wgpu_conv="${SAAD_WGPU_CONV:-burn,columns,tiled}"
torch_dev="${TORCH_DEVICE:-$(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' 2>/dev/null || echo none)}"

say "machine"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi") | tee -a "$log"
python3 -c 'import torch; print("torch", torch.__version__)' 2>&1 | tee -a "$log"

say "saad devices"
"$bundle/saad" devices 2>&1 | tee -a "$log"

if ! skip selftest; then
say "saad selftest --device $dev"
timeout "${SAAD_SELFTEST_TIMEOUT:-240}" "$bundle/saad" selftest --device "$dev" --archs "${SAAD_SELFTEST_ARCHS:-$selftest_archs}" 2>&1 | tee -a "$log" "$results/selftest.txt"
fi

if [ "$torch_dev" != none ] && ! skip torch; then
    say "PyTorch twin on $torch_dev"
    threads=(); [ "$torch_dev" = cpu ] && threads=(--threads 2)
    timeout "${SAAD_TORCH_TIMEOUT:-300}" python3 bench/torch_reference.py --workload all --device "$torch_dev" "${threads[@]}" \
        "${torch_shape[@]}" --attack-steps 10 --json "$results/torch.json" 2>&1 | tee -a "$log"
fi

for bin in "$bundle"/saad "$bundle"/saad-*; do
    [ -x "$bin" ] && [ "${bin%.xz}" = "$bin" ] && ! skip bench || continue
    variant="$(basename "$bin")"
    [ -z "${SAAD_VARIANTS:-}" ] || [[ ",$SAAD_VARIANTS," == *",$variant,"* ]] || continue
    say "$variant bench --method pgd-at,saad --device $dev"
    timeout "${SAAD_BENCH_TIMEOUT:-400}" "$bin" bench --method pgd-at,saad --device "$dev" "${shape[@]}" --attack-steps 10 --wgpu-conv "$wgpu_conv" --json \
        > "$results/bench-$variant.json" 2>>"$log"
    echo "exit $?" | tee -a "$log"
done

# Host profile: where the CPU time of the steps goes on a machine without perf, by layer (burn,
# cubecl, wgpu, the driver), thread and function, per launch (bench/NOTES.md section 15); the
# stacks as folded text for a flame graph. Then the same steps with more dispatches per submit
# (cubecl-wgpu waits for the previous submission every CUBECL_WGPU_MAX_TASKS, default 32).
if ! skip host && [ -x "$bundle/saad" ]; then
    host_shape=("${shape[@]}"); host_shape[${#host_shape[@]}-1]=1
    say "host profile: saad bench --method pgd-at --steps 1 --host-profile"
    timeout "${SAAD_HOST_TIMEOUT:-240}" "$bundle/saad" bench --method pgd-at --device "$dev" "${host_shape[@]}" --attack-steps 10 \
        --host-profile "$results/host-profile.folded" > "$results/host-profile.txt" 2>>"$log"
    echo "exit $?" | tee -a "$log"
    cat "$results/host-profile.txt" | tee -a "$log"
    say "saad bench --method pgd-at --steps 1 with CUBECL_WGPU_MAX_TASKS=${SAAD_MAX_TASKS:-256}"
    CUBECL_WGPU_MAX_TASKS="${SAAD_MAX_TASKS:-256}" timeout "${SAAD_HOST_TIMEOUT:-240}" "$bundle/saad" bench --method pgd-at --device "$dev" \
        "${host_shape[@]}" --attack-steps 10 --json > "$results/bench-saad-max-tasks-${SAAD_MAX_TASKS:-256}.json" 2>>"$log"
    echo "exit $?" | tee -a "$log"
fi

# Per-kernel profile (SAAD_PROFILE=1): the default build's benchmark once more, with cubecl's
# profiling logger on (every launch blocking and timed on the device), from a folder inside the
# repository so that it reads the autotune cache the run above filled; bench/gpu/profile.py
# breaks the log down by kernel family, per epoch.
if [ -n "${SAAD_PROFILE:-}" ] && ! skip profile; then
    say "per-kernel profile: saad bench --method ${SAAD_PROFILE_METHODS:-pgd-at,saad} --steps 1 with cubecl's profiling logger"
    prof="out/profile-run"; rm -rf "$prof"; mkdir -p "$prof"
    printf '[profiling.logger]\nlevel = "basic"\nfile = "%s"\n' "$results/profile.log" > "$prof/cubecl.toml"
    profile_shape=("${shape[@]}"); profile_shape[${#profile_shape[@]}-1]=1
    (cd "$prof" && timeout "${SAAD_PROFILE_TIMEOUT:-240}" "$bundle/saad" bench --method "${SAAD_PROFILE_METHODS:-pgd-at,saad}" --device "$dev" \
        "${profile_shape[@]}" --attack-steps 10 --wgpu-conv "${SAAD_PROFILE_CONV:-columns}" 2>&1 | tee -a "$log")
    python3 bench/gpu/profile.py "$results/profile.log" --segments 4 > "$results/profile.txt" 2>&1
    tail -n 60 "$results/profile.txt" | tee -a "$log"
    xz -T0 -f "$results/profile.log"
fi

if ! skip autoattack; then
say "AutoAttack: PGD-AT $aa_arch on the rendered digits ($aa_n images), ours and the reference"
aa="$(mktemp -d)"; mkdir -p "$aa/data/cifar-10-batches-bin"
# The digits' training split (1438 images at 32x32) in the CIFAR-10 layout, as the training files
# and as the test file: a speed benchmark of AutoAttack on a robust model, not an accuracy claim.
"$bundle/saad" data export --data digits --split train --out "$aa/digits.bin" >>"$log" 2>&1
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do cp "$aa/digits.bin" "$aa/data/cifar-10-batches-bin/$f.bin"; done
timeout "${SAAD_AA_TRAIN_TIMEOUT:-200}" "$bundle/saad" train --data cifar10 --data-dir "$aa/data" --arch "$aa_arch" --method pgd-at \
    --epochs "$aa_epochs" --lr 0.05 --schedule cosine "${aa_train[@]}" --device "$dev" --out "$aa/model" --quiet >>"$log" 2>&1
echo "train exit $?" | tee -a "$log"
if [ -f "$aa/model/model.saad" ]; then
    timeout "${SAAD_AA_TIMEOUT:-300}" "$bundle/saad" eval --checkpoint "$aa/model/model.saad" --data-dir "$aa/data" --attacks clean,autoattack \
        --n "$aa_n" --device "$dev" --json --quiet > "$results/aa-saad.json" 2>>"$log"
    echo "eval exit $?" | tee -a "$log"
    "$bundle/saad" export --checkpoint "$aa/model/model.saad" --format safetensors --out "$aa/model.safetensors" >>"$log" 2>&1
    if [ "$torch_dev" != none ]; then
        threads=(); [ "$torch_dev" = cpu ] && threads=(--threads 2)
        PYTHONPATH="$bundle/site${PYTHONPATH:+:$PYTHONPATH}" timeout "${SAAD_AA_TIMEOUT:-300}" python3 bench/torch_reference.py --workload autoattack \
            --device "$torch_dev" "${threads[@]}" --arch "$aa_arch" --model "$aa/model.safetensors" --images "$aa/digits.bin" --n "$aa_n" \
            --json "$results/aa-torch.json" >>"$log" 2>&1
        echo "reference exit $?" | tee -a "$log"
    fi
fi
fi

say "summary"
python3 bench/gpu/summarize.py "$results" | tee "$results/summary.txt"
