"""The table bench/gpu/run.sh prints last: saad (each build variant) beside the PyTorch twin of
the same run, per workload, and AutoAttack. Reads the JSON files run.sh wrote.

    python3 bench/gpu/summarize.py RESULTS_DIR
"""
import glob, json, os, sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def mib(b):
    return "-" if b is None else f"{b / 2**20:.0f}"


def main():
    d = sys.argv[1]
    torch = load(os.path.join(d, "torch.json")) or {}
    tw = torch.get("workloads", {})
    print(f"PyTorch: {torch.get('device', 'not run')} (torch {torch.get('torch', '-')})")
    rows = []
    for path in sorted(glob.glob(os.path.join(d, "bench-*.json"))):
        b = load(path)
        variant = os.path.basename(path)[len("bench-"):-len(".json")]
        if not b:
            print(f"{variant}: no result (see run.log)")
            continue
        print(f"{variant}: {b['device']}; student {b['arch']}, teacher {b['teacher_arch']}, batch {b['batch_size']}")
        for w in b["workloads"]:
            t = tw.get(w["method"], {})
            ts = t.get("seconds_per_step")
            ratio = ts / w["seconds_per_step"] if ts else None
            # Rows of a run over several wgpu convolutions (`--wgpu-conv burn,columns`) say which.
            build = f"{variant}/{w['wgpu_conv']}" if len({x.get("wgpu_conv") for x in b["workloads"]}) > 1 else variant
            rows.append((build, w["method"], w["seconds_per_step"], w["images_per_sec"], w["seconds_per_cifar10_epoch"],
                         w["first_epoch_seconds"], w["reads_per_step"], w.get("launches_per_step"), mib(w.get("device_reserved_bytes")),
                         ts, mib(t.get("peak_memory_bytes")), ratio))
    print()
    head = ("build", "workload", "s/step", "img/s", "s/CIFAR ep", "1st epoch s", "reads", "launches", "dev MiB", "torch s/step", "torch MiB", "speed vs torch")
    print("{:<22} {:<8} {:>8} {:>8} {:>10} {:>11} {:>6} {:>8} {:>8} {:>12} {:>9} {:>14}".format(*head))
    for r in rows:
        ts = "-" if r[9] is None else f"{r[9]:.3f}"
        ratio = "-" if r[11] is None else f"{r[11]:.2f}x"
        launches = "-" if r[7] is None else f"{r[7]:.0f}"
        print(f"{r[0]:<22} {r[1]:<8} {r[2]:>8.3f} {r[3]:>8.1f} {r[4]:>10.0f} {r[5]:>11.1f} {r[6]:>6.2f} {launches:>8} {r[8]:>8} {ts:>12} {r[10]:>9} {ratio:>14}")
    print("speed vs torch = torch s/step / saad s/step (>= 1.0: saad as fast or faster); 1st epoch = the untimed first epoch (compilation, autotune); launches = GPU kernel launches per step")
    aa, ref = load(os.path.join(d, "aa-saad.json")), load(os.path.join(d, "aa-torch.json"))
    print()
    ours = (aa or {}).get("autoattack", [None])[0]
    theirs = (ref or {}).get("workloads", {}).get("autoattack")
    if ours:
        per = ", ".join(f"{s['attack']} {s['seconds']:.1f} s" for s in ours["steps"])
        print(f"AutoAttack standard, saad on {aa['device']}: n {ours['n']}, clean {ours['clean_acc']:.4f}, robust {ours['robust_acc']:.4f}, "
              f"{ours['seconds']:.1f} s ({per}); flags: {ours['flags'] or 'none'}")
    else:
        print("AutoAttack standard, saad: no result (see run.log)")
    if theirs and "seconds" in theirs:
        print(f"AutoAttack standard, pyautoattack on {ref['device']}: n {theirs.get('n')}, clean {theirs.get('clean_accuracy')}, "
              f"robust {theirs.get('robust_accuracy')}, {theirs['seconds']:.1f} s")
        if ours:
            print(f"AutoAttack speed vs reference: {theirs['seconds'] / ours['seconds']:.2f}x (reference seconds / saad seconds)")
    else:
        print(f"AutoAttack standard, reference: {json.dumps(theirs) if theirs else 'no result (see run.log)'}")


if __name__ == "__main__":
    main()
