"""``ftctl cleanup``: remove what a crashed run left behind (Kubernetes objects by label)."""

from __future__ import annotations

from pathlib import Path

from ftctl.commands import Output
from ftctl.platforms.kube.client import DEFAULT_NAMESPACE


def cleanup(
    *,
    namespace: str = DEFAULT_NAMESPACE,
    kubeconfig: Path | None = None,
    context: str | None = None,
    allow_namespace: list[str] | None = None,
) -> Output:
    """``ftctl cleanup``: delete leftovers by label; return the report text."""
    from ftctl.platforms.kubernetes import cleanup as delete_leftovers

    lines: list[str] = []
    notes: list[str] = []
    jobs: list[str] = []
    names = delete_leftovers(
        namespace,
        kubeconfig,
        context,
        tuple(allow_namespace or ()),
        log=lines.append,
        warn=notes.append,
        removed_jobs=jobs,
    )
    if not names and not jobs:
        lines.append(f"kubernetes: nothing to clean up in namespace {namespace}")
    policies = [n.removeprefix("networkpolicy/") for n in names if n.startswith("networkpolicy/")]
    dgds = [n for n in names if not n.startswith("networkpolicy/")]
    if policies:  # a crashed run's partitions
        lines.append(
            f"kubernetes: removed {len(policies)} NetworkPolicy(ies): {', '.join(policies)}"
        )
    if dgds:
        lines.append(f"kubernetes: removed {len(dgds)} DynamoGraphDeployment(s): {', '.join(dgds)}")
    if jobs:
        lines.append(
            f"kubernetes: removed {len(jobs)} load Job(s) with their pods: {', '.join(jobs)}"
        )
    return Output("\n".join(lines), notes=notes)
