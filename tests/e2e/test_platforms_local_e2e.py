"""LocalPlatform against a real Dynamo graph (dynamo.frontend + dynamo.mocker) on this machine."""

from __future__ import annotations

import http.client
import importlib.util
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ftctl.errors import PlatformError
from ftctl.platforms.local import LocalPlatform
from ftctl.scenario.model import (
    Deployment,
    LocalOptions,
    Service,
    ServiceOverride,
    TestCase,
)
from tests.builders import build_test

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("dynamo") is None, reason="Dynamo is not installed"
    ),
]

MODEL = "tiny-e2e"


def make_test(
    *,
    frontends: int = 1,
    decoders: int = 2,
    prefills: int = 0,
    migration_limit: int = 0,
) -> TestCase:
    services = [
        Service("Frontend", "frontend", frontends),
        Service("VllmDecodeWorker", "decode", decoders),
    ]
    if prefills:
        services.append(Service("VllmPrefillWorker", "prefill", prefills))
    deployment = Deployment(
        backend="vllm",
        topology="disagg" if prefills else "agg",
        model=MODEL,
        services=tuple(services),
        local=LocalOptions(migration_limit=migration_limit, restart_delay=0.5),
    )
    return build_test(
        "e2e-local", source="tests/e2e/test_platforms_local_e2e.py", deployment=deployment
    )


def complete(base_url: str, *, stream: bool = False, max_tokens: int = 8) -> tuple[bool, str]:
    """One chat completion; (success, detail). Success: 200, content, no error event."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "one two three four five"}],
            "max_tokens": max_tokens,
            "stream": stream,
        }
    )
    try:
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if resp.status != 200:
        return False, f"HTTP {resp.status}"
    if not stream:
        content = json.loads(data)["choices"][0]["message"]["content"]
        return bool(content), "ok"
    chunks = [line[6:] for line in data.splitlines() if line.startswith("data: ")]
    if not chunks or chunks[-1] != "[DONE]":
        return False, "stream ended without [DONE]"
    text = ""
    for chunk in chunks[:-1]:
        event = json.loads(chunk)
        if "error" in event:
            return False, f"stream error {event['error']}"
        for choice in event.get("choices", []):
            text += choice.get("delta", {}).get("content") or ""
    return bool(text), "ok"


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """Agg graph: two frontends and two decode workers, shared by the module's tests.

    Migration is on so that requests a frontend still routes to a killed worker (Dynamo lists
    it for 7-12 s) move to the live one: each test then sees a usable graph.
    """
    run_dir = tmp_path_factory.mktemp("local-graph")
    platform = LocalPlatform()
    platform.deploy(make_test(frontends=2, decoders=2, migration_limit=3), run_dir)
    try:
        platform.wait_ready(60)
        yield platform
    finally:
        platform.teardown()
        assert platform.leftover_processes() == []


def test_deployed_graph_has_ready_pods_named_after_their_service(graph):
    pods = graph.pods()
    assert sorted(p.service for p in pods) == ["Frontend"] * 2 + ["VllmDecodeWorker"] * 2
    assert all(re.fullmatch(rf"{p.service}-[a-z0-9]{{5}}", p.name) for p in pods)
    assert all(p.ready and p.phase == "Running" for p in pods)
    assert [p.index for p in graph.pods("VllmDecodeWorker")] == [0, 1]


def test_a_completion_through_the_endpoint_works(graph):
    url = graph.endpoint()
    assert url.startswith("http://127.0.0.1:")
    assert complete(url) == (True, "ok")
    assert complete(url, stream=True) == (True, "ok")


def test_endpoint_spreads_connections_over_both_frontends(graph):
    url = graph.endpoint()
    before = dict(graph._proxy.forwarded)
    for _ in range(6):
        assert complete(url)[0]
    after = graph._proxy.forwarded
    gained = [after.get(addr, 0) - before.get(addr, 0) for addr in after]
    assert sorted(gained) == [3, 3]


def test_unknown_process_pattern_names_pod_and_pattern(graph):
    pod = graph.pods("VllmDecodeWorker")[0]
    with pytest.raises(PlatformError, match=rf"VLLM::EngineCore.*{pod.name}"):
        graph.terminate_process(pod, "VLLM::EngineCore", "SIGKILL")


def test_worker_sigkill_is_verified_by_its_restart(graph):
    pod = graph.pods("VllmDecodeWorker")[1]
    fault = graph.terminate_process(pod, "dynamo.vllm", "SIGKILL")
    assert fault.pids and fault.signal == "SIGKILL"
    fault = graph.verify_fault(fault, timeout=30)
    assert fault.verified
    assert fault.evidence["last_exit_code"] == 137
    assert fault.evidence["restart_count_after"] == fault.evidence["restart_count_before"] + 1
    assert fault.evidence["main_pid_after"] not in fault.pids
    assert fault.t_ns < fault.verified_ns
    assert fault.pod_recovered_ns is not None and fault.pod_recovered_ns > fault.t_ns
    again = next(p for p in graph.pods() if p.name == pod.name)
    assert again.restart_count == pod.restart_count + 1 and again.ready
    graph.wait_for_recovery(30)
    assert complete(graph.endpoint())[0]


def test_deleted_worker_pod_is_replaced_under_a_new_name(graph):
    pod = graph.pods("VllmDecodeWorker")[0]
    fault = graph.verify_fault(graph.delete_pod(pod, force=True), timeout=30)
    assert fault.verified
    names = [p.name for p in graph.pods("VllmDecodeWorker")]
    assert pod.name not in names and fault.evidence["new_pod"] in names
    assert fault.pod_recovered_ns is not None
    graph.wait_for_recovery(30)


def test_frontend_sigkill_the_proxy_reaches_the_restarted_frontend(graph):
    url = graph.endpoint()
    pod = graph.pods("Frontend")[0]
    port = graph._replica_ports(graph.supervisor.get(pod.name))["http"]
    fault = graph.terminate_process(pod, "dynamo.frontend", "SIGKILL")
    # Once the supervisor saw it die, the proxy only uses the other frontend.
    assert wait_until(lambda: not graph.supervisor.get(pod.name).ready, timeout=5)
    for _ in range(3):
        ok, detail = complete(url)
        assert ok, detail
    fault = graph.verify_fault(fault, timeout=30)
    assert fault.verified and fault.pod_recovered_ns is not None
    before = graph._proxy.forwarded.get(("127.0.0.1", port), 0)
    for _ in range(4):
        assert complete(url)[0]
    assert graph._proxy.forwarded.get(("127.0.0.1", port), 0) >= before + 2


def test_log_pattern_and_collected_logs(graph, tmp_path):
    t_ns = graph.wait_for_log_pattern("Frontend", r"Chat completions is ready", timeout=10)
    assert graph.deploy_start_ns - 5e9 < t_ns < time.time_ns()
    graph.collect_logs(tmp_path)
    import yaml

    for pod in graph.pods():
        folder = tmp_path / pod.service
        assert (folder / f"{pod.name}.log").stat().st_size > 0
        assert (folder / f"{pod.name}.metrics.log").read_text().startswith("#")
        status = yaml.safe_load((folder / f"{pod.name}.yaml").read_text())
        assert status["restart_count"] == pod.restart_count
        assert status["history"][0]["state"] == "started"
    restarted = [p for p in graph.pods() if p.restart_count]
    assert restarted and all(
        (tmp_path / p.service / f"{p.name}.previous.log").exists() for p in restarted
    )


def test_rolling_upgrade_replaces_workers_one_by_one(graph):
    old = [p.name for p in graph.pods("VllmDecodeWorker")]
    graph.rolling_upgrade(["VllmDecodeWorker"], timeout=60)
    new = graph.pods("VllmDecodeWorker")
    assert len(new) == 2 and not set(old) & {p.name for p in new}
    assert all(p.ready for p in new)
    assert complete(graph.endpoint())[0]


def _hammer(url: str, stop: threading.Event, results: list[tuple[float, bool, str]]) -> None:
    while not stop.is_set():
        t0 = time.time()
        ok, detail = complete(url, stream=True, max_tokens=40)
        results.append((t0, ok, detail))


@pytest.mark.parametrize("migration_limit", [0, 3])
def test_worker_sigkill_under_load_fails_requests_only_without_migration(tmp_path, migration_limit):
    platform = LocalPlatform()
    platform.deploy(make_test(decoders=2, migration_limit=migration_limit), tmp_path)
    try:
        platform.wait_ready(60)
        url = platform.endpoint()
        stop = threading.Event()
        results: list[tuple[float, bool, str]] = []
        threads = [threading.Thread(target=_hammer, args=(url, stop, results)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        pod = platform.pods("VllmDecodeWorker")[0]
        fault = platform.verify_fault(platform.terminate_process(pod, "dynamo.vllm", "SIGKILL"), 30)
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert fault.verified
        after = [r for r in results if r[0] >= fault.t_ns / 1e9 - 1.0]
        failed = [r for r in results if not r[1]]
        assert len(after) >= 8
        if migration_limit:
            assert failed == []
        else:
            assert failed, "a SIGKILL with migration off must fail in-flight requests"
    finally:
        platform.teardown()
    assert platform.leftover_processes() == []


def test_teardown_is_idempotent_and_closes_everything(tmp_path):
    platform = LocalPlatform()
    platform.deploy(make_test(decoders=1, prefills=1), tmp_path)
    platform.wait_ready(60)
    host, port = urlsplit(platform.endpoint()).hostname, urlsplit(platform.endpoint()).port
    assert platform.leftover_processes()
    platform.teardown()
    platform.teardown()
    assert platform.leftover_processes() == []
    assert platform.pods() == []
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()
    assert sorted(d.name for d in tmp_path.iterdir() if d.is_dir()) == [
        "Frontend",
        "VllmDecodeWorker",
        "VllmPrefillWorker",
    ]
    assert list(Path(tmp_path, "Frontend").glob("*.log"))
    # The same platform object deploys again after a teardown (``--repeat``).
    platform.deploy(make_test(decoders=1), tmp_path / "again")
    try:
        platform.wait_ready(60)
        assert complete(platform.endpoint())[0]
    finally:
        platform.teardown()
    assert platform.leftover_processes() == []


def test_a_worker_in_a_crash_loop_fails_wait_ready_with_its_log(tmp_path):
    test = make_test(decoders=1)
    bad = ServiceOverride(args=("--no-such-mocker-flag",))
    test = replace(
        test, deployment=replace(test.deployment, overrides=(("VllmDecodeWorker", bad),))
    )
    platform = LocalPlatform()
    platform.deploy(test, tmp_path)
    try:
        with pytest.raises(PlatformError, match=r"(?s)crash loop.*no-such-mocker-flag"):
            platform.wait_ready(60)
    finally:
        platform.teardown()
    assert platform.leftover_processes() == []


def test_a_python_that_does_not_exist_is_a_platform_error(tmp_path):
    platform = LocalPlatform(python=str(tmp_path / "no-python"))
    with pytest.raises(PlatformError, match="cannot start"):
        platform.deploy(make_test(decoders=1), tmp_path)
    platform.teardown()


OWNER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.e2e.test_platforms_local_e2e import make_test
from ftctl.platforms.local import LocalPlatform
p = LocalPlatform()
p.deploy(make_test(decoders=1), Path(sys.argv[2]))
p.wait_ready(60)
print(p.run_id, flush=True)
time.sleep(600)
"""


def test_graph_processes_die_with_a_sigkilled_owner(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(repo), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = owner.stdout.readline().strip()
        assert run_id
        probe = LocalPlatform()
        probe.run_id = run_id
        assert probe.leftover_processes()
    finally:
        owner.kill()
        owner.wait()
    # No atexit ran: the kernel's parent-death signal (set by the launcher) ends them.
    assert wait_until(lambda: probe.leftover_processes() == [], timeout=10)
    # What a SIGKILLed owner cannot clean: its temp state dir (`ftctl cleanup` territory).
    for leftover in Path(tempfile.gettempdir()).glob(f"ftctl-local-{run_id}-*"):
        shutil.rmtree(leftover)
