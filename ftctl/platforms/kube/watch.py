"""List-then-watch caches of the graph's pods and its DGD: waits wake on change, not on a poll.

Each cache lists once, then watches from the list's resourceVersion, keeping the version of
every event it applies (a watch that ends is re-opened from it). A 410 Gone (that version was
compacted) relists at once and watches from the new list. When the watch itself cannot be used
(refused, or it broke), the cache polls instead: it relists every FALLBACK_POLL_S and retries
the watch with a backoff. While a cache has no listing at all (its list failed) readers go to
the API themselves and waiters re-check every FALLBACK_POLL_S.

Reads served by a cache may lag the API server by the watch's delivery time: a caller that
decides something from one read right after its own write (where to connect, the state before
a fault) reads the API directly instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

FALLBACK_POLL_S = 2.0  # waits re-check at least this often; the only polling left
WATCH_TIMEOUT_S = 60  # each watch request's timeoutSeconds; then it is re-opened from its RV
WATCH_RETRY_MAX_S = 60.0  # backoff cap between attempts to re-open a refused watch
# Connect and read timeouts of a watch request: the server ends it after WATCH_TIMEOUT_S, so a
# read silent much longer than that is a dead connection.
WATCH_REQUEST_TIMEOUT = (10, WATCH_TIMEOUT_S + 30)


def _meta(obj: Any) -> tuple[str, str | None]:
    """(name, resourceVersion) of a client model or a dict (custom objects come as dicts)."""
    if isinstance(obj, dict):
        meta = obj.get("metadata") or {}
        return meta.get("name", ""), meta.get("resourceVersion")
    return obj.metadata.name, obj.metadata.resource_version


class WatchCache:
    """Objects of one list call (``name -> object``), kept current by a watch thread.

    Args:
        list_call: the client's list method (``CoreV1Api.list_namespaced_pod`` ...); it is
            called with ``watch=True`` for the watch, as ``kubernetes.watch`` does.
        args, kwargs: its arguments (namespace, selectors).
        changed: the condition notified on every change; waiters of several caches share one.
        name: the thread's name.
        watch: False polls only (relists every FALLBACK_POLL_S, never opens a watch).
        pause: ``pause(seconds) -> stopped``; the default waits on the stop event (tests pass
            one that records the pauses instead of sleeping).
        clock: monotonic seconds, for the watch's retry backoff (tests pass their own).
    """

    def __init__(
        self,
        list_call: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        changed: threading.Condition,
        name: str = "kube-watch",
        *,
        watch: bool = True,
        pause: Callable[[float], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.list_call, self.args, self.kwargs = list_call, args, kwargs
        self.changed = changed
        self.use_watch = watch
        self.objects: dict[str, Any] = {}
        self.synced = False  # a listing is held (from the watch, or a poll when polling)
        self.watching = False  # a watch is open: the listing is current, not a poll's
        self.version = 0  # bumped on every change a waiter may care about
        self.relists = 0  # lists made (the first, one per 410, one per poll)
        self.expired = 0  # 410 Gone answers to a watch (each followed by a relist)
        self.watch_failures = 0  # watches refused or broken (each: poll, then retry)
        self.resource_version: str | None = None
        self.error: BaseException | None = None  # the last list or watch failure
        self._stop = threading.Event()
        self._pause = pause or self._stop.wait
        self._clock = clock
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> WatchCache:
        """List now (so reads right after are served), then keep current in the background.

        A failed first list is not raised: the cache stays unsynced (readers call the API
        themselves and meet the error there) and the thread retries.
        """
        try:
            self._relist()
        except Exception as exc:
            self.error = exc
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread; an open watch is cut at once. Idempotent."""
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def snapshot(self) -> list[Any] | None:
        """The cached objects, or None when no listing is held (the caller asks the API)."""
        with self.changed:
            return list(self.objects.values()) if self.synced else None

    def _relist(self) -> None:
        listing = self.list_call(*self.args, **self.kwargs)
        if isinstance(listing, dict):
            items = listing.get("items") or []
            rv = (listing.get("metadata") or {}).get("resourceVersion")
        else:
            items = listing.items or []
            rv = listing.metadata.resource_version
        with self.changed:
            self.objects = {_meta(o)[0]: o for o in items}
            self.resource_version = rv
            self.synced = True
            self.error = None
            self.relists += 1
            self.version += 1
            self.changed.notify_all()

    def _apply(self, etype: str, obj: Any) -> None:
        name, rv = _meta(obj)
        with self.changed:
            if rv:
                self.resource_version = rv
            if etype == "BOOKMARK":  # only a newer resourceVersion; nothing changed
                return
            if etype == "DELETED":
                self.objects.pop(name, None)
            elif etype in ("ADDED", "MODIFIED"):
                self.objects[name] = obj
            self.version += 1
            self.changed.notify_all()

    def _watch_once(self) -> None:
        """One watch request from ``resource_version`` until the server ends it (or stop)."""
        from kubernetes import watch

        self._watch = watch.Watch()
        if self._stop.is_set():
            return
        for event in self._watch.stream(
            self.list_call,
            *self.args,
            resource_version=self.resource_version,
            timeout_seconds=WATCH_TIMEOUT_S,
            allow_watch_bookmarks=True,
            _request_timeout=WATCH_REQUEST_TIMEOUT,
            **self.kwargs,
        ):
            if self._stop.is_set():
                return
            self._set_watching(True)
            self._apply(event["type"], event["object"])

    def _run(self) -> None:
        from kubernetes.client.exceptions import ApiException

        polling = not self.use_watch  # relist every FALLBACK_POLL_S (no watch, or it failed)
        retry_watch_at = 0.0  # monotonic; when a refused watch may be tried again
        backoff = FALLBACK_POLL_S
        while not self._stop.is_set():
            if not self.synced or polling:  # after a failed list, a 410, or a poll's turn
                try:
                    self._relist()
                except Exception as exc:  # the API went away: readers call it themselves
                    self.error = exc
                    self._desync()
                    if self._pause(FALLBACK_POLL_S):
                        return
                    continue
            if self.use_watch and self._clock() >= retry_watch_at:
                try:
                    self._watch_once()
                    self._set_watching(True)  # ended by the server's timeout: re-open from RV
                    polling, backoff = False, FALLBACK_POLL_S
                    continue
                except ApiException as exc:
                    if exc.status == 410:  # that version was compacted: relist at once
                        self.expired += 1
                        self._desync()
                        continue
                    if self._stop.is_set():
                        return
                    self._watch_failed(exc)
                except Exception as exc:  # refused, cut, or a dead connection
                    if self._stop.is_set():
                        return
                    self._watch_failed(exc)
                polling = True
                retry_watch_at = self._clock() + backoff
                backoff = min(backoff * 2, WATCH_RETRY_MAX_S)
            if self._pause(FALLBACK_POLL_S):
                return

    def _watch_failed(self, exc: BaseException) -> None:
        self.error = exc
        self.watch_failures += 1
        self._set_watching(False)

    def _set_watching(self, on: bool) -> None:
        if self.watching != on:
            with self.changed:
                self.watching = on
                self.version += 1
                self.changed.notify_all()

    def _desync(self) -> None:
        with self.changed:
            self.synced = False
            self.watching = False
            self.version += 1
            self.changed.notify_all()
