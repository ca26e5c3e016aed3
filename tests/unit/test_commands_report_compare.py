"""`ftctl compare` and `ftctl report` over hand-built result directories."""

from __future__ import annotations

import json
import re
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
    assert row["a"]["failed_attempts"] == 3 and row["a"]["retried_requests"] == 0
    assert abs(row["a"]["downtime_s"] - 0.3) < 1e-6  # refused from the fault to the 4th start
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


def test_a_plot_that_is_not_a_png_exits_2_naming_the_option(tmp_path):
    test_dir = _legacy_dir(tmp_path / "t-frontend", failures=2)
    result = run_cli("report", str(test_dir), "--plot", str(tmp_path / "x.txt"), expect=2)
    assert "--plot" in result.stderr and ".png" in result.stderr
    assert not (tmp_path / "x.txt").exists()


def test_compare_in_an_unknown_format_exits_2_naming_the_valid_ones(tmp_path):
    a = _legacy_dir(tmp_path / "a" / "t-decode_worker", failures=1)
    result = run_cli("compare", str(a), str(a), "--format", "xml", expect=2)
    assert "--format 'xml'" in result.stderr
    assert "fancy, markdown, json" in result.stderr
    assert result.stdout == ""


def test_report_never_overwrites_a_file_it_reads(tmp_path):
    test_dir = _legacy_dir(tmp_path / "t-frontend", failures=2)
    client = test_dir / "client_0.log.txt"
    original = client.read_bytes()
    link = tmp_path / "innocent.md"
    link.symlink_to(client)
    (test_dir / "Frontend").mkdir()
    for target in (
        client,
        test_dir / "Frontend" / ".." / "client_0.log.txt",  # `..` resolved before comparing
        link,  # a symlink outside whose destination is an input
        test_dir / "events.jsonl",
    ):
        result = run_cli("report", str(test_dir), "--markdown", str(target), expect=2)
        assert str(target) in result.stderr and "refusing to overwrite" in result.stderr
    # the root as well as the test directory counts as read
    result = run_cli("report", str(tmp_path), "--markdown", str(client), expect=2)
    assert "refusing to overwrite" in result.stderr
    assert client.read_bytes() == original


def test_inside_a_result_directory_report_writes_only_md_and_png_files(tmp_path):
    test_dir = _legacy_dir(tmp_path / "t-frontend", failures=2)
    new_client = test_dir / "client_9.log.txt"
    result = run_cli("report", str(test_dir), "--markdown", str(new_client), expect=2)
    assert "only .md or .png" in result.stderr and not new_client.exists()
    md, png = test_dir / "report.md", test_dir / "timeline.PNG"  # the suffix in any case
    for _ in range(2):  # a second report replaces the first one's files
        run_cli("report", str(test_dir), "--markdown", str(md), "--plot", str(png))
    assert md.read_text().startswith("# ftctl report:")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unwritable_report_path_exits_2(tmp_path):
    test_dir = _legacy_dir(tmp_path / "t-frontend", failures=2)
    target = tmp_path / "missing" / "r.md"
    result = run_cli("report", str(test_dir), "--markdown", str(target), expect=2)
    assert f"{target}: cannot write" in result.stderr


def test_a_malformed_report_json_keeps_what_it_can_and_never_crashes(tmp_path):
    test_dir = _legacy_dir(tmp_path / "t-frontend", failures=2)
    (test_dir / "report.json").write_text(json.dumps({"checks": [{"status": 1}, "x", None]}))
    out = run_cli("report", str(test_dir)).stdout
    assert "## Checks: t-frontend" in out and re.search(r"\|\s+1\s+\|", out)
    (test_dir / "report.json").write_text(json.dumps({"checks": "all passed"}))
    assert "## Checks" not in run_cli("report", str(test_dir)).stdout


def test_compare_names_the_client_each_side_used(tmp_path):
    import shutil

    a = _legacy_dir(tmp_path / "a" / "t-decode_worker", failures=1)
    b = tmp_path / "b" / "t-decode_worker"
    shutil.copytree(Path(__file__).parents[1] / "data" / "results" / "aiperf" / "fault", b)
    row = json.loads(run_cli("compare", str(a.parent), str(b.parent), "--format", "json").stdout)
    assert row["client"] == {"a": "legacy", "b": "aiperf"}
    text = run_cli("compare", str(a.parent), str(b.parent)).stdout
    client_row = next(line for line in text.splitlines() if "client" in line)
    assert re.search(r"client\s*│\s*legacy\s*│\s*aiperf\s*│\s*differs", client_row)


def test_repeats_parse_as_one_test_with_the_spread_of_each_figure(tmp_path):
    # Runs #1..#3 of one test: 1, 2 and 4 requests refused right after the fault.
    for index, failures in ((1, 1), (2, 2), (3, 4)):
        _legacy_dir(tmp_path / f"local-agg-decode_worker#{index}", failures=failures)
    data = json.loads(run_cli("parse", str(tmp_path), "--format", "json").stdout)
    tests = {t["name"]: t for t in data["tests"]}
    assert {(t["failure"], t["group"], t["repeat"]) for t in tests.values()} == {
        ("decode_worker", "local-agg", 1),
        ("decode_worker", "local-agg", 2),
        ("decode_worker", "local-agg", 3),
    }
    (group,) = data["repeats"]
    assert group["test"] == "local-agg-decode_worker"
    assert group["runs"] == [f"local-agg-decode_worker#{i}" for i in (1, 2, 3)]
    failed = group["metrics"]["failed"]
    assert (failed["min"], failed["median"], failed["max"]) == (1, 2, 4)
    assert abs(failed["mean"] - 7 / 3) < 1e-9
    recovery = group["metrics"]["recovery_time_s"]  # one 100 ms slot per refused request
    assert abs(recovery["median"] - 0.2) < 1e-6 and abs(recovery["max"] - 0.4) < 1e-6
    text = run_cli("parse", str(tmp_path)).stdout
    upstream = text.split("\n\n")[0].splitlines()
    cells = [row.split("│")[1].strip() for row in upstream if row.startswith("│ decode")]
    assert cells == ["decode_worker #1", "decode_worker #2", "decode_worker #3"]
    assert "== local-agg-decode_worker: 3 runs" in text


def test_compare_matches_a_single_run_with_a_repeated_one_by_test_name(tmp_path):
    _legacy_dir(tmp_path / "a" / "t-decode_worker", failures=2)
    _legacy_dir(tmp_path / "a" / "t-frontend", failures=0)
    for index, failures in ((1, 1), (2, 3), (3, 5)):
        _legacy_dir(tmp_path / "b" / f"t-decode_worker#{index}", failures=failures)
    rows = [json.loads(line) for line in run_cli(
        "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "json"
    ).stdout.splitlines()]  # fmt: skip
    (row,) = rows
    assert row["test"] == "t-decode_worker"
    assert row["runs"]["b"] == ["t-decode_worker#1", "t-decode_worker#2", "t-decode_worker#3"]
    assert row["a"]["failed"] == 2 and row["b"]["failed"] == 3  # B: the median of 1, 3, 5
    text = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b")).stdout
    assert "3 (1–5, 3 runs)" in text and "only in one run: t-frontend" in text


def test_compare_with_no_test_in_common_exits_2_naming_both_sides(tmp_path):
    _legacy_dir(tmp_path / "a" / "x-decode_worker", failures=1)
    _legacy_dir(tmp_path / "a" / "y-decode_worker", failures=1)
    for index in (1, 2):
        _legacy_dir(tmp_path / "b" / f"z-decode_worker#{index}", failures=1)
    result = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), expect=2)
    assert "no test in common" in result.stderr
    assert "x-decode_worker, y-decode_worker" in result.stderr
    assert "z-decode_worker" in result.stderr
