"""The built-in client's KServe v2 gRPC path: records like HTTP's, every bad answer a clear
per-request error (against a tiny loopback gRPC server; the real frontend is in tests/e2e)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ftctl.clients.legacy import run_clients
from ftctl.kserve.messages import M, method
from ftctl.results.outcome import record_succeeded
from ftctl.scenario.model import LoadSpec, TokenDist
from tests.fake_kserve import FakeKserve

PROTO = Path(__file__).resolve().parents[2] / "ftctl" / "data" / "kserve" / "grpc_service.proto"


@pytest.fixture
def server():
    with FakeKserve() as srv:
        yield srv


def _spec(**kw) -> LoadSpec:
    base = dict(
        client="legacy",
        protocol="grpc",
        clients=1,
        requests_per_client=1,
        retries=0,
        retry_delay=0.0,
        timeout=5.0,
        streaming=True,
        input_tokens=TokenDist(5),
        output_tokens=TokenDist(6),
    )
    base.update(kw)
    return LoadSpec(**base)


def _records(spec: LoadSpec, target: str, tmp_path: Path) -> list[dict]:
    asyncio.run(run_clients(spec, [f"http://{target}"], "tiny", tmp_path))
    lines = (tmp_path / "client_0.log.txt").read_text().splitlines()
    return [json.loads(x) for x in lines]


def test_streaming_request_records_ttft_itl_tokens_and_succeeds(server, tmp_path):
    (rec,) = _records(_spec(), server.target, tmp_path)
    assert rec["ok"] is True and record_succeeded(rec)
    assert rec["error"] is None
    assert rec["output_tokens"] == 3
    assert rec["ttft"] is not None and rec["ttft"] > 0
    assert len(rec["itl"]) == 2
    assert rec["start_ns"] < rec["end_ns"]
    (att,) = rec["results"]
    assert att["status"] == 200
    assert att["url"] == f"grpc://{server.target}"
    assert att["result"]["choices"][0]["finish_reason"] == "length"


def test_request_carries_the_tensors_dynamo_expects(server, tmp_path):
    _records(_spec(streaming=False), server.target, tmp_path)
    (req,) = server.requests
    inputs = {t.name: t for t in req.inputs}
    assert set(inputs) == {"text_input", "streaming"}
    assert (inputs["text_input"].datatype, list(inputs["text_input"].shape)) == ("BYTES", [1])
    assert len(inputs["text_input"].contents.bytes_contents[0].split()) == 5
    assert (inputs["streaming"].datatype, list(inputs["streaming"].contents.bool_contents)) == (
        "BOOL",
        [False],
    )
    assert req.model_name == "tiny"
    assert req.parameters["max_tokens"].int64_param == 6


def test_unary_request_succeeds(server, tmp_path):
    (rec,) = _records(_spec(streaming=False), server.target, tmp_path)
    assert rec["ok"] is True and record_succeeded(rec)
    assert rec["results"][0]["result"]["choices"][0]["text"] == "tok tok tok"


@pytest.mark.parametrize(
    ("mode", "streaming", "error"),
    [
        ("garbage", False, "protocol: undecodable ModelInferResponse"),
        ("garbage", True, "protocol: undecodable ModelStreamInferResponse"),
        ("no_text", False, "protocol: ModelInferResponse without a text_output"),
        ("no_text", True, "protocol: stream response without a text_output"),
        ("stream_error", True, "stream_error: grpc stream error: worker died mid-stream"),
        ("cut", True, "truncated: stream ended without a finish_reason"),
        ("abort", False, "http_5xx: grpc UNAVAILABLE: no worker is serving the model"),
        ("abort", True, "http_5xx: grpc UNAVAILABLE: no worker is serving the model"),
        ("empty", False, "empty: empty completion"),
    ],
)
def test_bad_answer_is_a_clear_per_request_error(server, tmp_path, mode, streaming, error):
    server.mode = mode
    recs = _records(_spec(streaming=streaming, requests_per_client=2), server.target, tmp_path)
    assert len(recs) == 2  # the engine went on after the bad answer
    for rec in recs:
        assert rec["ok"] is False and not record_succeeded(rec)
        assert rec["error"].startswith(error), rec["error"]
        assert rec["results"][0]["status"] == rec["error"]


def test_refused_connection_is_a_connect_error_with_the_grpc_code(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (rec,) = _records(_spec(), f"127.0.0.1:{port}", tmp_path)
    assert rec["error"].startswith("connect: grpc UNAVAILABLE")


def test_retry_after_a_failed_attempt_counts_one_request(server, tmp_path):
    server.mode = "abort"
    spec = _spec(retries=1)

    (rec,) = _records(spec, server.target, tmp_path)
    assert rec["attempts"] == 2 and len(rec["results"]) == 2


def test_hand_declared_messages_match_the_vendored_proto(tmp_path):
    protoc = pytest.importorskip("grpc_tools.protoc")
    from google.protobuf import descriptor_pb2

    from ftctl.kserve.messages import file_descriptor

    out = tmp_path / "set.pb"
    rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"--descriptor_set_out={out}", PROTO.name])
    assert rc == 0
    (compiled,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file

    def shape(fd) -> dict:
        found = {}

        def walk(prefix, msgs):
            for m in msgs:
                name = f"{prefix}{m.name}"
                found[name] = (
                    sorted((f.name, f.number, f.type, f.label, f.type_name) for f in m.field),
                    m.options.map_entry,
                    [o.name for o in m.oneof_decl],
                )
                walk(name + ".", m.nested_type)

        walk("", fd.message_type)
        rpcs = {
            (m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming)
            for s in fd.service
            for m in s.method
        }
        return {"package": fd.package, "messages": found, "rpcs": rpcs}

    assert shape(file_descriptor()) == shape(compiled)


def test_method_paths_are_the_kserve_service_paths():
    assert method("ModelStreamInfer") == "/inference.GRPCInferenceService/ModelStreamInfer"
    assert M.ServerLiveResponse(live=True).live is True
