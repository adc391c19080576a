"""OpenTelemetry spans and metrics of the extension, through the API package only.

Without an OpenTelemetry SDK configured every span and instrument here is a no-op. Names and
attributes follow OpenTelemetry's semantic conventions where they exist (``rpc.*``,
``server.*``, ``error.type``, ``enduser.id``) and use the ``livekit.onboarding.*`` prefix
otherwise. No token, secret, context value or participant identity is recorded; identities
only with ``Telemetry(record_identities=True)``.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from livekit import api
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from werkzeug.exceptions import HTTPException

from .errors import LiveKitTimeout, LiveKitUnavailable

if TYPE_CHECKING:
    import aiohttp

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: The instrumentation scope of the extension's tracer and meter.
SCOPE = "flask_livekit_onboarding"
_P = "livekit.onboarding."
#: Attribute names of the ``livekit.onboarding.*`` namespace.
ROOM = _P + "room"
ROOM_CREATION = _P + "room_creation"
SESSION_POLICY = _P + "session_policy"
SESSION = _P + "session"
AGENTS = _P + "agents"
AGENT_NAMES = _P + "agent_names"
OUTCOME = _P + "outcome"
EVENT_TYPE = _P + "webhook.event"
EVENT_ID = _P + "webhook.event_id"
CONTEXT_MODE = _P + "context.mode"
CONTEXT_PART = _P + "context.part"
#: Trace context carried in an agent dispatch: W3C ``traceparent`` (and ``tracestate``).
_PROPAGATOR = TraceContextTextMapPropagator()


class Telemetry:
    """The tracer and the instruments of one app (default: OpenTelemetry's global providers).

    Pass one to ``init_app(app, telemetry=Telemetry(...))`` to use other providers, or to
    record participant identities (``enduser.id``), which are left out by default.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        record_identities: bool = False,
    ) -> None:
        from . import __version__

        self.record_identities = record_identities
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        self.tokens_issued = meter.create_counter(
            _P + "tokens.issued", unit="{token}", description="Participant tokens issued."
        )
        self.livekit_duration = meter.create_histogram(
            _P + "livekit.duration", unit="s", description="Duration of calls to LiveKit."
        )
        self.livekit_outages = meter.create_counter(
            _P + "livekit.outages", unit="{outage}", description="Times LiveKit started failing."
        )
        self.livekit_outage_duration = meter.create_histogram(
            _P + "livekit.outage.duration", unit="s", description="How long LiveKit was failing."
        )
        self.webhook_events = meter.create_counter(
            _P + "webhook.events", unit="{event}", description="Webhook requests, by outcome."
        )
        self.dedupe_duration = meter.create_histogram(
            _P + "dedupe.duration",
            unit="s",
            description="Duration of calls to the webhook de-duplication store.",
        )
        self.lock_waits = meter.create_histogram(
            _P + "lock.wait", unit="s", description="Time a context update waited for its room."
        )

    def __repr__(self) -> str:
        return f"<Telemetry record_identities={self.record_identities}>"

    @contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Iterator[Span]:
        """A span of the extension's own work.

        An exception sets ``error.type`` (and the status ``ERROR`` unless it is a client
        error, a 4xx) with the exception's type only: its message may quote what a client
        sent, so it is not recorded.
        """
        with self.tracer.start_as_current_span(
            name,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as error:
                span.set_attribute("error.type", type(error).__name__)
                if not (isinstance(error, HTTPException) and (error.code or 500) < 500):
                    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise

    # LiveKit calls ---------------------------------------------------------------------

    def livekit_call(self, coro: Awaitable[T], server: str) -> Coroutine[Any, Any, T]:
        """Wrap the coroutine of one bridge call in a client span in the caller's context.

        Called in the caller's thread; the coroutine runs on the bridge's loop, where the
        caller's context would otherwise be lost.
        """
        parent = otel_context.get_current()
        return self._traced_call(coro, parent, server)

    async def _traced_call(
        self, coro: Awaitable[T], parent: otel_context.Context, server: str
    ) -> T:
        parts = urlsplit(server)
        attributes: dict[str, Any] = {"rpc.system": "twirp"}
        if parts.hostname:
            attributes["server.address"] = parts.hostname
        if parts.port:
            attributes["server.port"] = parts.port
        record = _CallRecord()
        token = otel_context.attach(parent)
        _livekit_call.set(record)
        started = time.perf_counter()
        outcome = "ok"
        try:
            with self.tracer.start_as_current_span(
                "LiveKit",
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                record.span = span
                try:
                    return await coro
                except BaseException as error:
                    outcome = _call_outcome(error)
                    if outcome != "not_found":
                        span.set_status(Status(StatusCode.ERROR, outcome))
                        span.set_attribute("error.type", type(error).__name__)
                        span.record_exception(error)
                    raise
                finally:
                    span.set_attribute(OUTCOME, outcome)
        finally:
            self.livekit_duration.record(
                time.perf_counter() - started,
                {"rpc.method": record.method, OUTCOME: outcome},
            )
            otel_context.detach(token)

    def aiohttp_trace_config(self) -> aiohttp.TraceConfig:
        """Names the current LiveKit call's span after the Twirp method it requests."""
        import aiohttp

        config = aiohttp.TraceConfig()
        config.on_request_start.append(_on_request_start)
        config.on_request_end.append(_on_request_end)
        return config

    def outage_started(self) -> None:
        self.livekit_outages.add(1)

    def outage_ended(self, seconds: float) -> None:
        self.livekit_outage_duration.record(seconds)

    # Token requests and context updates -------------------------------------------------

    @contextmanager
    def token_span(
        self, room_creation: str, session_policy: str, identity: str
    ) -> Iterator[TokenTrace]:
        """Trace one token request (``identity`` only where identities are recorded) and
        count the token once it is issued."""
        attributes: dict[str, Any] = {
            ROOM_CREATION: room_creation,
            SESSION_POLICY: session_policy,
        }
        if self.record_identities:
            attributes["enduser.id"] = identity
        with self.span("onboarding.token", attributes) as span:
            traced = TokenTrace(span)
            yield traced
        self.tokens_issued.add(1, {ROOM_CREATION: room_creation, SESSION: traced.session})

    def context_update_span(
        self, room_name: str, mode: str, parts: list[str]
    ) -> AbstractContextManager[Span]:
        """Trace one context update of ``room_name`` (``parts``: ``context``, ``client``)."""
        attributes = {ROOM: room_name, CONTEXT_MODE: mode, CONTEXT_PART: parts}
        return self.span("onboarding.context_update", attributes)

    # Context propagation -----------------------------------------------------------------

    @staticmethod
    def trace_headers() -> dict[str, str]:
        """The current trace context as W3C headers; empty when nothing is being recorded."""
        carrier: dict[str, str] = {}
        if trace.get_current_span().get_span_context().is_valid:
            _PROPAGATOR.inject(carrier)
        return carrier

    # Context updates ---------------------------------------------------------------------

    @contextmanager
    def lock_wait(self, hold: AbstractContextManager[Any]) -> Iterator[None]:
        """Hold ``hold`` (a room lock), recording how long taking it took."""
        started = time.perf_counter()
        outcome = "busy"
        try:
            with self.span("onboarding.lock"):
                hold.__enter__()
                outcome = "acquired"
        finally:
            self.lock_waits.record(time.perf_counter() - started, {OUTCOME: outcome})
        try:
            yield
        except BaseException as error:
            if not hold.__exit__(type(error), error, error.__traceback__):
                raise
        else:
            hold.__exit__(None, None, None)


def telemetry_of(state: Any) -> Telemetry:
    """The :class:`Telemetry` of an app's state."""
    telemetry: Telemetry = state.telemetry
    return telemetry


@dataclass
class TokenTrace:
    """The ``onboarding.token`` span of one token request, told what the request did."""

    span: Span
    session: str = ""

    def done(self, room_name: str, session: str, agent_names: list[str]) -> None:
        """Record the room, what happened to the session and the agents dispatched."""
        self.session = session
        self.span.set_attributes(
            {ROOM: room_name, SESSION: session, AGENTS: len(agent_names), AGENT_NAMES: agent_names}
        )


def webhook_span(
    get_state: Callable[[], Any],
) -> Callable[[Callable[P, tuple[Any, int]]], Callable[P, tuple[Any, int]]]:
    """Trace the webhook view and count its events by type and outcome.

    Outcomes: ``accepted``, ``duplicate``, ``stale`` (acknowledged, not delivered),
    ``invalid`` (4xx: LiveKit does not retry) and ``retry`` (5xx: LiveKit sends it again).
    """
    return functools.partial(_webhook_span, get_state)


def _webhook_span(
    get_state: Callable[[], Any], view: Callable[P, tuple[Any, int]]
) -> Callable[P, tuple[Any, int]]:
    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> tuple[Any, int]:
        telemetry = telemetry_of(get_state())
        record = _WebhookRecord(telemetry)
        reset = _webhook.set(record)
        outcome = "retry"
        try:
            with telemetry.span("onboarding.webhook") as span:
                try:
                    response, status = view(*args, **kwargs)
                except HTTPException as error:
                    outcome = "invalid" if (error.code or 500) < 500 else "retry"
                    raise
                else:
                    outcome = str(response.get_json().get("status", "accepted"))
                finally:
                    span.set_attribute(OUTCOME, outcome)
            return response, status
        finally:
            _webhook.reset(reset)
            telemetry.webhook_events.add(1, {EVENT_TYPE: record.event_type, OUTCOME: outcome})

    return wrapper


def webhook_event(fn: Callable[P, T]) -> Callable[P, T]:
    """Note the type and id of the event ``verify_webhook`` returns on the webhook span."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        event = fn(*args, **kwargs)
        record = _webhook.get()
        if record is not None:
            record.event_type = str(getattr(event, "event", "")) or "unknown"
            record.fields = {
                "event_id": str(getattr(event, "id", "")),
                "event_type": record.event_type,
            }
            room = getattr(event, "room", None)
            if room is not None and room.name:
                record.fields["room_name"] = str(room.name)
            trace.get_current_span().set_attributes(
                {EVENT_TYPE: record.event_type, EVENT_ID: str(getattr(event, "id", ""))}
            )
        return event

    return wrapper


def dedupe_call(fn: Callable[P, T]) -> Callable[P, T]:
    """Time a call on the de-duplication store made while handling a webhook."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        record = _webhook.get()
        if record is None:
            return fn(*args, **kwargs)
        started = time.perf_counter()
        outcome = "error"
        try:
            result = fn(*args, **kwargs)
            outcome = "ok"
            return result
        finally:
            record.telemetry.dedupe_duration.record(
                time.perf_counter() - started, {OUTCOME: outcome}
            )

    return wrapper


@dataclass
class _WebhookRecord:
    telemetry: Telemetry
    event_type: str = "unknown"
    fields: dict[str, str] = field(default_factory=dict)


class WebhookLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A module's logger (same name) whose lines, while a webhook is handled, carry its
    ``event_id``, ``event_type`` and ``room_name`` as ``extra`` fields."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        record = _webhook.get()
        if record is not None and record.fields:
            kwargs["extra"] = {**record.fields, **(kwargs.get("extra") or {})}
        return msg, kwargs


@dataclass
class _CallRecord:
    method: str = "unknown"
    span: Span | None = None


#: The webhook being handled, and the LiveKit call being made, in this context.
_webhook: contextvars.ContextVar[_WebhookRecord | None] = contextvars.ContextVar(
    "livekit_onboarding_webhook", default=None
)
_livekit_call: contextvars.ContextVar[_CallRecord | None] = contextvars.ContextVar(
    "livekit_onboarding_livekit_call", default=None
)


def _call_outcome(error: BaseException) -> str:
    if isinstance(error, api.TwirpError) and error.code == api.TwirpErrorCode.NOT_FOUND:
        return "not_found"
    if isinstance(error, LiveKitTimeout | TimeoutError):
        return "timeout"
    if isinstance(error, LiveKitUnavailable):
        return "unavailable"
    if isinstance(error, BaseException) and type(error).__name__ == "CancelledError":
        return "timeout"
    return "error"


async def _on_request_start(session: Any, context: Any, params: Any) -> None:
    record = _livekit_call.get()
    if record is None or record.span is None:
        return
    # A Twirp path: /twirp/livekit.RoomService/CreateRoom
    service, _, method = params.url.path.rpartition("/")
    service = service.rpartition("/")[2]
    if record.method == "unknown":
        record.method = method
        record.span.update_name(f"{service}/{method}")
        record.span.set_attributes({"rpc.service": service, "rpc.method": method})


async def _on_request_end(session: Any, context: Any, params: Any) -> None:
    record = _livekit_call.get()
    if record is not None and record.span is not None:
        record.span.set_attribute("http.response.status_code", params.response.status)


def trace_headers(carrier: Mapping[str, str]) -> otel_context.Context:
    """The context a W3C ``traceparent``/``tracestate`` carrier continues."""
    return _PROPAGATOR.extract(dict(carrier))
