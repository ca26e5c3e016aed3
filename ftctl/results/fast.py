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


class _Message(msgspec.Struct, gc=False):
    content: Any = None


class _Choice(msgspec.Struct, gc=False):
    message: _Message | None = None
    text: Any = None
    finish_reason: Any = UNSET


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
    if not isinstance(text, str) or not text:
        return False
    return choice.finish_reason is UNSET or choice.finish_reason is not None


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


def legacy_columns(raw: bytes) -> dict[str, list] | None:
    """Columns of a well-formed ftctl legacy file (every line has start_ns/end_ns); else None.

    ``ok`` is trusted when every record has it; otherwise the attempts are decoded and judged.
    ``attempts`` is None when every record says it was tried once (ftctl's ``attempts: 1``),
    else the (request row, start, end, ok) columns of every attempt.
    """
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
    }


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
