"""Configuration keys, their defaults, and validation of ``app.config``."""

from __future__ import annotations

import datetime
import hmac
import re
from collections.abc import Callable, Mapping
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
WEBHOOK_DELIVERY_MODES = ("at_least_once", "at_most_once")
ROOM_CREATION_MODES = ("eager", "on_join")
SESSION_POLICIES = ("resume", "new")
#: LiveKit's limits on names and on metadata/attributes, in bytes of UTF-8 as LiveKit counts
#: them, checked before anything is signed.
MAX_NAME_LENGTH = 256
MAX_METADATA_BYTES = 64 * 1024

#: Reads one value of ``app.config`` (the value, its key, the whole config) into its setting.
Parse = Callable[[Any, str, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Setting:
    """One configuration key: its default, how it is read and checked, and what it means."""

    key: str
    default: Any
    parse: Parse
    #: The ``meaning`` column of the configuration table in the documentation.
    meaning: str
    #: The ``default`` column when the value alone would mislead.
    shown: str | None = None

    @property
    def field(self) -> str:
        """The :class:`OnboardingConfig` attribute holding the parsed value."""
        return self.key.removeprefix(_PREFIX).removeprefix("LIVEKIT_").lower()

    @property
    def default_text(self) -> str:
        """The default as the configuration table shows it."""
        if self.shown is not None:
            return self.shown
        shown = self.default if isinstance(self.default, str) else repr(self.default)
        return f"`{shown}`"


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


def _number(kind: type, minimum: float) -> Parse:
    """A number of ``kind`` of at least ``minimum`` (a string from the environment counts)."""

    def parse(value: Any, key: str, config: Mapping[str, Any]) -> Any:
        try:
            if isinstance(value, bool):
                raise ValueError
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{key} must be a number, got {value!r}") from None
        if number < minimum:
            raise ConfigurationError(f"{key} must be at least {minimum}, got {number!r}")
        return number

    return parse


def _choice(options: tuple[str, ...]) -> Parse:
    def parse(value: Any, key: str, config: Mapping[str, Any]) -> str:
        if value not in options:
            raise ConfigurationError(f"{key} must be one of {', '.join(options)}, got {value!r}")
        return str(value)

    return parse


def _flag(value: Any, key: str, config: Mapping[str, Any]) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _optional_text(value: Any, key: str, config: Mapping[str, Any]) -> str | None:
    return _text(value) or None


def _names(value: Any, key: str = "", config: Mapping[str, Any] | None = None) -> frozenset[str]:
    """A list of names, or one comma-separated string of them (from the environment)."""
    if isinstance(value, str):
        value = [name.strip() for name in value.split(",") if name.strip()]
    return frozenset(str(name) for name in value or ())


def _public_url(value: Any, key: str, config: Mapping[str, Any]) -> str:
    if _text(value):
        return _livekit_url(key, value)
    return _livekit_url("LIVEKIT_URL", config["LIVEKIT_URL"])


def _url_prefix(value: Any, key: str, config: Mapping[str, Any]) -> str:
    if not isinstance(value, str) or (value and not value.startswith("/")):
        raise ConfigurationError(f"{key} must be a path starting with '/'")
    return value.rstrip("/")


def _room_prefix(value: Any, key: str, config: Mapping[str, Any]) -> str:
    if not isinstance(value, str) or len(value.encode()) > 64:
        raise ConfigurationError(f"{key} must be a string of at most 64 bytes")
    return value


def _signing_key(value: Any, key: str, config: Mapping[str, Any]) -> bytes:
    configured = _text(value)
    if configured and len(configured) < 32:
        raise ConfigurationError(f"{key} must be at least 32 characters")
    return _key_bytes(configured, str(config["LIVEKIT_API_SECRET"]))


def _key_bytes(configured: str, api_secret: str) -> bytes:
    if configured:
        return configured.encode()
    # A key of its own, so a room signature never doubles as anything signed with the secret.
    return hmac.new(
        api_secret.encode(), b"flask-livekit-onboarding room binding", "sha256"
    ).digest()


def _previous_keys(value: Any, key: str, config: Mapping[str, Any]) -> tuple[bytes, ...]:
    keys = []
    for name in sorted(_names(value)):
        if name == "default":
            keys.append(_key_bytes("", str(config["LIVEKIT_API_SECRET"])))
        elif len(name) < 32:
            raise ConfigurationError(
                f"{key}: each key must be at least 32 characters "
                "(or 'default' for the key derived from the API secret)"
            )
        else:
            keys.append(name.encode())
    if keys and config.get(_PREFIX + "PREVIOUS_SIGNING_KEYS_UNTIL") in (None, ""):
        raise ConfigurationError(
            f"{key} needs {_PREFIX}PREVIOUS_SIGNING_KEYS_UNTIL: the end of the rotation's overlap"
        )
    return tuple(keys)


def _until(value: Any, key: str, config: Mapping[str, Any]) -> float:
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


def _context_depth(value: Any, key: str, config: Mapping[str, Any]) -> int:
    depth: int = _number(int, 1)(value, key, config)
    # The envelope wraps the context in two levels; readers refuse deeper metadata.
    if depth > MAX_READ_DEPTH - 2:
        raise ConfigurationError(f"{key} must be at most {MAX_READ_DEPTH - 2}, got {depth}")
    return depth


def _client_bytes(value: Any, key: str, config: Mapping[str, Any]) -> int:
    limit: int = _number(int, 0)(value, key, config)
    # Half of the metadata at most: the host's context must always have room.
    if limit > MAX_METADATA_BYTES // 2:
        raise ConfigurationError(f"{key} must be at most {MAX_METADATA_BYTES // 2}, got {limit}")
    return limit


def _origins(value: Any, key: str, config: Mapping[str, Any]) -> tuple[str, ...]:
    """Explicit origins only: a wildcard would let any site's page ask for tokens."""
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


def _namespace(value: Any, key: str, config: Mapping[str, Any]) -> str | None:
    text = _text(value)
    if value is not None and not text or text and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", text):
        raise ConfigurationError(
            f"{key} must be 1 to 64 letters, digits, '.', '_' or '-', got {value!r}"
        )
    return text or None


def _invite_url(value: Any, key: str, config: Mapping[str, Any]) -> str | None:
    url = _text(value) or None
    if url is not None:
        parts = urlsplit(url)
        absolute = parts.scheme in ("http", "https") and parts.netloc
        path = not parts.scheme and not parts.netloc and url.startswith("/")
        if not (absolute or path) or parts.fragment:
            # The link carries the code in its fragment, which browsers never send to a server.
            raise ConfigurationError(
                f"{key} must be an http(s):// URL or a path starting with '/', without a #fragment"
            )
    return url


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _livekit_url(key: str, value: Any) -> str:
    """Accept ws(s):// or http(s):// and hand clients the WebSocket form."""
    parts = urlsplit(_text(value))
    schemes = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigurationError(f"{key} must be a ws://, wss://, http:// or https:// URL")
    return urlunsplit(parts._replace(scheme=schemes[parts.scheme])).rstrip("/")


def _required_url(value: Any, key: str, config: Mapping[str, Any]) -> str:
    return _livekit_url(key, value)


def _required_text(value: Any, key: str, config: Mapping[str, Any]) -> str:
    return str(value)


#: The keys every app must set, first in the documentation's configuration table.
REQUIRED_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "LIVEKIT_URL",
        None,
        _required_url,
        "LiveKit server URL the app calls (`ws(s)://` or `http(s)://`)",
        shown="*required*",
    ),
    Setting("LIVEKIT_API_KEY", None, _required_text, "API key", shown="*required*"),
    Setting("LIVEKIT_API_SECRET", None, _required_text, "API secret", shown="*required*"),
)
REQUIRED = tuple(setting.key for setting in REQUIRED_SETTINGS)

#: Every optional key, in the order the documentation's configuration table lists them.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "LIVEKIT_PUBLIC_URL",
        None,
        _public_url,
        "URL handed to clients, when it differs from the one the server calls",
        shown="`LIVEKIT_URL`",
    ),
    Setting(
        _PREFIX + "URL_PREFIX",
        URL_PREFIX,
        _url_prefix,
        "where `init_app` mounts the routes",
    ),
    Setting(
        _PREFIX + "ROOM_CREATION",
        ROOM_CREATION,
        _choice(ROOM_CREATION_MODES),
        "`eager` or `on_join` (see {doc}`token-endpoint`)",
    ),
    Setting(
        _PREFIX + "ROOM_PREFIX",
        ROOM_PREFIX,
        _room_prefix,
        "prefix of generated room names",
    ),
    Setting(
        _PREFIX + "TOKEN_TTL",
        TOKEN_TTL,
        _number(int, 1),
        "participant token lifetime, seconds (it only has to cover the join)",
    ),
    Setting(
        _PREFIX + "SESSION_POLICY",
        SESSION_POLICY,
        _choice(SESSION_POLICIES),
        "`resume`: one live room per user, a reload resumes it; `new`: a room per request",
    ),
    Setting(
        _PREFIX + "SIGNING_KEY",
        SIGNING_KEY,
        _signing_key,
        (
            "key (32+ characters) that signs envelopes and derives room names; set one per "
            "deployment when several share a LiveKit project"
        ),
        shown="derived from the API secret",
    ),
    Setting(
        _PREFIX + "ALLOW_CLIENT_AGENT_METADATA",
        ALLOW_CLIENT_AGENT_METADATA,
        _flag,
        (
            "let clients add their own metadata to requested agents (delivered apart from the "
            "envelope)"
        ),
    ),
    Setting(
        _PREFIX + "REQUEST_TIMEOUT",
        REQUEST_TIMEOUT,
        _number(float, 0.001),
        "bound on every LiveKit API call, seconds",
    ),
    Setting(
        _PREFIX + "EMPTY_TIMEOUT",
        EMPTY_TIMEOUT,
        _number(int, 0),
        (
            "seconds a room nobody joined stays open (its agent job ends with it); a later join "
            "re-creates it"
        ),
    ),
    Setting(
        _PREFIX + "DEPARTURE_TIMEOUT",
        DEPARTURE_TIMEOUT,
        _number(int, 0),
        "seconds a room stays open after the last participant left",
    ),
    Setting(
        _PREFIX + "MAX_PARTICIPANTS",
        MAX_PARTICIPANTS,
        _number(int, 0),
        "participant limit per room; 0 = none",
    ),
    Setting(
        _PREFIX + "AGENT_NAME",
        AGENT_NAME,
        _optional_text,
        "agent dispatched into every new room",
    ),
    Setting(
        _PREFIX + "ALLOWED_AGENTS",
        ALLOWED_AGENTS,
        _names,
        "further agent names clients may request (list or comma-separated string)",
    ),
    Setting(
        _PREFIX + "ALLOW_CLIENT_IDENTITY",
        ALLOW_CLIENT_IDENTITY,
        _flag,
        "let clients choose identity, name, metadata and attributes (token claims only)",
    ),
    Setting(
        _PREFIX + "ALLOW_ANONYMOUS",
        ALLOW_ANONYMOUS,
        _flag,
        "demo mode: random guest identities when there is no `identity_loader`",
    ),
    Setting(
        _PREFIX + "MAX_BODY_BYTES",
        MAX_BODY_BYTES,
        _number(int, 1),
        "largest request body accepted",
    ),
    Setting(
        _PREFIX + "MAX_CONTEXT_DEPTH",
        MAX_CONTEXT_DEPTH,
        _context_depth,
        (
            "deepest nesting of an onboarding context or client notes (the object itself is level "
            "1; at most 62)"
        ),
    ),
    Setting(
        _PREFIX + "MAX_TOKEN_BYTES",
        MAX_TOKEN_BYTES,
        _number(int, 1024),
        "largest participant token issued (see Limits)",
    ),
    Setting(
        _PREFIX + "OPENAPI",
        OPENAPI,
        _flag,
        "serve the OpenAPI 3.1 document of the routes at `{prefix}/openapi.json`",
    ),
    Setting(
        _PREFIX + "WEBHOOK_MAX_AGE",
        WEBHOOK_MAX_AGE,
        _number(int, 1),
        "webhooks older than this (seconds) are dropped",
    ),
    Setting(
        _PREFIX + "WEBHOOK_DEDUPE_WINDOW",
        WEBHOOK_DEDUPE_WINDOW,
        _number(int, 1),
        "seconds an event id is remembered to drop duplicates",
    ),
    Setting(
        _PREFIX + "REDIS_URL",
        REDIS_URL,
        _optional_text,
        (
            "Redis shared by several workers/hosts: webhook de-duplication and the per-room locks "
            "of context updates"
        ),
    ),
    Setting(
        _PREFIX + "WEBHOOK_DELIVERY",
        WEBHOOK_DELIVERY,
        _choice(WEBHOOK_DELIVERY_MODES),
        "`at_least_once` or `at_most_once` (see Delivery guarantees)",
    ),
    Setting(
        _PREFIX + "WEBHOOK_CLAIM_TTL",
        WEBHOOK_CLAIM_TTL,
        _number(int, 1),
        "seconds an event being delivered is held for its process (at least once)",
    ),
    Setting(
        _PREFIX + "CORS_ORIGINS",
        CORS_ORIGINS,
        _origins,
        (
            "origins whose pages may call the routes (Flask-CORS on the extension's blueprint, "
            "`[cors]` extra); explicit, no wildcard"
        ),
    ),
    Setting(
        _PREFIX + "CORS_CREDENTIALS",
        CORS_CREDENTIALS,
        _flag,
        'let those pages send cookies (`credentials: "include"`)',
    ),
    Setting(
        _PREFIX + "HEALTH_ROUTE",
        HEALTH_ROUTE,
        _flag,
        "serve `GET {prefix}/health`: 200 when LiveKit (and Redis, if used) answer, else 503",
    ),
    Setting(
        _PREFIX + "PREVIOUS_SIGNING_KEYS",
        PREVIOUS_SIGNING_KEYS,
        _previous_keys,
        (
            "signing keys of a rotation, still accepted (never used to sign) until "
            "`LIVEKIT_ONBOARDING_PREVIOUS_SIGNING_KEYS_UNTIL`; `default` names the key derived from"
            " the API secret; rooms are signed anew as they are touched"
        ),
    ),
    Setting(
        _PREFIX + "PREVIOUS_SIGNING_KEYS_UNTIL",
        PREVIOUS_SIGNING_KEYS_UNTIL,
        _until,
        (
            "end of the rotation's overlap: unix seconds or an ISO 8601 date and time (required "
            "with previous keys)"
        ),
    ),
    Setting(
        _PREFIX + "ALLOWED_AGENT_DEPLOYMENTS",
        ALLOWED_AGENT_DEPLOYMENTS,
        _names,
        (
            "agent deployments clients may name in `room_config.agents[].deployment` (list or "
            "comma-separated string); any other is refused (403)"
        ),
    ),
    Setting(
        _PREFIX + "GUEST_TTL",
        GUEST_TTL,
        _number(int, 1),
        (
            "seconds a demo guest keeps its identity; then (or once its session ends, or "
            "`onboarding.revoke_guest(identity)`) its browser gets a new guest and copies of its "
            "cookie stop counting"
        ),
    ),
    Setting(
        _PREFIX + "MAX_CLIENT_BYTES",
        MAX_CLIENT_BYTES,
        _client_bytes,
        (
            "largest the owner's `client` notes may grow, bytes of JSON (at most 32768); the rest "
            "of the room metadata stays the host's"
        ),
    ),
    Setting(
        _PREFIX + "NAMESPACE",
        NAMESPACE,
        _namespace,
        (
            "this deployment's name in the shared Redis (letters, digits, `.`, `_`, `-`): "
            "deployments sharing one Redis must each set their own, or they drop each other's "
            "webhooks as duplicates"
        ),
    ),
    Setting(
        _PREFIX + "INVITE_TTL",
        INVITE_TTL,
        _number(int, 1),
        "default lifetime of an invite, seconds (see `docs/invites.md`)",
    ),
    Setting(
        _PREFIX + "INVITE_MAX_TTL",
        INVITE_MAX_TTL,
        _number(int, 1),
        "longest lifetime an invite may be given, seconds",
    ),
    Setting(
        _PREFIX + "MAX_INVITES",
        MAX_INVITES,
        _number(int, 1),
        "live invites per session; past it creating one answers 422",
    ),
    Setting(
        _PREFIX + "INVITE_URL",
        INVITE_URL,
        _invite_url,
        "page that redeems invites; set it and each new invite comes with a ready link",
    ),
)
DEFAULTS: dict[str, Any] = {setting.key: setting.default for setting in SETTINGS}

#: Keys bounded by another key: ``(key, "at least" or "at most", other key)``.
_BOUNDS = (
    # A shorter window would forget an event id while a replay of it is still fresh.
    ("WEBHOOK_DEDUPE_WINDOW", "at least", "WEBHOOK_MAX_AGE"),
    ("INVITE_TTL", "at most", "INVITE_MAX_TTL"),
)


def load_config(config: Mapping[str, Any]) -> OnboardingConfig:
    """Validate the keys of ``app.config`` this extension reads; raise naming the bad key."""
    for key in REQUIRED:
        if not _text(config.get(key)):
            raise ConfigurationError(
                f"{key} is not set: add it to app.config (or the environment loaded into it)"
            )
    values = {
        setting.field: setting.parse(config.get(setting.key, setting.default), setting.key, config)
        for setting in (*REQUIRED_SETTINGS, *SETTINGS)
    }
    for name, bound, other in _BOUNDS:
        value, limit = values[name.lower()], values[other.lower()]
        if value < limit if bound == "at least" else value > limit:
            raise ConfigurationError(f"{_PREFIX}{name} must be {bound} {_PREFIX}{other}")
    return OnboardingConfig(
        signing_key_derived=not _text(config.get(_PREFIX + "SIGNING_KEY")),
        **values,
    )


def configuration_table() -> str:
    """The documentation's configuration table (Markdown), one row per key."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    rows += [
        f"| `{s.key}` | {s.default_text} | {s.meaning} |" for s in (*REQUIRED_SETTINGS, *SETTINGS)
    ]
    return "\n".join(rows) + "\n"
