"""What the example agent says: a scripted onboarding conversation, no model involved.

Pure Python (no LiveKit, no Flask), so the conversation can be read and changed on its own.
A real agent replaces this with an LLM that gets the same context in its instructions; see
examples/agent/README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The onboarding steps the script walks through, in order: (step id, title, what to do).
STEPS: tuple[tuple[str, str, str], ...] = (
    ("welcome", "Welcome", "a quick tour of what you can do here"),
    ("connect-data-source", "Connect a data source", "connect the database or app you report on"),
    ("invite-team", "Invite your team", "invite the people who should see your dashboards"),
    ("first-dashboard", "Build your first dashboard", "pick a template and pin three charts"),
    ("done", "All set", "you are ready to go"),
)
STEP_IDS = tuple(step for step, _, _ in STEPS)
HELP = 'Type "next" for the next step, "back" to go back, "where" for where we are, or "help".'


def _describe(step: str) -> str:
    for step_id, title, todo in STEPS:
        if step_id == step:
            return f"Step {STEP_IDS.index(step) + 1} of {len(STEPS)}: {title} - {todo}."
    return f"Current step: {step}."


def _facts(context: Mapping[str, Any]) -> str:
    """The context as a short, readable list: 'plan: pro, locale: en-GB'."""
    parts = []
    for key, value in context.items():
        if key in ("step", "customer", "name", "product", "company"):
            continue
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, dict):
            continue
        parts.append(f"{key}: {value}")
    return "; ".join(parts)


@dataclass
class OnboardingScript:
    """One user's onboarding conversation, started from the host app's context."""

    context: dict[str, Any]
    name: str = ""
    step: str = field(init=False)

    def __post_init__(self) -> None:
        step = self.context.get("step")
        self.step = step if isinstance(step, str) and step else STEP_IDS[0]

    @property
    def display_name(self) -> str:
        for candidate in (self.name, self.context.get("customer"), self.context.get("name")):
            if isinstance(candidate, str) and candidate.strip():
                return candidate.strip()
        return "there"

    def greeting(self) -> str:
        product = self.context.get("product") or self.context.get("company")
        where = f" to {product}" if product else ""
        facts = _facts(self.context)
        known = f" I have your details: {facts}." if facts else ""
        return (
            f"Hi {self.display_name}, welcome{where}! I'm your onboarding assistant.{known} "
            f"{_describe(self.step)} {HELP}"
        )

    def welcome_back(self) -> str:
        return f"Welcome back, {self.display_name}! {_describe(self.step)} {HELP}"

    def greet_guest(self, guest: str) -> str:
        return (
            f"Hi {guest}, you're joining {self.display_name}'s onboarding. {_describe(self.step)}"
        )

    def greet_invitee(self, name: str, inviter: str, role: str) -> str:
        """Greet someone who joined with an invite, saying who invited them and as what."""
        what = (
            "You can watch and chat; your camera and microphone stay off."
            if role == "viewer"
            else "You can talk, share and chat with everyone here."
        )
        return f"Hi {name} — {inviter} invited you to their onboarding, as a {role}. {what}"

    def reply(self, text: str) -> str:
        """Answer a typed message."""
        words = text.strip().lower().rstrip("!?.")
        if words in ("next", "continue", "ok", "done", "yes"):
            return self._move(+1)
        if words in ("back", "previous"):
            return self._move(-1)
        if words in ("where", "where am i", "status", "step"):
            facts = _facts(self.context)
            return _describe(self.step) + (f" Your details: {facts}." if facts else "")
        if words in ("help", "hi", "hello", "hey", ""):
            return f"Hi {self.display_name}! {HELP}"
        return (
            f'I\'m a scripted demo agent, so I only understand a few words. You said: "{text}". '
            + HELP
        )

    def context_changed(self, context: Mapping[str, Any]) -> str | None:
        """React to the host app changing the context; None when nothing worth saying changed."""
        old, self.context = self.context, dict(context)
        changed = sorted(k for k in set(old) | set(context) if old.get(k) != context.get(k))
        if not changed:
            return None
        step = context.get("step")
        if "step" in changed and isinstance(step, str) and step:
            self.step = step
            return f"Your onboarding moved on to a new step. {_describe(step)}"
        updates = ", ".join(
            f"{key} is now {context[key]}" if key in context else f"{key} was removed"
            for key in changed
        )
        return f"Your account was updated: {updates}."

    def _move(self, delta: int) -> str:
        index = STEP_IDS.index(self.step) if self.step in STEP_IDS else 0
        target = min(max(index + delta, 0), len(STEP_IDS) - 1)
        if target == index:
            edge = "the last" if delta > 0 else "the first"
            return f"That's {edge} step. {_describe(self.step)}"
        self.step = STEP_IDS[target]
        return _describe(self.step)
