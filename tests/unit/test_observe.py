"""The server-side scraper against real loopback servers and real processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ftctl.observe import Scraper, parse_exposition, sample_resources
from ftctl.platforms.base import ScrapeTarget
from ftctl.results.server import read_scrapes, read_server_series
from tests.fake_llm import FakeLLM


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _complete(server: FakeLLM) -> None:
    body = json.dumps({"model": "m", "prompt": "hi", "max_tokens": 2}).encode()
    request = urllib.request.Request(
        f"{server.url}/v1/completions", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _closed_port_fetch(timeout: float) -> bytes:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        return r.read()


@pytest.fixture
def server():
    with FakeLLM() as srv:
        yield srv


def test_each_scrape_is_one_line_with_the_servers_counters(server, tmp_path):
    target = ScrapeTarget("Frontend", "Frontend-0", server.fetch_metrics)
    scraper = Scraper(lambda: [target], tmp_path, resources=False)
    try:
        for _ in range(3):
            _complete(server)
            scraper.scrape_once()
    finally:
        scraper.stop()
    scrapes = read_scrapes(tmp_path / "Frontend" / "Frontend-0.metrics.jsonl")
    assert [s.ok for s in scrapes] == [True, True, True]
    assert [s.samples['fake_requests_total{status="200"}'] for s in scrapes] == [1, 2, 3]
    assert all(s.samples["fake_up"] == 1 for s in scrapes)
    stamps = [s.t_ns for s in scrapes]
    assert stamps == sorted(stamps) and abs(stamps[0] - time.time_ns()) < 60e9  # epoch ns
    assert not (tmp_path / "Frontend" / "Frontend-0.resources.jsonl").exists()


def test_a_dead_pod_is_a_failed_scrape_not_a_crash(server, tmp_path):
    alive = ScrapeTarget("Worker", "Worker-0", server.fetch_metrics)
    dead = ScrapeTarget("Worker", "Worker-1", _closed_port_fetch)
    scraper = Scraper(lambda: [alive, dead], tmp_path, resources=False)
    scraper.scrape_once()
    scraper.stop()
    (ok,) = read_scrapes(tmp_path / "Worker" / "Worker-0.metrics.jsonl")
    (failed,) = read_scrapes(tmp_path / "Worker" / "Worker-1.metrics.jsonl")
    assert ok.ok is True and ok.samples["fake_up"] == 1
    assert failed.ok is False and "refused" in failed.error.lower()
    assert (scraper.scrapes, scraper.failed) == (2, 1)


def test_a_replacement_pod_gets_its_own_file(server, tmp_path):
    pods = ["Worker-aaaaa"]
    scraper = Scraper(
        lambda: [ScrapeTarget("Worker", name, server.fetch_metrics) for name in pods],
        tmp_path,
        resources=False,
    )
    scraper.scrape_once()
    pods[:] = ["Worker-bbbbb"]
    scraper.scrape_once()
    scraper.stop()
    assert sorted(p.name for p in (tmp_path / "Worker").iterdir()) == [
        "Worker-aaaaa.metrics.jsonl",
        "Worker-bbbbb.metrics.jsonl",
    ]


def test_not_an_exposition_is_a_failed_scrape(tmp_path):
    target = ScrapeTarget("Worker", "Worker-0", lambda timeout: b"<html>not found</html>\n{")
    scraper = Scraper(lambda: [target], tmp_path, resources=False)
    scraper.scrape_once()
    scraper.stop()
    (scrape,) = read_scrapes(tmp_path / "Worker" / "Worker-0.metrics.jsonl")
    assert scrape.ok is False and scrape.error


def test_exposition_keeps_buckets_drops_created_and_nan():
    text = (
        "# TYPE lat_seconds histogram\n"
        'lat_seconds_bucket{le="0.1",model="m"} 3\n'
        'lat_seconds_bucket{le="+Inf",model="m"} 5\n'
        'lat_seconds_sum{model="m"} 1.5\n'
        'lat_seconds_count{model="m"} 5\n'
        'lat_seconds_created{model="m"} 1.7e9\n'
        "# TYPE q gauge\n"
        "q NaN\n"
    )
    assert parse_exposition(text) == {
        'lat_seconds_bucket{le="0.1",model="m"}': 3.0,
        'lat_seconds_bucket{le="+Inf",model="m"}': 5.0,
        'lat_seconds_sum{model="m"}': 1.5,
        'lat_seconds_count{model="m"}': 5.0,
        "q": None,
    }


def test_resources_cover_the_process_tree_and_a_gone_process():
    # A parent with one child: the tree is two processes.
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        sample = sample_resources(proc.pid)
        while sample.get("processes") != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            sample = sample_resources(proc.pid)
        assert sample["ok"] is True and sample["processes"] == 2
        assert sample["rss_bytes"] > 1_000_000 and sample["cpu_s"] >= 0
    finally:
        import psutil

        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait()
    gone = sample_resources(proc.pid)
    assert gone["ok"] is False and str(proc.pid) in gone["error"]


def test_the_thread_scrapes_until_stopped_and_writes_resources(server, tmp_path):
    import os

    target = ScrapeTarget("Frontend", "Frontend-0", server.fetch_metrics, os.getpid())
    scraper = Scraper(lambda: [target], tmp_path, interval=0.05).start()
    deadline = time.monotonic() + 30
    while scraper.scrapes < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    scraper.stop()
    metrics = read_scrapes(tmp_path / "Frontend" / "Frontend-0.metrics.jsonl")
    resources = _lines(tmp_path / "Frontend" / "Frontend-0.resources.jsonl")
    assert len(metrics) == scraper.scrapes >= 3
    assert len(resources) == len(metrics) and all(r["ok"] for r in resources)
    count = scraper.scrapes
    time.sleep(0.2)
    assert scraper.scrapes == count  # stopped means stopped


def test_lines_carry_only_what_changed_and_read_back_whole(tmp_path):
    expositions = iter(
        [
            b"a 1\nb 2\nc 3\n",
            b"a 1\nb 5\nc 3\n",  # only b changed
            b"a 1\nb 5\n",  # c vanished (a worker's series dropped by the frontend)
            b"a 1\nb 5\nc 7\n",  # and came back
        ]
    )
    target = ScrapeTarget("Frontend", "Frontend-0", lambda timeout: next(expositions))
    scraper = Scraper(lambda: [target], tmp_path, resources=False)
    for _ in range(4):
        scraper.scrape_once()
    scraper.stop()
    path = tmp_path / "Frontend" / "Frontend-0.metrics.jsonl"
    raw = _lines(path)
    assert [len(line["values"]) for line in raw] == [3, 1, 0, 1]
    assert "keys" in raw[0] and all("keys" not in line for line in raw[1:])
    assert raw[2]["gone"] == [2]
    assert [s.samples for s in read_scrapes(path)] == [
        {"a": 1, "b": 2, "c": 3},
        {"a": 1, "b": 5, "c": 3},
        {"a": 1, "b": 5},
        {"a": 1, "b": 5, "c": 7},
    ]
    (pod,) = read_server_series(tmp_path)
    assert (pod.service, pod.pod, len(pod.scrapes), pod.resources) == (
        "Frontend",
        "Frontend-0",
        4,
        [],
    )


def test_parsing_only_changed_lines_gives_what_a_whole_parse_gives():
    real = (
        Path(__file__).resolve().parents[2] / "bench/data/dynamo-frontend-metrics.txt"
    ).read_text()
    lines = [line for line in real.splitlines() if line and not line.startswith("#")]
    # Every third value changes between scrapes, and one series vanishes.
    changed = [line if i % 3 else line.rsplit(" ", 1)[0] + " 7" for i, line in enumerate(lines[1:])]
    cache: dict = {}
    assert parse_exposition(real, cache) == parse_exposition(real)
    second = "\n".join(changed) + "\n"
    assert parse_exposition(second, cache) == parse_exposition(second)
    assert len(cache) == len(changed)  # the vanished line is forgotten
