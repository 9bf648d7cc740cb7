"""A TCP proxy in front of the broker that can take it away from the worker and give it back.

Kafka clients connect to the address the broker advertises, so the broker is
started advertising the proxy's address and all traffic goes through here.
The proxy runs its own event loop in a thread: it forwards while the test
blocks (starting or stopping a process) as well as while it awaits.

- `down()`: nothing listens any more and every connection is closed, as when
  the broker is not there (yet);
- `partition()`: the worker is cut off (its connections closed, new ones closed
  at their first request) while the test's own clients, which name themselves
  `bystander` in the Kafka request header, still get through: the broker is up
  and takes events, the worker cannot reach it;
- `stall_produce()`: the broker takes no more records from the worker. Its
  connections stay open and every request but Produce goes through (fetches,
  heartbeats, offset commits), but a Produce request is never forwarded and
  never answered, nor is anything after it on that connection: as a broker
  whose log writes hang. Bystanders still produce;
- `restore()`: everyone gets through again (a stalled connection is closed,
  so that its client connects anew).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

R = TypeVar("R")

CHUNK = 65536
MAX_FIRST_REQUEST = 1_048_576
PRODUCE = 0  # the Produce request's api_key


class Proxy:
    """Forwards 127.0.0.1:`port` to `target` ("host:port"), once started and restored."""

    def __init__(self, port: int, target: str, bystander: str) -> None:
        self.port = port
        host, _, target_port = target.rpartition(":")
        self._target = (host, int(target_port))
        self.bystander = bystander
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._partitioned = False
        self._stalling = False
        # open connection -> (client id, both ends)
        self._open: dict[asyncio.Task[None], tuple[str, list[asyncio.StreamWriter]]] = {}
        self.refused: set[str] = set()  # client ids turned away: the cut really hit them
        self.stalled: set[str] = set()  # client ids whose Produce was held: the stall hit them
        self._stalled_open: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def restore(self) -> None:
        """Listen, and let every client through."""
        self._call(self._restore())

    def partition(self) -> None:
        """Close every connection but the bystanders'; keep turning away everyone else."""
        self._call(self._partition())

    def stall_produce(self) -> None:
        """Hold every Produce request but the bystanders', and what follows it on its connection."""
        self._call(self._stall())

    def down(self) -> None:
        """Stop listening and close every connection."""
        self._call(self._down())

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._down())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, R]) -> R:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10.0)

    async def _restore(self) -> None:
        self._partitioned = False
        self._stalling = False
        for task in list(self._stalled_open):
            if task in self._open:
                _close(self._open[task][1])
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True
            )

    async def _stall(self) -> None:
        self._stalling = True

    async def _partition(self) -> None:
        self._partitioned = True
        self._abort(lambda client: not client.startswith(self.bystander))

    async def _down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._abort(lambda client: True)
        if server is not None:
            await server.wait_closed()

    def _abort(self, which: Callable[[str], bool]) -> None:
        for client, ends in list(self._open.values()):
            if which(client):
                self.refused.add(client)
                _close(ends)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            first = await _first_request(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            writer.transport.abort()
            return
        client = _client_id(first)
        if self._server is None or (self._partitioned and not client.startswith(self.bystander)):
            self.refused.add(client)
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._open[task] = (client, [writer, upstream])
        try:
            await asyncio.gather(
                self._requests(task, client, first, reader, upstream),
                _pipe(upstream_reader, writer),
            )
        finally:
            self._open.pop(task, None)
            self._stalled_open.discard(task)
            writer.transport.abort()
            upstream.transport.abort()

    async def _requests(
        self,
        connection: asyncio.Task[None],
        client: str,
        request: bytes,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
    ) -> None:
        """Forward the client's requests one by one, until a Produce is to be held."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                (api_key,) = struct.unpack_from(">h", request, 4)
                if api_key == PRODUCE and self._stalling and not client.startswith(self.bystander):
                    break
                upstream.write(request)
                await upstream.drain()
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                request = struct.pack(">i", size) + await reader.readexactly(size)
            # Held: neither this request nor anything after it goes on; the
            # connection stays open until its client gives up or `restore()`.
            self.stalled.add(client)
            self._stalled_open.add(connection)
            while await reader.read(CHUNK):
                pass
        upstream.transport.abort()


async def _first_request(reader: asyncio.StreamReader) -> bytes:
    """The connection's first Kafka request, size prefix included."""
    size_bytes = await reader.readexactly(4)
    (size,) = struct.unpack(">i", size_bytes)
    if not 10 <= size <= MAX_FIRST_REQUEST:
        raise ValueError(f"not a Kafka request: size {size}")
    return size_bytes + await reader.readexactly(size)


def _client_id(request: bytes) -> str:
    """The client id of a request: header = api_key, api_version, correlation_id, client_id.

    Every request header version starts the same way; client_id is a nullable
    int16-length string.
    """
    (length,) = struct.unpack_from(">h", request, 12)
    return "" if length < 0 else request[14 : 14 + length].decode(errors="replace")


def _close(ends: list[asyncio.StreamWriter]) -> None:
    """Abort both ends: their pipes read the end and return (no task is cancelled)."""
    for end in ends:
        end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until either side closes; then close the other."""
    with contextlib.suppress(OSError):
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
    writer.transport.abort()
