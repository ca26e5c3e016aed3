"""``--protocol auto``: an OpenAI HTTP server, a KServe gRPC server and neither, told apart
(loopback fakes here; tests/e2e/test_grpc_local.py asks the real Dynamo frontend)."""

from __future__ import annotations

import socket

import pytest

from ftctl.clients.protocol import detect_protocol
from ftctl.errors import ClientError, UsageError
from ftctl.platforms.kserve_relay import ENGINE_ENDPOINT, fill_max_tokens, mocker_args
from tests.fake_kserve import FakeKserve
from tests.fake_llm import FakeLLM


def test_openai_server_is_http_and_names_its_model():
    with FakeLLM() as srv:
        protocol, model, evidence = detect_protocol(srv.url, None)
    assert protocol == "http"
    assert model
    assert "/v1/models" in evidence


def test_kserve_server_is_grpc_when_the_model_is_known():
    with FakeKserve() as srv:
        protocol, model, evidence = detect_protocol(f"http://{srv.target}", "tiny")
    assert (protocol, model) == ("grpc", "tiny")
    assert "ModelMetadata" in evidence and "text_input" in evidence


def test_kserve_server_without_a_model_asks_for_one():
    with FakeKserve() as srv, pytest.raises(UsageError, match="pass --model"):
        detect_protocol(f"http://{srv.target}", None)


def test_kserve_server_that_lacks_the_model_is_neither():
    with FakeKserve() as srv, pytest.raises(ClientError, match="NOT_FOUND"):
        detect_protocol(f"http://{srv.target}", "other")


def test_closed_port_names_both_probes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClientError, match="neither OpenAI HTTP .* nor KServe gRPC"):
        detect_protocol(f"http://127.0.0.1:{port}", "tiny", timeout=1.0)


def test_relay_fills_max_tokens_only_when_missing():
    assert fill_max_tokens({"stop_conditions": {"max_tokens": None}}, 7) == {
        "stop_conditions": {"max_tokens": 7}
    }
    assert fill_max_tokens({}, 7)["stop_conditions"]["max_tokens"] == 7
    assert fill_max_tokens({"stop_conditions": {"max_tokens": 3}}, 7)["stop_conditions"] == {
        "max_tokens": 3
    }


def test_mocker_serves_the_engine_endpoint_under_its_own_model_name():
    args = mocker_args(
        ["--model-path", "/m", "--model-name", "tiny", "--speedup-ratio", "1"], "tiny"
    )
    assert args == [
        "--model-path",
        "/m",
        "--speedup-ratio",
        "1",
        "--endpoint",
        ENGINE_ENDPOINT,
        "--model-name",
        "tiny-engine",
    ]


def _text_status(output):
    return output.text, output.status


def test_each_pod_loads_every_url_in_turn_and_prints_a_row_per_pod(tmp_path):
    from ftctl.commands.load import load

    options = dict(
        clients=1,
        requests_per_client=3,
        duration=None,
        concurrency=1,
        rate=None,
        arrival="closed",
        streaming=True,
        input_tokens=4,
        output_tokens=3,
        retries=0,
        retry_delay=0.0,
        timeout=5.0,
        endpoint="/v1/chat/completions",
        seed=1,
    )
    with FakeLLM() as http_srv, FakeKserve() as grpc_srv:
        http_srv.behavior.model = "tiny"
        urls = [http_srv.url, f"http://{grpc_srv.target}"]
        text, status = _text_status(
            load(
                urls,
                model="tiny",
                output_dir=tmp_path,
                fmt="markdown",
                protocol="auto",
                each_pod=True,
                progress=None,
                **options,
            )
        )
    assert int(status) == 0, text
    rows = [line for line in text.splitlines() if line.startswith("| http")]
    assert len(rows) == 2, text
    assert "(http)" in rows[0] and "(grpc)" in rows[1]
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == ["pod0", "pod1"]
    assert len(grpc_srv.requests) == 3


def test_capacity_at_sla_keeps_a_buffer_and_refuses_a_missed_sla():
    from ftctl.commands.load import capacity_at_sla

    assert capacity_at_sla(100.0, 0.050, 0.100) == pytest.approx(80.0)
    assert capacity_at_sla(100.0, 0.150, 0.100) is None
    assert capacity_at_sla(100.0, None, 0.100) is None


def test_each_pod_with_sla_prints_capacity_per_pod_and_total(tmp_path):
    from ftctl.commands.load import load

    options = dict(
        clients=1,
        requests_per_client=3,
        duration=None,
        concurrency=2,
        rate=None,
        arrival="closed",
        streaming=False,
        input_tokens=4,
        output_tokens=3,
        retries=0,
        retry_delay=0.0,
        timeout=5.0,
        endpoint="/v1/chat/completions",
        seed=1,
    )
    with FakeKserve() as a, FakeKserve() as b:
        urls = [f"http://{a.target}", f"http://{b.target}"]
        common = dict(model="tiny", protocol="grpc", progress=None, **options)
        text, status = _text_status(
            load(urls, output_dir=tmp_path, each_pod=True, sla=60.0, **common)
        )
        _t, _s = _text_status(load(urls[:1], output_dir=tmp_path / "tight", sla=1e-9, **common))
    assert int(status) == 0, text
    lines = text.splitlines()
    i = lines.index("Capacity at p95 <= 60000 ms (measured rate - 20 % buffer):")
    assert all(lines[i + k].strip().startswith(urls[k - 1]) for k in (1, 2))
    assert lines[i + 3].strip().startswith("total: ") and "missed" not in lines[i + 3]
    assert "SLA missed" in _t and "1 pod(s) missed the SLA" in _t
