"""One HTTP attempt of the legacy client: send, read (JSON or SSE), classify the outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter_ns

import aiohttp
import orjson

# The closed set of error classes written into every failed attempt and record.
ERROR_CLASSES: tuple[str, ...] = (
    "timeout",
    "connect",
    "reset",
    "http_4xx",
    "http_5xx",
    "stream_error",
    "truncated",
    "empty",
    "protocol",
    "cancelled",
)

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
# Content longer than this is cut in the JSONL record (usage is always kept).
MAX_CONTENT_CHARS = 1000


@dataclass(slots=True)
class Attempt:
    """The outcome of one HTTP attempt; ``error`` is None on success."""

    url: str
    start_perf: int  # perf_counter_ns when sent
    end_perf: int = 0
    status: int | str = 0  # HTTP status, or "<class>: <text>" when no valid completion came
    result: dict | None = None
    error: str | None = None  # one of ERROR_CLASSES
    message: str = ""
    ttft_ns: int | None = None
    itl_s: list[float] = field(default_factory=list)
    output_tokens: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, error: str, message: str, status: int | str | None = None) -> Attempt:
        """Mark the attempt failed; transport errors carry their text as the status (upstream)."""
        self.end_perf = perf_counter_ns()
        self.error = error
        self.message = message
        self.status = status if status is not None else f"{error}: {message}"
        return self


def _exc_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def _http_error(att: Attempt, status: int, raw: bytes) -> Attempt:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    msg = ""
    if isinstance(body, dict):
        err = body.get("error")
        msg = (
            err.get("message", "") if isinstance(err, dict) else str(err or body.get("message", ""))
        )
    if not msg:
        msg = raw[:200].decode("utf-8", "replace")
    att.result = body if isinstance(body, dict) and len(raw) <= 4096 else None
    return att.fail("http_4xx" if status < 500 else "http_5xx", f"HTTP {status} {msg}", status)


def _trim(result: dict) -> dict:
    for choice in result.get("choices") or ():
        msg = choice.get("message")
        key, holder = ("content", msg) if isinstance(msg, dict) else ("text", choice)
        text = holder.get(key)
        if isinstance(text, str) and len(text) > MAX_CONTENT_CHARS:
            holder[key] = text[:MAX_CONTENT_CHARS]
            choice["content_truncated"] = True
    return result


async def send(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    streaming: bool,
    timeout: aiohttp.ClientTimeout,
) -> Attempt:
    """POST ``body`` to ``url`` and classify the outcome (never raises but on cancellation)."""
    att = Attempt(url=url, start_perf=perf_counter_ns())
    got_headers = False
    try:
        async with session.post(url, data=body, headers=_HEADERS, timeout=timeout) as resp:
            got_headers = True
            if resp.status != 200:
                return _http_error(att, resp.status, await resp.read())
            if streaming:
                return await _read_stream(att, resp)
            raw = await resp.read()
            att.end_perf = perf_counter_ns()
            return _finish_json(att, raw)
    except TimeoutError as exc:
        return att.fail("timeout", _exc_text(exc) if str(exc) else "no answer within the timeout")
    except aiohttp.ClientConnectorError as exc:
        return att.fail("connect", _exc_text(exc))
    except (
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientPayloadError,
        aiohttp.ClientOSError,
    ) as exc:
        # After a 200 the stream/body broke: the completion is truncated, else the peer reset.
        return att.fail("truncated" if got_headers else "reset", _exc_text(exc))
    except (aiohttp.ClientError, ValueError) as exc:  # ValueError: an SSE line over 64 KiB
        return att.fail("protocol", _exc_text(exc))


def _finish_json(att: Attempt, raw: bytes) -> Attempt:
    try:
        result = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return att.fail("protocol", f"invalid JSON body: {raw[:100]!r}")
    if not isinstance(result, dict):
        return att.fail("protocol", "JSON body is not an object")
    if "error" in result and not result.get("choices"):
        return att.fail("protocol", f"error object in a 200 answer: {result['error']}")
    choices = result.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    msg = first.get("message")
    content = msg.get("content") if isinstance(msg, dict) else first.get("text")
    att.result = _trim(result)
    usage = result.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        att.output_tokens = usage["completion_tokens"]
    if not content:
        return att.fail("empty", "empty completion")
    att.status = 200
    return att


# A stream may carry at most this many tokens (content pieces): an endless stream ends as a
# ``protocol`` error instead of growing the ITL list until the timeout.
MAX_STREAM_TOKENS = 100_000
# An SSE line longer than this (no newline in sight) is a protocol error: memory stays bounded.
MAX_SSE_LINE = 64 * 1024


async def _read_stream(
    att: Attempt, resp: aiohttp.ClientResponse, max_tokens: int | None = None
) -> Attempt:
    """Read an SSE answer, stamping each token when the bytes carrying it were read.

    One await per socket read (not per line): the lines of one read share its stamp, which is
    when they reached this process. Text is kept only up to MAX_CONTENT_CHARS; more than
    ``max_tokens`` (default MAX_STREAM_TOKENS) tokens end the attempt as a ``protocol`` error.
    """
    if max_tokens is None:
        max_tokens = MAX_STREAM_TOKENS
    parts: list[str] = []
    kept = 0
    first = last = 0
    tokens = 0
    done = False
    finish = None
    usage = None
    rid = model = None
    itl = att.itl_s
    loads = orjson.loads
    pending = b""
    content = resp.content
    eof = False
    while not done and not eof:
        chunk = await content.readany()
        now = perf_counter_ns()
        if chunk:
            if pending:
                chunk = pending + chunk
            lines = chunk.split(b"\n")
            pending = lines.pop()
            if len(pending) > MAX_SSE_LINE:
                return att.fail("protocol", f"SSE line longer than {MAX_SSE_LINE} bytes")
        else:  # end of the body: a last line without its newline still counts
            eof = True
            lines, pending = [pending], b""
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            try:
                obj = loads(data)
            except orjson.JSONDecodeError:
                return att.fail("protocol", f"invalid SSE data: {data[:100]!r}")
            if not isinstance(obj, dict):
                return att.fail("protocol", "SSE data is not an object")
            if "error" in obj:
                err = obj["error"]
                text = err.get("message", str(err)) if isinstance(err, dict) else str(err)
                code = err.get("code") if isinstance(err, dict) else None
                att.ttft_ns = first - att.start_perf if first else None
                att.output_tokens = tokens
                return att.fail("stream_error", f"{text} (code {code})" if code else text)
            rid = rid or obj.get("id")
            model = model or obj.get("model")
            choices = obj.get("choices") or ()
            if not isinstance(choices, list | tuple):
                return att.fail("protocol", "SSE choices is not a list")
            for choice in choices:
                if not isinstance(choice, dict):
                    return att.fail("protocol", "SSE choice is not an object")
                delta = choice.get("delta")
                piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
                if piece:
                    if not isinstance(piece, str):
                        return att.fail("protocol", f"SSE content is not text: {piece!r:.60}")
                    if first:
                        itl.append(round((now - last) / 1e9, 6))
                    else:
                        first = now
                    last = now
                    tokens += 1
                    if tokens > max_tokens:
                        att.ttft_ns = first - att.start_perf
                        att.output_tokens = tokens
                        return att.fail("protocol", f"stream exceeded {max_tokens} tokens (cap)")
                    if kept < MAX_CONTENT_CHARS:
                        parts.append(piece)
                        kept += len(piece)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            if obj.get("usage"):
                usage = obj["usage"]
    att.end_perf = perf_counter_ns()
    if first:
        att.ttft_ns = first - att.start_perf
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        att.output_tokens = usage["completion_tokens"]
    else:
        att.output_tokens = tokens
    text = "".join(parts)
    att.result = {
        "id": rid,
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text[:MAX_CONTENT_CHARS]},
                "finish_reason": finish,
            }
        ],
        "usage": usage,
    }
    if not done and finish is None:
        return att.fail("truncated", "stream ended without [DONE] or finish_reason")
    if not tokens:
        return att.fail("empty", "stream carried no content")
    att.status = 200
    return att
