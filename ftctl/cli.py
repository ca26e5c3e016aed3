"""Command line: the typer declarations, and the one mapping of errors to exit codes.

Only this module imports typer. Each command passes its options by name to its module in
``ftctl/commands/``, imported inside the command so that ``--help``, ``--version``, ``validate``
and ``list`` stay fast (numpy and kubernetes load only where needed).
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated as A

import typer

from ftctl import __version__
from ftctl.errors import ExitStatus, FtctlError

app = typer.Typer(
    name="ftctl",
    help="Fault-tolerance tests for LLM inference deployments (NVIDIA Dynamo graphs).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        print(f"ftctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: A[
        bool, O("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
    debug: A[bool, O("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug or bool(os.environ.get("FTCTL_DEBUG"))


def _seconds(low_ok, text: str, limit: float = math.inf):
    """A click callback: NaN, infinity and values out of range are usage errors (exit 2)."""

    def check(value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and low_ok(value)):
            raise typer.BadParameter(f"{value} is not a finite number {text}")
        if value is not None and value > limit:
            raise typer.BadParameter(f"{value} is longer than the limit of 366 days (31622400 s)")
        return value

    return check


_positive = _seconds(lambda v: v > 0, "greater than 0", 366 * 24 * 3600)
_at_least_0 = _seconds(lambda v: v >= 0, ">= 0")


def _call(target: str, options: dict) -> int:
    """Run ``ftctl.commands.<module>:<function>`` with the options; print; return its status.

    The module is imported only now: ``--help`` and the fast commands never load numpy.
    """
    module, _, function = target.partition(":")
    from ftctl.commands import flags_named

    command = getattr(importlib.import_module(f"ftctl.commands.{module}"), function)
    with flags_named():
        return command(**options).emit()


# typer.Option and typer.Argument, short: each declaration fits one line.
O = typer.Option  # noqa: E741
Arg = typer.Argument

# Options shared by list, plan and run, declared once.
Keyword = A[str | None, O("-k", help="Select tests: name/node id/tag, and/or/not.")]
Markers = A[str | None, O("-m", help="Select tests by tag: and/or/not.")]
CustomBuild = A[bool, O("--include-custom-build")]
Platform = A[str | None, O("--platform", help="local|kubernetes")]
AsJson = A[bool, O("--json", help="Machine-readable output.")]
FailuresFile = A[Path | None, O("--failures", help="FailureCatalog replacing the shipped one.")]
ThresholdsFile = A[Path | None, O("--thresholds", help="Thresholds replacing the shipped one.")]
Namespace = A[str | None, O("--namespace")]
AllowNamespace = A[list[str] | None, O("--allow-namespace", help="Permit a protected namespace.")]
Kubeconfig = A[Path | None, O("--kubeconfig")]
Context = A[str | None, O("--context")]
Format = A[str, O("--format", help="fancy|markdown|json")]
RESULTS = Path("results")
NO_PVC = "Accepted for upstream command lines; no effect (logs come through the API, no PVC)."
ENDPOINT = "kubernetes: exit 3 when no frontend was reachable for this many seconds (30)."
LIVE = "Serve live Prometheus on 127.0.0.1:PORT (0: any free)."
SCRAPE = (
    "Seconds between /metrics scrapes of every pod (0: off; default: observe.interval, else 1)."
)


@app.command()
def validate(files: A[list[Path], Arg(help="Scenario/catalog files.")]) -> int:
    """Validate YAML documents: schema and semantics. Exit 2 with file:line:col on error."""
    return _call("validate:validate", locals())


@app.command("list")
def list_(
    paths: A[list[Path] | None, Arg(help="Scenario files or folders.")] = None,
    failures: A[bool, O("--failures", help="List the failure catalog.")] = False,
    thresholds: A[bool, O("--thresholds", help="List threshold profiles.")] = False,
    keyword: Keyword = None,
    markers: Markers = None,
    include_custom_build: CustomBuild = False,
    platform: Platform = None,
    as_json: AsJson = False,
    failures_file: A[Path | None, O("--failures-file", help="A FailureCatalog.")] = None,
    thresholds_file: A[Path | None, O("--thresholds-file", help="Thresholds.")] = None,
) -> int:
    """List the expanded test names (touches no platform)."""
    return _call("list:list_", locals())


@app.command()
def plan(
    scenarios: A[list[Path], Arg(help="Scenario files.")],
    keyword: Keyword = None,
    markers: Markers = None,
    include_custom_build: CustomBuild = False,
    platform: Platform = None,
    as_json: AsJson = False,
    failures_file: FailuresFile = None,
    thresholds_file: ThresholdsFile = None,
    namespace: Namespace = None,
    allow_namespace: AllowNamespace = None,
) -> int:
    """Show the resolved timeline: what would be deployed, hit and checked."""
    return _call("plan:plan", locals())


@app.command()
def parse(
    dirs: A[list[Path], Arg(help="Result directories (or roots of many).")],
    force_parser: A[str | None, O("--force-parser", help="aiperf|legacy")] = None,
    info: A[bool, O("--info", help="Describe without parsing.")] = False,
    fmt: A[str, O("--format", help="fancy|markdown|json|csv")] = "fancy",
    sla: A[float | None, O("--sla", help="Latency SLA (s).", callback=_positive)] = None,
) -> int:
    """Parse result directories (ftctl, upstream legacy or aiperf) into tables."""
    return _call("parse:parse", locals())


@app.command()
def run(
    scenarios: A[list[Path], Arg(help="Scenario files or folders.")],
    platform: Platform = None,
    keyword: Keyword = None,
    markers: Markers = None,
    include_custom_build: CustomBuild = False,
    output_dir: A[Path, O("--output-dir", help="Where result dirs go.")] = RESULTS,
    client_type: A[str | None, O("--client-type", help="aiperf|legacy")] = None,
    namespace: Namespace = None,
    allow_namespace: AllowNamespace = None,
    image: A[str | None, O("--image")] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    storage_class: A[str | None, O("--storage-class", help=NO_PVC)] = None,
    skip_service_restart: A[bool, O("--skip-service-restart")] = False,
    keep_deployment: A[bool, O("--keep-deployment")] = False,
    dry_run: A[bool, O("--dry-run", help="Show the plan; change nothing.")] = False,
    repeat: A[int, O("--repeat", min=1)] = 1,
    junit: A[Path | None, O("--junit", help="Write JUnit XML here.")] = None,
    as_json: A[bool, O("--json", help="Print the run report as JSON.")] = False,
    failures_file: FailuresFile = None,
    thresholds_file: ThresholdsFile = None,
    seed: A[int | None, O("--seed")] = None,
    scrape_interval: A[float | None, O(help=SCRAPE, callback=_at_least_0)] = None,
    ready_timeout: A[
        float, O(help="Seconds to wait for a ready graph.", callback=_positive)
    ] = 600.0,
    endpoint_timeout: A[float | None, O(help=ENDPOINT, callback=_positive)] = None,
    metrics_port: A[int | None, O(help=LIVE, min=0, max=65535)] = None,
) -> int:
    """Deploy, load, inject faults, verify, collect, check: the exit code is the verdict."""
    return _call("run:run", locals())


@app.command()
def load(
    urls: A[list[str] | None, Arg(help="Frontend URLs (http://HOST:PORT).")] = None,
    model: A[str | None, O(help="Model name (default: ask /v1/models).")] = None,
    clients: A[int, O(help="Logical clients.")] = 1,
    requests_per_client: A[int | None, O(help="Requests per client (10).")] = None,
    duration: A[float | None, O(help="Run for this many seconds instead.")] = None,
    concurrency: A[int, O(help="In-flight requests per client.")] = 1,
    rate: A[float | None, O(help="closed: max req/s per client; open: total.")] = None,
    arrival: A[str, O(help="closed|constant|poisson")] = "closed",
    streaming: A[bool, O("--streaming/--no-streaming")] = True,
    input_tokens: A[int, O(help="Prompt length (words).")] = 100,
    output_tokens: A[int, O(help="max_tokens = min_tokens.")] = 100,
    retries: A[int, O(help="Extra attempts per failed request.")] = 0,
    retry_delay: A[float, O(help="Seconds between attempts.")] = 1.0,
    timeout: A[float, O(help="Seconds per attempt.")] = 30.0,
    endpoint: A[str, O(help="API path.")] = "/v1/chat/completions",
    protocol: A[str, O(help="http (OpenAI) | grpc (KServe v2) | auto.")] = "http",
    each_pod: A[bool, O(help="Load each URL (one pod each) in turn.")] = False,
    sla: A[
        float | None, O(help="With --each-pod: req/s at p95 <= SLA s.", callback=_positive)
    ] = None,
    seed: A[int, O(help="Seed of prompts and arrivals.")] = 100,
    processes: A[int | None, O(help="Worker processes (default: by clients).")] = None,
    output_dir: A[Path | None, O(help="Where logs go (default ftctl-load/<t>).")] = None,
    fmt: Format = "fancy",
    compare: A[list[Path] | None, O(help="A saved run dir to show beside.")] = None,
    metrics_port: A[int | None, O(help="Serve Prometheus on 127.0.0.1:PORT.")] = None,
    namespace: A[str | None, O(help="Load each ready frontend pod there (port-forward).")] = None,
    selector: A[str | None, O(help="With --namespace: the pods (a label selector).")] = None,
    pod_port: A[int, O(help="With --namespace: the pods' HTTP port.")] = 8000,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    allow_namespace: AllowNamespace = None,
) -> int:
    """Run the built-in load client against an endpoint and print the load-test table."""
    return _call("load:load", locals())


@app.command()
def report(
    directory: A[Path, Arg(help="A result directory (or a root of many).")],
    plot: A[Path | None, O("--plot", help="Write a timeline PNG.")] = None,
    metric: A[list[str] | None, O(help="Add a panel of this series (repeat).")] = None,
    markdown: A[Path | None, O("--markdown", help="Write Markdown.")] = None,
    html: A[Path | None, O("--html", help="Write one self-contained page.")] = None,
    histogram: A[bool, O("--histogram", help="Latency histograms per phase.")] = False,
) -> int:
    """Markdown or HTML report (tables, checks, faults) and a timeline plot of a result dir."""
    return _call("report:report", locals())


@app.command()
def compare(
    dir_a: A[Path, Arg(help="Baseline result directory.")],
    dir_b: A[Path, Arg(help="Result directory to compare.")],
    fmt: Format = "fancy",
) -> int:
    """Deltas of recovery time, success rates and latencies between two runs."""
    return _call("compare:compare", locals())


@app.command()
def cleanup(
    namespace: A[str, O("--namespace", "-n")] = "fault-tolerance-test",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    allow_namespace: AllowNamespace = None,
) -> int:
    """Remove what a crashed run left behind (Kubernetes objects labelled by ftctl)."""
    return _call("cleanup:cleanup", locals())


@app.command()
def status(
    namespace: A[str, O("--namespace", "-n")] = "fault-tolerance-test",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    allow_namespace: AllowNamespace = None,
    as_json: AsJson = False,
) -> int:
    """ftctl runs in a namespace and their client groups (load Jobs, pods by phase)."""
    return _call("status:status", locals())


@app.command("cluster-worker", hidden=True)
def cluster_worker() -> None:
    """Run in a cluster load's Job pod (load.placement: cluster): config from the env."""
    from ftctl.clients.cluster_worker import main as worker_main

    raise typer.Exit(worker_main())


def main() -> int:
    """Entry point: run the app, turn known errors into one line and an exit code."""
    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting with it.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except FtctlError as exc:
        if _state["debug"]:
            traceback.print_exc()
        for line in exc.lines():
            sys.stderr.write(f"ftctl: error: {line}\n")
        if exc.summary:
            sys.stderr.write(f"ftctl: {exc.summary}\n")
        sys.exit(int(exc.exit_code))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("ftctl: interrupted\n")
        sys.exit(int(ExitStatus.INTERRUPTED))
    except typer.TyperException as exc:  # typer's click usage errors: bad option, no argument
        exc.show()  # type: ignore[attr-defined]  (each is a click exception, which shows itself)
        sys.exit(int(ExitStatus.INVALID))
    except Exception as exc:  # the unexpected
        if _state["debug"]:
            traceback.print_exc()
        sys.stderr.write(f"ftctl: error: internal error: {exc!r} (rerun with --debug)\n")
        sys.exit(int(ExitStatus.INFRA))
