"""Sync access to livekit-api's asyncio client from Flask views.

livekit-api is asyncio/aiohttp only. Each process gets one event-loop thread owning one
``LiveKitAPI`` (one aiohttp session with keep-alive connections); views submit coroutines to it
and wait with a bound. The loop is rebuilt in a forked child (gunicorn) and closed at exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import aiohttp
from livekit import api

from .config import OnboardingConfig
from .errors import LiveKitError, LiveKitTimeout, LiveKitUnavailable
from .telemetry import Telemetry

logger = logging.getLogger(__name__)

T = TypeVar("T")
LiveKitCall = Callable[[api.LiveKitAPI], Awaitable[T]]

# A pooled keep-alive connection that LiveKit closed (restart, idle timeout) fails before any
# byte of the request is processed, so one immediate retry on a fresh connection is safe.
_STALE_CONNECTION_ERRORS = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
#: While LiveKit stays down, how often (seconds) one line reports the failures counted so far.
OUTAGE_REPORT_INTERVAL = 60.0


class LiveKitClient(Protocol):
    """What the extension needs from a LiveKit connection: bounded calls, and closing.

    :class:`LiveKitBridge` is the real one; :class:`flask_livekit_onboarding.testing.FakeLiveKit`
    is an in-memory double for host tests. Pass either to ``init_app(app, livekit=...)``.
    """

    def call(self, fn: LiveKitCall[T], *, timeout: float | None = None) -> T: ...

    def close(self) -> None: ...


class LiveKitBridge:
    """Run livekit-api calls from sync code on a per-process event loop."""

    def __init__(self, config: OnboardingConfig, telemetry: Telemetry | None = None) -> None:
        self._url = config.url
        self._api_key = config.api_key
        self._api_secret = config.api_secret
        self.timeout = config.request_timeout
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._api: api.LiveKitAPI | None = None
        self._finalizer: weakref.finalize[..., LiveKitBridge] | None = None
        self._closed = False
        self.telemetry = telemetry or Telemetry()
        self.outage = Outage(
            on_start=self.telemetry.outage_started, on_end=self.telemetry.outage_ended
        )

    def __repr__(self) -> str:
        return f"<LiveKitBridge url={self._url!r} running={self._loop is not None}>"

    def call(self, fn: LiveKitCall[T], *, timeout: float | None = None) -> T:
        """Run ``fn(livekit_api)`` on the loop and return its result within the timeout.

        Raises :class:`LiveKitUnavailable` (503), :class:`LiveKitTimeout` (504) or
        :class:`LiveKitError` (502, also for refusals such as bad credentials); only LiveKit's
        ``not_found`` comes back as ``livekit.api.TwirpError``, for the caller to interpret.
        """
        bound = self.timeout if timeout is None else timeout
        loop = self._running_loop()
        traced = self.telemetry.livekit_call(self._call(fn, bound), self._url)
        future = asyncio.run_coroutine_threadsafe(traced, loop)
        try:
            # The coroutine enforces the bound itself; the margin covers scheduling only.
            return future.result(bound + 1.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise LiveKitTimeout() from None

    def close(self) -> None:
        """Close the aiohttp session and stop the loop thread (idempotent)."""
        with self._lock:
            self._closed = True
            if self._finalizer is not None:
                self._finalizer()
            self._loop = self._api = self._finalizer = None

    async def _call(self, fn: LiveKitCall[T], bound: float) -> T:
        try:
            result = await asyncio.wait_for(self._attempt(fn), bound)
        except asyncio.TimeoutError:
            self.outage.failed(f"no answer within {bound:.1f}s")
            raise LiveKitTimeout() from None
        except api.TwirpError as error:
            if error.code == api.TwirpErrorCode.NOT_FOUND:
                self.outage.answered()
            else:
                self.outage.failed(f"it answered {error.status} ({error.code})")
            raise server_error(error, log=False) from None
        except aiohttp.ClientConnectionError as error:
            self.outage.failed(f"unreachable: {type(error).__name__}")
            raise LiveKitUnavailable() from None
        except aiohttp.ClientError as error:
            self.outage.failed(f"request failed: {type(error).__name__}")
            raise LiveKitError() from None
        self.outage.answered()
        return result

    async def _attempt(self, fn: LiveKitCall[T]) -> T:
        assert self._api is not None
        try:
            return await fn(self._api)
        except _STALE_CONNECTION_ERRORS:
            logger.debug("LiveKit closed a pooled connection; retrying once")
            return await fn(self._api)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("the LiveKit bridge is closed")
            if self._pid != os.getpid():
                # A forked child inherits the parent's loop object but not its thread.
                if self._finalizer is not None:
                    self._finalizer.detach()
                self._loop = self._api = self._finalizer = None
                self._pid = os.getpid()
            if self._loop is None:
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name="livekit-onboarding-loop", daemon=True
        )
        thread.start()
        session, client = asyncio.run_coroutine_threadsafe(self._make_api(), loop).result()
        self._loop, self._api = loop, client
        # Runs on close() or at interpreter exit, whichever comes first.
        self._finalizer = weakref.finalize(self, _stop, loop, thread, session)

    async def _make_api(self) -> tuple[aiohttp.ClientSession, api.LiveKitAPI]:
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30),
            trace_configs=[self.telemetry.aiohttp_trace_config()],
        )
        # Explicit credentials: livekit-api would otherwise read LIVEKIT_* from os.environ.
        client = api.LiveKitAPI(self._url, self._api_key, self._api_secret, session=session)
        return session, client


def _stop(
    loop: asyncio.AbstractEventLoop, thread: threading.Thread, session: aiohttp.ClientSession
) -> None:
    if loop.is_running():
        try:
            asyncio.run_coroutine_threadsafe(session.close(), loop).result(5)
        except Exception:  # noqa: BLE001 - closing must never raise
            logger.debug("closing the LiveKit session failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(5)
    if not loop.is_running() and not loop.is_closed():
        loop.close()


class Outage:
    """Logs LiveKit going away and coming back once each, not once per failed request.

    The first failure after a success logs a warning; later ones are only counted (and
    reported every :data:`OUTAGE_REPORT_INTERVAL` seconds) until LiveKit answers again, which
    logs how long it was gone and how many requests failed meanwhile.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        on_start: Callable[[], None] | None = None,
        on_end: Callable[[float], None] | None = None,
    ) -> None:
        """``on_start`` and ``on_end`` (given the outage's seconds) count outages as metrics."""
        self._clock = clock
        self._on_start = on_start
        self._on_end = on_end
        self._lock = threading.Lock()
        self.since: float | None = None
        self.failures = 0
        self._reported = 0.0

    def failed(self, reason: str) -> None:
        """Record one failed call; ``reason`` names what went wrong (never a secret)."""
        with self._lock:
            now = self._clock()
            if self.since is None:
                self.since, self.failures, self._reported = now, 1, now
                if self._on_start is not None:
                    self._on_start()
                logger.warning(
                    "LiveKit is failing (%s); requests answer 5xx until it is back, "
                    "and further failures are counted rather than logged",
                    reason,
                )
                return
            self.failures += 1
            if now - self._reported >= OUTAGE_REPORT_INTERVAL:
                self._reported = now
                logger.warning(
                    "LiveKit still failing (%s): %d requests failed in %.0fs",
                    reason,
                    self.failures,
                    now - self.since,
                )

    def answered(self) -> None:
        """Record a call LiveKit answered; ends an outage, logging its length and count."""
        if self.since is None:  # the common case, without taking the lock
            return
        with self._lock:
            if self.since is None:
                return
            down_for, failures = self._clock() - self.since, self.failures
            self.since, self.failures = None, 0
        if self._on_end is not None:
            self._on_end(down_for)
        logger.warning(
            "LiveKit answers again after %.1fs; %d requests failed meanwhile", down_for, failures
        )


def server_error(error: api.TwirpError, *, log: bool = True) -> Exception:
    """What a LiveKit error answer becomes: ``not_found`` stays for the caller, the rest 5xx."""
    if error.code == api.TwirpErrorCode.NOT_FOUND:
        return error
    if log:
        logger.warning("LiveKit answered %s (%s)", error.status, error.code)
    if error.code == api.TwirpErrorCode.UNAVAILABLE or error.status == 503:
        return LiveKitUnavailable()
    if error.status in (401, 403):
        return LiveKitError(
            "LiveKit refused the credentials: LIVEKIT_API_KEY and LIVEKIT_API_SECRET "
            "must be a key pair the server is configured with."
        )
    if error.status < 500:
        return LiveKitError(f"LiveKit refused the request ({error.code}).")
    return LiveKitError()
