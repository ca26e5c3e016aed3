"""Physically impossible records: the one rule every reader applies before any metric.

A request record is impossible when (first matching reason wins, each record counted once):

- ``end before start``: end_ns < start_ns;
- ``outside the run``: its start or end lies more than ``SLACK_NS`` (1 day) outside the run's
  own span — the first to last event of ``events.jsonl``, else the markers of ``test.log.txt``,
  else (no timeline at all) the median start of the records of its file. A day covers any host
  UTC offset (≤ 14 h) between host-local and UTC stamps;
- ``negative latency`` / ``negative TTFT`` / ``negative ITL``: a negative duration (for ITL,
  any negative inter-token interval).

Impossible records are left out of every metric, counted per file in ``RequestTable.excluded``
and named in one warning per file. Event timelines have their own two impossibilities
(``ready before deploy start``, ``pod recovered before the fault``): see ``ftctl.results.parse``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftctl.results.model import Excluded

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from ftctl.results.model import RequestTable, TestResult

SLACK_NS = 86_400 * 1_000_000_000
END_BEFORE_START = "end before start"
OUTSIDE_RUN = "outside the run"
NEGATIVE_LATENCY = "negative latency"
NEGATIVE_TTFT = "negative TTFT"
NEGATIVE_ITL = "negative ITL"


def impossible(
    table: RequestTable, span_ns: tuple[int, int] | None
) -> tuple[np.ndarray | None, dict[str, int]]:
    """(boolean mask of impossible rows, reason → count); (None, {}) when every row is possible."""
    import numpy as np

    if not len(table):
        return None, {}
    start, end = table.start_ns, table.end_ns
    if span_ns is None:
        low = high = int(np.median(start))
    else:
        low, high = span_ns
    low, high = low - SLACK_NS, high + SLACK_NS
    checks = (
        (END_BEFORE_START, lambda: end < start),
        (OUTSIDE_RUN, lambda: (start < low) | (start > high) | (end < low) | (end > high)),
        (NEGATIVE_LATENCY, lambda: table.latency_s < 0),  # NaN compares False: unknown is fine
        (NEGATIVE_TTFT, lambda: table.ttft_s < 0),
        (NEGATIVE_ITL, lambda: table.itl_s < 0),
    )
    bad = None
    reasons: dict[str, int] = {}
    for reason, check in checks:
        mask = check()
        if not mask.any():  # the common case: one pass, no allocation beyond the mask
            continue
        if bad is not None:
            mask &= ~bad
        count = int(np.count_nonzero(mask))
        if count:
            reasons[reason] = count
            bad = mask if bad is None else bad | mask
    return bad, reasons


def screen(
    table: RequestTable, path: Path, warnings: list[str], span_ns: tuple[int, int] | None
) -> RequestTable:
    """``table`` without its impossible rows; the exclusion is recorded and warned once."""
    bad, reasons = impossible(table, span_ns)
    if bad is None:
        return table
    kept = table.select(~bad)
    excluded = Excluded(str(path), sum(reasons.values()), reasons)
    kept.excluded.append(excluded)
    warnings.append(excluded.message())
    return kept


def excluded_notes(results: list[TestResult]) -> list[str]:
    """One line per file of ``results`` that had impossible records excluded (for stderr)."""
    return [e.message() for r in results for e in r.excluded]
