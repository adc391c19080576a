"""What each signal is documented to carry is exactly what its receivers get.

Every signal is connected, the flows that send them are driven against the in-memory LiveKit,
and the keyword arguments received are compared with the ``#:`` comments in ``signals.py``
and with the signal tables of the guides.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from blinker import NamedSignal
from flask import Flask
from livekit import api

from flask_livekit_onboarding import Identity, signals
from flask_livekit_onboarding.envelope import Envelope
from flask_livekit_onboarding.invites import INVITE_HEADER
from flask_livekit_onboarding.report_auth import sign_report
from flask_livekit_onboarding.testing import FakeLiveKit, sign_webhook, webhook_body
from tests.conftest import UNIT_CONFIG, HostUsers

from ..docs_code import DOCS

KEY, SECRET = UNIT_CONFIG["LIVEKIT_API_KEY"], UNIT_CONFIG["LIVEKIT_API_SECRET"]
#: What the module docstring of ``signals`` says every webhook signal carries.
WEBHOOK_KEYWORDS = {"event", "event_id", "room_name", "onboarding", "context"}
WEBHOOK_SIGNALS = {
    "webhook_received",
    "room_started",
    "room_finished",
    "participant_joined",
    "participant_left",
    "participant_connection_aborted",
    "track_published",
    "track_unpublished",
    "egress_started",
    "egress_updated",
    "egress_ended",
    "ingress_started",
    "ingress_ended",
}


def _names(text: str) -> set[str]:
    """The ``name``s of ``text``'s first sentence, outside the parentheses describing them."""
    depth, kept = 0, []
    for char in text:
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    sentence = re.split(r"\.(?:\s|$)", "".join(kept))[0]
    return set(re.findall(r"``?([a-z_]+)``?", sentence))


def documented_in_signals_module() -> dict[str, set[str]]:
    """Each signal's keyword arguments as its ``#:`` comment in ``signals.py`` names them."""
    source = inspect.getsource(signals)
    documented: dict[str, set[str]] = {}
    comment: list[str] = []
    previous: set[str] | None = None
    for line in source.splitlines():
        if line.startswith("#:"):
            comment.append(line[2:].strip())
            continue
        match = re.match(r"(\w+) = _signals\.signal\(", line)
        if match:
            name = match.group(1)
            if comment:
                text = " ".join(comment)
                found = re.search(r"(?:Keyword arguments:|Adds)(.*)", text)
                previous = _names(found.group(1)) if found else set()
            # Signals declared under one comment share it (egress_started, _updated, _ended).
            assert previous is not None, name
            base = WEBHOOK_KEYWORDS if name in WEBHOOK_SIGNALS else set()
            documented[name] = base | previous
        comment = []
    return documented


def documented_in_guides() -> dict[str, set[str]]:
    """Each signal's keyword arguments as the signal tables of the guides list them."""
    documented: dict[str, set[str]] = {}
    webhooks = (DOCS / "webhooks.md").read_text()
    table = webhooks[webhooks.index("| signal | LiveKit event |") :].split("\n\n")[0]
    for row in table.splitlines()[2:]:
        names, _, keywords = (cell.strip() for cell in row.strip("|").split(" | "))
        for name in _names(names):
            documented[name] = WEBHOOK_KEYWORDS | _names(keywords)
    reports = (DOCS / "reports.md").read_text()
    table = reports[reports.index("| signal | when | keyword arguments |") :].split("\n\n")[0]
    for row in table.splitlines()[2:]:
        name, _, keywords = (cell.strip() for cell in row.strip("|").split(" | "))
        documented[name.strip("`")] = _names(keywords)
    invites = (DOCS / "invites.md").read_text().split("## Signals", 1)[1].split("\n## ")[0]
    for item in re.split(r"\n- ", "\n" + invites.strip())[1:]:
        name, keywords = item.split(":", 1)
        documented[name.strip("`")] = _names(keywords)
    return documented


class Received:
    """The keyword arguments each signal was sent with, by signal name."""

    def __init__(self) -> None:
        self.keywords: dict[str, list[set[str]]] = {}

    def receiver(self, name: str) -> Any:
        def receive(sender: Any, **kwargs: Any) -> None:
            self.keywords.setdefault(name, []).append(set(kwargs))

        return receive


def _all_signals() -> dict[str, NamedSignal]:
    return {name: value for name, value in vars(signals).items() if isinstance(value, NamedSignal)}


def _webhook(app: Flask, event: str, room: api.Room, **fields: Any) -> None:
    body = webhook_body(event, room=room, **fields)
    answer = app.test_client().post(
        "/livekit/webhook",
        data=body,
        headers={
            "Authorization": sign_webhook(body, KEY, SECRET),
            "Content-Type": "application/webhook+json",
        },
    )
    assert answer.status_code == 200, answer.get_json()


def _report(app: Flask, room: str, session: str, **fields: Any) -> None:
    raw = json.dumps({"session_id": session, **fields}).encode()
    answer = app.test_client().post(
        f"/livekit/rooms/{room}/reports",
        data=raw,
        headers={
            "Authorization": sign_report(KEY, SECRET, room=room, session=session, body=raw),
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code == 201, answer.get_json()


@pytest.fixture
def received(app: Flask, fake: FakeLiveKit, users: HostUsers) -> Iterator[Received]:
    """Every signal of the extension, received while each flow that sends one runs once."""
    seen = Received()
    with ExitStack() as stack:
        for name, signal in _all_signals().items():
            stack.enter_context(signal.connected_to(seen.receiver(name), app))
        client = app.test_client()
        room_name = client.post("/livekit/token", json={}).get_json()["room_name"]
        assert client.post("/livekit/token", json={}).status_code == 201  # resumed
        patched = client.patch(
            f"/livekit/rooms/{room_name}/context", json={"client": {"step": "profile"}}
        )
        assert patched.status_code == 200, patched.get_json()

        created = client.post(f"/livekit/rooms/{room_name}/invites", json={}).get_json()
        owner = users.current
        users.current = Identity("user-2", "Grace Hopper")
        headers = {INVITE_HEADER: created["code"]}
        joined = client.post("/livekit/token", json={"room_name": room_name}, headers=headers)
        assert joined.status_code == 201, joined.get_json()
        users.current = owner
        revoked = client.delete(f"/livekit/rooms/{room_name}/invites/{created['id']}")
        assert revoked.status_code == 204, revoked.get_json()

        room = fake.room.rooms[room_name]
        envelope = Envelope.from_metadata(room.metadata)
        assert envelope is not None
        _report(
            app, room_name, envelope.session_id, id="r1", kind="progress", step="a", state="done"
        )
        _report(app, room_name, envelope.session_id, id="r2", kind="outcome", outcome="completed")

        participant = {"sid": "PA_1", "identity": "user-1", "name": "Ada"}
        track = {"sid": "TR_1", "type": "AUDIO"}
        for event in ("room_started", "participant_joined", "participant_left"):
            _webhook(app, event, room, participant=participant)
        _webhook(app, "participant_connection_aborted", room, participant=participant)
        for event in ("track_published", "track_unpublished"):
            _webhook(app, event, room, participant=participant, track=track)
        for event in ("egress_started", "egress_updated", "egress_ended"):
            _webhook(app, event, room, egressInfo={"egressId": "EG_1", "roomName": room_name})
        for event in ("ingress_started", "ingress_ended"):
            _webhook(app, event, room, ingressInfo={"ingressId": "IN_1", "roomName": room_name})

        assert client.delete(f"/livekit/rooms/{room_name}").status_code == 204
        _webhook(app, "room_finished", room)
    yield seen


def test_every_signal_is_sent_by_some_flow(received: Received) -> None:
    assert set(received.keywords) == set(_all_signals())


def test_each_signal_carries_the_same_keywords_every_time(received: Received) -> None:
    for name, calls in received.keywords.items():
        assert all(call == calls[0] for call in calls), name


def test_the_signals_module_documents_exactly_what_is_sent(received: Received) -> None:
    sent = {name: calls[0] for name, calls in received.keywords.items()}
    assert documented_in_signals_module() == sent


def test_the_guides_document_exactly_what_is_sent(received: Received) -> None:
    sent = {name: calls[0] for name, calls in received.keywords.items()}
    guides = documented_in_guides()
    assert guides == {name: sent[name] for name in guides}
