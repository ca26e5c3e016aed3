"""``ftctl load`` end to end in-process, and the Prometheus exposition."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime

import pytest

from ftctl.clients.legacy import LATENCY_BUCKETS, Stats
from ftctl.clients.prom import MetricsServer
from ftctl.commands.load import _Progress, build_spec, claim_output_dir, new_run_dir
from ftctl.errors import UsageError
from tests.conftest import REPO, run_cli
from tests.fake_llm import FakeLLM


@pytest.fixture
def server():
    with FakeLLM() as srv:
        yield srv


def test_load_prints_the_table_and_exits_0_when_all_succeed(server, tmp_path):
    out = tmp_path / "run"
    res = run_cli(
        "load", server.url, "--clients", "2", "--requests-per-client", "5", "--concurrency", "2",
        "--output-tokens", "4", "--output-dir", str(out), "--format", "json",
    )  # fmt: skip
    data = json.loads(res.stdout)
    assert (data["requests"], data["ok"], data["failed"]) == (10, 10, 0)
    assert data["mode"] == "concurrent (c=4)"
    assert len(server.served) == 10
    assert "100%" in res.stderr and "10/10" in res.stderr
    saved = json.loads((out / "load.json").read_text())
    assert saved["model"] == "fake-model" and saved["summary"]["ok"] == 10


def test_load_asks_the_server_for_the_model_when_none_is_given(server, tmp_path):
    server.behavior.model = "served-model"
    run_cli("load", server.url, "--no-streaming", "--requests-per-client", "1",
            "--output-dir", str(tmp_path))  # fmt: skip
    rec = json.loads((tmp_path / "client_0.log.txt").read_text())
    assert rec["results"][0]["result"]["model"] == "served-model"


def test_load_exits_1_and_names_the_first_error_when_a_request_fails(server, tmp_path):
    server.behavior.mode = "http_503"
    server.behavior.fail_every = 3
    res = run_cli("load", server.url, "--model", "m", "--requests-per-client", "6",
                  "--output-dir", str(tmp_path), "--format", "markdown", expect=1)  # fmt: skip
    assert "| Errors" in res.stdout and "2 (first: http_5xx: HTTP 503" in res.stdout


def test_open_loop_without_rate_is_a_usage_error(server, tmp_path):
    res = run_cli("load", server.url, "--arrival", "poisson", expect=2)
    assert "--rate" in res.stderr


def test_load_without_url_or_compare_is_a_usage_error():
    res = run_cli("load", expect=2)
    assert "URL" in res.stderr


def test_unreachable_server_without_model_is_an_infrastructure_error(tmp_path):
    res = run_cli("load", "http://127.0.0.1:9", "--output-dir", str(tmp_path), expect=3)
    assert "--model" in res.stderr


def test_compare_puts_a_new_run_beside_a_saved_one(server, tmp_path):
    run_cli("load", server.url, "--model", "m", "--requests-per-client", "4",
            "--output-dir", str(tmp_path / "a"))  # fmt: skip
    res = run_cli("load", server.url, "--model", "m", "--requests-per-client", "4",
                  "--concurrency", "2", "--output-dir", str(tmp_path / "b"),
                  "--compare", str(tmp_path / "a"))  # fmt: skip
    assert "Speedup" in res.stdout and "baseline" in res.stdout
    lines = [line for line in res.stdout.splitlines() if "concurrent (c=2)" in line]
    assert lines and "baseline" in lines[0]  # the new run is the first, the reference


def _scrape(port: int) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_exposition_counts_outcomes_and_latency_buckets():
    st = Stats()
    st.add(True, "ok", 0.004)
    st.add(True, "ok", 0.3)
    st.add(False, "http_5xx", 70.0)
    base = (("load", "default"), ("run", "r1"), ("test", ""))
    with MetricsServer(0, lambda: st, run="r1") as srv:
        got = _scrape(srv.port)

    def key(name, **extra):
        return (name, tuple(sorted(base + tuple(extra.items()))))

    assert got[key("client_requests_total", status="ok")] == 2
    assert got[key("client_requests_total", status="http_5xx")] == 1
    assert got[key("client_latency_seconds_bucket", le="0.005")] == 1
    assert got[key("client_latency_seconds_bucket", le="0.5")] == 2
    assert got[key("client_latency_seconds_bucket", le=f"{LATENCY_BUCKETS[-1]:g}")] == 2
    assert got[key("client_latency_seconds_bucket", le="+Inf")] == 3
    assert got[key("client_latency_seconds_count")] == 3
    assert got[key("client_latency_seconds_sum")] == pytest.approx(70.304)


def test_metrics_server_serves_the_live_counters_on_loopback():
    st = Stats()
    st.add(True, "ok", 0.01)
    with MetricsServer(0, lambda: st) as srv:
        ok = {k: v for k, v in _scrape(srv.port).items() if k[0] == "client_requests_total"}
        assert list(ok.values()) == [1]
        st.add(False, "timeout", 1.0)
        statuses = {
            dict(k[1])["status"]: v
            for k, v in _scrape(srv.port).items()
            if k[0] == "client_requests_total"
        }
        assert statuses == {"ok": 1, "timeout": 1}


def test_duration_run_reports_progress_to_100_percent(server, tmp_path):
    res = run_cli("load", server.url, "--model", "m", "--duration", "0.5", "--rate", "20",
                  "--output-dir", str(tmp_path), "--format", "json")  # fmt: skip
    assert "100%" in res.stderr
    assert json.loads(res.stdout)["requests"] >= 3


def _duration_spec(duration: float):
    return build_spec(
        clients=1, requests_per_client=None, duration=duration, concurrency=1, rate=None,
        arrival="closed", streaming=False, input_tokens=1, output_tokens=1, retries=0,
        retry_delay=0.0, timeout=1.0, endpoint="chat", seed=0,
    )  # fmt: skip


def test_finished_duration_run_closes_with_100_percent_however_late_the_clock_started():
    # The duration clock starts when the first worker is seen sending; at the end it may
    # show far less than the whole duration. Completion alone must print the 100 % line.
    lines: list[str] = []
    tracker = _Progress(_duration_spec(3600.0), lines.append)
    tracker.started()
    tracker.update(5, 1, 0, 2.0, 0.6)
    assert not any("100%" in line for line in lines)
    tracker.finish(5, 1, 2.0, 0.6)
    assert lines[-1].startswith("ftctl load: 100% 6 requests, 1 errors")


def test_finish_does_not_repeat_a_100_percent_line_already_printed():
    lines: list[str] = []
    tracker = _Progress(_duration_spec(1e-9), lines.append)
    tracker.started()
    tracker.update(3, 0, 0, 1.0, 0.3)
    tracker.finish(3, 0, 1.0, 0.3)
    assert [line for line in lines if "100%" in line] == [lines[-1]] and len(lines) == 1


def test_metrics_port_is_announced_on_loopback(server, tmp_path):
    res = run_cli("load", server.url, "--model", "m", "--requests-per-client", "1",
                  "--metrics-port", "0", "--output-dir", str(tmp_path))  # fmt: skip
    assert "metrics on http://127.0.0.1:" in res.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_load_exits_3_when_no_request_could_connect(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    res = run_cli("load", url, "--model", "m", "--requests-per-client", "2",
                  "--output-dir", str(tmp_path / "run"), expect=3)  # fmt: skip
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ftctl: error: no request could be sent: 2 of 2 requests failed")
    assert url in last and str(tmp_path / "run") in last
    assert json.loads((tmp_path / "run" / "load.json").read_text())["summary"]["failed"] == 2


def _worker_pids() -> list[int]:
    """Live legacy-client worker processes that are children of this test process."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()  # noqa: SIM115
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read()  # noqa: SIM115
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"ftctl.clients.legacy_worker" in cmdline:
            pids.append(int(entry))
    return pids


def test_load_exits_3_when_every_worker_process_died(server, tmp_path):
    server.behavior.mode = "hang"  # the workers stay busy until they are killed
    result = {}

    def run() -> None:
        result["res"] = run_cli(
            "load", server.url, "--model", "m", "--clients", "2", "--processes", "2",
            "--requests-per-client", "1", "--timeout", "120", "--output-dir", str(tmp_path),
            expect=None,
        )  # fmt: skip

    thread = threading.Thread(target=run)
    thread.start()
    killed: set[int] = set()
    deadline = time.monotonic() + 60  # a guard against a hang, not a measurement
    while len(killed) < 2 and time.monotonic() < deadline:
        for pid in set(_worker_pids()) - killed:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.05)
    thread.join(60)
    assert len(killed) == 2 and not thread.is_alive()
    res = result["res"]
    assert res.exit_code == 3, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "2 of 2 load worker processes died" in last and "status -9" in last


def test_two_runs_started_in_the_same_second_get_distinct_folders(tmp_path):
    now = datetime(2026, 1, 2, 3, 4, 5)
    first = new_run_dir(tmp_path / "ftctl-load", now)
    second = new_run_dir(tmp_path / "ftctl-load", now)
    assert first != second and first.is_dir() and second.is_dir()
    assert (first.name, second.name) == ("20260102-030405", "20260102-030405-2")


def test_an_output_dir_claimed_by_one_run_is_refused_to_the_next(tmp_path):
    claim_output_dir(tmp_path / "run")
    with pytest.raises(UsageError, match=r"--output-dir .*run: already holds"):
        claim_output_dir(tmp_path / "run")


def _load_with_fd_limit(soft: int, hard: int, *args: str) -> subprocess.CompletedProcess:
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run(
        [sys.executable, "-m", "ftctl", "load", *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=limit,
    )  # fmt: skip


def test_clients_beyond_the_open_file_limit_are_refused_up_front_with_exit_2(tmp_path):
    res = _load_with_fd_limit(
        256, 256, f"http://127.0.0.1:{_closed_port()}", "--model", "m", "--clients", "1000",
        "--processes", "1", "--output-dir", str(tmp_path / "run"),
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "--clients 1000" in last and "limit of 256" in last and "--processes 11 or more" in last
    assert not (tmp_path / "run").exists()


def test_the_open_file_soft_limit_is_raised_to_the_hard_one_when_that_suffices(server, tmp_path):
    # 100 clients in one worker hold 100 log files and 100 sockets: far above a soft limit
    # of 64, within the hard one of 1024.
    res = _load_with_fd_limit(
        64, 1024, server.url, "--model", "m", "--clients", "100", "--processes", "1",
        "--requests-per-client", "1", "--output-tokens", "1", "--no-streaming",
        "--output-dir", str(tmp_path / "run"), "--format", "json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["ok"] == 100
