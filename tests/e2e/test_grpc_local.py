"""KServe v2 gRPC end to end: the real Dynamo frontend's KServe server (``--kserve-grpc-server``)
and real mocker workers on the local platform, driven by ftctl's gRPC client.

Every test here talks to the real frontend; the tiny fake gRPC server of tests/unit is only for
answers a real server never gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftctl.platforms.local import LocalPlatform
from ftctl.scenario import load_tests

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GRPC_SCENARIO = REPO / "scenario_files" / "local" / "grpc-worker-kill.yaml"
FTCTL = [sys.executable, "-m", "ftctl"]


def _run(scenario: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*FTCTL, "run", str(scenario), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _records(test_dir: Path) -> list[dict]:
    out = []
    for path in sorted(test_dir.glob("client_*.log.txt")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def _http_twin(tmp_path: Path) -> Path:
    """The shipped gRPC scenario with only the protocol changed: an HTTP frontend and load."""
    doc = yaml.safe_load(GRPC_SCENARIO.read_text())
    del doc["deployment"]["local"]["kserve_grpc"]
    doc["load"]["protocol"] = "http"
    doc["metadata"]["name"] = "local-http"
    path = tmp_path / "http-worker-kill.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_worker_sigkill_under_grpc_load_fails_and_recovers_like_the_http_run(tmp_path):
    results = {}
    for protocol, scenario in (("grpc", GRPC_SCENARIO), ("http", _http_twin(tmp_path))):
        out = tmp_path / protocol
        proc = _run(scenario, out)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (report,) = json.loads((out / "report.json").read_text())["tests"]
        fault = report["faults"][0]
        assert fault["verified"] and fault["signal"] == "SIGKILL"
        assert fault["evidence"]["last_exit_code"] == 137
        overall = report["result"]["overall"]
        assert overall["failed"] > 0, f"{protocol}: a SIGKILL with migration off fails requests"
        assert overall["recovery"]["recovery_time_s"] is not None, f"{protocol}: not recovered"
        assert overall["phases"]["after"]["ok"] > 0
        results[protocol] = (report, _records(Path(report["result"]["path"])))

    _report, grpc_records = results["grpc"]
    urls = {a["url"] for r in grpc_records for a in r["results"]}
    assert urls and all(u.startswith("grpc://127.0.0.1:") for u in urls)
    ok = [r for r in grpc_records if r["ok"]]
    assert ok and all(r["output_tokens"] > 0 and r["ttft"] is not None for r in ok)
    errors = [r["error"] for r in grpc_records if not r["ok"]]
    assert errors and all(" grpc " in f" {e}" for e in errors), errors
    _report, http_records = results["http"]
    assert all(a["url"].startswith("http://") for r in http_records for a in r["results"])


def _deploy(test, tmp_path: Path) -> LocalPlatform:
    platform = LocalPlatform()
    platform.deploy(test, tmp_path)
    try:
        platform.wait_ready(120)
    except BaseException:
        platform.teardown()
        raise
    return platform


def _load(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [*FTCTL, "load", url, "--protocol", "auto", "--requests-per-client", "4"]
    argv += ["--input-tokens", "8", "--output-tokens", "6", "--output-dir", str(out), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_protocol_auto_picks_http_and_grpc_on_the_ports_of_real_frontends(tmp_path):
    (grpc_test,) = load_tests([GRPC_SCENARIO])
    (http_test,) = load_tests([_http_twin(tmp_path)])
    kserve = _deploy(grpc_test, tmp_path / "kserve")
    try:
        http = _deploy(http_test, tmp_path / "http")
        try:
            (http_fe,) = [r for r in http.supervisor.replicas() if r.role == "frontend"]
            http_url = f"http://127.0.0.1:{http._replica_ports(http_fe)['http']}"
            proc = _load(http_url, tmp_path / "l-http")
            assert proc.returncode == 0, proc.stderr
            assert "protocol http (HTTP: /v1/models lists" in proc.stderr
        finally:
            http.teardown()
        (fe,) = [r for r in kserve.supervisor.replicas() if r.role == "frontend"]
        ports = kserve._replica_ports(fe)
        grpc_url = f"http://127.0.0.1:{ports['grpc']}"
        for mode in ("--streaming", "--no-streaming"):
            out = tmp_path / f"l-grpc{mode}"
            proc = _load(grpc_url, out, "--model", kserve.model, mode)
            assert proc.returncode == 0, proc.stderr + proc.stdout
            assert "protocol grpc (gRPC: ModelMetadata(" in proc.stderr
            recs = _records(out)
            assert len(recs) == 4 and all(r["ok"] for r in recs)
            assert all(a["url"].startswith("grpc://") for r in recs for a in r["results"])
            if mode == "--streaming":
                assert all(r["output_tokens"] > 0 for r in recs)
        # Without --model a KServe server cannot be loaded (no model listing): a usage error.
        proc = _load(grpc_url, tmp_path / "l-nomodel")
        assert proc.returncode == 2 and "pass --model" in proc.stderr
        # The KServe frontend's metrics port lists /v1/models but serves no completions.
        proc = _load(f"http://127.0.0.1:{ports['http']}", tmp_path / "l-metrics")
        assert proc.returncode == 3 and "neither OpenAI HTTP" in proc.stderr, proc.stderr
    finally:
        kserve.teardown()


def test_grpc_load_reaches_the_replacement_of_a_deleted_frontend_pod(tmp_path):
    doc = yaml.safe_load(GRPC_SCENARIO.read_text())
    doc["failures"] = [{"at": "6s", "type": "frontend_pod"}]
    doc["load"]["requests_per_client"] = 45
    scenario = tmp_path / "grpc-frontend-pod.yaml"
    scenario.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "out"
    proc = _run(scenario, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (report,) = json.loads((out / "report.json").read_text())["tests"]
    fault = report["faults"][0]
    assert fault["action"] == "delete_pod" and fault["verified"]
    overall = report["result"]["overall"]
    assert overall["recovery"]["recovery_time_s"] is not None
    # Requests after the fault succeed: the proxy sent the new gRPC connections to the new pod.
    assert overall["phases"]["after"]["ok"] > 0


def test_each_pod_loads_both_frontends_of_a_dp2_kserve_graph_and_prints_two_rows(tmp_path):
    doc = yaml.safe_load(GRPC_SCENARIO.read_text())
    doc["deployment"]["dp"] = 2
    path = tmp_path / "dp2.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    (test,) = load_tests([path])
    platform = _deploy(test, tmp_path / "graph")
    try:
        fronts = [r for r in platform.supervisor.replicas() if r.role == "frontend"]
        urls = [f"http://127.0.0.1:{platform._replica_ports(r)['grpc']}" for r in fronts]
        assert len(urls) == 2
        proc = _load(
            urls[0],
            tmp_path / "each",
            urls[1],
            "--each-pod",
            "--model",
            platform.model,
            "--format",
            "markdown",
        )
    finally:
        platform.teardown()
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| http://")]
    assert [r.split(" ")[1] for r in rows] == urls, proc.stdout
    assert all("(grpc)" in r for r in rows)
