"""Server-side observation during a run: every pod's /metrics and its process resources.

From deploy-ready to teardown a background thread scrapes each pod the platform names, at a
fixed interval, and appends one JSON line per scrape to ``<Service>/<pod>.metrics.jsonl``
(and, where the pod's processes are visible here, ``.resources.jsonl``). A dead pod is a
failed scrape line, never an exception; a replacement pod has a new name, hence its own file.

A Dynamo frontend exposes ~700 samples (~80 KB) per scrape, so lines are deltas: a series is
named once (``keys``: ``[[id, 'name{labels}'], ...]``), then each line carries only the values
that changed (``values``: ``[[id, value], ...]``) and the series that vanished (``gone``).
``ftctl.results.server.read_scrapes`` turns the lines back into full snapshots.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import orjson

from ftctl.layout import METRICS_SUFFIX, RESOURCES_SUFFIX, pod_file
from ftctl.platforms.base import ScrapeTarget

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 1.0
_MAX_WORKERS = 4  # pods scraped in parallel, so one slow pod does not delay the others


def parse_exposition(text: str, cache: dict[str, str] | None = None) -> dict[str, float | None]:
    """``{'name{label="v",...}': value}`` of a Prometheus text exposition.

    Parsed by prometheus-client; ``_created`` samples (creation timestamps, not measurements)
    are left out, and NaN or infinity is kept as None (JSON has neither).

    With ``cache`` (kept between scrapes of one pod), a series prometheus-client has already
    parsed is recognised by its exact text (``name{labels}``) and only its value is converted:
    the pure-Python parser costs ~30 us a sample, a frontend has ~700, most change each scrape.
    """
    from prometheus_client.parser import text_string_to_metric_families

    known = cache if cache is not None else {}
    samples: dict[str, float | None] = {}
    fresh: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        if "_created" in line and _metric_name(line).endswith("_created"):
            continue
        brace = line.rfind("}")
        series, value_text = (
            (line[: brace + 1], line[brace + 1 :]) if brace != -1 else line.partition(" ")[::2]
        )
        key = known.get(series)
        if key is not None:
            try:
                value = float(value_text)  # "+Inf", "NaN" included; a timestamp is not
            except ValueError:
                fresh.append(line)
                continue
            samples[key] = value if math.isfinite(value) else None
            seen.add(series)
        else:
            fresh.append(line)
    if fresh:
        parsed = [
            sample
            for family in text_string_to_metric_families("\n".join(fresh) + "\n")
            for sample in family.samples
        ]
        if len(parsed) != len(fresh):  # not one sample per line: parse the text whole
            return _parse_whole(text)
        for line, sample in zip(fresh, parsed, strict=True):
            key, value = _entry(sample)
            samples[key] = value
            brace = line.rfind("}")
            series = line[: brace + 1] if brace != -1 else line.partition(" ")[0]
            known[series] = key
            seen.add(series)
    if cache is not None and len(cache) > len(seen):  # forget what the pod no longer exposes
        for series in set(cache) - seen:
            del cache[series]
    return samples


def _metric_name(line: str) -> str:
    end = len(line)
    for sep in ("{", " "):
        i = line.find(sep)
        if i != -1:
            end = min(end, i)
    return line[:end]


def _entry(sample) -> tuple[str, float | None]:
    key = sample.name
    if sample.labels:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
        key = f"{key}{{{inner}}}"
    value = float(sample.value)
    return key, value if math.isfinite(value) else None


def _parse_whole(text: str) -> dict[str, float | None]:
    from prometheus_client.parser import text_string_to_metric_families

    return dict(
        _entry(sample)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    )


def sample_resources(pid: int) -> dict[str, Any]:
    """CPU seconds, RSS and process count of the process tree rooted at ``pid``."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error as exc:
        return {"ok": False, "error": f"process {pid}: {type(exc).__name__}"}
    cpu_s, rss, alive = 0.0, 0, 0
    for proc in procs:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                # Reaped children's time too, so the total does not drop when a child exits.
                cpu_s += times.user + times.system + times.children_user + times.children_system
                rss += proc.memory_info().rss
            alive += 1
        except psutil.Error:
            continue  # exited between the listing and the read
    if not alive:
        return {"ok": False, "error": f"process {pid}: gone"}
    return {"ok": True, "cpu_s": round(cpu_s, 3), "rss_bytes": rss, "processes": alive}


class Scraper:
    """Scrapes the platform's targets every ``interval`` seconds until ``stop()``."""

    def __init__(
        self,
        targets: Callable[[], list[ScrapeTarget]],
        result_dir: Path,
        *,
        interval: float = DEFAULT_INTERVAL_S,
        resources: bool = True,
    ) -> None:
        self._targets = targets
        self._result_dir = Path(result_dir)
        self.interval = interval
        self._resources = resources
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._files: dict[Path, IO[bytes]] = {}
        self._series: dict[Path, _SeriesState] = {}
        self._line_cache: dict[tuple[str, str], dict[str, str]] = {}
        self._pool = ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="scrape")
        self.scrapes = 0
        self.failed = 0

    def start(self) -> Scraper:
        self._thread = threading.Thread(target=self._loop, name="ftctl-scraper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the scrape in progress; close the files. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 10)
            self._thread = None
        self._pool.shutdown(wait=True, cancel_futures=True)
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def _loop(self) -> None:
        start = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            try:
                self.scrape_once()
            except Exception as exc:  # the observer must never take the run down
                log.warning("scrape: %s", exc)
            # Fixed ticks from the start: a slow scrape skips ticks instead of drifting.
            tick = max(tick + 1, int((time.monotonic() - start) / self.interval) + 1)
            self._stop.wait(max(0.0, start + tick * self.interval - time.monotonic()))

    def scrape_once(self) -> None:
        """Scrape every current target once, in parallel, and append the lines."""
        targets = self._targets()
        timeout = max(0.5, min(self.interval * 0.9, 5.0))
        results = list(self._pool.map(lambda t: self._scrape(t, timeout), targets))
        for target, (metrics_line, resources_line) in zip(targets, results, strict=True):
            self._append(target, METRICS_SUFFIX, metrics_line)
            if resources_line is not None:
                self._append(target, RESOURCES_SUFFIX, resources_line)

    def _scrape(self, target: ScrapeTarget, timeout: float) -> tuple[dict, dict | None]:
        t_ns = time.time_ns()
        started = time.perf_counter()
        try:
            text = target.fetch(timeout).decode("utf-8", errors="replace")
            cache = self._line_cache.setdefault((target.service, target.pod), {})
            samples = parse_exposition(text, cache)
            metrics = {
                "t_ns": t_ns,
                "ok": True,
                "scrape_ms": round((time.perf_counter() - started) * 1000, 2),
                "samples": samples,
            }
        except Exception as exc:  # refused, reset, timeout, not an exposition: a failed scrape
            metrics = {"t_ns": t_ns, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        resources = None
        if self._resources and target.pid is not None:
            resources = {"t_ns": time.time_ns(), **sample_resources(target.pid)}
        elif self._resources and target.sample is not None:
            try:
                resources = {"t_ns": time.time_ns(), **target.sample()}
            except Exception as exc:  # unavailable is a recorded fact, never a crash
                resources = {"t_ns": time.time_ns(), "ok": False, "error": str(exc)[:300]}
        return metrics, resources

    def _append(self, target: ScrapeTarget, suffix: str, line: dict) -> None:
        path = pod_file(self._result_dir, target.service, target.pod, suffix)
        fh = self._files.get(path)
        if fh is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = self._files[path] = path.open("ab")
        if "samples" in line:
            line = self._series.setdefault(path, _SeriesState()).delta(line)
        fh.write(orjson.dumps(line) + b"\n")
        fh.flush()
        if suffix == METRICS_SUFFIX:
            self.scrapes += 1
            self.failed += not line["ok"]


class _SeriesState:
    """What one metrics file has said so far: series ids and their last values."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.last: dict[int, float | None] = {}

    def delta(self, line: dict) -> dict:
        samples: dict[str, float | None] = line.pop("samples")
        new_keys, values, seen = [], [], set()
        for key, value in samples.items():
            sid = self.ids.get(key)
            if sid is None:
                sid = self.ids[key] = len(self.ids)
                new_keys.append([sid, key])
            seen.add(sid)
            if sid not in self.last or self.last[sid] != value:
                values.append([sid, value])
                self.last[sid] = value
        gone = [sid for sid in self.last if sid not in seen]
        for sid in gone:
            del self.last[sid]
        out = {**line, "values": values}
        if new_keys:
            out["keys"] = new_keys
        if gone:
            out["gone"] = gone
        return out
