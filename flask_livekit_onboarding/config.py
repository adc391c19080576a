"""Configuration keys, their defaults, and validation of ``app.config``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError

#: Where the blueprint is mounted by :meth:`LiveKitOnboarding.init_app`.
URL_PREFIX = "/livekit"
#: ``eager`` creates the room through RoomService before signing; ``on_join`` puts the room
#: configuration in the token and lets LiveKit create the room on first join.
ROOM_CREATION = "eager"
#: Prefix of generated room names; the rest is an unguessable random id.
ROOM_PREFIX = "onboarding-"
#: Lifetime of a participant token, in seconds. Short: it only has to last until the join.
TOKEN_TTL = 900
#: Upper bound, in seconds, on every call to the LiveKit server API.
REQUEST_TIMEOUT = 5.0
#: Seconds an onboarding room stays open with nobody in it before LiveKit closes it.
EMPTY_TIMEOUT = 300
#: Seconds a room stays open after the last participant left.
DEPARTURE_TIMEOUT = 20
#: Maximum participants in an onboarding room; 0 means no limit.
MAX_PARTICIPANTS = 0
#: Agent dispatched into every new onboarding room, or None for no agent.
AGENT_NAME: str | None = None
#: Further agent names a client may ask for in ``room_config.agents``.
ALLOWED_AGENTS: tuple[str, ...] = ()
#: Let clients choose their ``participant_identity``. Off: the identity hook decides.
ALLOW_CLIENT_IDENTITY = False
#: Demo mode: with no identity hook, give every caller a random guest identity.
ALLOW_ANONYMOUS = False
#: Largest request body accepted by the blueprint, in bytes.
MAX_BODY_BYTES = 256 * 1024
#: Webhooks whose ``created_at`` is older than this many seconds are dropped.
WEBHOOK_MAX_AGE = 300
#: Seconds an event id is remembered to drop LiveKit's retries and duplicates.
WEBHOOK_DEDUPE_WINDOW = 900
#: Redis URL for webhook de-duplication shared by several workers; None keeps it in process.
REDIS_URL: str | None = None

_PREFIX = "LIVEKIT_ONBOARDING_"
DEFAULTS: dict[str, Any] = {
    "LIVEKIT_PUBLIC_URL": None,
    _PREFIX + "URL_PREFIX": URL_PREFIX,
    _PREFIX + "ROOM_CREATION": ROOM_CREATION,
    _PREFIX + "ROOM_PREFIX": ROOM_PREFIX,
    _PREFIX + "TOKEN_TTL": TOKEN_TTL,
    _PREFIX + "REQUEST_TIMEOUT": REQUEST_TIMEOUT,
    _PREFIX + "EMPTY_TIMEOUT": EMPTY_TIMEOUT,
    _PREFIX + "DEPARTURE_TIMEOUT": DEPARTURE_TIMEOUT,
    _PREFIX + "MAX_PARTICIPANTS": MAX_PARTICIPANTS,
    _PREFIX + "AGENT_NAME": AGENT_NAME,
    _PREFIX + "ALLOWED_AGENTS": ALLOWED_AGENTS,
    _PREFIX + "ALLOW_CLIENT_IDENTITY": ALLOW_CLIENT_IDENTITY,
    _PREFIX + "ALLOW_ANONYMOUS": ALLOW_ANONYMOUS,
    _PREFIX + "MAX_BODY_BYTES": MAX_BODY_BYTES,
    _PREFIX + "WEBHOOK_MAX_AGE": WEBHOOK_MAX_AGE,
    _PREFIX + "WEBHOOK_DEDUPE_WINDOW": WEBHOOK_DEDUPE_WINDOW,
    _PREFIX + "REDIS_URL": REDIS_URL,
}
REQUIRED = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
ROOM_CREATION_MODES = ("eager", "on_join")
#: LiveKit's limits on names and on metadata/attributes, checked before anything is signed.
MAX_NAME_LENGTH = 256
MAX_METADATA_BYTES = 64 * 1024


@dataclass(frozen=True)
class OnboardingConfig:
    """The validated configuration of one app."""

    url: str
    api_key: str
    api_secret: str
    public_url: str
    url_prefix: str
    room_creation: str
    room_prefix: str
    token_ttl: int
    request_timeout: float
    empty_timeout: int
    departure_timeout: int
    max_participants: int
    agent_name: str | None
    allowed_agents: frozenset[str]
    allow_client_identity: bool
    allow_anonymous: bool
    max_body_bytes: int
    webhook_max_age: int
    webhook_dedupe_window: int
    redis_url: str | None

    def __repr__(self) -> str:
        return (
            f"OnboardingConfig(url={self.url!r}, api_key={self.api_key!r}, api_secret='***', "
            f"room_creation={self.room_creation!r}, url_prefix={self.url_prefix!r})"
        )

    @property
    def agent_names(self) -> frozenset[str]:
        """Every agent name a room of this app may have dispatched into it."""
        default = {self.agent_name} if self.agent_name else set()
        return self.allowed_agents | default


def load_config(config: Mapping[str, Any]) -> OnboardingConfig:
    """Validate the keys of ``app.config`` this extension reads; raise naming the bad key."""
    for key in REQUIRED:
        if not _text(config.get(key)):
            raise ConfigurationError(
                f"{key} is not set: add it to app.config (or the environment loaded into it)"
            )
    url = _livekit_url("LIVEKIT_URL", config["LIVEKIT_URL"])
    public = config.get("LIVEKIT_PUBLIC_URL")
    mode = config[_PREFIX + "ROOM_CREATION"]
    if mode not in ROOM_CREATION_MODES:
        raise ConfigurationError(
            f"{_PREFIX}ROOM_CREATION must be one of {', '.join(ROOM_CREATION_MODES)}, got {mode!r}"
        )
    prefix = config[_PREFIX + "URL_PREFIX"]
    if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
        raise ConfigurationError(f"{_PREFIX}URL_PREFIX must be a path starting with '/'")
    room_prefix = config[_PREFIX + "ROOM_PREFIX"]
    if not isinstance(room_prefix, str) or len(room_prefix) > 64:
        raise ConfigurationError(f"{_PREFIX}ROOM_PREFIX must be a string of at most 64 characters")
    if _number(config, "WEBHOOK_DEDUPE_WINDOW", int, minimum=1) < _number(
        config, "WEBHOOK_MAX_AGE", int, minimum=1
    ):
        # A shorter window would forget an event id while a replay of it is still fresh.
        raise ConfigurationError(
            f"{_PREFIX}WEBHOOK_DEDUPE_WINDOW must be at least {_PREFIX}WEBHOOK_MAX_AGE"
        )
    agents = config[_PREFIX + "ALLOWED_AGENTS"]
    if isinstance(agents, str):
        agents = [a.strip() for a in agents.split(",") if a.strip()]
    return OnboardingConfig(
        url=url,
        api_key=str(config["LIVEKIT_API_KEY"]),
        api_secret=str(config["LIVEKIT_API_SECRET"]),
        public_url=_livekit_url("LIVEKIT_PUBLIC_URL", public) if _text(public) else url,
        url_prefix=prefix.rstrip("/"),
        room_creation=mode,
        room_prefix=room_prefix,
        token_ttl=_number(config, "TOKEN_TTL", int, minimum=1),
        request_timeout=_number(config, "REQUEST_TIMEOUT", float, minimum=0.001),
        empty_timeout=_number(config, "EMPTY_TIMEOUT", int, minimum=0),
        departure_timeout=_number(config, "DEPARTURE_TIMEOUT", int, minimum=0),
        max_participants=_number(config, "MAX_PARTICIPANTS", int, minimum=0),
        agent_name=_text(config[_PREFIX + "AGENT_NAME"]) or None,
        allowed_agents=frozenset(str(a) for a in agents),
        allow_client_identity=_flag(config, "ALLOW_CLIENT_IDENTITY"),
        allow_anonymous=_flag(config, "ALLOW_ANONYMOUS"),
        max_body_bytes=_number(config, "MAX_BODY_BYTES", int, minimum=1),
        webhook_max_age=_number(config, "WEBHOOK_MAX_AGE", int, minimum=1),
        webhook_dedupe_window=_number(config, "WEBHOOK_DEDUPE_WINDOW", int, minimum=1),
        redis_url=_text(config[_PREFIX + "REDIS_URL"]) or None,
    )


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _livekit_url(key: str, value: Any) -> str:
    """Accept ws(s):// or http(s):// and hand clients the WebSocket form."""
    parts = urlsplit(_text(value))
    schemes = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigurationError(f"{key} must be a ws://, wss://, http:// or https:// URL")
    return urlunsplit(parts._replace(scheme=schemes[parts.scheme])).rstrip("/")


def _number(config: Mapping[str, Any], name: str, kind: type, *, minimum: float) -> Any:
    key = _PREFIX + name
    raw = config[key]
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{key} must be at least {minimum}, got {value!r}")
    return value


def _flag(config: Mapping[str, Any], name: str) -> bool:
    raw = config[_PREFIX + name]
    if isinstance(raw, str):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return bool(raw)
