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


# The state of every process (STAT: R, S, T = stopped, Z …): how a stall is verified in a pod.
STAT_ARGV = ("ps", "-eo", "pid,stat")


def parse_states(text: str) -> dict[int, str]:
    """``{pid: STAT}`` from the output of ``STAT_ARGV`` (header line skipped)."""
    states: dict[int, str] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            states[int(parts[0])] = parts[1]
    return states


# A TCP connection probe run in a pod (Dynamo images have python3): exit 0 when it connected,
# 1 when it could not (refused, unreachable, timed out). argv: host, port, timeout seconds.
PROBE_CODE = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), float(sys.argv[3])).close()\n"
    "except OSError as exc:\n"
    "    print(f'connect {sys.argv[1]}:{sys.argv[2]}: {exc}', file=sys.stderr)\n"
    "    sys.exit(1)\n"
)


def probe_argv(host: str, port: int | str, timeout: float = 3.0) -> list[str]:
    """``python3 -c PROBE_CODE HOST PORT TIMEOUT``: can this pod open a connection there?"""
    return ["python3", "-c", PROBE_CODE, str(host), str(port), f"{timeout:g}"]
