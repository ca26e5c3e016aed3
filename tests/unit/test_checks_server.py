"""Server-side checks judged on series the real scraper wrote (real files, causal fault times)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ftctl.checks import FaultSummary, evaluate
from ftctl.observe import Scraper
from ftctl.platforms.base import ScrapeTarget
from ftctl.scenario.model import Check
from tests.conftest import run_cli

FAULT = object()  # a step of the recording: the fault happens here


def _record(result_dir: Path, steps: list) -> list[dict]:
    """Scrape once per step ({(service, pod): exposition or None for a dead pod}).

    Returns the events: a fault_injected at the FAULT step, taken between two scrapes.
    """
    events: list[dict] = []
    current: dict = {}

    def targets():
        return [
            ScrapeTarget(service, pod, _fetcher(text)) for (service, pod), text in current.items()
        ]

    scraper = Scraper(targets, result_dir, resources=False)
    for step in steps:
        if step is FAULT:
            events.append(
                {
                    "kind": "fault_injected",
                    "t_ns": time.time_ns(),
                    "service": "Worker",
                    "pod": "Worker-a",
                }
            )
            continue
        current = step
        scraper.scrape_once()
    scraper.stop()
    return events


def _fetcher(text: str | None):
    def fetch(timeout: float) -> bytes:
        if text is None:
            raise ConnectionRefusedError("connection refused")
        return text.encode()

    return fetch


def _judge(result_dir: Path, events: list[dict], *checks: Check):
    return evaluate(
        checks,
        loads={},
        overall=None,
        was_cancelled=False,
        faults=FaultSummary(),
        expects_fault=bool(events),
        result_dir=result_dir,
        events=events,
    )


def _times(result_dir: Path, service: str, pod: str) -> list[int]:
    path = result_dir / service / f"{pod}.metrics.jsonl"
    return [json.loads(line)["t_ns"] for line in path.read_text().splitlines()]


def _queue(n: float) -> dict:
    return {("Frontend", "Frontend-0"): f"dynamo_frontend_queued_requests {n}\n"}


def test_metric_check_judges_each_phase_on_its_own_window(tmp_path):
    events = _record(tmp_path, [_queue(0), _queue(1), _queue(0), FAULT, _queue(5), _queue(9)])
    check = dict(kind="metric", service="Frontend", metric="dynamo_frontend_queued_requests")
    before, after, overall = _judge(
        tmp_path,
        events,
        Check(**check, phase="before", max=5),
        Check(**check, phase="after", max=5),
        Check(**check, phase="overall", agg="mean", max=100),
    )
    assert (before.status, before.value) == ("passed", 1)
    assert (after.status, after.value) == ("failed", 9)
    assert overall.value == pytest.approx((0 + 1 + 0 + 5 + 9) / 5)


def test_a_missing_or_thin_series_is_inconclusive_never_a_pass(tmp_path):
    events = _record(tmp_path, [_queue(0), FAULT, _queue(3)])
    missing, thin, no_service = _judge(
        tmp_path,
        events,
        Check(kind="metric", service="Frontend", metric="no_such_metric", max=1),
        Check(
            kind="metric",
            service="Frontend",
            metric="dynamo_frontend_queued_requests",
            phase="after",
            max=10,
        ),
        Check(kind="metric", service="Decode", metric="dynamo_frontend_queued_requests", max=1),
    )
    assert [c.status for c in (missing, thin, no_service)] == ["inconclusive"] * 3
    assert "1 samples in 'after' (need 2)" in thin.message


def test_counter_increase_survives_a_restart_and_rate_uses_scrape_times(tmp_path):
    counts = [0, 10, 4, 8]  # the drop to 4 is a restart: 10 + 4 + 4 = 18
    _record(tmp_path, [{("Worker", "Worker-a"): f"reqs_total {n}\n"} for n in counts])
    increase, rate = _judge(
        tmp_path,
        [],
        Check(kind="metric", service="Worker", metric="reqs_total", agg="increase", min=0),
        Check(kind="metric", service="Worker", metric="reqs_total", agg="rate", min=0),
    )
    assert increase.value == 18
    stamps = _times(tmp_path, "Worker", "Worker-a")
    assert rate.value == pytest.approx(18 / ((stamps[-1] - stamps[0]) / 1e9))


def test_worker_removed_after_fault_times_the_frontends_first_scrape_without_it(tmp_path):
    worker = 'dynamo_component_uptime_seconds{worker_id="ff"} 3\n'
    routed = 'dynamo_frontend_worker_last_time_to_first_token_seconds{worker_id="255"} 0.1\n'
    other = 'dynamo_frontend_worker_last_time_to_first_token_seconds{worker_id="16"} 0.1\n'
    with_it = {("Worker", "Worker-a"): worker, ("Frontend", "Frontend-0"): routed + other}
    dead = {("Worker", "Worker-a"): None}
    events = _record(
        tmp_path,
        [
            with_it,
            FAULT,
            {**dead, ("Frontend", "Frontend-0"): routed + other},
            {**dead, ("Frontend", "Frontend-0"): other},
        ],
    )
    (result,) = _judge(
        tmp_path, events, Check(kind="worker_removed_after_fault", service="Frontend", max=60)
    )
    dropped_ns = _times(tmp_path, "Frontend", "Frontend-0")[2]
    assert result.status == "passed"
    assert result.value == pytest.approx((dropped_ns - events[0]["t_ns"]) / 1e9)


def test_worker_still_routed_at_the_end_fails(tmp_path):
    worker = 'dynamo_component_uptime_seconds{worker_id="ff"} 3\n'
    routed = 'x{worker_id="255"} 1\n'
    events = _record(
        tmp_path,
        [
            {("Worker", "Worker-a"): worker, ("Frontend", "Frontend-0"): routed},
            FAULT,
            {("Worker", "Worker-a"): None, ("Frontend", "Frontend-0"): routed},
        ],
    )
    (result,) = _judge(
        tmp_path, events, Check(kind="worker_removed_after_fault", service="Frontend", max=60)
    )
    assert result.status == "failed" and "still lists Worker-a" in result.message


def test_queue_drains_after_fault_times_the_return_to_the_baseline(tmp_path):
    events = _record(
        tmp_path, [_queue(1), _queue(2), FAULT, _queue(7), _queue(4), _queue(2), _queue(9)]
    )
    (result,) = _judge(
        tmp_path, events, Check(kind="queue_drains_after_fault", service="Frontend", max=60)
    )
    back_ns = _times(tmp_path, "Frontend", "Frontend-0")[4]  # the first 2 after the rise
    assert result.status == "passed"
    assert result.value == pytest.approx((back_ns - events[0]["t_ns"]) / 1e9)


def test_no_throughput_collapse_compares_rates_on_both_sides(tmp_path):
    def served(n):
        return {
            ("Frontend", "Frontend-0"): f'dynamo_frontend_requests_total{{status="success"}} {n}\n'
        }

    events = _record(tmp_path, [served(0), served(100), FAULT, served(100), served(110)])
    (result,) = _judge(
        tmp_path, events, Check(kind="no_throughput_collapse", service="Frontend", min=0.5)
    )
    t = _times(tmp_path, "Frontend", "Frontend-0")
    expected = (10 / ((t[3] - t[2]) / 1e9)) / (100 / ((t[1] - t[0]) / 1e9))
    assert result.value == pytest.approx(expected)
    assert result.status == ("passed" if expected >= 0.5 else "failed")


def _resources(result_dir: Path, pod: str, rss_mb: list[float], cpu: list[float]) -> None:
    folder = result_dir / "Worker"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        {"t_ns": i * 60_000_000_000, "ok": True, "rss_bytes": int(m * 1e6), "cpu_s": c}
        for i, (m, c) in enumerate(zip(rss_mb, cpu, strict=True))
    ]
    (folder / f"{pod}.resources.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_memory_growth_is_the_rss_slope_per_minute(tmp_path):
    _resources(tmp_path, "Worker-a", [100, 110, 120, 130], [1, 2, 3, 4])
    (result,) = _judge(tmp_path, [], Check(kind="memory_growth", service="Worker", max=5))
    assert (result.status, result.value) == ("failed", pytest.approx(10.0))


def test_no_engine_restart_sees_the_process_tree_start_over(tmp_path):
    _resources(tmp_path, "Worker-a", [100, 100, 100], [5, 9, 0.5])
    _resources(tmp_path, "Worker-b", [100, 100, 100], [5, 9, 12])
    (result,) = _judge(tmp_path, [], Check(kind="no_engine_restart", service="Worker"))
    assert result.status == "failed" and "Worker-a restarted" in result.message
    assert "Worker-b" not in result.message


def test_metric_check_without_a_name_names_the_field(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "apiVersion: ftctl/v1\nkind: Scenario\nmetadata: {name: demo}\n"
        "deployment: {backend: vllm}\nchecks:\n  - {kind: metric, service: Frontend, max: 1}\n"
        "  - {kind: queue_drains_after_fault, max: 10s}\n"
    )
    result = run_cli("validate", str(path), expect=2)
    assert "s.yaml:6:5: checks[0].name: missing required field" in result.stderr
    assert "checks[1]" not in result.stderr  # the shortcut defaults to the frontend service
