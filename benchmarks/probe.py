"""A CreateRoom every few milliseconds straight to livekit-server, timed, during a run.

Run beside an eager variant, it tells whether LiveKit itself was slow at the moments the
variant's slowest requests were waiting: it has its own thread, event loop and keep-alive
connection, so a stall in the app's process does not touch it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time

from .apps import DEPARTURE_TIMEOUT, EMPTY_TIMEOUT, ROOM_PREFIX
from .lifecycle import Started


class LiveKitProbe(Started):
    def __init__(self, url: str, api_key: str, api_secret: str, interval_s: float = 0.02) -> None:
        self.url, self.api_key, self.api_secret = url, api_key, api_secret
        self.interval_s = interval_s
        #: (epoch seconds when sent, latency in ms) of every call.
        self.samples: list[tuple[float, float]] = []
        #: (epoch seconds, ms) by which each pause between calls overshot ``interval_s``: how
        #: late the machine ran this thread, with LiveKit out of the picture.
        self.lateness: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livekit-probe", daemon=True)

    @property
    def result(self) -> dict[str, list[tuple[float, float]]]:
        return {"createroom": self.samples, "lateness": self.lateness}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.run(self._probe())

    async def _probe(self) -> None:
        from livekit import api

        client = api.LiveKitAPI(self.url, self.api_key, self.api_secret)
        try:
            while not self._stop.is_set():
                sent, started = time.time(), time.perf_counter()
                await client.room.create_room(
                    api.CreateRoomRequest(
                        name=ROOM_PREFIX + "probe-" + secrets.token_urlsafe(8),
                        empty_timeout=int(os.environ.get("BENCH_EMPTY_TIMEOUT", EMPTY_TIMEOUT)),
                        departure_timeout=DEPARTURE_TIMEOUT,
                    )
                )
                self.samples.append((sent, 1000 * (time.perf_counter() - started)))
                paused, before = time.time(), time.perf_counter()
                await asyncio.sleep(self.interval_s)
                late = 1000 * (time.perf_counter() - before - self.interval_s)
                self.lateness.append((paused, max(0.0, late)))
        finally:
            await client.aclose()
