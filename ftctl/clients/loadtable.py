"""The load-test table of ``ftctl load``: per-run statistics from JSONL, rendered or compared."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from ftctl.errors import ParseError
from ftctl.layout import CLIENT_LOG_GLOB, LOAD_RUN_FILE
from ftctl.results.outcome import attempt_outcomes, record_succeeded

STATS = ("min", "max", "mean", "median", "p90", "p95", "p99")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of sorted values (numpy's default method)."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_stats(values: Sequence[float]) -> dict[str, float]:
    """min/max/mean/median/p90/p95/p99 of ``values`` (pooled; empty → {})."""
    if not values:
        return {}
    v = sorted(values)
    return {
        "min": v[0],
        "max": v[-1],
        "mean": sum(v) / len(v),
        "median": percentile(v, 50),
        "p90": percentile(v, 90),
        "p95": percentile(v, 95),
        "p99": percentile(v, 99),
    }


def read_records(path: Path) -> Iterator[dict]:
    """JSONL records of one client file; a truncated or garbled line is skipped."""
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a client killed mid-write leaves at most one such line
            if isinstance(rec, dict):
                yield rec


def record_ok(rec: dict) -> bool:
    """Whether the request succeeded, by the one rule ``ftctl parse`` uses too."""
    return record_succeeded(rec)


def record_error(rec: dict) -> str | None:
    """ftctl's ``error``, or the last attempt's status text for upstream records."""
    if rec.get("error"):
        return str(rec["error"])
    results = rec.get("results") or []
    if results and results[-1].get("status") != 200:
        return str(results[-1].get("status"))
    return None


def _span_ns(rec: dict) -> tuple[int, int] | None:
    if isinstance(rec.get("start_ns"), int) and isinstance(rec.get("end_ns"), int):
        return rec["start_ns"], rec["end_ns"]
    try:
        start = int(datetime.fromisoformat(rec["time"]).timestamp() * 1e9)
        return start, start + int(float(rec.get("total_time") or 0) * 1e9)
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class RunStats:
    """One load run as the table shows it; latencies in seconds over successful requests."""

    name: str
    mode: str = "?"
    streams: int | None = None  # clients x concurrency (closed loop)
    clients: int = 0
    arrival: str = "closed"
    offered_rate: float | None = None
    requests: int = 0
    ok: int = 0
    failed: int = 0
    attempts: int = 0  # every try of every request (README, metric notes)
    failed_attempts: int = 0
    retried_requests: int = 0  # requests tried more than once
    first_error: str | None = None
    wall_s: float = 0.0
    latency: dict[str, float] = field(default_factory=dict)
    ttft: dict[str, float] = field(default_factory=dict)
    # Open loop: end - scheduled time, so waiting behind a slow client or server counts.
    from_schedule: dict[str, float] = field(default_factory=dict)
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Actual: requests / wall time."""
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def implied_throughput(self) -> float | None:
        """What latency alone allows: parallel streams / mean latency (closed loop)."""
        mean = self.latency.get("mean")
        if not mean or not self.streams:
            return None
        return self.streams / mean

    def to_dict(self) -> dict:
        d = asdict(self)
        d["throughput"] = self.throughput
        d["implied_throughput"] = self.implied_throughput
        return d


def mode_text(arrival: str, streams: int | None, rate: float | None) -> str:
    """``sequential (c=1)``, ``concurrent (c=8)``, or ``open poisson (50 req/s)``."""
    if arrival != "closed":
        return f"open {arrival} ({rate:g} req/s)" if rate else f"open {arrival}"
    if streams is None:
        return "?"
    return "sequential (c=1)" if streams == 1 else f"concurrent (c={streams})"


def read_run(path: Path) -> RunStats:
    """Statistics of a saved run directory (``ftctl load`` output, a test dir, or upstream)."""
    path = Path(path)
    files = sorted(path.glob(CLIENT_LOG_GLOB))
    if not files:
        raise ParseError(f"{path}: no client_*.log.txt files; is this a legacy load directory?")
    run = RunStats(name=path.name or str(path))
    meta: dict = {}
    if (path / LOAD_RUN_FILE).is_file():
        try:
            meta = json.loads((path / LOAD_RUN_FILE).read_text())
        except ValueError as exc:
            raise ParseError(f"{path / LOAD_RUN_FILE}: invalid JSON: {exc}") from exc
    spec = meta.get("spec") or {}
    summary = meta.get("summary") or {}
    run.clients = int(spec.get("clients") or len(files))
    run.arrival = spec.get("arrival", "closed")
    if spec:
        run.streams = int(spec.get("clients", 1)) * int(spec.get("concurrency", 1))
    run.offered_rate = spec.get("request_rate") if run.arrival != "closed" else None
    run.lag_p50_ms = summary.get("lag_p50_ms")
    run.lag_p99_ms = summary.get("lag_p99_ms")
    run.warnings = list(summary.get("warnings") or [])
    lat: list[float] = []
    ttft: list[float] = []
    sched: list[float] = []
    first_err: tuple[int, str] | None = None
    lo = hi = None
    for f in files:
        for rec in read_records(f):
            run.requests += 1
            outcomes = attempt_outcomes(rec)
            run.attempts += len(outcomes)
            run.failed_attempts += outcomes.count(False)
            run.retried_requests += len(outcomes) > 1
            span = _span_ns(rec)
            if span:
                lo = span[0] if lo is None else min(lo, span[0])
                hi = span[1] if hi is None else max(hi, span[1])
            if record_ok(rec):
                run.ok += 1
                if isinstance(rec.get("total_time"), (int, float)):
                    lat.append(float(rec["total_time"]))
                if isinstance(rec.get("ttft"), (int, float)):
                    ttft.append(float(rec["ttft"]))
                if isinstance(rec.get("scheduled_ns"), int) and isinstance(rec.get("end_ns"), int):
                    sched.append((rec["end_ns"] - rec["scheduled_ns"]) / 1e9)
            else:
                run.failed += 1
                err = record_error(rec) or "failed"
                key = span[0] if span else 0
                if first_err is None or key < first_err[0]:
                    first_err = (key, err)
    run.first_error = first_err[1] if first_err else None
    if lo is not None and hi is not None:
        run.wall_s = (hi - lo) / 1e9
    run.latency = latency_stats(lat)
    run.ttft = latency_stats(ttft)
    run.from_schedule = latency_stats(sched)
    run.mode = mode_text(run.arrival, run.streams, run.offered_rate)
    return run


def _ms(value: float | None) -> str:
    return "N/A" if value is None else f"{value * 1000:.2f}"


def _fmt_rate(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.1f}"


def _errors_text(run: RunStats, width: int = 80) -> str:
    if not run.failed:
        return "0"
    first = run.first_error or ""
    if len(first) > width:
        first = first[: width - 1] + "…"
    return f"{run.failed} (first: {first})"


def _attempts_text(run: RunStats) -> str:
    """``231 (6 failed, 6 retried requests)``."""
    return f"{run.attempts} ({run.failed_attempts} failed, {run.retried_requests} retried requests)"


def _tablefmt(fmt: str) -> str:
    return {"fancy": "fancy_grid", "markdown": "github"}.get(fmt, "simple")


def render_run(run: RunStats, fmt: str = "fancy") -> str:
    """One run as a Metric | Value table (or JSON)."""
    if fmt == "json":
        return json.dumps(run.to_dict(), indent=2)
    from tabulate import tabulate

    rows: list[tuple[str, str]] = [
        ("Mode", run.mode),
        ("Clients", str(run.clients)),
        ("Requests", str(run.requests)),
        ("Successful", str(run.ok)),
        ("Errors", _errors_text(run)),
        ("Attempts", _attempts_text(run)),
        ("Total time (s)", f"{run.wall_s:.2f}"),
    ]
    for stat in STATS:
        rows.append((f"Latency {stat} (ms)", _ms(run.latency.get(stat))))
    if run.ttft:
        rows.append(("TTFT mean (ms)", _ms(run.ttft.get("mean"))))
        rows.append(("TTFT p99 (ms)", _ms(run.ttft.get("p99"))))
    rows.append(("Throughput, actual (req/s)", _fmt_rate(run.throughput)))
    rows.append(("Throughput, latency-implied (req/s)", _fmt_rate(run.implied_throughput)))
    if run.from_schedule:
        rows.append(("Latency from schedule p50 (ms)", _ms(run.from_schedule.get("median"))))
        rows.append(("Latency from schedule p99 (ms)", _ms(run.from_schedule.get("p99"))))
    if run.arrival != "closed":
        rows.append(
            ("Dispatch lag p50 (ms)", "N/A" if run.lag_p50_ms is None else f"{run.lag_p50_ms:.2f}")
        )
        rows.append(
            ("Dispatch lag p99 (ms)", "N/A" if run.lag_p99_ms is None else f"{run.lag_p99_ms:.2f}")
        )
    text = f"Load test: {run.name}\n" + tabulate(
        rows, headers=["Metric", "Value"], tablefmt=_tablefmt(fmt)
    )
    for w in run.warnings:
        text += f"\nwarning: {w}"
    return text


def render_compare(runs: Sequence[RunStats], fmt: str = "fancy") -> str:
    """Several runs side by side; speedup = throughput / the first run's throughput."""
    base = runs[0].throughput if runs else 0.0
    if fmt == "json":
        out = []
        for r in runs:
            d = r.to_dict()
            d["speedup"] = r.throughput / base if base else None
            out.append(d)
        return json.dumps(out, indent=2)
    from tabulate import tabulate

    headers = [
        "Run",
        "Mode",
        "Requests",
        "Errors",
        "Attempts",
        "Mean (ms)",
        "Median (ms)",
        "P95 (ms)",
        "P99 (ms)",
        "Throughput (req/s)",
        "Implied (req/s)",
        "Speedup",
    ]
    rows = []
    for i, r in enumerate(runs):
        speed = "baseline" if i == 0 else (f"{r.throughput / base:.2f}x" if base else "N/A")
        rows.append(
            [
                r.name,
                r.mode,
                r.requests,
                _errors_text(r, 40),
                _attempts_text(r),
                _ms(r.latency.get("mean")),
                _ms(r.latency.get("median")),
                _ms(r.latency.get("p95")),
                _ms(r.latency.get("p99")),
                _fmt_rate(r.throughput),
                _fmt_rate(r.implied_throughput),
                speed,
            ]
        )
    return tabulate(rows, headers=headers, tablefmt=_tablefmt(fmt), disable_numparse=True)
