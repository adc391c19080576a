"""Profile one variant's token requests with pyinstrument, in process, against a real LiveKit.

    python -m benchmarks.profile ours-eager --requests 2000

Requests run one after another through Flask's test client, so the profile of the request
thread is the per-request wall time (waits on LiveKit included). When the variant runs an
event-loop thread (ours-eager), that thread is profiled too: its profile is where the
livekit-api call spends CPU. Text reports go to ``benchmarks/results/profile-<variant>-*.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from pathlib import Path

from .apps import VARIANTS, create_app
from .harness import RESULTS_DIR
from .serve import ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=0.0002, help="sampling interval, s")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--show-all", action="store_true", help="keep library frames")
    args = parser.parse_args(argv)

    from pyinstrument import Profiler

    from flask_livekit_onboarding.testing import LiveKitDevServer, ensure_livekit_server

    with LiveKitDevServer(ensure_livekit_server(), log_level="warn") as livekit:
        os.environ.update(
            LIVEKIT_URL=livekit.url,
            LIVEKIT_API_KEY=livekit.api_key,
            LIVEKIT_API_SECRET=livekit.api_secret,
        )
        app = create_app(args.variant)
        client = app.test_client()

        def post() -> None:
            response = client.post("/livekit/token", json={})
            if response.status_code != 201:
                raise SystemExit(f"{args.variant} answered {response.status_code}: {response.text}")

        for _ in range(100):
            post()
        loop = _running_loop()
        loop_profiler = Profiler(interval=args.interval, async_mode="disabled")
        if loop is not None:
            asyncio.run_coroutine_threadsafe(_call(loop_profiler.start), loop).result()
        profiler = Profiler(interval=args.interval, async_mode="disabled")
        started = time.perf_counter()
        cpu_started = time.process_time()
        profiler.start()
        for _ in range(args.requests):
            post()
        profiler.stop()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        if loop is not None:
            asyncio.run_coroutine_threadsafe(_call(loop_profiler.stop), loop).result()

    args.out.mkdir(parents=True, exist_ok=True)
    header = (
        f"{args.variant}: {args.requests} sequential requests, "
        f"{1000 * elapsed / args.requests:.2f} ms wall and "
        f"{1000 * cpu / args.requests:.2f} ms process CPU per request\n\n"
    )
    print(header)
    reports = {"request": profiler}
    if loop is not None:
        reports["loop"] = loop_profiler
    for thread, report in reports.items():
        text = report.output_text(unicode=True, color=False, show_all=args.show_all)
        text = text.replace(f"{ROOT}/", "")
        path = args.out / f"profile-{args.variant}-{thread}.txt"
        path.write_text(header + f"{thread} thread\n" + text)
        print(f"--- {thread} thread ({path})\n{text}")
    return 0


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop some thread of this process is running (the LiveKit bridge's), if any."""
    for candidate in gc.get_objects():
        if isinstance(candidate, asyncio.AbstractEventLoop) and candidate.is_running():
            return candidate
    return None


async def _call(function: object) -> None:
    function()  # type: ignore[operator]


if __name__ == "__main__":
    raise SystemExit(main())
