#!/usr/bin/env python3
"""Where one CPU idles while the other works: the serial parts of a parallel run.

Record the whole machine with call stacks while the program runs, then feed the
script's text to this file:

  perf record -a --call-graph dwarf,16384 -e cpu-clock -F 999 -o /tmp/p.data -- \
      ./target/release/xtask bench --worker --case=step --batch=100 --width-div=4 --steps=25
  perf script -i /tmp/p.data -F cpu,time,comm,ip,sym > /tmp/p.txt
  python3 scripts/idle_windows.py /tmp/p.txt [TOP] [WINDOW_MS]

Time is cut into windows (2 ms by default); a window where one CPU ran only the idle
task (`swapper`) and another ran the program counts for the busy CPU's stack: its
innermost function and the first frames from this workspace or candle. The counts
(windows, one per sample kept) say which code runs alone. Written for 2-CPU machines
(with more CPUs, a window counts when at least one CPU idles and one works).
Standard library only; perf must be allowed to sample the whole machine
(`kernel.perf_event_paranoid` at most 0, or root).
"""

import collections
import re
import sys


def read_samples(path):
    samples, cur = [], None
    with open(path, errors="replace") as f:
        for line in f:
            if line.strip() and not line.startswith("\t"):
                m = re.match(r"(\S.*?)\s+\[(\d+)\]\s+([\d.]+):", line)
                if m:
                    cur = [m.group(1), int(m.group(2)), float(m.group(3)), []]
                    samples.append(cur)
            elif line.strip() and cur is not None:
                parts = line.strip().split(None, 1)
                frame = parts[1] if len(parts) > 1 else parts[0]
                cur[3].append(re.sub(r"\+0x[0-9a-f]+", "", frame))
    return samples


def label(stack):
    leaf = stack[0][:40] if stack else "?"
    ours = [
        f
        for f in stack
        if ("wae_" in f or "candle" in f or "xtask" in f)
        and not any(k in f for k in ("rayon", "gemm", "core::ops", "profile::timed"))
    ]
    return leaf + " @ " + " < ".join(f[:60] for f in ours[:3])


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    window = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.002
    buckets = collections.defaultdict(dict)
    for comm, cpu, t, stack in read_samples(sys.argv[1]):
        buckets[int(t / window)][cpu] = (comm, stack)
    alone, both, counts = 0, 0, collections.Counter()
    for per_cpu in buckets.values():
        if len(per_cpu) < 2:
            continue
        busy = [v for v in per_cpu.values() if v[0] != "swapper"]
        if not busy:
            continue
        if len(busy) < len(per_cpu):
            alone += 1
            counts[label(busy[0][1])] += 1
        else:
            both += 1
    total = max(alone + both, 1)
    print(f"windows with work: {total}; one CPU idle in {alone} ({100 * alone / total:.1f} %)")
    for what, n in counts.most_common(top):
        print(f"{n:6d}  {what}")


if __name__ == "__main__":
    main()
