"""Checks and verdicts (DESIGN.md §3.3): stage 1 (the fault happened) and stage 2 (thresholds).

Every check turns into a ``CheckResult`` with status passed | failed | inconclusive. A
recovery-time check whose value could not be measured FAILS (REFERENCE.md §9.1), and a fault
that was not verified fails ``fault_verified`` (§9.9).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ftctl.checks_server import SERVER_KINDS, ServerContext, evaluate_server
from ftctl.errors import ExitStatus
from ftctl.events import COMMAND_RESULT, FAULT_INJECTED, FAULT_NOT_VERIFIED, FAULT_VERIFIED
from ftctl.layout import LOG_SUFFIX, NOT_POD_LOG_SUFFIXES
from ftctl.scenario.model import Check

Status = Literal["passed", "failed", "inconclusive"]

LATENCY_STATS = ("mean", "min", "max", "p50", "p90", "p95", "p99")


@dataclass
class CheckResult:
    """The outcome of one check, with the measured value and a one-line reason."""

    check: Check
    status: Status
    message: str
    value: float | None = None

    @property
    def name(self) -> str:
        """A short readable name, e.g. ``success_rate[after]>=0.9``."""
        c = self.check
        parts = [c.kind]
        if c.metric:
            parts.append(f":{c.agg or 'max'}({c.metric})")
        if c.kind == "success_rate" and c.of == "attempts":
            parts.append(":attempts")
        if c.kind in ("success_rate", "latency", "metric") or (
            c.kind == "max_failed_attempts" and c.phase != "overall"
        ):
            parts.append(f"[{c.phase}]")
        if c.stat:
            parts.append(f".{c.stat}")
        if c.load:
            parts.append(f"@{c.load}")
        if c.min is not None:
            parts.append(f">={c.min:g}")
        if c.max is not None:
            parts.append(f"<={c.max:g}")
        if c.service and c.pattern:
            parts.append(f"({c.service}: {c.pattern})")
        elif c.service:
            parts.append(f"({c.service})")
        return "".join(parts)


@dataclass
class FaultSummary:
    """What events.jsonl says about the faults of a run (stage 1 input)."""

    injected: int = 0
    verified: int = 0
    not_verified: list[str] | None = None
    known_limitations: list[str] | None = None


def summarize_faults(events: list[dict[str, Any]]) -> FaultSummary:
    """Count injected / verified faults from the events of a result directory."""
    summary = FaultSummary(not_verified=[], known_limitations=[])
    for event in events:
        kind = event.get("kind")
        if kind == FAULT_INJECTED:
            summary.injected += 1
        elif kind == FAULT_VERIFIED:
            summary.verified += 1
            if event.get("skipped_reason"):
                summary.known_limitations.append(str(event["skipped_reason"]))
        elif kind == FAULT_NOT_VERIFIED:
            summary.not_verified.append(str(event.get("reason") or event.get("pod") or "?"))
    return summary


def _attempts_note(metrics: Any) -> str:
    """`` (9 failed attempts, 6 retried requests)`` when retries hid failed attempts."""
    failed = getattr(metrics, "failed_attempts", 0)
    if failed <= metrics.failed:
        return ""
    return f" ({failed} failed attempts, {metrics.retried_requests} retried requests)"


def _range_verdict(value: float | None, check: Check, what: str, unit: str = "") -> tuple:
    if value is None:
        return "inconclusive", f"{what}: no value to judge"
    ok = True
    if check.min is not None and value < check.min:
        ok = False
    if check.max is not None and value > check.max:
        ok = False
    bounds = []
    if check.min is not None:
        bounds.append(f">= {check.min:g}{unit}")
    if check.max is not None:
        bounds.append(f"<= {check.max:g}{unit}")
    return (
        "passed" if ok else "failed"
    ), f"{what} = {value:.4g}{unit} (want {' and '.join(bounds)})"


def _grep_service_logs(result_dir: Path, service: str, pattern: str) -> bool | None:
    folder = result_dir / service
    if not folder.is_dir():
        return None
    regex = re.compile(pattern)
    for path in sorted(folder.glob(f"*{LOG_SUFFIX}")):
        if path.name.endswith(NOT_POD_LOG_SUFFIXES):
            continue
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            if any(regex.search(line) for line in handle):
                return True
    return False


def evaluate(
    checks: tuple[Check, ...] | list[Check],
    *,
    loads: dict[str, Any],
    overall: Any,
    was_cancelled: bool,
    faults: FaultSummary,
    expects_fault: bool,
    result_dir: Path,
    events: list[dict[str, Any]] | None = None,
) -> list[CheckResult]:
    """Evaluate ``checks`` against parsed metrics.

    Args:
        checks: the test's checks.
        loads: load name → ``LoadMetrics`` (from ``ftctl.results``).
        overall: ``LoadMetrics`` of all loads pooled.
        was_cancelled: whether a load was cut short (stopped or timed out).
        faults: stage-1 evidence from events.jsonl.
        expects_fault: the test injects a process/pod fault.
        result_dir: where service logs and series live (``<Service>/<pod>.log``, ``.metrics.jsonl``).
        events: events.jsonl records (fault times and targets for server-side checks).
    """
    results: list[CheckResult] = []
    server: ServerContext | None = None
    for check in checks:
        if check.kind in SERVER_KINDS:
            if server is None:
                server = ServerContext.read(result_dir, events or [], overall)
            results.append(CheckResult(check, *evaluate_server(check, server)))
            continue
        if check.kind == "command_exit":
            results.append(_command_exit(check, events or []))
            continue
        metrics = overall if check.load is None else loads.get(check.load)
        if metrics is None and check.kind not in (
            "fault_verified",
            "service_log_contains",
            "service_log_not_contains",
            "was_cancelled",
        ):
            results.append(CheckResult(check, "failed", f"no results for load '{check.load}'"))
            continue
        results.append(
            _evaluate_one(check, metrics, was_cancelled, faults, expects_fault, result_dir)
        )
    return results


def _command_exit(check: Check, events: list[dict[str, Any]]) -> CheckResult:
    """Every run_command with ``expect_exit`` exited with it (and ran at all)."""
    ran = [
        e for e in events if e.get("kind") == COMMAND_RESULT and e.get("expect_exit") is not None
    ]
    if not ran:
        return CheckResult(check, "failed", "no command with expect_exit ran")
    bad = [e for e in ran if e.get("exit_code") != e.get("expect_exit")]
    if not bad:
        return CheckResult(check, "passed", f"{len(ran)} command(s) exited as expected")
    first = bad[0]
    why = first.get("error") or (first.get("stderr") or "").strip().splitlines()[-1:] or [""]
    why = why if isinstance(why, str) else why[0]
    return CheckResult(
        check,
        "failed",
        f"{len(bad)} of {len(ran)} command(s) exited otherwise than expected: "
        f"{first.get('argv')} in {first.get('pod')} exited {first.get('exit_code')}, "
        f"expected {first.get('expect_exit')}" + (f" ({why[:200]})" if why else ""),
        first.get("exit_code"),
    )


def _evaluate_one(check, metrics, was_cancelled, faults, expects_fault, result_dir) -> CheckResult:
    kind = check.kind
    if kind == "zero_errors":
        failed = metrics.failed
        ok = failed == 0 and metrics.requests > 0
        msg = f"{failed} failed of {metrics.requests}" + _attempts_note(metrics)
        if metrics.requests == 0:
            return CheckResult(check, "inconclusive", "no requests were made", 0)
        return CheckResult(check, "passed" if ok else "failed", msg, failed)
    if kind == "max_errors":
        status, msg = _range_verdict(float(metrics.failed), check, "failed requests")
        return CheckResult(check, status, msg + _attempts_note(metrics), metrics.failed)
    if kind == "max_failed_attempts":
        phase = metrics.phases.get(check.phase)
        if phase is None or phase.requests == 0:
            return CheckResult(check, "inconclusive", f"no requests in phase '{check.phase}'")
        status, msg = _range_verdict(
            float(phase.failed_attempts), check, f"failed attempts ({check.phase})"
        )
        detail = f"{msg}, of {phase.attempts} attempts ({phase.retried_requests} retried requests)"
        return CheckResult(check, status, detail, phase.failed_attempts)
    if kind == "min_requests":
        status, msg = _range_verdict(float(metrics.requests), check, "requests")
        return CheckResult(check, status, msg, metrics.requests)
    if kind == "was_cancelled":
        expected = bool(check.expected)
        ok = was_cancelled == expected
        return CheckResult(
            check, "passed" if ok else "failed", f"was_cancelled = {was_cancelled}", None
        )
    if kind == "success_rate":
        phase = metrics.phases.get(check.phase)
        if phase is None or phase.requests == 0:
            return CheckResult(check, "inconclusive", f"no requests in phase '{check.phase}'")
        if check.of == "attempts":
            if phase.attempts == 0:  # a summary without per-request records
                return CheckResult(check, "inconclusive", f"no attempts in phase '{check.phase}'")
            rate = phase.attempt_success_rate
            what = f"attempt success rate ({check.phase})"
            count = f"{phase.attempts - phase.failed_attempts}/{phase.attempts} attempts"
        else:
            rate, what = phase.success_rate, f"success rate ({check.phase})"
            count = f"{phase.ok}/{phase.requests}"
        status, msg = _range_verdict(rate, check, what)
        return CheckResult(check, status, f"{msg}, {count}", rate)
    if kind == "recovery_time":
        rec = metrics.recovery
        if not expects_fault or rec is None:
            return CheckResult(check, "failed", "recovery time not measured: no fault in this run")
        if rec.no_visible_impact:
            value = 0.0
        elif not rec.recovered or rec.recovery_time_s is None:
            return CheckResult(
                check, "failed", "recovery time not measured: failures lasted until the end"
            )
        else:
            value = rec.recovery_time_s
        status, msg = _range_verdict(value, check, "recovery time", "s")
        return CheckResult(check, status, msg, value)
    if kind == "latency":
        phase = metrics.phases.get(check.phase)
        stat = check.stat or "p99"
        if phase is None or phase.ok == 0:
            return CheckResult(check, "inconclusive", f"no successful requests in '{check.phase}'")
        value = phase.latency_s.get(stat)
        status, msg = _range_verdict(value, check, f"latency {stat} ({check.phase})", "s")
        return CheckResult(check, status, msg, value)
    if kind in ("service_log_contains", "service_log_not_contains"):
        found = _grep_service_logs(result_dir, check.service or "", check.pattern or "")
        if found is None:
            return CheckResult(check, "failed", f"no logs collected for service '{check.service}'")
        want = kind == "service_log_contains"
        ok = found == want
        verb = "found" if found else "not found"
        return CheckResult(check, "passed" if ok else "failed", f"'{check.pattern}' {verb}")
    if kind == "fault_verified":
        if not expects_fault:
            return CheckResult(check, "passed", "no fault to verify")
        if faults.injected == 0:
            return CheckResult(check, "failed", "no fault was injected")
        if faults.not_verified:
            return CheckResult(
                check, "failed", "fault did not take effect: " + "; ".join(faults.not_verified)
            )
        if faults.verified < faults.injected:
            return CheckResult(
                check, "failed", f"{faults.verified} of {faults.injected} faults verified"
            )
        note = f"{faults.verified} of {faults.injected} faults verified"
        if faults.known_limitations:
            note += " (known limitation: " + "; ".join(faults.known_limitations) + ")"
        return CheckResult(check, "passed", note)
    return CheckResult(check, "failed", f"unknown check kind '{kind}'")


def verdict(results: list[CheckResult]) -> ExitStatus:
    """OK if all passed; CHECK_FAILED if any failed; INCONCLUSIVE if any could not be judged."""
    if any(r.status == "failed" for r in results):
        return ExitStatus.CHECK_FAILED
    if any(r.status == "inconclusive" for r in results):
        return ExitStatus.INCONCLUSIVE
    return ExitStatus.OK


_SEVERITY = [
    ExitStatus.OK,
    ExitStatus.INCONCLUSIVE,
    ExitStatus.CHECK_FAILED,
    ExitStatus.INVALID,
    ExitStatus.INFRA,
    ExitStatus.INTERRUPTED,
]


def worst(statuses: list[ExitStatus]) -> ExitStatus:
    """The most severe status: interrupted > infra > invalid > failed > inconclusive > ok."""
    return max(statuses, key=_SEVERITY.index, default=ExitStatus.OK)
