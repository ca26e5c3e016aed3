"""Server-side series of a result directory: ``<Service>/<pod>.metrics.jsonl`` and ``.resources.jsonl``.

Written by ``ftctl.observe``; read here into full snapshots per scrape, so checks and reports
never see the delta encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ftctl.layout import METRICS_SUFFIX, RESOURCES_SUFFIX
from ftctl.results.model import ServiceServer


@dataclass
class Scrape:
    """One scrape of one pod: when, whether it answered, and every sample it exposed."""

    t_ns: int
    ok: bool
    samples: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None


@dataclass
class PodSeries:
    """Everything observed of one pod."""

    service: str
    pod: str
    scrapes: list[Scrape] = field(default_factory=list)
    resources: list[dict] = field(default_factory=list)


def _json_lines(path: Path) -> list[dict]:
    lines = []
    with path.open("rb") as fh:
        for raw in fh:
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # a truncated last line of a killed run
            if isinstance(line, dict) and isinstance(line.get("t_ns"), int):
                lines.append(line)
    return lines


def read_scrapes(path: Path) -> list[Scrape]:
    """Full snapshots from a delta-encoded ``.metrics.jsonl`` (see ``ftctl.observe``)."""
    names: dict[int, str] = {}
    current: dict[str, float | None] = {}
    scrapes = []
    for line in _json_lines(path):
        if not line.get("ok"):
            scrapes.append(Scrape(line["t_ns"], False, error=str(line.get("error", ""))))
            continue
        for sid, key in line.get("keys", ()):
            names[sid] = key
        for sid in line.get("gone", ()):
            current.pop(names.get(sid, ""), None)
        for sid, value in line.get("values", ()):
            if sid in names:
                current[names[sid]] = value
        scrapes.append(Scrape(line["t_ns"], True, dict(current)))
    return scrapes


def read_server_series(result_dir: Path) -> list[PodSeries]:
    """Every pod's series under ``result_dir``, by service then pod name."""
    pods: dict[tuple[str, str], PodSeries] = {}
    for suffix in (METRICS_SUFFIX, RESOURCES_SUFFIX):
        for path in sorted(Path(result_dir).glob(f"*/*{suffix}")):
            if not path.is_file():
                continue  # a FIFO or a folder named like a series is not read
            key = (path.parent.name, path.name[: -len(suffix)])
            series = pods.setdefault(key, PodSeries(*key))
            if suffix == METRICS_SUFFIX:
                series.scrapes = read_scrapes(path)
            else:
                series.resources = _json_lines(path)
    return [pods[k] for k in sorted(pods)]


# -- series arithmetic for checks and reports ---------------------------------------------------

Point = tuple[int, float]  # (t_ns, value)


def _labels_of(key: str) -> tuple[str, dict[str, str]]:
    name, brace, rest = key.partition("{")
    if not brace:
        return name, {}
    labels = {}
    for part in _split_labels(rest.rstrip("}")):
        k, _, v = part.partition("=")
        labels[k] = v.strip('"')
    return name, labels


def _split_labels(text: str) -> list[str]:
    # Label values may hold commas inside quotes; split only outside them.
    parts, current, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        parts.append("".join(current))
    return parts


def matches(key: str, name: str, labels: dict[str, str] | None = None) -> bool:
    """Whether sample ``key`` is metric ``name`` carrying every label of ``labels``."""
    if not key.startswith(name) or (len(key) > len(name) and key[len(name)] != "{"):
        return False
    if not labels:
        return True
    have = _labels_of(key)[1]
    return all(have.get(k) == str(v) for k, v in labels.items())


def pod_points(pod: PodSeries, name: str, labels: dict[str, str] | None = None) -> list[Point]:
    """(t_ns, sum of the matching samples) for each answered scrape that exposes the metric."""
    points = []
    for scrape in pod.scrapes:
        if not scrape.ok:
            continue
        values = [
            v for k, v in scrape.samples.items() if v is not None and matches(k, name, labels)
        ]
        if values:
            points.append((scrape.t_ns, float(sum(values))))
    return points


def increase(points: list[Point]) -> float:
    """A counter's increase over ``points``; a drop is a reset (a restart), counted from 0."""
    total = 0.0
    for (_, a), (_, b) in zip(points, points[1:], strict=False):
        total += b - a if b >= a else b
    return total


def window(points: list[Point], start_ns: int | None, end_ns: int | None) -> list[Point]:
    """The points with start <= t < end (None: unbounded)."""
    return [
        p
        for p in points
        if (start_ns is None or p[0] >= start_ns) and (end_ns is None or p[0] < end_ns)
    ]


def slope_per_minute(points: list[Point]) -> float | None:
    """Least-squares slope of ``points`` in value units per minute (None below 2 points)."""
    if len(points) < 2:
        return None
    t0 = points[0][0]
    xs = [(t - t0) / 60e9 for t, _ in points]
    ys = [v for _, v in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


# Gauges a user looks at first: in-flight and queued requests (ai-dynamo 1.6.1 names).
KEY_GAUGES = (
    "dynamo_frontend_inflight_requests",
    "dynamo_frontend_queued_requests",
    "dynamo_component_inflight_requests",
)


def summarize_server(result_dir: Path, fault_ns: int | None) -> list[ServiceServer]:
    """Per service: scrapes, key gauges before/after the fault, peak RSS and CPU used."""
    by_service: dict[str, list[PodSeries]] = {}
    for pod in read_server_series(result_dir):
        by_service.setdefault(pod.service, []).append(pod)
    out = []
    for service, pods in sorted(by_service.items()):
        summary = ServiceServer(
            service=service,
            pods=len(pods),
            scrapes=sum(len(p.scrapes) for p in pods),
            failed_scrapes=sum(1 for p in pods for s in p.scrapes if not s.ok),
        )
        for name in KEY_GAUGES:
            points = [pt for p in pods for pt in pod_points(p, name)]
            if not points:
                continue
            phases = {"overall": points}
            if fault_ns is not None:
                phases["before"] = window(points, None, fault_ns)
                phases["after"] = window(points, fault_ns, None)
            summary.gauges[name] = {
                phase: {"mean": sum(v for _, v in pts) / len(pts), "max": max(v for _, v in pts)}
                for phase, pts in phases.items()
                if pts
            }
        rss = [r["rss_bytes"] for p in pods for r in p.resources if r.get("ok")]
        summary.rss_max_mb = max(rss) / 1e6 if rss else None
        cpu = [
            increase([(r["t_ns"], r["cpu_s"]) for r in p.resources if r.get("ok")]) for p in pods
        ]
        summary.cpu_s = sum(cpu) if any(p.resources for p in pods) else None
        out.append(summary)
    return out
