"""Load shapes: the arrival schedule (pure) and the built-in client following it for real."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from ftctl.clients.base import LoadTarget
from ftctl.clients.legacy import LegacyLoad, run_clients
from ftctl.clients.shapes import offsets, rate_at
from ftctl.scenario.model import LoadShape, LoadSpec, TokenDist
from tests.fake_llm import FakeLLM

RAMP = LoadShape("ramp", rate_from=10.0, rate_to=50.0, duration=2.0)


def _due(shape: LoadShape, n: int, arrival="constant", base=None, seed=1) -> list[float]:
    return list(itertools.islice(offsets(shape, base, arrival, seed), n))


def _per_second(times: list[float]) -> list[int]:
    counts = [0] * (int(max(times)) + 1)
    for t in times:
        counts[int(t)] += 1
    return counts


def test_a_ramp_schedules_the_integral_of_its_rate_per_second():
    # ∫₀¹ (10 + 20 t) dt = 20, ∫₁² = 40, then 50 per second
    assert _per_second(_due(RAMP, 110))[:2] == [20, 40]
    assert _per_second(_due(RAMP, 160))[2] == 50


def test_steps_hold_each_rate_for_its_duration_then_the_last_one():
    steps = LoadShape("steps", steps=((5.0, 2.0), (20.0, 1.0)))
    assert _per_second(_due(steps, 50)) == [5, 5, 20, 20]
    assert rate_at(steps, None, 1.5) == 5.0 and rate_at(steps, None, 9.0) == 20.0


def test_a_burst_adds_its_requests_at_once_on_top_of_the_rate():
    burst = LoadShape("burst", burst_requests=7, burst_at=1.05)
    times = _due(burst, 27, base=10.0)
    assert times.count(1.05) == 7
    assert times == sorted(times)
    assert _per_second(times) == [10, 17]


def test_poisson_arrivals_of_a_shape_are_seeded_and_follow_its_rate():
    first = _due(RAMP, 400, arrival="poisson", seed=5)
    assert first == _due(RAMP, 400, arrival="poisson", seed=5)
    assert len(set(b - a for a, b in itertools.pairwise(first))) > 100
    per_second = _per_second(first)
    assert 5 < per_second[0] < 40 and 25 < per_second[1] < 60  # 20 and 40 expected


def _spec(**kw) -> LoadSpec:
    base = dict(
        client="legacy",
        clients=2,
        retries=0,
        timeout=5.0,
        streaming=False,
        input_tokens=TokenDist(5),
        output_tokens=TokenDist(4),
        arrival="constant",
    )
    base.update(kw)
    return LoadSpec(**base)


def _scheduled(out: Path) -> list[int]:
    records = []
    for path in out.glob("client_*.log.txt"):
        records += [json.loads(x) for x in path.read_text().splitlines()]
    return sorted(r["scheduled_ns"] for r in records)


def test_the_client_follows_a_ramp_measured_from_scheduled_times(tmp_path):
    shape = LoadShape("ramp", rate_from=10.0, rate_to=30.0, duration=1.0)
    with FakeLLM() as server:
        asyncio.run(
            run_clients(_spec(requests_per_client=20, shape=shape), [server.url], "m", tmp_path)
        )
    sched = _scheduled(tmp_path)
    assert len(sched) == 40
    offsets_s = [(s - sched[0]) / 1e9 for s in sched]
    # ∫₀¹ (10 + 20 t) dt = 20 arrivals in the first second (the first one at once)
    expected = _due(shape, 40)
    assert offsets_s == pytest.approx([t - expected[0] for t in expected], abs=1e-6)
    assert sum(1 for t in expected if t < 1.0) == 20


def test_worker_processes_split_one_shaped_schedule_without_gaps_or_doubles(tmp_path):
    shape = LoadShape("steps", steps=((20.0, 0.5), (40.0, 0.5)))
    spec = _spec(clients=4, requests_per_client=8, shape=shape)
    with FakeLLM() as server:
        load = LegacyLoad(spec, LoadTarget(server.url, "m"), tmp_path, processes=2)
        load.start()
        assert load.wait(60)
    sched = _scheduled(tmp_path)
    assert len(sched) == 32 and len(set(sched)) == 32
    # One schedule from one origin: together the two processes sent it whole.
    expected = _due(shape, 32)
    got = [(t - sched[0]) / 1e9 for t in sched]
    assert got == pytest.approx(expected, abs=2e-3)


def test_warmup_requests_are_sent_first_kept_apart_and_never_counted(tmp_path):
    from ftctl.results import parse_result_dir

    spec = _spec(arrival="closed", requests_per_client=4, warmup=2, request_rate=None)
    with FakeLLM() as server:
        summary = asyncio.run(run_clients(spec, [server.url], "m", tmp_path))
    for client in (0, 1):
        warm = [
            json.loads(x) for x in (tmp_path / f"warmup_{client}.log.txt").read_text().splitlines()
        ]
        counted = [
            json.loads(x) for x in (tmp_path / f"client_{client}.log.txt").read_text().splitlines()
        ]
        assert [r["request"] for r in warm] == [0, 1] and all(r["warmup"] for r in warm)
        assert [r["request"] for r in counted] == [2, 3, 4, 5]
        assert max(r["end_ns"] for r in warm) <= min(r["start_ns"] for r in counted)
    assert summary.requests == 8
    assert parse_result_dir(tmp_path).overall.requests == 8
