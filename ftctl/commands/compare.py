"""``ftctl compare``: deltas of recovery time, success rates and latencies between two runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ftctl.commands import Output
from ftctl.errors import UsageError
from ftctl.reports.markdown import test_dirs

FORMATS = ("fancy", "markdown", "json")


def _parse_all(path: Path) -> list[Any]:
    from ftctl.results import parse_result_dir

    return [parse_result_dir(d) for d in test_dirs(path)]


def _notes(results: list[Any]) -> list[str]:
    from ftctl.results.sanity import excluded_notes

    return excluded_notes(results)


def _fmt(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.4g}"


def _side(group: Any) -> tuple[dict[str, float | None], dict[str, str]]:
    """(value per figure, its cell text): one run's value, or the median of a test's repeats
    shown as ``median (min–max, n runs)``."""
    from ftctl.results.repeats import headline

    if len(group.runs) == 1:
        values = headline(group.runs[0])
        return values, {k: _fmt(v) for k, v in values.items()}
    values, cells = {}, {}
    for key, stats in group.metrics().items():
        values[key] = stats["median"]
        cells[key] = (
            "N/A"
            if stats["median"] is None
            else f"{_fmt(stats['median'])} ({_fmt(stats['min'])}–{_fmt(stats['max'])}, "
            f"{stats['runs']} runs)"
        )
    return values, cells


def _client(group: Any) -> str:
    kinds = sorted({r.kind for r in group.runs})
    return "/".join(kinds)


def compare(dir_a: Path, dir_b: Path, *, fmt: str = "fancy") -> Output:
    """Side by side: per test present in both, the client each used (legacy | aiperf, as
    parsed), each metric of A, of B, and B − A.

    Tests match by name, a repeated run's ``T#i`` counting as ``T``: a test run N times is
    one side, its figures the medians of its runs (min–max beside them). Two runs of one test
    each, under different names, are compared anyway. Notes: the warnings for stderr
    (impossible records excluded).

    Raises:
        UsageError: no test in common (exit 2), naming what each side holds.
    """
    from ftctl.results.repeats import by_test

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    results_a, results_b = _parse_all(dir_a), _parse_all(dir_b)
    runs_a, runs_b = by_test(results_a), by_test(results_b)
    pairs = [(name, runs_a[name], runs_b[name]) for name in sorted(set(runs_a) & set(runs_b))]
    fallback = not pairs and len(runs_a) == 1 and len(runs_b) == 1
    if fallback:
        # two tests with different names, one on each side: compare them anyway
        (a_name, a_group), (b_name, b_group) = (
            next(iter(runs_a.items())),
            next(iter(runs_b.items())),
        )
        pairs = [(f"{a_name} vs {b_name}", a_group, b_group)]
    if not pairs:
        raise UsageError(
            f"no test in common: {dir_a} holds {', '.join(sorted(runs_a))}; {dir_b} holds "
            f"{', '.join(sorted(runs_b))}; compare matches tests by name (a repeat T#i counts "
            "as T)"
        )
    blocks = []
    for name, group_a, group_b in pairs:
        (values_a, cells_a), (values_b, cells_b) = _side(group_a), _side(group_b)
        client_a, client_b = _client(group_a), _client(group_b)
        if fmt == "json":
            blocks.append(
                json.dumps(
                    {
                        "test": name,
                        "client": {"a": client_a, "b": client_b},
                        "runs": {"a": group_a.names, "b": group_b.names},
                        "a": values_a,
                        "b": values_b,
                    }
                )
            )
            continue
        rows = [["client", client_a, client_b, "same" if client_a == client_b else "differs"]]
        rows.append(["runs", len(group_a.runs), len(group_b.runs), ""])
        for key in values_a:
            va, vb = values_a[key], values_b[key]
            delta = None if va is None or vb is None else vb - va
            rows.append(
                [key, cells_a[key], cells_b[key], "N/A" if delta is None else f"{delta:+.4g}"]
            )
        table = tabulate(
            rows,
            headers=["Metric", "A", "B", "B − A"],
            tablefmt="fancy_grid" if fmt == "fancy" else "github",
            disable_numparse=True,
        )
        note = ""
        if len(group_a.runs) > 1 or len(group_b.runs) > 1:
            note = "\nA side of several runs shows the median of its runs (min–max, runs)."
        blocks.append(f"== {name}\n{table}{note}")
    only = [] if fallback else sorted(set(runs_a) ^ set(runs_b))
    if only and fmt != "json":
        blocks.append("only in one run: " + ", ".join(only))
    return Output("\n\n".join(blocks), notes=_notes([*results_a, *results_b]))
