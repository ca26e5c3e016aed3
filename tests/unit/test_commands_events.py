"""run_command and capture_metrics events: results in events.jsonl, files, expect_exit verdicts.

The pod of the local platform is a real supervised process (a stand-in interpreter); the
runner's platform for the timeline tests is a real loopback FakeLLM server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftctl.errors import ExitStatus
from ftctl.layout import labelled_metrics_suffix
from ftctl.platforms.base import CommandResult
from ftctl.platforms.local import LocalPlatform
from ftctl.runner import RunOptions, run_test
from ftctl.scenario.model import Check, Deployment, Event, Service, TestCase
from tests.builders import build_test
from tests.unit.test_runner import ServerPlatform, _test_case


def _pod_test() -> TestCase:
    return build_test(
        "cmd",
        source="inline",
        deployment=Deployment(model="m", services=(Service("VllmDecodeWorker", "decode"),)),
    )


@pytest.fixture
def local_pod(tmp_path):
    script = tmp_path / "python-stand-in"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(600)\n")
    script.chmod(0o755)
    platform = LocalPlatform(python=str(script))
    platform.deploy(_pod_test(), tmp_path / "run")
    yield platform, platform.pods("VllmDecodeWorker")[0]
    platform.teardown()


def test_a_local_command_runs_in_the_replicas_environment_with_its_exit_code(local_pod):
    platform, pod = local_pod
    code = "import os, sys; print(os.environ['FTCTL_RUN_ID'], os.environ['DYN_SYSTEM_PORT']); "
    code += "sys.exit(3)"
    result = platform.run_command(pod, [sys.executable, "-c", code], 30)
    replica = platform.supervisor.get(pod.name)
    assert result.exit_code == 3
    assert result.stdout.split() == [platform.run_id, replica.spec.env["DYN_SYSTEM_PORT"]]


def test_a_local_command_is_never_given_to_a_shell(local_pod):
    platform, pod = local_pod
    result = platform.run_command(pod, ["echo", "$HOME;", "exit", "7"], 30)
    assert (result.exit_code, result.stdout) == (0, "$HOME; exit 7\n")


def test_a_missing_program_exits_127_like_exec_in_a_container(local_pod):
    platform, pod = local_pod
    result = platform.run_command(pod, ["/no/such/program"], 30)
    assert result.exit_code == 127 and "/no/such/program" in result.stderr


def test_a_command_past_its_timeout_is_killed_and_says_so(local_pod):
    platform, pod = local_pod
    result = platform.run_command(pod, ["sleep", "30"], 0.3)
    assert result.exit_code is None and "timed out" in result.error


class CommandPlatform(ServerPlatform):
    """ServerPlatform whose pod runs commands as real processes of this machine."""

    def run_command(self, pod, argv, timeout):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return CommandResult(done.returncode, done.stdout, done.stderr)


def _timeline(tmp_path: Path, *events: Event, checks=()) -> TestCase:
    base = _test_case(checks, requests=5)
    timeline = (base.events[0], *events, base.events[-1])
    return base.__class__(**{**base.__dict__, "events": timeline, "checks": checks})


def _run(tmp_path: Path, test: TestCase):
    options = RunOptions(output_dir=tmp_path, verify_timeout=10)
    return run_test(
        test,
        options,
        result_dir=tmp_path / test.name,
        platform_factory=lambda n: CommandPlatform(),
    )


def _events(result_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (result_dir / "events.jsonl").read_text().splitlines()]


def _command(argv, expect_exit=None) -> Event:
    return Event(
        kind="run_command", services=("Worker",), argv=tuple(argv), expect_exit=expect_exit
    )


def test_command_exit_code_and_output_are_recorded_in_events(tmp_path):
    argv = [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    outcome = _run(tmp_path, _timeline(tmp_path, _command(argv)))
    (result,) = [e for e in _events(outcome.result_dir) if e["kind"] == "command_result"]
    assert result["argv"] == argv and result["pod"] == "Worker-abcde"
    assert (result["exit_code"], result["stdout"], result["stderr"]) == (0, "out\n", "err\n")
    assert result["ok"] is True and result["expect_exit"] is None


def test_an_unexpected_exit_code_fails_the_test_naming_the_command(tmp_path):
    argv = [sys.executable, "-c", "import sys; sys.exit('broken config')"]
    test = _timeline(tmp_path, _command(argv, expect_exit=0), checks=(Check(kind="command_exit"),))
    outcome = _run(tmp_path, test)
    assert outcome.status == ExitStatus.CHECK_FAILED
    (check,) = outcome.checks
    assert check.status == "failed"
    assert "in Worker-abcde exited 1, expected 0 (broken config)" in check.message


def test_an_expected_exit_code_passes(tmp_path):
    test = _timeline(
        tmp_path, _command(["false"], expect_exit=1), checks=(Check(kind="command_exit"),)
    )
    outcome = _run(tmp_path, test)
    assert outcome.checks[0].status == "passed", outcome.checks[0].message


def test_capture_metrics_writes_every_pods_snapshot_under_its_label(tmp_path):
    outcome = _run(tmp_path, _timeline(tmp_path, Event(kind="capture_metrics", label="mid")))
    path = outcome.result_dir / "Worker" / f"Worker-abcde{labelled_metrics_suffix('mid')}"
    assert path.name == "Worker-abcde.mid.metrics.log"
    assert b"# TYPE" in path.read_bytes()
    (captured,) = [e for e in _events(outcome.result_dir) if e["kind"] == "metrics_captured"]
    assert captured["files"] == ["Worker/Worker-abcde.mid.metrics.log"]
    assert captured["failed"] == []
