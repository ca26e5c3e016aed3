"""The server side in parse, report and the timeline, from a real run's scraped files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from ftctl.results import parse_result_dir
from tests.conftest import run_cli


@pytest.fixture
def result_dir(served_run_dir) -> Path:
    return served_run_dir


def _png_height(path: Path) -> int:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])[1]


def test_parse_summarises_every_scraped_service(result_dir):
    metrics = (result_dir / "Worker" / "Worker-abcde.metrics.jsonl").read_text().splitlines()
    resources = [
        json.loads(line)
        for line in (result_dir / "Worker" / "Worker-abcde.resources.jsonl")
        .read_text()
        .splitlines()
    ]
    (service,) = parse_result_dir(result_dir).server
    assert (service.service, service.pods, service.scrapes) == ("Worker", 1, len(metrics))
    assert service.failed_scrapes == sum(not json.loads(line)["ok"] for line in metrics)
    assert service.rss_max_mb == pytest.approx(max(r["rss_bytes"] for r in resources) / 1e6)
    assert service.cpu_s == pytest.approx(resources[-1]["cpu_s"] - resources[0]["cpu_s"])


def test_parse_shows_a_server_table_and_json_carries_it(result_dir):
    text = run_cli("parse", str(result_dir)).stdout
    assert "Server side" in text and "Worker" in text
    data = json.loads(run_cli("parse", str(result_dir), "--format", "json").stdout)
    assert data["tests"][0]["server"][0]["service"] == "Worker"


def test_timeline_adds_aligned_server_panels(result_dir, tmp_path):
    from ftctl.reports.timeline import plot_timeline

    result = parse_result_dir(result_dir)
    # 100 dpi, 3 + 2 inches per panel: latency, requests/s, server gauges, resources (+ metric)
    assert _png_height(plot_timeline(result, tmp_path / "a.png")) == 100 * (3 + 2 * 4)
    with_metric = plot_timeline(result, tmp_path / "b.png", metrics=("fake_up",))
    assert _png_height(with_metric) == 100 * (3 + 2 * 5)


def test_report_metric_option_adds_a_panel(result_dir, tmp_path):
    plot = tmp_path / "t.png"
    run_cli("report", str(result_dir), "--plot", str(plot), "--metric", "fake_up")
    assert _png_height(plot) == 100 * (3 + 2 * 5)


def test_timeline_draws_attempts_pod_back_and_keeps_the_legend_off_the_data():
    import matplotlib.pyplot as plt
    import numpy as np

    from ftctl.reports.timeline import timeline_figure
    from ftctl.results.model import AttemptTable, RequestTable, TestResult

    s = 1_000_000_000
    base = 1_700_000_000 * s
    # Request 0 ok; request 1 refused at once (0 s) at +1 s, its retry ok; request 2 failed
    # after 0.5 s of waiting.
    table = RequestTable.from_lists(
        0,
        [base, base + s, base + 3 * s],
        [base + s // 5, base + 2 * s + s // 5, base + 3 * s + s // 2],
        [True, True, False],
        [0.2, 1.2, 0.5],
        [float("nan")] * 3,
        [float("nan")] * 3,
    )
    table.attempt_rows = AttemptTable.from_lists(
        [0, 1, 1, 2],
        [base, base + s, base + 2 * s, base + 3 * s],
        [base + s // 5, base + s, base + 2 * s + s // 5, base + 3 * s + s // 2],
        [True, False, True, False],
    )
    result = TestResult(name="t", path=None, kind="legacy", fault_times_ns=[base + s // 2])
    result.requests = table
    result.pod_recovered_ns = [base + 2 * s]
    fig = timeline_figure(result)
    try:
        ax = fig.axes[0]
        points = {c.get_label(): np.asarray(c.get_offsets()).tolist() for c in ax.collections}
        assert points["ok (2)"] == [[0.0, 0.2], [2.0, 0.2]]  # the retry at its own start
        assert points["failed attempts (1)"] == [[3.0, 0.5]]  # at its real duration
        assert points["failed at once / end unknown (1)"] == [[1.0, 0.0]]  # on the axis
        lines = {line.get_label(): line.get_xdata()[0] for line in ax.get_lines()}
        assert lines["fault"] == 0.5 and lines["pod back"] == 2.0
        legend = ax.get_legend()
        fig.canvas.draw()
        box = legend.get_window_extent()
        assert box.x0 >= ax.get_window_extent().x1  # right of the data, not over it
    finally:
        plt.close(fig)
