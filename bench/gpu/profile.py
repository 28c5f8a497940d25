#!/usr/bin/env python3
"""Per-kernel GPU profile of a `saad bench` run, from cubecl's profiling log.

cubecl (burn's GPU compiler) times every kernel launch when its profiling logger is on: a
`cubecl.toml` in the working folder with

    [profiling.logger]
    level = "basic"
    file = "/path/to/profile.log"

makes each launch blocking and appends one line per kernel (`| 1.2ms | KernelName_hash`) and,
at every device sync (the trainer's one read per epoch, autotune's measurements), a summary
table ending in a `Total` row. `bench/gpu/run.sh` writes that file and runs the benchmark again
with it (SAAD_PROFILE=1). This script splits the log at the summary tables (one segment per
sync: with a warm autotune cache, one segment per epoch of `saad bench`), lists the segments,
and breaks the largest ones down by kernel family (the name without its hash suffixes and type
arguments), so the families that cost the most come first.

    python3 bench/gpu/profile.py profile.log [--top 25] [--segments 3]

The kernel times are device times of blocking launches: their sum is the GPU's busy time, not
the wall-clock step (compare with `saad bench`'s s/step to see the host's share).
"""
import argparse
import collections
import re
import sys

UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
LINE = re.compile(r"^\| ([0-9.]+)(ns|µs|us|ms|s)\s*\| (.+)$")
TOTAL = re.compile(r"^\| Total\s*\|")


def family(name: str) -> str:
    """The kernel's family: hashes dropped, a matmul's long list of type arguments shortened."""
    name = re.sub(r"_[0-9a-f]{8}\b", "", name.strip())
    parts = [p.strip() for p in name.split("|")]
    head = parts[0]
    if len(parts) > 3:
        # Matmul and convolution entries list dozens of type arguments: keep the algorithm
        # ("...Family") and the last (the global partitioning), which say which kernel it is.
        algorithm = [p for p in parts[1:-1] if p.endswith("Family")]
        return " | ".join([head, *algorithm, parts[-1]])
    return " | ".join(parts)


def segments(path):
    """Lists of (kernel family, seconds), one per sync (summary table) of the log."""
    out, current = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if TOTAL.match(line):
                out.append(current)
                current = []
                continue
            # Launch lines start with a duration; a summary table's rows start with a name.
            m = LINE.match(line)
            if m:
                current.append((family(m.group(3)), float(m.group(1)) * UNITS[m.group(2)]))
    if current:
        out.append(current)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("--top", type=int, default=25, help="kernel families shown per segment")
    ap.add_argument("--segments", type=int, default=3, help="how many of the largest segments to break down")
    args = ap.parse_args()
    segs = segments(args.log)
    if not segs:
        sys.exit(f"{args.log}: no profiled kernel launches found (was the profiling logger on?)")
    print(f"{len(segs)} segments (one per device sync); launches and GPU time of each:")
    for i, s in enumerate(segs):
        if len(s) >= 20:
            print(f"  segment {i:3d}: {len(s):7d} launches, {sum(t for _, t in s) * 1e3:10.2f} ms")
    largest = sorted(range(len(segs)), key=lambda i: -sum(t for _, t in segs[i]))[: args.segments]
    for i in sorted(largest):
        s = segs[i]
        total = sum(t for _, t in s)
        by = collections.defaultdict(lambda: [0.0, 0])
        for name, t in s:
            by[name][0] += t
            by[name][1] += 1
        print(f"\nsegment {i}: {len(s)} launches, {total * 1e3:.2f} ms of GPU time")
        print(f"  {'ms':>9} {'share':>6} {'launches':>8} {'mean µs':>8}  kernel family")
        for name, (t, n) in sorted(by.items(), key=lambda kv: -kv[1][0])[: args.top]:
            print(f"  {t * 1e3:9.2f} {100 * t / total:5.1f}% {n:8d} {1e6 * t / n:8.1f}  {name[:110]}")


if __name__ == "__main__":
    main()
