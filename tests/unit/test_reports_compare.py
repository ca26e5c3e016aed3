"""`ftctl compare` and `ftctl report` over hand-built result directories."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

T0 = 1_800_000_000_000_000_000


def _legacy_dir(path: Path, failures: int, requests: int = 20) -> Path:
    """One client, a request every 100 ms, `failures` failing right after a fault at 1 s."""
    path.mkdir(parents=True)
    fault_ns = T0 + 1_000_000_000
    (path / "events.jsonl").write_text(
        json.dumps({"t_ns": T0, "kind": "load_start"})
        + "\n"
        + json.dumps({"t_ns": fault_ns, "kind": "fault_injected"})
        + "\n"
    )
    lines = []
    for i in range(requests):
        start = T0 + i * 100_000_000
        end = start + 50_000_000
        ok = not (fault_ns <= start < fault_ns + failures * 100_000_000)
        attempt = {
            "status": 200 if ok else 503,
            "request_elapsed_time": 0.05,
            "url": "u",
            "pod": "",
        }
        if ok:
            attempt["result"] = {"choices": [{"message": {"content": "tok tok"}}]}
        lines.append(
            json.dumps(
                {
                    "time": "2027-01-15T08:00:00",
                    "results": [attempt],
                    "total_time": 0.05,
                    "start_ns": start,
                    "end_ns": end,
                    "ok": ok,
                    "client": 0,
                    "request": i,
                }
            )
        )
    (path / "client_0.log.txt").write_text("\n".join(lines) + "\n")
    return path


def test_compare_shows_each_metric_and_the_delta(tmp_path):
    a = _legacy_dir(tmp_path / "a" / "t-decode_worker", failures=3)
    b = _legacy_dir(tmp_path / "b" / "t-decode_worker", failures=1)
    out = run_cli("compare", str(a.parent), str(b.parent), "--format", "json").stdout
    row = json.loads(out)
    assert row["a"]["failed"] == 3 and row["b"]["failed"] == 1
    # recovery: the first success after the fault starts `failures` × 100 ms after it
    assert abs(row["a"]["recovery_time_s"] - 0.3) < 1e-6
    assert abs(row["b"]["recovery_time_s"] - 0.1) < 1e-6
    text = run_cli("compare", str(a), str(b)).stdout
    assert "-2" in text and "recovery_time_s" in text


def test_report_writes_markdown_and_a_png(tmp_path):
    test_dir = _legacy_dir(tmp_path / "t-frontend", failures=2)
    md, png = tmp_path / "r.md", tmp_path / "t.png"
    run_cli("report", str(test_dir), "--markdown", str(md), "--plot", str(png))
    assert "| Phase" in md.read_text() or "Phase" in md.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_of_a_missing_directory_exits_2(tmp_path):
    result = run_cli("compare", str(tmp_path / "nope"), str(tmp_path / "nope2"), expect=2)
    assert "no result directory" in result.stderr
