"""Reader of legacy client files ``client_N.log.txt`` (JSONL, one line per logical request)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ftctl.layout import CLIENT_LOG_RE as CLIENT_FILE
from ftctl.results.common import (
    MAX_DURATION_S,
    MAX_NS,
    FileWarnings,
    attempt_times,
    checked_table,
    file_size,
    naive_epoch_s,
    parallel_map,
    valid_ns,
)
from ftctl.results.common import NS_PER_S as _NS
from ftctl.results.files import numbered_entries, read_regular
from ftctl.results.model import AttemptTable, RequestTable
from ftctl.results.outcome import attempt_outcomes, record_succeeded
from ftctl.results.sanity import screen


def client_files(path: Path) -> list[tuple[int, Path]]:
    """``client_N.log.txt`` files of a directory in numeric order."""
    return numbered_entries(path, CLIENT_FILE, dirs=False)


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

    warn = FileWarnings(path, warnings)
    try:
        raw = read_regular(path)
    except OSError as exc:
        warnings.append(f"{path}: cannot read ({exc.strerror})")
        return RequestTable.empty(), False
    columns = legacy_columns(raw)
    if columns is not None:
        table = checked_table(path, client, columns, warn)
        if columns["scheduled_ns"] is not None:
            table.scheduled_ns = np.array(columns["scheduled_ns"], np.int64)
        if columns["attempts"] is not None:
            table.attempt_rows = AttemptTable.from_lists(*columns["attempts"])
        warn.close()
        return screen(table, path, warnings, span_ns), columns["derived"]
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


def read_legacy_dir(
    path: Path, warnings: list[str], span_ns: tuple[int, int] | None = None
) -> tuple[RequestTable, int, bool]:
    """All client files of one load directory: (table, client count, times derived)."""
    tables: list[RequestTable] = []
    derived_any = False
    files = client_files(path)
    sizes = [file_size(file) for _, file in files]
    for table, derived, file_warnings in parallel_map(
        _read_one, [(file, client, span_ns) for client, file in files], sizes
    ):
        tables.append(table)
        derived_any |= derived
        warnings.extend(file_warnings)
    return RequestTable.concat(tables), len(files), derived_any


def _read_one(
    path: Path, client: int, span_ns: tuple[int, int] | None
) -> tuple[RequestTable, bool, list[str]]:
    warnings: list[str] = []
    table, derived = read_client_file(path, client, warnings, span_ns)
    return table, derived, warnings
