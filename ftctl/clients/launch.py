"""Builds the load client a LoadSpec names (legacy or aiperf): the one place that knows both."""

from __future__ import annotations

from pathlib import Path

from ftctl.clients.base import LoadHandle, LoadTarget
from ftctl.scenario.model import LoadSpec


def launch_load(spec: LoadSpec, target: LoadTarget, out_dir: Path) -> LoadHandle:
    """Build the load handle for ``spec.client`` writing into ``out_dir`` (not started)."""
    if spec.client == "legacy":
        from ftctl.clients.legacy import LegacyLoad

        return LegacyLoad(spec, target, out_dir)
    from ftctl.clients.aiperf import AiperfLoad

    return AiperfLoad(spec, target, out_dir)
