"""The remote benchmark's handshake model: a new connection's first chunk waits one RTT."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from benchmarks.handshake import HandshakeDelay


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A TCP server on loopback that sends back whatever it receives."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                while data := connection.recv(65536):
                    connection.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()


def _round_trip(client: socket.socket, payload: bytes) -> float:
    started = time.perf_counter()
    client.sendall(payload)
    received = b""
    while len(received) < len(payload):
        received += client.recv(65536)
    assert received == payload
    return time.perf_counter() - started


def test_each_new_connection_pays_one_round_trip_before_its_first_bytes(echo_port: int) -> None:
    with HandshakeDelay({"echo": echo_port}) as delay:
        delay.set_rtt(300)
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", delay.ports["echo"])) as client:
                assert _round_trip(client, b"client hello") >= 0.3
                # Later exchanges on the connection are relayed as they are, byte for byte.
                _round_trip(client, b"request" * 5000)
        assert delay.connections == 2
