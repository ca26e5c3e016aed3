"""The start barrier of a cluster load's Job pods: files ftctl writes into each pod by exec.

Shared by ftctl (which builds the exec argv) and the in-pod worker (which waits on the files),
so it imports nothing heavy: ``python3 -m ftctl.barrier clock|release NS|stop|exit`` starts in
a few tens of milliseconds. Why exec and not a ConfigMap the pods poll: the pods then need no
API credentials (no ServiceAccount, Role or Kubernetes client in the image), and the same
round trip measures each pod's clock against the ftctl host (NTP-like: the pod's time is
taken between ftctl's two readings of its own clock).

Files, in ``$FTCTL_BARRIER_DIR`` (one set per ``$JOB_COMPLETION_INDEX``):
``start-<i>`` holds the epoch ns (pod clock) at which the pod starts sending; ``stop-<i>``
asks it to stop early (graceful); ``exit-<i>`` lets a finished pod exit (ftctl read its end
clock first).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

CONFIG_ENV = "FTCTL_LOAD_CONFIG"  # the worker's JSON config (ftctl.platforms.kube.jobs)
DIR_ENV = "FTCTL_BARRIER_DIR"
INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by the Job controller in Indexed mode
DEFAULT_DIR = "/tmp/ftctl-barrier"
MODULE_ARGV = ("python3", "-m", "ftctl.barrier")


# The clock reading: isolated mode, no site packages, nothing imported but time, so the pod's
# time is taken as early as possible in the exec (a long start-up biases the reading).
CLOCK_ARGV = ("python3", "-I", "-S", "-c", "import time; print(time.time_ns())")


def argv(action: str, *args: str | int) -> list[str]:
    """The exec argv of ``action`` (clock | release | stop | exit)."""
    if action == "clock":
        return list(CLOCK_ARGV)
    return [*MODULE_ARGV, action, *(str(a) for a in args)]


def offset_from(samples: list[tuple[int, int, int]]) -> tuple[int, int, int, int]:
    """(offset, uncertainty, low, high) of a pod clock from (host before, pod, host after).

    The pod's reading was taken between the host's two, so its offset (pod − host) lies in
    [pod − after, pod − before]; the sample with the shortest round trip bounds it best. How
    the round trip splits is unknown (an exec starts slowly and answers fast), so no midpoint is
    assumed: the offset applied is the one of the bounds nearest 0 — 0 when the clocks agree
    as far as can be measured (NTP-synced nodes), else the least correction the bounds prove.
    """
    before, pod, after = min(samples, key=lambda s: s[2] - s[0])
    low, high = pod - after, pod - before
    offset = 0 if low <= 0 <= high else (low if low > 0 else high)
    return offset, (high - low) // 2, low, high


def path(kind: str, index: int | str | None = None, directory: str | None = None) -> Path:
    """The barrier file ``kind`` (start | stop | exit) of pod ``index`` (default: this pod's)."""
    directory = directory or os.environ.get(DIR_ENV) or DEFAULT_DIR
    index = os.environ.get(INDEX_ENV, "0") if index is None else index
    return Path(directory) / f"{kind}-{index}"


def pod_clients(clients: int, pods: int, index: int) -> list[int]:
    """The logical clients of pod ``index``: contiguous, sizes differing by at most one."""
    base, extra = divmod(clients, pods)
    start = index * base + min(index, extra)
    return list(range(start, start + base + (1 if index < extra else 0)))


def _write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)  # the worker never reads half a file


def read_start(index: int | str | None = None) -> int | None:
    """The start time (epoch ns, this pod's clock) once ftctl released the barrier, else None."""
    try:
        return int(path("start", index).read_text().strip())
    except (OSError, ValueError):
        return None


def main(args: list[str]) -> int:
    """``clock`` prints time.time_ns(); ``release NS`` / ``stop`` / ``exit`` write their file."""
    if not args:
        sys.stderr.write("usage: python3 -m ftctl.barrier clock|release NS|stop|exit\n")
        return 2
    action = args[0]
    if action == "clock":
        sys.stdout.write(f"{time.time_ns()}\n")
        return 0
    if action == "release" and len(args) == 2 and args[1].lstrip("-").isdigit():
        _write(path("start"), args[1])
        return 0
    if action in ("stop", "exit") and len(args) == 1:
        _write(path(action), str(time.time_ns()))
        return 0
    sys.stderr.write(f"ftctl.barrier: bad arguments: {' '.join(args)}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
