"""A loopback TCP proxy that sends each new connection to a live backend, round robin."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
import threading
from collections.abc import Callable, Sequence

Address = tuple[str, int]

_CHUNK = 65536


class TcpProxy:
    """Forwards every accepted connection to one of ``resolve()``'s backends.

    ``resolve`` is called once per new connection (so a restarted or replaced frontend is
    picked up at once) and returns the addresses that may serve, best first; the proxy rotates
    over them round robin and falls through to the next one when a connect fails. When none
    accepts, the client's connection is closed — what a Service without endpoints does.
    """

    def __init__(
        self,
        resolve: Callable[[], Sequence[Address]],
        host: str = "127.0.0.1",
        port: int = 0,
        connect_timeout: float = 2.0,
    ) -> None:
        self._resolve = resolve
        self._host = host
        self._port = port
        self._connect_timeout = connect_timeout
        self._counter = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        self.address: Address | None = None
        self.connections = 0  # accepted so far
        self.forwarded: dict[Address, int] = {}  # connections per backend, for tests and logs
        # Established forwards: task -> (client writer, backend writer, backend address)
        self._open: dict[asyncio.Task, tuple[asyncio.StreamWriter, asyncio.StreamWriter, Address]]
        self._open = {}
        self.refusing = False  # cut: every new connection is reset at once (see cut())
        self.refused = 0  # connections reset at accept while cut

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the listening socket."""
        if self.address is None:
            raise RuntimeError("proxy not started")
        return f"http://{self.address[0]}:{self.address[1]}"

    def start(self) -> Address:
        """Listen in a background thread; return the bound address."""
        if self._thread is not None:
            assert self.address is not None
            return self.address
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self._host, self._port)
                )
                sock = self._server.sockets[0].getsockname()
                self.address = (sock[0], sock[1])
            except BaseException as exc:  # reported to the caller of start()
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name="ftctl-proxy", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread = None
            raise failure[0]
        assert self.address is not None
        return self.address

    def close(self) -> None:
        """Stop listening and cut every forwarded connection; idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass
        thread.join(timeout=10)
        self._thread = None

    def reset_connections(
        self, backend: Address | None = None, timeout: float = 10.0
    ) -> list[dict[str, object]]:
        """RST every established forward (to ``backend`` only, if given); what was reset.

        Both sockets of a forward are closed with SO_LINGER 0, so the kernel sends a real RST
        both ways: the client sees a reset connection, the backend a reset from its peer.
        Each entry: ``client`` (peer address of the client socket), ``backend``, ``upstream``
        (this side's address of the backend socket), as ``host:port`` strings.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return []
        future = asyncio.run_coroutine_threadsafe(self._reset(backend), loop)
        return future.result(timeout)

    async def _reset(self, backend: Address | None) -> list[dict[str, object]]:
        reset = []
        for client, upstream, addr in list(self._open.values()):
            if backend is not None and tuple(addr) != tuple(backend):
                continue
            entry = {
                "client": _name(client.get_extra_info("peername")),
                "backend": _name(addr),
                "upstream": _name(upstream.get_extra_info("sockname")),
            }
            for writer in (client, upstream):
                _abort_with_rst(writer)  # close now: with linger 0 the kernel sends RST
            reset.append(entry)
        return reset

    def cut(self, timeout: float = 10.0) -> list[dict[str, object]]:
        """Partition: reset every established forward and every new connection until heal()."""
        self.refusing = True
        return self.reset_connections(timeout=timeout)

    def heal(self) -> None:
        """End a cut: new connections are forwarded again."""
        self.refusing = False

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _candidates(self) -> list[Address]:
        try:
            backends = list(self._resolve())
        except Exception:  # a failing resolver must not kill the proxy
            backends = []
        if not backends:
            return []
        start = next(self._counter) % len(backends)
        return backends[start:] + backends[:start]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        if self.refusing:
            self.refused += 1
            _abort_with_rst(writer)
            self._tasks.discard(task)
            return
        self.connections += 1
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            for addr in self._candidates():
                try:
                    upstream = await asyncio.wait_for(
                        asyncio.open_connection(*addr), self._connect_timeout
                    )
                except (OSError, TimeoutError):
                    continue
                self.forwarded[addr] = self.forwarded.get(addr, 0) + 1
                break
            if upstream is None:
                return
            up_reader, up_writer = upstream
            self._open[task] = (writer, up_writer, addr)
            # The request direction may end first (half-close) and the response still come;
            # once the response direction ends the exchange is over.
            request = asyncio.ensure_future(_pipe(reader, up_writer))
            try:
                await _pipe(up_reader, writer)
            finally:
                request.cancel()
                await asyncio.gather(request, return_exceptions=True)
                up_writer.close()
        except asyncio.CancelledError:
            pass
        finally:
            self._open.pop(task, None)
            writer.close()
            self._tasks.discard(task)


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s socket now with SO_LINGER 0: the kernel sends RST, not FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s socket now with SO_LINGER 0: the kernel sends RST, not FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def _name(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close; a reset on either side ends both directions."""
    try:
        while True:
            data = await src.read(_CHUNK)
            if not data:
                break
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (ConnectionError, OSError):
        # Pass a reset on as a reset, so the client sees a broken connection, not a clean end.
        dst.transport.abort()
