"""A tiny KServe v2 gRPC server on loopback, for the client's malformed-answer tests only.

The main gRPC tests run against the real Dynamo frontend; this server exists to send what a
healthy server never sends (bytes that are no protobuf, a response without ``text_output``, a
stream error, a stream cut before its finish reason) and one good answer to compare with.
``mode`` picks the behaviour for every request; it can be changed while the server runs.
"""

from __future__ import annotations

from concurrent import futures

import grpc

from ftctl.kserve.messages import PACKAGE, SERVICE, M

MODES = ("ok", "garbage", "no_text", "stream_error", "cut", "abort", "empty")


def _response(text: str, finish: str = "", rid: str = "") -> object:
    resp = M.ModelInferResponse(model_name="tiny", id=rid)
    out = resp.outputs.add(name="text_output", datatype="BYTES", shape=[1])
    out.contents.bytes_contents.append(text.encode())
    fin = resp.outputs.add(name="finish_reason", datatype="BYTES", shape=[1])
    fin.contents.bytes_contents.append(finish.encode())
    return resp


def _chunk(text: str, finish: str = "", rid: str = "") -> bytes:
    msg = M.ModelStreamInferResponse()
    msg.infer_response.CopyFrom(_response(text, finish, rid))
    return msg.SerializeToString()


class FakeKserve:
    """``with FakeKserve() as srv:`` serves on ``srv.target`` (127.0.0.1:port)."""

    def __init__(self, mode: str = "ok", tokens: int = 3) -> None:
        self.mode = mode
        self.tokens = tokens
        self.requests: list[object] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handlers = {
            "ServerLive": grpc.unary_unary_rpc_method_handler(
                lambda req, ctx: M.ServerLiveResponse(live=True).SerializeToString(),
                request_deserializer=M.ServerLiveRequest.FromString,
            ),
            "ModelMetadata": grpc.unary_unary_rpc_method_handler(
                self._metadata, request_deserializer=M.ModelMetadataRequest.FromString
            ),
            "ModelInfer": grpc.unary_unary_rpc_method_handler(
                self._infer, request_deserializer=M.ModelInferRequest.FromString
            ),
            "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(
                self._stream, request_deserializer=M.ModelInferRequest.FromString
            ),
        }
        generic = grpc.method_handlers_generic_handler(f"{PACKAGE}.{SERVICE}", handlers)
        self._server.add_generic_rpc_handlers((generic,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"

    # Handlers return serialized bytes: no response serializer, so "garbage" can be sent.
    def _metadata(self, req, ctx) -> bytes:
        if req.name != "tiny":
            ctx.abort(grpc.StatusCode.NOT_FOUND, f"Model '{req.name}' not found")
        meta = M.ModelMetadataResponse(name="tiny", versions=["1"], platform="fake")
        meta.inputs.add(name="text_input", datatype="BYTES", shape=[1])
        return meta.SerializeToString()

    def _infer(self, req, ctx) -> bytes:
        self.requests.append(req)
        mode = self.mode
        if mode == "garbage":
            return b"\xff\xff\xff\xff not a protobuf"
        if mode == "abort":
            ctx.abort(grpc.StatusCode.UNAVAILABLE, "no worker is serving the model")
        if mode == "no_text":
            return M.ModelInferResponse(model_name="tiny").SerializeToString()
        text = "" if mode == "empty" else " ".join(["tok"] * self.tokens)
        return _response(text, "length", req.id).SerializeToString()

    def _stream(self, reqs, ctx):
        for req in reqs:
            self.requests.append(req)
            mode = self.mode
            if mode == "garbage":
                yield b"\x08\x96\x01\xff garbage"
                return
            if mode == "abort":
                ctx.abort(grpc.StatusCode.UNAVAILABLE, "no worker is serving the model")
            if mode == "stream_error":
                yield _chunk("tok", "", req.id)
                yield M.ModelStreamInferResponse(
                    error_message="worker died mid-stream"
                ).SerializeToString()
                return
            if mode == "no_text":
                msg = M.ModelStreamInferResponse()
                msg.infer_response.model_name = "tiny"
                yield msg.SerializeToString()
                return
            for i in range(self.tokens):
                last = i == self.tokens - 1
                if mode == "cut" and last:
                    return  # the stream ends with no finish reason
                yield _chunk("tok", "length" if last else "", req.id)

    def __enter__(self) -> FakeKserve:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)
