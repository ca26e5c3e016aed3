"""Supervisor: restarts, previous logs, replacement pods and clean shutdown, with real children."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from ftctl.platforms.supervisor import ProcessSpec, Supervisor

# A child that says hello with its pid, starts a grandchild, and sleeps.
CHILD = """
import os, subprocess, sys, time
print("hello", os.getpid(), flush=True)
if len(sys.argv) > 1 and sys.argv[1] == "fork":
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
time.sleep(600)
"""

# A child that shuts down gracefully on SIGTERM.
GRACEFUL = """
import signal, sys, time
def bye(*_):
    print("bye", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("up", flush=True)
time.sleep(600)
"""

STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("up", flush=True)
time.sleep(600)
"""


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def marked_pids(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        if f"FTCTL_TEST_MARKER={marker}".encode() in environ.split(b"\0"):
            if "State:\tZ" not in status:
                found.append(int(entry))
    return found


@pytest.fixture
def marker() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def sup(tmp_path: Path):
    s = Supervisor(tmp_path / "logs", restart_delay=0.1)
    yield s
    s.stop_all(grace=1.0)


def spec(code: str, marker: str, *args: str) -> ProcessSpec:
    env = dict(os.environ, FTCTL_TEST_MARKER=marker)
    return ProcessSpec(argv=[sys.executable, "-c", code, *args], env=env)


def test_replica_name_is_service_dash_five_lowercase_alnum(sup, marker):
    r = sup.start_replica("VllmDecodeWorker", "decode", spec(CHILD, marker))
    assert re.fullmatch(r"VllmDecodeWorker-[a-z0-9]{5}", r.name)
    assert r.log_path == sup.log_dir / "VllmDecodeWorker" / f"{r.name}.log"


def test_killed_main_process_is_restarted_with_previous_log_kept(sup, marker):
    r = sup.start_replica("Worker", "decode", spec(CHILD, marker))
    first_pid = r.pid
    wait_until(lambda: f"hello {first_pid}" in r.log_path.read_text())
    os.kill(first_pid, signal.SIGKILL)
    wait_until(lambda: r.restart_count == 1 and r.running)
    assert r.pid != first_pid
    assert r.last_exit_code == 137
    assert r.last_signal == signal.SIGKILL
    assert r.last_terminated_ns is not None and r.last_terminated_ns <= r.started_ns
    assert f"hello {first_pid}" in r.previous_log_path.read_text()
    wait_until(lambda: f"hello {r.pid}" in r.log_path.read_text())
    assert f"hello {first_pid}" not in r.log_path.read_text()
    states = [h["state"] for h in r.history]
    assert states == ["started", "exited", "restarting", "started"]
    assert sup.replicas("Worker") == [r]


def test_restart_clears_readiness_until_marked_again(sup, marker):
    r = sup.start_replica("Worker", "decode", spec(CHILD, marker))
    r.mark_ready()
    assert r.ready and r.ready_ns is not None
    os.kill(r.pid, signal.SIGKILL)
    wait_until(lambda: r.restart_count == 1 and r.running)
    assert not r.ready and r.ready_ns is None


def test_processes_lists_main_and_descendants_with_cmdlines(sup, marker):
    r = sup.start_replica("Worker", "decode", spec(CHILD, marker, "fork"))
    wait_until(lambda: len(r.processes()) == 2)
    procs = dict(r.processes())
    assert r.pid in procs
    assert "fork" in procs[r.pid]
    (child_cmd,) = [c for p, c in procs.items() if p != r.pid]
    assert "time.sleep(600)" in child_cmd


def test_killing_main_process_takes_its_descendants_down(sup, marker):
    r = sup.start_replica("Worker", "decode", spec(CHILD, marker, "fork"))
    wait_until(lambda: len(r.processes()) == 2)
    old = {p for p, _ in r.processes()}
    os.kill(r.pid, signal.SIGKILL)
    wait_until(lambda: r.restart_count == 1 and len(r.processes()) == 2)
    assert not old & set(marked_pids(marker))


def test_deleted_replica_is_replaced_under_a_new_name(sup, marker):
    old = sup.start_replica("Frontend", "frontend", spec(CHILD, marker), index=1)
    old_pid = old.pid
    new = sup.delete_replica(old.name, force=True)
    assert new.name != old.name and new.name.startswith("Frontend-")
    assert (new.service, new.role, new.index) == ("Frontend", "frontend", 1)
    assert old.deleted and not old.running
    assert old_pid not in marked_pids(marker)
    assert sup.replicas() == [new]
    assert sup.get(old.name) is old
    assert old.history[-1]["state"] == "deleted"
    assert new.restart_count == 0 and new.running


def test_graceful_delete_lets_the_process_shut_down(sup, marker):
    r = sup.start_replica("Worker", "decode", spec(GRACEFUL, marker))
    wait_until(lambda: "up" in r.log_path.read_text())
    sup.delete_replica(r.name, force=False, grace=10.0)
    assert "bye" in r.log_path.read_text()
    assert r.last_exit_code == 0


def test_process_ignoring_sigterm_is_killed_after_grace(sup, marker):
    r = sup.start_replica("Worker", "decode", spec(STUBBORN, marker))
    wait_until(lambda: "up" in r.log_path.read_text())
    sup.delete_replica(r.name, force=False, grace=0.3)
    assert r.last_exit_code == 137
    assert r.pid not in marked_pids(marker)


def test_restart_replica_replaces_it_gracefully(sup, marker):
    r = sup.start_replica("Worker", "decode", spec(GRACEFUL, marker))
    wait_until(lambda: "up" in r.log_path.read_text())
    new = sup.restart_replica(r.name, grace=10.0)
    assert "bye" in r.log_path.read_text()
    assert sup.replicas("Worker") == [new]


def test_stop_all_leaves_no_process_and_is_idempotent(tmp_path, marker):
    s = Supervisor(tmp_path / "logs", restart_delay=0.05)
    replicas = [s.start_replica("W", "decode", spec(CHILD, marker, "fork"), i) for i in range(3)]
    replicas.append(s.start_replica("G", "decode", spec(STUBBORN, marker)))
    wait_until(lambda: len(marked_pids(marker)) == 7)
    s.stop_all(grace=0.5)
    assert marked_pids(marker) == []
    assert all(not r.running for r in replicas)
    s.stop_all(grace=0.5)
    with pytest.raises(RuntimeError):
        s.start_replica("W", "decode", spec(CHILD, marker))


def test_no_restart_races_a_shutdown_during_restart_delay(tmp_path, marker):
    s = Supervisor(tmp_path / "logs", restart_delay=0.5)
    r = s.start_replica("W", "decode", spec(CHILD, marker))
    os.kill(r.pid, signal.SIGKILL)
    wait_until(lambda: not r.running)
    s.stop_all(grace=0.5)
    time.sleep(0.7)
    assert r.restart_count == 0
    assert marked_pids(marker) == []


def test_a_command_that_cannot_start_raises_and_leaves_no_replica(sup):
    bad = ProcessSpec(argv=["/nonexistent/ftctl-no-such-binary"], env={})
    with pytest.raises(FileNotFoundError):
        sup.start_replica("W", "decode", bad)
    assert sup.replicas() == []
