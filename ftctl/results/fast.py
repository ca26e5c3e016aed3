"""Fast path for big, well-formed JSONL files: typed msgspec decoding of only the fields read.

A whole file is decoded as one JSON array of small Structs (unknown fields are skipped in C).
Any surprise — a truncated line, a field of an unexpected type, a missing time —
returns None, and the caller falls back to the line-by-line reader that warns per line.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from ftctl.results.common import MAX_NS, attempt_times

if TYPE_CHECKING:
    import numpy as np


# Completion text is never materialised: a Raw is the undecoded JSON (a view, no UTF-8 work).
# A JSON string is non-empty exactly when its literal is longer than the two quotes.
_NULL = msgspec.Raw(b"null")
_ABSENT = msgspec.Raw(b"")


def _nonempty_text(raw: msgspec.Raw) -> bool:
    """The Raw value is a non-empty JSON string (``isinstance(text, str) and text``)."""
    return len(raw) > 2 and memoryview(raw)[0] == 34  # '"'


class _Message(msgspec.Struct, gc=False):
    content: msgspec.Raw = _NULL


class _Choice(msgspec.Struct, gc=False):
    message: _Message | None = None
    text: msgspec.Raw = _NULL
    finish_reason: msgspec.Raw = _ABSENT  # absent, or a value (``null`` = not finished)


class _Result(msgspec.Struct, gc=False):
    choices: list[_Choice] | None = None
    error: Any = None


class _Attempt(msgspec.Struct, gc=False):
    status: int | str | None = None
    result: _Result | None | UnsetType = UNSET
    error: Any = None
    start_ns: int | None = None
    end_ns: int | None = None
    request_elapsed_time: Any = None


class _LegacyTop(msgspec.Struct, gc=False):
    """What an ftctl record needs when it carries ``ok``: ``results`` is skipped in C."""

    start_ns: int | None = None
    end_ns: int | None = None
    scheduled_ns: int | None = None
    ok: bool | None = None
    ttft: float | None = None
    itl: float | list[float] | None = None
    attempts: int | None = None  # ftctl: how many attempts ``results`` holds


class _LegacyRecord(msgspec.Struct, gc=False):
    ok: bool | None = None
    error: Any = None
    results: list[_Attempt] | None = None


class _UpstreamRecord(msgspec.Struct, gc=False):
    """A record as the upstream client writes it: times from ``time`` and ``total_time``."""

    time: str | None = None
    total_time: float | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    scheduled_ns: int | None = None
    ok: bool | None = None
    error: Any = None
    results: list[_Attempt] | None = None
    ttft: float | None = None
    itl: float | list[float] | None = None


class _Metric(msgspec.Struct, gc=False):
    value: float | None = None
    unit: Literal["ms"] = "ms"  # another unit fails validation → the slow path converts it


class _Count(msgspec.Struct, gc=False):
    value: float | None = None


class _Metrics(msgspec.Struct, gc=False):
    output_sequence_length: _Count | None = None
    request_latency: _Metric | None = None
    time_to_first_token: _Metric | None = None
    inter_token_latency: _Metric | None = None


class _Metadata(msgspec.Struct, gc=False):
    request_start_ns: int
    request_end_ns: int
    was_cancelled: bool = False
    benchmark_phase: str | None = None


class _AiperfRecord(msgspec.Struct, gc=False):
    metadata: _Metadata
    metrics: _Metrics | None = None
    error: Any = None


_LEGACY_TOP = msgspec.json.Decoder(_LegacyTop)
_LEGACY = msgspec.json.Decoder(_LegacyRecord)
_UPSTREAM = msgspec.json.Decoder(_UpstreamRecord)
_AIPERF = msgspec.json.Decoder(_AiperfRecord)
_NAN = float("nan")


def _lines(decoder: msgspec.json.Decoder, raw: bytes) -> list | None:
    """Every line decoded; None on any error (the caller then reads line by line).

    Blank lines are skipped, as the line-by-line readers skip them. Lines are not counted
    against records: that scan cost 15 % of a parse, and the one case it would catch — two
    whole records on one line — is read here as the two records it holds.
    """
    if not raw or raw.isspace():
        return None
    # The cyclic GC would walk the young lists (e.g. ITL lists) over and over while a million
    # records are built; nothing here forms a cycle.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return decoder.decode_lines(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    finally:
        if enabled:
            gc.enable()


def line_of(raw: bytes):
    """row → 1-based line number in ``raw``, skipping blank lines as the readers do."""

    def find(row: int) -> int:
        seen = -1
        for number, line in enumerate(raw.split(b"\n"), 1):
            if line and not line.isspace():
                seen += 1
                if seen == row:
                    return number
        return row + 1

    return find


def _attempt_ok(attempt: _Attempt) -> bool:
    if attempt.error or attempt.status != 200:
        return False
    result = attempt.result
    if result is UNSET:
        return True  # upstream examples omit `result`: judged by status alone
    if result is None or result.error or not result.choices:
        return False
    choice = result.choices[0]
    text = choice.message.content if choice.message is not None else choice.text
    if not _nonempty_text(text):
        return False
    reason = choice.finish_reason
    return reason is _ABSENT or len(reason) != 4 or bytes(reason) != b"null"


def _legacy_ok(record: _LegacyRecord) -> bool:
    if record.ok is not None:
        return record.ok
    if record.error or not record.results:
        return False
    return any(_attempt_ok(a) for a in record.results)


def _attempt_oks(record: _LegacyRecord, ok: bool) -> list[bool]:
    """Each attempt's outcome, reconciled with the record's as ``outcome.attempt_outcomes``."""
    if not record.results:
        return [ok]
    outcomes = [_attempt_ok(a) for a in record.results]
    if not ok:
        return [False] * len(outcomes)
    if not any(outcomes):
        outcomes[-1] = True
    return outcomes


def _attempt_columns(
    full: list[_LegacyRecord], starts: list[int], ends: list[int], ok: list[bool]
) -> tuple[list[int], list[int], list[int], list[bool]]:
    """(request row, start, end, ok) of every attempt of every record."""
    request: list[int] = []
    a_start: list[int] = []
    a_end: list[int] = []
    a_ok: list[bool] = []
    for row, record in enumerate(full):
        outcomes = _attempt_oks(record, ok[row])
        if record.results:
            spans = [(a.start_ns, a.end_ns, a.request_elapsed_time) for a in record.results]
        else:
            spans = [(None, None, None)]
        for (s, e), o in zip(attempt_times(starts[row], ends[row], spans), outcomes, strict=True):
            request.append(row)
            a_start.append(s)
            a_end.append(e)
            a_ok.append(o)
    return request, a_start, a_end, a_ok


def _itl(value: float | list[float] | None) -> float:
    if value is None:
        return _NAN
    if isinstance(value, list):
        if not value:
            return _NAN
        lowest = min(value)
        return lowest if lowest < 0 else sum(value) / len(value)
    return float(value)


def _itl_means(itls: list) -> list[float] | np.ndarray:
    """Mean ITL per record; vectorised when every record carries a list (ftctl's client).

    A record with a negative interval gets that (negative) value instead, as the line-by-line
    reader does: the record is impossible and is screened out (``ftctl.results.sanity``).
    """
    import itertools

    import numpy as np

    if not all(type(x) is list for x in itls):
        return [_itl(x) for x in itls]
    lengths = np.array([len(x) for x in itls], np.int64)
    flat = np.fromiter(itertools.chain.from_iterable(itls), np.float64, int(lengths.sum()))
    sums = np.zeros(lengths.size)
    nonempty = lengths > 0
    lowest = None
    if flat.size:
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        sums[nonempty] = np.add.reduceat(flat, offsets[nonempty])
        if (flat < 0).any():  # rare: only then find which records hold the negative interval
            lowest = np.zeros(lengths.size)
            lowest[nonempty] = np.minimum.reduceat(flat, offsets[nonempty])
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(nonempty, sums / np.maximum(lengths, 1), np.nan)
    return means if lowest is None else np.where(lowest < 0, lowest, means)


def legacy_columns(raw: bytes) -> dict[str, Any] | None:
    """Columns of a well-formed legacy file; None when only the line-by-line reader can tell.

    ftctl's records (every line has start_ns/end_ns): ``ok`` is trusted when every record has
    it; otherwise the attempts are decoded and judged. Upstream records (no line has
    start_ns/end_ns): see ``_upstream_columns``. ``attempts`` is None when every record was
    tried once, else the (request row, start, end, ok) columns of every attempt. ``derived``:
    the times come from the upstream ``time``/``total_time`` fields.
    """
    first = raw[: raw.find(b"\n")] if b"\n" in raw[:65536] else raw[:65536]
    if b'"start_ns"' not in first:
        columns = _upstream_columns(raw)
        if columns is not _FTCTL:
            return columns
    records = _lines(_LEGACY_TOP, raw)
    if records is None:
        return None
    starts = [r.start_ns for r in records]
    ends = [r.end_ns for r in records]
    for values in (starts, ends):
        if None in values or min(values) < 0 or max(values) >= MAX_NS:
            return None
    ok = [r.ok for r in records]
    counts = [r.attempts for r in records]
    once = None not in counts and min(counts) == max(counts) == 1
    full = None
    if None in ok or not once:
        full = _lines(_LEGACY, raw)
        if full is None:
            return None
    if None in ok:
        ok = [_legacy_ok(r) for r in full]
    attempts = None
    if full is not None and not once:
        attempts = _attempt_columns(full, starts, ends, ok)
        if len(attempts[0]) == len(records):  # every record was tried once after all
            attempts = None
    scheduled = [
        s if s is not None and 0 <= s < MAX_NS else -1 for s in (r.scheduled_ns for r in records)
    ]
    return {
        "start_ns": starts,
        "end_ns": ends,
        "scheduled_ns": scheduled if max(scheduled, default=-1) >= 0 else None,
        "ok": ok,
        "ttft_s": [_NAN if r.ttft is None else r.ttft for r in records],
        "itl_s": _itl_means([r.itl for r in records]),
        "attempts": attempts,
        "derived": False,
        "line_of": line_of(raw),
    }


_FTCTL: dict[str, Any] = {}  # "these are ftctl's records": read them by the path above


def _upstream_ok(record: _UpstreamRecord) -> bool:
    """``outcome.record_succeeded`` on a typed record."""
    if record.ok is not None:
        return record.ok
    if record.error or not record.results:
        return False
    for attempt in record.results:
        if _attempt_ok(attempt):
            return True
    return False


def _upstream_columns(raw: bytes) -> dict[str, Any] | None:
    """Columns of a file of upstream records (the line-by-line reader's derived times).

    Each request ends at its ``time`` (naive ISO, read as UTC like the line-by-line reader) and
    started ``total_time`` earlier; its latency is ``total_time``. A line that reader would warn
    about and skip (no usable time), or any line carrying start_ns/end_ns, returns None: the
    line-by-line reader then handles the file, warnings and all.
    """
    records = _lines(_UPSTREAM, raw)
    if not records:
        return None
    if any(r.start_ns is not None or r.end_ns is not None for r in records):
        # ftctl's records after all (e.g. behind a blank first line), or a mix: not for here.
        ftctl = all(r.start_ns is not None and r.end_ns is not None for r in records)
        return _FTCTL if ftctl else None
    import numpy as np

    from ftctl.results.common import MAX_DURATION_S, NS_PER_S, naive_epoch_s

    stamps = [r.time for r in records]
    end_of: dict[str | None, int | None] = {}
    for stamp in set(stamps):  # a few thousand distinct seconds per million records
        end_s = naive_epoch_s(stamp) if isinstance(stamp, str) else None
        ok_time = end_s is not None and 0 <= end_s < MAX_NS / NS_PER_S
        end_of[stamp] = int(end_s * NS_PER_S) if ok_time else None
    end_list = [end_of[s] for s in stamps]
    totals = [r.total_time for r in records]
    if None in end_list or None in totals:
        return None
    total = np.array(totals, np.float64)
    if not ((total >= 0) & (total < MAX_DURATION_S)).all():
        return None
    end = np.array(end_list, np.int64)
    start = end - (total * NS_PER_S).astype(np.int64)
    ok = [_upstream_ok(r) for r in records]
    lengths = [len(r.results) if r.results else 1 for r in records]
    attempts = None
    if max(lengths) > 1:
        attempts = _upstream_attempts(records, start, end, ok, lengths)
    scheduled = [
        s if s is not None and 0 <= s < MAX_NS else -1 for s in (r.scheduled_ns for r in records)
    ]
    return {
        "start_ns": start,
        "end_ns": end,
        "scheduled_ns": scheduled if max(scheduled) >= 0 else None,
        "ok": ok,
        "latency_s": total,
        "ttft_s": [_NAN if r.ttft is None else r.ttft for r in records],
        "itl_s": _itl_means([r.itl for r in records]),
        "attempts": attempts,
        "derived": True,
        "line_of": line_of(raw),
    }


def _upstream_attempts(records, start, end, ok: list[bool], lengths: list[int]):
    """Attempt columns: a request tried once is its one attempt with the request's outcome
    (``outcome.attempt_outcomes``) and times; the rest go through ``attempt_times``."""
    import numpy as np

    from ftctl.results.common import valid_ns

    count = np.array(lengths, np.int64)
    request = np.repeat(np.arange(count.size, dtype=np.int64), count)
    a_start = np.repeat(start, count)
    a_end = np.repeat(end, count)
    a_ok = np.repeat(np.array(ok, bool), count)
    offsets = np.cumsum(count) - count
    for row in np.flatnonzero(count > 1).tolist() + [
        row
        for row, r in enumerate(records)
        if r.results
        and len(r.results) == 1
        and valid_ns(r.results[0].start_ns)
        and valid_ns(r.results[0].end_ns)
    ]:
        record = records[row]
        spans = [(a.start_ns, a.end_ns, a.request_elapsed_time) for a in record.results]
        at = int(offsets[row])
        times = attempt_times(int(start[row]), int(end[row]), spans)
        outcomes = _attempt_oks(record, ok[row])
        for k, ((s, e), o) in enumerate(zip(times, outcomes, strict=True)):
            a_start[at + k], a_end[at + k], a_ok[at + k] = s, e, o
    return request, a_start, a_end, a_ok


def _aiperf_ok(records: list[_AiperfRecord], metrics: list[_Metrics]) -> list[bool]:
    """No error, not cancelled, and output produced when the export counts output tokens.

    aiperf 0.13 records a stream cut by an SSE ``{"error": ...}`` event (Dynamo's answer when a
    worker dies mid-stream) without an error, only without an output length: that is a failure.
    """
    lengths = [
        m.output_sequence_length.value if m.output_sequence_length else None for m in metrics
    ]
    counts_output = any(v is not None for v in lengths)
    return [
        not r.error and not r.metadata.was_cancelled and (not counts_output or bool(v and v > 0))
        for r, v in zip(records, lengths, strict=True)
    ]


def aiperf_columns(raw: bytes) -> dict[str, Any] | None:
    """Columns of a well-formed ``profile_export.jsonl``; None on anything unexpected."""
    records = _lines(_AIPERF, raw)
    if records is None:
        return None
    if "warmup" in [r.metadata.benchmark_phase for r in records]:  # a listcomp beats any()
        records = [r for r in records if r.metadata.benchmark_phase != "warmup"]
    if not records:
        return None
    starts = [r.metadata.request_start_ns for r in records]
    ends = [r.metadata.request_end_ns for r in records]
    for values in (starts, ends):
        if min(values) < 0 or max(values) >= MAX_NS:
            return None
    import numpy as np

    empty = _Metrics()
    metrics = [r.metrics or empty for r in records]
    # Direct attribute access (no getattr) and None → NaN by numpy: this is the hot loop.
    # Units are always ms here: _Metric.unit only validates "ms".
    latency = [m.request_latency.value if m.request_latency else None for m in metrics]
    ttft = [m.time_to_first_token.value if m.time_to_first_token else None for m in metrics]
    itl = [m.inter_token_latency.value if m.inter_token_latency else None for m in metrics]
    return {
        "start_ns": starts,
        "end_ns": ends,
        "ok": _aiperf_ok(records, metrics),
        "latency_s": np.array(latency, np.float64) / 1e3,
        "ttft_s": np.array(ttft, np.float64) / 1e3,
        "itl_s": np.array(itl, np.float64) / 1e3,
    }
