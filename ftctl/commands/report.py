"""``ftctl report``: the Markdown report (tables and checks) and timeline plots of results."""

from __future__ import annotations

from pathlib import Path

from ftctl.commands import Output
from ftctl.errors import UsageError
from ftctl.layout import REPORT_SUFFIXES
from ftctl.reports.markdown import markdown_report, test_dirs
from ftctl.results.sanity import excluded_notes


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


def _write(path: Path, write) -> None:
    try:
        write()
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from exc


def _html_page(directory: Path, results: list, metrics: tuple[str, ...], *, histogram: bool):
    from ftctl.reports.histogram import histogram_text
    from ftctl.reports.html import render_html, text_to_html
    from ftctl.reports.tables import render_text

    def tables(result) -> str:
        text = render_text([result], "html")
        if histogram:
            text += "\n\n" + histogram_text(result, "html")
        return text_to_html(text)

    return render_html(f"ftctl report: {directory}", results, tables, metrics=metrics)


def report(
    directory: Path,
    *,
    plot: Path | None = None,
    markdown: Path | None = None,
    html: Path | None = None,
    metric: list[str] | None = None,
    histogram: bool = False,
) -> Output:
    """Markdown or HTML report of a result dir (tables + checks from report.json, latency
    histograms with ``histogram``) and an optional timeline plot.

    Notes: the warnings for stderr (impossible records excluded).
    Refuses (UsageError) before writing anything when an output could overwrite an input
    (``refuse_inputs``) or the plot is not a PNG.
    """
    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"--plot {plot}: the timeline is a PNG; give a file name ending in .png")
    dirs = test_dirs(directory)
    plots: list[Path] = []
    if plot is not None:
        plots = [plot] if len(dirs) == 1 else [
            plot.with_name(f"{plot.stem}-{d.name}{plot.suffix}") for d in dirs
        ]  # fmt: skip
    if html is not None and html.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--html {html}: the report is a page; give a file name ending in .html")
    outputs = [*plots, *([markdown] if markdown else []), *([html] if html else [])]
    refuse_inputs(outputs, [directory, *dirs])
    from ftctl.results import parse_result_dir

    results = [parse_result_dir(d) for d in dirs]
    text = markdown_report(directory, results, histogram=histogram)
    metrics = tuple(metric or ())
    written = []
    if markdown:
        _write(markdown, lambda: markdown.write_text(text))
        written.append(f"wrote {markdown}")
    if html:
        page = _html_page(directory, results, metrics, histogram=histogram)
        _write(html, lambda: html.write_text(page, encoding="utf-8"))
        written.append(f"wrote {html}")
    if plots:
        from ftctl.reports.timeline import plot_timeline

        for result, target in zip(results, plots, strict=True):
            _write(target, lambda r=result, t=target: plot_timeline(r, t, metrics))
            written.append(f"wrote {target}")
    return Output("\n".join(written) if written else text, notes=excluded_notes(results))
