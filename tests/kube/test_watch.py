"""The watches of pods and the DGD against the fake: 410 Gone relists, a refused watch polls."""

from __future__ import annotations

import time

import pytest

from tests.kube.conftest import make_test

pytestmark = pytest.mark.fake_only  # compacts the fake's watch history, refuses its watches


def _until(condition, timeout: float = 30.0, what: str = "condition"):
    """Wait until ``condition()`` is truthy (checked every 50 ms); its value, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"not within {timeout:.0f}s: {what}")


def test_a_410_relists_and_the_cache_keeps_following(fake, platform_factory, tmp_path):
    platform = platform_factory()
    platform.deploy(make_test("watch-410"), tmp_path)
    platform.wait_ready(60)
    before = platform.watch_stats()
    assert all(s["synced"] for s in before.values()), before
    since = time.monotonic()
    fake.compact_watch()  # history gone, watches cut: re-opened from their RV, they get 410
    after = _until(
        lambda: (
            (stats := platform.watch_stats())
            and all(
                s["expired"] > before[k]["expired"]
                and s["relists"] > before[k]["relists"]
                and s["synced"]
                for k, s in stats.items()
            )
            and stats
        ),
        what="both caches relisted after 410",
    )
    # The fake saw the relists: plain lists of pods and of the DGD after the compaction.
    lists = [
        path
        for t, method, path, query in fake.request_log
        if t >= since and method == "GET" and "watch=" not in query
    ]
    assert any(p.endswith("/pods") for p in lists), lists
    assert any(p.endswith("/dynamographdeployments") for p in lists), lists
    assert all(int(s["resource_version"]) >= fake.compacted_rv for s in after.values()), after
    # The watch goes on from the new list: a fault's effect is seen through the cache.
    worker = platform.pods("VllmDecodeWorker")[0]
    record = platform.verify_fault(platform.terminate_process(worker, "dynamo.vllm", "SIGKILL"), 60)
    assert record.verified, record.evidence
    platform.wait_for_recovery(60)
    assert [p.ready for p in platform.pods()] == [True, True]


def test_a_refused_watch_falls_back_to_polling(fake, platform_factory, tmp_path):
    fake.refuse_watch = True  # RBAC without the watch verb
    since = time.monotonic()
    try:
        platform = platform_factory()
        platform.deploy(make_test("watch-refused"), tmp_path)
        platform.wait_ready(60)
        stats = platform.watch_stats()
        assert all(s["synced"] and not s["watching"] for s in stats.values()), stats
        assert all(s["watch_failures"] >= 1 for s in stats.values()), stats
        assert [p.ready for p in platform.pods()] == [True, True]
    finally:
        fake.refuse_watch = False
    # Each cache polls by relisting; a refused watch is retried after a list, with a backoff,
    # so never more often than it lists (the interval itself: tests/unit/test_kube_watch.py).
    log = [(p, q) for t, m, p, q in list(fake.request_log) if t >= since and m == "GET"]
    for kind in ("/pods", "/dynamographdeployments"):
        watches = sum(1 for p, q in log if p.endswith(kind) and "watch=true" in q)
        lists = sum(1 for p, q in log if p.endswith(kind) and "watch=" not in q)
        assert 1 <= watches <= lists, (kind, watches, lists)


def test_watch_off_polls_the_api_directly(fake, platform_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("FTCTL_KUBE_WATCH", "0")
    platform = platform_factory()
    platform.deploy(make_test("watch-off"), tmp_path)
    platform.wait_ready(60)
    assert platform.watch_stats() == {}
    assert [p.ready for p in platform.pods()] == [True, True]
