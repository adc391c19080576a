"""The ``flask livekit`` command group, registered on each app by ``init_app``.

``flask livekit token`` mints a participant token for trying a client by hand,
``flask livekit rooms`` lists the live onboarding rooms, ``flask livekit end ROOM`` closes one,
and ``flask livekit check`` validates the configuration and calls LiveKit with it. Failures
print an actionable message on stderr and exit with status 1; the API secret is never printed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from livekit import api

from . import invites, sessions
from .caller import Caller
from .claims import Squatter, squatter
from .config import OnboardingConfig, load_config
from .dedupe import MemoryDedupe
from .envelope import OnboardingRoom
from .errors import (
    ApiError,
    ConfigurationError,
    LiveKitError,
    LiveKitTimeout,
    LiveKitUnavailable,
    RoomNotFound,
    RoomOccupied,
    ValidationFailed,
)
from .health import check_health
from .hooks import Identity
from .invite_request import MAX_USES, parse_invite_options
from .livekit_limits import MetadataRefused, check_json, check_name
from .roles import INVITE_ROLES
from .rooms import Headcount, headcounts, rooms_under_prefix
from .state import OnboardingState, get_state
from .token_flow import issue_token

livekit_cli = AppGroup("livekit", help="Onboarding sessions on LiveKit.")

#: Most rooms ``flask livekit rooms`` shows unless told otherwise.
ROOMS_LIMIT = 100
#: Longest lifetime, in seconds, of a token minted at the command line: one hour.
MAX_TOKEN_TTL = 3600
#: Default bound, in seconds, on the LiveKit call made by ``flask livekit check``.
CHECK_TIMEOUT = 5.0


@livekit_cli.command("token")
@click.option("--identity", required=True, help="Participant identity the token is for.")
@click.option("--name", help="Participant display name. Default: the identity.")
@click.option(
    "--room",
    "room_name",
    help="Join this live onboarding room. Default: start a new onboarding room.",
)
@click.option(
    "--context",
    "context_json",
    help='Onboarding context of the new room, as a JSON object (e.g. \'{"step": "welcome"}\').',
)
@click.option(
    "--ttl",
    type=click.IntRange(min=1, max=MAX_TOKEN_TTL),
    help=f"Token lifetime in seconds, at most {MAX_TOKEN_TTL}. "
    "Default: LIVEKIT_ONBOARDING_TOKEN_TTL.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the token endpoint's JSON response instead of the bare token.",
)
def token_command(
    identity: str,
    name: str | None,
    room_name: str | None,
    context_json: str | None,
    ttl: int | None,
    as_json: bool,
) -> None:
    """Print a participant token for testing a client.

    Without --room a new onboarding room is started, owned by IDENTITY, exactly as the token
    endpoint does (agent dispatch and room creation mode included). The token alone goes to
    stdout, so ``TOKEN=$(flask livekit token --identity ada)`` works; the room and server URL
    go to stderr.
    """
    _check_name(identity, "--identity")
    if name is not None:
        _check_name(name, "--name")
    if room_name is not None:
        _check_name(room_name, "--room")
    if room_name is not None and context_json is not None:
        raise click.UsageError("--context applies to new rooms only; leave out --room.")
    state = _state(_app())
    participant = Identity(identity=identity, name=name or identity)
    context = _parse_context(context_json, state.config) if room_name is None else None
    with _livekit_errors(state.config):
        try:
            issued = issue_token(
                state,
                Caller.operator(acting_for=participant),
                room_name=room_name,
                context=context,
                ttl=ttl,
            )
        except MetadataRefused as refused:
            message = (refused.description or "").removeprefix("context ")
            raise click.BadParameter(message, param_hint="--context") from None
    if as_json:
        click.echo(json.dumps(issued.response_body(), indent=2))
        return
    click.echo(f"room: {issued.room_name}", err=True)
    click.echo(f"server_url: {issued.server_url}", err=True)
    click.echo(f"expires in: {issued.expires_in}s", err=True)
    click.echo(issued.participant_token)


@livekit_cli.command("rooms")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=ROOMS_LIMIT,
    show_default=True,
    help="Show at most this many rooms, newest first.",
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also list rooms under the onboarding prefix that carry no session of this "
    "deployment (ended-session markers, stale copies, rooms re-created by a late join).",
)
def rooms_command(as_json: bool, limit: int, show_all: bool) -> None:
    """List the live onboarding rooms, newest first: name, owner, users, agents, age, and the
    step and outcome the session's agent reported.

    One ListRooms call reads every live room (LiveKit has no prefix filter); the rooms shown
    are then counted with ListParticipants, which is exact at once and tells agents apart.
    A count LiveKit could not give falls back to its room summary, marked "~" (users only,
    up to about ten seconds late).
    """
    state = _state(_app())
    with _livekit_errors(state.config):
        rooms = sessions.list_sessions(state)[::-1]
        shown = rooms[:limit]
        counts = headcounts(state.livekit, [room.name for room in shown])
        others = _other_rooms(state) if show_all else []
        hidden = 0 if show_all or as_json else _count_other_rooms(state, rooms)
    now = int(time.time())
    if as_json:
        rows = [_room_row(r, counts.get(r.name), now) for r in shown]
        rows += [_other_row(found, now) for found in others]
        click.echo(json.dumps(rows, indent=2))
        return
    _print_sessions(rooms, shown, counts, now)
    if others:
        click.echo("")
        click.echo("Rooms under the onboarding prefix without a session of this deployment:")
        for found in others:
            row = _other_row(found, now)
            click.echo(
                f"{_printable(row['room_name'])}  {row['kind']}  users={row['users']}  "
                f"agents={row['agents']}  age={_age(row['age_seconds'])}"
            )
        click.echo("End one with: flask livekit end --force ROOM")
    if hidden:
        click.echo(
            f"{hidden} other room(s) under the onboarding prefix carry no session of this "
            "deployment: see flask livekit rooms --all."
        )


def _count_other_rooms(state: OnboardingState, sessions_live: list[OnboardingRoom]) -> int:
    live = rooms_under_prefix(state.livekit, state.config.binding.prefix)
    return len(live) - len({room.name for room in sessions_live} & {r.name for r in live})


def _other_rooms(state: OnboardingState) -> list[Squatter]:
    found = (
        squatter(state, room)
        for room in rooms_under_prefix(state.livekit, state.config.binding.prefix)
    )
    return [item for item in found if item is not None]


def _other_row(found: Squatter, now: int) -> dict[str, Any]:
    return {
        "room_name": found.room.name,
        "kind": found.kind,
        "what": found.describe(),
        "users": len(found.people),
        "agents": found.agents,
        "age_seconds": max(0, now - int(found.room.creation_time)),
    }


def _print_sessions(
    rooms: list[OnboardingRoom],
    shown: list[OnboardingRoom],
    counts: dict[str, Headcount | None],
    now: int,
) -> None:
    if not rooms:
        click.echo("No onboarding rooms are live.")
        return
    rows = [("ROOM", "OWNER", "USERS", "AGENTS", "AGE", "STEP", "OUTCOME")]
    for room in shown:
        count = counts.get(room.name)
        users = str(count.users) if count else f"~{room.num_participants}"
        agents = str(count.agents) if count else "?"
        age = _age(now - room.created_at)
        step, outcome = (_printable(value or "-") for value in _progress(room))
        rows.append(
            (_printable(room.name), _printable(room.owner), users, agents, age, step, outcome)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(6)]
        click.echo("  ".join([*cells, row[6]]))
    if len(rooms) > len(shown):
        click.echo(f"{len(rooms) - len(shown)} more not shown (--limit).")


@livekit_cli.command("end")
@click.argument("room_name")
@click.option(
    "--force",
    is_flag=True,
    help="Also close a room under the onboarding prefix that carries no session of this "
    "deployment (see `flask livekit rooms --all`).",
)
def end_command(room_name: str, force: bool) -> None:
    """End the onboarding session in ROOM_NAME: cancel its agent dispatches, close the room
    and disconnect everyone."""
    state = _state(_app())
    with _livekit_errors(state.config):
        try:
            room = sessions.end_session(state, Caller.operator(), room_name, force=force)
        except RoomOccupied as error:
            raise click.ClickException(error.description or "") from None
    click.echo(f"Ended {room.name}: the room is closed and everyone in it disconnected.")


@livekit_cli.command("invite")
@click.argument("room_name")
@click.option(
    "--role",
    type=click.Choice(INVITE_ROLES),
    default="participant",
    show_default=True,
    help="What the invitee may do: participant (talk) or viewer (watch and chat).",
)
@click.option(
    "--ttl",
    type=click.IntRange(min=1),
    help="Lifetime in seconds. Default: LIVEKIT_ONBOARDING_INVITE_TTL.",
)
@click.option(
    "--uses",
    type=click.IntRange(min=1, max=MAX_USES),
    default=1,
    show_default=True,
    help="How many people it may admit.",
)
@click.option("--label", default="", help="A name for the invite (a guest's display name).")
@click.option("--guests", is_flag=True, help="Let somebody who is not signed in join as a guest.")
@click.option("--json", "as_json", is_flag=True, help="Print the invite as JSON.")
def invite_command(
    room_name: str,
    role: str,
    ttl: int | None,
    uses: int,
    label: str,
    guests: bool,
    as_json: bool,
) -> None:
    """Invite somebody into the live session in ROOM_NAME and print the invite's code.

    The code alone goes to stdout, so ``CODE=$(flask livekit invite ROOM)`` works; its id,
    expiry and link go to stderr. The code is shown only now.
    """
    state = _state(_app())
    with _livekit_errors(state.config):
        try:
            options = {"role": role, "ttl": ttl, "max_uses": uses, "label": label, "guests": guests}
            checked = parse_invite_options(options, state.config.invite_max_ttl)
            created = invites.create_invite(state, Caller.operator(), room_name, checked)
        except (RoomNotFound, LiveKitError, LiveKitUnavailable, LiveKitTimeout):
            raise
        except ApiError as error:
            raise click.ClickException(error.description or "The invite was refused.") from None
    if as_json:
        click.echo(json.dumps(created.response_body(), indent=2))
        return
    click.echo(f"invite: {created.invite.id} ({created.invite.role})", err=True)
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created.invite.expires_at))
    click.echo(f"expires: {expires}", err=True)
    if created.link:
        click.echo(f"link: {created.link}", err=True)
    click.echo(created.code)


@livekit_cli.command("check")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=CHECK_TIMEOUT,
    show_default=True,
    help="Seconds to wait for LiveKit.",
)
def check_command(timeout: float) -> None:
    """Validate the configuration and reach LiveKit with the credentials."""
    app = _app()
    try:
        config = load_config(app.config)
    except ConfigurationError as error:
        raise click.ClickException(f"Configuration is invalid: {error}") from None
    state = _state(app)
    health = check_health(
        state, timeout, probe=lambda lk: lk.room.list_rooms(api.ListRoomsRequest())
    )
    with _livekit_errors(config, timeout):
        livekit = health.checks["livekit"]
        if not livekit.ok:
            raise livekit.result
    response = livekit.result
    onboarding = [r for r in response.rooms if config.binding.read(r) is not None]
    click.echo(
        f"LiveKit at {config.url} accepted API key {config.api_key!r} "
        f"(answered in {livekit.latency_ms:.0f} ms)."
    )
    if config.public_url != config.url:
        click.echo(f"Clients are sent to {config.public_url}.")
    click.echo(f"{len(response.rooms)} room(s) live, {len(onboarding)} of them onboarding rooms.")
    _report_dedupe(state)
    redis = health.checks.get("redis")
    if redis is not None and not redis.ok:
        raise click.ClickException(f"Cannot reach Redis: {redis.error}")
    if redis is not None:
        click.echo(f"Redis answered in {redis.latency_ms:.0f} ms.")


def _report_dedupe(state: OnboardingState) -> None:
    """Say which webhook de-duplication store is in use, and warn when it is per process."""
    if isinstance(state.dedupe, MemoryDedupe):
        click.echo(
            "Webhook de-duplication: in-process (MemoryDedupe). Warning: every worker process "
            "keeps its own, so with several processes or hosts each one emits every webhook; "
            "set LIVEKIT_ONBOARDING_REDIS_URL to share it.",
            err=True,
        )
        return
    where = _redacted(state.config.redis_url) if state.config.redis_url else "custom"
    click.echo(f"Webhook de-duplication: shared ({type(state.dedupe).__name__}, {where}).")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{host}{port}"))


@contextmanager
def _livekit_errors(config: OnboardingConfig, timeout: float | None = None) -> Iterator[None]:
    """Turn LiveKit failures into one-line messages saying what to look at."""
    where = f"LiveKit at {config.url}"
    try:
        yield
    except RoomNotFound as error:
        raise click.ClickException(error.description or "No such onboarding room.") from None
    except LiveKitUnavailable:
        raise click.ClickException(
            f"Cannot reach {where}: is livekit-server running there, and is LIVEKIT_URL right?"
        ) from None
    except LiveKitTimeout:
        bound = timeout if timeout is not None else config.request_timeout
        raise click.ClickException(
            f"{where} did not answer within {bound:g}s: is LIVEKIT_URL a LiveKit server?"
        ) from None
    except LiveKitError as error:
        raise click.ClickException(f"{error.description} ({where})") from None


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined, no-any-return]


def _state(app: Flask) -> OnboardingState:
    try:
        return get_state(app)
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None


def _check_name(value: str, option: str) -> None:
    """The token endpoint's rules for names: not blank, no control characters, 256 bytes."""
    try:
        check_name(value, option)
    except ValidationFailed as error:
        message = str(error.description).removeprefix(option).strip()
        raise click.BadParameter(message, param_hint=option) from None


def _parse_context(raw: str | None, config: OnboardingConfig) -> dict[str, Any]:
    """The ``--context`` object, held to the limits the token endpoint applies."""
    if raw is None:
        return {}
    try:
        context = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise click.BadParameter(f"not valid JSON: {error}", param_hint="--context") from None
    if not isinstance(context, dict):
        raise click.BadParameter("must be a JSON object.", param_hint="--context")
    try:
        check_json(context, "context", config.max_context_depth)
    except ValidationFailed as error:
        raise click.BadParameter(error.description or "", param_hint="--context") from None
    return context


def _room_row(room: OnboardingRoom, count: Headcount | None, now: int) -> dict[str, Any]:
    return {
        "room_name": room.name,
        "owner": room.owner,
        "session_id": room.session_id,
        "users": count.users if count else None,
        "agents": count.agents if count else None,
        "num_participants": room.num_participants,
        "created_at": room.created_at,
        "age_seconds": max(0, now - room.created_at),
        "step": _progress(room)[0],
        "outcome": _progress(room)[1],
    }


def _progress(room: OnboardingRoom) -> tuple[str | None, str | None]:
    """The step the session's agent last reported, and the outcome it reported, if any."""
    step = room.reports.get("current")
    outcome = room.reports.get("outcome")
    reported = outcome.get("outcome") if isinstance(outcome, dict) else None
    return (
        step if isinstance(step, str) else None,
        reported if isinstance(reported, str) else None,
    )


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so no value can forge rows or move the cursor."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _age(seconds: int) -> str:
    """A short human age: ``42s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    seconds = max(0, seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
