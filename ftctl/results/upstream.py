"""Upstream ``test.log.txt`` markers and upstream-style recovery time from service logs.

``test.log.txt`` stamps are host-local with 1 s resolution and no zone; container logs are UTC.
Upstream compared them directly (REFERENCE §9.2); here the host's UTC offset is inferred
from evidence in the directory before any local time meets a UTC one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ftctl.layout import (
    CLIENT_PREFIX,
    LOADS_DIR,
    LOG_SUFFIX,
    NOT_POD_LOG_SUFFIXES,
    PREVIOUS_LOG_SUFFIX,
    TEST_LOG_FILE,
)
from ftctl.results.files import read_regular
from ftctl.results.legacy import naive_epoch_s

TEST_LOG = TEST_LOG_FILE
_LINE = re.compile(r"^\[TEST\] (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\s+\S+\s+(.*)$")
_STAMP = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?)(Z|[+-]\d\d:?\d\d)?(?![\d:])")
READY_PATTERNS = re.compile(
    r"added model|VllmWorker for .* has been initialized|Model registration succeeded|"
    r"Decode worker handler initialized|Worker handler initialized|"
    r"TrtllmWorker for .* has been initialized"
)
_QUARTER_HOUR_S = 900


@dataclass
class TestLog:
    """Markers of an upstream ``test.log.txt`` as naive-local epoch seconds (read as UTC)."""

    deploy_start_s: float | None = None
    ready_s: float | None = None
    fault_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # the text after "Injecting failure for:"

    __test__ = False

    @property
    def startup_s(self) -> float | None:
        """Deploy start → ready, seconds (1 s resolution)."""
        if self.deploy_start_s is None or self.ready_s is None:
            return None
        return self.ready_s - self.deploy_start_s


def read_test_log(path: Path, warnings: list[str]) -> TestLog:
    """The deployment start, ready and fault-injection markers of ``test.log.txt``."""
    log = TestLog()
    try:
        text = read_regular(path).decode("utf-8", "replace")
    except OSError as exc:
        warnings.append(f"{path}: cannot read ({exc.strerror})")
        return log
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        stamp = naive_epoch_s(match.group(1))
        message = match.group(2)
        if stamp is None:
            continue
        if "Starting Deployment" in message and log.deploy_start_s is None:
            log.deploy_start_s = stamp
        elif (
            log.ready_s is None
            and log.deploy_start_s is not None
            and re.search(r"(?i)deployment\b.*\bis ready|\bready\b.*deployment", message)
        ):
            log.ready_s = stamp
        elif "Injecting failure for:" in message:
            log.fault_s.append(stamp)
            log.failures.append(message.split("Injecting failure for:", 1)[1].strip())
    return log


def line_time_s(line: str) -> float | None:
    """Epoch seconds of the first ISO timestamp in a log line (UTC when it has no zone)."""
    match = _STAMP.search(line)
    if not match:
        return None
    text = match.group(1).replace(" ", "T")
    zone = match.group(2)
    try:
        moment = datetime.fromisoformat(text + (("+00:00" if zone == "Z" else zone) or ""))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _lines(path: Path) -> list[str]:
    try:
        return read_regular(path).decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def _first_time(path: Path) -> float | None:
    for line in _lines(path):
        stamp = line_time_s(line)
        if stamp is not None:
            return stamp
    return None


def _last_time(path: Path) -> float | None:
    for line in reversed(_lines(path)):
        stamp = line_time_s(line)
        if stamp is not None:
            return stamp
    return None


def service_logs(test_dir: Path) -> list[Path]:
    """Container logs of every service folder (``<Service>/<pod>.log``, not metrics/events)."""
    logs: list[Path] = []
    try:
        children = sorted(p for p in test_dir.iterdir() if p.is_dir())
    except OSError:
        return []
    for child in children:
        if child.name.startswith(CLIENT_PREFIX) or child.name == LOADS_DIR:
            continue
        for log in sorted(child.glob(f"*{LOG_SUFFIX}")):
            if log.name.endswith(NOT_POD_LOG_SUFFIXES):
                continue
            logs.append(log)
    return logs


def round_offset_s(local_naive_s: float, utc_s: float) -> float:
    """Host UTC offset (local − UTC), rounded to a quarter hour, from two times of one moment."""
    return round((local_naive_s - utc_s) / _QUARTER_HOUR_S) * _QUARTER_HOUR_S


def infer_offset_from_logs(test_dir: Path, fault_local_s: float) -> float | None:
    """Host UTC offset from the service logs: a killed container's ``.previous.log`` ends at the
    fault, so its last (UTC) stamp and the (local) fault marker name the same moment.
    """
    for log in service_logs(test_dir):
        if log.name.endswith(PREVIOUS_LOG_SUFFIX):
            last = _last_time(log)
            if last is not None and abs(fault_local_s - last) < 15 * 3600:
                return round_offset_s(fault_local_s, last)
    return None


def machine_offset_s(local_naive_s: float) -> float:
    """UTC offset of this machine's zone at that local time (the fallback guess)."""
    naive = datetime.fromtimestamp(local_naive_s, UTC).replace(tzinfo=None)
    offset = naive.astimezone().utcoffset()
    return offset.total_seconds() if offset else 0.0


def ready_recovery_s(test_dir: Path, fault_utc_s: float) -> float | None:
    """Upstream legacy method: max over service logs of (first ready line after T_f − T_f)."""
    best: float | None = None
    for log in service_logs(test_dir):
        for line in _lines(log):
            if not READY_PATTERNS.search(line):
                continue
            stamp = line_time_s(line)
            if stamp is not None and stamp > fault_utc_s:
                delta = stamp - fault_utc_s
                best = delta if best is None else max(best, delta)
                break
    return best


def restart_gap_s(test_dir: Path) -> float | None:
    """Upstream aiperf method: first stamp of a current log − last stamp of its .previous.log.

    The maximum over the pods that restarted; None when no container restarted (a deleted pod
    has a new name and no previous log).
    """
    best: float | None = None
    for log in service_logs(test_dir):
        if not log.name.endswith(PREVIOUS_LOG_SUFFIX):
            continue
        current = log.with_name(log.name[: -len(PREVIOUS_LOG_SUFFIX)] + LOG_SUFFIX)
        last, first = _last_time(log), _first_time(current)
        if last is None or first is None:
            continue
        gap = first - last
        best = gap if best is None else max(best, gap)
    return best
