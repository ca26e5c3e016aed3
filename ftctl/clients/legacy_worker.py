"""Worker process of the legacy client: ``python -m ftctl.clients.legacy_worker`` (config on stdin).

Protocol: the first stdin line is a JSON config (see ``LegacyLoad._configs``); stdin then stays
open and its EOF (the parent died) stops the load. stdout carries JSON lines: ``{"ready_ns"}``
once, ``{"stats"}`` every 100 ms, ``{"summary"}`` at the end. SIGTERM/SIGINT stop gracefully
(no new requests; in-flight ones get the grace period); a second signal cancels at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ftctl.clients.legacy import ClientRun, spec_from_dict

REPORT_EVERY_S = 0.1


def run_loop(coro):
    """Run ``coro`` to completion on uvloop when installed (faster), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _emit(msg: dict) -> None:
    try:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the parent is gone; the stdin EOF watcher stops us


async def _main(cfg: dict) -> int:
    loop = asyncio.get_running_loop()
    stop, force = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (force if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    def watch_stdin() -> None:
        # Raw reads on fd 0: a daemon thread blocked in a buffered read aborts the interpreter
        # at exit; one blocked in os.read does not.
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()

    run = ClientRun(
        spec_from_dict(cfg["spec"]),
        cfg["urls"],
        cfg["model"],
        Path(cfg["out_dir"]),
        clients=cfg["clients"],
        rate=cfg.get("rate"),
        offset_s=cfg.get("offset_s", 0.0),
        stop=stop,
        force=force,
        stop_grace=cfg.get("stop_grace", 5.0),
        seed_offset=cfg.get("seed_offset", 0),
        share=tuple(cfg.get("share", (0, 1))),
        anchor_epoch_ns=cfg.get("anchor_epoch_ns"),
    )

    async def report() -> None:
        while True:
            _emit({"stats": run.stats.to_dict()})
            await asyncio.sleep(REPORT_EVERY_S)

    _emit({"ready_ns": time.time_ns()})
    reporter = asyncio.create_task(report())
    try:
        summary = await run.run()
    finally:
        reporter.cancel()
        _emit({"stats": run.stats.to_dict()})
    for warning in summary.warnings:
        sys.stderr.write(f"ftctl load: warning: {warning}\n")
    _emit({"summary": summary.to_dict()})
    return 0


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one; return the soft limit now in force.

    Each in-flight stream holds a socket and each logical client a log descriptor: thousands of
    streams in one worker pass the usual soft limit of 1024 (EMFILE shows up as ``connect``
    errors that are the client's, not the server's, fault).
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # keep the soft limit: the load still runs, with fewer streams possible
    return soft


def main() -> None:
    """Read the config line from stdin and run the engine until done or stopped."""
    raise_fd_limit()
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(0, 65536)  # the parent writes this one line and nothing after it
        if not chunk:
            sys.exit(2)
        line += chunk
    cfg = json.loads(line)
    sys.exit(run_loop(_main(cfg)))


if __name__ == "__main__":
    main()
