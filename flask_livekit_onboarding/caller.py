"""Who a use case acts for: the host's own code, an operator, a signed-in user or a guest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .hooks import Identity

#: ``host``: the host app's own code (``LiveKitOnboarding.update_context`` and the like);
#: ``operator``: someone at the command line (``flask livekit ...``); ``user``: whom the
#: host's ``identity_loader`` names; ``guest``: a demo guest kept in the browser's session.
CallerKind = Literal["host", "operator", "user", "guest"]


@dataclass(frozen=True)
class Caller:
    """The one asking, and the person a new session is started for (``identity``).

    The host and operators may act on any onboarding room of this deployment; users and
    guests only where the room's owner is them or the host's ``room_authorizer`` says yes.
    """

    kind: CallerKind
    #: The user or guest themselves, or whom an operator starts a session for; None when the
    #: host's code or an operator acts on a room as such.
    identity: Identity | None = None

    def __post_init__(self) -> None:
        if self.kind in ("user", "guest") and self.identity is None:
            raise ValueError(f"a {self.kind} caller needs an identity")
        if self.kind == "host" and self.identity is not None:
            raise ValueError("the host acts as itself, with no identity")

    @classmethod
    def host(cls) -> Caller:
        """The host app's own code."""
        return cls("host")

    @classmethod
    def operator(cls, acting_for: Identity | None = None) -> Caller:
        """An operator at the command line, starting a session for ``acting_for`` if given."""
        return cls("operator", acting_for)

    @classmethod
    def user(cls, identity: Identity) -> Caller:
        """A user the host's ``identity_loader`` signed in."""
        return cls("user", identity)

    @classmethod
    def guest(cls, identity: Identity) -> Caller:
        """A demo guest, one per browser."""
        return cls("guest", identity)

    @property
    def trusted(self) -> bool:
        """True for the host and operators, whom no room's access rules hold back."""
        return self.kind in ("host", "operator")

    @property
    def person(self) -> Identity:
        """The identity a session is started or checked for (users, guests, an operator's
        ``acting_for``); asking the host for one is a programming error."""
        if self.identity is None:
            raise ValueError(f"the {self.kind} acts on rooms, not as a participant")
        return self.identity

    def __str__(self) -> str:
        return self.identity.identity if self.identity is not None else f"the {self.kind}"
