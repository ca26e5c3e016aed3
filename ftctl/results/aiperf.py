"""Reader of aiperf result directories: ``client_N/attempt_M/`` artifacts (REFERENCE.md §3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ftctl.layout import (
    AIPERF_CSV_FILE,
    AIPERF_RECORDS_FILE,
    AIPERF_SUMMARY_FILE,
    ATTEMPT_DIR_RE,
    CLIENT_DIR_RE,
    GENAI_PERF_LOG,
)
from ftctl.results.files import numbered_entries, read_regular

SUMMARY_FILE = AIPERF_SUMMARY_FILE
RECORDS_FILE = AIPERF_RECORDS_FILE
CSV_FILE = AIPERF_CSV_FILE
GENAI_LOG = GENAI_PERF_LOG

_CLIENT_DIR = CLIENT_DIR_RE
_ATTEMPT_DIR = ATTEMPT_DIR_RE


ARTIFACT_MARKERS = (SUMMARY_FILE, CSV_FILE, GENAI_LOG, RECORDS_FILE)


def is_artifact_dir(path: Path) -> bool:
    """A bare aiperf ``--artifact-dir``: aiperf's output files directly inside ``path``.

    That is what ``aiperf profile`` leaves, and the upstream declarative framework's
    ``<test>/<load>/`` folder (seeds/003); either reads as one client with one attempt.
    """
    return any((path / name).is_file() for name in ARTIFACT_MARKERS)


def client_dirs(path: Path) -> list[tuple[int, Path]]:
    """``client_N`` directories of ``path`` in numeric order; a bare artifact dir is client 0."""
    found = numbered_entries(path, _CLIENT_DIR, dirs=True)
    if not found and is_artifact_dir(path):
        return [(0, path)]
    return found


def attempt_dirs(client_dir: Path) -> list[tuple[int, Path]]:
    """``attempt_M`` directories of a client in numeric order; a bare artifact dir is attempt 0."""
    found = numbered_entries(client_dir, _ATTEMPT_DIR, dirs=True)
    if not found and is_artifact_dir(client_dir):
        return [(0, client_dir)]
    return found


def _load_json(path: Path) -> Any:
    try:
        return orjson.loads(read_regular(path))
    except (OSError, ValueError):
        return None


def _number(value: Any) -> float | None:
    """A metric value: a bare number, or ``{"avg": ...}`` / ``{"value": ...}``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        for key in ("avg", "value", "count"):
            inner = value.get(key)
            if isinstance(inner, int | float) and not isinstance(inner, bool):
                return float(inner)
    return None


def summary_metric(summary: dict[str, Any], name: str) -> dict[str, Any] | float | None:
    """A metric of ``profile_export_aiperf.json`` from the top level or the older ``records.*``."""
    value = summary.get(name)
    if value is None:
        records = summary.get("records")
        if isinstance(records, dict):
            value = records.get(name)
    return value


def summary_counts(summary: Any) -> tuple[int, int] | None:
    """(ok, failed) from a summary JSON; None when it holds no request count.

    aiperf's ``request_count`` counts the successful requests and ``error_request_count`` the
    failed ones (present only when errors occurred).
    """
    if not isinstance(summary, dict):
        return None
    ok = _number(summary_metric(summary, "request_count"))
    failed = _number(summary_metric(summary, "error_request_count"))
    if ok is None and failed is None:
        return None
    return max(0, int(ok or 0)), max(0, int(failed or 0))


def output_length(record: dict[str, Any]) -> float | None:
    """metrics.output_sequence_length.value of a record, or None."""
    metrics = record.get("metrics")
    metric = metrics.get("output_sequence_length") if isinstance(metrics, dict) else None
    value = metric.get("value") if isinstance(metric, dict) else None
    return float(value) if isinstance(value, int | float) else None


def record_succeeded(record: dict[str, Any], *, expects_output: bool = False) -> bool:
    """A profile_export.jsonl record succeeded: no ``error``, not cancelled, and — when the
    export counts output tokens (``expects_output``) — some output produced.

    aiperf 0.13 does not flag a stream cut by an SSE error event (Dynamo's answer when a worker
    dies mid-stream); such a record has no output length.
    """
    if record.get("error"):
        return False
    metadata = record.get("metadata")
    if isinstance(metadata, dict) and metadata.get("was_cancelled"):
        return False
    if expects_output:
        length = output_length(record)
        return bool(length and length > 0)
    return True


def _jsonl_counts(path: Path) -> tuple[int, int] | None:
    """(ok, failed) counted from a per-request JSONL file; None if absent or empty."""
    from ftctl.results.fast import aiperf_columns

    try:
        raw = read_regular(path)
    except OSError:
        return None
    columns = aiperf_columns(raw)
    if columns is not None:
        ok = sum(columns["ok"])
        return ok, len(columns["ok"]) - ok
    records = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except ValueError:
            continue  # a truncated last line or garbage: skip it
        if not isinstance(record, dict) or _is_warmup(record):
            continue
        records.append(record)
    expects_output = any(output_length(r) is not None for r in records)
    ok = sum(1 for r in records if record_succeeded(r, expects_output=expects_output))
    failed = len(records) - ok
    if ok == 0 and failed == 0:
        return None
    return ok, failed


def _is_warmup(record: dict[str, Any]) -> bool:
    metadata = record.get("metadata")
    return isinstance(metadata, dict) and metadata.get("benchmark_phase") == "warmup"


def attempt_outcome(attempt_dir: Path) -> tuple[int, int]:
    """(ok, failed) requests of one aiperf attempt directory; never raises.

    Counted from ``profile_export.jsonl`` (success = no ``error`` and not cancelled), falling
    back to ``profile_export_aiperf.json`` (``request_count`` / ``error_request_count``, top
    level or under ``records``); (0, 0) when nothing is readable.
    """
    try:
        counts = _jsonl_counts(Path(attempt_dir) / RECORDS_FILE)
        if counts is None:
            counts = summary_counts(_load_json(Path(attempt_dir) / SUMMARY_FILE))
        return counts if counts is not None else (0, 0)
    except Exception:  # a helper other engineers call in a retry loop: it must not raise
        return 0, 0


@dataclass
class AttemptChoice:
    """Which attempt of a client is reported, and why."""

    client: int
    client_dir: Path
    attempt: int | None
    attempt_dir: Path | None
    attempts: int
    ok: int = 0
    failed: int = 0
    warnings: list[str] = field(default_factory=list)


def choose_attempt(client: int, client_dir: Path) -> AttemptChoice:
    """The attempt that completed: the last one (numeric order) with a usable outcome.

    The client retries the whole run while ≥ 90 % of its requests fail, so the final attempt is
    the one that counts; an attempt with no readable output (the run was killed) is skipped in
    favour of the latest one that has some (never blindly ``attempt_0``, REFERENCE §9.3).
    """
    attempts = attempt_dirs(client_dir)
    choice = AttemptChoice(client, client_dir, None, None, len(attempts))
    if not attempts:
        choice.warnings.append(f"{client_dir}: no attempt_* directory")
        return choice
    for number, path in reversed(attempts):
        ok, failed = attempt_outcome(path)
        if ok or failed:
            choice.attempt, choice.attempt_dir, choice.ok, choice.failed = number, path, ok, failed
            if number != attempts[-1][0]:
                choice.warnings.append(
                    f"{client_dir}: attempt_{attempts[-1][0]} has no readable output; "
                    f"using attempt_{number}"
                )
            return choice
    number, path = attempts[-1]
    choice.attempt, choice.attempt_dir = number, path
    choice.warnings.append(f"{client_dir}: no attempt has readable results")
    return choice


_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0}


def _seconds(metric: Any) -> float:
    """A per-request metric ``{"value": v, "unit": "ms"}`` in seconds; NaN when unusable."""
    if not isinstance(metric, dict):
        return float("nan")
    value = metric.get("value")
    factor = _UNIT_S.get(metric.get("unit", "ms"))
    if factor is None or not isinstance(value, int | float) or isinstance(value, bool):
        return float("nan")
    return float(value) * factor


def summary_seconds(summary: dict[str, Any], name: str, stat: str) -> float | None:
    """``summary[name][stat]`` of a summary JSON converted to seconds (None when absent)."""
    metric = summary_metric(summary, name)
    if not isinstance(metric, dict):
        return None
    value = metric.get(stat)
    factor = _UNIT_S.get(metric.get("unit", "ms"))
    if factor is None or not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return float(value) * factor


def read_records(
    path: Path, client: int, warnings: list[str], span_ns: tuple[int, int] | None = None
):
    """Per-request rows of ``profile_export.jsonl`` as a RequestTable; None when absent.

    start/end = metadata.request_start_ns / request_end_ns (epoch ns); ok = no ``error`` and
    not ``was_cancelled``; latency = metrics.request_latency (else end − start); TTFT and ITL
    from metrics.time_to_first_token / inter_token_latency. Warmup records are left out, and so
    are impossible ones (``ftctl.results.sanity``; ``span_ns``: the run's span).
    """

    from ftctl.results.common import FileWarnings, checked_table, valid_ns
    from ftctl.results.fast import aiperf_columns
    from ftctl.results.model import RequestTable
    from ftctl.results.sanity import screen

    try:
        raw = read_regular(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        warnings.append(f"{path}: cannot read ({exc.strerror})")
        return None
    columns = aiperf_columns(raw)
    if columns is not None:
        warn = FileWarnings(path, warnings)
        table = checked_table(path, client, columns, warn)
        warn.close()
        return screen(table, path, warnings, span_ns)
    starts: list[int] = []
    ends: list[int] = []
    oks: list[bool] = []
    lats: list[float] = []
    ttfts: list[float] = []
    itls: list[float] = []
    lengths: list[float | None] = []
    bad = 0
    lines = raw.split(b"\n")
    last_index = len(lines) - 1
    loads = orjson.loads
    for index, line in enumerate(lines):
        if not line or line.isspace():
            continue
        try:
            record = loads(line)
            metadata = record["metadata"]
            start = metadata["request_start_ns"]
            end = metadata["request_end_ns"]
            if not (valid_ns(start) and valid_ns(end)):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            bad += 1
            if bad <= 5:
                what = "truncated last line" if index == last_index else "unreadable record"
                warnings.append(f"{path}:{index + 1}: {what} skipped")
            continue
        if metadata.get("benchmark_phase") == "warmup":
            continue
        metrics = record.get("metrics")
        if not isinstance(metrics, dict):
            metrics = {}
        starts.append(start)
        ends.append(end)
        oks.append(not record.get("error") and not metadata.get("was_cancelled"))
        lengths.append(output_length(record))
        latency = _seconds(metrics.get("request_latency"))
        lats.append((end - start) / 1e9 if latency != latency else latency)
        ttfts.append(_seconds(metrics.get("time_to_first_token")))
        itls.append(_seconds(metrics.get("inter_token_latency")))
    if bad > 5:
        warnings.append(f"{path}: {bad - 5} more unreadable records")
    if any(length is not None for length in lengths):  # see record_succeeded
        oks = [ok and bool(length and length > 0) for ok, length in zip(oks, lengths, strict=True)]
    table = RequestTable.from_lists(client, starts, ends, oks, lats, ttfts, itls)
    return screen(table, path, warnings, span_ns)


def _choose_and_read(
    client: int, client_dir: Path, warnings: list[str], span_ns: tuple[int, int] | None = None
):
    """choose_attempt's rule, reading each candidate's records once: (choice, table | None).

    An attempt whose every record was impossible still had output: it is chosen, with no rows.
    """
    attempts = attempt_dirs(client_dir)
    choice = AttemptChoice(client, client_dir, None, None, len(attempts))
    if not attempts:
        choice.warnings.append(f"{client_dir}: no attempt_* directory")
        return choice, None
    latest: list[str] = []  # why the latest attempt was unreadable, if no attempt is
    for number, path in reversed(attempts):
        local: list[str] = []
        table = read_records(path / RECORDS_FILE, client, local, span_ns)
        had_records = table is not None and bool(len(table) or table.excluded)
        if had_records:
            ok = int(table.ok.sum())
            counts: tuple[int, int] | None = (ok, len(table) - ok)
        else:
            table = None
            counts = summary_counts(_load_json(path / SUMMARY_FILE))
        if number == attempts[-1][0]:
            latest = local
        if had_records or (counts and (counts[0] or counts[1])):
            warnings.extend(local)
            choice.attempt, choice.attempt_dir = number, path
            choice.ok, choice.failed = counts
            if number != attempts[-1][0]:
                choice.warnings.append(
                    f"{client_dir}: attempt_{attempts[-1][0]} has no readable output; "
                    f"using attempt_{number}"
                )
            return choice, table
    number, path = attempts[-1]
    choice.attempt, choice.attempt_dir = number, path
    warnings.extend(latest)
    choice.warnings.append(f"{client_dir}: no attempt has readable results")
    return choice, None


def _choose_and_read_one(client: int, client_dir: Path, span_ns: tuple[int, int] | None):
    warnings: list[str] = []
    choice, table = _choose_and_read(client, client_dir, warnings, span_ns)
    return choice, table, warnings


def _records_size(client_dir: Path) -> int:
    attempts = attempt_dirs(client_dir)
    try:
        return (attempts[-1][1] / RECORDS_FILE).stat().st_size if attempts else 0
    except OSError:
        return 0


@dataclass
class AiperfLoad:
    """One aiperf load directory: chosen attempts, pooled requests, per-client summaries."""

    choices: list[AttemptChoice]
    table: Any  # RequestTable of the clients that have profile_export.jsonl
    clients_with_records: int
    summaries: dict[int, dict[str, Any]]
    was_cancelled: bool


def read_aiperf_dir(
    path: Path, warnings: list[str], span_ns: tuple[int, int] | None = None
) -> AiperfLoad:
    """Every ``client_N`` of one load directory: pick each attempt, read records + summary."""
    from ftctl.results.model import RequestTable

    choices: list[AttemptChoice] = []
    tables = []
    summaries: dict[int, dict[str, Any]] = {}
    cancelled = False
    from ftctl.results.common import parallel_map

    clients = client_dirs(path)
    sizes = [_records_size(client_dir) for _, client_dir in clients]
    read = parallel_map(
        _choose_and_read_one, [(client, d, span_ns) for client, d in clients], sizes
    )
    for choice, table, read_warnings in read:
        warnings.extend(read_warnings)
        warnings.extend(choice.warnings)
        choices.append(choice)
        if choice.attempt_dir is None:
            continue
        if table is not None:
            tables.append(table)
        summary = _load_json(choice.attempt_dir / SUMMARY_FILE)
        if isinstance(summary, dict):
            summaries[choice.client] = summary
            cancelled |= bool(summary.get("was_cancelled"))
        elif (choice.attempt_dir / SUMMARY_FILE).exists():
            warnings.append(f"{choice.attempt_dir / SUMMARY_FILE}: unreadable summary")
        if table is None:
            warnings.append(
                f"{choice.attempt_dir}: no {RECORDS_FILE}; before/during/after and recovery "
                "need it (counts come from the summary)"
            )
    return AiperfLoad(
        choices, RequestTable.concat(tables), len(tables), summaries, was_cancelled=cancelled
    )
