"""``ftctl status``: the ftctl runs in a namespace and their client groups (load Jobs)."""

from __future__ import annotations

import json
from pathlib import Path

from ftctl.commands import Output
from ftctl.platforms.kube.client import DEFAULT_NAMESPACE


def status(
    *,
    namespace: str = DEFAULT_NAMESPACE,
    kubeconfig: Path | None = None,
    context: str | None = None,
    allow_namespace: list[str] | None = None,
    as_json: bool = False,
) -> Output:
    """List ftctl's deployments and load Jobs (from their labels); change nothing."""
    from ftctl.platforms.kube.cluster_load import status_rows
    from ftctl.platforms.kubernetes import api_platform

    notes: list[str] = []
    platform = api_platform(
        namespace, kubeconfig, context, tuple(allow_namespace or ()), warn=notes.append
    )
    try:
        rows = status_rows(platform)
    finally:
        platform.teardown()
    if as_json:
        return Output(json.dumps(rows, indent=2), notes=notes)
    lines = [platform.target.describe()]
    if not rows:
        lines.append(f"no ftctl run in namespace {namespace}")
    for r in rows:
        dgd = f"DGD {r['dgd']} ({r['state']})" if r["dgd"] else "no DGD"
        lines.append(f"run {r['run']}  test {r['test']}: {dgd}")
        for lo in r["loads"]:
            pods = ", ".join(f"{n} {k.lower()}" for k, n in lo["pods"].items())
            done = ", finished" if lo["finished"] else ""
            lines.append(
                f"  load '{lo['load']}': Job {lo['job']}, {lo['completions']} pods: {pods}{done}"
            )
    return Output("\n".join(lines), notes=notes)
