"""The TCP handshake a user-space delay leaves out, put back; and a probe that counts round trips.

Toxiproxy accepts the app's connection itself, so a new connection's SYN / SYN-ACK cost nothing
here, where on a network the client can send its first byte only one round trip after it
called ``connect()``. :class:`HandshakeDelay` sits in front of Toxiproxy and holds each new
connection's first client chunk (the TLS ClientHello) for one RTT before relaying it; after
that it relays both ways without delay (Toxiproxy adds the RTT of every later exchange).

    app --TCP--> HandshakeDelay (first chunk + RTT) --> Toxiproxy (RTT/2 each way) --> nginx

:func:`probe_round_trips` checks the model: a new TLS 1.3 connection plus one request must cost
3 RTT (TCP, TLS, request), 4 with TLS 1.2, and one more request on it 1 RTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import ssl
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from .lifecycle import Started
from .serve import free_port

#: Round trips of a new connection plus one request, by TLS version: TCP + TLS + the request.
EXPECTED_NEW_RTTS = {"1.3": 3, "1.2": 4}
_CHUNK = 65536


class HandshakeDelay(Started):
    """One relay per upstream port; :meth:`set_rtt` sets the round trip new connections pay."""

    def __init__(self, upstreams: dict[str, int]) -> None:
        self.upstreams = upstreams
        self.ports = {name: free_port() for name in upstreams}
        self.rtt_ms = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._relays: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def set_rtt(self, rtt_ms: int) -> None:
        self.rtt_ms = rtt_ms

    async def _listen(self) -> None:
        for name, upstream in self.upstreams.items():

            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: int = upstream
            ) -> None:
                task = asyncio.current_task()
                assert task is not None
                self._relays.add(task)  # the loop keeps only weak references to tasks
                try:
                    await self._relay(reader, writer, upstream)
                except asyncio.CancelledError:
                    pass  # closing down: asyncio would report a cancelled handler as an error
                finally:
                    self._relays.discard(task)

            server = await asyncio.start_server(handle, "127.0.0.1", self.ports[name])
            self._servers.append(server)

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        relays = list(self._relays)
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        await asyncio.sleep(0)  # let the closed transports finish closing

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: int
    ) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            writer.close()
            return
        try:
            first = await reader.read(_CHUNK)
            if first:
                # The SYN / SYN-ACK round trip the client would have waited for before sending.
                await asyncio.sleep(self.rtt_ms / 1000)
                up_writer.write(first)
                pipes = [
                    asyncio.ensure_future(_pipe(reader, up_writer)),
                    asyncio.ensure_future(_pipe(up_reader, writer)),
                ]
                try:
                    # HTTP over TLS: when either side closes, the connection is over.
                    await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for pipe in pipes:
                        pipe.cancel()
                    await asyncio.gather(*pipes, return_exceptions=True)
        except OSError:
            pass
        finally:
            for stream in (writer, up_writer):
                stream.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()


def probe_round_trips(
    port: int,
    ca: Path,
    version: str,
    rtt_ms: int,
    local: dict[str, Any] | None = None,
    samples: int = 5,
) -> dict[str, Any]:
    """Time a new TLS connection plus one request, and one more request on it, in RTTs.

    ``port`` is where the app would connect (the handshake relay); ``GET /`` is answered by
    livekit-server behind nginx. Medians of ``samples`` connections. ``local``, the same probe
    at an RTT of 0, is the local work (TLS, nginx, LiveKit) taken off before counting RTTs.
    """
    context = ssl.create_default_context(cafile=str(ca))
    tls = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    context.minimum_version = context.maximum_version = tls
    new, reused = [], []
    for _ in range(samples):
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
        try:
            started = time.perf_counter()
            connection.request("GET", "/")
            connection.getresponse().read()
            new.append(1000 * (time.perf_counter() - started))
            started = time.perf_counter()
            connection.request("GET", "/")
            connection.getresponse().read()
            reused.append(1000 * (time.perf_counter() - started))
        finally:
            with contextlib.suppress(OSError):
                connection.close()
    probe: dict[str, Any] = {
        "rtt_ms": rtt_ms,
        "tls": version,
        "new_connection_ms": statistics.median(new),
        "reused_connection_ms": statistics.median(reused),
        "expected_new_rtts": EXPECTED_NEW_RTTS[version],
    }
    if rtt_ms:
        base_new = local["new_connection_ms"] if local else 0.0
        base_reused = local["reused_connection_ms"] if local else 0.0
        probe["new_connection_rtts"] = (probe["new_connection_ms"] - base_new) / rtt_ms
        probe["reused_connection_rtts"] = (probe["reused_connection_ms"] - base_reused) / rtt_ms
        probe["local_work_subtracted"] = local is not None
        probe["faithful"] = (
            round(probe["new_connection_rtts"]) == probe["expected_new_rtts"]
            and round(probe["reused_connection_rtts"]) == 1
        )
    return probe
