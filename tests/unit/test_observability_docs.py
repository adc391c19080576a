"""docs/observability.md: each exporter setup runs as pasted, and its tables match the code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from flask_livekit_onboarding.devserver import free_port
from flask_livekit_onboarding.telemetry import Telemetry
from tests.conftest import UNIT_CONFIG
from tests.otlp import otlp_collector

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "observability.md"
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)

#: Appended to a setup: a host app issuing one token (``on_join``: no LiveKit call needed).
HOST_APP = textwrap.dedent(
    f"""
    from flask import Flask
    from flask_livekit_onboarding import Identity, LiveKitOnboarding

    onboarding = LiveKitOnboarding()
    onboarding.identity_loader(lambda: Identity(identity="ada"))
    app = Flask("host")
    app.config.update({UNIT_CONFIG!r}, LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    onboarding.init_app(app)
    print("STATUS", app.test_client().post("/livekit/token", json={{}}).status_code, flush=True)
    """
)


def section(title: str) -> str:
    """The text under the heading ``title`` (e.g. ``## Metrics``), up to the next as high."""
    level = len(title.split(" ")[0])
    found: list[str] = []
    inside = fenced = False
    for line in DOC.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"(#+) ", line)
        if inside and heading and len(heading.group(1)) <= level:
            break
        if inside:
            found.append(line)
        inside = inside or line.rstrip("\n") == title
    assert found, f"no section {title!r}"
    return "".join(found)


def setup_code(title: str) -> str:
    (code,) = [
        m.group("code") for m in _FENCE.finditer(section(title)) if m.group("lang") == "python"
    ]
    return code


def run(code: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "STATUS 201" in result.stdout
    return result.stdout


def test_the_console_setup_prints_the_token_span_and_metric() -> None:
    shutdown = "\ntracer_provider.shutdown()\nmetrics.get_meter_provider().shutdown()\n"  # flush
    output = run(setup_code("### Console: a first look") + HOST_APP + shutdown)
    assert '"name": "onboarding.token"' in output
    assert '"name": "livekit.onboarding.tokens.issued"' in output


def test_the_otlp_setup_reaches_a_collector() -> None:
    shutdown = "\ntracer_provider.shutdown()\nmetrics.get_meter_provider().shutdown()\n"
    with otlp_collector() as collector:
        run(
            setup_code("### OTLP to a collector") + HOST_APP + shutdown,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint},
        )
        span = collector.wait_for_span("onboarding.token", timeout=10)
        collector.wait_for_metric("livekit.onboarding.tokens.issued", timeout=10)
    assert span.service == "onboarding-web"


@pytest.mark.prometheus
def test_the_prometheus_setup_serves_the_metrics() -> None:
    port = free_port()
    scrape = textwrap.dedent(
        f"""
        import urllib.request
        page = urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=10).read()
        print(page.decode())
        """
    )
    output = run(
        setup_code("### Prometheus scraping") + HOST_APP + scrape, {"METRICS_PORT": str(port)}
    )
    assert re.search(
        r"^livekit_onboarding_tokens_issued_total\{"
        r'.*livekit_onboarding_session="at_join".*\} 1\.0$',
        output,
        re.MULTILINE,
    ), output


def test_the_metrics_table_lists_exactly_the_instruments_with_their_units() -> None:
    table = section("## Metrics")
    documented = set(re.findall(r"^\| `([\w.]+)` \| \w+ \| `([^`]+)` \|", table, re.MULTILINE))
    telemetry = Telemetry(meter_provider=MeterProvider())
    instruments = {
        (value.name, value.unit)
        for value in vars(telemetry).values()
        if hasattr(value, "name") and hasattr(value, "unit")
    }
    assert documented == instruments


def test_the_job_metadata_example_is_what_the_reader_reads() -> None:
    from flask_livekit_onboarding.envelope import trace_context

    (example,) = [
        m.group("code")
        for m in _FENCE.finditer(section("## One trace from the click to the agent"))
        if m.group("lang") == "json"
    ]
    assert (
        trace_context(example)["traceparent"] == json.loads(example)["trace_context"]["traceparent"]
    )
