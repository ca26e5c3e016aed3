"""The in-pod worker of a cluster load (``python -m ftctl cluster-worker``) against a real
loopback LLM server: waits on the barrier, sends from the released time, records on stdout."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ftctl import barrier
from ftctl.scenario.model import LoadSpec, TokenDist
from tests.conftest import run_cli
from tests.fake_llm import FakeLLM

REPO = Path(__file__).resolve().parents[2]


def _config(url: str, **kw) -> str:
    spec = LoadSpec(
        client="legacy",
        placement="cluster",
        pods=2,
        clients=4,
        requests_per_client=3,
        input_tokens=TokenDist(8),
        output_tokens=TokenDist(4),
        retries=0,
        **kw,
    )
    return json.dumps(
        {"spec": dataclasses.asdict(spec), "urls": [url], "model": "fake-model", "pods": 2,
         "exit_wait_s": 30}
    )  # fmt: skip


def _lines(proc: subprocess.Popen, until: str) -> list[dict]:
    out = []
    assert proc.stdout is not None
    for raw in proc.stdout:
        msg = json.loads(raw)
        out.append(msg)
        if msg.get("ftctl") == until:
            return out
    raise AssertionError(f"the worker ended before {until!r}: {out}")


def test_the_worker_runs_its_share_from_the_released_time_and_waits_for_exit(tmp_path):
    with FakeLLM() as server:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO),
            barrier.CONFIG_ENV: _config(server.url),
            barrier.DIR_ENV: str(tmp_path),
            barrier.INDEX_ENV: "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "ftctl", "cluster-worker"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            (waiting,) = _lines(proc, "waiting")
            assert waiting["clients"] == [2, 3]  # pod 1 of 2, 4 clients
            start_ns = time.time_ns() + 200_000_000
            release = [sys.executable, "-m", "ftctl.barrier", "release", str(start_ns)]
            assert subprocess.run(release, env=env).returncode == 0  # what ftctl execs
            lines = _lines(proc, "done")
            exit_ = [sys.executable, "-m", "ftctl.barrier", "exit"]
            assert subprocess.run(exit_, env=env).returncode == 0
            assert proc.wait(30) == 0
        finally:
            proc.kill()
    start = next(m for m in lines if m.get("ftctl") == "start")
    assert start["planned_ns"] == start_ns and start["t_ns"] >= start_ns
    records = [m for m in lines if "ftctl" not in m]
    assert sorted(r["client"] for r in records) == [2, 2, 2, 3, 3, 3]
    assert all(r["ok"] and r["start_ns"] >= start_ns for r in records)
    summary = next(m for m in lines if m.get("ftctl") == "summary")
    assert summary["requests"] == 6 and summary["ok"] == 6


def test_the_worker_refuses_a_missing_config_with_exit_2(monkeypatch):
    monkeypatch.delenv(barrier.CONFIG_ENV, raising=False)
    result = run_cli("cluster-worker", expect=2)
    assert "ftctl cluster-worker: bad $FTCTL_LOAD_CONFIG" in result.stderr


def test_the_worker_command_is_hidden_from_help():
    out = run_cli("--help").stdout
    assert "cluster-worker" not in out and "status" in out
