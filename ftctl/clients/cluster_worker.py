"""The built-in client inside a cluster load's Job pod: ``python3 -m ftctl cluster-worker``.

Reads ``$FTCTL_LOAD_CONFIG`` (the same for every pod) and ``$JOB_COMPLETION_INDEX`` (this
pod's share of the logical clients), waits on the start barrier ftctl releases by exec
(ftctl.barrier), then runs the engine of the local client with every record written as one
JSON line on stdout: the pod log is the result file, split by client on the ftctl host. A
killed pod loses at most the line being written. Control lines carry an ``"ftctl"`` key:
``waiting``, ``start``, ``stats`` (every second), ``summary``, ``done``.
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

import orjson

from ftctl import barrier
from ftctl.clients.legacy import ClientRun, spec_from_dict
from ftctl.clients.legacy_worker import run_loop

STATS_EVERY_S = 1.0
POLL_S = 0.005  # barrier files are local: a cheap stat, fine-grained start


def emit(msg: dict) -> None:
    """One control line on stdout (one write: never interleaved with a record)."""
    try:
        os.write(1, orjson.dumps(msg) + b"\n")
    except OSError:
        pass


class StdoutRun(ClientRun):
    """The engine with its records on stdout instead of ``client_N.log.txt`` files."""

    def _write(self, client: int, record: dict) -> None:
        os.write(1, orjson.dumps(record) + b"\n")


def _wait_release(exit_at: float) -> int | None:
    """The start time (epoch ns, this pod's clock) once released; None if stopped first."""
    while time.monotonic() < exit_at:
        start = barrier.read_start()
        if start is not None:
            return start
        if barrier.path("stop").exists():
            return None
        time.sleep(POLL_S)
    return None


async def _run(cfg: dict, index: int, clients: list[int]) -> dict:
    spec = spec_from_dict(cfg["spec"])
    loop = asyncio.get_running_loop()
    stop, force = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (force if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    def watch_stop() -> None:  # ftctl's stop_load: the stop file, written by exec
        while not stop.is_set():
            if barrier.path("stop").exists():
                loop.call_soon_threadsafe(stop.set)
                return
            time.sleep(0.05)

    threading.Thread(target=watch_stop, daemon=True).start()
    rate, offset = spec.request_rate, 0.0
    if spec.arrival != "closed" and spec.request_rate:
        # The total rate is split by clients; constant arrivals interleave by offset.
        rate = spec.request_rate * len(clients) / spec.clients
        offset = index / spec.request_rate
    run = StdoutRun(
        spec,
        cfg["urls"],
        cfg["model"],
        Path("/nonexistent"),  # records go to stdout
        clients=clients,
        rate=rate,
        offset_s=offset,
        stop=stop,
        force=force,
        stop_grace=float(cfg.get("stop_grace", spec.timeout)),
        seed_offset=index,
    )

    async def report() -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            emit({"ftctl": "stats", **run.stats.to_dict()})

    reporter = asyncio.create_task(report())
    try:
        summary = await run.run()
    finally:
        reporter.cancel()
    emit({"ftctl": "stats", **run.stats.to_dict()})
    return summary.to_dict()


def main() -> int:
    """Run this pod's share of the load; exit 0 when done (2 on a bad config)."""
    try:
        cfg = json.loads(os.environ[barrier.CONFIG_ENV])
        index = int(os.environ.get(barrier.INDEX_ENV, "0"))
        clients = barrier.pod_clients(int(cfg["spec"]["clients"]), int(cfg["pods"]), index)
    except (KeyError, ValueError, TypeError) as exc:
        sys.stderr.write(f"ftctl cluster-worker: bad ${barrier.CONFIG_ENV}: {exc!r}\n")
        return 2
    wait_s = float(cfg["spec"].get("start_timeout") or 300.0) + 60.0
    emit({"ftctl": "waiting", "index": index, "clients": clients, "t_ns": time.time_ns()})
    start_ns = _wait_release(time.monotonic() + wait_s)
    if start_ns is None:
        emit({"ftctl": "done", "index": index, "sent": False, "t_ns": time.time_ns()})
        return 0
    while (left := start_ns - time.time_ns()) > 0:  # every pod starts at the released time
        time.sleep(left / 1e9)  # (again if the wall clock was slewed while asleep)
    emit({"ftctl": "start", "index": index, "t_ns": time.time_ns(), "planned_ns": start_ns})
    summary = run_loop(_run(cfg, index, clients))
    emit({"ftctl": "summary", "index": index, **summary})
    emit({"ftctl": "done", "index": index, "sent": True, "t_ns": time.time_ns()})
    # Stay up until ftctl read this pod's clock once more (the end offset), or give up.
    exit_at = time.monotonic() + float(cfg.get("exit_wait_s", 120))
    while time.monotonic() < exit_at and not barrier.path("exit").exists():
        time.sleep(0.05)
    return 0
