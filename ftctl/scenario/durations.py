"""Durations: numbers of seconds or strings like ``250ms``, ``30s``, ``5m``, ``1h``, ``1m30s``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ftctl.errors import ScenarioError

if TYPE_CHECKING:
    from ftctl.scenario.yamlio import Document

# Longer than any soak test, and far below what sleeps and timers overflow on.
MAX_DURATION = 366 * 24 * 3600.0

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$")
# Compound forms as format_duration writes them: 1m30s, 2h5m.
_COMPOUND = re.compile(r"^\s*(?:\d+(?:\.\d+)?(?:ms|h|m|s))+\s*$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value, *, where: str = "") -> float:
    """Seconds from ``30`` / ``1.5`` / ``"30s"`` / ``"250ms"`` / ``"5m"`` / ``"1h"`` / ``"1m30s"``.

    Args:
        value: a non-negative number of seconds or a string with an optional unit.
        where: prefix for the error message (e.g. ``"file.yaml:3:5: load.timeout"``).

    Raises:
        ScenarioError: negative, non-numeric or unknown unit.
    """
    seconds: float | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        m = _RE.match(value)
        if m:
            seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
        elif _COMPOUND.match(value):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value))
    if seconds is None or seconds < 0 or seconds != seconds or seconds == float("inf"):
        prefix = f"{where}: " if where else ""
        raise ScenarioError(
            f"{prefix}{value!r} is not a valid duration "
            "(a number of seconds >= 0 or a string like 250ms, 30s, 5m, 1h)"
        )
    if seconds > MAX_DURATION:
        prefix = f"{where}: " if where else ""
        raise ScenarioError(
            f"{prefix}{value!r} is longer than the limit of 366 days ({MAX_DURATION:.0f} s)"
        )
    return seconds


def duration_at(doc: Document, path: list, value: Any) -> float:
    """``parse_duration`` of the value at ``path`` of ``doc``; the error names file, line, field."""
    try:
        return parse_duration(value)
    except ScenarioError as exc:
        raise doc.error(path, exc.message) from None


def format_duration(seconds: float) -> str:
    """Short human form: ``250ms``, ``30s``, ``1m30s``, ``2h``."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    if seconds < 60 or seconds != int(seconds):
        return f"{seconds:g}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return out + (f"{secs}s" if secs else "")
