"""`ftctl run --metrics-port`: the loads' live counters, scraped mid-run by a real HTTP client."""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ftctl.runner import RunOptions, run_tests
from ftctl.scenario.model import Check
from tests.unit.test_runner import ServerPlatform, _test_case


def scrape(url: str) -> dict[str, list[Any]]:
    """Samples by name, parsed by prometheus-client from what the endpoint served."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


class Scraping:
    """An observer that scrapes the live endpoint when the runner reports a fault and when the
    load ends: both happen while the test's load is registered."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.at: dict[str, dict[str, list[Any]]] = {}

    def notify(self, kind: str, **fields: Any) -> None:
        if kind == "metrics_server":
            self.url = fields["url"]
        elif kind in ("fault_injected", "load_end") and kind not in self.at:
            assert self.url is not None
            self.at[kind] = scrape(self.url)


def test_metrics_port_serves_each_load_and_fault_while_the_test_runs(tmp_path):
    test = _test_case((Check(kind="fault_verified"),), requests=40)
    observer = Scraping()
    options = RunOptions(output_dir=tmp_path / "out", verify_timeout=10, metrics_port=0)
    outcome = run_tests(
        [test], options, observer=observer, platform_factory=lambda n: ServerPlatform()
    )
    assert observer.url is not None and observer.url.startswith("http://127.0.0.1:")

    at_fault = observer.at["fault_injected"]
    (fault,) = at_fault["ftctl_faults_total"]
    assert fault.labels["test"] == test.name and fault.value == 1
    assert fault.labels["run"].startswith("run-")
    (in_flight,) = at_fault["client_requests_in_flight"]
    assert in_flight.labels == {"run": fault.labels["run"], "test": test.name, "load": "default"}

    # When the load has ended, every request the client recorded is counted, by outcome,
    # and the latency histogram counts the same requests.
    at_end = observer.at["load_end"]
    (result,) = outcome.tests
    overall = result.result.overall  # what `ftctl parse` counts from the client records
    counted = sum(s.value for s in at_end["client_requests_total"])
    assert counted == overall.requests
    ok = sum(s.value for s in at_end["client_requests_total"] if s.labels["status"] == "ok")
    assert ok == overall.ok
    (histogram_count,) = at_end["client_latency_seconds_count"]
    assert histogram_count.value == counted


def test_without_metrics_port_nothing_listens(tmp_path):
    observer = Scraping()
    test = _test_case((), requests=4)
    options = RunOptions(output_dir=tmp_path / "out", verify_timeout=10)
    run_tests([test], options, observer=observer, platform_factory=lambda n: ServerPlatform())
    assert observer.url is None
