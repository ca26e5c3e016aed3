"""Rank targeting: rank N among a pod's matching processes, in ascending PID order.

The pod is a real supervised process tree: a stand-in interpreter that starts two children
with its own command line (as a multi-process engine's ranks share one), then sleeps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from ftctl.errors import PlatformError
from ftctl.platforms.base import select_ranks
from ftctl.platforms.local import LocalPlatform, proc_state
from ftctl.scenario.model import Deployment, Service, TestCase
from tests.builders import build_test

ENGINE = """#!{python}
import os, subprocess, sys, time
if not os.environ.get("RANK_CHILD"):
    for _ in range(2):
        subprocess.Popen([sys.executable, *sys.argv], env={{**os.environ, "RANK_CHILD": "1"}})
time.sleep(600)
"""


def _engine(tmp_path: Path) -> str:
    script = tmp_path / "python-engine"
    script.write_text(ENGINE.format(python=sys.executable))
    script.chmod(0o755)
    return str(script)


def _test() -> TestCase:
    return build_test(
        "ranks",
        source="inline",
        deployment=Deployment(model="m", services=(Service("VllmDecodeWorker", "decode"),)),
    )


@pytest.fixture
def engine_pod(tmp_path):
    platform = LocalPlatform(python=_engine(tmp_path))
    platform.deploy(_test(), tmp_path / "run")
    deadline = time.monotonic() + 30
    pod = platform.pods("VllmDecodeWorker")[0]
    replica = platform.supervisor.get(pod.name)
    while len([p for p, c in replica.processes() if "dynamo.vllm" in c]) < 3:
        assert time.monotonic() < deadline, replica.processes()
        time.sleep(0.05)
    yield platform, pod, sorted(p for p, c in replica.processes() if "dynamo.vllm" in c)
    platform.teardown()
    assert platform.leftover_processes() == []


def test_rank_one_stalls_only_the_second_match_by_pid(engine_pod):
    platform, pod, pids = engine_pod
    record = platform.stall_process(pod, "dynamo.vllm", (1,))
    assert record.pids == [pids[1]]
    assert [proc_state(p) == "T" for p in pids] == [False, True, False]
    platform.resume_process(record)
    assert platform.verify_fault(record, 10).verified, record.evidence


def test_ranks_kill_only_those_subprocesses_and_the_pod_does_not_restart(engine_pod):
    platform, pod, pids = engine_pod
    record = platform.terminate_process(pod, "dynamo.vllm", "SIGKILL", (2,))
    assert record.pids == [pids[2]]
    record = platform.verify_fault(record, 10)
    assert record.verified and record.skipped_reason  # a subprocess: no restart, as upstream
    assert proc_state(pids[0]) not in (None, "Z") and proc_state(pids[1]) not in (None, "Z")


def test_no_rank_hits_every_match(engine_pod):
    platform, pod, pids = engine_pod
    record = platform.stall_process(pod, "dynamo.vllm")
    assert record.pids == pids
    platform.resume_process(record)


def test_a_rank_beyond_the_matches_names_them():
    with pytest.raises(PlatformError) as info:
        select_ranks([(30, "a"), (12, "b")], (2,), "pod W")
    assert "rank 2 out of range: 2 matching process(es) (rank 0: pid 12, rank 1: pid 30)" in str(
        info.value
    )


def test_ranks_follow_ascending_pids_whatever_order_ps_lists():
    assert select_ranks([(30, "a"), (12, "b"), (20, "c")], (0, 2), "pod") == [
        (12, "b"),
        (30, "a"),
    ]
