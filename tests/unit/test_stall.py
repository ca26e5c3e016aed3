"""stall_process on real processes: SIGSTOP seen as state T in /proc, SIGCONT, never left frozen.

The "pods" are real supervised processes of the local platform started from a stand-in
interpreter (a Python script that sleeps), so the signals and /proc states are the kernel's.
The load runs against a real loopback FakeLLM server.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from ftctl.errors import Interrupted
from ftctl.platforms.base import FaultRecord, judge_stall
from ftctl.platforms.local import LocalPlatform, proc_state
from ftctl.runner import RunOptions, run_test
from ftctl.scenario.model import (
    Check,
    Deployment,
    Event,
    Service,
    TestCase,
)
from tests.builders import build_test, small_load
from tests.fake_llm import FakeLLM


def _stand_in_python(tmp_path: Path) -> str:
    """An executable that takes the launcher's arguments and sleeps (its cmdline keeps them)."""
    script = tmp_path / "python-stand-in"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(600)\n")
    script.chmod(0o755)
    return str(script)


def _test_case(events: tuple[Event, ...], services=(Service("VllmDecodeWorker", "decode"),)):
    return build_test(
        "stall-decode_worker_stall",
        scenario="stall",
        source="inline",
        deployment=Deployment(model="fake-model", services=services),
        loads=(small_load(requests_per_client=400),),
        events=events,
        checks=(Check(kind="fault_verified"),),
        recovery_window=0.5,
    )


@pytest.fixture
def local(tmp_path):
    made: list[LocalPlatform] = []

    def deploy(test: TestCase) -> LocalPlatform:
        platform = LocalPlatform(python=_stand_in_python(tmp_path))
        platform.deploy(test, tmp_path / f"run{len(made)}")
        made.append(platform)
        return platform

    yield deploy
    for platform in made:
        platform.teardown()
        assert platform.leftover_processes() == []


def test_a_stalled_process_is_seen_stopped_in_proc_then_runs_again_without_restart(local):
    platform = local(_test_case(()))
    pod = platform.pods("VllmDecodeWorker")[0]
    record = platform.stall_process(pod, "dynamo.vllm")
    assert record.pids, record.evidence
    assert all(proc_state(pid) == "T" for pid in record.pids)
    assert set(record.evidence["states_after_stop"].values()) == {"T"}
    platform.resume_process(record)
    assert record.resumed_ns is not None and record.resumed_ns >= record.t_ns
    assert all(proc_state(pid) not in ("T", None) for pid in record.pids)
    record = platform.verify_fault(record, 10)
    assert record.verified, record.evidence
    assert record.evidence["restart_expected"] is False
    assert platform.pods("VllmDecodeWorker")[0].restart_count == 0


def test_teardown_continues_what_was_stopped_before_ending_it(local, tmp_path):
    platform = local(_test_case(()))
    pod = platform.pods("VllmDecodeWorker")[0]
    record = platform.stall_process(pod, "dynamo.vllm")
    seen: dict[int, str | None] = {}
    # Look at the process at the moment teardown begins to end it (SIGTERM to the group).
    real_killpg = os.killpg

    def spy(pgid: int, sig: int) -> None:
        if sig == signal.SIGTERM:
            seen.update({pid: proc_state(pid) for pid in record.pids})
        real_killpg(pgid, sig)

    os.killpg = spy
    try:
        platform.teardown()
    finally:
        os.killpg = real_killpg
    assert seen and "T" not in seen.values(), seen


def _record(**evidence) -> FaultRecord:
    return FaultRecord("stall_process", "W", "W-abcde", 1, pids=[42], evidence=evidence)


def test_a_stall_whose_process_was_never_seen_stopped_is_not_verified():
    record = _record(states_after_stop={"42": "S"}, states_after_resume={"42": "S"})
    record.resumed_ns = 2
    assert not judge_stall(record).verified
    assert "not seen stopped" in record.evidence["error"]


def test_a_stall_that_restarted_the_container_is_not_verified():
    record = _record(
        states_after_stop={"42": "T"},
        states_after_resume={"42": "S"},
        restart_count_before=0,
        restart_count_after=1,
    )
    record.resumed_ns = 2
    assert not judge_stall(record).verified
    assert "restarted" in record.evidence["error"]


def test_a_stall_still_stopped_after_sigcont_is_not_verified():
    record = _record(states_after_stop={"42": "T"}, states_after_resume={"42": "T"})
    record.resumed_ns = 2
    assert not judge_stall(record).verified


class _StallPlatform:
    """The local platform's real stall on stand-in pods, with a FakeLLM as the endpoint.

    Its teardown records the state of every stalled pid before the local teardown (which
    would continue them itself), so the runner's own resume is what the test sees.
    """

    name = "local"
    tokenizer_path = None

    def __init__(self, tmp_path: Path, on_stop=None) -> None:
        self.local = LocalPlatform(python=_stand_in_python(tmp_path))
        self.server: FakeLLM | None = None
        self.on_stop = on_stop
        self.stalled: list[int] = []
        self.states_at_teardown: dict[int, str | None] = {}

    def deploy(self, test, run_dir):
        self.server = FakeLLM().start()
        self.local.deploy(test, run_dir)

    def wait_ready(self, timeout):
        pass

    def endpoint(self):
        return self.server.url

    def endpoint_failures(self):
        return []

    def endpoint_problem(self):
        return None

    def pods(self, service=None):
        return self.local.pods(service)

    def stall_process(self, pod, process, ranks=None):
        record = self.local.stall_process(pod, process, ranks)
        self.stalled += record.pids
        if self.on_stop is not None:
            self.on_stop()
        return record

    def resume_process(self, fault):
        return self.local.resume_process(fault)

    def verify_fault(self, fault, timeout):
        return self.local.verify_fault(fault, timeout)

    def scrape_targets(self):
        return []

    def collect_logs(self, dest):
        pass

    def teardown(self):
        self.states_at_teardown.update({pid: proc_state(pid) for pid in self.stalled})
        self.local.teardown()
        if self.server:
            self.server.stop()


def _stall_events(duration: float) -> tuple[Event, ...]:
    return (
        Event(kind="start_load", load="default"),
        Event(kind="wait", duration=0.3),
        Event(
            kind="stall_process",
            services=("VllmDecodeWorker",),
            process="dynamo.vllm",
            signal="SIGSTOP",
            duration=duration,
            pods="all",
            failure="decode_worker_stall",
            at=0.3,
        ),
        Event(kind="stop_load", load="default"),
        Event(kind="wait_for_load_completion", load="default", timeout=30),
    )


def _events(result_dir: Path) -> list[dict]:
    import json

    return [json.loads(x) for x in (result_dir / "events.jsonl").read_text().splitlines()]


def test_a_stall_event_resumes_after_its_duration_and_records_both_times(tmp_path):
    platform = _StallPlatform(tmp_path)
    test = _test_case(_stall_events(0.5))
    options = RunOptions(output_dir=tmp_path, verify_timeout=10)
    outcome = run_test(
        test, options, result_dir=tmp_path / test.name, platform_factory=lambda n: platform
    )
    events = _events(outcome.result_dir)
    injected = next(e for e in events if e["kind"] == "fault_injected")
    resumed = next(e for e in events if e["kind"] == "fault_resumed")
    verified = next(e for e in events if e["kind"] == "fault_verified")
    assert injected["action"] == "stall_process" and injected["signal"] == "SIGSTOP"
    assert resumed["fault_t_ns"] == injected["t_ns"]
    assert resumed["t_ns"] - injected["t_ns"] >= 0.5e9
    assert verified["evidence"]["restart_expected"] is False
    assert outcome.checks[0].status == "passed", outcome.checks[0].message
    assert outcome.result.fault_resume_times_ns == {injected["t_ns"]: resumed["t_ns"]}
    assert "T" not in platform.states_at_teardown.values()


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs SIGINT handling"
)
def test_ctrl_c_in_the_middle_of_a_stall_leaves_no_process_stopped(tmp_path):
    def interrupt_soon() -> None:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()

    platform = _StallPlatform(tmp_path, on_stop=interrupt_soon)
    test = _test_case(_stall_events(60.0))
    options = RunOptions(output_dir=tmp_path, verify_timeout=10)
    with pytest.raises(Interrupted):
        run_test(
            test, options, result_dir=tmp_path / test.name, platform_factory=lambda n: platform
        )
    assert platform.stalled
    assert platform.states_at_teardown and "T" not in platform.states_at_teardown.values()
    kinds = [e["kind"] for e in _events(tmp_path / test.name)]
    assert kinds.index("fault_resumed") < kinds.index("teardown")
