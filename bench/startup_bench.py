"""Start-up benchmark: median wall time of `ftctl --version` and `ftctl list` vs. targets."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = [
    ("ftctl --version", ["--version"], 0.3),
    ("ftctl list scenario_files/kubernetes", ["list", "scenario_files/kubernetes"], 0.8),
]


def _time_once(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ftctl", *args],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    """Run each command N times (after one warm-up) and print the median and its ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--runs", type=int, default=7)
    opts = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {opts.runs} runs each (after 1 warm-up)")
    for label, args, target in CASES:
        _time_once(args)  # warm the page cache and .pyc files
        times = [_time_once(args) for _ in range(opts.runs)]
        median = statistics.median(times)
        print(
            f"{label:<40} median {median:6.3f} s  min {min(times):6.3f} s  "
            f"target {target:.1f} s  ratio {median / target:5.2f}"
        )


if __name__ == "__main__":
    main()
