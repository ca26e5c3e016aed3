"""The Markdown report of result directories: the tables plus each test's checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ftctl.errors import ParseError
from ftctl.layout import TEST_REPORT_FILE


def test_dirs(path: Path) -> list[Path]:
    """The test directories of ``path``; ParseError when there is none."""
    from ftctl.results import find_test_dirs

    dirs = find_test_dirs(path)
    if not dirs:
        raise ParseError(f"{path}: no result directory found")
    return dirs


def _checks(result: Any) -> list[str]:
    """The checks table of a test's report.json, if it has a readable one."""
    from ftctl.results.files import read_regular

    try:
        report = json.loads(read_regular(Path(result.path) / TEST_REPORT_FILE))
    except (OSError, ValueError):
        return []
    checks = report.get("checks") if isinstance(report, dict) else None
    rows = [
        [str(c.get("status", "")).upper(), c.get("name", ""), c.get("message", "")]
        for c in (checks if isinstance(checks, list) else [])
        if isinstance(c, dict)
    ]
    if not rows:
        return []
    return [
        f"## Checks: {result.name} ({report.get('status')})",
        tabulate(rows, headers=["Result", "Check", "Detail"], tablefmt="github"),
    ]


def markdown_report(directory: Path, results: list[Any], *, histogram: bool = False) -> str:
    """``# ftctl report: <directory>``, the Markdown tables, the checks of each test, and
    (``histogram``) the latency histograms per phase."""
    from ftctl.reports.tables import render_text

    parts = [f"# ftctl report: {directory}", render_text(results, "markdown")]
    for result in results:
        parts.extend(_checks(result))
    if histogram:
        from ftctl.reports.histogram import histogram_text

        parts.extend(histogram_text(result, "markdown") for result in results)
    return "\n\n".join(parts) + "\n"
