"""``POST {prefix}/webhook``: verified LiveKit webhooks turned into signals, at most once each."""

from __future__ import annotations

import logging
import time

from flask import Response, current_app, jsonify, request

from ..errors import DedupeUnavailable
from ..state import get_state
from ..webhooks import announce, verify_webhook
from .bodies import read_body

logger = logging.getLogger(__name__)


def receive_webhook() -> tuple[Response, int]:
    """Verify a LiveKit webhook and emit the matching signals once.

    401 for a missing, forged or expired signature or a tampered body; 400 for a signed body
    that is not an event; 503 when the shared de-duplication store is down (LiveKit retries).
    Events older than ``LIVEKIT_ONBOARDING_WEBHOOK_MAX_AGE`` and repeats of an event id within
    ``LIVEKIT_ONBOARDING_WEBHOOK_DEDUPE_WINDOW`` are acknowledged with 200 and emit nothing.

    Signals are sent synchronously, before the answer: receivers are expected to be quick (hand
    slow work to a task queue), and one that raises is logged without failing the webhook.
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
        first = state.dedupe.first_time(event.id, config.webhook_dedupe_window)
    except DedupeUnavailable as error:
        logger.warning("webhook %s not processed: %s", event.id, type(error.__cause__).__name__)
        raise
    except Exception:
        logger.exception("webhook %s not processed: the de-duplication store failed", event.id)
        raise DedupeUnavailable() from None
    if not first:
        logger.info("webhook %s (%s) is a duplicate; ignored", event.id, event.event)
        return _acknowledge("duplicate")
    logger.debug("webhook %s (%s) accepted", event.id, event.event)
    announce(current_app._get_current_object(), event)  # type: ignore[attr-defined]
    return _acknowledge("accepted")


def _acknowledge(status: str) -> tuple[Response, int]:
    return jsonify(status=status), 200
