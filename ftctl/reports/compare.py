"""`ftctl compare` and `ftctl report`: deltas between two runs; Markdown and plot of one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ftctl.errors import ParseError


def _parse_all(path: Path) -> dict[str, Any]:
    from ftctl.results import find_test_dirs, parse_result_dir

    dirs = find_test_dirs(path)
    if not dirs:
        raise ParseError(f"{path}: no result directory found")
    return {d.name: parse_result_dir(d) for d in dirs}


def _notes(results: list[Any]) -> list[str]:
    from ftctl.results.sanity import excluded_notes

    return excluded_notes(results)


def _metric_rows(result: Any) -> dict[str, float | None]:
    overall = result.overall
    rec = overall.recovery
    phases = overall.phases
    return {
        "recovery_time_s": None
        if rec is None
        else (0.0 if rec.no_visible_impact else rec.recovery_time_s),
        "failed": float(overall.failed),
        "success_rate_before": phases["before"].success_rate if "before" in phases else None,
        "success_rate_after": phases["after"].success_rate if "after" in phases else None,
        "success_rate_overall": phases["overall"].success_rate if "overall" in phases else None,
        "latency_p50_s": phases["overall"].latency_s.get("p50") if "overall" in phases else None,
        "latency_p99_s": phases["overall"].latency_s.get("p99") if "overall" in phases else None,
        "throughput_rps": overall.throughput_rps,
        "startup_s": result.startup_s,
        "pod_recovery_s": result.pod_recovery_s,
        "excluded_records": float(result.excluded_records),
    }


def _fmt(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.4g}"


def compare_command(dir_a: Path, dir_b: Path, fmt: str = "fancy") -> tuple[str, list[str]]:
    """Side by side: per test present in both, each metric of A, of B, and B − A.

    Returns (text, notes): notes are the warnings for stderr (impossible records excluded).
    """
    runs_a, runs_b = _parse_all(dir_a), _parse_all(dir_b)
    common = sorted(set(runs_a) & set(runs_b))
    if not common and len(runs_a) == 1 and len(runs_b) == 1:
        common = [None]  # two single tests with different names: compare them anyway
    blocks = []
    for name in common:
        a = runs_a[name] if name else next(iter(runs_a.values()))
        b = runs_b[name] if name else next(iter(runs_b.values()))
        metrics_a, metrics_b = _metric_rows(a), _metric_rows(b)
        rows = []
        for key in metrics_a:
            va, vb = metrics_a[key], metrics_b[key]
            delta = None if va is None or vb is None else vb - va
            rows.append([key, _fmt(va), _fmt(vb), "N/A" if delta is None else f"{delta:+.4g}"])
        if fmt == "json":
            blocks.append(
                json.dumps(
                    {"test": name or f"{a.name} vs {b.name}", "a": metrics_a, "b": metrics_b}
                )
            )
            continue
        title = name or f"{a.name} vs {b.name}"
        table = tabulate(
            rows,
            headers=["Metric", "A", "B", "B − A"],
            tablefmt="fancy_grid" if fmt == "fancy" else "github",
        )
        blocks.append(f"== {title}\n{table}")
    only = sorted(set(runs_a) ^ set(runs_b)) if common != [None] else []
    if only and fmt != "json":
        blocks.append("only in one run: " + ", ".join(only))
    return "\n\n".join(blocks), _notes([*runs_a.values(), *runs_b.values()])


def report_command(
    directory: Path, *, plot: Path | None = None, markdown: Path | None = None
) -> tuple[str, list[str]]:
    """Markdown report of a result dir (tables + checks from report.json) and an optional plot.

    Returns (text, notes): notes are the warnings for stderr (impossible records excluded).
    """
    from ftctl.reports.tables import render_text

    results = list(_parse_all(directory).values())
    parts = [f"# ftctl report: {directory}", render_text(results, "markdown")]
    for result in results:
        report_json = Path(result.path) / "report.json"
        if report_json.is_file():
            try:
                report = json.loads(report_json.read_text())
            except ValueError:
                continue
            rows = [
                [c["status"].upper(), c["name"], c["message"]] for c in report.get("checks", [])
            ]
            if rows:
                parts.append(f"## Checks: {result.name} ({report.get('status')})")
                parts.append(
                    tabulate(rows, headers=["Result", "Check", "Detail"], tablefmt="github")
                )
    text = "\n\n".join(parts) + "\n"
    written = []
    if markdown:
        markdown.write_text(text)
        written.append(f"wrote {markdown}")
    if plot:
        from ftctl.reports.timeline import plot_timeline

        if len(results) == 1:
            plot_timeline(results[0], plot)
            written.append(f"wrote {plot}")
        else:
            for result in results:
                target = plot.with_name(f"{plot.stem}-{result.name}{plot.suffix}")
                plot_timeline(result, target)
                written.append(f"wrote {target}")
    return ("\n".join(written) if written else text), _notes(results)
