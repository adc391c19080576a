"""Stores of invites: each invite's record, kept apart from the room's public metadata.

A record holds a keyed hash of the invite's code, never the code. Redemption is atomic
across everything sharing the store, so a one-use invite admits one person however many
requests race for it. :class:`MemoryInviteStore` serves a single process;
:class:`RedisInviteStore` is shared by every worker and host using the same Redis
(``LIVEKIT_ONBOARDING_REDIS_URL``). Any other shared store fits behind :class:`InviteStore`;
:func:`flask_livekit_onboarding.testing.check_invite_store` checks one.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from .config import OnboardingConfig
from .errors import InviteStoreUnavailable
from .redis_support import RedisBacked

if TYPE_CHECKING:
    import redis

#: Prefix of the Redis keys of invites and of each session's invite index.
REDIS_INVITE_PREFIX = "livekit-onboarding:invite:"
#: Seconds a record is kept after its invite expired, so a late use is told "expired".
KEEP_AFTER_EXPIRY = 3600
#: Most invite records the in-process store keeps.
MEMORY_MAX_INVITES = 100_000

#: What :meth:`InviteStore.redeem` found: ``ok`` (a use was taken), ``again`` (this identity
#: redeemed it before: no new use), or why it was refused.
Redemption = Literal["ok", "again", "unknown", "revoked", "expired", "used_up"]


@dataclass(frozen=True)
class Invite:
    """One invite to one session of a room."""

    id: str
    room_name: str
    session_id: str
    role: str
    max_uses: int
    expires_at: int
    created_at: int
    #: The identity that created it, or "" for the host (its code or the CLI).
    created_by: str
    #: The display name invitees are told invited them.
    inviter_name: str
    label: str = ""
    guests: bool = False
    #: The keyed hash of the code (HMAC with the deployment's signing key).
    code_hash: str = field(default="", repr=False)
    redeemed_by: tuple[str, ...] = ()
    revoked: bool = False

    @property
    def uses(self) -> int:
        """How many people have been admitted with it."""
        return len(self.redeemed_by)

    def live(self, now: float) -> bool:
        """True while it can still admit somebody new."""
        return not self.revoked and self.expires_at > now and self.uses < self.max_uses

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Invite:
        record = json.loads(text)
        redeemed = record.get("redeemed_by")
        # Redis' Lua encodes an empty list as an empty object.
        record["redeemed_by"] = tuple(redeemed) if isinstance(redeemed, list) else ()
        record["revoked"] = bool(record.get("revoked"))
        record["guests"] = bool(record.get("guests"))
        return cls(**record)


class InviteStore(ABC):
    """Where invites are kept; every method must be atomic across all that share the store
    and raise :class:`~flask_livekit_onboarding.errors.InviteStoreUnavailable` when it
    cannot answer."""

    @abstractmethod
    def add(self, invite: Invite, limit: int, now: float) -> bool:
        """Keep ``invite``; False (and nothing kept) when its session already has ``limit``
        live invites."""

    @abstractmethod
    def get(self, invite_id: str) -> Invite | None:
        """The invite ``invite_id``, until a while after it expired."""

    @abstractmethod
    def for_session(self, session_id: str, now: float) -> list[Invite]:
        """The invites of a session that can still admit somebody new, oldest first."""

    @abstractmethod
    def redeem(self, invite_id: str, identity: str, now: float) -> tuple[Redemption, Invite | None]:
        """Take one use of the invite for ``identity``, unless it is revoked, expired or used
        up; an identity that redeemed it before takes no second use (``again``)."""

    @abstractmethod
    def revoke(self, invite_id: str) -> Invite | None:
        """Mark the invite revoked at once; the revoked invite, or None if unknown."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for stores without resources
        """Release the store's connections."""


class MemoryInviteStore(InviteStore):
    """Thread-safe, bounded store for a single process (workers do not share it)."""

    def __init__(self, max_invites: int = MEMORY_MAX_INVITES) -> None:
        self.max_invites = max_invites
        self._invites: dict[str, Invite] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<MemoryInviteStore invites={len(self._invites)}>"

    def add(self, invite: Invite, limit: int, now: float) -> bool:
        with self._lock:
            self._forget(now)
            live = [i for i in self._invites.values() if i.session_id == invite.session_id]
            if sum(i.live(now) for i in live) >= limit or len(self._invites) >= self.max_invites:
                return False
            self._invites[invite.id] = invite
            return True

    def get(self, invite_id: str) -> Invite | None:
        with self._lock:
            return self._invites.get(invite_id)

    def for_session(self, session_id: str, now: float) -> list[Invite]:
        with self._lock:
            found = [
                i for i in self._invites.values() if i.session_id == session_id and i.live(now)
            ]
        return sorted(found, key=lambda i: i.created_at)

    def redeem(self, invite_id: str, identity: str, now: float) -> tuple[Redemption, Invite | None]:
        with self._lock:
            invite = self._invites.get(invite_id)
            if invite is None:
                return "unknown", None
            verdict = _verdict(invite, identity, now)
            if verdict == "ok":
                invite = replace(invite, redeemed_by=(*invite.redeemed_by, identity))
                self._invites[invite_id] = invite
            return verdict, invite

    def revoke(self, invite_id: str) -> Invite | None:
        with self._lock:
            invite = self._invites.get(invite_id)
            if invite is not None:
                invite = self._invites[invite_id] = replace(invite, revoked=True)
            return invite

    def _forget(self, now: float) -> None:
        expired = [k for k, i in self._invites.items() if i.expires_at + KEEP_AFTER_EXPIRY <= now]
        for key in expired:
            del self._invites[key]


def _verdict(invite: Invite, identity: str, now: float) -> Redemption:
    if invite.revoked:
        return "revoked"
    if invite.expires_at <= now:
        return "expired"
    if identity in invite.redeemed_by:
        return "again"
    if invite.uses >= invite.max_uses:
        return "used_up"
    return "ok"


class RedisInviteStore(RedisBacked, InviteStore):
    """Invites shared through Redis: one JSON record per invite, and a sorted set per session
    of its live invites (scored by expiry). Adding, redeeming and revoking are Lua scripts, so
    each is one atomic step however many workers race."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        timeout: float = 5.0,
        key_prefix: str = REDIS_INVITE_PREFIX,
        **redis_options: Any,
    ) -> None:
        super().__init__(url, client=client, timeout=timeout, **redis_options)
        self.key_prefix = key_prefix

    def _key(self, invite_id: str) -> str:
        return f"{self.key_prefix}id:{invite_id}"

    def _index(self, session_id: str) -> str:
        return f"{self.key_prefix}session:{session_id}"

    def add(self, invite: Invite, limit: int, now: float) -> bool:
        keep = max(1, int(invite.expires_at + KEEP_AFTER_EXPIRY - now))
        keys = [self._index(invite.session_id), self._key(invite.id)]
        args = [now, limit, invite.id, invite.expires_at, invite.to_json(), keep]
        return bool(self._run(_ADD, keys, args))

    def get(self, invite_id: str) -> Invite | None:
        raw = self._run(lambda: self.client.get(self._key(invite_id)))
        return None if raw is None else Invite.from_json(raw)

    def for_session(self, session_id: str, now: float) -> list[Invite]:
        def read() -> list[Any]:
            ids: list[bytes] = self.client.zrange(self._index(session_id), 0, -1)  # type: ignore[assignment]
            if not ids:
                return []
            return list(self.client.mget([self._key(i.decode()) for i in ids]))

        records = [Invite.from_json(raw) for raw in self._run(read) if raw is not None]
        return sorted((i for i in records if i.live(now)), key=lambda i: i.created_at)

    def redeem(self, invite_id: str, identity: str, now: float) -> tuple[Redemption, Invite | None]:
        invite = self.get(invite_id)
        if invite is None:
            return "unknown", None
        keys = [self._key(invite_id), self._index(invite.session_id)]
        verdict, raw = self._run(_REDEEM, keys, [now, identity, invite_id])
        verdict = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
        return verdict, (Invite.from_json(raw) if raw else None)  # type: ignore[return-value]

    def revoke(self, invite_id: str) -> Invite | None:
        invite = self.get(invite_id)
        if invite is None:
            return None
        keys = [self._key(invite_id), self._index(invite.session_id)]
        raw = self._run(_REVOKE, keys, [invite_id])
        return Invite.from_json(raw) if raw else None

    def _run(
        self, script: Any, keys: list[str] | None = None, args: list[Any] | None = None
    ) -> Any:
        try:
            if callable(script):
                return script()
            return self.client.eval(script, len(keys or []), *(keys or []), *(args or []))
        except self.errors as error:
            raise InviteStoreUnavailable() from error


# KEYS: session index, record. ARGV: now, limit, id, expires_at, record, seconds to keep.
_ADD = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[6]) then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6])
return 1
"""

# KEYS: record, session index. ARGV: now, identity, id.
_REDEEM = """
local raw = redis.call('GET', KEYS[1])
if not raw then return {'unknown', ''} end
local invite = cjson.decode(raw)
if invite.revoked then return {'revoked', raw} end
if tonumber(invite.expires_at) <= tonumber(ARGV[1]) then return {'expired', raw} end
local redeemed = invite.redeemed_by
for _, who in ipairs(redeemed) do
  if who == ARGV[2] then return {'again', raw} end
end
if #redeemed >= tonumber(invite.max_uses) then return {'used_up', raw} end
redeemed[#redeemed + 1] = ARGV[2]
invite.redeemed_by = redeemed
local updated = cjson.encode(invite)
redis.call('SET', KEYS[1], updated, 'KEEPTTL')
if #redeemed >= tonumber(invite.max_uses) then redis.call('ZREM', KEYS[2], ARGV[3]) end
return {'ok', updated}
"""

# KEYS: record, session index. ARGV: id.
_REVOKE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local invite = cjson.decode(raw)
invite.revoked = true
local updated = cjson.encode(invite)
redis.call('SET', KEYS[1], updated, 'KEEPTTL')
redis.call('ZREM', KEYS[2], ARGV[1])
return updated
"""


def make_invite_store(config: OnboardingConfig, client: redis.Redis | None = None) -> InviteStore:
    """The in-process store, or the Redis one on the app's shared client."""
    if client is not None:
        return RedisInviteStore(client=client, key_prefix=config.redis_key_prefix("invite"))
    return MemoryInviteStore()
