"""Readiness: LiveKit reachable with the app's credentials (and how fast), Redis where configured.

Used by :meth:`LiveKitOnboarding.health`, the opt-in ``GET {prefix}/health`` route
(``LIVEKIT_ONBOARDING_HEALTH_ROUTE``) and ``flask livekit check``. Every check is bounded by
the request timeout, and the checks run side by side, so a report never takes much longer.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from livekit import api

from .errors import ApiError
from .state import OnboardingState

#: A LiveKit call that proves the server is there and accepts the credentials.
LiveKitProbe = Callable[[api.LiveKitAPI], Awaitable[Any]]


@dataclass(frozen=True)
class Check:
    """One dependency's answer: reachable or not, how long it took, and why not."""

    ok: bool
    latency_ms: float
    error: str | None = None
    #: What the probe returned (LiveKit's answer), or the exception it raised.
    result: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"ok": self.ok, "latency_ms": round(self.latency_ms, 1)}
        if self.error is not None:
            answer["error"] = self.error
        return answer


@dataclass(frozen=True)
class Health:
    """The checks of one app: ready when every one of them is ok."""

    checks: Mapping[str, Check]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks.values())

    @property
    def down(self) -> list[str]:
        """The names of the dependencies that failed their check."""
        return [name for name, check in self.checks.items() if not check.ok]

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the health route: 200 when ready, 503 naming what is down."""
        body: dict[str, Any] = {
            "status": "ready" if self.ready else "unavailable",
            "checks": {name: check.to_dict() for name, check in self.checks.items()},
        }
        if not self.ready:
            body["down"] = self.down
            body["error"] = {
                "code": "not_ready",
                "message": "Not ready: "
                + "; ".join(f"{name}: {self.checks[name].error}" for name in self.down),
            }
        return body


def check_health(
    state: OnboardingState, timeout: float | None = None, *, probe: LiveKitProbe | None = None
) -> Health:
    """Check LiveKit (with ``probe``, by default a ListRooms of one name) and Redis, if used.

    ``timeout`` defaults to the request timeout; no check takes longer.
    """
    bound = state.config.request_timeout if timeout is None else timeout
    if probe is None:
        request = api.ListRoomsRequest(names=[state.config.room_prefix + "health-probe"])

        def probe(lk: api.LiveKitAPI) -> Awaitable[Any]:
            return lk.room.list_rooms(request)

    livekit_probe = probe
    clients = _redis_clients(state)
    with state.telemetry.span("onboarding.health") as span:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1) if clients else None
        try:
            redis = pool.submit(_ping_all, clients) if pool is not None else None
            checks = {"livekit": _timed(lambda: state.livekit.call(livekit_probe, timeout=bound))}
            if redis is not None:
                checks["redis"] = _redis_check(redis, bound)
        finally:
            if pool is not None:
                pool.shutdown(wait=False)
        health = Health(checks)
        span.set_attribute("livekit.onboarding.outcome", "ready" if health.ready else "unavailable")
    return health


def _timed(call: Callable[[], Any]) -> Check:
    started = time.perf_counter()
    try:
        result = call()
    except ApiError as error:
        return Check(False, _ms(started), error.description or error.error_code, error)
    except Exception as error:  # noqa: BLE001 - a failed check is reported, never raised
        return Check(False, _ms(started), type(error).__name__, error)
    return Check(True, _ms(started), result=result)


def _redis_check(future: concurrent.futures.Future[Check], bound: float) -> Check:
    try:
        return future.result(bound + 0.5)
    except concurrent.futures.TimeoutError:
        future.cancel()
        return Check(False, bound * 1000, f"no answer within {bound:g}s")


def _ping_all(clients: list[Any]) -> Check:
    return _timed(lambda: [client.ping() for client in clients])


def _redis_clients(state: OnboardingState) -> list[Any]:
    """The Redis clients of the de-duplication store and the room locks, once each."""
    clients: dict[int, Any] = {}
    for store in (state.dedupe, state.locks):
        client = getattr(store, "client", None)
        if client is not None and callable(getattr(client, "ping", None)):
            clients.setdefault(id(client), client)
    return list(clients.values())


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
