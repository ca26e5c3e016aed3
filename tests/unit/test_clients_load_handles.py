"""Every load implementation takes what the runner passes through ``LoadHandle``.

``LoadHandle`` is a Protocol, so nothing checks an implementation against it at run time: a
keyword added to the interface (``wait_sending(on_wait=...)``) once reached only two of three
implementations, and the third failed with TypeError in the middle of a run.
"""

from __future__ import annotations

import inspect

import pytest

from ftctl.clients.aiperf import AiperfLoad
from ftctl.clients.base import LoadHandle
from ftctl.clients.legacy import LegacyLoad
from ftctl.platforms.kube.cluster_load import ClusterLoad

METHODS = [
    name
    for name, member in inspect.getmembers(LoadHandle, inspect.isfunction)
    if not name.startswith("_")
]


@pytest.mark.parametrize("implementation", [AiperfLoad, LegacyLoad, ClusterLoad])
@pytest.mark.parametrize("method", METHODS)
def test_implementation_accepts_every_argument_of_the_interface(implementation, method):
    wanted = inspect.signature(getattr(LoadHandle, method)).parameters
    have = inspect.signature(getattr(implementation, method)).parameters
    missing = [name for name in wanted if name not in have]
    assert not missing, f"{implementation.__name__}.{method} lacks {missing}"


def test_the_interface_has_the_methods_the_runner_calls():
    assert {"wait_sending", "stop", "progress"} <= set(METHODS)
