#!/usr/bin/env python3
"""Runs a benchmark script in this process and reports its peak memory.

Used by `cargo xtask bench` to measure the PyTorch peer
(`xtask/peers/torch_wae_mmd.py`) the same way as our own worker: the peak resident
set size (Linux `ru_maxrss`, the kernel's VmHWM) of the whole process, interpreter,
imported libraries and the run together.

Usage: python peer_rss.py SCRIPT [SCRIPT ARGS...]
Prints the script's own output, then one JSON line {"peak_rss_kb": N}.
"""

import json
import resource
import runpy
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: peer_rss.py SCRIPT [ARGS...]")
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
    sys.stdout.flush()
    print(json.dumps({"peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    main()
