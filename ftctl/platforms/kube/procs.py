"""The argv ftctl execs in a pod to find and signal a process: one definition for the platform
and for ``ftctl plan``, which shows them (and must not load the Kubernetes client)."""

from __future__ import annotations

from collections.abc import Iterable

# -ww: procps cuts lines at 80 columns when writing to a pipe, which cut 'dynamo.vllm' off
# under a long install path; pid,args: nothing to parse but the PID and the command line.
PS_ARGV = ("ps", "-ww", "-eo", "pid,args")


def kill_argv(signal: str, pids: Iterable[int | str]) -> list[str]:
    """``kill -s NAME PID...``: by name, which both procps and busybox kill accept."""
    return ["kill", "-s", signal.removeprefix("SIG"), *[str(pid) for pid in pids]]
