"""Launch a Dynamo component under the command line a real pod shows (``dynamo.vllm`` …).

    python -m ftctl.platforms.local_launch dynamo.vllm -- <dynamo.mocker args>
    python -m ftctl.platforms.local_launch dynamo.frontend -- <dynamo.frontend args>

The first argument is only a label that makes ``ps`` inside the "pod" look like the real
deployment (the catalog's ``dynamo.{backend}`` pattern matches it); ``dynamo.frontend`` runs
the frontend, every other label runs the CPU mocker in-process (runpy), so the launcher IS
the main process and a signal sent to it hits the component itself.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL us when the supervisor dies, so no orphan survives ftctl."""
    expected = os.environ.get("FTCTL_SUPERVISOR_PID")
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    # The parent may have died before prctl took effect: then we were reparented already.
    if expected is not None and str(os.getppid()) != expected:
        os._exit(1)


def main(argv: list[str]) -> None:
    """Run the component named by ``argv[0]`` with the arguments after ``--``."""
    if len(argv) < 2 or argv[1] != "--":
        sys.stderr.write("usage: python -m ftctl.platforms.local_launch LABEL -- ARGS...\n")
        raise SystemExit(2)
    label, args = argv[0], argv[2:]
    module = "dynamo.frontend" if label == "dynamo.frontend" else "dynamo.mocker"
    _die_with_parent()
    if module == "dynamo.mocker" and os.environ.get("FTCTL_KSERVE_MODEL"):
        # A KServe gRPC graph: the mocker plus the max_tokens relay (see kserve_relay).
        from ftctl.platforms.kserve_relay import run

        run(args)
        return
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
