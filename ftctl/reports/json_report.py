"""``report.json`` and the run summary: a versioned structure for CI scripts and `compare`."""

from __future__ import annotations

from typing import Any

REPORT_SCHEMA = "ftctl.report/v1"


def outcome_to_json(outcome: Any) -> dict[str, Any]:
    """One test's outcome as JSON: status, checks, faults, and the parsed metrics.

    Layout: ``{"schema", "test", "status", "exit_code", "error", "skipped", "duration_s",
    "startup_s", "checks": [{"name", "kind", "status", "message", "value"}], "faults":
    [{"action", "service", "pod", "t_ns", "verified", "pod_recovery_s", "evidence"}],
    "result": <ftctl.parse/v2 test object or null>, "extra_results": [...]}``.
    """
    result = outcome.result
    return {
        "schema": REPORT_SCHEMA,
        "test": outcome.name,
        "status": outcome.status.name.lower(),
        "exit_code": int(outcome.status),
        "error": outcome.error,
        "skipped": outcome.skipped,
        "duration_s": round(outcome.duration_s, 3),
        "startup_s": outcome.startup_s,
        "checks": [
            {
                "name": c.name,
                "kind": c.check.kind,
                "source": c.check.source,
                "status": c.status,
                "message": c.message,
                "value": c.value,
            }
            for c in outcome.checks
        ],
        "faults": [
            {
                "action": f.action,
                "service": f.service,
                "pod": f.pod,
                "t_ns": f.t_ns,
                "signal": f.signal,
                "verified": f.verified,
                "pod_recovery_s": f.pod_recovery_time_s,
                "evidence": f.evidence,
                "skipped_reason": f.skipped_reason,
                "resumed_ns": f.resumed_ns,
            }
            for f in outcome.faults
        ],
        "result": result.to_json() if result is not None and hasattr(result, "to_json") else None,
        "extra_results": [r.to_json() for r in outcome.extra_results if hasattr(r, "to_json")],
    }


def run_to_json(run: Any) -> dict[str, Any]:
    """Every test of a run: ``{"schema", "status", "exit_code", "tests": [...]}``."""
    return {
        "schema": "ftctl.run-report/v1",
        "status": run.status.name.lower(),
        "exit_code": int(run.status),
        "tests": [outcome_to_json(t) for t in run.tests],
    }
