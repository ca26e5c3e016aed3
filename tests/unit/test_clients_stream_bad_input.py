"""A streaming server that misbehaves: each attempt fails with its reason, no worker crashes.

The server is a real aiohttp server on 127.0.0.1 (one route per misbehaviour); the client is
``ftctl.clients.http.send`` and, for the no-crash check, a whole ``ClientRun``.
"""

from __future__ import annotations

import asyncio
import json
import resource

import aiohttp
import pytest
from aiohttp import web

from ftctl.clients import http
from ftctl.clients.legacy import ClientRun
from ftctl.clients.legacy_worker import raise_fd_limit
from ftctl.scenario.model import LoadSpec, TokenDist


def _token(text: str) -> bytes:
    chunk = {"id": "x", "choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


async def _sse(request: web.Request, *parts: bytes) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for part in parts:
        await resp.write(part)
    return resp


async def malformed(request):
    return await _sse(request, _token("a"), b"data: {not json\n\n")


async def not_an_object(request):
    return await _sse(request, b"data: [1, 2]\n\n")


async def choice_not_an_object(request):
    return await _sse(request, b'data: {"choices": ["x"]}\n\n')


async def choices_not_a_list(request):
    return await _sse(request, b'data: {"choices": {"a": 1}}\n\n')


async def content_not_text(request):
    return await _sse(request, b'data: {"choices": [{"delta": {"content": 5}}]}\n\n')


async def stall(request):
    resp = await _sse(request, _token("a"), _token("b"))
    await asyncio.sleep(2)  # longer than the client's 1 s timeout
    return resp


async def close_early(request):
    resp = await _sse(request, _token("a"), _token("b"))
    request.transport.close()  # mid-stream, without the final chunk
    return resp


async def end_early(request):
    return await _sse(request, _token("a"), _token("b"))  # a clean end, but no [DONE]


async def endless(request):
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    try:
        while True:
            await resp.write(_token("t") * 50)
    except (ConnectionError, RuntimeError):
        pass
    return resp


async def long_line(request):
    return await _sse(request, b"data: " + b"x" * 200_000)


async def fine(request):
    done = b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]'
    return await _sse(request, _token("a"), _token("b"), done)  # last line: no newline


ROUTES = {f.__name__.replace("_", "-"): f for f in (
    malformed, not_an_object, choice_not_an_object, choices_not_a_list, content_not_text,
    stall, close_early, end_early, endless, long_line, fine,
)}  # fmt: skip


async def _with_server(body):
    app = web.Application()
    for name, handler in ROUTES.items():
        app.router.add_post(f"/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        return await body(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def _send(route: str, timeout: float = 5.0) -> http.Attempt:
    async def body(base: str) -> http.Attempt:
        async with aiohttp.ClientSession() as session:
            limit = aiohttp.ClientTimeout(total=timeout)
            return await http.send(session, f"{base}/{route}", b'{"stream":true}', True, limit)

    return asyncio.run(_with_server(body))


@pytest.mark.parametrize(
    ("route", "error", "reason"),
    [
        ("malformed", "protocol", "invalid SSE data"),
        ("not-an-object", "protocol", "SSE data is not an object"),
        ("choice-not-an-object", "protocol", "SSE choice is not an object"),
        ("choices-not-a-list", "protocol", "SSE choices is not a list"),
        ("content-not-text", "protocol", "SSE content is not text"),
        ("close-early", "truncated", ""),
        ("end-early", "truncated", "stream ended without [DONE] or finish_reason"),
        ("long-line", "protocol", "SSE line longer than 65536 bytes"),
    ],
)
def test_a_misbehaving_stream_fails_the_attempt_with_its_reason(route, error, reason):
    attempt = _send(route)
    assert not attempt.ok
    assert attempt.error == error
    assert reason in attempt.message
    assert attempt.status == f"{error}: {attempt.message}"


def test_a_stream_that_stalls_mid_way_times_out():
    attempt = _send("stall", timeout=1.0)
    assert attempt.error == "timeout"
    assert 0.9 < (attempt.end_perf - attempt.start_perf) / 1e9 < 5


def test_an_endless_stream_stops_at_the_token_cap_with_bounded_memory(monkeypatch):
    monkeypatch.setattr(http, "MAX_STREAM_TOKENS", 2000)
    attempt = _send("endless")
    assert attempt.error == "protocol"
    assert attempt.message == "stream exceeded 2000 tokens (cap)"
    assert attempt.output_tokens == 2001
    assert len(attempt.itl_s) == 2000  # one interval per token after the first, then it stops


def test_a_last_line_without_newline_still_counts():
    attempt = _send("fine")
    assert attempt.ok, attempt.message
    assert attempt.result["choices"][0]["message"]["content"] == "ab"
    assert attempt.result["choices"][0]["finish_reason"] == "stop"


def test_a_worker_keeps_going_and_records_every_bad_stream(tmp_path):
    spec = LoadSpec(
        client="legacy",
        clients=2,
        requests_per_client=3,
        streaming=True,
        retries=0,
        input_tokens=TokenDist(4),
        output_tokens=TokenDist(4),
        timeout=5.0,
        endpoint="/choice-not-an-object",
    )

    async def body(base: str):
        return await ClientRun(spec, [base], "m", tmp_path).run()

    summary = asyncio.run(_with_server(body))
    records = [
        json.loads(line)
        for path in sorted(tmp_path.glob("client_*.log.txt"))
        for line in path.read_text().splitlines()
    ]
    assert summary.requests == summary.failed == 6
    assert len(records) == 6
    assert {r["error"] for r in records} == {"protocol: SSE choice is not an object"}


def test_the_worker_lifts_its_soft_open_files_limit_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        now = raise_fd_limit()
        assert now == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert now > lowered or hard == lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
