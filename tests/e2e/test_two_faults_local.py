"""Two faults in one test on a real local Dynamo graph (shipped agg-two-faults.yaml): the result
carries one row per fault, each with its own recovery, and each recovery is recomputed here
from the raw client records by the README's definition (not by ftctl's code)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenario_files" / "local" / "agg-two-faults.yaml"


def _attempts(test_dir: Path) -> list[tuple[int, bool]]:
    """(start_ns, ok) of every attempt: ok = 200, no error, a non-empty completion."""
    out = []
    for path in sorted(test_dir.glob("client_*.log.txt")):
        for line in path.read_text().splitlines():
            for a in json.loads(line)["results"]:
                choice = ((a.get("result") or {}).get("choices") or [{}])[0]
                text = (choice.get("message") or {}).get("content") or choice.get("text")
                out.append((a["start_ns"], a["status"] == 200 and "error" not in a and bool(text)))
    return sorted(out)


def _recovery_s(attempts, t_f: int, next_ns: int | None, window_s: float) -> float | None:
    """R − T_f: R the first successful attempt start at or after T_f such that every attempt
    started in [R, R + window] (and before the next fault) succeeded."""
    limit = math.inf if next_ns is None else next_ns
    for start, ok in attempts:
        if not ok or not t_f <= start < limit:
            continue
        end = start + window_s * 1e9
        if all(good for s, good in attempts if start <= s <= end and s < limit):
            return (start - t_f) / 1e9
    return None


def test_two_faults_report_two_rows_each_with_its_own_recovery(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ftctl", "run", str(SCENARIO), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 faults; the phases above are the first's" in proc.stdout
    assert "#1 at +8.0 s" in proc.stdout and "#2 at +32.0 s" in proc.stdout
    test = json.loads((out / "report.json").read_text())["tests"][0]
    faults = test["result"]["overall"]["faults"]
    assert [f["index"] for f in faults] == [1, 2]
    attempts = _attempts(out / test["test"])
    for fault in faults:
        rec = fault["recovery"]
        assert rec["recovered"], fault
        expected = _recovery_s(attempts, fault["t_ns"], fault["next_ns"], rec["window_s"])
        assert expected is not None
        assert rec["recovery_time_s"] == pytest.approx(expected, abs=1e-3)
    assert faults[0]["next_ns"] == faults[1]["t_ns"] and faults[1]["next_ns"] is None
    assert (out / test["test"] / "timeline.png").stat().st_size > 0
