"""The KServe v2 gRPC wire, shared by the load client and the local platform's readiness probe:
RPC paths, channel options, the request Dynamo's KServe frontend expects, decoding of its answers,
and the blocking probes (is this a KServe server; does one inference complete).

Dynamo's KServe frontend (``python -m dynamo.frontend --kserve-grpc-server``, ai-dynamo 1.6.1)
serves text generation as a completions model: ``ModelMetadata`` lists the inputs
``text_input`` (BYTES, shape [1]) and ``streaming`` (BOOL, shape [1]) and the outputs
``text_output`` and ``finish_reason`` (BYTES); its request conversion accepts only those two
inputs (``stream`` is an alias of ``streaming``) and rejects any other name. Request
``parameters`` are not read by 1.6.1; ftctl still sends ``max_tokens`` there (Triton's LLM
backends read it), so a server that honours it gets the scenario's output length.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import grpc
from google.protobuf.message import DecodeError

from ftctl.kserve.messages import M, method

INFER = method("ModelInfer")
STREAM_INFER = method("ModelStreamInfer")
# Reconnect quickly after a frontend restart (grpc's default backoff starts at 1 s and grows
# to 120 s, which would hide a recovery behind the client's own backoff).
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),  # ftctl's retries are attempts; grpc must not add hidden ones
    ("grpc.use_local_subchannel_pool", 1),  # each channel its own connection (spread over pods)
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


def grpc_target(url: str) -> str:
    """``host:port`` of ``grpc://host:port``, ``http://host:port`` or ``host:port``."""
    if "://" not in url:
        return url.rstrip("/")
    parts = urlsplit(url)
    if not parts.hostname or parts.port is None:
        raise ValueError(f"not a host:port URL: {url!r}")
    return f"{parts.hostname}:{parts.port}"


def build_request(model: str, prompt: str, streaming: bool, max_tokens: int, rid: str) -> bytes:
    """A serialized ``ModelInferRequest`` with the inputs Dynamo's KServe frontend expects."""
    req = M.ModelInferRequest(model_name=model, id=rid)
    text = req.inputs.add(name="text_input", datatype="BYTES", shape=[1])
    text.contents.bytes_contents.append(prompt.encode())
    flag = req.inputs.add(name="streaming", datatype="BOOL", shape=[1])
    flag.contents.bool_contents.append(streaming)
    req.parameters["max_tokens"].int64_param = max_tokens
    return req.SerializeToString()


def bytes_output(resp, name: str) -> list[bytes] | None:
    """The elements of BYTES output ``name`` (typed contents or raw length-prefixed form)."""
    for i, out in enumerate(resp.outputs):
        if out.name != name:
            continue
        if out.HasField("contents"):
            return list(out.contents.bytes_contents)
        if i < len(resp.raw_output_contents):
            raw, items, pos = resp.raw_output_contents[i], [], 0
            while pos + 4 <= len(raw):
                n = int.from_bytes(raw[pos : pos + 4], "little")
                items.append(raw[pos + 4 : pos + 4 + n])
                pos += 4 + n
            return items
        return []
    return None


def parse_message(cls, raw: object):
    """``cls`` parsed from ``raw`` bytes, or the error text when they are not one."""
    if not isinstance(raw, bytes):
        return f"gRPC answer of type {type(raw).__name__}, expected bytes"
    try:
        return cls.FromString(raw)
    except DecodeError as exc:
        return f"undecodable {cls.DESCRIPTOR.name} ({len(raw)} bytes): {exc}"


def decode(resp) -> tuple[str | None, str | None]:
    """(text, finish reason) of one response; text None when ``text_output`` is missing."""
    text = bytes_output(resp, "text_output")
    reason = bytes_output(resp, "finish_reason")
    joined = None if text is None else b"".join(text).decode("utf-8", "replace")
    fin = b"".join(reason).decode("utf-8", "replace") if reason else ""
    return joined, (fin or None)


def probe(target: str, model: str | None, timeout: float = 3.0) -> tuple[bool, str]:
    """Is ``target`` a KServe v2 gRPC server? (ok, what was found), by ``ServerLive`` and, with a
    model, ``ModelMetadata`` (blocking; for the CLI and the platform, not the load engine)."""
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as ch:
        try:
            live = ch.unary_unary(
                method("ServerLive"),
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=M.ServerLiveResponse.FromString,
            )(M.ServerLiveRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            return False, f"ServerLive: grpc {exc.code().name}: {exc.details()}"
        if not live.live:
            return False, "ServerLive answered live=false"
        if not model:
            return True, "ServerLive: live"
        try:
            meta = ch.unary_unary(
                method("ModelMetadata"),
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=M.ModelMetadataResponse.FromString,
            )(M.ModelMetadataRequest(name=model), timeout=timeout)
        except grpc.RpcError as exc:
            return False, f"ModelMetadata({model}): grpc {exc.code().name}: {exc.details()}"
        names = [i.name for i in meta.inputs]
        return True, f"ModelMetadata({meta.name}): inputs {', '.join(names) or 'none'}"


def probe_infer(target: str, model: str, timeout: float = 10.0) -> str | None:
    """One small unary ``ModelInfer`` (blocking): None when a non-empty completion came back,
    else what went wrong (the local platform's first-completion check in KServe mode)."""
    body = build_request(model, "ready check", False, 2, "ftctl-ready")
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as ch:
        try:
            raw = ch.unary_unary(INFER)(body, timeout=timeout)
        except grpc.RpcError as exc:
            return f"grpc {exc.code().name}: {exc.details()}"
    resp = parse_message(M.ModelInferResponse, raw)
    if isinstance(resp, str):
        return resp
    text, _finish = decode(resp)
    return None if text else f"no text_output in {resp}"[:200]
