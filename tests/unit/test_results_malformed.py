"""Property: malformed JSONL/JSON fed to every reader never lets an exception escape."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ftctl.results import parse_result_dir
from ftctl.results.aiperf import attempt_outcome, read_records
from ftctl.results.legacy import read_client_file
from ftctl.results.upstream import read_test_log

KEYS = [
    "time",
    "results",
    "status",
    "result",
    "total_time",
    "start_ns",
    "end_ns",
    "ok",
    "ttft",
    "itl",
    "error",
    "metadata",
    "metrics",
    "request_start_ns",
    "request_end_ns",
    "was_cancelled",
    "request_count",
    "error_request_count",
    "records",
    "avg",
    "value",
    "unit",
    "choices",
    "message",
    "content",
    "start_time",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["2025-10-03T12:00:00", "ms", "ns", "warmup", "x"])
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=6)
    ),
    max_leaves=20,
)


def _dump(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


lines = st.lists(
    values.map(_dump) | st.binary(max_size=60) | st.just(b"") | st.just(b'{"time": "20'),
    max_size=12,
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


EDGE_LEGACY = [
    b'{"time": "2025-10-03T12:00:00", "total_time": Infinity, "results": []}',
    b'{"time": "2025-10-03T12:00:00", "total_time": NaN, "results": []}',
    b'{"time": "9999-12-31T23:59:59", "total_time": 1e300}',
    b'{"start_ns": 1180591620717411303424, "end_ns": 1}',
    b'{"start_ns": -5, "end_ns": 3, "itl": [1, "x", null], "ttft": "fast"}',
    b'{"time": ["2025"], "total_time": 1}',
]
EDGE_EVENTS = [
    b'{"t_ns": 1180591620717411303424, "kind": "fault_injected"}',
    b'{"t_ns": -1, "kind": "fault_injected"}',
    b'{"t_ns": 5, "kind": "fault_verified", "pod_recovered_ns": 1e30}',
]


@SETTINGS
@given(lines)
@example(EDGE_LEGACY)
def test_legacy_reader_survives_anything(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "client_0.log.txt"
        path.write_bytes(b"\n".join(content))
        warnings: list[str] = []
        table, _ = read_client_file(path, 0, warnings)
        assert len(table) <= len(content)
        assert all(isinstance(w, str) for w in warnings)


@SETTINGS
@given(lines, values)
@example(
    [
        b'{"metadata": {"request_start_ns": 1180591620717411303424, "request_end_ns": 2}}',
        b'{"metadata": {"request_start_ns": 5, "request_end_ns": 2}, "metrics": {"request_latency": {"value": "x", "unit": "parsec"}}}',
        b'{"metadata": []}',
    ],
    {"records": {"request_count": {"avg": 1e300}}, "start_time": "garbage"},
)
def test_aiperf_readers_survive_anything(content, summary):
    with tempfile.TemporaryDirectory() as tmp:
        attempt = Path(tmp) / "client_0" / "attempt_0"
        attempt.mkdir(parents=True)
        (attempt / "profile_export.jsonl").write_bytes(b"\n".join(content))
        (attempt / "profile_export_aiperf.json").write_bytes(_dump(summary))
        ok, failed = attempt_outcome(attempt)
        assert ok >= 0 and failed >= 0
        read_records(attempt / "profile_export.jsonl", 0, [])
        result = parse_result_dir(Path(tmp), force_parser="aiperf")
        assert result.overall.requests >= 0
        result.to_json()


@SETTINGS
@given(lines, lines, st.binary(max_size=200))
@example(EDGE_LEGACY, EDGE_EVENTS, b"[TEST] 2025-99-99T00:00:00 INFO x: Injecting failure for: y")
def test_whole_legacy_directory_survives_anything(clients, events, test_log):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "t-decode_worker"
        root.mkdir()
        (root / "client_0.log.txt").write_bytes(b"\n".join(clients))
        (root / "events.jsonl").write_bytes(b"\n".join(events))
        (root / "test.log.txt").write_bytes(test_log)
        result = parse_result_dir(root, force_parser="legacy", sla=1.0)
        json.dumps(result.to_json(), default=str)
        read_test_log(root / "test.log.txt", [])
