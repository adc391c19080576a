"""The ``flask livekit`` command group, registered on each app by ``init_app``."""

from __future__ import annotations

import click
from flask.cli import AppGroup

livekit_cli = AppGroup("livekit", help="Onboarding sessions on LiveKit.")


@livekit_cli.command("check")
def check_command() -> None:
    """Validate the configuration and reach LiveKit with the credentials."""
    raise click.ClickException("not implemented")
