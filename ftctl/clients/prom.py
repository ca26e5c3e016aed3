"""Live Prometheus exposition of a running load (client_requests_total, client_latency_seconds)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ftctl.clients.legacy import LATENCY_BUCKETS, Stats


def render_prometheus(stats: Stats) -> str:
    """Prometheus text format 0.0.4 of ``stats``."""
    lines = [
        "# HELP client_requests_total Requests completed, by outcome (ok or error class).",
        "# TYPE client_requests_total counter",
    ]
    for status in sorted(stats.by_status):
        lines.append(f'client_requests_total{{status="{status}"}} {stats.by_status[status]}')
    lines += [
        "# HELP client_requests_in_flight Requests sent and not yet answered.",
        "# TYPE client_requests_in_flight gauge",
        f"client_requests_in_flight {stats.in_flight}",
        "# HELP client_latency_seconds Request latency (all attempts of a request).",
        "# TYPE client_latency_seconds histogram",
    ]
    cumulative = 0
    for bound, count in zip(LATENCY_BUCKETS, stats.buckets, strict=False):
        cumulative += count
        lines.append(f'client_latency_seconds_bucket{{le="{bound:g}"}} {cumulative}')
    total = sum(stats.buckets)
    lines.append(f'client_latency_seconds_bucket{{le="+Inf"}} {total}')
    lines.append(f"client_latency_seconds_sum {stats.latency_sum:.6f}")
    lines.append(f"client_latency_seconds_count {total}")
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves ``GET /metrics`` on 127.0.0.1:``port`` (0: any free port) from a thread."""

    def __init__(self, port: int, stats: Callable[[], Stats]) -> None:
        get_stats = stats

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = render_prometheus(get_stats()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass  # scrapes are not worth a line on stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
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
