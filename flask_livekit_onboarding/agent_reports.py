"""The agent's side of reports: tell the host app how the onboarding session is going.

An agent worker holds the deployment's LiveKit API key and secret already; :class:`Reporter`
signs each report with them (see :mod:`.report_auth`) and posts it to the host's
``{prefix}/rooms/<room_name>/reports``. No Flask import: this runs in the agent process::

    reporter = Reporter.from_job(ctx)            # after ctx.connect()
    reporter.report_progress("invite-team", "started")
    reporter.report_outcome("completed", summary="All five steps done")
    reporter.report_note({"asked_about": "pricing"})
    await reporter.aclose()                      # waits for what is still on its way

Each call returns at once with an :class:`asyncio.Task` (True once the host has the report);
the conversation never waits for the host. Reports go out one at a time, in call order, and a
report the host could not take (network error, 5xx, 429) is sent again with bounded
exponential backoff under the same id, so the host records it once. What finally could not be
delivered is logged, never the credential.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from .envelope import Envelope
from .report_auth import sign_report

logger = logging.getLogger(__name__)

#: The environment variable naming the host app's URL with the extension's prefix, e.g.
#: ``https://app.example.com/livekit``.
HOST_URL_ENV = "LIVEKIT_ONBOARDING_HOST_URL"
#: Statuses after which a report is sent again; any other 4xx is final.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class JobLike(Protocol):
    """What :meth:`Reporter.from_job` reads of a livekit-agents ``JobContext``."""

    @property
    def room(self) -> Any: ...

    @property
    def job(self) -> Any: ...


class Reporter:
    """Sends one session's reports to the host app, in order, retrying what failed."""

    def __init__(
        self,
        host_url: str,
        room_name: str,
        session_id: str,
        *,
        api_key: str,
        api_secret: str,
        attempts: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        timeout: float = 10.0,
    ) -> None:
        self.url = f"{host_url.rstrip('/')}/rooms/{quote(room_name, safe='')}/reports"
        self.room_name = room_name
        self.session_id = session_id
        self.attempts = max(attempts, 1)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self._credentials = (api_key, api_secret)
        self._order = asyncio.Lock()
        self._pending: set[asyncio.Task[bool]] = set()
        self._http: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<Reporter {self.url} session={self.session_id}>"

    @classmethod
    def from_job(
        cls,
        ctx: JobLike,
        host_url: str | None = None,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        **options: Any,
    ) -> Reporter:
        """The reporter of a job's onboarding session; credentials from ``LIVEKIT_API_KEY`` and
        ``LIVEKIT_API_SECRET``, the host from :data:`HOST_URL_ENV` unless given.

        Raises ``ValueError`` when the room holds no onboarding envelope or something is unset.
        """
        envelope = Envelope.from_metadata(getattr(ctx.room, "metadata", None))
        envelope = envelope or Envelope.from_metadata(ctx.job.metadata)
        if envelope is None or not envelope.session_id:
            raise ValueError("this job's room is not an onboarding room")
        host_url = host_url or os.environ.get(HOST_URL_ENV)
        api_key = api_key or os.environ.get("LIVEKIT_API_KEY")
        api_secret = api_secret or os.environ.get("LIVEKIT_API_SECRET")
        if not host_url or not api_key or not api_secret:
            raise ValueError(f"set {HOST_URL_ENV}, LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
        room_name = getattr(ctx.room, "name", "") or ctx.job.room.name
        return cls(
            host_url,
            room_name,
            envelope.session_id,
            api_key=api_key,
            api_secret=api_secret,
            **options,
        )

    def report_progress(self, step: str, state: str = "started") -> asyncio.Task[bool]:
        """Step ``step`` was ``started``, is ``done`` or was ``skipped``."""
        return self._send({"kind": "progress", "step": step, "state": state})

    def report_outcome(
        self, outcome: str, summary: str | None = None, data: Mapping[str, Any] | None = None
    ) -> asyncio.Task[bool]:
        """How the session ended: ``completed``, ``abandoned`` or ``handed_off``; once."""
        report: dict[str, Any] = {"kind": "outcome", "outcome": outcome, "data": dict(data or {})}
        if summary is not None:
            report["summary"] = summary
        return self._send(report)

    def report_note(self, data: Mapping[str, Any]) -> asyncio.Task[bool]:
        """Free JSON for the host; announced to it, not stored in the room."""
        return self._send({"kind": "note", "data": dict(data)})

    async def aclose(self, timeout: float | None = None) -> None:
        """Wait (at most ``timeout`` seconds) for the reports on their way, then close."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _send(self, report: dict[str, Any]) -> asyncio.Task[bool]:
        report_id = secrets.token_urlsafe(12)
        document = {"id": report_id, "session_id": self.session_id, **report}
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        task = asyncio.ensure_future(self._deliver(report_id, report["kind"], body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _deliver(self, report_id: str, kind: str, body: bytes) -> bool:
        async with self._order:
            problem = ""
            for attempt in range(self.attempts):
                if attempt:
                    await asyncio.sleep(self._delay(attempt, problem))
                try:
                    status, answer = await self._post(body)
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                    problem = f"{type(error).__name__}"
                    continue
                if status < 300:
                    return True
                problem = f"HTTP {status} {answer}"
                if status not in RETRY_STATUSES:
                    break
            logger.error(
                "%s report %s for room %r not delivered: %s",
                kind,
                report_id,
                self.room_name,
                problem,
            )
            return False

    async def _post(self, body: bytes) -> tuple[int, str]:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        api_key, api_secret = self._credentials
        authorization = sign_report(
            api_key, api_secret, room=self.room_name, session=self.session_id, body=body
        )
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        async with self._http.post(self.url, data=body, headers=headers) as response:
            text = await response.text()
            self._retry_after = response.headers.get("Retry-After")
            return response.status, _error_text(text)

    _retry_after: str | None = None

    def _delay(self, attempt: int, problem: str) -> float:
        """Exponential backoff with jitter, or the host's ``Retry-After``; never over the cap."""
        hinted = self._retry_after
        if problem.startswith("HTTP") and hinted and hinted.isdigit():
            return min(float(hinted), self.max_backoff)
        base = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        return float(base / 2 + random.uniform(0, base / 2))


def _error_text(text: str) -> str:
    """The code and message of the extension's JSON error, for the log line."""
    try:
        error = json.loads(text).get("error", {})
        return f"{error.get('code')}: {error.get('message')}"
    except (ValueError, AttributeError):
        return text[:200]
