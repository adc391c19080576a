"""Configuration keys, their defaults, and validation of ``app.config``."""

from __future__ import annotations

import datetime
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .envelope import MAX_READ_DEPTH, RoomBinding
from .errors import ConfigurationError

#: Where the blueprint is mounted by :meth:`LiveKitOnboarding.init_app`.
URL_PREFIX = "/livekit"
#: ``eager`` creates the room through RoomService before signing; ``on_join`` puts the room
#: configuration in the token and lets LiveKit create the room on first join.
ROOM_CREATION = "eager"
#: Prefix of generated room names; the rest is an unguessable random id.
ROOM_PREFIX = "onboarding-"
#: Lifetime of a participant token, in seconds. Short: it only has to cover the join, since
#: LiveKit refreshes the token of a connected participant itself.
TOKEN_TTL = 60
#: ``resume``: a user with a live onboarding room gets a token for it (one room per user);
#: ``new``: every request without ``room_name`` starts a new room.
SESSION_POLICY = "resume"
#: Key binding rooms to this deployment (signed envelopes, per-user room names). None derives
#: one from the API secret; set one per deployment when several share a LiveKit project.
SIGNING_KEY: str | None = None
#: Signing keys of a rotation, still accepted (never used to sign) until
#: ``PREVIOUS_SIGNING_KEYS_UNTIL``; ``default`` names the key derived from the API secret.
PREVIOUS_SIGNING_KEYS: tuple[str, ...] = ()
#: When the previous signing keys stop counting: unix seconds or an ISO 8601 date and time.
PREVIOUS_SIGNING_KEYS_UNTIL: float | str | None = None
#: Upper bound, in seconds, on every call to the LiveKit server API.
REQUEST_TIMEOUT = 5.0
#: Seconds an onboarding room that nobody has joined yet stays open (an agent in it does not
#: count), so a token that is never used costs an agent job for at most this long. A later
#: join with a still-valid token re-creates the room from the token, agent included.
EMPTY_TIMEOUT = 30
#: Seconds a room stays open after the last participant left.
DEPARTURE_TIMEOUT = 20
#: Maximum participants in an onboarding room; 0 means no limit.
MAX_PARTICIPANTS = 0
#: Agent dispatched into every new onboarding room, or None for no agent.
AGENT_NAME: str | None = None
#: Further agent names a client may ask for in ``room_config.agents``.
ALLOWED_AGENTS: tuple[str, ...] = ()
#: LiveKit Cloud agent deployments a client may name in ``room_config.agents[].deployment``;
#: empty: a request naming any deployment is refused (403).
ALLOWED_AGENT_DEPLOYMENTS: tuple[str, ...] = ()
#: Let clients add their own metadata to the agents they request; it reaches the agent beside
#: the server's envelope, marked as the client's. Off: such a request is refused (403).
ALLOW_CLIENT_AGENT_METADATA = False
#: Let clients choose their ``participant_identity``. Off: the identity hook decides.
ALLOW_CLIENT_IDENTITY = False
#: Demo mode: with no identity hook, give every caller a random guest identity.
ALLOW_ANONYMOUS = False
#: Seconds a demo guest keeps its identity; after that its browser gets a new guest, and a
#: copied guest cookie stops counting.
GUEST_TTL = 3600
#: Largest request body accepted by the blueprint, in bytes.
MAX_BODY_BYTES = 256 * 1024
#: Deepest nesting of an onboarding context (the context object is level 1), from the
#: ``context_provider`` or a PATCH; at most 62, so the stored envelope stays readable.
MAX_CONTEXT_DEPTH = 16
#: Largest the owner's client notes may grow, in bytes of compact JSON: the rest of LiveKit's
#: 64 KiB of room metadata stays the host's, so notes never block a context update.
MAX_CLIENT_BYTES = 8 * 1024
#: Largest participant token issued, in bytes. Clients send it in the WebSocket URL, and
#: nginx refuses a request line over 8 KiB by default.
MAX_TOKEN_BYTES = 6144
#: Serve the OpenAPI document of the routes at ``{prefix}/openapi.json``.
OPENAPI = True
#: Webhooks whose ``created_at`` is older than this many seconds are dropped.
WEBHOOK_MAX_AGE = 300
#: Seconds an event id is remembered to drop LiveKit's retries and duplicates.
WEBHOOK_DEDUPE_WINDOW = 900
#: Origins (``https://app.example.com``) whose pages may call the extension's routes; the
#: blueprint answers their CORS preflights through Flask-CORS (the ``cors`` extra). Empty: none.
CORS_ORIGINS: tuple[str, ...] = ()
#: Let those pages send cookies (``credentials: "include"``): for pages whose user is signed
#: in to the host app by its session cookie. Off for pages that send no cookies.
CORS_CREDENTIALS = False
#: Name of this deployment in shared stores: deployments sharing one Redis must each set their
#: own, or they take each other's webhook events for duplicates. None: no namespace.
NAMESPACE: str | None = None
#: Redis URL for webhook de-duplication shared by several workers; None keeps it in process.
REDIS_URL: str | None = None
#: ``at_least_once``: an event whose required receiver fails (or whose process dies while
#: delivering it) is answered 503 and LiveKit sends it again; ``at_most_once``: an event is
#: recorded before its signals are sent and never delivered twice, even if a receiver fails.
WEBHOOK_DELIVERY = "at_least_once"
#: Seconds an event being delivered is held for its process in ``at_least_once`` mode; a retry
#: within them is answered 503 with ``Retry-After``, a retry after them takes the event over.
WEBHOOK_CLAIM_TTL = 10
#: Serve ``GET {prefix}/health``: 200 when LiveKit (and Redis, if used) answer, else 503.
HEALTH_ROUTE = False
#: Default lifetime of an invite, in seconds; it dies with its session in any case.
INVITE_TTL = 3600
#: Longest lifetime an invite may be given, in seconds.
INVITE_MAX_TTL = 24 * 3600
#: Live invites a session may have at once; creating one more answers 422.
MAX_INVITES = 20
#: Page that redeems invites, an absolute URL or a path on the app (it reads the room and code
#: from the link's fragment); None: invites come without a link.
INVITE_URL: str | None = None

_PREFIX = "LIVEKIT_ONBOARDING_"
DEFAULTS: dict[str, Any] = {
    "LIVEKIT_PUBLIC_URL": None,
    _PREFIX + "URL_PREFIX": URL_PREFIX,
    _PREFIX + "ROOM_CREATION": ROOM_CREATION,
    _PREFIX + "ROOM_PREFIX": ROOM_PREFIX,
    _PREFIX + "TOKEN_TTL": TOKEN_TTL,
    _PREFIX + "SESSION_POLICY": SESSION_POLICY,
    _PREFIX + "SIGNING_KEY": SIGNING_KEY,
    _PREFIX + "PREVIOUS_SIGNING_KEYS": PREVIOUS_SIGNING_KEYS,
    _PREFIX + "PREVIOUS_SIGNING_KEYS_UNTIL": PREVIOUS_SIGNING_KEYS_UNTIL,
    _PREFIX + "REQUEST_TIMEOUT": REQUEST_TIMEOUT,
    _PREFIX + "EMPTY_TIMEOUT": EMPTY_TIMEOUT,
    _PREFIX + "DEPARTURE_TIMEOUT": DEPARTURE_TIMEOUT,
    _PREFIX + "MAX_PARTICIPANTS": MAX_PARTICIPANTS,
    _PREFIX + "AGENT_NAME": AGENT_NAME,
    _PREFIX + "ALLOWED_AGENTS": ALLOWED_AGENTS,
    _PREFIX + "ALLOWED_AGENT_DEPLOYMENTS": ALLOWED_AGENT_DEPLOYMENTS,
    _PREFIX + "ALLOW_CLIENT_IDENTITY": ALLOW_CLIENT_IDENTITY,
    _PREFIX + "ALLOW_CLIENT_AGENT_METADATA": ALLOW_CLIENT_AGENT_METADATA,
    _PREFIX + "ALLOW_ANONYMOUS": ALLOW_ANONYMOUS,
    _PREFIX + "GUEST_TTL": GUEST_TTL,
    _PREFIX + "MAX_BODY_BYTES": MAX_BODY_BYTES,
    _PREFIX + "MAX_CONTEXT_DEPTH": MAX_CONTEXT_DEPTH,
    _PREFIX + "MAX_TOKEN_BYTES": MAX_TOKEN_BYTES,
    _PREFIX + "MAX_CLIENT_BYTES": MAX_CLIENT_BYTES,
    _PREFIX + "OPENAPI": OPENAPI,
    _PREFIX + "WEBHOOK_MAX_AGE": WEBHOOK_MAX_AGE,
    _PREFIX + "WEBHOOK_DEDUPE_WINDOW": WEBHOOK_DEDUPE_WINDOW,
    _PREFIX + "CORS_ORIGINS": CORS_ORIGINS,
    _PREFIX + "CORS_CREDENTIALS": CORS_CREDENTIALS,
    _PREFIX + "REDIS_URL": REDIS_URL,
    _PREFIX + "NAMESPACE": NAMESPACE,
    _PREFIX + "WEBHOOK_DELIVERY": WEBHOOK_DELIVERY,
    _PREFIX + "WEBHOOK_CLAIM_TTL": WEBHOOK_CLAIM_TTL,
    _PREFIX + "HEALTH_ROUTE": HEALTH_ROUTE,
    _PREFIX + "INVITE_TTL": INVITE_TTL,
    _PREFIX + "INVITE_MAX_TTL": INVITE_MAX_TTL,
    _PREFIX + "MAX_INVITES": MAX_INVITES,
    _PREFIX + "INVITE_URL": INVITE_URL,
}
WEBHOOK_DELIVERY_MODES = ("at_least_once", "at_most_once")
REQUIRED = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
ROOM_CREATION_MODES = ("eager", "on_join")
SESSION_POLICIES = ("resume", "new")
#: LiveKit's limits on names and on metadata/attributes, in bytes of UTF-8 as LiveKit counts
#: them, checked before anything is signed.
MAX_NAME_LENGTH = 256
MAX_METADATA_BYTES = 64 * 1024


class ConfigurationWarning(UserWarning):
    """A configuration key of the extension changed after ``init_app`` read it."""


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
    session_policy: str
    signing_key: bytes
    request_timeout: float
    empty_timeout: int
    departure_timeout: int
    max_participants: int
    agent_name: str | None
    allowed_agents: frozenset[str]
    allow_client_identity: bool
    allow_client_agent_metadata: bool
    allow_anonymous: bool
    max_body_bytes: int
    max_context_depth: int
    max_token_bytes: int
    openapi: bool
    webhook_max_age: int
    webhook_dedupe_window: int
    redis_url: str | None
    webhook_delivery: str = WEBHOOK_DELIVERY
    webhook_claim_ttl: int = WEBHOOK_CLAIM_TTL
    cors_origins: tuple[str, ...] = CORS_ORIGINS
    cors_credentials: bool = CORS_CREDENTIALS
    health_route: bool = HEALTH_ROUTE
    max_client_bytes: int = MAX_CLIENT_BYTES
    allowed_agent_deployments: frozenset[str] = frozenset()
    namespace: str | None = None
    guest_ttl: int = GUEST_TTL
    previous_signing_keys: tuple[bytes, ...] = ()
    previous_signing_keys_until: float = 0.0
    #: True when no signing key is set and the one derived from the API secret is used.
    signing_key_derived: bool = False
    invite_ttl: int = INVITE_TTL
    invite_max_ttl: int = INVITE_MAX_TTL
    max_invites: int = MAX_INVITES
    invite_url: str | None = INVITE_URL

    def __repr__(self) -> str:
        return (
            f"OnboardingConfig(url={self.url!r}, api_key={self.api_key!r}, api_secret='***', "
            f"room_creation={self.room_creation!r}, url_prefix={self.url_prefix!r})"
        )

    @property
    def binding(self) -> RoomBinding:
        """The room prefix and key that make a room this deployment's."""
        return RoomBinding(
            self.room_prefix,
            self.signing_key,
            self.previous_signing_keys,
            self.previous_signing_keys_until,
        )

    def redis_key_prefix(self, kind: str) -> str:
        """The prefix of this deployment's Redis keys of ``kind`` (``webhook``, ``room``, ...)."""
        namespace = f"{self.namespace}:" if self.namespace else ""
        return f"livekit-onboarding:{namespace}{kind}:"

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
    policy = config[_PREFIX + "SESSION_POLICY"]
    if policy not in SESSION_POLICIES:
        raise ConfigurationError(
            f"{_PREFIX}SESSION_POLICY must be one of {', '.join(SESSION_POLICIES)}, got {policy!r}"
        )
    signing_key = _text(config[_PREFIX + "SIGNING_KEY"])
    if signing_key and len(signing_key) < 32:
        raise ConfigurationError(f"{_PREFIX}SIGNING_KEY must be at least 32 characters")
    prefix = config[_PREFIX + "URL_PREFIX"]
    if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
        raise ConfigurationError(f"{_PREFIX}URL_PREFIX must be a path starting with '/'")
    room_prefix = config[_PREFIX + "ROOM_PREFIX"]
    if not isinstance(room_prefix, str) or len(room_prefix.encode()) > 64:
        raise ConfigurationError(f"{_PREFIX}ROOM_PREFIX must be a string of at most 64 bytes")
    if _number(config, "WEBHOOK_DEDUPE_WINDOW", int, minimum=1) < _number(
        config, "WEBHOOK_MAX_AGE", int, minimum=1
    ):
        # A shorter window would forget an event id while a replay of it is still fresh.
        raise ConfigurationError(
            f"{_PREFIX}WEBHOOK_DEDUPE_WINDOW must be at least {_PREFIX}WEBHOOK_MAX_AGE"
        )
    agents = _names(config[_PREFIX + "ALLOWED_AGENTS"])
    return OnboardingConfig(
        url=url,
        api_key=str(config["LIVEKIT_API_KEY"]),
        api_secret=str(config["LIVEKIT_API_SECRET"]),
        public_url=_livekit_url("LIVEKIT_PUBLIC_URL", public) if _text(public) else url,
        url_prefix=prefix.rstrip("/"),
        room_creation=mode,
        room_prefix=room_prefix,
        token_ttl=_number(config, "TOKEN_TTL", int, minimum=1),
        session_policy=policy,
        signing_key=_signing_key(signing_key, str(config["LIVEKIT_API_SECRET"])),
        request_timeout=_number(config, "REQUEST_TIMEOUT", float, minimum=0.001),
        empty_timeout=_number(config, "EMPTY_TIMEOUT", int, minimum=0),
        departure_timeout=_number(config, "DEPARTURE_TIMEOUT", int, minimum=0),
        max_participants=_number(config, "MAX_PARTICIPANTS", int, minimum=0),
        agent_name=_text(config[_PREFIX + "AGENT_NAME"]) or None,
        allowed_agents=agents,
        allow_client_identity=_flag(config, "ALLOW_CLIENT_IDENTITY"),
        allow_client_agent_metadata=_flag(config, "ALLOW_CLIENT_AGENT_METADATA"),
        allow_anonymous=_flag(config, "ALLOW_ANONYMOUS"),
        max_body_bytes=_number(config, "MAX_BODY_BYTES", int, minimum=1),
        max_context_depth=_context_depth(config),
        max_token_bytes=_number(config, "MAX_TOKEN_BYTES", int, minimum=1024),
        openapi=_flag(config, "OPENAPI"),
        webhook_max_age=_number(config, "WEBHOOK_MAX_AGE", int, minimum=1),
        webhook_dedupe_window=_number(config, "WEBHOOK_DEDUPE_WINDOW", int, minimum=1),
        redis_url=_text(config[_PREFIX + "REDIS_URL"]) or None,
        webhook_delivery=_webhook_delivery(config[_PREFIX + "WEBHOOK_DELIVERY"]),
        webhook_claim_ttl=_number(config, "WEBHOOK_CLAIM_TTL", int, minimum=1),
        cors_origins=_origins(config[_PREFIX + "CORS_ORIGINS"]),
        cors_credentials=_flag(config, "CORS_CREDENTIALS"),
        health_route=_flag(config, "HEALTH_ROUTE"),
        max_client_bytes=_client_bytes(config),
        allowed_agent_deployments=_names(config[_PREFIX + "ALLOWED_AGENT_DEPLOYMENTS"]),
        namespace=_namespace(config[_PREFIX + "NAMESPACE"]),
        guest_ttl=_number(config, "GUEST_TTL", int, minimum=1),
        previous_signing_keys=_previous_keys(config),
        previous_signing_keys_until=_until(config),
        signing_key_derived=not signing_key,
        **_invite_settings(config),
    )


def _origins(value: Any) -> tuple[str, ...]:
    """Explicit origins only: a wildcard would let any site's page ask for tokens."""
    key = _PREFIX + "CORS_ORIGINS"
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list | tuple | set | frozenset):
        raise ConfigurationError(f"{key} must be a list of origins, got {value!r}")
    origins = []
    for origin in value:
        parts = urlsplit(origin if isinstance(origin, str) else "")
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or "*" in origin
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise ConfigurationError(
                f"{key} lists origins such as https://app.example.com (scheme, host and port "
                f"only, no wildcard), got {origin!r}"
            )
        origins.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(dict.fromkeys(origins))


def _invite_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    ttl = _number(config, "INVITE_TTL", int, minimum=1)
    max_ttl = _number(config, "INVITE_MAX_TTL", int, minimum=1)
    if ttl > max_ttl:
        raise ConfigurationError(f"{_PREFIX}INVITE_TTL must be at most {_PREFIX}INVITE_MAX_TTL")
    url = _text(config[_PREFIX + "INVITE_URL"]) or None
    if url is not None:
        parts = urlsplit(url)
        absolute = parts.scheme in ("http", "https") and parts.netloc
        path = not parts.scheme and not parts.netloc and url.startswith("/")
        if not (absolute or path) or parts.fragment:
            # The link carries the code in its fragment, which browsers never send to a server.
            raise ConfigurationError(
                f"{_PREFIX}INVITE_URL must be an http(s):// URL or a path starting with '/', "
                "without a #fragment"
            )
    return {
        "invite_ttl": ttl,
        "invite_max_ttl": max_ttl,
        "max_invites": _number(config, "MAX_INVITES", int, minimum=1),
        "invite_url": url,
    }


def _signing_key(configured: str, api_secret: str) -> bytes:
    if configured:
        return configured.encode()
    # A key of its own, so a room signature never doubles as anything signed with the secret.
    return hmac.new(
        api_secret.encode(), b"flask-livekit-onboarding room binding", "sha256"
    ).digest()


def _namespace(value: Any) -> str | None:
    text = _text(value)
    if value is not None and not text or text and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", text):
        raise ConfigurationError(
            f"{_PREFIX}NAMESPACE must be 1 to 64 letters, digits, '.', '_' or '-', got {value!r}"
        )
    return text or None


def _previous_keys(config: Mapping[str, Any]) -> tuple[bytes, ...]:
    keys = []
    for name in sorted(_names(config[_PREFIX + "PREVIOUS_SIGNING_KEYS"])):
        if name == "default":
            keys.append(_signing_key("", str(config["LIVEKIT_API_SECRET"])))
        elif len(name) < 32:
            raise ConfigurationError(
                f"{_PREFIX}PREVIOUS_SIGNING_KEYS: each key must be at least 32 characters "
                "(or 'default' for the key derived from the API secret)"
            )
        else:
            keys.append(name.encode())
    if keys and config[_PREFIX + "PREVIOUS_SIGNING_KEYS_UNTIL"] in (None, ""):
        raise ConfigurationError(
            f"{_PREFIX}PREVIOUS_SIGNING_KEYS needs {_PREFIX}PREVIOUS_SIGNING_KEYS_UNTIL: "
            "the end of the rotation's overlap"
        )
    return tuple(keys)


def _until(config: Mapping[str, Any]) -> float:
    key = _PREFIX + "PREVIOUS_SIGNING_KEYS_UNTIL"
    value = config[key]
    if value in (None, ""):
        return 0.0
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        moment = datetime.datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigurationError(
            f"{key} must be unix seconds or an ISO 8601 date and time, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _names(value: Any) -> frozenset[str]:
    """A list of names, or one comma-separated string of them (from the environment)."""
    if isinstance(value, str):
        value = [name.strip() for name in value.split(",") if name.strip()]
    return frozenset(str(name) for name in value or ())


def _client_bytes(config: Mapping[str, Any]) -> int:
    limit: int = _number(config, "MAX_CLIENT_BYTES", int, minimum=0)
    # Half of the metadata at most: the host's context must always have room.
    if limit > MAX_METADATA_BYTES // 2:
        raise ConfigurationError(
            f"{_PREFIX}MAX_CLIENT_BYTES must be at most {MAX_METADATA_BYTES // 2}, got {limit}"
        )
    return limit


def _webhook_delivery(value: Any) -> str:
    if value not in WEBHOOK_DELIVERY_MODES:
        raise ConfigurationError(
            f"{_PREFIX}WEBHOOK_DELIVERY must be one of {', '.join(WEBHOOK_DELIVERY_MODES)}, "
            f"got {value!r}"
        )
    return str(value)


def _context_depth(config: Mapping[str, Any]) -> int:
    depth: int = _number(config, "MAX_CONTEXT_DEPTH", int, minimum=1)
    # The envelope wraps the context in two levels; readers refuse deeper metadata.
    if depth > MAX_READ_DEPTH - 2:
        raise ConfigurationError(
            f"{_PREFIX}MAX_CONTEXT_DEPTH must be at most {MAX_READ_DEPTH - 2}, got {depth}"
        )
    return depth


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
