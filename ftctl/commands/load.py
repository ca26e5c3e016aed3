"""``ftctl load``: the legacy client alone against an existing endpoint, then the load table."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftctl.clients.base import LoadTarget
from ftctl.clients.loadtable import read_run, render_compare, render_run
from ftctl.clients.protocol import PROTOCOLS, detect_protocol
from ftctl.commands import Output
from ftctl.errors import ClientError, ExitStatus, UsageError
from ftctl.layout import CLIENT_LOG_GLOB, LOAD_RUN_FILE, LOAD_WORKER_STDERR_GLOB, client_log
from ftctl.scenario.model import LoadSpec, TokenDist

if TYPE_CHECKING:
    from ftctl.clients.legacy import LegacyLoad

FORMATS = ("fancy", "markdown", "json")
ARRIVALS = ("closed", "constant", "poisson")
# Seconds options (--duration, --timeout, --retry-delay): far enough past this the event
# loop's timers overflow (--duration 1e300 killed every worker); a year is more than enough.
MAX_SECONDS = 365 * 86400
# --rate below this: 1/rate seconds between requests would pass MAX_SECONDS.
MIN_RATE = 1e-6
# Prompt words / max_tokens: the prompt is built in memory per request, and max_tokens must fit
# the 64-bit JSON integers of the request body.
MAX_TOKENS = 10_000_000
# Worker processes: each is a Python interpreter with its own event loop.
MAX_PROCESSES = 256
# Descriptors a worker uses besides its clients' log files and sockets (interpreter, pipes,
# event loop, DNS resolver).
FD_MARGIN = 64
# The default output folder: one fresh folder per run under this root.
DEFAULT_ROOT = Path("ftctl-load")
_STAMP = "%Y%m%d-%H%M%S"
_MAX_SAME_SECOND = 1000
# Files a load writes into its folder; an explicit --output-dir holding any is refused.
_LOAD_FILES = (CLIENT_LOG_GLOB, LOAD_RUN_FILE, LOAD_WORKER_STDERR_GLOB)
_HOST = re.compile(r"[A-Za-z0-9._-]+")


def discover_model(base_url: str, timeout: float = 10.0) -> str:
    """The first model listed by ``GET {base_url}/v1/models``."""
    url = base_url.rstrip("/") + "/v1/models"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http only)
            data = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ClientError(f"cannot list models at {url}: {exc}; pass --model") from exc
    models = [m.get("id") for m in (data.get("data") or []) if isinstance(m, dict)]
    if not models or not models[0]:
        raise ClientError(f"{url} lists no model; pass --model")
    return str(models[0])


def build_spec(
    *,
    clients: int,
    requests_per_client: int | None,
    duration: float | None,
    concurrency: int,
    rate: float | None,
    arrival: str,
    streaming: bool,
    input_tokens: int,
    output_tokens: int,
    retries: int,
    retry_delay: float,
    timeout: float,
    endpoint: str,
    seed: int,
    protocol: str = "http",
) -> LoadSpec:
    """A LoadSpec from command-line values; bad combinations raise UsageError (exit 2)."""
    if clients < 1:
        raise UsageError("--clients: must be at least 1")
    if concurrency < 1:
        raise UsageError("--concurrency: must be at least 1")
    if requests_per_client is not None and requests_per_client < 1:
        raise UsageError("--requests-per-client: must be at least 1")
    if duration is not None:
        _check_seconds("--duration", duration, zero_ok=False)
    if arrival not in ARRIVALS:
        raise UsageError(f"--arrival: expected one of {', '.join(ARRIVALS)}, got {arrival!r}")
    if rate is not None and not (math.isfinite(rate) and MIN_RATE <= rate):
        raise UsageError(f"--rate: expected a number of requests/s >= {MIN_RATE:g}, got {rate:g}")
    if arrival != "closed" and not rate:
        raise UsageError(f"--arrival {arrival}: needs --rate (total requests per second)")
    if retries < 0:
        raise UsageError("--retries: must be 0 or more")
    _check_seconds("--retry-delay", retry_delay, zero_ok=True)
    _check_seconds("--timeout", timeout, zero_ok=False)
    for option, value in (("--input-tokens", input_tokens), ("--output-tokens", output_tokens)):
        if not 1 <= value <= MAX_TOKENS:
            raise UsageError(f"{option}: expected 1 to {MAX_TOKENS}, got {value}")
    if protocol not in PROTOCOLS:
        raise UsageError(f"--protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if duration is None and requests_per_client is None:
        requests_per_client = 10
    return LoadSpec(
        name="default",
        client="legacy",
        clients=clients,
        requests_per_client=requests_per_client if duration is None else None,
        duration=duration,
        concurrency=concurrency,
        request_rate=rate,
        arrival=arrival,  # type: ignore[arg-type]
        input_tokens=TokenDist(input_tokens, 0.0),
        output_tokens=TokenDist(output_tokens, 0.0),
        streaming=streaming,
        retries=retries,
        retry_delay=retry_delay,
        timeout=timeout,
        endpoint=endpoint,
        seed=seed,
        # "auto" stays "http" here; load() asks the server and replaces it.
        protocol="grpc" if protocol == "grpc" else "http",  # type: ignore[arg-type]
    )


def _check_seconds(option: str, value: float, *, zero_ok: bool) -> None:
    """A finite number of seconds in (0 or >0) .. MAX_SECONDS, else UsageError naming ``option``."""
    low_ok = value >= 0 if zero_ok else value > 0
    if not (math.isfinite(value) and low_ok and value <= MAX_SECONDS):
        low = ">= 0" if zero_ok else "> 0"
        raise UsageError(
            f"{option}: expected seconds {low} and at most {MAX_SECONDS} (365 days), got {value:g}"
        )


def check_url(url: str) -> None:
    """``http(s)://HOST[:PORT][/prefix]`` with a real host and port, else UsageError."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "grpc"):
        raise UsageError(f"URL {url!r}: expected http://HOST:PORT")
    host = parts.hostname or ""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"URL {url!r}: {host!r} is not an IPv6 address") from None
    elif not _HOST.fullmatch(host):
        raise UsageError(f"URL {url!r}: no valid host; expected http://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"URL {url!r}: the port must be a number from 1 to 65535") from None
    if port == 0:
        raise UsageError(f"URL {url!r}: the port must be a number from 1 to 65535")
    if parts.query or parts.fragment:
        raise UsageError(f"URL {url!r}: no query or fragment expected (the API path is appended)")


def new_run_dir(root: Path = DEFAULT_ROOT, now: datetime | None = None) -> Path:
    """Create and return a fresh ``root/<YYYYmmdd-HHMMSS>[-N]`` folder for one run.

    The folder is made with ``mkdir`` (never ``exist_ok``), so two runs started in the same
    second (or at once) each get their own: the second finds the name taken and tries ``-2``.
    """
    stamp = (now or datetime.now()).strftime(_STAMP)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1, _MAX_SAME_SECOND + 1):
            path = root / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
    except OSError as exc:
        raise UsageError(
            f"cannot create a run folder under {root}: {exc.strerror or exc}; pass --output-dir"
        ) from exc
    raise UsageError(
        f"{root}: {_MAX_SAME_SECOND} runs already started at {stamp}; pass --output-dir"
    )


def claim_output_dir(out: Path) -> None:
    """Make ``out`` this run's own, or refuse (exit 2) if a previous load wrote there.

    The claim is the exclusive creation of ``client_0.log.txt`` (the run writes it anyway), so
    two runs given the same folder at once cannot both pass the check and mix their logs.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output-dir {out}: not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output-dir {out}: cannot create it: {exc.strerror or exc}") from exc
    found = sorted({p.name for pattern in _LOAD_FILES for p in out.glob(pattern)})
    if not found:
        try:
            os.close(os.open(out / client_log(0), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            return
        except FileExistsError:
            found = [client_log(0)]
        except OSError as exc:
            raise UsageError(
                f"--output-dir {out}: cannot write there: {exc.strerror or exc}"
            ) from exc
    shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
    raise UsageError(
        f"--output-dir {out}: already holds a previous load's files ({shown}); "
        "choose a new folder, or omit --output-dir for a fresh one under ftctl-load/"
    )


def check_fd_limit(spec: LoadSpec, processes: int, n_urls: int = 1) -> None:
    """Raise the open-file soft limit if a worker needs more; UsageError if the hard one is short.

    A worker holds one log file per client and up to ``concurrency`` sockets per client and
    frontend (idle keep-alive connections stay pooled per host), plus FD_MARGIN. Worker
    processes inherit this process's limit.
    """
    import resource

    per_client = 1 + spec.concurrency * max(1, n_urls)
    per_process = -(-spec.clients // processes)
    need = per_process * per_client + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or need <= soft:
        return
    target = hard if hard != resource.RLIM_INFINITY else need
    if need <= target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return
        except (ValueError, OSError):
            pass
    limit = hard if hard != resource.RLIM_INFINITY else soft
    fit = max(0, (limit - FD_MARGIN) // per_client)  # clients one worker can hold
    if fit:
        procs = -(-spec.clients // fit)
        hint = (
            f"use --processes {procs} or more, or fewer --clients"
            if procs <= MAX_PROCESSES
            else f"use at most {fit * MAX_PROCESSES} --clients (with --processes {MAX_PROCESSES})"
        )
    else:
        hint = "use a lower --concurrency"
    raise UsageError(
        f"--clients {spec.clients}: {per_process} clients per worker process need about {need} "
        f"open files, above this system's limit of {limit} (ulimit -n); {hint}"
    )


def _check_counts(metrics_port: int | None, processes: int | None) -> None:
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        raise UsageError(
            f"--metrics-port: expected 0 to 65535 (0: any free port), got {metrics_port}"
        )
    if processes is not None and not 1 <= processes <= MAX_PROCESSES:
        raise UsageError(f"--processes: expected 1 to {MAX_PROCESSES}, got {processes}")


def check_sent(load: LegacyLoad, out: Path, urls: Sequence[str]) -> None:
    """ClientError (exit 3) when the load could not run: a worker died, or nothing was sent.

    Args:
        load: the finished load (its summary, ``worker_errors`` and process count).
        out: the run folder (named in the message: the logs are there).
        urls: the targets (named when no connection could be made).
    """
    summary = load.summary
    assert summary is not None
    where = f"logs in {out}"
    if load.worker_errors:
        first = load.worker_errors[0]
        raise ClientError(
            f"{len(load.worker_errors)} of {load.processes} load worker processes died "
            f"({first}); the load did not run as asked, {where}"
        )
    if summary.requests == 0:
        hint = f" (is --duration {load.spec.duration:g} too short?)" if load.spec.duration else ""
        raise ClientError(f"no request was sent{hint}; {where}")
    if summary.ok == 0 and set(summary.errors) == {"connect"}:
        raise ClientError(
            f"no request could be sent: {summary.requests} of {summary.requests} requests "
            f"failed to connect to {', '.join(urls)} (first: {summary.first_error}); "
            f"is the server up? {where}"
        )


class _Progress:
    """Turns LoadProgress snapshots into a line at every 10 % (of requests, or of duration)."""

    def __init__(self, spec: LoadSpec, emit: Callable[[str], None]) -> None:
        self.spec = spec
        self.emit = emit
        self.total = (
            spec.clients * spec.requests_per_client
            if spec.duration is None and spec.requests_per_client
            else None
        )
        self.next_step = 1
        self.t0: float | None = None  # when the first worker started sending

    def started(self) -> None:
        if self.t0 is None:
            self.t0 = time.monotonic()

    def update(self, ok: int, failed: int, in_flight: int, rate: float, lat_sum: float) -> None:
        done = ok + failed
        if self.total:
            frac = done / self.total
        elif self.spec.duration and self.t0 is not None:
            frac = (time.monotonic() - self.t0) / self.spec.duration
        else:
            return
        step = min(10, int(frac * 10 + 1e-9))
        if step < self.next_step:
            return
        self._line(step, ok, failed, in_flight, rate, lat_sum)

    def finish(self, ok: int, failed: int, rate: float, lat_sum: float) -> None:
        """The load ran to its end: always close with the 100 % line.

        The duration clock starts when the first worker is seen sending (polled), so the
        elapsed fraction can fall short of 1 at the end; completion, not the clock, decides.
        """
        if self.next_step <= 10:
            self._line(10, ok, failed, 0, rate, lat_sum)

    def _line(
        self, step: int, ok: int, failed: int, in_flight: int, rate: float, lat_sum: float
    ) -> None:
        done = ok + failed
        self.next_step = step + 1
        mean = f"{lat_sum / done * 1000:.1f} ms" if done else "n/a"
        count = f"{done}/{self.total}" if self.total else f"{done}"
        self.emit(
            f"ftctl load: {step * 10:3d}% {count} requests, {failed} errors, "
            f"{in_flight} in flight, {rate:.1f} req/s, mean latency {mean}"
        )


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def load(
    urls: Sequence[str] | None,
    *,
    model: str | None = None,
    output_dir: Path | None = None,
    fmt: str = "fancy",
    compare: Sequence[Path] | None = None,
    metrics_port: int | None = None,
    processes: int | None = None,
    progress: Callable[[str], None] | None = _stderr,
    protocol: str = "http",
    each_pod: bool = False,
    sla: float | None = None,
    namespace: str | None = None,
    selector: str | None = None,
    pod_port: int = 8000,
    kubeconfig: Path | None = None,
    context: str | None = None,
    allow_namespace: list[str] | None = None,
    **spec_options: Any,
) -> Output:
    """Run the load (if ``urls``), then render its table or the comparison with ``compare``.

    ``namespace``: instead of URLs, every ready pod ``selector`` matches there (default: the
    frontend pods of any DGD), each loaded in turn through its own port-forward to
    ``pod_port`` (``--each-pod`` on Kubernetes).

    ``spec_options``: the arguments of ``build_spec`` (clients, rate, timeout, …). The status:
    CHECK_FAILED when a request of this run failed, INTERRUPTED after a Ctrl-C (the partial
    table is still returned), OK otherwise (a comparison of saved runs alone is OK).

    Raises:
        UsageError: a bad option value (checked before anything is sent or written), or an
            ``output_dir`` that already holds a previous load's files.
        ClientError: the load could not run: a worker process died, no request was sent, or
            every request failed to connect (``load.json`` and the logs are still written).
    """
    urls, compare = urls or [], compare or []
    if namespace is not None:
        return _each_kube_pod(
            urls,
            namespace=namespace,
            selector=selector,
            pod_port=pod_port,
            kubeconfig=kubeconfig,
            context=context,
            allow_namespace=allow_namespace,
            options=dict(
                model=model,
                output_dir=output_dir,
                fmt=fmt,
                compare=compare,
                metrics_port=metrics_port,
                processes=processes,
                progress=progress,
                protocol=protocol,
                sla=sla,
                **spec_options,
            ),
        )
    if selector is not None:
        raise UsageError("--selector picks pods of a --namespace; give --namespace too")
    spec = build_spec(protocol=protocol, **spec_options) if urls else None
    if fmt not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if not urls and not compare:
        raise UsageError("give a URL to load, or --compare DIR... to compare saved runs")
    for url in urls:
        check_url(url)
    _check_counts(metrics_port, processes)
    for d in compare:
        if not Path(d).is_dir():
            raise UsageError(f"--compare {d}: not a directory")
    if sla is not None:
        _check_seconds("--sla", sla, zero_ok=False)
    if each_pod and len(urls) > 1:
        return _each_pod(
            urls,
            model=model,
            spec_options=spec_options,
            output_dir=output_dir,
            fmt=fmt,
            compare=compare,
            processes=processes,
            progress=progress,
            protocol=protocol,
            sla=sla,
        )
    runs = []
    status = ExitStatus.OK
    if urls:
        assert spec is not None
        # Imported after the cheap checks: aiohttp takes most of a bad command's run time.
        from ftctl.clients.legacy import LegacyLoad, default_processes

        n_procs = max(1, min(processes or default_processes(spec), spec.clients))
        check_fd_limit(spec, n_procs, len(urls))
        if protocol == "auto":
            found, name, evidence = detect_protocol(urls[0], model, endpoint=spec.endpoint)
            spec = dataclasses.replace(spec, protocol=found)  # type: ignore[arg-type]
            (progress or (lambda _line: None))(f"ftctl load: protocol {found} ({evidence})")
        elif spec.protocol == "grpc":
            if model is None:
                raise UsageError("--protocol grpc: KServe has no model listing; pass --model")
            name = model
        else:
            name = model or discover_model(urls[0])
        emit = progress or (lambda _line: None)
        server = None
        if metrics_port is not None:
            # Bound before the run folder exists: a busy port leaves nothing behind. It serves
            # (and so calls `load`) only once started, after `load` exists.
            server = _metrics_server(metrics_port, lambda: load.stats())
        try:
            if output_dir is None:
                out = new_run_dir()
            else:
                out = output_dir
                claim_output_dir(out)
            load = LegacyLoad(spec, LoadTarget(urls[0], name), out, urls=urls, processes=n_procs)
        except BaseException:
            if server is not None:
                server.stop()
            raise
        tracker = _Progress(spec, emit)
        if server is not None:
            server.start()
            emit(f"ftctl load: metrics on http://127.0.0.1:{server.port}/metrics")
        interrupted = False
        try:
            load.start()
            try:
                while not load.wait(0.1):
                    if load.wait_started(0):
                        tracker.started()
                    p = load.progress()
                    tracker.update(p.ok, p.failed, p.in_flight, p.rate, load.stats().latency_sum)
            except KeyboardInterrupt:
                # First Ctrl-C: stop gracefully and still show what was done (exit 130).
                interrupted = True
                emit("ftctl load: interrupted; stopping the clients (Ctrl-C again to kill)")
                load.stop()
                if not load.wait(load.stop_grace + 5):
                    load.kill()
                    load.wait(5)
            st = load.stats()
            tracker.started()
            if interrupted:
                tracker.update(st.ok, st.failed, 0, load.progress().rate, st.latency_sum)
            else:
                tracker.finish(st.ok, st.failed, load.progress().rate, st.latency_sum)
        except BaseException:
            load.kill()
            raise
        finally:
            if server is not None:
                server.stop()
        summary = load.summary
        assert summary is not None
        (out / LOAD_RUN_FILE).write_text(
            json.dumps(
                {
                    "urls": list(urls),
                    "model": name,
                    "spec": _spec_json(spec),
                    "summary": summary.to_dict(),
                },
                indent=2,
            )
        )
        if not interrupted:
            check_sent(load, out, urls)
        run = read_run(out)
        run.name = str(out)
        runs.append(run)
        if summary.failed or run.failed:
            status = ExitStatus.CHECK_FAILED
        if interrupted:
            status = ExitStatus.INTERRUPTED
    for d in compare:
        run = read_run(Path(d))
        run.name = str(d)
        runs.append(run)
    text = render_run(runs[0], fmt) if len(runs) == 1 else render_compare(runs, fmt)
    if sla is not None and urls and fmt != "json":
        text += "\n" + capacity_text(runs[:1], sla)
    return Output(text, status)


def _each_kube_pod(
    urls: Sequence[str],
    *,
    namespace: str,
    selector: str | None,
    pod_port: int,
    kubeconfig: Path | None,
    context: str | None,
    allow_namespace: list[str] | None,
    options: dict[str, Any],
) -> Output:
    """``--each-pod --namespace NS``: the pods' own port-forwards stand in for the URLs."""
    from ftctl.platforms.kube.client import check_namespace

    if urls:
        raise UsageError("give frontend URLs or --namespace (its pods), not both")
    if not 1 <= pod_port <= 65535:
        raise UsageError(f"--pod-port: expected 1 to 65535, got {pod_port}")
    # Every option is checked before the cluster is contacted.
    check_namespace(namespace, allow_namespace or ())
    build_spec(protocol=options["protocol"], **_spec_only(options))
    _check_counts(options["metrics_port"], options["processes"])
    if options["fmt"] not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {options['fmt']!r}")
    from ftctl.platforms.kubernetes import FRONTEND_SELECTOR, pod_endpoints

    with pod_endpoints(
        namespace,
        kubeconfig,
        context,
        tuple(allow_namespace or ()),
        selector or FRONTEND_SELECTOR,
        pod_port,
    ) as pods:
        spec_options = _spec_only(options)
        rest = {k: v for k, v in options.items() if k not in spec_options}
        rest.pop("metrics_port", None)
        return _each_pod(
            [url for _name, url in pods],
            labels=[name for name, _url in pods],
            spec_options=spec_options,
            **rest,
        )


def _spec_only(options: dict[str, Any]) -> dict[str, Any]:
    """The ``build_spec`` arguments among ``load``'s options."""
    command = {"model", "output_dir", "fmt", "compare", "metrics_port", "processes"}
    command |= {"progress", "protocol", "sla"}
    return {k: v for k, v in options.items() if k not in command}


def _each_pod(
    urls: Sequence[str],
    *,
    labels: Sequence[str] | None = None,
    model: str | None,
    spec_options: dict[str, Any],
    output_dir: Path | None,
    fmt: str,
    compare: Sequence[Path],
    processes: int | None,
    progress: Callable[[str], None] | None,
    protocol: str,
    sla: float | None = None,
) -> Output:
    """``--each-pod``: the same load against every URL in turn (one pod each, not spread), then
    one table with a row per pod (and per ``--compare`` run); the worst status wins."""
    root = new_run_dir() if output_dir is None else output_dir
    runs = []
    status = ExitStatus.OK
    emit = progress or (lambda _line: None)
    for i, url in enumerate(urls):
        parts = urllib.parse.urlsplit(url)
        label = labels[i] if labels else url
        out = root / (f"pod{i}-{labels[i]}" if labels else f"pod{i}-{parts.hostname}_{parts.port}")
        emit(f"ftctl load: pod {i + 1}/{len(urls)}: {label}")
        one = load(
            [url],
            model=model,
            output_dir=out,
            fmt="json",
            processes=processes,
            progress=progress,
            protocol=protocol,
            **spec_options,
        ).status  # no sla here: the capacity lines come once, under the per-pod table
        if one == ExitStatus.INTERRUPTED:
            status = one
        elif one != ExitStatus.OK and status == ExitStatus.OK:
            status = one
        run = read_run(out)
        used = json.loads((out / LOAD_RUN_FILE).read_text()).get("spec", {}).get("protocol", "http")
        run.name = f"{label} ({used})"
        runs.append(run)
        if status == ExitStatus.INTERRUPTED:
            break
    pods = list(runs)
    for d in compare:
        run = read_run(Path(d))
        run.name = str(d)
        runs.append(run)
    text = render_compare(runs, fmt)
    if sla is not None and fmt != "json":
        text += "\n" + capacity_text(pods, sla)
    return Output(text, status)


# The seed guide's capacity planning: keep a 20 % buffer on a measured rate.
CAPACITY_BUFFER = 0.2


def capacity_at_sla(throughput: float, p95_s: float | None, sla_s: float) -> float | None:
    """Sustainable req/s of one pod at a latency SLA, from a run at fixed concurrency.

    ``throughput x (1 - CAPACITY_BUFFER)`` when that run's p95 latency met the SLA; None when it
    did not (the run says nothing about a lower rate: rerun with less concurrency).
    """
    if p95_s is None or p95_s > sla_s:
        return None
    return throughput * (1.0 - CAPACITY_BUFFER)


def capacity_text(runs: Sequence, sla_s: float) -> str:
    """Per-pod and total sustainable rate at p95 <= ``sla_s`` (lines under the table)."""
    lines = [f"Capacity at p95 <= {sla_s * 1e3:g} ms (measured rate - 20 % buffer):"]
    total, missed = 0.0, 0
    for r in runs:
        p95 = r.latency.get("p95")
        cap = capacity_at_sla(r.throughput, p95, sla_s)
        if cap is None:
            missed += 1
            shown = f"{p95 * 1e3:.1f} ms" if p95 is not None else "no successful request"
            lines.append(f"  {r.name}: SLA missed at {r.mode} (p95 {shown}); rerun with less load")
        else:
            total += cap
            lines.append(f"  {r.name}: {cap:.1f} req/s")
    note = f" ({missed} pod(s) missed the SLA, not counted)" if missed else ""
    lines.append(f"  total: {total:.1f} req/s{note}")
    return "\n".join(lines)


def _metrics_server(port: int, stats: Callable):
    from ftctl.clients.prom import MetricsServer

    try:
        return MetricsServer(port, stats)
    except OSError as exc:
        raise UsageError(
            f"--metrics-port {port}: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; "
            "choose another port (0: any free one)"
        ) from exc


def _spec_json(spec: LoadSpec) -> dict:
    from ftctl.clients.legacy import spec_to_dict

    return spec_to_dict(spec)
