"""``POST {prefix}/webhook``: verified LiveKit webhooks turned into signals, once each."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, jsonify, request

from ..dedupe import Claim
from ..errors import DedupeUnavailable, WebhookNotDelivered
from ..state import OnboardingState, get_state
from ..summaries import follow_webhook
from ..telemetry import WebhookLogger, dedupe_call, webhook_span
from ..webhooks import Delivery, announce, prepare, verify_webhook
from .bodies import read_body

logger = WebhookLogger(logging.getLogger(__name__))
T = TypeVar("T")


@webhook_span(get_state)
def receive_webhook() -> tuple[Response, int]:
    """Verify a LiveKit webhook and emit the matching signals once.

    401 for a missing, forged or expired signature or a tampered body; 400 for a signed body
    that is not an event; 503 when LiveKit or the shared de-duplication store cannot be asked
    (LiveKit retries). Events older than ``LIVEKIT_ONBOARDING_WEBHOOK_MAX_AGE`` and repeats of
    a delivered event id within ``LIVEKIT_ONBOARDING_WEBHOOK_DEDUPE_WINDOW`` are acknowledged
    with 200 and emit nothing.

    The event is verified, parsed and resolved (which onboarding room it is about) before its
    id is recorded, so no failure after the record can swallow LiveKit's retry. At least once
    (the default), a required receiver's failure releases the id and answers 503; a retry
    while another request is delivering the event answers 503 with ``Retry-After``.
    """
    state = get_state()
    config = state.config
    body = read_body()
    event = verify_webhook(config, request.headers.get("Authorization"), body)
    age = time.time() - event.created_at
    if abs(age) > config.webhook_max_age:
        logger.warning(
            "webhook %s (%s) dropped: created %.0fs %s, beyond %ss (check the clocks)",
            event.id,
            event.event,
            abs(age),
            "ago" if age > 0 else "in the future",
            config.webhook_max_age,
        )
        return _acknowledge("stale")
    try:
        delivery = prepare(state, event)
    except DedupeUnavailable as error:
        logger.warning("webhook %s not processed: %s", event.id, type(error.__cause__).__name__)
        raise
    app = state.app
    if config.webhook_delivery == "at_most_once":
        return _at_most_once(app, state, delivery)
    return _at_least_once(app, state, delivery)


def _at_most_once(app: Flask, state: OnboardingState, delivery: Delivery) -> tuple[Response, int]:
    """Record the id, then send: a receiver's failure or a crash loses the event, never twice."""
    event = delivery.event
    window = state.config.webhook_dedupe_window
    if not _store(event.id, lambda: state.dedupe.first_time(event.id, window)):
        logger.info("webhook %s (%s) is a duplicate; ignored", event.id, event.event)
        return _acknowledge("duplicate")
    try:
        _deliver(app, state, delivery)
    except Exception:
        _release(state, event.id, None)
        raise
    return _acknowledge("accepted")


def _at_least_once(app: Flask, state: OnboardingState, delivery: Delivery) -> tuple[Response, int]:
    """Hold the id while sending; record it as done only once every required receiver ran."""
    event = delivery.event
    config = state.config
    claim = _store(
        event.id,
        lambda: state.dedupe.claim(
            event.id, config.webhook_dedupe_window, config.webhook_claim_ttl
        ),
    )
    if claim.state == "done":
        logger.info("webhook %s (%s) is a duplicate; ignored", event.id, event.event)
        return _acknowledge("duplicate")
    if claim.state == "busy":
        logger.info("webhook %s (%s) is being delivered elsewhere", event.id, event.event)
        raise WebhookNotDelivered(
            "This event is being delivered by another request; retry later.",
            retry_after=claim.retry_after,
        )
    try:
        failed = _deliver(app, state, delivery)
    except Exception:
        _release(state, event.id, claim)
        raise
    if failed:
        _release(state, event.id, claim)
        logger.warning(
            "webhook %s (%s) not delivered: %d required receiver(s) failed; LiveKit retries",
            event.id,
            event.event,
            len(failed),
        )
        raise WebhookNotDelivered("A required receiver failed; LiveKit will deliver it again.")
    try:
        state.dedupe.complete(event.id, config.webhook_dedupe_window, claim)
    except Exception:
        # Delivered: answer 200. Only the record is missing, so a replay after the claim
        # expires would be delivered again, which at-least-once receivers tolerate.
        logger.exception("webhook %s delivered but could not be recorded as done", event.id)
    return _acknowledge("accepted")


def _deliver(app: Flask, state: OnboardingState, delivery: Delivery) -> list[Any]:
    """The session's summary, if the event ends one, then the event's signals; the required
    receivers that failed. A summary being sent elsewhere answers 503 before any signal."""
    return follow_webhook(app, state, delivery) + announce(app, delivery)


@dedupe_call
def _store(event_id: str, call: Callable[[], T]) -> T:
    """Run a call on the de-duplication store; its failure is a 503 LiveKit retries."""
    try:
        return call()
    except DedupeUnavailable as error:
        logger.warning("webhook %s not processed: %s", event_id, type(error.__cause__).__name__)
        raise
    except NotImplementedError:
        raise
    except Exception:
        logger.exception("webhook %s not processed: the de-duplication store failed", event_id)
        raise DedupeUnavailable() from None


def _release(state: OnboardingState, event_id: str, claim: Claim | None) -> None:
    """Forget ``event_id`` so LiveKit's retry is delivered; a failure only delays that."""
    try:
        state.dedupe.release(event_id, claim)
    except Exception:
        logger.exception("webhook %s could not be released; its claim expires instead", event_id)


def _acknowledge(status: str) -> tuple[Response, int]:
    return jsonify(status=status), 200
