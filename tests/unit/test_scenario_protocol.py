"""``load.protocol`` and ``deployment.local.kserve_grpc`` in scenario files."""

from __future__ import annotations

import textwrap

import pytest

from ftctl.errors import ScenarioError
from ftctl.scenario import load_tests

HEAD = """\
apiVersion: ftctl/v1
kind: Scenario
metadata: {name: t}
"""


def _load(tmp_path, body: str):
    path = tmp_path / "s.yaml"
    if not body.startswith("deployment"):
        body = "deployment: {backend: vllm, topology: agg}\n" + body
    path.write_text(HEAD + textwrap.dedent(body))
    return load_tests([path])


def test_protocol_defaults_to_http(tmp_path):
    (t,) = _load(tmp_path, "load: {client: legacy}\n")
    assert t.loads[0].protocol == "http"
    assert t.deployment.local.kserve_grpc is False


def test_kserve_frontend_makes_grpc_the_default_protocol(tmp_path):
    (t,) = _load(
        tmp_path,
        "deployment: {backend: vllm, topology: agg, local: {kserve_grpc: true}}\nload: {client: legacy}\n",
    )
    assert t.deployment.local.kserve_grpc is True
    assert t.loads[0].protocol == "grpc"


def test_http_load_against_a_kserve_only_frontend_is_refused(tmp_path):
    with pytest.raises(ScenarioError, match="set protocol: grpc"):
        _load(
            tmp_path,
            "deployment: {backend: vllm, topology: agg, local: {kserve_grpc: true}}\nload: {client: legacy, protocol: http}\n",
        )


def test_grpc_needs_the_built_in_client(tmp_path):
    with pytest.raises(ScenarioError, match="built-in client only"):
        _load(tmp_path, "load: {client: aiperf, protocol: grpc}\n")


def test_unknown_protocol_is_a_schema_error(tmp_path):
    with pytest.raises(ScenarioError, match="protocol"):
        _load(tmp_path, "load: {client: legacy, protocol: websocket}\n")
