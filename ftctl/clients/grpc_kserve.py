"""One KServe v2 gRPC attempt of the legacy client (``load.protocol: grpc``).

Dynamo's KServe frontend (``python -m dynamo.frontend --kserve-grpc-server``, ai-dynamo 1.6.1)
serves text generation as a completions model: ``ModelMetadata`` lists the inputs
``text_input`` (BYTES, shape [1]) and ``streaming`` (BOOL, shape [1]) and the outputs
``text_output`` and ``finish_reason`` (BYTES); its request conversion accepts only those two
inputs (``stream`` is an alias of ``streaming``) and rejects any other name. ``ModelInfer`` folds
the stream into one response; ``ModelStreamInfer`` answers one response per token chunk and
ends with a chunk whose ``finish_reason`` is set. Request ``parameters`` are not read by 1.6.1;
ftctl still sends ``max_tokens`` there (Triton's LLM backends read it), so a server that honours
it gets the scenario's output length.

An attempt fills the same ``Attempt`` as HTTP (``ftctl.clients.http``), so records, parsing,
checks and reports are protocol-blind: a gRPC ``OK`` with a complete, non-empty completion is
written as status 200 (the KServe protocol's HTTP equivalent of OK); any other outcome is a
failed attempt whose status and error text carry the gRPC code (``grpc UNAVAILABLE: ...``).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from time import perf_counter_ns

import grpc
import grpc.aio

from ftctl.clients.http import MAX_CONTENT_CHARS, Attempt
from ftctl.clients.prompts import sample_request
from ftctl.kserve.messages import M
from ftctl.kserve.wire import (
    CHANNEL_OPTIONS,
    INFER,
    STREAM_INFER,
    build_request,
    decode,
    grpc_target,
    parse_message,
)
from ftctl.scenario.model import LoadSpec

# Channels per target: logical clients share them round-robin (HTTP/2 multiplexes requests).
CHANNELS_PER_TARGET = 4

_CLIENT_SIDE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class GrpcPayloadMaker:
    """The gRPC twin of ``PayloadMaker``: same seeded prompts and lengths, protobuf bytes."""

    def __init__(self, spec: LoadSpec, model: str, client: int) -> None:
        self.spec = spec
        self.model = model
        self.rng = random.Random(spec.seed * 1_000_003 + client)
        self.client = client
        self._ids = itertools.count()

    def make(self) -> tuple[bytes, int]:
        prompt, osl = sample_request(self.spec, self.rng)
        rid = f"ftctl-{self.client}-{next(self._ids)}"
        return build_request(self.model, prompt, self.spec.streaming, osl, rid), osl


class GrpcChannels:
    """The engine's gRPC "session": a few insecure channels per target, closed together."""

    def __init__(self, targets: Sequence[str], per_target: int = CHANNELS_PER_TARGET) -> None:
        self._channels: dict[str, list[grpc.aio.Channel]] = {}
        self._next: dict[str, itertools.count] = {}
        for t in targets:
            if t not in self._channels:
                self._channels[t] = [
                    grpc.aio.insecure_channel(t, options=CHANNEL_OPTIONS) for _ in range(per_target)
                ]
                self._next[t] = itertools.count()

    def channel(self, target: str) -> grpc.aio.Channel:
        chans = self._channels[target]
        return chans[next(self._next[target]) % len(chans)]

    async def close(self) -> None:
        for chans in self._channels.values():
            for ch in chans:
                await ch.close(grace=None)

    async def __aenter__(self) -> GrpcChannels:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _classify(err: grpc.aio.AioRpcError, got_data: bool) -> str:
    code = err.code()
    details = err.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "timeout"
    if code == grpc.StatusCode.CANCELLED:
        return "truncated" if got_data else "reset"
    if code == grpc.StatusCode.UNAVAILABLE:
        if got_data:
            return "truncated"
        low = details.lower()
        if "connect" in low or "connection refused" in low or "dns" in low:
            return "connect"
        return "reset" if ("reset" in low or "closed" in low or "goaway" in low) else "http_5xx"
    if code == grpc.StatusCode.INTERNAL and "deserializ" in details.lower():
        return "protocol"  # the answer's bytes were no ModelInferResponse
    if code in _CLIENT_SIDE:
        return "http_4xx"
    return "truncated" if got_data else "http_5xx"


def _fail_rpc(att: Attempt, err: grpc.aio.AioRpcError, got_data: bool) -> Attempt:
    cls = _classify(err, got_data)
    text = f"grpc {err.code().name}: {err.details() or 'no details'}"
    return att.fail(cls, text)


def _result(att: Attempt, resp_id: str, model: str, text: str, finish: str | None) -> None:
    att.result = {
        "id": resp_id or None,
        "object": "text_completion",
        "model": model or None,
        "choices": [{"index": 0, "text": text[:MAX_CONTENT_CHARS], "finish_reason": finish}],
        "usage": None,
    }


async def send_grpc(
    channels: GrpcChannels, url: str, body: bytes, streaming: bool, timeout: float
) -> Attempt:
    """Send one serialized ``ModelInferRequest`` to ``url``; classify (never raises but on
    cancellation). Streaming uses ``ModelStreamInfer`` (one request on its own stream)."""
    att = Attempt(url=url, start_perf=perf_counter_ns())
    try:
        channel = channels.channel(grpc_target(url))
    except (KeyError, ValueError) as exc:
        return att.fail("connect", f"no gRPC channel for {url}: {exc}")
    if streaming:
        return await _stream(att, channel, body, timeout)
    # No deserializer: raw bytes come back and are parsed here, so bytes that are no
    # ModelInferResponse become this request's "protocol" error, not a grpc-internal log line.
    call = channel.unary_unary(INFER)
    try:
        raw = await call(body, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return _fail_rpc(att, exc, False)
    except Exception as exc:  # a client-side surprise is this request's error, never a crash
        return att.fail("protocol", f"{type(exc).__name__}: {exc}")
    att.end_perf = perf_counter_ns()
    resp = parse_message(M.ModelInferResponse, raw)
    if isinstance(resp, str):
        return att.fail("protocol", resp)
    text, finish = decode(resp)
    if text is None:
        return att.fail("protocol", "ModelInferResponse without a text_output tensor")
    _result(att, resp.id, resp.model_name, text, finish)
    if not text:
        return att.fail("empty", "empty completion")
    att.status = 200
    return att


async def _stream(att: Attempt, channel: grpc.aio.Channel, body: bytes, timeout: float) -> Attempt:
    call = channel.stream_stream(STREAM_INFER)(timeout=timeout)
    parts: list[str] = []
    first = last = 0
    tokens = 0
    finish = None
    rid = model = ""
    try:
        await call.write(body)
        await call.done_writing()
        async for raw in call:
            now = perf_counter_ns()
            msg = parse_message(M.ModelStreamInferResponse, raw)
            if isinstance(msg, str):
                att.output_tokens = tokens
                return att.fail("protocol", msg)
            if msg.error_message:
                att.ttft_ns = first - att.start_perf if first else None
                att.output_tokens = tokens
                return att.fail("stream_error", f"grpc stream error: {msg.error_message}")
            if not msg.HasField("infer_response"):
                return att.fail("protocol", "ModelStreamInferResponse without infer_response")
            resp = msg.infer_response
            rid = rid or resp.id
            model = model or resp.model_name
            piece, fin = decode(resp)
            if piece is None:
                return att.fail("protocol", "stream response without a text_output tensor")
            if piece:
                if first:
                    att.itl_s.append(round((now - last) / 1e9, 6))
                else:
                    first = now
                last = now
                tokens += 1
                parts.append(piece)
            if fin:
                finish = fin
                break
    except grpc.aio.AioRpcError as exc:
        att.ttft_ns = first - att.start_perf if first else None
        att.output_tokens = tokens
        return _fail_rpc(att, exc, bool(tokens))
    except Exception as exc:  # e.g. UsageError on a stream the server already closed
        return att.fail("truncated" if tokens else "protocol", f"{type(exc).__name__}: {exc}")
    finally:
        if not call.done():
            call.cancel()
    att.end_perf = perf_counter_ns()
    if first:
        att.ttft_ns = first - att.start_perf
    att.output_tokens = tokens
    _result(att, rid, model, "".join(parts), finish)
    if finish is None:
        return att.fail("truncated", "stream ended without a finish_reason")
    if not tokens:
        return att.fail("empty", "stream carried no content")
    att.status = 200
    return att
