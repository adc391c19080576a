"""Per-call cost of each piece of the token path, measured in process against a real LiveKit.

    python -m benchmarks.costs [--calls 1000]

Wall time and CPU time (this process, and livekit-server's own CPU where a LiveKit call is
made) per call, one call after another, without HTTP or gunicorn in the way. This is what the
load test's ratios are made of: when a variant is slower than expected, the row that grows
says why. Written to ``benchmarks/results/costs.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .apps import DEPARTURE_TIMEOUT, EMPTY_TIMEOUT, IDENTITY
from .harness import RESULTS_DIR
from .serve import cpu_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.costs")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    import jwt
    from livekit import api

    from flask_livekit_onboarding.testing import LiveKitDevServer, ensure_livekit_server

    from .apps import _room_metadata, create_app

    rows: list[tuple[str, float, float, float | None]] = []
    with LiveKitDevServer(ensure_livekit_server(), log_level="warn") as livekit:
        key, secret = livekit.api_key, livekit.api_secret
        os.environ.update(LIVEKIT_URL=livekit.url, LIVEKIT_API_KEY=key, LIVEKIT_API_SECRET=secret)
        metadata = _room_metadata()

        def measure(label: str, call: Callable[[], Any], lk_calls: bool = False) -> None:
            for _ in range(min(200, args.calls)):
                call()
            lk_cpu = cpu_seconds([livekit.pid]) if livekit.pid else 0.0
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(args.calls):
                call()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            server = None
            if lk_calls and livekit.pid:
                server = 1000 * (cpu_seconds([livekit.pid]) - lk_cpu) / args.calls
            rows.append((label, 1000 * wall / args.calls, 1000 * cpu / args.calls, server))
            print(f"{label}: {rows[-1][1]:.3f} ms wall, {rows[-1][2]:.3f} ms CPU", flush=True)

        def request(name: str) -> api.CreateRoomRequest:
            return api.CreateRoomRequest(
                name=name,
                empty_timeout=EMPTY_TIMEOUT,
                departure_timeout=DEPARTURE_TIMEOUT,
                metadata=metadata,
            )

        def create_room(client: api.LiveKitAPI) -> Awaitable[Any]:
            return client.room.create_room(request("onboarding-" + secrets.token_urlsafe(16)))

        def participant_token(room_config: bool = True) -> api.AccessToken:
            grants = api.VideoGrants(
                room_join=True,
                room="r",
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
            )
            token = (
                api.AccessToken(key, secret)
                .with_identity(IDENTITY)
                .with_name("Ada Bench")
                .with_metadata('{"plan":"pro"}')
                .with_attributes({"role": "customer"})
                .with_grants(grants)
                .with_ttl(datetime.timedelta(seconds=900))
            )
            if room_config:
                token.with_room_config(
                    api.RoomConfiguration(
                        name="r",
                        empty_timeout=EMPTY_TIMEOUT,
                        departure_timeout=DEPARTURE_TIMEOUT,
                        metadata=metadata,
                    )
                )
            return token

        claims = {"iss": key, "sub": IDENTITY, "nbf": 0, "exp": 900, "name": "Ada Bench"}
        claims |= {"metadata": '{"plan":"pro"}', "attributes": {"role": "customer"}}
        claims |= {
            "video": {
                "roomJoin": True,
                "room": "r",
                "canPublish": True,
                "canSubscribe": True,
                "canPublishData": True,
            },
            "roomConfig": {
                "name": "r",
                "emptyTimeout": EMPTY_TIMEOUT,
                "departureTimeout": DEPARTURE_TIMEOUT,
                "metadata": metadata,
            },
        }
        measure("PyJWT encode of the same claims", lambda: jwt.encode(claims, secret))
        measure(
            "livekit-api AccessToken.to_jwt, participant + room_config",
            lambda: participant_token().to_jwt(),
        )
        built = participant_token()
        measure(
            "  of which Claims.asdict (dataclasses.asdict + MessageToDict)", built.claims.asdict
        )
        from flask_livekit_onboarding.tokens import mint_participant_token

        config = create_app("ours-on_join").extensions["livekit_onboarding"].config
        room_config = participant_token().claims.room_config
        measure(
            "this package's mint_participant_token, the same claims from livekit-api's types",
            lambda: mint_participant_token(
                config,
                room_name="r",
                identity=IDENTITY,
                name="Ada Bench",
                metadata='{"plan":"pro"}',
                attributes={"role": "customer"},
                room_config=room_config,
                ttl=900,
            ),
        )
        measure(
            "livekit-api AccessToken.to_jwt without room_config",
            lambda: participant_token(room_config=False).to_jwt(),
        )
        measure(
            "livekit-api admin token signed on every API call (_auth_header)",
            lambda: (
                api.AccessToken(key, secret).with_grants(api.VideoGrants(room_create=True)).to_jwt()
            ),
        )
        for variant in ("baseline-flask", "baseline-livekit-api", "ours-on_join", "ours-eager"):
            client = create_app(variant).test_client()

            def post(client: Any = client, variant: str = variant) -> None:
                response = client.post("/livekit/token", json={})
                if response.status_code != 201:
                    raise SystemExit(f"{variant} answered {response.status_code}")

            measure(
                f"{variant} request through Flask's test client",
                post,
                lk_calls=variant == "ours-eager",
            )

        async def naive() -> None:
            client = api.LiveKitAPI(livekit.url, key, secret)
            try:
                await create_room(client)
            finally:
                await client.aclose()

        measure(
            "asyncio.run(new LiveKitAPI + create_room + aclose) (naive)",
            lambda: asyncio.run(naive()),
            lk_calls=True,
        )

        loop = asyncio.new_event_loop()

        async def make_client() -> api.LiveKitAPI:
            return api.LiveKitAPI(livekit.url, key, secret)

        lkapi = loop.run_until_complete(make_client())
        measure(
            "create_room on this thread's loop, one session (no hop)",
            lambda: loop.run_until_complete(create_room(lkapi)),
            lk_calls=True,
        )
        loop.run_until_complete(lkapi.aclose())
        loop.close()

    lines = [
        f"# Per-call costs ({args.calls} sequential calls each)",
        "",
        "| step | wall ms | CPU ms (this process) | livekit-server CPU ms |",
        "|---|---:|---:|---:|",
    ]
    for label, wall, cpu, server in rows:
        server_text = f"{server:.3f}" if server is not None else "-"
        lines.append(f"| {label} | {wall:.3f} | {cpu:.3f} | {server_text} |")
    markdown = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "costs.md").write_text(markdown)
    print()
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
