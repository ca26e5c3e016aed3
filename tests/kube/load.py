"""A small closed-loop HTTP load for the Kubernetes e2e tests, and recovery time by definition."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass
class Request:
    """One request: when it started and ended (epoch ns) and whether it succeeded."""

    start_ns: int
    end_ns: int
    ok: bool
    error: str = ""


class Load:
    """``clients`` threads sending chat completions one at a time until stopped."""

    def __init__(self, base_url: str, model: str, clients: int = 3, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self.model = model
        self.clients = clients
        self.timeout = timeout
        self.records: list[Request] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        self._lock = threading.Lock()

    def _one(self) -> Request:
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": "one two three four five"}],
                "max_tokens": 8,
                "stream": False,
            }
        ).encode()
        req = urllib.request.Request(
            self.base_url + "/v1/chat/completions", body, {"Content-Type": "application/json"}
        )
        start = time.time_ns()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read())
            ok = resp.status == 200 and bool(data.get("choices"))
            return Request(start, time.time_ns(), ok, "" if ok else "bad body")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return Request(start, time.time_ns(), False, type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.is_set():
            record = self._one()
            with self._lock:
                self.records.append(record)
            if not record.ok:
                time.sleep(0.05)  # no hot loop while the graph is down

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> list[Request]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)
        with self._lock:
            return sorted(self.records, key=lambda r: r.start_ns)


def recovery_time_s(records: list[Request], t_f: int, window_s: float) -> float | None:
    """DESIGN §5: R − T_f, R = first success after T_f with every request started in
    [R, R + W] successful (W cut at the end of the load); 0 without failures; None if never."""
    after = sorted((r for r in records if r.end_ns > t_f), key=lambda r: r.start_ns)
    if not any(not r.ok for r in after):
        return 0.0
    end = max(r.start_ns for r in records)
    for r in after:
        if not r.ok or r.start_ns < t_f:
            continue
        limit = min(r.start_ns + int(window_s * 1e9), end)
        if all(x.ok for x in after if r.start_ns <= x.start_ns <= limit):
            return (r.start_ns - t_f) / 1e9
    return None
