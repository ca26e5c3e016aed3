"""The runner against a platform implemented at the protocol boundary.

`ServerPlatform` is a real Platform: its one "pod" is a real loopback HTTP server (FakeLLM), and
"killing" it makes the server answer 503 for a known window. The load is the real built-in
client, the result directory is parsed by the real parser, so the recovery time the runner
reports can be checked against the server's own record of what it answered.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ftctl.errors import ExitStatus, PlatformError, UsageError
from ftctl.platforms.base import FaultRecord, Pod, ScrapeTarget
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

OUTAGE_S = 1.5


class ServerPlatform:
    """A one-pod platform whose pod is a FakeLLM server."""

    name = "fake"

    def __init__(self, *, fail_deploy: bool = False, verify: bool = True, pods: bool = True):
        self.fail_deploy, self.verify, self.has_pods = fail_deploy, verify, pods
        self.server: FakeLLM | None = None
        self.teardowns = 0
        self.collected: Path | None = None

    def deploy(self, test, run_dir):
        if self.fail_deploy:
            raise PlatformError("image pull failed")
        self.server = FakeLLM().start()

    def wait_ready(self, timeout):
        pass

    def endpoint(self):
        return self.server.url

    def endpoint_failures(self):
        return []

    def endpoint_problem(self):
        return None

    def pods(self, service=None):
        if not self.has_pods:
            return []
        return [
            Pod(name="Worker-abcde", service="Worker", role="decode", ready=True, restart_count=0)
        ]

    def terminate_process(self, pod, process, signal, ranks=None):
        t_ns = time.time_ns()
        self.server.behavior.fail_from_ns = t_ns
        self.server.behavior.fail_until_ns = t_ns + int(OUTAGE_S * 1e9)
        self.server.behavior.mode = "http_503"
        return FaultRecord(
            "terminate_process", pod.service, pod.name, t_ns, signal=signal, process=process
        )

    def delete_pod(self, pod, force):
        raise AssertionError("not used")

    def verify_fault(self, fault, timeout):
        time.sleep(OUTAGE_S)
        fault.verified = self.verify
        fault.verified_ns = time.time_ns()
        fault.pod_recovered_ns = fault.t_ns + int(OUTAGE_S * 1e9)
        fault.evidence = {"restart_count_before": 0, "restart_count_after": 1}
        return fault

    def wait_for_recovery(self, timeout):
        pass

    def scrape_targets(self):
        if self.server is None:
            return []
        return [ScrapeTarget("Worker", "Worker-abcde", self.server.fetch_metrics, os.getpid())]

    def wait_for_log_pattern(self, service, pattern, timeout):
        return time.time_ns()

    def rolling_upgrade(self, services, timeout):
        pass

    def collect_logs(self, dest):
        self.collected = dest
        folder = dest / "Worker"
        folder.mkdir(exist_ok=True)
        (folder / "Worker-abcde.log").write_text("INFO added model tiny\n")

    def teardown(self):
        self.teardowns += 1
        if self.server:
            self.server.stop()


def _test_case(checks: tuple[Check, ...], requests: int = 40) -> TestCase:
    return build_test(
        "fake-decode_worker",
        scenario="fake",
        source="inline",
        deployment=Deployment(model="fake-model", services=(Service("Worker", "decode"),)),
        loads=(small_load(clients=2, requests_per_client=requests),),
        events=(
            Event(kind="start_load", load="default"),
            Event(kind="wait", duration=0.5),
            Event(
                kind="terminate_process",
                services=("Worker",),
                process="dynamo.vllm",
                signal="SIGKILL",
                pods=(0,),
                failure="decode_worker",
                at=0.5,
            ),
            Event(kind="wait_for_load_completion", load="default", timeout=60),
        ),
        checks=checks,
        recovery_window=0.5,
    )


def _run(tmp_path, platform, checks, **kw):
    options = RunOptions(output_dir=tmp_path, verify_timeout=10)
    test = _test_case(checks, **kw)
    return run_test(
        test, options, result_dir=tmp_path / test.name, platform_factory=lambda n: platform
    )


def _events(result_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (result_dir / "events.jsonl").read_text().splitlines()]


def test_recovery_time_is_the_first_success_after_the_last_failure(tmp_path):
    platform = ServerPlatform()
    checks = (
        Check(kind="fault_verified", source="stage1"),
        Check(kind="recovery_time", max=30.0),
        Check(kind="service_log_contains", service="Worker", pattern="added model"),
    )
    # 100 requests at 20/s: the load outlasts the 1.5 s outage by ~3 s even on a loaded machine.
    outcome = _run(tmp_path, platform, checks, requests=100)
    assert outcome.status == ExitStatus.OK, [(c.name, c.message) for c in outcome.checks]
    assert platform.teardowns == 1
    fault_t = next(e for e in _events(outcome.result_dir) if e["kind"] == "fault_injected")["t_ns"]
    # Independent answer from the raw client records (one attempt each, W longer than the
    # rest of the load): the start of the first success after the last failure.
    records = [
        json.loads(line)
        for path in sorted(outcome.result_dir.glob("client_*.log.txt"))
        for line in path.read_text().splitlines()
    ]
    after = sorted((r["start_ns"], r["ok"]) for r in records if r["start_ns"] >= fault_t)
    last_failed = max(i for i, (_, ok) in enumerate(after) if not ok)
    expected = (after[last_failed + 1][0] - fault_t) / 1e9
    assert outcome.result.overall.recovery.recovery_time_s == pytest.approx(expected, abs=1e-6)
    # The server's own record: it refused for exactly the outage, and every refusal it sent
    # is a failed request of the client.
    served = sorted(platform.server.served, key=lambda s: s.received_ns)
    first_ok = next(s for s in served if s.received_ns >= fault_t and s.status == 200)
    assert (first_ok.received_ns - fault_t) / 1e9 >= OUTAGE_S
    failed_by_server = sum(1 for s in served if s.status != 200)
    assert outcome.result.overall.failed == failed_by_server > 0


def test_fault_fires_on_schedule_and_records_the_delay(tmp_path):
    outcome = _run(tmp_path, ServerPlatform(), (Check(kind="fault_verified"),))
    events = _events(outcome.result_dir)
    load_start = next(e for e in events if e["kind"] == "load_start")["t_ns"]
    fault = next(e for e in events if e["kind"] == "fault_injected")
    # The schedule is load start + 0.5 s: the fault never fires early, and the delay it
    # records is exactly how late it fired (how late depends on the machine's load, so no
    # upper bound is asserted).
    since_start_s = (fault["t_ns"] - load_start) / 1e9
    assert since_start_s >= 0.5
    assert fault["injection_delay_s"] == pytest.approx(since_start_s - 0.5, abs=1e-6)
    kinds = [e["kind"] for e in events]
    assert kinds.index("deploy_start") < kinds.index("ready") < kinds.index("load_start")
    assert kinds[-1] == "teardown"


def test_unverified_fault_fails_the_run(tmp_path):
    outcome = _run(tmp_path, ServerPlatform(verify=False), (Check(kind="fault_verified"),))
    assert outcome.status == ExitStatus.CHECK_FAILED
    assert outcome.checks[0].status == "failed"


def test_failed_deploy_is_an_infrastructure_error_and_still_tears_down(tmp_path):
    platform = ServerPlatform(fail_deploy=True)
    outcome = _run(tmp_path, platform, ())
    assert outcome.status == ExitStatus.INFRA
    assert "image pull failed" in outcome.error
    assert platform.teardowns == 1
    assert (outcome.result_dir / "report.json").exists()


def test_missing_target_pods_is_an_error_not_a_silent_pass(tmp_path):
    platform = ServerPlatform(pods=False)
    outcome = _run(tmp_path, platform, (Check(kind="fault_verified"),))
    assert outcome.status == ExitStatus.INFRA
    assert "no pods" in outcome.error
    assert platform.teardowns == 1


def test_a_second_run_into_the_same_directory_does_not_mix_with_the_first(tmp_path):
    from ftctl.results import find_test_dirs, parse_result_dir

    first = _run(tmp_path, ServerPlatform(), (Check(kind="fault_verified"),), requests=10)
    first_faults = [e for e in _events(first.result_dir) if e["kind"] == "fault_injected"]
    second = _run(tmp_path, ServerPlatform(), (Check(kind="fault_verified"),), requests=20)
    assert second.result_dir == first.result_dir
    # Only the second run's requests and fault: 2 clients x 20, one fault.
    assert second.result.overall.requests == 40
    faults = [e for e in _events(second.result_dir) if e["kind"] == "fault_injected"]
    assert len(faults) == 1 and faults[0]["t_ns"] != first_faults[0]["t_ns"]
    assert second.checks[0].message == "1 of 1 faults verified"
    # The first run is kept aside, and parse of the output root does not count it.
    kept = tmp_path / ".previous" / first.result_dir.name
    assert parse_result_dir(kept).overall.requests == 20
    assert find_test_dirs(tmp_path) == [second.result_dir]


def _foreign_folder(path: Path) -> dict[str, bytes]:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("mine, not ftctl's\n")
    return {p.name: p.read_bytes() for p in path.iterdir()}


def test_a_folder_ftctl_did_not_write_is_refused_and_left_in_place(tmp_path):
    from ftctl.runner import run_tests

    test = _test_case((Check(kind="fault_verified"),))
    before = _foreign_folder(tmp_path / test.name)
    platform = ServerPlatform()
    with pytest.raises(UsageError, match="was not written by ftctl") as err:
        run_tests([test], RunOptions(output_dir=tmp_path), platform_factory=lambda n: platform)
    assert str(tmp_path / test.name) in err.value.message
    assert {p.name: p.read_bytes() for p in (tmp_path / test.name).iterdir()} == before
    assert not (tmp_path / ".previous").exists()
    assert platform.server is None  # refused before anything was deployed


def test_a_foreign_folder_where_the_previous_run_would_be_kept_is_not_replaced(tmp_path):
    first = _run(tmp_path, ServerPlatform(), (Check(kind="fault_verified"),), requests=5)
    kept = tmp_path / ".previous" / first.result_dir.name
    before = _foreign_folder(kept)
    second = _run(tmp_path, ServerPlatform(), (Check(kind="fault_verified"),), requests=5)
    assert second.status == ExitStatus.INVALID and "was not written by ftctl" in second.error
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == before
    assert (first.result_dir / "run.json").is_file()  # the first run was not moved either


def test_the_run_report_keeps_the_previous_one_and_never_replaces_a_foreign_file(tmp_path):
    from ftctl.runner import write_run_report

    first = write_run_report({"schema": "ftctl.run-report/v1", "n": 1}, tmp_path)
    write_run_report({"schema": "ftctl.run-report/v1", "n": 2}, tmp_path)
    assert json.loads(first.read_text())["n"] == 2
    assert json.loads((tmp_path / ".previous" / "report.json").read_text())["n"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".previous", "report.json"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "report.json").write_text('{"mine": true}')
    with pytest.raises(UsageError, match="not a run report of ftctl"):
        write_run_report({"schema": "ftctl.run-report/v1"}, other)
    assert (other / "report.json").read_text() == '{"mine": true}'


def test_every_pod_is_scraped_between_ready_and_teardown(tmp_path):
    platform = ServerPlatform()
    outcome = _run(tmp_path, platform, (Check(kind="fault_verified"),), requests=10)
    events = {e["kind"]: e["t_ns"] for e in _events(outcome.result_dir)}
    path = outcome.result_dir / "Worker" / "Worker-abcde.metrics.jsonl"
    from ftctl.results.server import read_scrapes

    lines = read_scrapes(path)
    assert lines and all(line.ok for line in lines)
    assert events["ready"] <= lines[0].t_ns and lines[-1].t_ns <= events["teardown"]
    served = sum(1 for s in platform.server.served if s.path.endswith("completions"))
    assert 0 <= lines[-1].samples.get('fake_requests_total{status="200"}', 0) <= served
    resources = (outcome.result_dir / "Worker" / "Worker-abcde.resources.jsonl").read_text()
    assert len(resources.splitlines()) == len(lines)


def test_a_zero_scrape_interval_scrapes_nothing(tmp_path):
    options = RunOptions(output_dir=tmp_path, verify_timeout=10, scrape_interval=0)
    test = _test_case((Check(kind="fault_verified"),), requests=5)
    outcome = run_test(
        test, options, result_dir=tmp_path / test.name, platform_factory=lambda n: ServerPlatform()
    )
    assert outcome.status == ExitStatus.OK
    assert not list(outcome.result_dir.glob("*/*.metrics.jsonl"))


def test_the_runner_has_a_handler_for_every_timeline_event_kind():
    import typing

    from ftctl.runner import HANDLERS
    from ftctl.scenario.model import Event

    assert set(HANDLERS) == set(typing.get_args(typing.get_type_hints(Event)["kind"]))


def test_every_report_a_scenario_lists_is_written_into_the_test_directory(tmp_path):
    import dataclasses
    import xml.etree.ElementTree as ET

    test = dataclasses.replace(
        _test_case((Check(kind="fault_verified"),), requests=10),
        reports=("summary", "markdown", "json", "junit", "plot"),
    )
    options = RunOptions(output_dir=tmp_path, verify_timeout=10)
    platform = ServerPlatform()
    outcome = run_test(
        test, options, result_dir=tmp_path / test.name, platform_factory=lambda n: platform
    )
    d = outcome.result_dir
    assert outcome.status == ExitStatus.OK, outcome.error
    summary = (d / "summary.txt").read_text()
    assert "== fake-decode_worker: OK" in summary
    assert "fault_verified" in summary
    markdown = (d / "report.md").read_text()
    assert markdown.startswith(f"# ftctl report: {d}")
    assert "## Checks: fake-decode_worker (" in markdown
    assert "| PASSED   | fault_verified |" in markdown
    suite = ET.parse(d / "junit.xml").getroot().find("testsuite")
    assert [c.get("name") for c in suite.iter("testcase")] == [
        "fake-decode_worker",
        "fault_verified",
    ]
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    assert (d / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((d / "report.json").read_text())["test"] == "fake-decode_worker"


def test_reports_not_listed_are_not_written(tmp_path):
    import dataclasses

    test = dataclasses.replace(_test_case((), requests=5), reports=())
    options = RunOptions(output_dir=tmp_path, verify_timeout=10)
    outcome = run_test(
        test, options, result_dir=tmp_path / test.name, platform_factory=lambda n: ServerPlatform()
    )
    names = {p.name for p in outcome.result_dir.iterdir()}
    assert "report.json" in names
    assert not names & {"summary.txt", "report.md", "junit.xml", "timeline.png"}


def test_aiperf_start_up_reaches_the_observer_client_by_client(tmp_path, monkeypatch):
    import dataclasses
    import sys

    from tests.unit.test_clients_aiperf import FAKE_AIPERF

    fake = tmp_path / "bin" / "aiperf"
    fake.parent.mkdir()
    fake.write_text(FAKE_AIPERF.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setenv("FTCTL_AIPERF", str(fake))
    monkeypatch.setenv("FAKE_PLAN", "ok")
    monkeypatch.setenv("FAKE_START_DELAY", "0.6")  # client i is up after i × 0.6 s
    seen: list[dict] = []

    class Observer:
        def notify(self, kind, **fields):
            if kind == "load_starting":
                seen.append(fields)

    test = _test_case(())
    load = dataclasses.replace(test.loads[0], client="aiperf", requests_per_client=3)
    test = dataclasses.replace(test, loads=(load,), events=test.events[:1])
    options = RunOptions(output_dir=tmp_path / "out", verify_timeout=10)
    run_test(
        test,
        options,
        result_dir=options.output_dir / test.name,
        observer=Observer(),
        platform_factory=lambda n: ServerPlatform(),
    )
    assert seen and seen[-1]["sending"] == 2 and seen[-1]["clients"] == 2
    assert seen[0]["sending"] < 2 and {f["client"] for f in seen} == {"aiperf"}
    assert {f["load"] for f in seen} == {"default"}


def test_a_repeated_test_runs_as_t_hash_i_in_directories_outcomes_and_junit(tmp_path):
    import xml.etree.ElementTree as ET

    from ftctl.reports.junit import write_junit
    from ftctl.runner import run_tests

    test = _test_case((Check(kind="min_requests", min=10),), requests=10)
    options = RunOptions(output_dir=tmp_path, verify_timeout=10, repeat=2)
    run = run_tests([test], options, platform_factory=lambda n: ServerPlatform())
    assert [t.name for t in run.tests] == ["fake-decode_worker#1", "fake-decode_worker#2"]
    for index in (1, 2):
        folder = tmp_path / f"fake-decode_worker#{index}"
        run_json = json.loads((folder / "run.json").read_text())
        assert run_json["test"] == f"fake-decode_worker#{index}"
        assert run_json["repeat"] == {"test": "fake-decode_worker", "index": index, "of": 2}
        result = run.tests[index - 1].result
        assert (result.failure, result.group, result.repeat) == ("decode_worker", "fake", index)
    write_junit(run, tmp_path / "junit.xml")
    cases = ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    names = [(c.get("classname"), c.get("name")) for c in cases]
    assert len(names) == len(set(names)) == 4  # two tests, one check each
    assert ("ftctl.fake-decode_worker#2", "min_requests>=10") in names
