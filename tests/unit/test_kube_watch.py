"""WatchCache without a server: 410 relists at once, a refused watch polls every >= 2 s."""

from __future__ import annotations

import threading

from kubernetes.client.exceptions import ApiException

from ftctl.platforms.kube.watch import FALLBACK_POLL_S, WatchCache
from ftctl.platforms.kubernetes import watch_enabled


class FakeList:
    """A list call: answers listings with a growing resourceVersion; watches per ``watches``."""

    def __init__(self, watches: list[int]) -> None:
        self.watches = list(watches)  # the status each watch attempt fails with, in order
        self.calls: list[tuple[str, str | None]] = []
        self.rv = 0

    def __call__(self, *args, watch=False, resource_version=None, **kwargs):
        if watch:
            self.calls.append(("watch", resource_version))
            raise ApiException(status=self.watches.pop(0) if self.watches else 403)
        self.rv += 1
        self.calls.append(("list", str(self.rv)))
        return {"metadata": {"resourceVersion": str(self.rv)}, "items": []}


class Pauses:
    """The cache's pause and clock: a pause is recorded and moves the clock, no sleeping;
    says stop after ``limit`` pauses."""

    def __init__(self, limit: int) -> None:
        self.limit, self.seen = limit, []
        self.now = 0.0
        self.done = threading.Event()

    def clock(self) -> float:
        return self.now

    def __call__(self, seconds: float) -> bool:
        self.seen.append(seconds)
        self.now += seconds
        if len(self.seen) >= self.limit:
            self.done.set()
            return True
        return False


def _run(watches: list[int], limit: int) -> tuple[FakeList, Pauses, WatchCache]:
    calls, pauses = FakeList(watches), Pauses(limit)
    cache = WatchCache(
        calls, ("ns",), {}, threading.Condition(), pause=pauses, clock=pauses.clock
    ).start()
    assert pauses.done.wait(10)
    cache._thread.join(10)
    return calls, pauses, cache


def test_a_410_relists_at_once_and_watches_from_the_new_version():
    calls, pauses, cache = _run([410, 403], limit=1)
    assert calls.calls == [("list", "1"), ("watch", "1"), ("list", "2"), ("watch", "2")]
    assert cache.expired == 1 and cache.relists == 2
    assert pauses.seen == [FALLBACK_POLL_S]  # only after the refusal, none after the 410


def test_a_refused_watch_polls_no_faster_than_every_2_s_and_backs_off():
    calls, pauses, cache = _run([], limit=12)
    assert FALLBACK_POLL_S >= 2.0
    assert pauses.seen and all(p >= 2.0 for p in pauses.seen)
    lists = [c for c in calls.calls if c[0] == "list"]
    watches = [c for c in calls.calls if c[0] == "watch"]
    # A list per pause (the first, then one after each but the last, which stops it): a poll
    # every 2 s. The watch is retried after 2, 4, 8 s: at t = 0, 2, 6, 14 of the 24 s.
    assert len(lists) == len(pauses.seen) == 12
    assert len(watches) == 4
    assert cache.synced and not cache.watching and cache.watch_failures == len(watches)


def test_watches_are_on_unless_turned_off():
    assert watch_enabled(None) and watch_enabled("1") and watch_enabled("yes")
    assert not any(watch_enabled(v) for v in ("0", "off", "false", "no", " OFF "))
