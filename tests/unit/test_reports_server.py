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
