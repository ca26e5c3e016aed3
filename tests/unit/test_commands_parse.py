"""`ftctl parse` end to end in-process: detection, --info, formats, roots, exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ftctl.errors import ParseError
from ftctl.results import find_test_dirs
from ftctl.results.detect import detect_kind
from tests.conftest import REPO, run_cli
from tests.unit.test_results_legacy import write_legacy_test

DATA = Path(__file__).resolve().parent.parent / "data" / "results"
AIPERF_ATTEMPT = DATA / "aiperf" / "fault" / "client_0" / "attempt_0"


def test_detects_aiperf_legacy_both_and_neither(tmp_path):
    assert detect_kind(DATA / "aiperf" / "ok")[0] == "aiperf"
    legacy = write_legacy_test(tmp_path / "legacy-none", fault_rel=None)
    assert detect_kind(legacy) == ("legacy", [])
    both = tmp_path / "both"
    shutil.copytree(DATA / "aiperf" / "ok", both)
    shutil.copy(legacy / "client_0.log.txt", both / "client_0.log.txt")
    kind, warnings = detect_kind(both)
    assert kind == "aiperf" and "--force-parser legacy" in warnings[0]
    assert detect_kind(both, "legacy") == ("legacy", [])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ParseError, match="--force-parser"):
        detect_kind(empty)


def test_undetectable_directory_exits_2_with_a_hint(tmp_path):
    (tmp_path / "stuff").mkdir()
    result = run_cli("parse", str(tmp_path / "stuff"), expect=2)
    assert "--force-parser" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("parse", str(tmp_path / "missing"), expect=2)
    assert "no such directory" in result.stderr
    run_cli("parse", str(DATA / "aiperf" / "ok"), "--format", "xml", expect=2)
    run_cli("parse", str(DATA / "aiperf" / "ok"), "--force-parser", "genai", expect=2)


def test_info_describes_without_parsing():
    result = run_cli("parse", str(DATA / "aiperf" / "retry"), "--info")
    assert "type: aiperf" in result.stdout and "client_0=2" in result.stdout
    assert "test.log.txt: no" in result.stdout
    data = json.loads(run_cli("parse", str(DATA / "aiperf"), "--info", "--format", "json").stdout)
    assert data["schema"] == "ftctl.parse-info/v1"
    assert {d["type"] for d in data["dirs"]} == {"aiperf"} and len(data["dirs"]) == 3


def test_json_output_is_versioned_and_round_trips(tmp_path):
    write_legacy_test(tmp_path / "vllm-agg-tp-1-dp-1-decode_worker")
    data = json.loads(run_cli("parse", str(tmp_path), "--format", "json").stdout)
    assert data["schema"] == "ftctl.parse/v2"
    (test,) = data["tests"]
    assert test["kind"] == "legacy" and test["failure"] == "decode_worker"
    assert test["overall"]["recovery"]["recovery_time_s"] == pytest.approx(10.25, abs=1e-3)
    assert set(test["overall"]["phases"]) == {
        "before",
        "during",
        "after",
        "overall",
        "upstream_before",
        "upstream_after",
    }
    assert "requests" not in test  # the per-request arrays stay out of the JSON


def test_csv_has_a_row_per_test_load_and_phase(tmp_path):
    write_legacy_test(tmp_path / "vllm-agg-tp-1-dp-1-decode_worker")
    rows = list(
        csv.DictReader(io.StringIO(run_cli("parse", str(tmp_path), "--format", "csv").stdout))
    )
    assert len(rows) == 12  # loads default + overall, six phases each
    after = next(r for r in rows if r["load"] == "default" and r["phase"] == "after")
    assert after["requests"] == "119" and after["failed"] == "12"


def test_a_root_of_many_tests_is_grouped_with_rows_in_failure_table_order(tmp_path):
    for failure in ("decode_worker_pod", "none", "frontend", "decode_worker"):
        write_legacy_test(tmp_path / f"test_fault_scenario[vllm-agg-tp-1-dp-2-{failure}]")
    write_legacy_test(tmp_path / "test_fault_scenario[sglang-agg-tp-1-dp-1-frontend]")
    out = run_cli("parse", str(tmp_path)).stdout
    assert out.count("Test Group: vllm-agg-tp-1-dp-2") == 1
    assert "Test Group: sglang-agg-tp-1-dp-1" in out
    vllm = out[out.index("Test Group: vllm") :]
    positions = [
        re.search(rf"│\s+{f}\s+│", vllm).start()
        for f in ("none", "frontend", "decode_worker", "decode_worker_pod")
    ]
    assert positions == sorted(positions)
    assert "Success" in out and "Before" in out and "Recovery" in out


def test_token_overflow_pair_is_reported_together(tmp_path):
    rows_over = [(0, i, i * 1.0, 0.1, i % 5 == 0) for i in range(15)]
    rows_rec = [(0, i, 20 + i * 1.0, 0.1, True) for i in range(15)]
    write_legacy_test(tmp_path / "vllm-agg-tp-1-dp-1-token_overflow_recovery", rows_rec, None)
    write_legacy_test(tmp_path / "vllm-agg-tp-1-dp-1-token_overflow_overflow", rows_over, None)
    write_legacy_test(tmp_path / "vllm-agg-tp-1-dp-1-none", rows_rec, None)
    out = run_cli("parse", str(tmp_path), "--format", "markdown").stdout
    table = out[: out.index("==")]
    over = table.index("token_overflow (overflow)")
    rec = table.index("token_overflow (recovery)")
    assert re.search(r"\|\s+none\s+\|", table).start() < over < rec
    data = json.loads(run_cli("parse", str(tmp_path), "--format", "json").stdout)
    roles = {t["name"]: t["pair_role"] for t in data["tests"]}
    assert roles["vllm-agg-tp-1-dp-1-token_overflow_overflow"] == "overflow"


def test_failed_requests_still_exit_0_and_sla_adds_violation_columns(tmp_path):
    write_legacy_test(tmp_path / "t-decode_worker")
    out = run_cli("parse", str(tmp_path), "--sla", "0.25").stdout
    assert "Violations" in out
    run_cli("parse", str(tmp_path), "--sla", "-1", expect=2)


def test_find_test_dirs_returns_the_dir_itself_or_its_tests(tmp_path):
    one = write_legacy_test(tmp_path / "a" / "t1-none", fault_rel=None)
    write_legacy_test(tmp_path / "a" / "t2-none", fault_rel=None)
    assert find_test_dirs(one) == [one]
    assert [p.name for p in find_test_dirs(tmp_path)] == ["t1-none", "t2-none"]


def test_one_undetectable_test_among_many_is_a_warning(tmp_path):
    write_legacy_test(tmp_path / "t1-none", fault_rel=None)
    broken = tmp_path / "t2-none"
    broken.mkdir()
    (broken / "test.log.txt").write_text("")
    out = run_cli("parse", str(tmp_path)).stdout
    assert "warning: skipped" in out and "t2-none" in out


def test_forcing_a_parser_onto_a_directory_without_its_files_exits_2():
    result = run_cli("parse", str(DATA / "aiperf" / "ok"), "--force-parser", "legacy", expect=2)
    assert "no legacy client results" in result.stderr


def test_a_client_index_too_big_for_the_table_exits_2_naming_the_file(tmp_path):
    directory = write_legacy_test(tmp_path / "t-decode_worker")
    huge = directory / f"client_{'9' * 26}.log.txt"
    shutil.copy(directory / "client_0.log.txt", huge)
    for argv in (["parse", str(directory)], ["parse", str(tmp_path), "--info"]):
        result = run_cli(*argv, expect=2)
        assert f"{huge}: index {'9' * 26} is too large" in result.stderr
    huge.rename(directory / "client_2147483647.log.txt")  # the largest index that fits
    assert run_cli("parse", str(directory), "--format", "json").stdout


def _fifo_dirs(root: Path) -> list[Path]:
    """A legacy and an aiperf test whose every other readable file is a FIFO."""
    legacy = write_legacy_test(root / "legacy-decode_worker")
    (legacy / "events.jsonl").unlink()
    os.mkfifo(legacy / "events.jsonl")
    os.mkfifo(legacy / "client_9.log.txt")
    (legacy / "Frontend").mkdir()
    os.mkfifo(legacy / "Frontend" / "pod-a.log")
    os.mkfifo(legacy / "Frontend" / "pod-a.previous.log")
    os.mkfifo(legacy / "report.json")
    aiperf = root / "aiperf-decode_worker"
    shutil.copytree(DATA / "aiperf" / "fault", aiperf)
    (aiperf / "events.jsonl").unlink()
    os.mkfifo(aiperf / "test.log.txt")
    (aiperf / "Frontend").mkdir()
    os.mkfifo(aiperf / "Frontend" / "pod-a.previous.log")
    for name in ("profile_export.jsonl", "profile_export_aiperf.json"):
        target = aiperf / "client_1" / "attempt_0" / name
        target.unlink()
        os.mkfifo(target)
    return [legacy, aiperf]


def test_fifos_in_a_result_directory_are_skipped_never_read(tmp_path):
    legacy, aiperf = _fifo_dirs(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for argv in (
        ["parse", str(tmp_path), "--format", "json"],
        ["parse", str(tmp_path), "--info"],
        ["report", str(tmp_path)],
        ["compare", str(legacy), str(aiperf)],
    ):
        # A subprocess with a generous guard: a blocked read fails the test instead of hanging it.
        done = subprocess.run(
            [sys.executable, "-m", "ftctl", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        assert done.returncode == 0, done.stderr
    data = json.loads(
        subprocess.run(
            [sys.executable, "-m", "ftctl", "parse", str(tmp_path), "--format", "json"],
            capture_output=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            env=env,
        ).stdout
    )
    tests = {t["name"]: t for t in data["tests"]}
    assert tests["legacy-decode_worker"]["overall"]["requests"] == 241  # client_9 not read
    legacy_warnings = tests["legacy-decode_worker"]["warnings"]
    assert f"{legacy / 'events.jsonl'}: not a regular file; skipped" in legacy_warnings
    aiperf_warnings = tests["aiperf-decode_worker"]["warnings"]
    records = aiperf / "client_1" / "attempt_0" / "profile_export.jsonl"
    assert f"{records}: cannot read (not a regular file)" in aiperf_warnings
    assert tests["aiperf-decode_worker"]["overall"]["requests"] == 60  # clients 0 and 2


def _record_counts(records: Path) -> tuple[int, int]:
    """(ok, failed) of an aiperf profile_export.jsonl, read here without ftctl's reader."""
    rows = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    failed = sum(1 for r in rows if r.get("error"))
    return len(rows) - failed, failed


@pytest.mark.parametrize("force", [(), ("--force-parser", "aiperf")])
def test_parse_reads_a_bare_aiperf_artifact_dir(tmp_path, force):
    artifact = tmp_path / "artifacts"
    shutil.copytree(AIPERF_ATTEMPT, artifact)
    ok, failed = _record_counts(artifact / "profile_export.jsonl")
    (test,) = json.loads(run_cli("parse", str(artifact), "--format", "json", *force).stdout)[
        "tests"
    ]
    assert test["kind"] == "aiperf"
    assert (test["overall"]["ok"], test["overall"]["failed"]) == (ok, failed)


def test_parse_reads_the_upstream_declarative_layout(tmp_path):
    # seeds/003: <test>/<load>/profile_export_aiperf.json beside the service log folders.
    test_dir = tmp_path / "test_smoke_50_requests"
    shutil.copytree(AIPERF_ATTEMPT, test_dir / "load")
    (test_dir / "load" / "aiperf.log").write_text("INFO aiperf\n")
    (test_dir / "Frontend").mkdir()
    (test_dir / "Frontend" / "frontend-abc_1.log").write_text("INFO added model\n")
    ok, failed = _record_counts(test_dir / "load" / "profile_export.jsonl")
    for target in (tmp_path, test_dir):
        (test,) = json.loads(run_cli("parse", str(target), "--format", "json").stdout)["tests"]
        assert test["kind"] == "aiperf"
        assert (test["overall"]["ok"], test["overall"]["failed"]) == (ok, failed)
        assert (test["loads"]["load"]["ok"], test["loads"]["load"]["failed"]) == (ok, failed)


def test_aiperf_table_says_when_its_failure_count_differs_from_aiperfs_summary(tmp_path):
    test_dir = tmp_path / "fault"
    shutil.copytree(DATA / "aiperf" / "fault", test_dir)
    records = sorted(test_dir.glob("client_*/attempt_0/profile_export.jsonl"))
    ours = sum(_record_counts(path)[1] for path in records)
    # aiperf counted one failure of client 0 as a success (a stream cut by an error event).
    summary_path = test_dir / "client_0" / "attempt_0" / "profile_export_aiperf.json"
    summary = json.loads(summary_path.read_text())
    summary["error_request_count"]["avg"] -= 1
    summary_path.write_text(json.dumps(summary))
    theirs = sum(
        json.loads((p.parent / "profile_export_aiperf.json").read_text())["error_request_count"][
            "avg"
        ]
        for p in records
    )
    out = run_cli("parse", str(test_dir)).stdout
    line = (
        f"Failed requests: {ours} here, {int(theirs)} in aiperf's own summary "
        "(a stream cut by an error event counts as failed here)"
    )
    assert line in out.splitlines()
    untouched = run_cli("parse", str(DATA / "aiperf" / "fault")).stdout
    assert "in aiperf's own summary" not in untouched
