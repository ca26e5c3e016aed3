"""Reader of legacy client files ``client_N.log.txt`` (JSONL, one line per logical request)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ftctl.results.files import numbered_entries, read_regular
from ftctl.results.model import AttemptTable, RequestTable
from ftctl.results.outcome import attempt_outcomes, record_succeeded
from ftctl.results.sanity import screen

CLIENT_FILE = re.compile(r"^client_(\d+)\.log\.txt$")
_NS = 1_000_000_000
MAX_WARNINGS_PER_FILE = 5
MAX_NS = 2**62  # epoch ns beyond year 2116: garbage, and it would overflow int64 arithmetic
MAX_DURATION_S = 1e7


def valid_ns(value: Any) -> bool:
    """An epoch-ns integer that int64 arithmetic can carry."""
    return type(value) is int and 0 <= value < MAX_NS


def client_files(path: Path) -> list[tuple[int, Path]]:
    """``client_N.log.txt`` files of a directory in numeric order."""
    return numbered_entries(path, CLIENT_FILE, dirs=False)


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


def _float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float("nan")


def _itl(value: Any) -> float:
    """Mean inter-token latency; a negative interval makes it negative (an impossible record)."""
    if isinstance(value, list):
        numbers = [float(v) for v in value if isinstance(v, int | float)]
        if not numbers:
            return float("nan")
        lowest = min(numbers)
        return lowest if lowest < 0 else sum(numbers) / len(numbers)
    return _float(value)


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


class _Warn:
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


def read_client_file(
    path: Path, client: int, warnings: list[str], span_ns: tuple[int, int] | None = None
) -> tuple[RequestTable, bool]:
    """Read one client file into a RequestTable; return (table, times_from_upstream_fields).

    Lines that cannot be read (truncated last line, garbage, non-UTF-8) are skipped with a
    warning naming the file and line. Without ``start_ns``/``end_ns`` the times are derived from
    ``time`` (the end of the request, host-local, 1 s resolution) and ``total_time``.
    Impossible records are left out (``ftctl.results.sanity``; ``span_ns``: the run's span).
    """
    import numpy as np

    from ftctl.results.fast import legacy_columns

    warn = _Warn(path, warnings)
    try:
        raw = read_regular(path)
    except OSError as exc:
        warnings.append(f"{path}: cannot read ({exc.strerror})")
        return RequestTable.empty(), False
    columns = legacy_columns(raw)
    if columns is not None:
        n = len(columns["ok"])
        table = checked_table(
            path,
            client,
            np.array(columns["start_ns"], np.int64),
            np.array(columns["end_ns"], np.int64),
            np.array(columns["ok"], bool),
            np.full(n, np.nan),
            np.array(columns["ttft_s"], np.float64),
            np.array(columns["itl_s"], np.float64),
            warn,
        )
        if columns["scheduled_ns"] is not None:
            table.scheduled_ns = np.array(columns["scheduled_ns"], np.int64)
        if columns["attempts"] is not None:
            table.attempt_rows = AttemptTable.from_lists(*columns["attempts"])
        warn.close()
        return screen(table, path, warnings, span_ns), False
    lines = raw.split(b"\n")
    starts: list[int] = []
    ends: list[int] = []
    oks: list[bool] = []
    lats: list[float] = []
    ttfts: list[float] = []
    itls: list[float] = []
    scheduled: list[int] = []
    att_request: list[int] = []
    att_start: list[int] = []
    att_end: list[int] = []
    att_ok: list[bool] = []
    derived = False
    time_cache: dict[str, float | None] = {}
    last_end = None
    reversed_reported = False
    loads = orjson.loads
    last_index = len(lines) - 1
    for index, line in enumerate(lines):
        if not line or line.isspace():
            continue
        try:
            record = loads(line)
        except orjson.JSONDecodeError:
            try:  # non-UTF-8 bytes inside strings: keep the record, lose the bytes
                record = loads(line.decode("utf-8", "replace"))
            except orjson.JSONDecodeError:
                what = "truncated last line" if index == last_index else "unreadable line"
                warn(index + 1, f"{what} skipped")
                continue
        if not isinstance(record, dict):
            warn(index + 1, "not a JSON object; skipped")
            continue
        start = record.get("start_ns")
        end = record.get("end_ns")
        total = record.get("total_time")
        if valid_ns(start) and valid_ns(end):
            latency = (end - start) / _NS
        else:
            stamp = record.get("time")
            if not isinstance(stamp, str):
                end_s = None
            elif stamp in time_cache:
                end_s = time_cache[stamp]
            else:
                end_s = time_cache[stamp] = naive_epoch_s(stamp)
            if (
                end_s is None
                or not isinstance(total, int | float)
                or isinstance(total, bool)
                or not 0 <= total < MAX_DURATION_S  # also rejects NaN
                or not 0 <= end_s < MAX_NS / _NS
            ):
                warn(index + 1, "no start_ns/end_ns and no usable time/total_time; skipped")
                continue
            derived = True
            end = int(end_s * _NS)
            start = end - int(total * _NS)
            latency = float(total)
        if last_end is not None and end < last_end - _NS and not reversed_reported:
            warn(index + 1, "ends more than 1 s before the previous line (clock out of order)")
            reversed_reported = True
        last_end = end
        outcomes = attempt_outcomes(record)
        results = record.get("results")
        if isinstance(results, list) and results:
            spans = [
                (a.get("start_ns"), a.get("end_ns"), a.get("request_elapsed_time"))
                if isinstance(a, dict)
                else (None, None, None)
                for a in results
            ]
        else:
            spans = [(None, None, None)]
        for (a_start, a_end), a_ok in zip(attempt_times(start, end, spans), outcomes, strict=True):
            att_request.append(len(oks))
            att_start.append(a_start)
            att_end.append(a_end)
            att_ok.append(a_ok)
        starts.append(start)
        ends.append(end)
        oks.append(record_succeeded(record))
        lats.append(latency)
        ttft = record.get("ttft")
        ttfts.append(_float(ttft) if ttft is not None else float("nan"))
        itl = record.get("itl")
        itls.append(_itl(itl) if itl is not None else float("nan"))
        schedule = record.get("scheduled_ns")
        scheduled.append(schedule if valid_ns(schedule) else -1)
    warn.close()
    if not oks:
        warnings.append(f"{path}: no requests")
    has_schedule = any(s >= 0 for s in scheduled)
    table = RequestTable.from_lists(
        client, starts, ends, oks, lats, ttfts, itls, scheduled if has_schedule else None
    )
    if len(att_ok) != len(oks):  # some request was tried more than once
        table.attempt_rows = AttemptTable.from_lists(att_request, att_start, att_end, att_ok)
    return screen(table, path, warnings, span_ns), derived


def checked_table(path, client, start, end, ok, latency, ttft, itl, warn) -> RequestTable:
    """A RequestTable from fast-path columns (line N = row N − 1), with the clock check.

    An end more than 1 s before the previous line's → warned once; NaN latency → end − start.
    Impossible rows (end before start, …) are kept here: the caller screens them out.
    """
    import numpy as np

    if end.size > 1:
        jumps = np.flatnonzero(end[1:] < end[:-1] - _NS)
        if jumps.size:
            warn(
                int(jumps[0]) + 2,
                "ends more than 1 s before the previous line (clock out of order)",
            )
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


def read_legacy_dir(
    path: Path, warnings: list[str], span_ns: tuple[int, int] | None = None
) -> tuple[RequestTable, int, bool]:
    """All client files of one load directory: (table, client count, times derived)."""
    tables: list[RequestTable] = []
    derived_any = False
    files = client_files(path)
    sizes = [_size(file) for _, file in files]
    for table, derived, file_warnings in parallel_map(
        _read_one, [(file, client, span_ns) for client, file in files], sizes
    ):
        tables.append(table)
        derived_any |= derived
        warnings.extend(file_warnings)
    return RequestTable.concat(tables), len(files), derived_any


def _size(path: Path) -> int:
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
        results = list(pool.map(_star, [(function, items[i]) for i in order], chunksize=4))
    out: list = [None] * len(items)
    for position, index in enumerate(order):
        out[index] = results[position]
    return out


def _star(job):
    function, args = job
    return function(*args)


def _read_one(
    path: Path, client: int, span_ns: tuple[int, int] | None
) -> tuple[RequestTable, bool, list[str]]:
    warnings: list[str] = []
    table, derived = read_client_file(path, client, warnings, span_ns)
    return table, derived, warnings
