"""What a hostile request body costs the token endpoint, beside a benign body of the same size.

    python -m benchmarks.bodies [--repeat 5]

The pathological body (``[`` x 65, then an unterminated string of escaped quotes) once made
the depth pre-scan quadratic. Each row posts it and a benign body of the same size (one long
string) through the Flask test client, signed in and not, and reports the median wall time of
each: the two columns should grow alike, linearly in the size. Written to
``benchmarks/results/bodies.md``; no LiveKit is needed (both bodies are refused before any
LiveKit call).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from pathlib import Path

from flask import Flask

from flask_livekit_onboarding import Identity, LiveKitOnboarding

RESULTS_DIR = Path(__file__).parent / "results"
SIZES_KB = (16, 64, 256)


def pathological(size: int) -> bytes:
    head = b"[" * 65 + b'"'
    return head + b'\\"' * ((size - len(head)) // 2)


def benign(size: int) -> bytes:
    head, tail = b'{"participant_name":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def make_app(signed_in: bool) -> Flask:
    app = Flask(__name__)
    app.config.update(
        LIVEKIT_URL="ws://127.0.0.1:7880",
        LIVEKIT_API_KEY="devkey",
        LIVEKIT_API_SECRET="secret-for-the-body-benchmark-0123456789",
        LIVEKIT_ONBOARDING_MAX_BODY_BYTES=300 * 1024,
    )
    onboarding = LiveKitOnboarding()
    onboarding.identity_loader(lambda: Identity("ada") if signed_in else None)
    onboarding.init_app(app)
    return app


def timed(app: Flask, body: bytes, repeat: int) -> tuple[float, int]:
    client = app.test_client()
    times, status = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.post("/livekit/token", data=body, content_type="application/json")
        times.append(time.perf_counter() - start)
        status = response.status_code
    return 1000 * statistics.median(times), status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bodies")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    lines = [
        "# Hostile and benign bodies of the same size (POST /livekit/token)",
        "",
        f"Median of {args.repeat} requests each, {datetime.date.today().isoformat()}.",
        "",
        "| caller | size | pathological | benign | ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for signed_in in (True, False):
        app = make_app(signed_in)
        for size_kb in SIZES_KB:
            size = size_kb * 1024
            hostile_ms, hostile_status = timed(app, pathological(size), args.repeat)
            benign_ms, benign_status = timed(app, benign(size), args.repeat)
            caller = "signed in" if signed_in else "not signed in"
            lines.append(
                f"| {caller} | {size_kb} KiB | {hostile_ms:.2f} ms ({hostile_status}) "
                f"| {benign_ms:.2f} ms ({benign_status}) | {hostile_ms / benign_ms:.2f} |"
            )
            print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bodies.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
