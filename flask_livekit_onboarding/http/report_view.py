"""``POST {prefix}/rooms/<room_name>/reports``: a session's agent reports back to the host."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request

from ..dedupe import Claim
from ..errors import (
    DedupeUnavailable,
    Forbidden,
    ReportNotDelivered,
    Unauthorized,
    UnsupportedMediaType,
)
from ..report_auth import ReportCredentialError, verify_report
from ..reports import Report, announce_report, parse_report, record_report
from ..state import OnboardingState, get_state
from .bodies import read_body
from .tracing import room_span

logger = logging.getLogger(__name__)

#: Prefix of report ids in the de-duplication store, apart from webhook event ids.
DEDUPE_PREFIX = "report:"


@room_span("onboarding.report")
def receive_report(room_name: str) -> tuple[Response, int]:
    """Verify, record and announce one report; its id makes a retry harmless.

    The credential (``Authorization: Bearer <jwt>``) is signed with the deployment's API key
    and secret, meant for reports, bound to the exact body, this room and the report's
    session: 401 when it is missing, forged, expired, of another kind or for another body,
    403 when it is for another room or session. 201 ``{"status": "accepted", "reports"}``
    once the report is recorded and its signals were sent; 200 ``{"status": "duplicate"}``
    for an id already delivered; 503 with ``Retry-After`` when a required receiver failed.
    """
    state = get_state()
    body = read_body()
    try:
        claims = verify_report(
            state.config.api_key,
            state.config.api_secret,
            request.headers.get("Authorization"),
            body,
        )
    except ReportCredentialError as error:
        logger.warning("report for %r refused: %s", room_name, error)
        raise Unauthorized(str(error)) from None
    if claims.room != room_name:
        raise Forbidden("The report credential is for another room.")
    if not request.is_json:
        raise UnsupportedMediaType("Send the report as application/json.")
    report = parse_report(body)
    if report.session_id != claims.session:
        raise Forbidden("The report credential is for another session.", field="session_id")
    app = state.app
    return _deliver(app, state, room_name, report)


def _deliver(
    app: Flask, state: OnboardingState, room_name: str, report: Report
) -> tuple[Response, int]:
    """Hold the report id while recording and announcing; mark it done once all ran."""
    config = state.config
    key = f"{DEDUPE_PREFIX}{room_name}:{report.session_id}:{report.id}"
    claim = _claim(state, key)
    if claim.state == "done":
        logger.info("report %s for %r is a duplicate; ignored", report.id, room_name)
        return jsonify(status="duplicate", report_id=report.id), 200
    if claim.state == "busy":
        raise ReportNotDelivered(
            "This report is being delivered by another request; retry later.",
            retry_after=claim.retry_after,
        )
    try:
        recorded = record_report(state, room_name, report)
        failed = announce_report(app, recorded)
    except Exception:
        _release(state, key, claim)
        raise
    if failed:
        _release(state, key, claim)
        logger.warning(
            "report %s for %r: %d required receiver(s) failed", report.id, room_name, len(failed)
        )
        raise ReportNotDelivered(
            "A required receiver failed; send the report again.", retry_after=1
        )
    try:
        state.dedupe.complete(key, config.webhook_dedupe_window, claim)
    except Exception:
        logger.exception("report %s delivered but could not be recorded as done", report.id)
    return jsonify(status="accepted", report_id=report.id, reports=dict(recorded.reports)), 201


def _claim(state: OnboardingState, key: str) -> Claim:
    config = state.config
    try:
        return state.dedupe.claim(key, config.webhook_dedupe_window, config.webhook_claim_ttl)
    except DedupeUnavailable:
        raise
    except Exception:
        logger.exception("report not processed: the de-duplication store failed")
        raise DedupeUnavailable() from None


def _release(state: OnboardingState, key: str, claim: Claim) -> None:
    try:
        state.dedupe.release(key, claim)
    except Exception:
        logger.exception("report claim could not be released; it expires instead")
