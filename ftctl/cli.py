"""Command line: parses options, calls one core function per command, maps errors to exit codes.

Only this module imports typer. Heavy modules (numpy, kubernetes) are imported inside the
commands that need them so that ``--help``, ``--version``, ``validate`` and ``list`` stay fast.
"""

from __future__ import annotations

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


def _emit(text: str) -> None:
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()


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
        )
    )


@app.command()
def plan(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario files.")],
    keyword: Annotated[str | None, typer.Option("-k")] = None,
    include_custom_build: Annotated[bool, typer.Option("--include-custom-build")] = False,
    platform: Annotated[str | None, typer.Option("--platform")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the resolved timeline: what would be deployed, hit and checked."""
    from ftctl.scenario.listing import plan_command

    _emit(
        plan_command(
            scenarios,
            keyword=keyword,
            include_custom_build=include_custom_build,
            platform=platform,
            as_json=as_json,
        )
    )


@app.command()
def parse(
    dirs: Annotated[list[Path], typer.Argument(help="Result directories (or roots of many).")],
    force_parser: Annotated[
        str | None, typer.Option("--force-parser", help="aiperf|legacy")
    ] = None,
    info: Annotated[bool, typer.Option("--info", help="Describe without parsing.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="fancy|markdown|json|csv")] = "fancy",
    sla: Annotated[float | None, typer.Option("--sla", help="Latency SLA in seconds.")] = None,
) -> None:
    """Parse result directories (ftctl, upstream legacy or aiperf) into tables."""
    from ftctl.results.command import parse_command

    text, status = parse_command(dirs, force_parser=force_parser, info=info, fmt=fmt, sla=sla)
    _emit(text)
    raise typer.Exit(int(status))


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
        app(standalone_mode=False)
    except FtctlError as exc:
        if _state["debug"]:
            traceback.print_exc()
        sys.stderr.write(f"ftctl: error: {exc.message}\n")
        sys.exit(int(exc.exit_code))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("ftctl: interrupted\n")
        sys.exit(int(ExitStatus.INTERRUPTED))
    except Exception as exc:  # click usage errors and the unexpected
        import click

        if isinstance(exc, click.exceptions.Abort):
            sys.stderr.write("ftctl: interrupted\n")
            sys.exit(int(ExitStatus.INTERRUPTED))
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(int(ExitStatus.INVALID))
        if _state["debug"]:
            traceback.print_exc()
        sys.stderr.write(f"ftctl: error: internal error: {exc!r} (rerun with --debug)\n")
        sys.exit(int(ExitStatus.INFRA))
