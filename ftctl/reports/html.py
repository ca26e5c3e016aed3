"""One self-contained HTML page of a run: the tables, the checks, each fault's evidence, and the
timeline (client latency with the aligned server panels) inlined as a PNG.

The page people attach to a CI run: no script, no external file, no network — images are
``data:`` URIs, the style sheet is inline. Every value from a result directory is escaped.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftctl.events import FAULT_INJECTED, FAULT_NOT_VERIFIED, FAULT_VERIFIED, read_events

if TYPE_CHECKING:
    from ftctl.results.model import TestResult

REPORT_FILE = "report.json"  # a test's checks and verdict, written by `ftctl run`
FAULT_KINDS = (FAULT_INJECTED, FAULT_VERIFIED, FAULT_NOT_VERIFIED)
# Test verdicts (ExitStatus names) and check statuses, as report.json spells them.
STATUS_CLASS = {
    "ok": "pass",
    "passed": "pass",
    "check_failed": "fail",
    "failed": "fail",
    "infra": "fail",
    "invalid": "fail",
    "interrupted": "fail",
    "inconclusive": "inconclusive",
}
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1b1b1b}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0 1em}
td,th{border:1px solid #bbb;padding:.2em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
.pass{color:#0a6b0a;font-weight:bold}.fail{color:#b00020;font-weight:bold}
.inconclusive{color:#8a6d00;font-weight:bold}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto}
img{max-width:100%;border:1px solid #ddd}
.warning{color:#8a6d00}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[Any]], row_class: list[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def read_test_report(test_dir: Path) -> dict[str, Any] | None:
    """A test's report.json (verdict and checks), or None when missing or unreadable."""
    from ftctl.results.files import read_regular

    try:
        report = json.loads(read_regular(test_dir / REPORT_FILE))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _checks_section(report: dict[str, Any] | None) -> str:
    if report is None:
        return "<p>No checks: this directory has no report.json (not written by ftctl run).</p>"
    checks = [c for c in report.get("checks") or [] if isinstance(c, dict)]
    status = str(report.get("status", "")).lower()
    title = f'<p>Verdict: <span class="{STATUS_CLASS.get(status, "")}">{_e(status.upper())}</span>'
    if not checks:
        return title + " (no checks)</p>"
    rows = [
        [str(c.get("status", "")).upper(), c.get("name", ""), c.get("message", "")] for c in checks
    ]
    classes = [STATUS_CLASS.get(str(c.get("status", "")).lower(), "") for c in checks]
    return title + "</p>" + _table(["Result", "Check", "Detail"], rows, classes)


def _evidence_text(event: dict[str, Any]) -> str:
    skip = {"kind", "t_ns", "test"}
    return ", ".join(
        f"{k}={json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v}"
        for k, v in event.items()
        if k not in skip
    )


def _faults_section(test_dir: Path, report: dict[str, Any] | None) -> str:
    """What ftctl did and how it knew the fault took effect: report.json's faults (verified,
    pod recovery, evidence) or, for a directory without one, the fault events."""
    from ftctl.events import EVENTS_FILE

    faults = [f for f in (report or {}).get("faults") or [] if isinstance(f, dict)]
    if faults:
        rows = [
            [
                f.get("action", ""),
                f.get("service", ""),
                f.get("pod", ""),
                {True: "yes", False: "NO"}.get(f.get("verified"), "N/A"),
                "N/A" if f.get("pod_recovery_s") is None else f"{f['pod_recovery_s']:.3f}",
                f.get("skipped_reason") or _evidence_text(f.get("evidence") or {}),
            ]
            for f in faults
        ]
        classes = ["fail" if f.get("verified") is False else "" for f in faults]
        headers = ["Action", "Service", "Pod", "Verified", "Pod back (s)", "Evidence"]
        return _table(headers, rows, classes)
    events, _ = read_events(test_dir / EVENTS_FILE)
    faults = [e for e in events if e.get("kind") in FAULT_KINDS]
    if not faults:
        return "<p>No fault in this test.</p>"
    start = min((e["t_ns"] for e in events if isinstance(e.get("t_ns"), int)), default=0)
    rows = []
    for event in faults:
        t_ns = event.get("t_ns")
        offset = f"{(t_ns - start) / 1e9:.3f}" if isinstance(t_ns, int) else ""
        rows.append([offset, event.get("kind", ""), _evidence_text(event)])
    classes = ["fail" if r[1] == FAULT_NOT_VERIFIED else "" for r in rows]
    return _table(["t (s from first event)", "Event", "Evidence"], rows, classes)


def _timeline_img(result: TestResult, metrics: tuple[str, ...]) -> str:
    from ftctl.reports.timeline import plot_timeline

    with tempfile.TemporaryDirectory(prefix="ftctl-html-") as tmp:
        png = Path(tmp) / "timeline.png"
        try:
            plot_timeline(result, png, metrics)
            data = base64.b64encode(png.read_bytes()).decode("ascii")
        except (OSError, ValueError) as exc:
            return f'<p class="warning">No timeline: {_e(exc)}</p>'
    return (
        f'<img class="timeline" alt="timeline of {_e(result.name)}" '
        f'src="data:image/png;base64,{data}">'
    )


def text_to_html(text: str) -> str:
    """Text of the tables renderer in its ``html`` format as HTML: the tables are HTML already
    (escaped by tabulate); the lines between them (recovery, load names) become paragraphs.
    Test titles and warnings are left out: the page shows them in its own way."""
    out = []
    for chunk in text.split("\n\n"):
        if chunk.startswith(("== ", "warning: ")):
            continue
        while chunk:
            start = chunk.find("<table>")
            end = chunk.find("</table>", start) if start >= 0 else -1
            if start < 0 or end < 0:
                head, table, chunk = chunk, "", ""
            else:
                end += len("</table>")
                head, table, chunk = chunk[:start], chunk[start:end], chunk[end:]
            if head.strip():
                out.append(f"<p>{_e(head.strip())}</p>")
            if table:
                out.append(table)
    return "\n".join(out)


def render_html(
    title: str,
    results: list[TestResult],
    tables: Callable[[TestResult], str],
    *,
    metrics: tuple[str, ...] = (),
    plots: bool = True,
) -> str:
    """The whole page. ``tables(result)`` gives that test's tables as HTML (the renderer of
    ``ftctl parse`` in its html format), so the page shows exactly what parse prints."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    summary_rows, classes = [], []
    reports = {}
    for result in results:
        report = read_test_report(Path(result.path))
        reports[result.name] = report
        status = str((report or {}).get("status", "")).lower()
        summary_rows.append([result.name, result.kind, status.upper() or "N/A"])
        classes.append(STATUS_CLASS.get(status, ""))
    parts.append(_table(["Test", "Kind", "Verdict"], summary_rows, classes))
    for result in results:
        parts.append(f'<h2 id="{_e(result.name)}">{_e(result.name)}</h2>')
        parts.append("<h3>Requests</h3>")
        parts.append(tables(result))
        parts.append("<h3>Checks</h3>")
        parts.append(_checks_section(reports[result.name]))
        parts.append("<h3>Faults and their evidence</h3>")
        parts.append(_faults_section(Path(result.path), reports[result.name]))
        if plots:
            parts.append("<h3>Timeline</h3>")
            parts.append(_timeline_img(result, metrics))
        for warning in result.warnings:
            parts.append(f'<p class="warning">warning: {_e(warning)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
