"""Generated hostile requests over every route, against a real livekit-server.

Every answer must be below 500; every non-2xx must have the documented JSON error shape and
``Cache-Control: no-store``; no response or log line may hold the API secret or an issued
token; every issued token must be least privilege and within ``MAX_TOKEN_BYTES``. Seeded and
bounded: the same few hundred requests on every run. A summary of what was sent and seen is
written to ``tests/output/hostile-summary.json``.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import string
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jwt
import pytest
from flask import Flask
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import sign_webhook
from tests.conftest import HostUsers

pytestmark = [
    pytest.mark.integration,
    # live_server forks; Python 3.12+ warns when the test process already runs threads.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
    # A falsifying example may hold a 70 KB string; hypothesis warns before printing it.
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

SUMMARY = Path(__file__).resolve().parents[1] / "output" / "hostile-summary.json"
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FORBIDDEN_GRANTS = ("roomAdmin", "roomList", "roomCreate", "roomRecord", "ingressAdmin")
MAX_TOKEN_BYTES = 6144

#: Requests sent and statuses seen, by route, over the module.
SEEN: Counter[str] = Counter()

# --- what a hostile client sends ---------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\ud83d"])
NASTY = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "line\nbreak",
        "\u202e",
        "../../etc/passwd",
        "%2F",
        "onboarding-",
        "onboarding-" + "x" * 300,
        "Ω" * 257,
        "\U0001f600" * 100,
        "x" * 70_000,
        "null",
        '{"onboarding": {"owner": "user-1"}}',
    ]
)
TEXT = st.one_of(st.text(max_size=40), SURROGATES, NASTY)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
TOKEN_FIELDS = (
    "room_name",
    "participant_identity",
    "participant_name",
    "participant_metadata",
    "participant_attributes",
    "room_config",
)
ROOM_CONFIG = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {},
        optional={
            "agents": st.lists(
                st.dictionaries(
                    st.one_of(
                        st.sampled_from(["agent_name", "metadata", "deployment", "room"]), TEXT
                    ),
                    st.one_of(st.sampled_from(["helper", "nobody"]), TEXT, JSON),
                    max_size=3,
                ),
                max_size=3,
            ),
            "name": TEXT,
            "metadata": TEXT,
            "empty_timeout": SCALARS,
        },
    ),
)
TOKEN_BODY = st.fixed_dictionaries(
    {},
    optional={
        **{field: st.one_of(TEXT, JSON) for field in TOKEN_FIELDS},
        "participant_attributes": st.one_of(st.dictionaries(TEXT, TEXT, max_size=4), JSON),
        "room_config": ROOM_CONFIG,
        "unknown": JSON,
    },
)
CONTEXT_BODY = st.fixed_dictionaries(
    {},
    optional={
        "context": st.one_of(st.dictionaries(TEXT, JSON, max_size=4), JSON),
        "client": st.one_of(st.dictionaries(TEXT, JSON, max_size=4), JSON),
        "mode": st.one_of(st.sampled_from(["merge", "replace"]), TEXT),
        "other": JSON,
    },
)


def deep(depth: int, kind: str) -> str:
    opener, closer = ("[", "]") if kind == "list" else ('{"a":', "}")
    return opener * depth + ("1" if kind == "list" else "1") + closer * depth


RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    st.builds(deep, st.sampled_from([63, 64, 65, 980, 10_000]), st.sampled_from(["list", "obj"])),
    st.builds(lambda d: '{"context": ' + deep(d, "obj") + "}", st.sampled_from([15, 17, 62, 980])),
    st.sampled_from(
        [
            "[" * 100_000,
            '{"room_name": "\\ud800"}',
            '{"context": {"\\udfff": 1}}',
            '{"a": NaN}',
            '{"a": 1e999}',
            "1" * 5000,
            '"just a string"',
            "{",
            "\ufeff{}",
        ]
    ),
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json", "text/plain", "application/x-www-form-urlencoded", ""]
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])


def encode(document: Any) -> bytes:
    # ensure_ascii spells lone surrogates as \ud800 escapes, as a hostile client would.
    return json.dumps(document, ensure_ascii=True).encode()


# --- the app under attack ----------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    SEEN.clear()
    yield
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    requests = sum(v for k, v in SEEN.items() if k.startswith("sent "))
    statuses = {k: v for k, v in sorted(SEEN.items()) if not k.startswith("sent ")}
    SUMMARY.write_text(json.dumps({"requests": requests, "seen": statuses}, indent=2))


@pytest.fixture
def hostile(make_app: Any, users: HostUsers, caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    """A client for an app on the real LiveKit, with a live room of the signed-in user."""
    users.staff.add("user-1")
    app: Flask = make_app(
        LIVEKIT_ONBOARDING_ALLOWED_AGENTS="helper",
        LIVEKIT_ONBOARDING_MAX_BODY_BYTES=256 * 1024,
    )
    client = app.test_client()
    created = client.post("/livekit/token", json={})
    assert created.status_code == 201, created.get_json()
    room = created.get_json()["room_name"]
    tokens: list[str] = [created.get_json()["participant_token"]]
    config = get_state(app).config
    caplog.set_level(logging.DEBUG)

    def send(route: str, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
        content_type = headers.pop("content_type", "application/json")
        response = client.open(
            path, method=method, data=body, content_type=content_type, headers=headers
        )
        check(route, response, config, tokens)
        return response

    send.room = room  # type: ignore[attr-defined]
    send.config = config  # type: ignore[attr-defined]
    yield send
    for record in caplog.records:
        line = record.getMessage()
        assert config.api_secret not in line, line
        assert not any(token in line for token in tokens), line


def check(route: str, response: Any, config: Any, tokens: list[str]) -> None:
    SEEN[f"sent {route}"] += 1
    SEEN[f"{route} {response.status_code}"] += 1
    text = response.get_data(as_text=True)
    assert response.status_code < 500, text[:500]
    assert response.headers.get("Cache-Control") == "no-store"
    assert config.api_secret not in text
    if response.status_code == 201:
        token = response.get_json()["participant_token"]
        assert len(token) <= MAX_TOKEN_BYTES
        claims = jwt.decode(token, config.api_secret, algorithms=["HS256"])
        video = claims["video"]
        assert video["roomJoin"] is True and video["room"] == response.get_json()["room_name"]
        assert not any(video.get(grant) for grant in FORBIDDEN_GRANTS), video
        assert claims["exp"] - claims["nbf"] <= config.token_ttl
        tokens.append(token)
    elif response.status_code >= 300:
        assert response.mimetype == "application/json", text[:300]
        error = response.get_json()["error"]
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error.get("field", ""), str)
        assert not any(token in text for token in tokens)


# --- the suite ---------------------------------------------------------------------------------


@seed(20261124)
@SETTINGS
@given(body=TOKEN_BODY, rejoin=st.booleans())
def test_token_requests(hostile: Any, body: dict[str, Any], rejoin: bool) -> None:
    if rejoin and "room_name" not in body:
        body = {**body, "room_name": hostile.room}
    hostile("token", "POST", "/livekit/token", encode(body))


@seed(20261125)
@SETTINGS
@given(body=CONTEXT_BODY, own_room=st.booleans(), name=TEXT)
def test_context_updates(hostile: Any, body: dict[str, Any], own_room: bool, name: str) -> None:
    room = hostile.room if own_room else quote(name.encode("utf-8", "surrogatepass"), safe="")
    hostile("context", "PATCH", f"/livekit/rooms/{room}/context", encode(body))
    # Whatever was written, the room stays readable.
    hostile("status", "GET", f"/livekit/rooms/{hostile.room}")


@seed(20261126)
@SETTINGS
@given(
    route=st.sampled_from(["/token", "/rooms/ROOM/context", "/webhook"]),
    body=RAW_BODIES,
    content_type=CONTENT_TYPES,
)
def test_raw_bodies(hostile: Any, route: str, body: Any, content_type: str) -> None:
    raw = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    method = "PATCH" if "context" in route else "POST"
    path = "/livekit" + route.replace("ROOM", hostile.room)
    hostile("raw", method, path, raw, content_type=content_type)


SEGMENT = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", max_size=12),
    st.sampled_from(["", "token", "rooms", "context", "webhook", "openapi.json", "%2F", ".."]),
)


@seed(20261127)
@SETTINGS
@given(method=METHODS, segments=st.lists(SEGMENT, max_size=4), trailing=st.booleans())
def test_paths_under_the_prefix(
    hostile: Any, method: str, segments: list[str], trailing: bool
) -> None:
    path = "/livekit/" + "/".join(segments) + ("/" if trailing else "")
    hostile("path", method, path, b"{}")


@seed(20261128)
@SETTINGS
@given(method=METHODS, name=TEXT, suffix=st.sampled_from(["", "/context"]))
def test_room_routes(hostile: Any, method: str, name: str, suffix: str) -> None:
    room = quote(name.encode("utf-8", "surrogatepass"), safe="") or "x"
    hostile("room", method, f"/livekit/rooms/{room}{suffix}", b"")


@seed(20261129)
@SETTINGS
@given(document=JSON, signed=st.sampled_from(["valid", "none", "garbage", "other-secret"]))
def test_webhooks(hostile: Any, document: Any, signed: str) -> None:
    body = (
        encode(document)
        if not isinstance(document, dict)
        else encode({"id": "EV_x", "event": "room_started", "createdAt": "1", **document})
    )
    config = hostile.config
    headers = {
        "valid": {"Authorization": sign_webhook(body, config.api_key, config.api_secret)},
        "none": {},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "other-secret": {"Authorization": sign_webhook(body, config.api_key, "x" * 40)},
    }[signed]
    hostile(
        "webhook",
        "POST",
        "/livekit/webhook",
        body,
        content_type="application/webhook+json",
        **headers,
    )


# --- chunked bodies over the limit, through a real server -------------------------------------


@pytest.fixture
def app(make_app: Any) -> Flask:
    """What ``live_server`` serves: a small body limit, LiveKit creating rooms on join."""
    app: Flask = make_app(
        LIVEKIT_ONBOARDING_MAX_BODY_BYTES=1024, LIVEKIT_ONBOARDING_ROOM_CREATION="on_join"
    )
    return app


def chunked_post(url: str, path: str, chunks: list[bytes]) -> tuple[int, dict[str, Any]]:
    """POST ``chunks`` with ``Transfer-Encoding: chunked`` on a raw socket (no Content-Length)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        sock.settimeout(2)
        try:
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered without reading the rest, as it should
        sock.settimeout(10)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


@pytest.mark.parametrize("total", [1025, 4096, 300_000])
def test_a_chunked_body_over_the_limit_is_a_413_stating_the_limit(
    live_server: Any, total: int
) -> None:
    body = b'{"participant_metadata": "' + b"x" * total + b'"}'
    chunks = [body[i : i + 700] for i in range(0, len(body), 700)]
    status, answer = chunked_post(live_server.url(), "/livekit/token", chunks)
    assert status == 413, answer
    assert answer["error"]["code"] == "request_entity_too_large"
    assert "1024 bytes" in answer["error"]["message"]


def test_a_chunked_body_within_the_limit_is_read_whole(live_server: Any) -> None:
    body = json.dumps({"participant_name": "Ada Lovelace"}).encode()
    status, answer = chunked_post(live_server.url(), "/livekit/token", [body[:5], body[5:]])
    assert status == 201, answer
    assert answer["participant_name"] == "Ada Lovelace"
