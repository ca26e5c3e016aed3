"""Cluster loads through the fake API server: an Indexed Job whose pods run ftctl's own client
worker as real local processes against the real local Dynamo frontend (issue 15)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ftctl.scenario.model import LoadSpec, TokenDist
from tests.kube.conftest import make_test

NS = "fault-tolerance-test"


def cluster_spec(**kw) -> LoadSpec:
    base = dict(
        client="legacy",
        placement="cluster",
        pods=4,
        clients=4,
        requests_per_client=6,
        request_rate=4.0,
        input_tokens=TokenDist(16),
        output_tokens=TokenDist(8),
        retries=0,
        timeout=10.0,
        start_timeout=60.0,
    )
    base.update(kw)
    return LoadSpec(**base)


def _with_load(name: str, spec: LoadSpec):
    return dataclasses.replace(make_test(name), loads=(spec,))


class Events:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def write(self, kind: str, t_ns: int | None = None, **fields) -> dict:
        record = {"kind": kind, "t_ns": t_ns, **fields}
        self.items.append(record)
        return record

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.items if e["kind"] == kind]


def _records(folder: Path) -> dict[int, list[dict]]:
    out = {}
    for path in sorted(folder.glob("client_*.log.txt")):
        client = int(path.name.split("_")[1].split(".")[0])
        out[client] = [json.loads(line) for line in path.read_text().splitlines()]
    return out


@pytest.fixture
def deployed(platform_factory, fake, tmp_path):
    def deploy(name: str, spec: LoadSpec):
        platform = platform_factory()
        test = _with_load(name, spec)
        platform.deploy(test, tmp_path)
        platform.wait_ready(90)
        return platform, test

    return deploy


def test_an_indexed_job_of_4_pods_sends_from_one_start_and_its_records_come_home(
    deployed, fake, tmp_path
):
    spec = cluster_spec()
    platform, test = deployed("cl-4pods", spec)
    events = Events()
    out = tmp_path / "out"
    load = platform.cluster_load(test, spec, out, events.write, out)
    try:
        load.start()
        assert load.wait_sending()
        assert load.wait(120)
    finally:
        load.kill()
    records = _records(out)
    assert sorted(records) == [0, 1, 2, 3]
    for client, items in records.items():
        assert len(items) == 6 and all(r["ok"] for r in items), (client, items[:1])
        assert all(r["client"] == client for r in items)
    pods = {r["load_pod"] for items in records.values() for r in items}
    assert len(pods) == 4  # one client per pod, each from its own pod
    (started,) = events.of("load_pods")
    assert started["t_ns"] == load.start_ns
    # Every request started at or after the one released start time (host clock).
    assert min(r["start_ns"] for items in records.values() for r in items) >= load.start_ns
    (clocks,) = events.of("load_clocks")
    assert all(p["end_clock_offset_ns"] is not None for p in clocks["pods"])
    assert not events.of("load_pod_failed")
    # The Job and its pods are gone (deleted with propagation, not orphaned).
    assert fake.jobs.job_names(NS) == [] and fake.jobs.pod_names(NS) == []
    assert fake.jobs.deleted and fake.jobs.deleted[-1][2] == "Background"
