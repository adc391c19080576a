"""One whole token request in process: the package at a git revision and in this tree.

Each variant runs in a fresh interpreter: a Flask app with the extension, LiveKit stubbed by
``flask_livekit_onboarding.testing.FakeLiveKit`` (so only the package's own work is timed),
one signed-in user, ``POST /livekit/token`` with an empty JSON body. Rounds alternate between
the two trees, so both see the same machine; each figure is the best round, in microseconds
per request, with requests per second beside it.

    python -m benchmarks.token_flow [--before REF] [--rounds N] [--requests N] [--out FILE]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .report import write_markdown
from .revision import ROOT, checkout, measure_in

MODES = ("on_join", "eager")

TOKEN_REQUEST = """
import sys, time
from flask import Flask
from flask_livekit_onboarding import Identity, LiveKitOnboarding
from flask_livekit_onboarding.testing import FakeLiveKit

mode, requests = sys.argv[1], int(sys.argv[2])
app = Flask("bench")
app.config.update(
    LIVEKIT_URL="ws://127.0.0.1:9",
    LIVEKIT_API_KEY="bench-key",
    LIVEKIT_API_SECRET="bench-secret-that-is-long-enough-for-hs256",
    LIVEKIT_ONBOARDING_SIGNING_KEY="bench-signing-key-that-is-long-enough",
    LIVEKIT_ONBOARDING_ROOM_CREATION=mode,
    LIVEKIT_ONBOARDING_AGENT_NAME="guide",
)
onboarding = LiveKitOnboarding()
onboarding.identity_loader(lambda: Identity("ada", name="Ada Lovelace"))
onboarding.init_app(app, livekit=FakeLiveKit())
client = app.test_client()
for _ in range(50):
    assert client.post("/livekit/token", json={}).status_code == 201
started = time.perf_counter()
for _ in range(requests):
    client.post("/livekit/token", json={})
print((time.perf_counter() - started) / requests * 1e6)
"""


def per_request(source: Path, mode: str, requests: int) -> float:
    """Microseconds per token request of the package in ``source``."""
    return measure_in(source, TOKEN_REQUEST, mode, str(requests))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD", help="git revision measured as 'before'")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    options = parser.parse_args()

    best: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": checkout(options.before, Path(tmp)), "after": ROOT}
        for _ in range(options.rounds):
            for mode in MODES:
                for label, tree in trees.items():
                    took = per_request(tree, mode, options.requests)
                    best[mode, label] = min(took, best.get((mode, label), took))
    lines = [
        f"| room creation | `{options.before}` µs (req/s) | this tree µs (req/s) "
        "| req/s, after ÷ before |",
        "|---|---:|---:|---:|",
    ]
    for mode in MODES:
        before, after = best[mode, "before"], best[mode, "after"]
        lines.append(
            f"| `{mode}` | {before:.0f} ({1e6 / before:.0f}) | {after:.0f} ({1e6 / after:.0f}) "
            f"| {before / after:.2f} |"
        )
    write_markdown(lines, options.out)


if __name__ == "__main__":
    main()
