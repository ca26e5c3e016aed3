"""Human summary of `ftctl run`: per test the verdict, the checks, and the parse tables."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

_MARK = {"passed": "PASS", "failed": "FAIL", "inconclusive": "INCONCLUSIVE"}


def render_run(run: Any, fmt: str = "fancy") -> str:
    """Render a RunOutcome: result tables, then checks and a verdict line per test."""
    from ftctl.reports.tables import render_text

    tablefmt = "fancy_grid" if fmt == "fancy" else "github"
    blocks: list[str] = []
    parsed = [t.result for t in run.tests if t.result is not None]
    parsed += [r for t in run.tests for r in t.extra_results]
    if parsed:
        blocks.append(render_text(parsed, fmt))
    for outcome in run.tests:
        head = f"== {outcome.name}: {outcome.status.name}"
        if outcome.skipped:
            blocks.append(f"{head} (skipped: {outcome.skipped})")
            continue
        lines = [head]
        if outcome.startup_s is not None:
            lines.append(f"startup {outcome.startup_s:.2f}s, run {outcome.duration_s:.1f}s")
        for fault in outcome.faults:
            rec = fault.pod_recovery_time_s
            how = fault.signal or {"partition": "cut"}.get(fault.action, "delete")
            ended = getattr(fault, "resumed_ns", None)
            why = fault.evidence.get("error") if not fault.verified else None
            lines.append(
                f"fault {fault.action} {fault.pod} ({how}): "
                f"{'verified' if fault.verified else 'NOT verified'}"
                + (f" ({why})" if why else "")
                + (f", ended after {(ended - fault.t_ns) / 1e9:.2f}s" if ended else "")
                + (f", pod recovered in {rec:.2f}s" if rec is not None else "")
            )
        if outcome.error:
            lines.append(f"error: {outcome.error}")
        if outcome.checks:
            rows = [[_MARK[c.status], c.name, c.message] for c in outcome.checks]
            lines.append(tabulate(rows, headers=["Result", "Check", "Detail"], tablefmt=tablefmt))
        blocks.append("\n".join(lines))
    passed = sum(1 for t in run.tests if t.status.value == 0)
    blocks.append(
        f"{passed} passed, {len(run.tests) - passed} failed"
        + f" — verdict: {run.status.name} (exit {int(run.status)})"
    )
    return "\n\n".join(blocks)
