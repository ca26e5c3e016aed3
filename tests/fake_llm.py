"""A real loopback OpenAI-compatible server for tests and benchmarks, with fault knobs.

It speaks the parts of the protocol the clients use (chat/completions, completions, SSE
streaming, /v1/models, /health) and can be told, at run time, to answer 503, send an SSE error
event mid-stream (as Dynamo does when a worker dies), drop the connection, truncate the stream,
never answer, or be slow. Every request is recorded with server-side timestamps so that tests
and benchmarks can compare client- and server-measured times.

Usage::

    with FakeLLM() as server:
        server.behavior.mode = "http_503"
        ... requests to server.url ...
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

Mode = Literal["ok", "http_503", "http_500", "stream_error", "drop", "truncate", "hang", "empty"]


@dataclass
class Behavior:
    """Knobs read on every request; change them at any time."""

    mode: Mode = "ok"
    ttft_s: float = 0.0  # delay before the first token
    itl_s: float = 0.0  # delay between tokens (streaming) / per token (non-streaming)
    fail_every: int = 0  # >0: only every Nth request gets `mode`, the others succeed
    fail_from_ns: int = 0  # `mode` applies only to requests received in [from, until)
    fail_until_ns: int = 0  # 0 = no upper bound
    max_context: int = 0  # >0: prompts with more words than this get HTTP 400
    model: str = "fake-model"


@dataclass
class Served:
    """One request as the server saw it."""

    path: str
    received_ns: int
    finished_ns: int
    status: int | str
    stream: bool
    prompt_words: int


@dataclass
class FakeLLM:
    """The server; a context manager that runs it on its own thread and event loop."""

    host: str = "127.0.0.1"
    port: int = 0
    behavior: Behavior = field(default_factory=Behavior)
    served: list[Served] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeLLM:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_app())
            except BaseException as exc:  # surfaced to the caller of start()
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-llm", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def fetch_metrics(self, timeout: float) -> bytes:
        """GET /metrics over loopback, as a platform's scrape target does."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=timeout) as response:
            return response.read()

    def stop(self) -> None:
        if self._loop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._release.set)  # hung handlers end now
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start_app(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the bound port when 0 was asked

    # -- handlers --------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.behavior.model, "object": "model"}]}
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        # A Prometheus text exposition of what was served, for scraper tests.
        by_status: dict[int, int] = {}
        for s in list(self.served):
            by_status[s.status] = by_status.get(s.status, 0) + 1
        lines = ["# TYPE fake_requests_total counter"]
        lines += [f'fake_requests_total{{status="{k}"}} {v}' for k, v in sorted(by_status.items())]
        lines += ["# TYPE fake_up gauge", "fake_up 1", ""]
        return web.Response(text="\n".join(lines), content_type="text/plain")

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    def _mode_for(self, received_ns: int) -> Mode:
        b = self.behavior
        with self._lock:
            self._count += 1
            n = self._count
        if b.mode == "ok":
            return "ok"
        if b.fail_from_ns and received_ns < b.fail_from_ns:
            return "ok"
        if b.fail_until_ns and received_ns >= b.fail_until_ns:
            return "ok"
        if b.fail_every and n % b.fail_every:
            return "ok"
        return b.mode

    def _record(self, request: web.Request, received_ns: int, status, stream, words) -> None:
        self.served.append(Served(request.path, received_ns, time.time_ns(), status, stream, words))

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        received_ns = time.time_ns()
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": {"message": "bad json", "code": 400}}, status=400)
        chat = request.path.endswith("chat/completions")
        stream = bool(body.get("stream"))
        if chat:
            prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        else:
            prompt = str(body.get("prompt", ""))
        words = len(prompt.split())
        n_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        b = self.behavior
        mode = self._mode_for(received_ns)

        if b.max_context and words > b.max_context:
            self._record(request, received_ns, 400, stream, words)
            msg = f"prompt of {words} tokens exceeds the context length {b.max_context}"
            return web.json_response({"error": {"message": msg, "code": 400}}, status=400)
        if mode == "hang":
            try:
                await asyncio.wait_for(self._release.wait(), 3600)
            except TimeoutError:
                pass
        if mode in ("http_503", "http_500"):
            status = 503 if mode == "http_503" else 500
            self._record(request, received_ns, status, stream, words)
            return web.json_response(
                {"error": {"message": "no instances available", "code": status}}, status=status
            )
        if mode == "drop":
            self._record(request, received_ns, "drop", stream, words)
            request.transport.close()
            return web.Response(status=500)

        created = int(time.time())
        rid = f"cmpl-{received_ns}"
        if b.ttft_s:
            await asyncio.sleep(b.ttft_s)
        if not stream:
            if b.itl_s:
                await asyncio.sleep(b.itl_s * max(0, n_tokens - 1))
            if mode == "truncate":
                self._record(request, received_ns, "truncate", stream, words)
                request.transport.close()
                return web.Response(status=500)
            text = "" if mode == "empty" else " ".join(["tok"] * n_tokens)
            choice = (
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length",
                }
                if chat
                else {"index": 0, "text": text, "finish_reason": "length"}
            )
            payload = {
                "id": rid,
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": body.get("model", b.model),
                "choices": [choice],
                "usage": {
                    "prompt_tokens": words,
                    "completion_tokens": n_tokens,
                    "total_tokens": words + n_tokens,
                },
            }
            self._record(request, received_ns, 200, stream, words)
            return web.json_response(payload)

        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"
        for i in range(0 if mode == "empty" else n_tokens):
            if i and b.itl_s:
                await asyncio.sleep(b.itl_s)
            if i == n_tokens // 2 and mode in ("stream_error", "truncate"):
                if mode == "stream_error":
                    err = {"error": {"message": "worker disconnected", "code": 503}}
                    # Recorded before the client can see the end, so a test that reads
                    # `served` right after its request finished always finds it.
                    self._record(request, received_ns, "stream_error", stream, words)
                    await response.write(f"data: {json.dumps(err)}\n\n".encode())
                    await response.write_eof()
                    return response
                self._record(request, received_ns, "truncate", stream, words)
                request.transport.close()
                return response
            delta = (
                {"index": 0, "delta": {"content": "tok "}} if chat else {"index": 0, "text": "tok "}
            )
            chunk = {
                "id": rid,
                "object": obj,
                "created": created,
                "model": b.model,
                "choices": [delta],
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        final = {
            "id": rid,
            "object": obj,
            "created": created,
            "model": b.model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}] if chat else [],
            "usage": {
                "prompt_tokens": words,
                "completion_tokens": n_tokens,
                "total_tokens": words + n_tokens,
            },
        }
        await response.write(f"data: {json.dumps(final)}\n\n".encode())
        self._record(request, received_ns, 200, stream, words)  # before the client sees [DONE]
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def main() -> None:
    """Run standalone: ``python -m tests.fake_llm [PORT]`` (for manual checks and aiperf)."""
    import sys

    server = FakeLLM(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
