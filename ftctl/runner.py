"""Executes a test's event timeline against a platform and writes its result directory.

Flow per test: deploy → wait ready → events (loads, waits, faults, recovery waits) → stop loads →
collect logs → teardown (always, on every exit path, unless ``keep_deployment``) → parse →
checks → verdict. Faults fire on a schedule anchored at load start, so waits never accumulate
drift; the injection delay against the schedule is recorded. Fault verification runs in the
background so that it never delays the next event.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ftctl import __version__, layout
from ftctl import events as ev
from ftctl.checks import CheckResult, evaluate, summarize_faults, verdict, worst
from ftctl.errors import ExitStatus, FtctlError, Interrupted, PlatformError, UsageError
from ftctl.layout import PREVIOUS_DIR, RUN_FILE, RUN_REPORT_FILE
from ftctl.observe import Scraper
from ftctl.platforms.base import (
    CommandResult,
    FaultRecord,
    LocalPlatformOptions,
    Platform,
    Pod,
    platform_options,
)
from ftctl.scenario.model import FAULT_EVENT_KINDS, Event, LoadSpec, TestCase

if TYPE_CHECKING:
    from ftctl.clients.prom import LiveRegistry, LoadSource

DEFAULT_READY_TIMEOUT_S = 600.0
DEFAULT_VERIFY_TIMEOUT_S = 120.0
DEFAULT_LOAD_TIMEOUT_S = 1200.0
DEFAULT_COMMAND_TIMEOUT_S = 60.0
INTERRUPTED_VERIFY_WAIT_S = 5.0
COMMAND_OUTPUT_MAX = 64 * 1024  # characters of stdout / stderr kept in events.jsonl (the tail)


@dataclass
class RunOptions:
    """Options of ``ftctl run`` that shape every test."""

    output_dir: Path = Path("results")
    platform: str | None = None  # overrides each scenario's platform
    client_type: str | None = None  # overrides every load's client
    keep_deployment: bool = False
    repeat: int = 1
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S
    verify_timeout: float = DEFAULT_VERIFY_TIMEOUT_S
    platform_options: dict[str, Any] = field(default_factory=dict)  # namespace, kubeconfig, …
    seed: int | None = None
    scrape_interval: float | None = None  # overrides each scenario's observe.interval (0: off)
    metrics_port: int | None = None  # serve the loads' live counters on 127.0.0.1 (0: any port)


@dataclass
class TestOutcome:
    """What happened to one test."""

    name: str
    result_dir: Path
    status: ExitStatus
    checks: list[CheckResult] = field(default_factory=list)
    result: Any = None  # ftctl.results.TestResult
    extra_results: list[Any] = field(default_factory=list)  # e.g. token-overflow phases
    error: str | None = None
    skipped: str | None = None
    duration_s: float = 0.0
    startup_s: float | None = None
    faults: list[FaultRecord] = field(default_factory=list)

    __test__ = False


@dataclass
class RunOutcome:
    """What happened to every test of a run."""

    tests: list[TestOutcome]

    @property
    def status(self) -> ExitStatus:
        return worst([t.status for t in self.tests])


class Observer(Protocol):
    """Receives progress notifications; its failures never abort a test."""

    def notify(self, kind: str, **fields: Any) -> None: ...


class _NullObserver:
    def notify(self, kind: str, **fields: Any) -> None:
        pass


def _safe_notify(observer: Observer, kind: str, **fields: Any) -> None:
    try:
        observer.notify(kind, **fields)
    except Exception:  # an observer must never break a fault test
        pass


PlatformFactory = Callable[[str], Platform]


def make_platform(
    name: str,
    options: dict[str, Any],
    log: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Platform:
    """Build the platform called ``name`` (imports lazily: kubernetes is heavy).

    ``options``: the platform options given (field name → value, only those set); an option
    the platform does not take raises OptionNotTakenError (exit 2) rather than being dropped.
    """
    typed = platform_options(name, options)
    if isinstance(typed, LocalPlatformOptions):
        from ftctl.platforms.local import LocalPlatform

        return LocalPlatform()
    from ftctl.platforms.kubernetes import KubernetesPlatform

    kwargs = {k: v for k, v in dataclasses.asdict(typed).items() if v is not None}
    return KubernetesPlatform(**kwargs, log=log, warn=warn)


class _TestLog:
    """``test.log.txt`` with the upstream marker lines (REFERENCE.md §4)."""

    def __init__(self, path: Path, name: str) -> None:
        self.logger = logging.getLogger(f"ftctl.test.{name}.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(
            logging.Formatter(
                "[TEST] %(asctime)s %(levelname)s root: %(message)s", "%Y-%m-%dT%H:%M:%S"
            )
        )
        self.logger.addHandler(self.handler)

    def info(self, message: str) -> None:
        self.logger.info(message)

    def error(self, message: str) -> None:
        self.logger.error(message)

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return str(value)


def _tool_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {"ftctl": __version__}
    for dist in ("ai-dynamo", "ai-dynamo-runtime"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def select_pods(pods: list[Pod], selector: Any, rng: random.Random) -> list[Pod]:
    """Pods chosen by ``all`` | ``random`` | a tuple of indices (into the stable pod order)."""
    if not pods:
        return []
    if selector == "all":
        return list(pods)
    if selector == "random":
        return [rng.choice(pods)]
    chosen = []
    for index in selector:
        if index >= len(pods):
            raise PlatformError(f"pod index {index} out of range: only {len(pods)} pods")
        chosen.append(pods[index])
    return chosen


class TestRun:
    """One test: the timeline against one platform, always torn down."""

    __test__ = False

    def __init__(
        self,
        test: TestCase,
        platform: Platform,
        result_dir: Path,
        options: RunOptions,
        observer: Observer,
        live: LiveRegistry | None = None,
        name: str | None = None,
    ) -> None:
        self.test = test
        self.name = name or test.name  # T#i of a repeated run
        self.live = live  # what --metrics-port exposes while this test runs
        self._live_sources: list[LoadSource] = []
        self.platform = platform
        self.result_dir = result_dir
        self.options = options
        self.observer = observer
        self.loads: dict[str, Any] = {}
        self.faults: list[FaultRecord] = []
        self.rng = random.Random(options.seed)
        self._verifiers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="verify")
        self._pending: list[Future] = []
        self._held: list[FaultRecord] = []  # stalls and partitions not yet ended
        self.cancelled = False
        self.interrupted = False  # Ctrl-C / SIGTERM reached the timeline
        self.startup_s: float | None = None
        self.load_start_ns: int | None = None
        self.scraper: Scraper | None = None
        self.events = ev.EventLog(result_dir)
        self.log = _TestLog(result_dir / layout.TEST_LOG_FILE, self.name)

    # -- helpers ----------------------------------------------------------------------------
    def _event(self, kind: str, t_ns: int | None = None, **fields: Any) -> dict[str, Any]:
        record = self.events.write(kind, t_ns, **fields)
        _safe_notify(self.observer, kind, test=self.name, **fields)
        return record

    def _load_dir(self, spec: LoadSpec) -> Path:
        if spec.result_dir:
            return self.options.output_dir / spec.result_dir
        if spec.name == "default":
            return self.result_dir
        return self.result_dir / layout.LOADS_DIR / spec.name

    def _spec(self, name: str) -> LoadSpec:
        spec = self.test.load(name)
        if self.options.client_type:
            spec = dataclasses.replace(spec, client=self.options.client_type)
        return spec

    # -- the run ----------------------------------------------------------------------------
    def execute(self) -> None:
        """Deploy, run every event, then clean up whatever happened."""
        try:
            self._deploy()
            for index, event in enumerate(self.test.events):
                self._run_event(index, event)
                self._check_endpoint()
        except KeyboardInterrupt:
            self.interrupted = True
            raise
        finally:
            self._cleanup()

    def _check_endpoint(self) -> None:
        """End the test (PlatformError, exit 3) once the platform's endpoint reached no frontend
        for its timeout: every request would fail on ftctl's own path, and a verdict about the
        deployment would be wrong."""
        problem = self.platform.endpoint_problem()
        if problem:
            self.log.error(problem)
            raise PlatformError(problem)

    def _deploy(self) -> None:
        test = self.test
        t0 = time.time_ns()
        self._event(ev.DEPLOY_START, t0, platform=self.platform.name)
        self.log.info(
            "Starting Deployment fault-tolerance-test with spec "
            + json.dumps(dataclasses.asdict(test.deployment), default=_json_default)
        )
        self.platform.deploy(test, self.result_dir)
        self.platform.wait_ready(self.options.ready_timeout)
        t1 = time.time_ns()
        self.startup_s = (t1 - t0) / 1e9
        self._event(ev.READY, t1, startup_s=self.startup_s)
        self.log.info("Deployment fault-tolerance-test is ready")
        self._start_scraper()

    def _start_scraper(self) -> None:
        interval = self.options.scrape_interval
        if interval is None:
            interval = self.test.observe.interval
        if interval > 0:
            self.scraper = Scraper(
                self.platform.scrape_targets,
                self.result_dir,
                interval=interval,
                resources=self.test.observe.resources,
            ).start()
            self.log.info(f"Scraping /metrics of every pod every {interval:g}s")

    def _run_event(self, index: int, event: Event) -> None:
        started = time.time_ns()
        self.events.write(ev.EVENT_START, started, event=event.kind, index=index)
        _safe_notify(self.observer, ev.EVENT, test=self.name, event=event, index=index)
        detail: dict[str, Any] = {}
        try:
            handler = HANDLERS.get(event.kind)
            if handler is None:
                raise FtctlError(f"no handler for timeline event kind '{event.kind}'")
            detail = handler(self, event) or {}
        finally:
            self.events.write(ev.EVENT_END, None, event=event.kind, index=index, **detail)

    def _do_start_load(self, event: Event) -> dict[str, Any]:
        from ftctl.clients.base import LoadTarget
        from ftctl.clients.launch import launch_load

        name = event.load or "default"
        spec = self._spec(name)
        target = LoadTarget(
            base_url=self.platform.endpoint(),
            model=self.test.deployment.model,
            tokenizer=getattr(self.platform, "tokenizer_path", None),
        )
        out_dir = self._load_dir(spec)
        out_dir.mkdir(parents=True, exist_ok=True)
        if spec.placement == "cluster":  # issue 15: an Indexed Job (platforms/kube/cluster_load)
            handle = self._cluster_load(spec, out_dir)
        else:
            handle = launch_load(spec, target, out_dir)
        handle.start()
        self.loads[name] = handle
        if self.live is not None:
            from ftctl.clients.prom import source_of

            source = source_of(self.live.run, self.name, name, handle)
            self.live.add(source)
            self._live_sources.append(source)

        # The timeline counts from the first request sent, not from process start: aiperf
        # needs seconds to start, and a fault scheduled at 30 s must come 30 s into the load.
        def starting(sending: int, clients: int) -> None:
            _safe_notify(
                self.observer,
                ev.LOAD_STARTING,
                test=self.name,
                load=name,
                client=spec.client,
                sending=sending,
                clients=clients,
            )

        if not handle.wait_sending(max(60.0, spec.timeout * 10), on_wait=starting):
            self.log.error(f"load '{name}' did not start sending requests")
        # A cluster load starts at the one time its barrier released (on the host's clock).
        t = handle.start_ns if spec.placement == "cluster" else time.time_ns()
        if self.load_start_ns is None:
            self.load_start_ns = t
            self._schedule_ns = t
        self._event(ev.LOAD_START, t, load=name, client=spec.client, clients=spec.clients)
        self.log.info(f"Started load '{name}' ({spec.client}, {spec.clients} clients)")
        return {"load": name}

    def _cluster_load(self, spec: LoadSpec, out_dir: Path) -> Any:
        make = getattr(self.platform, "cluster_load", None)
        if make is None:
            raise UsageError(
                f"load '{spec.name}' has placement: cluster; the {self.platform.name} "
                "platform cannot run a load as Kubernetes Jobs"
            )
        return make(self.test, spec, out_dir, self.events.write, self.result_dir)

    def _do_wait(self, event: Event) -> dict[str, Any]:
        # Anchor waits on the schedule (not on now) so slow events do not push faults later.
        base = getattr(self, "_schedule_ns", None) or time.time_ns()
        self._schedule_ns = base + int((event.duration or 0) * 1e9)
        self._sleep_until(self._schedule_ns)
        return {}

    def _sleep_until(self, deadline_ns: int) -> None:
        while True:
            remaining = (deadline_ns - time.time_ns()) / 1e9
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.5))
            progress = {n: h.progress() for n, h in self.loads.items()}
            _safe_notify(self.observer, ev.TICK, test=self.name, loads=progress)
            self._check_endpoint()

    def _targets(self, event: Event) -> list[Pod]:
        pods: list[Pod] = []
        for service in event.services:
            service_pods = self.platform.pods(service)
            if not service_pods:
                raise PlatformError(f"no pods of service '{service}' to hit")
            pods.extend(select_pods(service_pods, event.pods, self.rng))
        return pods

    def _fault(self, event: Event, inject: Callable[[Pod], FaultRecord]) -> dict[str, Any]:
        records = self._inject(event, inject)
        for record in records:
            self._pending.append(self._verifiers.submit(self._verify, record))
        return {"pods": [r.pod for r in records]}

    def _inject(self, event: Event, inject: Callable[[Pod], FaultRecord]) -> list[FaultRecord]:
        """Hit every target pod of ``event``; one fault_injected event per pod (t_ns = T_f)."""
        planned = getattr(self, "_schedule_ns", None)
        records = []
        for pod in self._targets(event):
            self.log.info(
                f"Injecting failure for: Failure(time={event.at}, pod_name='{pod.service}', "
                f"pod='{pod.name}', command='{event.process or event.kind}', "
                f"signal='{event.signal or ''}', failure='{event.failure or event.kind}')"
            )
            record = inject(pod)
            delay_s = (record.t_ns - planned) / 1e9 if planned else None
            self.faults.append(record)
            records.append(record)
            if self.live is not None:
                self.live.fault(self.live.run, self.name)
            held = event.kind in ("stall_process", "partition")
            extra = {"duration_s": event.duration} if held else {}
            self._event(
                ev.FAULT_INJECTED,
                record.t_ns,
                action=record.action,
                service=record.service,
                pod=record.pod,
                signal=record.signal,
                process=record.process,
                pids=record.pids,
                failure=event.failure,
                injection_delay_s=delay_s,
                **extra,
            )
        return records

    def _do_stall_process(self, event: Event) -> dict[str, Any]:
        """SIGSTOP the matches for ``duration``, then SIGCONT; verified once resumed."""
        return self._held_fault(
            event, lambda pod: self.platform.stall_process(pod, event.process or "", event.ranks)
        )

    def _do_partition(self, event: Event) -> dict[str, Any]:
        """Cut the frontend from the target pods for ``duration``, then heal; verified after."""
        return self._held_fault(event, self.platform.partition)

    def _held_fault(self, event: Event, inject: Callable[[Pod], FaultRecord]) -> dict[str, Any]:
        """A fault that lasts ``duration`` and is then ended (stall, partition).

        What was started is remembered before the wait, so an interrupt or an error in the
        wait still ends it in ``_cleanup`` (and the platform's teardown does too).
        """

        def start(pod: Pod) -> FaultRecord:
            record = inject(pod)
            self._held.append(record)
            return record

        records = self._inject(event, start)
        if records:
            self._sleep_until(min(r.t_ns for r in records) + int((event.duration or 0) * 1e9))
        self._end_held()
        return {"pods": [r.pod for r in records]}

    def _end_held(self) -> None:
        """End every held fault still on (SIGCONT / heal); write fault_resumed, then verify."""
        while self._held:
            record = self._held.pop(0)
            try:
                if record.action == "partition":
                    self.platform.heal_partition(record)
                else:
                    self.platform.resume_process(record)
            except Exception as exc:
                record.evidence.setdefault("error", f"ending {record.action}: {exc}")
            if record.resumed_ns is not None:
                self._event(
                    ev.FAULT_RESUMED,
                    record.resumed_ns,
                    action=record.action,
                    service=record.service,
                    pod=record.pod,
                    pids=record.pids,
                    fault_t_ns=record.t_ns,
                    held_s=(record.resumed_ns - record.t_ns) / 1e9,
                )
                what = "healed" if record.action == "partition" else f"resumed {record.pids}"
                self.log.info(f"Fault on {record.pod} {what}")
            self._pending.append(self._verifiers.submit(self._verify, record))

    def _verify(self, record: FaultRecord) -> None:
        try:
            checked = self.platform.verify_fault(record, self.options.verify_timeout)
        except Exception as exc:  # recorded as evidence, judged by fault_verified
            checked = record
            checked.verified = False
            checked.evidence.setdefault("error", str(exc))
        fields = {
            "action": checked.action,
            "service": checked.service,
            "pod": checked.pod,
            "fault_t_ns": checked.t_ns,
            "evidence": checked.evidence,
            "pod_recovered_ns": checked.pod_recovered_ns,
            "pod_recovery_s": checked.pod_recovery_time_s,
            "skipped_reason": checked.skipped_reason,
        }
        if checked.verified:
            self._event(ev.FAULT_VERIFIED, checked.verified_ns, **fields)
            self.log.info(f"Fault verified on {checked.pod}: {checked.evidence}")
        else:
            reason = checked.evidence.get("error") or "effect not observed in time"
            self._event(ev.FAULT_NOT_VERIFIED, None, reason=f"{checked.pod}: {reason}", **fields)
            self.log.error(f"Fault NOT verified on {checked.pod}: {reason}")

    def _do_terminate_process(self, event: Event) -> dict[str, Any]:
        return self._fault(
            event,
            lambda pod: self.platform.terminate_process(
                pod, event.process or "", event.signal or "SIGKILL", event.ranks
            ),
        )

    def _do_reset_connections(self, event: Event) -> dict[str, Any]:
        return self._fault(event, self.platform.reset_connections)

    def _do_delete_pod(self, event: Event) -> dict[str, Any]:
        return self._fault(event, lambda pod: self.platform.delete_pod(pod, event.force))

    def _do_run_command(self, event: Event) -> dict[str, Any]:
        """Run the event's argv in every target pod; each result goes to events.jsonl.

        A mismatch with ``expect_exit`` does not stop the timeline: check ``command_exit``
        (added by the loader) fails the test with the pod, argv, exit code and stderr.
        """
        timeout = event.timeout or DEFAULT_COMMAND_TIMEOUT_S
        codes = []
        for pod in self._targets(event):
            started = time.time_ns()
            try:
                result = self.platform.run_command(pod, list(event.argv), timeout)
            except PlatformError as exc:
                result = CommandResult(None, "", "", error=exc.message)
            ok = event.expect_exit is None or result.exit_code == event.expect_exit
            codes.append(result.exit_code)
            self._event(
                ev.COMMAND_RESULT,
                started,
                service=pod.service,
                pod=pod.name,
                argv=list(event.argv),
                exit_code=result.exit_code,
                error=result.error,
                stdout=result.stdout[-COMMAND_OUTPUT_MAX:],
                stderr=result.stderr[-COMMAND_OUTPUT_MAX:],
                truncated=max(len(result.stdout), len(result.stderr)) > COMMAND_OUTPUT_MAX,
                expect_exit=event.expect_exit,
                ok=ok,
                duration_s=(time.time_ns() - started) / 1e9,
            )
            line = f"Command {event.argv!r} in {pod.name} exited {result.exit_code}"
            (self.log.info if ok else self.log.error)(
                line + (f" ({result.error})" if result.error else "")
            )
        return {"exit_codes": codes}

    def _do_capture_metrics(self, event: Event) -> dict[str, Any]:
        """Snapshot every pod's /metrics now into ``<Service>/<pod>.<label>.metrics.log``."""
        label = event.label or "snapshot"
        wanted = set(event.services)
        files, failed = [], []
        for target in self.platform.scrape_targets():
            if wanted and target.service not in wanted:
                continue
            suffix = layout.labelled_metrics_suffix(label)
            path = layout.pod_file(self.result_dir, target.service, target.pod, suffix)
            try:
                body = target.fetch(5.0)
            except Exception as exc:  # recorded: one pod that does not answer is evidence
                failed.append({"service": target.service, "pod": target.pod, "error": str(exc)})
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            files.append(str(path.relative_to(self.result_dir)))
        self._event(ev.METRICS_CAPTURED, None, label=label, files=files, failed=failed)
        return {"label": label, "files": len(files), "failed": len(failed)}

    def _do_wait_for_recovery(self, event: Event) -> dict[str, Any]:
        self.platform.wait_for_recovery(event.timeout or DEFAULT_READY_TIMEOUT_S)
        self._event(ev.RECOVERED, None)
        return {}

    def _do_wait_for_log_pattern(self, event: Event) -> dict[str, Any]:
        t = self.platform.wait_for_log_pattern(
            event.service or "", event.pattern or "", event.timeout or 300.0
        )
        return {"matched_ns": t}

    def _do_rolling_upgrade(self, event: Event) -> dict[str, Any]:
        self.platform.rolling_upgrade(list(event.services), event.timeout or 1800.0)
        return {}

    def _do_stop_load(self, event: Event) -> dict[str, Any]:
        name = event.load or "default"
        handle = self.loads.get(name)
        if handle is not None:
            handle.stop()
            self.cancelled = True
        return {"load": name}

    def _do_wait_for_load_completion(self, event: Event) -> dict[str, Any]:
        name = event.load or "default"
        handle = self.loads.get(name)
        if handle is None:
            return {"load": name}
        timeout = event.timeout or DEFAULT_LOAD_TIMEOUT_S
        deadline = time.monotonic() + timeout
        while not handle.wait(0.5):
            _safe_notify(self.observer, ev.TICK, test=self.name, loads={name: handle.progress()})
            self._check_endpoint()
            if time.monotonic() > deadline:
                self.cancelled = True
                handle.stop()
                if not handle.wait(30):
                    handle.kill()
                self.log.error(f"Load '{name}' did not finish within {timeout:g}s; stopped")
                break
        self._event(ev.LOAD_END, None, load=name, cancelled=self.cancelled)
        return {"load": name}

    def _cleanup(self) -> None:
        # Runs on every exit path. A second Ctrl-C must not cut teardown short.
        previous = _ignore_interrupts()
        try:
            try:  # first: no stall or partition outlives the run (Ctrl-C in the middle of one)
                self._end_held()
            except Exception as exc:
                self.log.error(f"ending stalls and partitions: {exc}")
            for name, handle in self.loads.items():
                try:
                    if not handle.wait(0):
                        self.cancelled = True
                        handle.stop()
                        if not handle.wait(10):
                            handle.kill()
                        self.events.write(ev.LOAD_END, None, load=name, cancelled=True)
                except Exception as exc:
                    self.log.error(f"stopping load '{name}': {exc}")
            for source in self._live_sources:  # this test's loads leave the exposition
                self.live.remove(source)  # type: ignore[union-attr]
            # Interrupted: a verification that waits for traffic (a partition's reconnection)
            # would wait for a load that is gone; what it found so far is what it reports.
            wait_s = INTERRUPTED_VERIFY_WAIT_S if self.interrupted else None
            for future in self._pending:
                try:
                    future.result(timeout=wait_s or self.options.verify_timeout + 5)
                except Exception as exc:
                    self.log.error(f"fault verification: {exc}")
            self._verifiers.shutdown(wait=False, cancel_futures=True)
            if self.scraper is not None:
                try:
                    self.scraper.stop()
                    self.log.info(
                        f"Scraped /metrics {self.scraper.scrapes} times "
                        f"({self.scraper.failed} failed)"
                    )
                except Exception as exc:
                    self.log.error(f"stopping the scraper: {exc}")
            try:  # before teardown closes the endpoint; the results count them per phase
                for failure in self.platform.endpoint_failures():
                    self.events.write(
                        ev.ENDPOINT_FAILURE,
                        failure["t_ns"],
                        pod=failure.get("pod"),
                        reason=failure.get("reason"),
                    )
            except Exception as exc:
                self.log.error(f"endpoint failures: {exc}")
            try:
                self.platform.collect_logs(self.result_dir)
            except Exception as exc:
                self.log.error(f"collecting logs: {exc}")
            if not self.options.keep_deployment:
                try:
                    self.platform.teardown()
                except Exception as exc:
                    self.log.error(f"teardown: {exc}")
            self._event(ev.TEARDOWN, None, kept=self.options.keep_deployment)
        finally:
            self.events.close()
            self.log.close()
            _restore_interrupts(previous)


# The handler of every timeline event kind (scenario.model.Event.kind).
HANDLERS: dict[str, Callable[[TestRun, Event], dict[str, Any]]] = {
    "start_load": TestRun._do_start_load,
    "wait": TestRun._do_wait,
    "terminate_process": TestRun._do_terminate_process,
    "delete_pod": TestRun._do_delete_pod,
    "stall_process": TestRun._do_stall_process,
    "reset_connections": TestRun._do_reset_connections,
    "partition": TestRun._do_partition,
    "run_command": TestRun._do_run_command,
    "capture_metrics": TestRun._do_capture_metrics,
    "wait_for_recovery": TestRun._do_wait_for_recovery,
    "wait_for_log_pattern": TestRun._do_wait_for_log_pattern,
    "rolling_upgrade": TestRun._do_rolling_upgrade,
    "stop_load": TestRun._do_stop_load,
    "wait_for_load_completion": TestRun._do_wait_for_load_completion,
}


def _ignore_interrupts() -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(
        signal.SIGTERM, signal.SIG_IGN
    )


def _restore_interrupts(previous: Any) -> None:
    if previous is None:
        return
    signal.signal(signal.SIGINT, previous[0])
    signal.signal(signal.SIGTERM, previous[1])


def _write_run_json(
    test: TestCase, result_dir: Path, platform: str, options: RunOptions, name: str
) -> None:
    base, index = layout.split_repeat(name)
    payload = {
        "schema": "ftctl.run/v1",
        "test": name,
        "repeat": None if index is None else {"test": base, "index": index, "of": options.repeat},
        "platform": platform,
        "started_ns": time.time_ns(),
        "argv": sys.argv,
        "seed": options.seed,
        "versions": _tool_versions(),
        "scenario": dataclasses.asdict(test),
        "options": {
            "client_type": options.client_type,
            "keep_deployment": options.keep_deployment,
            "platform_options": {k: str(v) for k, v in options.platform_options.items()},
        },
    }
    (result_dir / RUN_FILE).write_text(json.dumps(payload, indent=2, default=_json_default))


def _analyse(test: TestCase, outcome: TestOutcome, options: RunOptions, cancelled: bool) -> None:
    """Parse the result directory and evaluate the checks into ``outcome``."""
    from ftctl.results import parse_result_dir

    # Token overflow writes every load to a sibling directory: the test's own directory then
    # holds the timeline and logs but no client files, and is not parsed for metrics.
    result = None
    if any(not spec.result_dir for spec in test.loads):
        result = parse_result_dir(outcome.result_dir, recovery_window=test.recovery_window)
    outcome.result = result
    loads = dict(result.loads) if result is not None else {}
    for spec in test.loads:
        if spec.result_dir:
            extra_dir = options.output_dir / spec.result_dir
            for name in (layout.EVENTS_FILE, layout.TEST_LOG_FILE, RUN_FILE):
                source = outcome.result_dir / name
                if source.exists() and not (extra_dir / name).exists():
                    (extra_dir / name).write_bytes(source.read_bytes())
            extra = parse_result_dir(extra_dir, recovery_window=test.recovery_window)
            outcome.extra_results.append(extra)
            loads[spec.name] = extra.overall
    events, _ = ev.read_events(outcome.result_dir / ev.EVENTS_FILE)
    faults = summarize_faults(events)
    expects_fault = any(e.kind in FAULT_EVENT_KINDS for e in test.events)
    overall = result.overall if result is not None else outcome.extra_results[-1].overall
    outcome.checks = evaluate(
        test.checks,
        loads=loads,
        overall=overall,
        was_cancelled=cancelled or bool(getattr(result, "was_cancelled", False)),
        faults=faults,
        expects_fault=expects_fault,
        result_dir=outcome.result_dir,
        events=events,
    )
    outcome.status = verdict(outcome.checks)


RUN_SCHEMA = "ftctl.run/v1"
RUN_REPORT_SCHEMA = "ftctl.run-report/v1"


def _has_schema(path: Path, schema: str) -> bool:
    """Whether ``path`` is a regular JSON file whose ``schema`` is ``schema``."""
    try:
        if path.is_symlink() or not path.is_file():
            return False
        with path.open("rb") as fh:
            data = json.loads(fh.read(64 * 1024 * 1024))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("schema") == schema


def written_by_ftctl(folder: Path) -> bool:
    """Whether ``folder`` is a result directory of an ftctl run (it holds ftctl's run.json)."""
    return _has_schema(folder / RUN_FILE, RUN_SCHEMA)


def _foreign(path: Path) -> str | None:
    """Why ftctl must not move or delete ``path``, or None when it may (or nothing is there)."""
    if path.is_symlink():
        return f"{path} is a symbolic link, not a result directory of ftctl"
    if not path.exists():
        return None
    if not path.is_dir():
        return f"{path} exists and is not a directory"
    try:
        empty = not any(path.iterdir())
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror}"
    if empty or written_by_ftctl(path):
        return None
    return f"{path} exists and was not written by ftctl (no {RUN_FILE})"


def check_result_paths(paths: list[Path], output_dir: Path) -> None:
    """Refuse, before anything runs, to reuse a path ftctl did not create; every one named.

    Raises:
        UsageError: one line per refused path (exit 2); nothing was moved.
    """
    problems = []
    for path in paths:
        for candidate in (path, path.parent / PREVIOUS_DIR / path.name):
            why = _foreign(candidate)
            if why and why not in problems:
                problems.append(why)
    report = output_dir / RUN_REPORT_FILE
    if (report.exists() or report.is_symlink()) and not _has_schema(report, RUN_REPORT_SCHEMA):
        problems.append(f"{report} exists and is not a run report of ftctl")
    if problems:
        problems.append("nothing was moved: remove these or choose another output directory")
        raise UsageError("\n".join(problems))


def set_aside_previous(path: Path) -> Path | None:
    """Move an earlier run's non-empty ``path`` to ``<parent>/.previous/<name>``; say where.

    Appending a new run to an old directory would mix two runs' requests and faults. One
    earlier run per test is kept (an older one there is replaced); ``parse`` skips dot folders.
    Only what ftctl wrote is moved or replaced.

    Raises:
        UsageError: ``path`` or the copy kept aside is not ftctl's (nothing is moved).
    """
    destination = path.parent / PREVIOUS_DIR / path.name
    for candidate in (path, destination):
        why = _foreign(candidate)
        if why:
            raise UsageError(why)
    if not path.is_dir() or not any(path.iterdir()):
        return None
    if destination.exists():
        shutil.rmtree(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    path.rename(destination)
    return destination


def write_run_report(report: dict, output_dir: Path) -> Path:
    """Write the aggregate report at the output root atomically, keeping the previous aside.

    Raises:
        UsageError: a ``report.json`` there that ftctl did not write (it is left alone).
    """
    path = output_dir / RUN_REPORT_FILE
    if path.exists() or path.is_symlink():
        if not _has_schema(path, RUN_REPORT_SCHEMA):
            raise UsageError(f"{path} exists and is not a run report of ftctl; not replaced")
        (output_dir / PREVIOUS_DIR).mkdir(exist_ok=True)
        path.replace(output_dir / PREVIOUS_DIR / RUN_REPORT_FILE)
    tmp = path.with_name(f".{RUN_REPORT_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(path)
    return path


def run_test(
    test: TestCase,
    options: RunOptions,
    *,
    result_dir: Path,
    observer: Observer | None = None,
    platform_factory: PlatformFactory | None = None,
    live: LiveRegistry | None = None,
    name: str | None = None,
) -> TestOutcome:
    """Run one test end to end and return its outcome (never raises FtctlError).

    ``name`` is the outcome's name (``T#i`` for a repeat, see ``layout.repeat_name``); the
    test's own name by default. The platform always sees the test itself.
    """
    observer = observer or _NullObserver()
    name = name or test.name
    started = time.monotonic()
    platform_name = options.platform or test.platform
    if test.skip_reason:
        return TestOutcome(name, result_dir, ExitStatus.OK, skipped=test.skip_reason)
    load_dirs = [options.output_dir / spec.result_dir for spec in test.loads if spec.result_dir]
    try:
        set_aside = [set_aside_previous(path) for path in (result_dir, *load_dirs)]
    except UsageError as exc:
        return TestOutcome(name, result_dir, exc.exit_code, error=exc.message)
    result_dir.mkdir(parents=True, exist_ok=True)
    outcome = TestOutcome(name, result_dir, ExitStatus.OK)

    def platform_log(message: str) -> None:
        _safe_notify(observer, ev.PLATFORM_LOG, test=name, message=message)

    def platform_warn(message: str) -> None:
        _safe_notify(observer, ev.WARNING, test=test.name, message=message)

    for previous in filter(None, set_aside):
        platform_log(f"previous results moved to {previous}")

    factory = platform_factory or (
        lambda name: make_platform(name, options.platform_options, platform_log, platform_warn)
    )
    _safe_notify(observer, ev.TEST_START, test=name, platform=platform_name)
    run: TestRun | None = None
    interrupted = False
    try:
        # Every directory this test writes carries the marker from the start, so an
        # interrupted run's folders are still recognised as ftctl's by the next run.
        for folder in (result_dir, *load_dirs):
            folder.mkdir(parents=True, exist_ok=True)
            _write_run_json(test, folder, platform_name, options, name)
        platform = factory(platform_name)
        run = TestRun(test, platform, result_dir, options, observer, live, name)
        run.execute()
    except KeyboardInterrupt:
        interrupted = True
        outcome.status = ExitStatus.INTERRUPTED
        outcome.error = "interrupted"
    except FtctlError as exc:
        outcome.status = exc.exit_code
        outcome.error = exc.message
    except Exception as exc:  # unexpected: an infrastructure error, reported not raised
        outcome.status = ExitStatus.INFRA
        outcome.error = f"{type(exc).__name__}: {exc}"
    if run is not None:
        outcome.faults = run.faults
        outcome.startup_s = run.startup_s
    if outcome.error is None:
        try:
            _analyse(test, outcome, options, run.cancelled if run else False)
        except FtctlError as exc:
            outcome.status = exc.exit_code
            outcome.error = f"parsing results: {exc.message}"
    else:
        try:  # a partial directory still parses; keep what it says for the report
            from ftctl.results import parse_result_dir

            outcome.result = parse_result_dir(result_dir, recovery_window=test.recovery_window)
        except Exception:
            pass
    outcome.duration_s = time.monotonic() - started
    _write_report(outcome, test.reports)
    _safe_notify(observer, ev.TEST_END, test=name, status=outcome.status.name)
    if interrupted:
        raise Interrupted("interrupted; the deployment was torn down")
    return outcome


def _write_report(outcome: TestOutcome, reports: tuple[str, ...] = ()) -> None:
    """report.json always; then each file ``reports`` asks for (``layout.REPORT_KIND_FILES``).

    ``summary`` is the test's block as ``ftctl run`` prints it, ``markdown`` the report of
    ``ftctl report --markdown``, ``junit`` this test alone as JUnit XML, ``timeline``/``plot``
    the timeline plot. A report that cannot be written becomes a warning, never a verdict.
    """
    from ftctl.reports.json_report import outcome_to_json

    try:
        path = outcome.result_dir / layout.TEST_REPORT_FILE
        path.write_text(json.dumps(outcome_to_json(outcome), indent=2, default=_json_default))
    except OSError:
        return
    warnings = outcome.result.warnings if outcome.result is not None else None
    for kind in dict.fromkeys(reports):  # once each, in the order asked
        target = outcome.result_dir / layout.REPORT_KIND_FILES[kind]
        try:
            _REPORT_WRITERS[kind](outcome, target)
        except Exception as exc:  # a report that cannot be drawn must not change the verdict
            if warnings is not None:
                warnings.append(f"report {kind}: {exc}")


def _write_summary(outcome: TestOutcome, target: Path) -> None:
    from ftctl.reports.summary import render_run

    target.write_text(render_run(RunOutcome([outcome])) + "\n", encoding="utf-8")


def _write_markdown(outcome: TestOutcome, target: Path) -> None:
    if outcome.result is None:
        return
    from ftctl.reports.markdown import markdown_report

    target.write_text(
        markdown_report(outcome.result_dir, [outcome.result, *outcome.extra_results]),
        encoding="utf-8",
    )


def _write_junit(outcome: TestOutcome, target: Path) -> None:
    from ftctl.reports.junit import write_junit

    write_junit(RunOutcome([outcome]), target)


def _write_timeline(outcome: TestOutcome, target: Path) -> None:
    if outcome.result is None:
        return
    from ftctl.reports.timeline import plot_timeline

    plot_timeline(outcome.result, target)


_REPORT_WRITERS: dict[str, Callable[[TestOutcome, Path], None]] = {
    "summary": _write_summary,
    "markdown": _write_markdown,
    "json": lambda outcome, target: None,  # report.json is already written, always
    "junit": _write_junit,
    "timeline": _write_timeline,
    "plot": _write_timeline,
}


def run_tests(
    tests: list[TestCase],
    options: RunOptions,
    *,
    observer: Observer | None = None,
    platform_factory: PlatformFactory | None = None,
) -> RunOutcome:
    """Run every test (``repeat`` times) one after another; Ctrl-C stops after cleanup."""
    outcomes: list[TestOutcome] = []
    planned = []
    for test in tests:
        for index in range(1, options.repeat + 1):
            name = layout.repeat_name(test.name, index, options.repeat)
            planned.append(options.output_dir / name)
        planned += [options.output_dir / spec.result_dir for spec in test.loads if spec.result_dir]
    for test in tests:  # before anything is written or deployed
        if not test.skip_reason:
            platform_options(options.platform or test.platform, options.platform_options, test.name)
    check_result_paths(planned, options.output_dir)
    options.output_dir.mkdir(parents=True, exist_ok=True)
    with _sigterm_as_interrupt(), _live_metrics(options, observer or _NullObserver()) as live:
        for test in tests:
            for index in range(1, options.repeat + 1):
                name = layout.repeat_name(test.name, index, options.repeat)
                try:
                    outcomes.append(
                        run_test(
                            test,
                            options,
                            result_dir=options.output_dir / name,
                            observer=observer,
                            platform_factory=platform_factory,
                            live=live,
                            name=name,
                        )
                    )
                except Interrupted as exc:
                    exc.outcome = RunOutcome(outcomes)  # type: ignore[attr-defined]
                    raise
    return RunOutcome(outcomes)


@contextlib.contextmanager
def _live_metrics(options: RunOptions, observer: Observer) -> Iterator[LiveRegistry | None]:
    """With ``metrics_port``: a Prometheus endpoint on 127.0.0.1 for the whole run, exposing
    every running load (labels run/test/load) and the faults injected so far."""
    if options.metrics_port is None:
        yield None
        return
    from ftctl.clients.prom import LiveRegistry, MetricsServer

    live = LiveRegistry(run=time.strftime("run-%Y%m%dT%H%M%SZ", time.gmtime()))
    try:
        server = MetricsServer(options.metrics_port, live=live, run=live.run)
    except OSError as exc:
        raise UsageError(
            f"metrics port {options.metrics_port}: cannot listen on 127.0.0.1 ({exc.strerror})"
        ) from exc
    with server:
        _safe_notify(observer, ev.METRICS_SERVER, url=f"http://127.0.0.1:{server.port}/metrics")
        yield live


class _sigterm_as_interrupt:
    """SIGTERM behaves like Ctrl-C so that teardown runs (only in the main thread)."""

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, _raise_interrupt)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_scenarios(
    paths: list[Path],
    options: RunOptions,
    *,
    image: str | None = None,
    observer: Observer | None = None,
    **selection: Any,
) -> RunOutcome:
    """Load, expand and select the tests of ``paths``, then run them (the `ftctl run` core).

    ``selection``: keyword, include_custom_build, failures_file, thresholds_file (as
    ``scenario.load_tests`` takes them; the platform is ``options.platform``).
    """
    from ftctl.scenario import load_tests

    tests = load_tests(paths, platform=options.platform, **selection)
    if not tests:
        raise FtctlError("no test selected (check the paths and -k)")
    tests = [t.with_run_options(image=image, client=options.client_type) for t in tests]
    return run_tests(tests, options, observer=observer)
