"""Live Prometheus exposition of running loads, built with prometheus-client.

Metric names are the seed's (002): ``client_requests_total{status}``, ``client_latency_seconds``
(histogram), plus ``client_requests_in_flight`` and ``ftctl_faults_total``. Every sample carries
``run``, ``test`` and ``load`` labels; the counters of a load's worker processes are already
merged by the load handle (``Stats.merge``), so one scrape sees the whole load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ftctl.clients.legacy import LATENCY_BUCKETS, Stats

LABELS = ("run", "test", "load")


@dataclass
class LoadSource:
    """One load as the exposition sees it: its labels and a way to read its counters now."""

    run: str
    test: str
    load: str
    stats: Callable[[], Stats]
    has_latency: bool = True  # False: only counts are known (aiperf's progress), no histogram


@dataclass
class LiveRegistry:
    """What is running now: loads come and go as tests start and end; faults are counted."""

    sources: list[LoadSource] = field(default_factory=list)
    faults: dict[tuple[str, str], int] = field(default_factory=dict)  # (run, test) -> count
    run: str = ""  # the `run` label of what this registry exposes

    def add(self, source: LoadSource) -> None:
        self.sources.append(source)

    def remove(self, source: LoadSource) -> None:
        if source in self.sources:
            self.sources.remove(source)

    def fault(self, run: str, test: str) -> None:
        self.faults[(run, test)] = self.faults.get((run, test), 0) + 1


def source_of(run: str, test: str, load: str, handle: object) -> LoadSource:
    """The exposition's view of a running load handle: its merged counters when it keeps
    them (the built-in client), else the counts of its progress (aiperf: no latency)."""
    stats = getattr(handle, "stats", None)
    if callable(stats):
        return LoadSource(run, test, load, stats)

    def from_progress() -> Stats:
        progress = handle.progress()  # type: ignore[attr-defined]
        by_status = {"ok": progress.ok, "error": progress.failed}
        return Stats(
            ok=progress.ok,
            failed=progress.failed,
            in_flight=progress.in_flight,
            by_status={k: v for k, v in by_status.items() if v},
        )

    return LoadSource(run, test, load, from_progress, has_latency=False)


class _Collector:
    """A prometheus-client collector reading the registry at each scrape."""

    def __init__(self, live: LiveRegistry) -> None:
        self.live = live

    def collect(self) -> Iterator:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        requests = CounterMetricFamily(
            "client_requests",
            "Requests completed, by outcome (ok or an error class).",
            labels=[*LABELS, "status"],
        )
        in_flight = GaugeMetricFamily(
            "client_requests_in_flight", "Requests sent and not yet answered.", labels=LABELS
        )
        latency = HistogramMetricFamily(
            "client_latency_seconds", "Request latency (all attempts of a request).", labels=LABELS
        )
        for source in list(self.live.sources):
            stats = source.stats()
            labels = [source.run, source.test, source.load]
            for status, count in sorted(stats.by_status.items()):
                requests.add_metric([*labels, status], count)
            in_flight.add_metric(labels, stats.in_flight)
            if not source.has_latency:
                continue
            buckets, cumulative = [], 0
            for bound, count in zip(LATENCY_BUCKETS, stats.buckets, strict=False):
                cumulative += count
                buckets.append((f"{bound:g}", cumulative))
            buckets.append(("+Inf", sum(stats.buckets)))
            latency.add_metric(labels, buckets, stats.latency_sum)
        faults = CounterMetricFamily(
            "ftctl_faults", "Faults injected so far.", labels=["run", "test"]
        )
        for (run, test), count in sorted(self.live.faults.items()):
            faults.add_metric([run, test], count)
        yield from (requests, in_flight, latency, faults)


class MetricsServer:
    """Serves ``GET /metrics`` on 127.0.0.1:``port`` (0: any free port) from a thread.

    Either one load's ``stats`` (``ftctl load``) or a ``LiveRegistry`` (``ftctl run``).
    """

    def __init__(
        self,
        port: int,
        stats: Callable[[], Stats] | None = None,
        *,
        live: LiveRegistry | None = None,
        run: str = "",
    ) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import (
            ThreadingWSGIServer,
            _SilentHandler,  # prometheus-client's own quiet handler (no access log lines)
            make_server,
            make_wsgi_app,
        )

        self.live = live or LiveRegistry()
        if stats is not None:
            self.live.add(LoadSource(run, "", "default", stats))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self.live))
        self._server = make_server(
            "127.0.0.1",
            port,
            make_wsgi_app(registry),
            ThreadingWSGIServer,
            handler_class=_SilentHandler,
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever: only if it runs
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
