"""Latency histogram of a test: successful requests per latency bucket, before / during / after
the fault (the phases of ``ftctl parse``), and the failed requests of each phase."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ftctl.results.metrics import phase_masks

if TYPE_CHECKING:
    from ftctl.results.model import TestResult

# Upper bucket edges in seconds: fine where LLM request latencies live, coarse beyond.
EDGES_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PHASES = ("before", "during", "after", "overall")


def _seconds(value: float) -> str:
    return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"


def bucket_labels() -> list[str]:
    labels, low = [], None
    for edge in EDGES_S:
        labels.append(
            f"≤ {_seconds(edge)}" if low is None else f"{_seconds(low)} – {_seconds(edge)}"
        )
        low = edge
    labels.append(f"> {_seconds(EDGES_S[-1])}")
    return labels


def histogram_rows(result: TestResult) -> list[list[object]]:
    """One row per bucket (label, count per phase) from the first to the last bucket holding a
    request, then a row of failed requests per phase.

    A request falls in the first bucket whose edge is ≥ its latency (buckets are (low, edge]).
    Phases are parse's (``phase_masks``): without a fault every request is ``before``."""
    table = result.requests
    if table is None or len(table) == 0:
        return []
    t_f = result.fault_times_ns[0] if result.fault_times_ns else None
    masks = phase_masks(table, t_f)
    ok = table.ok & ~np.isnan(table.latency_s)
    bucket = np.searchsorted(np.asarray(EDGES_S), table.latency_s, side="left")
    rows: list[list[object]] = []
    for index, label in enumerate(bucket_labels()):
        in_bucket = ok & (bucket == index)
        rows.append([label, *(int(np.count_nonzero(in_bucket & masks[p])) for p in PHASES)])
    used = [i for i, row in enumerate(rows) if row[-1]]  # overall count of the bucket
    rows = rows[used[0] : used[-1] + 1] if used else []  # no empty buckets at either end
    failed = ~table.ok
    rows.append(["failed", *(int(np.count_nonzero(failed & masks[p])) for p in PHASES)])
    return rows


def histogram_text(result: TestResult, fmt: str) -> str:
    """The histogram as a table in ``fmt`` (fancy, markdown or html), under a title line."""
    from tabulate import tabulate

    rows = histogram_rows(result)
    if not rows:
        return f"Latency histogram: {result.name}: no requests"
    tablefmt = {"fancy": "fancy_grid", "markdown": "github", "html": "html"}[fmt]
    table = tabulate(rows, headers=["Latency", *PHASES], tablefmt=tablefmt)
    return f"Latency histogram (successful requests; failed last): {result.name}\n\n{table}"
