"""The shipped migration pair on a real local Dynamo graph: it passes with migration on and
fails (exit 1) with migration off, so agg-migration.yaml passes because of migration.

Both scenarios are the shipped files, run as a user runs them (``ftctl run FILE``): same
graph, load (no client retries), fault and checks; only ``migration_limit`` differs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "scenario_files" / "local"


def _run(scenario: Path, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "ftctl", "run", str(scenario), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = json.loads((out / "report.json").read_text())["tests"][0]
    return proc, report


def _status(report: dict) -> dict[str, str]:
    return {c["kind"]: c["status"] for c in report["checks"]}


def test_migration_on_passes_and_off_fails_the_same_checks(tmp_path):
    on, on_report = _run(LOCAL / "agg-migration.yaml", tmp_path / "on")
    assert on.returncode == 0, on.stdout + on.stderr
    assert on_report["result"]["overall"]["failed_attempts"] == 0
    assert _status(on_report)["fault_verified"] == "passed"

    off, off_report = _run(LOCAL / "expected-fail" / "agg-migration-off.yaml", tmp_path / "off")
    assert off.returncode == 1, off.stdout + off.stderr
    status = _status(off_report)
    assert status["fault_verified"] == "passed"  # the fault happened: it failed on its merits
    assert status["zero_errors"] == "failed" and status["max_failed_attempts"] == "failed"
    assert off_report["result"]["overall"]["failed_attempts"] > 0
