"""`ftctl compare` and `ftctl report`: deltas between two runs; Markdown and plot of one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ftctl.errors import ParseError, UsageError

FORMATS = ("fancy", "markdown", "json")
# Names ftctl writes into a result directory and never reads back as results (DESIGN §4).
REPORT_SUFFIXES = (".md", ".png")


def _test_dirs(path: Path) -> list[Path]:
    from ftctl.results import find_test_dirs

    dirs = find_test_dirs(path)
    if not dirs:
        raise ParseError(f"{path}: no result directory found")
    return dirs


def _parse_all(path: Path) -> dict[str, Any]:
    from ftctl.results import parse_result_dir

    return {d.name: parse_result_dir(d) for d in _test_dirs(path)}


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
        "failed_attempts": float(overall.failed_attempts),
        "retried_requests": float(overall.retried_requests),
        "downtime_s": None if rec is None else rec.downtime_s,
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
    if fmt not in FORMATS:
        raise UsageError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
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


def _inputs(roots: list[Path]) -> set[Path]:
    """Every file under ``roots``, symlinks resolved: what reading them may touch."""
    found: set[Path] = set()
    for root in roots:
        try:
            for path in root.rglob("*"):
                if path.is_file():
                    found.add(path.resolve())
        except (OSError, RuntimeError):  # unreadable folder, symlink loop: check what we saw
            continue
    return found


def refuse_inputs(targets: list[Path], roots: list[Path]) -> None:
    """UsageError when writing a target could overwrite what the report reads.

    Paths are compared resolved (symlinks, ``..``). A target may never be a file found in a
    result directory read (nor a symlink's destination of one); inside such a directory only a
    ``.md`` or ``.png`` file may be written (the report names of DESIGN §4, never read back), so
    a new ``client_9.log.txt`` cannot appear either. Outside, any path is fine.
    """
    real_roots = [r.resolve() for r in roots]
    inputs = _inputs(real_roots)
    for target in targets:
        real = target.resolve()
        inside = next((r for r in real_roots if real == r or r in real.parents), None)
        if real in inputs and not (inside and real.suffix.lower() in REPORT_SUFFIXES):
            raise UsageError(
                f"{target}: refusing to overwrite {real}, a file of the result directory "
                "being read; write the report elsewhere"
            )
        if inside is not None and real.suffix.lower() not in REPORT_SUFFIXES:
            raise UsageError(
                f"{target}: inside the result directory {inside}, which is being read; only "
                f"{' or '.join(REPORT_SUFFIXES)} report files may be written there"
            )


def _checks(result: Any) -> list[str]:
    """The checks table of a test's report.json, if it has a readable one."""
    from ftctl.results.files import read_regular

    try:
        report = json.loads(read_regular(Path(result.path) / "report.json"))
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


def _write(path: Path, write) -> None:
    try:
        write()
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from exc


def report_command(
    directory: Path,
    *,
    plot: Path | None = None,
    markdown: Path | None = None,
    html: Path | None = None,
    metrics: tuple[str, ...] = (),
    histogram: bool = False,
) -> tuple[str, list[str]]:
    """Markdown report of a result dir (tables + checks from report.json) and an optional plot.

    Returns (text, notes): notes are the warnings for stderr (impossible records excluded).
    Refuses (UsageError) before writing anything when an output could overwrite an input
    (``refuse_inputs``) or the plot is not a PNG.
    """
    from ftctl.reports.tables import render_text

    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"{plot}: the timeline plot is a PNG; give a file name ending in .png")
    dirs = _test_dirs(directory)
    plots: list[Path] = []
    if plot is not None:
        plots = [plot] if len(dirs) == 1 else [
            plot.with_name(f"{plot.stem}-{d.name}{plot.suffix}") for d in dirs
        ]  # fmt: skip
    if html is not None and html.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"{html}: the HTML report is a page; give a file name ending in .html")
    outputs = [*plots, *([markdown] if markdown else []), *([html] if html else [])]
    refuse_inputs(outputs, [directory, *dirs])
    from ftctl.results import parse_result_dir

    results = [parse_result_dir(d) for d in dirs]
    parts = [f"# ftctl report: {directory}", render_text(results, "markdown")]
    for result in results:
        parts.extend(_checks(result))
    if histogram:
        from ftctl.reports.histogram import histogram_text

        parts.extend(histogram_text(result, "markdown") for result in results)
    text = "\n\n".join(parts) + "\n"
    written = []
    if markdown:
        _write(markdown, lambda: markdown.write_text(text))
        written.append(f"wrote {markdown}")
    if html:
        from ftctl.reports.histogram import histogram_text
        from ftctl.reports.html import render_html, text_to_html

        def tables(result: Any) -> str:
            text = render_text([result], "html")
            if histogram:
                text += "\n\n" + histogram_text(result, "html")
            return text_to_html(text)

        page = render_html(f"ftctl report: {directory}", results, tables, metrics=metrics)
        _write(html, lambda: html.write_text(page, encoding="utf-8"))
        written.append(f"wrote {html}")
    if plots:
        from ftctl.reports.timeline import plot_timeline

        for result, target in zip(results, plots, strict=True):
            _write(target, lambda r=result, t=target: plot_timeline(r, t, metrics))
            written.append(f"wrote {target}")
    return ("\n".join(written) if written else text), _notes(results)
