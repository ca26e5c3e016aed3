"""The built-in load client (``load.client: legacy``): closed/open loop, upstream JSONL.

``run_clients`` is the async engine (many logical clients in one event loop). ``LegacyLoad``
is what the runner holds: it runs the engine in child processes (``ftctl.clients.legacy_worker``)
so the runner's own threads never skew client timestamps.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from time import perf_counter_ns

import orjson

from ftctl.clients.base import LoadProgress, LoadTarget
from ftctl.clients.http import ERROR_CLASSES, Attempt, send
from ftctl.clients.loadtable import percentile
from ftctl.clients.prompts import PayloadMaker
from ftctl.errors import ClientError
from ftctl.layout import client_log, load_worker_stderr, warmup_log
from ftctl.scenario.model import LoadShape, LoadSpec, TokenDist

# Prometheus histogram bounds of client_latency_seconds (seconds; +Inf implied).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
# Open loop: a dispatch lag p99 above this means the client could not keep up.
LAG_WARN_MS = 10.0
# Logical clients per worker process before another process is added.
CLIENTS_PER_PROCESS = 64
# Open loop: total req/s one worker process is given before another is added (it manages
# 2,000-5,000 req/s on a loaded 2-core machine; see bench/client_bench.py).
RATE_PER_PROCESS = 1500


@dataclass
class Stats:
    """Live counters of one engine; cheap to update per record, shipped to the parent."""

    ok: int = 0
    failed: int = 0
    in_flight: int = 0
    by_status: dict[str, int] = field(default_factory=dict)  # "ok" or an error class
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def add(self, ok: bool, status: str, latency_s: float) -> None:
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, latency_s)] += 1
        self.latency_sum += latency_s

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def merge(items: Sequence[Stats]) -> Stats:
        """The sum of several engines' counters."""
        out = Stats()
        for s in items:
            out.ok += s.ok
            out.failed += s.failed
            out.in_flight += s.in_flight
            out.latency_sum += s.latency_sum
            for k, v in s.by_status.items():
                out.by_status[k] = out.by_status.get(k, 0) + v
            out.buckets = [a + b for a, b in zip(out.buckets, s.buckets, strict=True)]
        return out


@dataclass
class LoadSummary:
    """What a load did: counts, first error, wall time, open-loop dispatch lag."""

    requests: int = 0
    ok: int = 0
    failed: int = 0
    attempts: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # error class -> failed requests
    first_error: str | None = None
    first_error_ns: int | None = None
    start_ns: int | None = None  # first request sent
    end_ns: int | None = None  # last request ended
    offered_rate: float | None = None  # open loop: scheduled req/s
    lag_p50_ms: float | None = None  # open loop: start_ns - scheduled_ns
    lag_p99_ms: float | None = None
    lag_max_ms: float | None = None
    behind: bool = False  # open loop: the client could not keep up with the schedule
    warnings: list[str] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        if self.start_ns is None or self.end_ns is None:
            return 0.0
        return (self.end_ns - self.start_ns) / 1e9

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LoadSummary:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @staticmethod
    def merge(items: Sequence[LoadSummary]) -> LoadSummary:
        """Combine the summaries of several worker processes (lags: worst of them)."""
        out = LoadSummary()
        for s in items:
            out.requests += s.requests
            out.ok += s.ok
            out.failed += s.failed
            out.attempts += s.attempts
            for k, v in s.errors.items():
                out.errors[k] = out.errors.get(k, 0) + v
            if s.first_error_ns is not None and (
                out.first_error_ns is None or s.first_error_ns < out.first_error_ns
            ):
                out.first_error, out.first_error_ns = s.first_error, s.first_error_ns
            if s.start_ns is not None:
                out.start_ns = s.start_ns if out.start_ns is None else min(out.start_ns, s.start_ns)
            if s.end_ns is not None:
                out.end_ns = s.end_ns if out.end_ns is None else max(out.end_ns, s.end_ns)
            if s.offered_rate is not None:
                out.offered_rate = (out.offered_rate or 0.0) + s.offered_rate
            for name in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms"):
                v = getattr(s, name)
                if v is not None:
                    setattr(out, name, max(v, getattr(out, name) or 0.0))
            out.behind = out.behind or s.behind
            out.warnings.extend(s.warnings)
        return out


class _Clock:
    """Epoch nanoseconds derived from perf_counter_ns: monotonic and cheap, one anchor."""

    def __init__(self) -> None:
        self.epoch0 = time.time_ns()
        self.perf0 = perf_counter_ns()

    def epoch(self, perf_ns: int) -> int:
        return self.epoch0 + (perf_ns - self.perf0)


class _LocalTime:
    """Upstream's ``time`` field (local ISO, 1 s), cached per second."""

    def __init__(self) -> None:
        self._sec = -1
        self._text = ""

    def __call__(self, epoch_ns: int) -> str:
        sec = epoch_ns // 1_000_000_000
        if sec != self._sec:
            self._sec = sec
            self._text = datetime.fromtimestamp(sec).strftime("%Y-%m-%dT%H:%M:%S")
        return self._text


class ClientRun:
    """One engine: a set of logical clients in this event loop, writing their JSONL files."""

    def __init__(
        self,
        spec: LoadSpec,
        urls: Sequence[str],
        model: str,
        out_dir: Path,
        *,
        clients: Sequence[int] | None = None,
        rate: float | None = None,
        offset_s: float = 0.0,
        stop: asyncio.Event | None = None,
        force: asyncio.Event | None = None,
        stop_grace: float = 5.0,
        on_record: Callable[[dict], None] | None = None,
        seed_offset: int = 0,
        share: tuple[int, int] = (0, 1),
        anchor_epoch_ns: int | None = None,
    ) -> None:
        if not urls:
            raise ClientError("the legacy client needs at least one target URL")
        self.spec = spec
        self.grpc = spec.protocol == "grpc"
        if self.grpc:
            from ftctl.kserve.wire import grpc_target  # grpc is imported only when used

            # KServe v2 over gRPC: the URL names the server; the RPC is in the record's url.
            self.urls = [f"grpc://{grpc_target(u)}" for u in urls]
        else:
            self.urls = [u.rstrip("/") + spec.endpoint for u in urls]
        self.model = model
        self.out_dir = Path(out_dir)
        self.clients = list(range(spec.clients)) if clients is None else list(clients)
        self.open_loop = spec.arrival != "closed"
        # Open loop: this engine's share of the total rate; closed: per-client max rate.
        self.rate = rate if rate is not None else spec.request_rate
        self.offset_s = offset_s
        self.stop = stop or asyncio.Event()
        self.force = force or asyncio.Event()
        self.stop_grace = stop_grace
        self.on_record = on_record
        self.seed_offset = seed_offset
        # A shaped load: every worker process walks the one global schedule and takes the
        # arrivals k with k % n == p (share = (p, n)).
        self.share = share
        self.anchor_epoch_ns = anchor_epoch_ns  # when the shared schedule starts (None: now)
        self.stats = Stats()
        self.summary = LoadSummary()
        self._clock = _Clock()
        self._ltime = _LocalTime()
        self._fds: dict[int, int] = {}
        self._tasks: set[asyncio.Task] = set()
        self._lags: list[int] = []
        self._deadline: int | None = None

    # -- output ----------------------------------------------------------------------------
    def _fd(self, client: int, warmup: bool = False) -> int:
        key = -1 - client if warmup else client
        fd = self._fds.get(key)
        if fd is None:
            path = self.out_dir / (warmup_log(client) if warmup else client_log(client))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._fds[key] = fd
        return fd

    def _write(self, client: int, record: dict, warmup: bool = False) -> None:
        # One write() per line on an O_APPEND descriptor: a kill loses at most this line.
        os.write(self._fd(client, warmup), orjson.dumps(record) + b"\n")

    # -- one logical request ---------------------------------------------------------------
    async def _request(
        self,
        session,
        timeout,
        client: int,
        index: int,
        maker: PayloadMaker,
        sched: int | None,
        body: bytes | None = None,
    ) -> int:
        """Run one logical request (all its attempts); return its start (perf ns)."""
        spec = self.spec
        if body is None:
            body, _osl = maker.make()
        attempts: list[Attempt] = []
        n_urls = len(self.urls)
        start = perf_counter_ns()
        if sched is not None:
            self._lags.append(self._clock.epoch(start) - sched)
        self.stats.in_flight += 1
        try:
            for a in range(spec.retries + 1):
                # Retries move to the next frontend, like upstream's pod i % n.
                url = self.urls[(client + index + a) % n_urls]
                att_start = perf_counter_ns()
                try:
                    if self.grpc:
                        att = await self._send_grpc(
                            session, url, body, spec.streaming, spec.timeout
                        )
                    else:
                        att = await send(session, url, body, spec.streaming, timeout)
                except asyncio.CancelledError:
                    att = Attempt(url=url, start_perf=att_start).fail(
                        "cancelled", "the load was stopped before the answer came"
                    )
                    attempts.append(att)
                    raise
                attempts.append(att)
                if att.ok or a == spec.retries or self.stop.is_set():
                    break
                if not await self._pause(spec.retry_delay):
                    break
        finally:
            self.stats.in_flight -= 1
            if attempts:
                self._record(client, index, attempts, start, sched)
        return start

    def _record(
        self, client: int, index: int, attempts: list[Attempt], start: int, sched: int | None
    ) -> None:
        last = attempts[-1]
        end = last.end_perf or perf_counter_ns()
        # The request starts when its first attempt does: one stamp for both, so a request's
        # times and its attempts' never disagree (they were microseconds apart, and recovery,
        # read on attempts, could come out before the attempt it names).
        start = attempts[0].start_perf or start
        start_ns = self._clock.epoch(start)
        end_ns = self._clock.epoch(end)
        results = [
            {
                "status": a.status,
                "result": a.result,
                "request_elapsed_time": ((a.end_perf or end) - a.start_perf) / 1e9,
                # Each attempt's own times: recovery is measured on attempts (README).
                "start_ns": self._clock.epoch(a.start_perf),
                "end_ns": self._clock.epoch(a.end_perf or end),
                # No "pod" (upstream writes the frontend pod it port-forwarded to): ftctl's
                # client sees only a URL and the proxy or port-forward picks the pod, so an
                # always-empty "pod" would promise what is not known (README, Metric notes).
                "url": a.url,
                **({"error": f"{a.error}: {a.message}"} if a.error else {}),
            }
            for a in attempts
        ]
        error = None if last.ok else f"{last.error}: {last.message}"
        total = (end - start) / 1e9
        record = {
            "time": self._ltime(start_ns),
            "results": results,
            "total_time": total,
            "start_ns": start_ns,
            "end_ns": end_ns,
            "scheduled_ns": sched,
            "ttft": last.ttft_ns / 1e9 if last.ttft_ns is not None else None,
            "itl": last.itl_s,
            "output_tokens": last.output_tokens,
            "error": error,
            "ok": last.ok,
            "client": client,
            "request": index,
            "attempts": len(attempts),
        }
        if index < self.spec.warmup:  # sent like any other, kept apart, never counted
            record["warmup"] = True
            self._write(client, record, warmup=True)
            return
        self._write(client, record)
        s = self.summary
        s.requests += 1
        s.attempts += len(attempts)
        s.start_ns = start_ns if s.start_ns is None else min(s.start_ns, start_ns)
        s.end_ns = end_ns if s.end_ns is None else max(s.end_ns, end_ns)
        if last.ok:
            s.ok += 1
        else:
            s.failed += 1
            s.errors[last.error] = s.errors.get(last.error, 0) + 1
            if s.first_error_ns is None or start_ns < s.first_error_ns:
                s.first_error, s.first_error_ns = error, start_ns
        self.stats.add(last.ok, "ok" if last.ok else last.error, total)
        if self.on_record is not None:
            self.on_record(record)

    async def _pause(self, delay: float) -> bool:
        """Sleep ``delay`` s; False (at once) if the load is stopped meanwhile."""
        if self.stop.is_set():
            return False
        if delay <= 0:
            return True
        try:
            await asyncio.wait_for(self.stop.wait(), delay)
        except TimeoutError:
            return True
        return False

    def _more(self, index: int) -> bool:
        rpc = self.spec.requests_per_client
        if self.stop.is_set():
            return False
        if self._deadline is not None and perf_counter_ns() >= self._deadline:
            return False
        return rpc is None or index < rpc + self.spec.warmup

    def _maker(self, client: int):
        if self.grpc:
            from ftctl.clients.grpc_kserve import GrpcPayloadMaker

            return GrpcPayloadMaker(self.spec, self.model, client)
        return PayloadMaker(self.spec, self.model, client)

    # -- closed loop -----------------------------------------------------------------------
    async def _closed_client(self, session, timeout, client: int) -> None:
        maker = self._maker(client)
        counter = itertools.count()
        interval_ns = int(1e9 / self.rate) if self.rate else 0
        # Spread the clients' first requests over one interval: clients that start in lockstep
        # stay in lockstep, and a fault would then land in the same gap for all of them.
        stagger_ns = interval_ns * client // max(1, self.spec.clients)
        next_slot = [perf_counter_ns() + stagger_ns]

        async def worker() -> None:
            while True:
                index = next(counter)
                if not self._more(index):
                    return
                if interval_ns:
                    # Upstream's max_request_rate: requests at least 1/rate apart per client.
                    now = perf_counter_ns()
                    slot = max(now, next_slot[0])
                    next_slot[0] = slot + interval_ns
                    if slot > now and not await self._pause((slot - now) / 1e9):
                        return
                    if not self._more(index):
                        return
                start = await self._request(session, timeout, client, index, maker, None)
                if interval_ns:
                    # Count the next slot from the real start too: a pause that overslept
                    # must not bring the next request closer than 1/rate.
                    next_slot[0] = max(next_slot[0], start + interval_ns)

        await asyncio.gather(*(worker() for _ in range(max(1, self.spec.concurrency))))

    async def _closed_loop(self, session, timeout) -> None:
        await asyncio.gather(*(self._closed_client(session, timeout, c) for c in self.clients))

    # -- open loop -------------------------------------------------------------------------
    async def _shaped_loop(self, session, timeout) -> None:
        """Open loop along ``spec.shape`` (ftctl.clients.shapes): scheduled times are kept."""
        from ftctl.clients.shapes import offsets

        spec = self.spec
        assert spec.shape is not None
        part, parts = self.share
        clients = self.clients
        makers = {c: self._maker(c) for c in clients}
        counters = {c: itertools.count() for c in clients}
        total = None
        if spec.requests_per_client is not None:
            total = (spec.requests_per_client + spec.warmup) * spec.clients  # every process
        sem = asyncio.Semaphore(max(1, len(clients) * max(1, spec.concurrency)))
        start = float(perf_counter_ns())
        if self.anchor_epoch_ns is not None:  # one time origin for every worker process
            start += self.anchor_epoch_ns - time.time_ns()
        clock = self._clock

        async def one(client: int, index: int, sched_ns: int, body: bytes) -> None:
            async with sem:
                await self._request(session, timeout, client, index, makers[client], sched_ns, body)

        for k, offset_s in enumerate(
            offsets(spec.shape, spec.request_rate, spec.arrival, spec.seed)
        ):
            if total is not None and k >= total:
                break
            t = start + offset_s * 1e9
            if self.stop.is_set() or (self._deadline is not None and t >= self._deadline):
                break
            if k % parts != part:
                continue
            client = clients[(k // parts) % len(clients)]
            body, _osl = makers[client].make()  # before the wait: not part of the lag
            delay = (t - perf_counter_ns()) / 1e9
            await asyncio.sleep(delay if delay > 0 else 0)
            index = next(counters[client])
            task = asyncio.create_task(one(client, index, clock.epoch(int(t)), body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _open_loop(self, session, timeout) -> None:
        spec = self.spec
        if spec.shape is not None:
            await self._shaped_loop(session, timeout)
            return
        if not self.rate or self.rate <= 0:
            raise ClientError(f"arrival {spec.arrival!r} needs a request_rate > 0 (total req/s)")
        self.summary.offered_rate = self.rate
        rng = random.Random(spec.seed + 7919 * (self.seed_offset + 1))
        clients = self.clients
        makers = {c: self._maker(c) for c in clients}
        counters = {c: itertools.count() for c in clients}
        total = None
        if spec.requests_per_client is not None:
            total = (spec.requests_per_client + spec.warmup) * len(clients)
        # In-flight cap: clients x concurrency; arrivals that find it full wait, and the wait
        # shows as dispatch lag (never silently dropped).
        sem = asyncio.Semaphore(max(1, len(clients) * max(1, spec.concurrency)))
        period_ns = 1e9 / self.rate
        t = float(perf_counter_ns()) + self.offset_s * 1e9
        clock = self._clock

        async def one(client: int, index: int, sched_ns: int, body: bytes) -> None:
            async with sem:
                await self._request(session, timeout, client, index, makers[client], sched_ns, body)

        for k in itertools.count():
            if total is not None and k >= total:
                break
            if self.stop.is_set() or (self._deadline is not None and t >= self._deadline):
                break
            client = clients[k % len(clients)]
            body, _osl = makers[client].make()  # before the wait: not part of the lag
            delay = (t - perf_counter_ns()) / 1e9
            # Always yield: in a burst the previous arrival's task must start before this one.
            await asyncio.sleep(delay if delay > 0 else 0)
            index = next(counters[client])
            task = asyncio.create_task(one(client, index, clock.epoch(int(t)), body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            t += period_ns if spec.arrival == "constant" else rng.expovariate(1.0) * period_ns
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- the run ---------------------------------------------------------------------------
    async def run(self) -> LoadSummary:
        """Run every client to completion (or until stopped); return the summary."""
        import aiohttp

        self.out_dir.mkdir(parents=True, exist_ok=True)
        for c in self.clients:
            self._fd(c)  # the files exist from the start, even for a client that never finishes
        if self.spec.duration is not None:
            self._deadline = perf_counter_ns() + int(self.spec.duration * 1e9)
        timeout = aiohttp.ClientTimeout(total=self.spec.timeout)
        try:
            if self.grpc:
                from ftctl.clients.grpc_kserve import GrpcChannels, send_grpc
                from ftctl.kserve.wire import grpc_target

                self._send_grpc = send_grpc
                async with GrpcChannels([grpc_target(u) for u in self.urls]) as channels:
                    await self._run_main(channels, timeout)
            else:
                await self._run_http(timeout)
        finally:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
        self._finish_lags()
        return self.summary

    async def _run_main(self, session, timeout) -> None:
        if self.open_loop:
            main = asyncio.create_task(self._open_loop(session, timeout))
        else:
            main = asyncio.create_task(self._closed_loop(session, timeout))
        await self._supervise(main)

    async def _run_http(self, timeout) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        async with aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
        ) as session:
            await self._run_main(session, timeout)

    async def _supervise(self, main: asyncio.Task) -> None:
        stop_wait = asyncio.create_task(self.stop.wait())
        await asyncio.wait({main, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not main.done():
            # Stopped: no new requests; those in flight get `stop_grace` to complete.
            force_wait = asyncio.create_task(self.force.wait())
            await asyncio.wait(
                {main, force_wait}, timeout=self.stop_grace, return_when=asyncio.FIRST_COMPLETED
            )
            force_wait.cancel()
            if not main.done():
                main.cancel()
                for task in list(self._tasks):
                    task.cancel()
            await asyncio.gather(main, *list(self._tasks), return_exceptions=True)
        stop_wait.cancel()
        if main.done() and not main.cancelled() and main.exception() is not None:
            raise main.exception()

    def _finish_lags(self) -> None:
        if not self.open_loop or not self._lags:
            return
        lags = sorted(x / 1e6 for x in self._lags)
        s = self.summary
        s.lag_p50_ms = round(percentile(lags, 50), 3)
        s.lag_p99_ms = round(percentile(lags, 99), 3)
        s.lag_max_ms = round(lags[-1], 3)
        if s.lag_p99_ms > LAG_WARN_MS:
            s.behind = True
            sent = s.requests / s.wall_s if s.wall_s else 0.0
            s.warnings.append(
                f"the client could not keep up with the schedule: dispatch lag p99 "
                f"{s.lag_p99_ms:.1f} ms (offered {self.rate:.1f} req/s, sent {sent:.1f} req/s)"
            )


async def run_clients(
    spec: LoadSpec,
    urls: list[str],
    model: str,
    out_dir: Path,
    *,
    stop: asyncio.Event | None = None,
    on_record: Callable[[dict], None] | None = None,
) -> LoadSummary:
    """Run ``spec.clients`` logical clients in this event loop; JSONL into ``out_dir``.

    Args:
        spec: the load section (closed or open loop, retries, streaming, ...).
        urls: base URLs of the frontends (``http://host:port``); requests rotate over them.
        model: the model name sent in every request.
        out_dir: where ``client_<i>.log.txt`` are appended.
        stop: set it to stop: no new requests, in-flight ones get a grace period.
        on_record: called with every JSONL record after it is written.
    """
    return await ClientRun(spec, urls, model, out_dir, stop=stop, on_record=on_record).run()


# -- the runner's handle: worker processes ---------------------------------------------------
def spec_to_dict(spec: LoadSpec) -> dict:
    """The load spec as JSON-able data (for the worker processes)."""
    return asdict(spec)


def spec_from_dict(data: dict) -> LoadSpec:
    """Inverse of ``spec_to_dict``."""
    data = dict(data)
    data["input_tokens"] = TokenDist(**data["input_tokens"])
    data["output_tokens"] = TokenDist(**data["output_tokens"])
    data["prompts"] = tuple(data.get("prompts") or ())
    if data.get("shape"):
        shape = dict(data["shape"])
        shape["steps"] = tuple(tuple(step) for step in shape.get("steps") or ())
        data["shape"] = LoadShape(**shape)
    known = {k: v for k, v in data.items() if k in LoadSpec.__dataclass_fields__}
    return LoadSpec(**known)


SHAPE_START_DELAY_S = 1.0  # a shaped load's schedule starts this long after start()


def default_processes(spec: LoadSpec) -> int:
    """Worker processes for ``spec``: one per CLIENTS_PER_PROCESS clients (or, open loop, per
    RATE_PER_PROCESS req/s), at most one per CPU and per client."""
    cpus = os.cpu_count() or 1
    want = -(-spec.clients // CLIENTS_PER_PROCESS)
    if spec.arrival != "closed" and spec.request_rate:
        want = max(want, -(-int(spec.request_rate) // RATE_PER_PROCESS))
    return max(1, min(spec.clients, cpus, want))


class LegacyLoad:
    """A running legacy load: worker processes, progress from their pipes (implements LoadHandle).

    ``on_progress`` is called from a reader thread about every 100 ms per worker; its
    exceptions are swallowed (a display must never stop a load).
    """

    def __init__(
        self,
        spec: LoadSpec,
        target: LoadTarget,
        out_dir: Path,
        on_progress: Callable[[LoadProgress], None] | None = None,
        *,
        urls: Sequence[str] | None = None,
        processes: int | None = None,
        stop_grace: float = 5.0,
    ) -> None:
        self.spec = spec
        self.target = target
        self.out_dir = Path(out_dir)
        self.on_progress = on_progress
        self.urls = list(urls) if urls else [target.base_url]
        self.processes = max(1, min(processes or default_processes(spec), max(1, spec.clients)))
        self.stop_grace = stop_grace
        self.summary: LoadSummary | None = None
        self.started_ns: int | None = None
        self._procs: list[subprocess.Popen] = []
        self._readers: list[threading.Thread] = []
        self._stats: list[Stats] = []
        self._summaries: list[LoadSummary | None] = []
        self._lock = threading.Lock()
        self._history: list[tuple[float, int]] = []
        self._ready = threading.Event()
        self._killed = False
        # Set by wait(): one line per worker that exited with an error (not killed by us).
        self.worker_errors: list[str] = []

    def _configs(self) -> list[dict]:
        spec, n = self.spec, self.processes
        out = []
        for p in range(n):
            clients = list(range(p, spec.clients, n))
            rate = spec.request_rate
            offset = 0.0
            if spec.shape is not None:
                pass  # every process walks the whole schedule and keeps its share
            elif spec.arrival != "closed" and spec.request_rate:
                # The total rate is split by clients; constant arrivals interleave by offset.
                rate = spec.request_rate * len(clients) / spec.clients
                offset = p / spec.request_rate
            out.append(
                {
                    "spec": spec_to_dict(spec),
                    "urls": self.urls,
                    "model": self.target.model,
                    "out_dir": str(self.out_dir),
                    "clients": clients,
                    "rate": rate,
                    "offset_s": offset,
                    "stop_grace": self.stop_grace,
                    "seed_offset": p,
                    "share": [p, n],
                }
            )
        return out

    def start(self) -> None:
        """Start the worker processes; return at once."""
        if self._procs:
            raise ClientError("this load was already started")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        configs = self._configs()
        if self.spec.shape is not None:
            # Every process must follow one schedule from one origin: far enough ahead for
            # the workers to have started (a late one sends its first arrivals late, and the
            # lag shows it).
            anchor = time.time_ns() + int(SHAPE_START_DELAY_S * 1e9)
            for cfg in configs:
                cfg["anchor_epoch_ns"] = anchor
        for p, cfg in enumerate(configs):
            err = open(self.out_dir / load_worker_stderr(p), "wb")  # noqa: SIM115
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "ftctl.clients.legacy_worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    env=env,
                    start_new_session=True,  # the runner, not the terminal, decides when to stop
                )
            except OSError as exc:
                self.kill()
                raise ClientError(f"cannot start the legacy client worker: {exc}") from exc
            finally:
                err.close()
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(cfg).encode() + b"\n")
            proc.stdin.flush()  # stdin stays open: its EOF tells an orphaned worker to stop
            self._procs.append(proc)
            self._stats.append(Stats())
            self._summaries.append(None)
            t = threading.Thread(target=self._read, args=(p, proc), daemon=True)
            t.start()
            self._readers.append(t)

    def _read(self, p: int, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                if "ready_ns" in msg:
                    if self.started_ns is None or msg["ready_ns"] < self.started_ns:
                        self.started_ns = msg["ready_ns"]
                    self._ready.set()
                if "stats" in msg:
                    s = Stats(**msg["stats"])
                    self._stats[p] = s
                if "summary" in msg:
                    self._summaries[p] = LoadSummary.from_dict(msg["summary"])
            if "stats" in msg and self.on_progress is not None:
                try:
                    self.on_progress(self.progress())
                except Exception:  # a display failure must never stop the load
                    pass

        self._ready.set()  # a worker that ended never blocks wait_started()

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until the first worker sends requests (``started_ns`` is then set)."""
        return self._ready.wait(timeout)

    def wait_sending(self, timeout: float | None = None, on_wait: object = None) -> bool:
        """The LoadHandle name of ``wait_started`` (starts in well under a second: no progress)."""
        return self.wait_started(timeout)

    def stats(self) -> Stats:
        """Counters summed over the workers (for the Prometheus exposition)."""
        with self._lock:
            return Stats.merge(self._stats)

    def progress(self) -> LoadProgress:
        """Requests done so far, in flight, and the completion rate over the last ~2 s."""
        st = self.stats()
        done = st.ok + st.failed
        now = time.monotonic()
        with self._lock:
            self._history.append((now, done))
            while len(self._history) > 2 and now - self._history[0][0] > 2.0:
                self._history.pop(0)
            t0, d0 = self._history[0]
        rate = (done - d0) / (now - t0) if now - t0 > 0.05 else 0.0
        return LoadProgress(ok=st.ok, failed=st.failed, in_flight=st.in_flight, rate=rate)

    def _signal(self, sig: int) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass

    def stop(self) -> None:
        """Ask every worker to finish: no new requests; in-flight ones get ``stop_grace``."""
        self._signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every worker ended; False on timeout. Sets ``summary`` when done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for proc in self._procs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                proc.wait(left)
            except subprocess.TimeoutExpired:
                return False
        for t in self._readers:
            t.join(5)
        self._close()
        with self._lock:
            parts = [s for s in self._summaries if s is not None]
            summary = LoadSummary.merge(parts)
            missing = len(self._summaries) - len(parts)
        if missing:
            summary.warnings.append(f"{missing} worker process(es) ended without a summary")
        dead = []
        for p, proc in enumerate(self._procs):
            if proc.returncode and not self._killed:
                dead.append(
                    f"worker {p} exited with status {proc.returncode}: {self._stderr_tail(p)}"
                )
        summary.warnings.extend(dead)
        self.worker_errors = dead
        self.summary = summary
        self._tidy()
        return True

    def kill(self) -> None:
        """End every worker at once (cleanup path). Idempotent."""
        self._killed = True
        self._signal(signal.SIGKILL)
        for proc in self._procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close()

    def _close(self) -> None:
        for proc in self._procs:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass

    def _stderr_tail(self, p: int) -> str:
        path = self.out_dir / load_worker_stderr(p)
        try:
            lines = path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no stderr"
        return lines[-1] if lines else "no stderr"

    def _tidy(self) -> None:
        # Worker stderr files are kept only when something was written there.
        for p in range(len(self._procs)):
            path = self.out_dir / load_worker_stderr(p)
            try:
                if path.stat().st_size == 0:
                    path.unlink()
            except OSError:
                pass

    def __enter__(self) -> LegacyLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


__all__ = [
    "ERROR_CLASSES",
    "ClientRun",
    "LegacyLoad",
    "LoadSummary",
    "Stats",
    "run_clients",
]
