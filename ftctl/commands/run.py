"""``ftctl run``: load, deploy, inject, check; write JUnit and the run's report.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ftctl.commands import Output
from ftctl.errors import Interrupted, UsageError


def run(
    scenarios: list[Path],
    *,
    output_dir: Path,
    client_type: str | None,
    namespace: str | None,
    allow_namespace: list[str] | None,
    image: str | None,
    kubeconfig: Path | None,
    context: str | None,
    storage_class: str | None,
    skip_service_restart: bool,
    keep_deployment: bool,
    dry_run: bool,
    repeat: int,
    junit: Path | None,
    as_json: bool,
    seed: int | None,
    scrape_interval: float | None,
    ready_timeout: float,
    metrics_port: int | None = None,
    endpoint_timeout: float | None = None,
    **selection: Any,
) -> Output:
    """``ftctl run``: the exit status is the verdict of every test.

    ``selection``: platform, keyword, include_custom_build, failures_file, thresholds_file (as
    ``scenario.load_tests`` takes them).
    """
    if client_type not in (None, "aiperf", "legacy"):
        raise UsageError("--client-type must be aiperf or legacy")
    from ftctl.platforms.kube.client import DEFAULT_NAMESPACE, check_namespace

    # Refused before anything is written or contacted, dry run or not.
    check_namespace(DEFAULT_NAMESPACE if namespace is None else namespace, allow_namespace or ())
    if dry_run:  # exactly what `ftctl plan` shows
        from ftctl.commands.plan import plan

        return plan(
            scenarios,
            as_json=as_json,
            image=image,
            client_type=client_type,
            namespace=namespace,
            allow_namespace=allow_namespace,
            **selection,
        )
    if storage_class:
        sys.stderr.write(
            "ftctl: note: --storage-class has no effect: ftctl collects logs through the "
            "Kubernetes API and creates no PVC\n"
        )
        sys.stderr.flush()
    from ftctl.reports.json_report import run_to_json
    from ftctl.reports.junit import write_junit
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
            "endpoint_timeout": endpoint_timeout,
        }.items()
        if value
    }
    options = RunOptions(
        output_dir=output_dir,
        platform=selection.pop("platform"),
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
            scenarios, options, image=image, observer=ProgressPrinter(), **selection
        )
    except Interrupted as exc:
        partial = getattr(exc, "outcome", None)
        if partial is not None and junit:
            write_junit(partial, junit)
        raise
    if junit:
        write_junit(outcome, junit)
    report = run_to_json(outcome)
    write_run_report(report, output_dir)
    text = json.dumps(report, indent=2, default=str) if as_json else render_run(outcome)
    return Output(text, outcome.status)
