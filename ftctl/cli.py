"""Command line: parses options, calls one core function per command, maps errors to exit codes.

Only this module imports typer. Heavy modules (numpy, kubernetes) are imported inside the
commands that need them so that ``--help``, ``--version``, ``validate`` and ``list`` stay fast.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug or bool(os.environ.get("FTCTL_DEBUG"))


def _finite_positive(value: float | None) -> float | None:
    """A click callback: NaN, infinity and values <= 0 are usage errors (exit 2)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a finite number greater than 0")
    if value is not None and value > 366 * 24 * 3600:
        raise typer.BadParameter(f"{value} is longer than the limit of 366 days (31622400 s)")
    return value


def _finite_non_negative(value: float | None) -> float | None:
    """A click callback: NaN, infinity and negative values are usage errors (exit 2)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"{value} is not a finite number >= 0")
    return value


def _emit(text: str) -> None:
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()


def _warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(f"ftctl: warning: {line}\n")
    sys.stderr.flush()


@app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Scenario, FailureCatalog or Thresholds files.")
    ],
) -> None:
    """Validate YAML documents: schema and semantics. Exit 2 with file:line:col on error."""
    from ftctl.scenario import validate_files

    for line in validate_files(files):
        _emit(line)


@app.command("list")
def list_(
    paths: Annotated[list[Path] | None, typer.Argument(help="Scenario files or folders.")] = None,
    failures: Annotated[bool, typer.Option("--failures", help="List the failure catalog.")] = False,
    thresholds: Annotated[
        bool, typer.Option("--thresholds", help="List threshold profiles.")
    ] = False,
    keyword: Annotated[
        str | None, typer.Option("-k", help="Select tests: substr, and/or/not.")
    ] = None,
    include_custom_build: Annotated[bool, typer.Option("--include-custom-build")] = False,
    platform: Annotated[str | None, typer.Option("--platform")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    failures_file: Annotated[
        Path | None,
        typer.Option("--failures-file", help="FailureCatalog replacing the shipped one."),
    ] = None,
    thresholds_file: Annotated[
        Path | None, typer.Option("--thresholds-file", help="Thresholds replacing the shipped one.")
    ] = None,
) -> None:
    """List the expanded test names (touches no platform)."""
    from ftctl.scenario.listing import list_command

    _emit(
        list_command(
            paths or [],
            failures=failures,
            thresholds=thresholds,
            keyword=keyword,
            include_custom_build=include_custom_build,
            platform=platform,
            as_json=as_json,
            failures_file=failures_file,
            thresholds_file=thresholds_file,
        )
    )


@app.command()
def plan(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario files.")],
    keyword: Annotated[str | None, typer.Option("-k")] = None,
    include_custom_build: Annotated[bool, typer.Option("--include-custom-build")] = False,
    platform: Annotated[str | None, typer.Option("--platform")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    failures_file: Annotated[
        Path | None, typer.Option("--failures", help="FailureCatalog replacing the shipped one.")
    ] = None,
    thresholds_file: Annotated[
        Path | None, typer.Option("--thresholds", help="Thresholds replacing the shipped one.")
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace")] = None,
    allow_namespace: Annotated[
        list[str] | None, typer.Option("--allow-namespace", help="Permit a protected namespace.")
    ] = None,
) -> None:
    """Show the resolved timeline: what would be deployed, hit and checked."""
    from ftctl.platforms.kube.client import DEFAULT_NAMESPACE, check_namespace

    # The namespace guard of `run`, applied before any file is read: a plan never shows a
    # deployment that `run` would refuse.
    namespace = DEFAULT_NAMESPACE if namespace is None else namespace
    allowed = tuple(allow_namespace or ())
    check_namespace(namespace, allowed)
    from ftctl.platforms.kubernetes import annotate_plan
    from ftctl.scenario.listing import plan_command

    text = plan_command(
        scenarios,
        keyword=keyword,
        include_custom_build=include_custom_build,
        platform=platform,
        as_json=as_json,
        failures_file=failures_file,
        thresholds_file=thresholds_file,
    )
    _emit(annotate_plan(text, namespace, allowed, as_json=as_json))


@app.command()
def parse(
    dirs: Annotated[list[Path], typer.Argument(help="Result directories (or roots of many).")],
    force_parser: Annotated[
        str | None, typer.Option("--force-parser", help="aiperf|legacy")
    ] = None,
    info: Annotated[bool, typer.Option("--info", help="Describe without parsing.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="fancy|markdown|json|csv")] = "fancy",
    sla: Annotated[
        float | None,
        typer.Option("--sla", help="Latency SLA in seconds.", callback=_finite_positive),
    ] = None,
) -> None:
    """Parse result directories (ftctl, upstream legacy or aiperf) into tables."""
    from ftctl.results.command import parse_command

    text, status, notes = parse_command(
        dirs, force_parser=force_parser, info=info, fmt=fmt, sla=sla
    )
    _warn(notes)
    _emit(text)
    raise typer.Exit(int(status))


@app.command()
def run(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario files or folders.")],
    platform: Annotated[str | None, typer.Option("--platform", help="local|kubernetes")] = None,
    keyword: Annotated[
        str | None, typer.Option("-k", help="Select tests: substr, and/or/not.")
    ] = None,
    include_custom_build: Annotated[bool, typer.Option("--include-custom-build")] = False,
    output_dir: Annotated[Path, typer.Option("--output-dir", help="Where result dirs go.")] = Path(
        "results"
    ),
    client_type: Annotated[str | None, typer.Option("--client-type", help="aiperf|legacy")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace")] = None,
    allow_namespace: Annotated[list[str] | None, typer.Option("--allow-namespace")] = None,
    image: Annotated[str | None, typer.Option("--image")] = None,
    kubeconfig: Annotated[Path | None, typer.Option("--kubeconfig")] = None,
    context: Annotated[str | None, typer.Option("--context")] = None,
    storage_class: Annotated[
        str | None,
        typer.Option(
            "--storage-class",
            help="Accepted for upstream command lines; no effect (logs come through the API, "
            "no PVC is created).",
        ),
    ] = None,
    skip_service_restart: Annotated[bool, typer.Option("--skip-service-restart")] = False,
    keep_deployment: Annotated[bool, typer.Option("--keep-deployment")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; change nothing.")
    ] = False,
    repeat: Annotated[int, typer.Option("--repeat", min=1)] = 1,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run report as JSON.")] = False,
    failures_file: Annotated[Path | None, typer.Option("--failures")] = None,
    thresholds_file: Annotated[Path | None, typer.Option("--thresholds")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    scrape_interval: Annotated[
        float | None,
        typer.Option(
            "--scrape-interval",
            help="Seconds between /metrics scrapes of every pod (0: off; default: the "
            "scenario's observe.interval, else 1).",
            callback=_finite_non_negative,
        ),
    ] = None,
    ready_timeout: Annotated[
        float,
        typer.Option(
            "--ready-timeout",
            help="Seconds to wait for the graph to be ready.",
            callback=_finite_positive,
        ),
    ] = 600.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve the loads' live Prometheus metrics on 127.0.0.1:PORT (0: any free).",
        ),
    ] = None,
) -> None:
    """Deploy, load, inject faults, verify, collect, check: the exit code is the verdict."""
    if client_type not in (None, "aiperf", "legacy"):
        raise typer.BadParameter("--client-type must be aiperf or legacy")
    from ftctl.platforms.kube.client import DEFAULT_NAMESPACE, check_namespace

    # Refused before anything is written or contacted, dry run or not.
    check_namespace(DEFAULT_NAMESPACE if namespace is None else namespace, allow_namespace or ())
    if dry_run:  # exactly what `ftctl plan` shows
        plan(
            scenarios,
            keyword=keyword,
            include_custom_build=include_custom_build,
            platform=platform,
            as_json=as_json,
            failures_file=failures_file,
            thresholds_file=thresholds_file,
            namespace=namespace,
            allow_namespace=allow_namespace,
        )
        return
    if storage_class:
        typer.echo(
            "ftctl: note: --storage-class has no effect: ftctl collects logs through the "
            "Kubernetes API and creates no PVC",
            err=True,
        )
    import json

    from ftctl.errors import Interrupted
    from ftctl.reports.json_report import run_to_json
    from ftctl.reports.progress import ProgressPrinter
    from ftctl.reports.summary import render_run
    from ftctl.runner import RunOptions, run_scenarios, write_run_report

    platform_options = {
        key: value
        for key, value in {
            "namespace": namespace,
            "allow_namespaces": allow_namespace,
            "kubeconfig": kubeconfig,
            "context": context,
            "skip_service_restart": skip_service_restart or None,
        }.items()
        if value
    }
    options = RunOptions(
        output_dir=output_dir,
        platform=platform,
        client_type=client_type,
        keep_deployment=keep_deployment,
        repeat=repeat,
        platform_options=platform_options,
        seed=seed,
        ready_timeout=ready_timeout,
        scrape_interval=scrape_interval,
        metrics_port=metrics_port,
    )
    try:
        outcome = run_scenarios(
            scenarios,
            options,
            keyword=keyword,
            include_custom_build=include_custom_build,
            image=image,
            failures_file=failures_file,
            thresholds_file=thresholds_file,
            observer=ProgressPrinter(),
        )
    except Interrupted as exc:
        partial = getattr(exc, "outcome", None)
        if partial is not None and junit:
            from ftctl.reports.junit import write_junit

            write_junit(partial, junit)
        raise
    if junit:
        from ftctl.reports.junit import write_junit

        write_junit(outcome, junit)
    report = run_to_json(outcome)
    write_run_report(report, output_dir)
    _emit(json.dumps(report, indent=2, default=str) if as_json else render_run(outcome))
    raise typer.Exit(int(outcome.status))


@app.command()
def load(
    urls: Annotated[
        list[str] | None, typer.Argument(help="Frontend base URLs (http://HOST:PORT).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name (default: ask /v1/models).")] = None,
    clients: Annotated[int, typer.Option(help="Logical clients.")] = 1,
    requests_per_client: Annotated[
        int | None, typer.Option(help="Requests per client (default 10).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Run for this many seconds instead.")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="In-flight requests per client.")] = 1,
    rate: Annotated[
        float | None, typer.Option(help="closed: max req/s per client; open: total req/s.")
    ] = None,
    arrival: Annotated[str, typer.Option(help="closed|constant|poisson")] = "closed",
    streaming: Annotated[bool, typer.Option("--streaming/--no-streaming")] = True,
    input_tokens: Annotated[int, typer.Option(help="Prompt length (words).")] = 100,
    output_tokens: Annotated[int, typer.Option(help="max_tokens = min_tokens.")] = 100,
    retries: Annotated[int, typer.Option(help="Extra attempts per failed request.")] = 0,
    retry_delay: Annotated[float, typer.Option(help="Seconds between attempts.")] = 1.0,
    timeout: Annotated[float, typer.Option(help="Seconds per attempt.")] = 30.0,
    endpoint: Annotated[str, typer.Option(help="API path.")] = "/v1/chat/completions",
    protocol: Annotated[
        str, typer.Option(help="http (OpenAI) | grpc (KServe v2) | auto (ask the server).")
    ] = "http",
    each_pod: Annotated[
        bool, typer.Option(help="Load each URL (one pod each) in turn; one row per pod.")
    ] = False,
    sla: Annotated[
        float | None,
        typer.Option(help="With --each-pod: sustainable req/s at p95 <= SLA seconds, per pod."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of prompts and arrivals.")] = 100,
    processes: Annotated[
        int | None, typer.Option(help="Worker processes (default: by client count).")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Where client logs go (default: a new ftctl-load/<time> folder)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="fancy|markdown|json")] = "fancy",
    compare: Annotated[
        list[Path] | None,
        typer.Option(help="A saved run dir to show side by side (repeat for more)."),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus text on 127.0.0.1:PORT (0: any free).")
    ] = None,
) -> None:
    """Run the built-in load client against an endpoint and print the load-test table."""
    from ftctl.clients.standalone import build_spec, load_command

    spec = None
    if urls:
        spec = build_spec(
            clients=clients,
            requests_per_client=requests_per_client,
            duration=duration,
            concurrency=concurrency,
            rate=rate,
            arrival=arrival,
            streaming=streaming,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            retries=retries,
            retry_delay=retry_delay,
            timeout=timeout,
            endpoint=endpoint,
            seed=seed,
            protocol=protocol,
        )

    def progress(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    text, status = load_command(
        urls or [],
        model=model,
        spec=spec,
        output_dir=output_dir,
        fmt=fmt,
        compare=compare or [],
        metrics_port=metrics_port,
        processes=processes,
        progress=progress,
        protocol=protocol,
        each_pod=each_pod,
        sla=sla,
    )
    _emit(text)
    raise typer.Exit(int(status))


@app.command()
def report(
    directory: Annotated[Path, typer.Argument(help="A result directory (or a root of many).")],
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a timeline PNG.")] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="Add a timeline panel of this scraped series (repeatable)."),
    ] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write Markdown.")] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write one self-contained HTML page.")
    ] = None,
    histogram: Annotated[
        bool, typer.Option("--histogram", help="Add latency histograms per phase.")
    ] = False,
) -> None:
    """Markdown or HTML report (tables, checks, faults) and a timeline plot of a result dir."""
    from ftctl.errors import UsageError
    from ftctl.reports.compare import report_command

    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"--plot {plot}: the timeline is a PNG; give a file name ending in .png")
    text, notes = report_command(
        directory,
        plot=plot,
        markdown=markdown,
        html=html,
        metrics=tuple(metric or ()),
        histogram=histogram,
    )
    _warn(notes)
    _emit(text)


@app.command()
def compare(
    dir_a: Annotated[Path, typer.Argument(help="Baseline result directory.")],
    dir_b: Annotated[Path, typer.Argument(help="Result directory to compare.")],
    fmt: Annotated[str, typer.Option("--format", help="fancy|markdown|json")] = "fancy",
) -> None:
    """Deltas of recovery time, success rates and latencies between two runs."""
    from ftctl.errors import UsageError
    from ftctl.reports.compare import FORMATS, compare_command

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    text, notes = compare_command(dir_a, dir_b, fmt)
    _warn(notes)
    _emit(text)


@app.command()
def cleanup(
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "fault-tolerance-test",
    kubeconfig: Annotated[Path | None, typer.Option("--kubeconfig")] = None,
    context: Annotated[str | None, typer.Option("--context")] = None,
    allow_namespace: Annotated[
        list[str] | None, typer.Option("--allow-namespace", help="Permit a protected namespace.")
    ] = None,
) -> None:
    """Remove what a crashed run left behind (Kubernetes objects labelled by ftctl)."""
    from ftctl.platforms.kubernetes import cleanup_command

    _emit(cleanup_command(namespace, kubeconfig, context, tuple(allow_namespace or ())))


def main() -> None:
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
    except KeyboardInterrupt:
        sys.stderr.write("ftctl: interrupted\n")
        sys.exit(int(ExitStatus.INTERRUPTED))
    except Exception as exc:  # click's usage errors (typer vendors click) and the unexpected
        if type(exc).__name__ == "Abort":
            sys.stderr.write("ftctl: interrupted\n")
            sys.exit(int(ExitStatus.INTERRUPTED))
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(int(ExitStatus.INVALID))
        if _state["debug"]:
            traceback.print_exc()
        sys.stderr.write(f"ftctl: error: internal error: {exc!r} (rerun with --debug)\n")
        sys.exit(int(ExitStatus.INFRA))
