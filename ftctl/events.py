"""The ``events.jsonl`` timeline of a result directory (DESIGN.md §4).

One JSON object per line: ``{"t_ns": <epoch ns>, "kind": <kind>, ...}``. Kinds written by the
runner: ``deploy_start``, ``ready``, ``load_start``, ``fault_injected`` (t_ns = T_f),
``fault_verified``, ``fault_not_verified``, ``fault_resumed`` (a stall's SIGCONT or a partition's
heal, with ``fault_t_ns`` = that fault's T_f), ``recovered``, ``load_end``, ``teardown``,
``event_start`` / ``event_end`` (every timeline event, with ``event`` = its kind and ``index``),
``command_result`` (a run_command in one pod: ``argv``, ``exit_code``, ``stdout``,
``stderr``, ``expect_exit``), ``metrics_captured`` (``label``, ``files``, ``failed``),
``endpoint_failure`` (a connection the endpoint could not forward: ``pod``, ``reason``).
Readers tolerate a truncated last line.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from ftctl.layout import EVENTS_FILE  # noqa: F401 (re-exported: readers name it ev.EVENTS_FILE)

DEPLOY_START = "deploy_start"
READY = "ready"
LOAD_START = "load_start"
FAULT_INJECTED = "fault_injected"
FAULT_VERIFIED = "fault_verified"
FAULT_NOT_VERIFIED = "fault_not_verified"
COMMAND_RESULT = "command_result"  # run_command: pod, argv, exit_code, stdout, stderr, expected
METRICS_CAPTURED = "metrics_captured"  # capture_metrics: label, files, failed
FAULT_RESUMED = "fault_resumed"  # a stall's SIGCONT / a partition's heal (fault_t_ns = its T_f)
RECOVERED = "recovered"
LOAD_END = "load_end"
TEARDOWN = "teardown"
EVENT_START = "event_start"
EVENT_END = "event_end"
ENDPOINT_FAILURE = "endpoint_failure"  # a connection the platform's endpoint could not forward
# Cluster loads (placement: cluster, issue 15): the Job's pods with their clients and clock
# offsets at the start; a pod that died before it finished; start and end offsets per pod.
LOAD_PODS = "load_pods"
LOAD_POD_FAILED = "load_pod_failed"
LOAD_CLOCKS = "load_clocks"

# Kinds the runner only notifies its observers of (the progress display); not in events.jsonl.
TEST_START = "test_start"
TEST_END = "test_end"
PLATFORM_LOG = "platform_log"
WARNING = "warning"  # something the user should know once per run (``ftctl: warning:``)
METRICS_SERVER = "metrics_server"  # run --metrics-port: where the live metrics are served
EVENT = "event"  # a timeline event begins
TICK = "tick"  # load progress while waiting
LOAD_STARTING = "load_starting"  # a slow client's start-up (aiperf): sending / clients so far

# Timeline event kinds (``event_start``'s ``event``) that inject a fault.
FAULT_EVENT_KINDS = ("terminate_process", "delete_pod")


def now_ns() -> int:
    """Wall-clock epoch nanoseconds (the time base of every record)."""
    return time.time_ns()


class EventLog:
    """Appends events to ``events.jsonl``, one flushed line each; thread-safe."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / EVENTS_FILE
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, kind: str, t_ns: int | None = None, **fields: Any) -> dict[str, Any]:
        """Append one event and return it."""
        record = {"t_ns": now_ns() if t_ns is None else t_ns, "kind": kind, **fields}
        line = json.dumps(record, default=str, separators=(",", ":"))
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()
        return record

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_events(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Read an events file; return (events, warnings). Bad lines are skipped with a warning."""
    events: list[dict[str, Any]] = []
    warnings: list[str] = []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [], [f"{path}: cannot read ({exc.strerror})"]
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            warnings.append(f"{path}:{number}: unreadable event line skipped")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("t_ns"), int):
            warnings.append(f"{path}:{number}: event without integer t_ns skipped")
            continue
        events.append(record)
    return events, warnings
