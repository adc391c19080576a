"""Run an example app against a throwaway local LiveKit server, for trying the extension out.

``./scripts/demo.sh`` prepares everything and then runs this; on its own (from the repository
root, with the package installed and the demo bundle built)::

    python -m examples.serve_demo                      # the minimal app, anonymous demo mode
    python -m examples.serve_demo --app existing_app   # sign in as ada / onboarding

Pages on other origins, such as LiveKit's starter frontends, may call the token endpoint
when their origins are listed in the environment::

    LIVEKIT_ONBOARDING_CORS_ORIGINS=http://localhost:3000 python -m examples.serve_demo

A ``livekit-server --dev`` is started on free loopback ports with its own API key pair, then the
example onboarding agent (``examples/agent``, a real ``livekit-agents`` worker in its own
virtualenv) registers with it, the app is configured to dispatch that agent into every new
onboarding room, and Ctrl-C (or SIGTERM) stops all three. ``--no-agent`` leaves the agent out.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from types import FrameType
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from examples.agent.runner import AgentWorker, AgentWorkerError, agent_python
from flask_livekit_onboarding.devserver import LiveKitDevServer, LiveKitServerError, free_port

APPS = {
    # Guests, who may give a display name on the page so the agent greets them by it.
    "minimal": {
        "LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS": True,
        "LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY": True,
    },
    "existing_app": {},
}
AGENT_NAME = "onboarding-agent"


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _cli_line(app_name: str, livekit: LiveKitDevServer, agent: AgentWorker | None) -> str:
    """One line that points ``flask livekit ...`` at this demo's LiveKit dev server."""
    env = {
        "LIVEKIT_URL": livekit.url,
        "LIVEKIT_API_KEY": livekit.api_key,
        "LIVEKIT_API_SECRET": livekit.api_secret,
    }
    if agent is not None:
        env["LIVEKIT_ONBOARDING_AGENT_NAME"] = agent.agent_name
    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    return f"{assignments} .venv/bin/flask --app examples.{app_name}.app livekit rooms"


def _banner(
    url: str,
    token_url: str,
    app_name: str,
    livekit: LiveKitDevServer,
    agent: AgentWorker | None = None,
    cors_origins: Sequence[str] = (),
) -> str:
    login = (
        "\n  Sign in as ada (customer) or grace (staff), password: onboarding\n"
        if app_name == "existing_app"
        else ""
    )
    curl = f"curl -s -X POST {token_url} -H 'Content-Type: application/json'"
    if app_name == "minimal":
        curl += ' -d \'{"participant_name": "Ada"}\''
    else:
        curl += " -d '{}'\n    (401 until signed in: identities come from the app's own login)"
    origins = ", ".join(cors_origins) or "none (same-origin pages only)"
    agent_line = (
        f"  Example agent: {agent.agent_name!r} greets you in every new room"
        f" (log: {agent.log_path})\n"
        if agent is not None
        else "  No agent: rooms get no onboarding assistant.\n"
    )
    return (
        f"\n  Onboarding demo ({app_name}) is running.\n\n"
        f'  Open {url} and click "Start onboarding".\n{login}\n'
        f"  Token endpoint:\n    {curl}\n\n"
        f"  Cross-origin pages allowed: {origins}\n"
        f"  LiveKit dev server: {livekit.url} (API key {livekit.api_key})\n"
        f"{agent_line}"
        "  The `flask livekit` CLI against this server (list rooms; also token, end, check):\n"
        f"    {_cli_line(app_name, livekit, agent)}\n\n"
        "  Press Ctrl-C to stop.\n"
    )


def _start_agent(
    livekit: LiveKitDevServer, announce: Callable[[str], None], host_url: str
) -> AgentWorker | None:
    """The example agent as a worker registered with ``livekit``, reporting to ``host_url``;
    None when it cannot run."""
    worker = AgentWorker(
        livekit.url,
        livekit.api_key,
        livekit.api_secret,
        agent_name=AGENT_NAME,
        log_path=livekit.workdir / "agent.log",
        host_url=host_url,
    )
    try:
        worker.start()
    except AgentWorkerError as exc:
        announce(
            f"  warning: the example agent did not start, running without it.\n  {exc}\n"
            f"  (Its environment is built by scripts/setup-agent-env.sh into"
            f" {agent_python().parents[1]}.)"
        )
        return None
    return worker


def serve(
    app_name: str,
    host: str,
    port: int,
    *,
    agent: bool = True,
    announce: Callable[[str], None] = print,
) -> None:
    """Start LiveKit, the agent and the example app on ``host:port``; return after Ctrl-C."""
    create_app: Callable[[Mapping[str, Any]], Flask] = import_module(
        f"examples.{app_name}.app"
    ).create_app
    with LiveKitDevServer() as livekit:
        reports_to = f"http://{host}:{port}/livekit"
        worker = _start_agent(livekit, announce, reports_to) if agent else None
        try:
            app = create_app(
                {
                    "LIVEKIT_URL": livekit.url,
                    "LIVEKIT_API_KEY": livekit.api_key,
                    "LIVEKIT_API_SECRET": livekit.api_secret,
                    "LIVEKIT_ONBOARDING_AGENT_NAME": worker.agent_name if worker else None,
                    # Which other origins' pages may call the routes: the host's environment.
                    "LIVEKIT_ONBOARDING_CORS_ORIGINS": os.environ.get(
                        "LIVEKIT_ONBOARDING_CORS_ORIGINS", ""
                    ),
                    **APPS[app_name],
                }
            )
            origins = app.extensions["livekit_onboarding"].config.cors_origins
            server = make_server(host, port, app, threaded=True)
            base = f"http://{host}:{server.server_port}"
            prefix = app.config["LIVEKIT_ONBOARDING_URL_PREFIX"].rstrip("/")
            announce(
                _banner(f"{base}/", f"{base}{prefix}/token", app_name, livekit, worker, origins)
            )
            try:
                server.serve_forever()
            finally:
                server.server_close()
                app.extensions["livekit_onboarding"].close()
        finally:
            if worker is not None:
                worker.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.serve_demo", description=__doc__)
    parser.add_argument("--app", choices=sorted(APPS), default="minimal")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=5000, help="5000 unless taken, then any free port"
    )
    parser.add_argument(
        "--no-agent", action="store_true", help="do not start the example onboarding agent"
    )
    args = parser.parse_args(argv)
    port = args.port if _port_is_free(args.host, args.port) else free_port(args.host)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        # Returns on Ctrl-C: werkzeug's serve_forever() ends quietly on KeyboardInterrupt.
        serve(
            args.app,
            args.host,
            port,
            agent=not args.no_agent,
            announce=lambda text: print(text, flush=True),
        )
    except KeyboardInterrupt:
        pass
    except LiveKitServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n  Stopped the demo app, its agent and its LiveKit dev server.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
