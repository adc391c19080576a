"""What OpenTelemetry costs the ``on_join`` token path, side by side in one run.

    python -m benchmarks.telemetry [--requests 1000] [--rounds 7] [--base 1a01f91]

Three variants of the same host app (``on_join``: no LiveKit call, so the figure is the
route's own cost) each serve ``--requests`` token requests through the Flask test client in a
process of their own, round after round, interleaved (each round starting with another) so
that drift of the machine hits all three alike:

- ``before``: the package as it was before telemetry (``--base``, exported with ``git archive``);
- ``api, no SDK``: this package with only ``opentelemetry-api`` (every span a no-op);
- ``SDK + OTLP``: this package with the OpenTelemetry SDK exporting spans and metrics over
  OTLP/HTTP (batched) to a local sink that accepts and discards them.

Written to ``benchmarks/results/telemetry.md``. No LiveKit is needed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .report import write_markdown
from .revision import ROOT, checkout

RESULTS_DIR = Path(__file__).parent / "results"
BASE = "1a01f91"
VARIANTS = ("before", "api, no SDK", "SDK + OTLP")


def worker(variant: str, requests: int) -> dict[str, Any]:
    """Serve ``requests`` token requests in this process; the package comes from PYTHONPATH."""
    if variant == "SDK + OTLP":
        _configure_sdk()
    from flask import Flask

    import flask_livekit_onboarding
    from flask_livekit_onboarding import Identity, LiveKitOnboarding

    app = Flask("bench")
    app.config.update(
        LIVEKIT_URL="ws://127.0.0.1:7880",
        LIVEKIT_API_KEY="devkey",
        LIVEKIT_API_SECRET="secret-for-the-telemetry-benchmark-0123456789",
        LIVEKIT_ONBOARDING_ROOM_CREATION="on_join",
        LIVEKIT_ONBOARDING_AGENT_NAME="onboarding-agent",
    )
    onboarding = LiveKitOnboarding()
    onboarding.identity_loader(lambda: Identity("ada", name="Ada"))
    onboarding.context_provider(lambda identity: {"plan": "pro", "step": "welcome"})
    onboarding.init_app(app)
    client = app.test_client()
    for _ in range(min(200, requests)):
        assert client.post("/livekit/token", json={}).status_code == 201
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(requests):
        client.post("/livekit/token", json={})
    elapsed = time.perf_counter() - started
    if variant == "SDK + OTLP":
        # The batch exports run on background threads: their share of the cost counts too.
        from opentelemetry import trace

        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    cpu = time.process_time() - cpu_started
    if variant == "SDK + OTLP":
        from opentelemetry import metrics, trace

        trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]
        metrics.get_meter_provider().shutdown()  # type: ignore[attr-defined]
    return {
        "variant": variant,
        "rps": requests / elapsed,
        "cpu_rps": requests / cpu,
        "package": str(Path(flask_livekit_onboarding.__file__).parent),
    }


def _configure_sdk() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=1000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts everything and keeps nothing."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def run_variant(variant: str, package_root: Path, requests: int, endpoint: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(package_root), str(ROOT)]),
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
    }
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.telemetry", "--worker", variant, "--requests",
         str(requests)],
        cwd=package_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"{variant}: {result.stderr}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.telemetry")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--base", default=BASE, help="the commit before telemetry")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.requests)))
        return 0
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
    rps: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    cpu_rps: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as scratch:
        base = checkout(args.base, Path(scratch))
        roots = {"before": base, "api, no SDK": ROOT, "SDK + OTLP": ROOT}
        for round_ in range(args.rounds):
            # Each round starts with another variant, so no one always runs after the same.
            for variant in VARIANTS[round_ % 3 :] + VARIANTS[: round_ % 3]:
                answer = run_variant(variant, roots[variant], args.requests, endpoint)
                assert Path(answer["package"]).parent == roots[variant], answer
                rps[variant].append(answer["rps"])
                cpu_rps[variant].append(answer["cpu_rps"])
                print(
                    f"round {round_ + 1}: {variant}: {answer['cpu_rps']:.0f} req per CPU second, "
                    f"{answer['rps']:.0f} req/s",
                    flush=True,
                )
    sink.shutdown()
    before = statistics.median(cpu_rps["before"])
    before_wall = statistics.median(rps["before"])
    lines = [
        "# OpenTelemetry on the `on_join` token path (POST /livekit/token)",
        "",
        f"{args.rounds} interleaved rounds of {args.requests} requests per variant through the "
        f"Flask test client, one process per round and variant, {datetime.date.today()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs (shared). `before` is "
        f"commit `{args.base}`.",
        "",
        "Requests per CPU second of the serving process (its export threads included) are the "
        "figure to compare: wall-clock req/s on a shared machine moves with its other load.",
        "",
        "| variant | req per CPU s (median) | min-max | vs before | wall req/s (median) "
        "| vs before |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant in VARIANTS:
        values, wall = cpu_rps[variant], statistics.median(rps[variant])
        median = statistics.median(values)
        lines.append(
            f"| {variant} | {median:.0f} | {min(values):.0f}-{max(values):.0f} "
            f"| {median / before:.2f} | {wall:.0f} | {wall / before_wall:.2f} |"
        )
    write_markdown(lines, args.out / "telemetry.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
