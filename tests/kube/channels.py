"""The channel.k8s.io WebSocket protocols of exec and port-forward, server side (aiohttp).

Spoken by the fake API server (to the client directly) and by the kubelet stand-in (behind the
real apiserver, which passes the upgrade and its subprotocol header through unchanged).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

V4, V5 = "v4.channel.k8s.io", "v5.channel.k8s.io"
STDOUT, STDERR, ERROR = 1, 2, 3


def offered(request: web.Request) -> list[str]:
    """The subprotocols the client offered, in its order."""
    raw = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in raw.split(",") if p.strip()]


async def accept(request: web.Request, preference: tuple[str, ...]) -> web.WebSocketResponse:
    """Upgrade, choosing the first protocol of ``preference`` that the client offered."""
    chosen = next((p for p in preference if p in offered(request)), None)
    ws = web.WebSocketResponse(protocols=(chosen,) if chosen else ())
    await ws.prepare(request)
    return ws


def exec_status(code: int) -> dict[str, Any]:
    """The metav1.Status an exec ends with on the error channel (exit code as a cause)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


async def send_exec_result(
    ws: web.WebSocketResponse, out: str, err: str, status: dict[str, Any] | None
) -> None:
    """stdout, stderr, then the Status (None: the stream ends without one), then close."""
    if out:
        await ws.send_bytes(bytes([STDOUT]) + out.encode())
    if err:
        await ws.send_bytes(bytes([STDERR]) + err.encode())
    if status is not None:
        await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
    await ws.close()


async def forward_port(
    ws: web.WebSocketResponse, port: int, host_port: int | None, pod: str
) -> None:
    """Port-forward one port: channel 0 data, 1 errors, each opened with the port (uint16 LE)."""
    prefix = port.to_bytes(2, "little")
    await ws.send_bytes(b"\x00" + prefix)
    await ws.send_bytes(b"\x01" + prefix)
    try:
        if host_port is None:
            raise OSError(f"container port {port} not listening")
        reader, writer = await asyncio.open_connection("127.0.0.1", host_port)
    except OSError as exc:
        await ws.send_bytes(b"\x01" + f"error forwarding port {port} to pod {pod}: {exc}".encode())
        await ws.close()
        return

    async def upstream() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY and msg.data[:1] == b"\x00" and len(msg.data) > 1:
                writer.write(msg.data[1:])
                await writer.drain()
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break

    async def downstream() -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await ws.send_bytes(b"\x00" + data)

    tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except Exception:
        pass
    finally:
        for task in tasks:
            task.cancel()
        writer.close()
        await ws.close()
