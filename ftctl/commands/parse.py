"""``ftctl parse``: result directories → tables, CSV or versioned JSON.

JSON output (``--format json``), schema ``ftctl.parse/v2`` (v1 without attempts, outage_s)::

    {"schema": "ftctl.parse/v2",
     "tests": [TestResult.to_json(), ...],
     "repeats": [{"test": T, "runs": ["T#1", ...], "metrics": {figure: {runs, missing, min,
                  median, mean, max}}}, ...]}   # tests run with --repeat N (names T#i)

Each test: ``name``, ``path``, ``kind`` ("legacy" | "aiperf"), ``warnings`` [str],
``fault_times_ns`` [epoch ns; the first sets the phases], ``fault_time_source`` ("events" |
"test.log (1 s resolution)" | null), ``startup_s``, ``pod_recovery_s``,
``upstream_log_recovery_s`` + ``upstream_log_recovery_method`` (upstream directories only),
``was_cancelled``, ``failure``, ``repeat`` (i of a name T#i, else null), ``group``, ``pair_role`` ("overflow" | "recovery" | null),
``time_resolution_s`` (1.0 when times come from upstream ``time`` fields), ``has_test_log``,
``has_events``, ``utc_offset_s`` + ``utc_offset_source`` (upstream: host-local − UTC used to
place test.log times), ``clients_with_records`` (aiperf), ``excluded_records`` (physically
impossible records left out of every metric, see ftctl.results.sanity) + ``excluded`` [{path,
count, reasons {reason: n}}] per file, ``overall`` (all loads pooled) and ``loads``
{name: LoadMetrics}. LoadMetrics: ``name``, ``clients``, ``requests``, ``ok``, ``failed``,
``total_attempts``, ``failed_attempts``, ``retried_requests``,
``phases`` {before, during, after, overall, upstream_before, upstream_after: PhaseStats},
``recovery`` (null without a fault: ``recovery_time_s``, ``time_to_first_error_s``,
``downtime_s``, ``failure_span_s``, ``failed_attempts_after_fault``,
``failed_requests_after_fault``, ``window_s``, ``recovered``, ``no_visible_impact``),
``faults`` [{index, t_ns, at_s, next_ns, phases {before, during, after, overall}, recovery}]
(one per fault, each bounded by the next; README, metric notes), ``throughput_rps``,
``client_throughput_rps`` {client: rps}, ``avg_client_throughput_rps``,
``wall_time_s``, ``attempts`` and ``chosen_attempt`` {client: n} (aiperf), ``dispatch_lag_ms``
(open loop: {requests, p50, p99, max} of start − scheduled time; null otherwise). PhaseStats:
``requests``, ``ok``, ``failed``, ``success_rate`` (0–1 or null), ``attempts``,
``failed_attempts``, ``retried_requests``, ``attempt_success_rate``, ``latency_s`` {mean, min,
max, p50, p90, p95, p99} pooled over successful requests, ``ttft_mean_s``, ``itl_mean_s``,
``sla_violations`` (null without --sla). Fields are only ever added within v1.

``--info`` JSON: ``{"schema": "ftctl.parse-info/v1", "dirs": [{path, type, client_count,
attempts, has_test_log, has_events, loads, warnings}]}``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import orjson

from ftctl.commands import Output
from ftctl.errors import ParseError
from ftctl.reports.tables import FORMATS, render_csv, render_text
from ftctl.results.detect import PARSERS, describe, find_test_dirs
from ftctl.results.sanity import excluded_notes

SCHEMA = "ftctl.parse/v2"
INFO_SCHEMA = "ftctl.parse-info/v1"


def _collect(dirs: list[Path], force_parser: str | None) -> list[Path]:
    tests: list[Path] = []
    for directory in dirs:
        if not directory.exists():
            raise ParseError(f"{directory}: no such directory")
        if not directory.is_dir():
            raise ParseError(f"{directory}: not a directory")
        found = find_test_dirs(directory)
        if not found and force_parser is not None:
            found = [directory]
        if not found:
            raise ParseError(
                f"{directory}: no test results found (no client_* files, events.jsonl or "
                "test.log.txt); pass --force-parser aiperf|legacy if the layout is unusual"
            )
        tests.extend(found)
    return tests


def _info_text(paths: list[Path], force_parser: str | None, fmt: str) -> str:
    infos = [describe(p, force_parser) for p in paths]
    if fmt == "json":
        dirs = [{**asdict(i), "path": str(i.path)} for i in infos]
        return orjson.dumps(
            {"schema": INFO_SCHEMA, "dirs": dirs}, option=orjson.OPT_INDENT_2
        ).decode()
    lines = []
    for info in infos:
        lines.append(f"{info.path}")
        lines.append(f"  type: {info.type or 'unknown'}")
        lines.append(f"  clients: {info.client_count}")
        if info.attempts:
            attempts = ", ".join(f"{c}={n}" for c, n in info.attempts.items())
            lines.append(f"  attempts: {attempts}")
        lines.append(f"  test.log.txt: {'yes' if info.has_test_log else 'no'}")
        lines.append(f"  events.jsonl: {'yes' if info.has_events else 'no'}")
        if len(info.loads) > 1:
            lines.append(f"  loads: {', '.join(info.loads)}")
        lines.extend(f"  warning: {w}" for w in info.warnings)
    return "\n".join(lines)


def parse(
    dirs: list[Path],
    *,
    force_parser: str | None = None,
    info: bool = False,
    fmt: str = "fancy",
    sla: float | None = None,
) -> Output:
    """Parse (or with ``info`` describe) result directories into text, status and notes.

    Exit 0 when parsed, even with failed requests; ParseError (exit 2) on unreadable or
    undetectable input. A root holding many test directories is parsed as a whole; a test
    directory that cannot be detected among many is reported as a warning. ``notes``: the
    warnings the user must see whatever the format (impossible records excluded).
    """
    from ftctl.results import parse_result_dir

    if fmt not in FORMATS:
        raise ParseError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if force_parser is not None and force_parser not in PARSERS:
        raise ParseError(f"--force-parser {force_parser!r}: expected one of {', '.join(PARSERS)}")
    if sla is not None and not sla > 0:
        raise ParseError(f"--sla {sla}: must be a positive number of seconds")
    paths = _collect([Path(d) for d in dirs], force_parser)
    if info:
        return Output(_info_text(paths, force_parser, fmt))
    results = []
    skipped: list[str] = []
    for path in paths:
        try:
            results.append(parse_result_dir(path, force_parser=force_parser, sla=sla))
        except ParseError as exc:
            if len(paths) == 1:
                raise
            skipped.append(exc.message)
    if not results:
        raise ParseError("; ".join(skipped))
    notes = excluded_notes(results)
    if fmt == "json":
        from ftctl.results.repeats import repeated

        payload = {
            "schema": SCHEMA,
            "tests": [r.to_json() for r in results],
            "repeats": [group.to_json() for group in repeated(results)],
        }
        if skipped:
            payload["skipped"] = skipped
        text = orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        return Output(text.decode(), notes=notes)
    if fmt == "csv":
        return Output(render_csv(results), notes=notes)
    text = render_text(results, fmt, sla)
    if skipped:
        text += "\n\n" + "\n".join(f"warning: skipped {s}" for s in skipped)
    return Output(text, notes=notes)
