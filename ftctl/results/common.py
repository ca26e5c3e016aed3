"""Typed helpers the result readers share (legacy JSONL, fast path, aiperf, upstream)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ftctl.results.model import RequestTable

NS_PER_S = 1_000_000_000
_NS = NS_PER_S
MAX_NS = 2**62  # epoch ns beyond year 2116: garbage, and it would overflow int64 arithmetic
MAX_WARNINGS_PER_FILE = 5
MAX_DURATION_S = 1e7  # seconds an attempt may plausibly take; more is garbage


def valid_ns(value: Any) -> bool:
    """An epoch-ns integer that int64 arithmetic can carry."""
    return type(value) is int and 0 <= value < MAX_NS


class FileWarnings:
    """Collects at most a few warnings per file, then counts the rest."""

    def __init__(self, path: Path, sink: list[str]) -> None:
        self.path, self.sink, self.count = path, sink, 0

    def __call__(self, line: int, message: str) -> None:
        self.count += 1
        if self.count <= MAX_WARNINGS_PER_FILE:
            self.sink.append(f"{self.path}:{line}: {message}")

    def close(self) -> None:
        if self.count > MAX_WARNINGS_PER_FILE:
            more = self.count - MAX_WARNINGS_PER_FILE
            self.sink.append(f"{self.path}: {more} more warnings")


def checked_table(path, client: int, columns: dict, warn: FileWarnings) -> RequestTable:
    """A RequestTable from fast-path columns (line N = row N − 1), with the clock check.

    ``columns``: ``start_ns``, ``end_ns``, ``ok``, ``ttft_s``, ``itl_s`` and, where the format
    records it, ``latency_s``; ``line_of`` (optional) maps a row to its line number where blank
    lines make them differ. An end more than 1 s before the previous line's → warned once;
    NaN or absent latency → end − start. Impossible rows (end before start, …) are kept here:
    the caller screens them out.
    """
    import numpy as np

    start = np.array(columns["start_ns"], np.int64)
    end = np.array(columns["end_ns"], np.int64)
    ok = np.array(columns["ok"], bool)
    ttft = np.array(columns["ttft_s"], np.float64)
    itl = np.array(columns["itl_s"], np.float64)
    if columns.get("latency_s") is None:
        latency = np.full(ok.size, np.nan)
    else:
        latency = np.array(columns["latency_s"], np.float64)

    if end.size > 1:
        jumps = np.flatnonzero(end[1:] < end[:-1] - _NS)
        if jumps.size:
            row = int(jumps[0]) + 1
            line = columns["line_of"](row) if "line_of" in columns else row + 1
            warn(line, "ends more than 1 s before the previous line (clock out of order)")
    missing = np.isnan(latency)
    if missing.any():
        latency = np.where(missing, (end - start) / _NS, latency)
    if not ok.size:
        warn.sink.append(f"{path}: no requests")
    return RequestTable(
        client=np.full(ok.size, client, np.int32),
        start_ns=start,
        end_ns=end,
        ok=ok,
        latency_s=latency,
        ttft_s=ttft,
        itl_s=itl,
    )


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


PARALLEL_MIN_BYTES = 64 * 2**20


def parallel_map(function, items: list, sizes: list[int]) -> list:
    """``[function(*item) for item in items]``, across processes when the input is big.

    Worth it above ~64 MiB (parse cost is per byte; workers cost ~50 ms). Uses fork, and only
    when this process has a single thread (forking a threaded process can deadlock).
    """
    import os
    import threading

    workers = min(os.cpu_count() or 1, 4, len(items))
    if workers < 2 or sum(sizes) < PARALLEL_MIN_BYTES or threading.active_count() > 1:
        return [function(*item) for item in items]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Biggest first keeps the workers evenly loaded.
    order = sorted(range(len(items)), key=lambda i: -sizes[i])
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        # One file per task: chunks of several left one worker with most of a small input.
        results = list(pool.map(_star, [(function, items[i]) for i in order], chunksize=1))
    out: list = [None] * len(items)
    for position, index in enumerate(order):
        out[index] = results[position]
    return out


def _star(job):
    function, args = job
    return function(*args)


def attempt_times(
    start_ns: int, end_ns: int, spans: list[tuple[Any, Any, Any]]
) -> list[tuple[int, int]]:
    """(start, end) in epoch ns of each attempt of a request that ran from start_ns to end_ns.

    ``spans`` holds per attempt its ``(start_ns, end_ns, request_elapsed_time)`` as written
    (ftctl writes all three; upstream only the elapsed seconds). Where an attempt has no valid
    times of its own they are rebuilt: the first attempt starts with the request, the last one
    ends with it and lasted its elapsed time, and the attempts between are spread evenly over
    what is left (the retry delay). Exact for one or two attempts.
    """
    n = len(spans)
    if n == 1 and not (valid_ns(spans[0][0]) and valid_ns(spans[0][1])):
        return [(start_ns, end_ns)]
    elapsed = []
    for _s, _e, seconds in spans:
        ok = isinstance(seconds, int | float) and not isinstance(seconds, bool)
        ok = ok and 0 <= seconds < MAX_DURATION_S
        elapsed.append(int(seconds * _NS) if ok else 0)
    gap = max(0, (end_ns - start_ns - sum(elapsed)) // (n - 1)) if n > 1 else 0
    out: list[tuple[int, int]] = []
    t = start_ns
    for i, (own_start, own_end, _seconds) in enumerate(spans):
        if i == n - 1:
            begin = min(max(t, end_ns - elapsed[i]), end_ns)
            rebuilt = (begin, end_ns)
        else:
            rebuilt = (t, min(t + elapsed[i], end_ns))
        t = rebuilt[1] + gap
        if valid_ns(own_start) and valid_ns(own_end) and own_start <= own_end:
            out.append((own_start, own_end))
        else:
            out.append(rebuilt)
    return out


def naive_epoch_s(text: str) -> float | None:
    """Seconds since the epoch of a naive ISO time read *as if UTC* (callers shift the zone).

    Upstream ``time`` fields and ``test.log.txt`` stamps are host-local with no zone: reading
    both the same way keeps them comparable with each other (REFERENCE §9.2).
    """
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
