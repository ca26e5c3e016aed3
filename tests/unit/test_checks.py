"""Checks and verdicts over parsed metrics (the result types of ftctl.results)."""

from __future__ import annotations

from ftctl.checks import FaultSummary, evaluate, summarize_faults, verdict, worst
from ftctl.errors import ExitStatus
from ftctl.results.model import LoadMetrics, PhaseStats, Recovery
from ftctl.scenario.model import Check


def _metrics(
    ok: int, failed: int, recovery: Recovery | None = None, p99: float = 0.2
) -> LoadMetrics:
    phase = PhaseStats(requests=ok + failed, ok=ok, failed=failed)
    phase.success_rate = ok / (ok + failed) if ok + failed else None
    phase.latency_s["p99"] = p99 if ok else None
    empty = PhaseStats()
    return LoadMetrics(
        requests=ok + failed,
        ok=ok,
        failed=failed,
        phases={"overall": phase, "after": phase, "before": empty},
        recovery=recovery,
    )


def _eval(check: Check, metrics: LoadMetrics, tmp_path, **kw):
    args = dict(
        loads={"default": metrics},
        overall=metrics,
        was_cancelled=False,
        faults=FaultSummary(injected=1, verified=1, not_verified=[], known_limitations=[]),
        expects_fault=True,
        result_dir=tmp_path,
    )
    args.update(kw)
    return evaluate([check], **args)[0]


def test_missing_recovery_time_fails_never_passes(tmp_path):
    not_recovered = Recovery(recovery_time_s=None, recovered=False)
    result = _eval(Check(kind="recovery_time", max=60), _metrics(5, 5, not_recovered), tmp_path)
    assert result.status == "failed"
    assert "not measured" in result.message


def test_recovery_time_without_any_fault_fails(tmp_path):
    result = _eval(
        Check(kind="recovery_time", max=60), _metrics(10, 0), tmp_path, expects_fault=False
    )
    assert result.status == "failed"


def test_no_visible_impact_counts_as_zero_recovery(tmp_path):
    clean = Recovery(recovery_time_s=0.0, recovered=True, no_visible_impact=True)
    result = _eval(Check(kind="recovery_time", max=1), _metrics(10, 0, clean), tmp_path)
    assert result.status == "passed" and result.value == 0.0


def test_recovery_over_the_limit_fails(tmp_path):
    slow = Recovery(recovery_time_s=75.0, recovered=True)
    assert _eval(Check(kind="recovery_time", max=60), _metrics(9, 1, slow), tmp_path).status == (
        "failed"
    )


def test_success_rate_bounds_are_inclusive(tmp_path):
    metrics = _metrics(9, 1)  # exactly 0.9
    assert _eval(Check(kind="success_rate", min=0.9), metrics, tmp_path).status == "passed"
    assert _eval(Check(kind="success_rate", min=0.91), metrics, tmp_path).status == "failed"
    assert _eval(Check(kind="success_rate", max=0.5), metrics, tmp_path).status == "failed"


def test_phase_without_requests_is_inconclusive(tmp_path):
    check = Check(kind="success_rate", min=0.9, phase="before")
    assert _eval(check, _metrics(9, 1), tmp_path).status == "inconclusive"


def test_latency_check_reads_the_pooled_percentile(tmp_path):
    assert _eval(Check(kind="latency", stat="p99", max=0.1), _metrics(5, 0), tmp_path).status == (
        "failed"
    )
    assert _eval(Check(kind="latency", stat="p99", max=0.5), _metrics(5, 0), tmp_path).status == (
        "passed"
    )


def test_unknown_load_fails_with_its_name(tmp_path):
    result = _eval(Check(kind="zero_errors", load="other"), _metrics(5, 0), tmp_path)
    assert result.status == "failed" and "other" in result.message


def test_service_log_checks_read_collected_logs(tmp_path):
    folder = tmp_path / "Frontend"
    folder.mkdir()
    (folder / "Frontend-abcde.log").write_text("INFO added model tiny\n")
    (folder / "Frontend-abcde.metrics.log").write_text("panicked 1\n")
    contains = Check(kind="service_log_contains", service="Frontend", pattern="added model")
    not_contains = Check(kind="service_log_not_contains", service="Frontend", pattern="panicked")
    assert _eval(contains, _metrics(1, 0), tmp_path).status == "passed"
    assert _eval(not_contains, _metrics(1, 0), tmp_path).status == "passed"
    missing = Check(kind="service_log_contains", service="Nope", pattern="x")
    assert _eval(missing, _metrics(1, 0), tmp_path).status == "failed"


def test_fault_that_did_not_take_effect_fails_stage_one(tmp_path):
    events = [
        {"t_ns": 1, "kind": "fault_injected"},
        {"t_ns": 2, "kind": "fault_not_verified", "reason": "pod-1: restart not observed"},
    ]
    faults = summarize_faults(events)
    result = _eval(Check(kind="fault_verified"), _metrics(5, 0), tmp_path, faults=faults)
    assert result.status == "failed" and "restart not observed" in result.message


def test_fault_never_injected_fails_stage_one(tmp_path):
    faults = summarize_faults([])
    result = _eval(Check(kind="fault_verified"), _metrics(5, 0), tmp_path, faults=faults)
    assert result.status == "failed"


def test_verdict_and_worst_order_severity():
    assert verdict([]) == ExitStatus.OK
    assert worst([ExitStatus.OK, ExitStatus.INCONCLUSIVE]) == ExitStatus.INCONCLUSIVE
    assert worst([ExitStatus.INCONCLUSIVE, ExitStatus.CHECK_FAILED]) == ExitStatus.CHECK_FAILED
    assert worst([ExitStatus.CHECK_FAILED, ExitStatus.INFRA]) == ExitStatus.INFRA
    assert worst([ExitStatus.INFRA, ExitStatus.INTERRUPTED]) == ExitStatus.INTERRUPTED


def _retried(requests: int, failed: int, failed_attempts: int, retried: int) -> LoadMetrics:
    """Requests of which ``retried`` needed a second try; ``failed_attempts`` tries failed."""
    metrics = _metrics(requests - failed, failed)
    for phase in (metrics.phases["overall"], metrics.phases["after"]):
        phase.attempts = requests + retried
        phase.failed_attempts = failed_attempts
        phase.retried_requests = retried
        phase.attempt_success_rate = (phase.attempts - failed_attempts) / phase.attempts
    metrics.total_attempts, metrics.failed_attempts = requests + retried, failed_attempts
    metrics.retried_requests = retried
    return metrics


def test_success_rate_of_attempts_counts_every_failed_try(tmp_path):
    metrics = _retried(100, 0, 6, 6)  # retries absorbed every failure
    of_requests = _eval(Check(kind="success_rate", min=1.0), metrics, tmp_path)
    of_attempts = _eval(Check(kind="success_rate", min=0.99, of="attempts"), metrics, tmp_path)
    assert of_requests.status == "passed"
    assert of_attempts.status == "failed" and of_attempts.value == 100 / 106
    assert "100/106 attempts" in of_attempts.message
    assert of_attempts.name == "success_rate:attempts[overall]>=0.99"


def test_max_failed_attempts_sees_what_retries_hid(tmp_path):
    metrics = _retried(100, 0, 6, 6)
    assert _eval(Check(kind="max_errors", max=0), metrics, tmp_path).status == "passed"
    result = _eval(Check(kind="max_failed_attempts", max=5), metrics, tmp_path)
    assert result.status == "failed" and result.value == 6
    assert "of 106 attempts (6 retried requests)" in result.message
    assert _eval(Check(kind="max_failed_attempts", max=6), metrics, tmp_path).status == "passed"


def test_zero_errors_says_when_retries_hid_failed_attempts(tmp_path):
    result = _eval(Check(kind="zero_errors"), _retried(100, 0, 6, 6), tmp_path)
    assert result.status == "passed"
    assert result.message == "0 failed of 100 (6 failed attempts, 6 retried requests)"
