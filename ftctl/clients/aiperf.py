"""The aiperf load client: one ``aiperf profile`` process per client, rerun when it mostly failed.

Layout (upstream, REFERENCE.md §3): ``<out_dir>/client_<i>/attempt_<m>/`` is aiperf's artifact
dir; aiperf's own console output goes to ``genai_perf.log`` beside its exports, and
``attempt.json`` records the argv, times, exit code and outcome of the attempt. Attempts are
judged by the per-request export (``profile_export.jsonl``), never by the exit code: aiperf
exits 0 when most requests failed and non-zero (without a summary) when all did.
The judgement is ``ftctl.results.aiperf.attempt_outcome``, the same reader ``ftctl parse`` uses.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftctl.clients.base import LoadProgress, LoadTarget
from ftctl.errors import ClientError
from ftctl.layout import (
    AIPERF_LOG,
    ATTEMPT_FILE,
    PROMPTS_FILE,
)
from ftctl.layout import AIPERF_RECORDS_FILE as RECORDS_FILE
from ftctl.layout import GENAI_PERF_LOG as GENAI_LOG
from ftctl.layout import (
    attempt_dir as attempt_dir_name,
)
from ftctl.layout import (
    client_dir as client_dir_name,
)
from ftctl.results.aiperf import attempt_outcome
from ftctl.scenario.model import LoadSpec

log = logging.getLogger(__name__)

ENV_AIPERF = "FTCTL_AIPERF"
CONSOLE_LOG = GENAI_LOG  # aiperf's console output, under the upstream name detection looks for
RERUN_FAILED_FRACTION = 0.9  # rerun when at least this share of an attempt's requests failed
# The line aiperf logs (logs/aiperf.log) right before its first request: start-up is over.
PROFILING_MARKER = b"AIPerf System is PROFILING"
START_PROGRESS_S = 5.0  # wait_sending: repeat the start-up progress this often
STOP_GRACE_S = 15.0  # SIGINT → SIGKILL: aiperf needs ~1 s to flush its exports on SIGINT
COMPLETIONS_ENDPOINT = "/v1/completions"
CHAT_ENDPOINT = "/v1/chat/completions"
# With them set, aiperf refuses a local tokenizer path (REFERENCE.md §3).
_DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
# What `make install` creates: <repo root>/.venv-aiperf (repo root = parent of the package).
REPO_AIPERF = Path(__file__).resolve().parent.parent.parent / ".venv-aiperf" / "bin" / "aiperf"


def find_aiperf(explicit: str | None = None) -> str:
    """Locate the aiperf executable.

    Order: ``explicit``, env ``FTCTL_AIPERF``, ``<repo root>/.venv-aiperf/bin/aiperf``, then
    ``aiperf`` on PATH. A path given explicitly or through the environment must work: it is
    an error rather than a silent fall-through to another aiperf.

    Raises:
        ClientError: nothing usable was found (exit 3).
    """
    for source, value in (("--aiperf", explicit), (ENV_AIPERF, os.environ.get(ENV_AIPERF))):
        if value:
            found = _executable(value)
            if found is None:
                raise ClientError(
                    f"aiperf not found at {value} (from {source}); "
                    "run `make install` to create .venv-aiperf, or point it at an aiperf binary"
                )
            return found
    for candidate in (str(REPO_AIPERF), "aiperf"):
        found = _executable(candidate)
        if found is not None:
            return found
    raise ClientError(
        f"aiperf not found (looked at ${ENV_AIPERF}, {REPO_AIPERF}, PATH); "
        "run `make install` to create .venv-aiperf, or set FTCTL_AIPERF"
    )


def _executable(value: str) -> str | None:
    """``value`` as an executable path (a bare name is looked up on PATH), or None."""
    if os.sep not in value:
        return shutil.which(value)
    path = Path(value)
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def aiperf_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for an aiperf process: the caller's, minus PYTHONPATH and HF offline flags.

    aiperf lives in its own virtual environment; the caller's PYTHONPATH would put ftctl's
    packages (other pydantic, pyzmq) in front of its own.
    """
    env = dict(os.environ if base is None else base)
    for name in _DROPPED_ENV:
        env.pop(name, None)
    return env


def _fmt(value: float) -> str:
    """A number as aiperf reads it: ``3`` rather than ``3.0`` for whole values."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def aiperf_argv(
    spec: LoadSpec,
    target: LoadTarget,
    artifact_dir: Path,
    client_index: int,
    *,
    aiperf: str = "aiperf",
    input_file: Path | None = None,
) -> list[str]:
    """The ``aiperf profile`` command line of one client attempt (an argv list, no shell).

    Mapping decisions (aiperf 0.13):
      - closed loop: ``--concurrency C``; a ``request_rate`` is a per-client ceiling
        (``--request-rate R --arrival-pattern constant``) — queueing behind the cap is the
        point of a ceiling, as for the legacy client.
      - open loop (``arrival`` constant|poisson): the rate is the total over all clients, so
        each process gets ``rate / clients`` and NO ``--concurrency``: aiperf then does not
        cap in-flight requests, so arrivals never queue behind a cap.
      - warmup: ``--warmup-request-count N`` per client for ``warmup: N``; none otherwise
        (aiperf 0.13 rejects ``--warmup-request-count 0`` and runs no warmup without the
        flag). Its warmup records carry ``benchmark_phase: warmup`` and are not counted.
      - never ``--failed-request-threshold`` (it aborts the run inside the fault window).
      - prompts: ``--input-file`` (``input_file``, default ``<client dir>/prompts.jsonl``) in
        aiperf's ``single_turn`` JSONL format, one ``{"text": ...}`` per line.

    Raises:
        ClientError: neither a request count nor a duration.
    """
    if spec.endpoint == COMPLETIONS_ENDPOINT:
        endpoint = ["--endpoint-type", "completions"]
    elif spec.endpoint == CHAT_ENDPOINT:
        endpoint = ["--endpoint-type", "chat"]
    else:
        endpoint = ["--endpoint-type", "chat", "--custom-endpoint", spec.endpoint]
    argv = [
        aiperf,
        "profile",
        "--model",
        target.model,
        "--tokenizer",
        # No local folder (a real cluster): aiperf resolves the model id itself.
        str(target.tokenizer) if target.tokenizer is not None else target.model,
        "--url",
        target.base_url,
        *endpoint,
    ]
    if spec.streaming:
        argv.append("--streaming")

    if spec.arrival == "closed":
        argv += ["--concurrency", str(spec.concurrency)]
        if spec.request_rate:
            argv += ["--request-rate", _fmt(spec.request_rate), "--arrival-pattern", "constant"]
    else:
        if not spec.request_rate:
            raise ClientError(f"load {spec.name!r}: arrival {spec.arrival} needs a request_rate")
        per_client = spec.request_rate / max(1, spec.clients)
        argv += ["--request-rate", _fmt(per_client), "--arrival-pattern", spec.arrival]

    if spec.warmup:
        argv += ["--warmup-request-count", str(spec.warmup)]
    if spec.duration is not None:
        # In-flight requests get one request timeout to finish after the duration ends.
        argv += [
            "--benchmark-duration",
            _fmt(spec.duration),
            "--benchmark-grace-period",
            _fmt(spec.timeout),
        ]
    elif spec.requests_per_client is not None:
        argv += ["--request-count", str(spec.requests_per_client)]
    else:
        raise ClientError(f"load {spec.name!r}: set requests_per_client or duration")

    if spec.prompts:
        path = input_file or artifact_dir.parent / PROMPTS_FILE
        argv += ["--input-file", str(path), "--custom-dataset-type", "single_turn"]
    else:
        argv += [
            "--synthetic-input-tokens-mean",
            str(spec.input_tokens.mean),
            "--synthetic-input-tokens-stddev",
            _fmt(spec.input_tokens.stddev),
        ]
    argv += [
        "--output-tokens-mean",
        str(spec.output_tokens.mean),
        "--output-tokens-stddev",
        _fmt(spec.output_tokens.stddev),
        # As the legacy client: the server must produce the requested length (aiperf warns
        # that --osl is not guaranteed otherwise).
        "--extra-inputs",
        f"temperature:{_fmt(spec.temperature)}",
        "--extra-inputs",
        "ignore_eos:true",
        "--request-timeout-seconds",
        _fmt(spec.timeout),
        "--random-seed",
        str(spec.seed + client_index),
        "--ui-type",
        "none",
        "--no-server-metrics",
        "--no-gpu-telemetry",
        # Token counts from the server's usage: no tokenizer pass over every response.
        "--use-server-token-count",
        "--artifact-dir",
        str(artifact_dir),
    ]
    return argv


def write_prompts_file(prompts: tuple[str, ...] | list[str], path: Path) -> Path:
    """Write ``prompts`` as aiperf ``single_turn`` JSONL (``{"text": ...}`` per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for prompt in prompts:
            f.write(json.dumps({"text": prompt}) + "\n")
    return path


def needs_rerun(ok: int, failed: int) -> bool:
    """True when an attempt recorded nothing or at least 90 % of its requests failed."""
    total = ok + failed
    return total == 0 or failed >= RERUN_FAILED_FRACTION * total


@dataclass
class AttemptResult:
    """One finished attempt of one client."""

    client: int
    attempt: int
    directory: str
    argv: list[str]
    start_ns: int
    end_ns: int = 0
    returncode: int | None = None
    ok: int = 0
    failed: int = 0
    first_request_ns: int | None = None  # earliest request_start_ns of its records
    stopped: bool = False  # ended by stop()/kill(), not by itself
    rerun: bool = False  # judged a failed attempt (another one followed or was due)


@dataclass
class _Client:
    """Book-keeping of one client: its live process and finished attempts."""

    index: int
    directory: Path
    proc: subprocess.Popen | None = None
    attempt_dir: Path | None = None
    # The attempt's private TMPDIR: aiperf leaves aiperf_mmap_<id>/ and child logs in the
    # temp folder and never removes them; a folder of ftctl's own is removed when it ends.
    temp_dir: Path | None = None
    attempts: list[AttemptResult] = field(default_factory=list)
    thread: threading.Thread | None = None
    # Incremental count of the current attempt's records for progress().
    read_path: Path | None = None
    read_offset: int = 0
    read_ok: int = 0
    read_failed: int = 0


class AiperfLoad:
    """A load of ``spec.clients`` concurrent aiperf processes (implements ``LoadHandle``)."""

    def __init__(
        self,
        spec: LoadSpec,
        target: LoadTarget,
        out_dir: Path,
        on_progress: Callable[[LoadProgress], None] | None = None,
        aiperf: str | None = None,
    ) -> None:
        self.spec = spec
        # Absolute paths: aiperf runs with its attempt dir as working directory.
        tokenizer = None if target.tokenizer is None else Path(target.tokenizer).absolute()
        self.target = LoadTarget(target.base_url, target.model, tokenizer)
        self.out_dir = Path(out_dir).absolute()
        self.on_progress = on_progress
        self._aiperf_arg = aiperf
        self.aiperf: str | None = None
        self._clients = [
            _Client(i, self.out_dir / client_dir_name(i)) for i in range(max(0, spec.clients))
        ]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._killed = threading.Event()
        self._started = False
        self._monitor: threading.Thread | None = None
        self._last_rate: tuple[float, int] | None = None

    # -- LoadHandle --------------------------------------------------------------------------
    def start(self) -> None:
        """Launch every client's first attempt now (errors raise here), supervise in threads.

        Raises:
            ClientError: aiperf missing, or a process could not be started.
        """
        if self._started:
            return
        self.aiperf = find_aiperf(self._aiperf_arg)
        # Validate the mapping once before anything is spawned.
        aiperf_argv(
            self.spec, self.target, self.out_dir / client_dir_name(0) / attempt_dir_name(0), 0
        )
        self._started = True
        try:
            for client in self._clients:
                if self.spec.prompts:
                    write_prompts_file(self.spec.prompts, client.directory / PROMPTS_FILE)
                self._launch(client, 0)
        except BaseException:
            self.kill()
            raise
        for client in self._clients:
            client.thread = threading.Thread(
                target=self._supervise, args=(client,), name=f"aiperf-client-{client.index}"
            )
            client.thread.daemon = True
            client.thread.start()
        if self.on_progress is not None:
            self._monitor = threading.Thread(target=self._report, name="aiperf-progress")
            self._monitor.daemon = True
            self._monitor.start()

    def stop(self) -> None:
        """End the clients now: SIGINT (aiperf flushes its exports), SIGKILL after a grace.

        No further attempts start. Returns at once; ``wait()`` blocks until they are gone.
        """
        self._stop.set()
        for client in self._clients:
            self._signal(client, signal.SIGINT)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every client finished its last attempt; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for client in self._clients:
            if client.thread is None:
                continue
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            client.thread.join(left)
            if client.thread.is_alive():
                return False
        if self._monitor is not None:
            self._monitor.join(2.0)
        return True

    def progress(self) -> LoadProgress:
        """Requests recorded so far by each client's current attempt (cheap: incremental read)."""
        ok = failed = 0
        with self._lock:
            for client in self._clients:
                self._read_new_records(client)
                ok += client.read_ok
                failed += client.read_failed
        now = time.monotonic()
        rate = 0.0
        if self._last_rate is not None and now > self._last_rate[0]:
            rate = max(0, ok + failed - self._last_rate[1]) / (now - self._last_rate[0])
        self._last_rate = (now, ok + failed)
        return LoadProgress(ok=ok, failed=failed, in_flight=0, rate=rate)

    def kill(self) -> None:
        """SIGKILL every aiperf process group at once and reap them. Idempotent."""
        self._stop.set()
        self._killed.set()
        for client in self._clients:
            self._signal(client, signal.SIGKILL)
        for client in self._clients:
            proc = client.proc
            if proc is not None:
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
                    log.warning("aiperf pid %s survived SIGKILL", proc.pid)
        for client in self._clients:
            if client.thread is not None and client.thread is not threading.current_thread():
                client.thread.join(5)

    # -- results for the runner ----------------------------------------------------------------
    def attempts(self) -> dict[int, list[AttemptResult]]:
        """Finished attempts per client index, in order."""
        with self._lock:
            return {c.index: list(c.attempts) for c in self._clients}

    def sending(self) -> int:
        """How many clients' current attempts finished start-up and are sending requests.

        aiperf needs 8–15 s (more with several clients on 2 cores) before its first request;
        a fault timed from ``start()`` could land before any load.
        """
        count = 0
        for client in self._clients:
            attempt_dir = client.attempt_dir
            if attempt_dir is None:
                continue
            try:
                if PROFILING_MARKER in (attempt_dir / AIPERF_LOG).read_bytes():
                    count += 1
            except OSError:
                continue
        return count

    def wait_sending(
        self,
        timeout: float | None = None,
        on_wait: Callable[[int, int], None] | None = None,
    ) -> bool:
        """Block until every client is sending (True), every client ended, or the timeout.

        ``on_wait(sending, clients)`` is called on the first look, whenever another client
        starts sending, and every ``START_PROGRESS_S`` while the count stays: aiperf's
        start-up takes seconds and the user should see it move. Its errors are ignored.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        told: tuple[int, float] | None = None
        while True:
            sending = self.sending()
            now = time.monotonic()
            if on_wait is not None and (
                told is None or sending != told[0] or now - told[1] >= START_PROGRESS_S
            ):
                told = (sending, now)
                try:
                    on_wait(sending, len(self._clients))
                except Exception:  # a display failure must never stop the load
                    pass
            if sending >= len(self._clients):
                return True
            if all(c.thread is None or not c.thread.is_alive() for c in self._clients):
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def pids(self) -> list[int]:
        """Process ids of the live aiperf main processes (each leads its own group)."""
        return [c.proc.pid for c in self._clients if c.proc is not None and c.proc.poll() is None]

    # -- internals ---------------------------------------------------------------------------
    def _launch(self, client: _Client, attempt: int) -> None:
        attempt_dir = client.directory / attempt_dir_name(attempt)
        attempt_dir.mkdir(parents=True, exist_ok=True)
        argv = aiperf_argv(
            self.spec,
            self.target,
            attempt_dir,
            client.index,
            aiperf=self.aiperf or "aiperf",
            input_file=client.directory / PROMPTS_FILE,
        )
        result = AttemptResult(client.index, attempt, str(attempt_dir), argv, time.time_ns())
        console = (attempt_dir / CONSOLE_LOG).open("wb")
        temp_dir = Path(tempfile.mkdtemp(prefix=f"ftctl-aiperf-{client.index}-{attempt}-"))
        env = aiperf_env()
        env["TMPDIR"] = str(temp_dir)
        try:
            # Own session = own process group: aiperf forks ~6 service processes, and the
            # whole group must be signalled so that none outlives the handle.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(attempt_dir),
                start_new_session=True,
            )
        except OSError as exc:
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise ClientError(f"cannot start aiperf ({argv[0]}): {exc}") from exc
        finally:
            console.close()
        with self._lock:
            client.proc = proc
            client.attempt_dir = attempt_dir
            client.temp_dir = temp_dir
            client.attempts.append(result)
            client.read_path = attempt_dir / RECORDS_FILE
            client.read_offset = client.read_ok = client.read_failed = 0
        self._write_attempt(result)

    def _supervise(self, client: _Client) -> None:
        """Wait for each attempt; judge it; rerun while it mostly failed and attempts remain."""
        total = max(1, self.spec.retries)
        attempt = 0
        while True:
            proc = client.proc
            assert proc is not None
            stopped = self._wait_proc(proc)
            # Stragglers of the group, if any: right after the leader was reaped, so the
            # group id cannot have been reused yet.
            _killpg(proc.pid, signal.SIGKILL)
            if client.temp_dir is not None:  # nothing of the group is left to write there
                shutil.rmtree(client.temp_dir, ignore_errors=True)
            result = client.attempts[-1]
            result.end_ns = time.time_ns()
            result.returncode = proc.returncode
            result.ok, result.failed = attempt_outcome(Path(result.directory))
            result.first_request_ns = _first_request_ns(Path(result.directory) / RECORDS_FILE)
            result.stopped = stopped
            result.rerun = needs_rerun(result.ok, result.failed) and not stopped
            self._write_attempt(result)
            if stopped or not result.rerun or attempt + 1 >= total:
                return
            log.info(
                "aiperf client %d attempt %d: %d ok, %d failed; rerunning",
                client.index,
                attempt,
                result.ok,
                result.failed,
            )
            if self._stop.wait(self.spec.retry_delay):
                return
            attempt += 1
            try:
                self._launch(client, attempt)
            except ClientError as exc:  # cannot surface from a thread: keep the record
                log.error("aiperf client %d: %s", client.index, exc)
                return

    def _wait_proc(self, proc: subprocess.Popen) -> bool:
        """Wait for ``proc``; on stop(), give it the grace then SIGKILL. True when stopped."""
        while True:
            try:
                proc.wait(0.2)
                return self._stop.is_set()
            except subprocess.TimeoutExpired:
                pass
            if self._stop.is_set():
                break
        grace = 0.0 if self._killed.is_set() else STOP_GRACE_S
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            if grace:
                log.warning("aiperf pid %d ignored SIGINT for %.0f s; killing", proc.pid, grace)
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return True

    def _signal(self, client: _Client, sig: signal.Signals) -> None:
        proc = client.proc
        # Only a live leader: once reaped, its supervisor swept the group, and the id may
        # belong to someone else by now.
        if proc is not None and proc.poll() is None:
            _killpg(proc.pid, sig)

    def _read_new_records(self, client: _Client) -> None:
        """Count records appended since the last call (caller holds the lock)."""
        path = client.read_path
        if path is None:
            return
        try:
            with path.open("rb") as f:
                f.seek(client.read_offset)
                chunk = f.read()
        except OSError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        for line in chunk[: end + 1].splitlines():
            if not line.strip():
                continue
            if b'"error":{' in line or b'"error": {' in line or b'"was_cancelled":true' in line:
                client.read_failed += 1
            else:
                client.read_ok += 1
        client.read_offset += end + 1

    def _report(self) -> None:
        """Call ``on_progress`` once a second until every client ended; its errors are logged."""
        assert self.on_progress is not None
        while True:
            done = all(c.thread is None or not c.thread.is_alive() for c in self._clients)
            try:
                self.on_progress(self.progress())
            except Exception:  # a display must never break a fault test
                log.exception("progress callback failed")
            if done or self._killed.wait(1.0):
                return

    def _write_attempt(self, result: AttemptResult) -> None:
        path = Path(result.directory) / ATTEMPT_FILE
        try:
            path.write_text(json.dumps(asdict(result), indent=1) + "\n", encoding="utf-8")
        except OSError as exc:  # the records matter more than this note
            log.warning("cannot write %s: %s", path, exc)


def _first_request_ns(path: Path) -> int | None:
    """The earliest ``request_start_ns`` in a records file, or None."""
    first = None
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            start = json.loads(line)["metadata"]["request_start_ns"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(start, int) and (first is None or start < first):
            first = start
    return first


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
