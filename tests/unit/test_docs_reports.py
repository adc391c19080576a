"""The Flask-SQLAlchemy recipe of docs/reports.md, run as written against a real SQLite file."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding import signals
from flask_livekit_onboarding.envelope import Envelope
from flask_livekit_onboarding.report_auth import sign_report
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit, sign_webhook, webhook_body
from tests.conftest import UNIT_CONFIG

DOC = Path(__file__).resolve().parents[2] / "docs" / "reports.md"
KEY, SECRET = UNIT_CONFIG["LIVEKIT_API_KEY"], UNIT_CONFIG["LIVEKIT_API_SECRET"]
ROOM = "onboarding-recipe"


def section_code(heading: str) -> str:
    """The first ``python`` block under ``heading`` in the reports page."""
    text = DOC.read_text()
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, f"no python block under {heading!r}"
    return match.group(1)


@pytest.fixture
def recipe() -> Iterator[dict[str, Any]]:
    """The recipe's module namespace; its receiver is disconnected afterwards."""
    namespace: dict[str, Any] = {"__name__": "recipe"}
    exec(
        compile(section_code("### Storing summaries with Flask-SQLAlchemy"), str(DOC), "exec"),
        namespace,
    )
    yield namespace
    signals.session_summarized.disconnect(namespace["store_summary"])


def test_the_recipe_stores_one_row_per_session_in_a_real_database(
    make_app: Any, recipe: dict[str, Any], tmp_path: Path
) -> None:
    database = tmp_path / "onboarding.db"
    app: Flask = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}")
    db = recipe["db"]
    db.init_app(app)
    with app.app_context():
        db.create_all()
    fake = get_state(app).livekit
    assert isinstance(fake, FakeLiveKit)
    fake.add_room(ROOM, context={"plan": "pro"}, participants=[("user-1", "Ada", 0)])
    room = fake.room.rooms[ROOM]
    envelope = Envelope.from_metadata(room.metadata)
    assert envelope is not None
    outcome = json.dumps(
        {"id": "o-1", "session_id": envelope.session_id, "kind": "outcome", "outcome": "completed"}
    ).encode()
    reported = app.test_client().post(
        f"/livekit/rooms/{ROOM}/reports",
        data=outcome,
        headers={
            "Authorization": sign_report(
                KEY, SECRET, room=ROOM, session=envelope.session_id, body=outcome
            ),
            "Content-Type": "application/json",
        },
    )
    assert reported.status_code == 201
    room = fake.room.rooms[ROOM]

    assert app.test_client().delete(f"/livekit/rooms/{ROOM}").status_code == 204
    finished = webhook_body(
        "room_finished", room=api.Room(name=ROOM, sid=room.sid, metadata=room.metadata)
    )
    webhook = app.test_client().post(
        "/livekit/webhook",
        data=finished,
        headers={"Authorization": sign_webhook(finished, KEY, SECRET)},
    )
    assert webhook.status_code == 200

    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT session_id, owner, outcome, duration, summary FROM onboarding_session"
        ).fetchall()
    assert len(rows) == 1
    session_id, owner, stored_outcome, duration, summary = rows[0]
    assert (session_id, owner, stored_outcome) == (envelope.session_id, "user-1", "completed")
    assert duration >= 0
    assert json.loads(summary)["users"] == ["user-1"]
