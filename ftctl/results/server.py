"""Server-side series of a result directory: ``<Service>/<pod>.metrics.jsonl`` and ``.resources.jsonl``.

Written by ``ftctl.observe``; read here into full snapshots per scrape, so checks and reports
never see the delta encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ftctl.layout import METRICS_SUFFIX, RESOURCES_SUFFIX


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
