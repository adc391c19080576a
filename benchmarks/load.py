"""Driving a server with wrk and reading back its summary."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "post_token.lua"
#: wrk waits out its full duration even when every thread has stopped; a counted run uses a
#: long duration and is interrupted (wrk prints its summary on SIGINT) once all threads are done.
_COUNTED_RUN_CEILING_S = 900


@dataclass(frozen=True)
class LoadSettings:
    """wrk settings, identical for every variant."""

    threads: int = 2
    connections: int = 16
    timeout_s: int = 10


def find_wrk() -> str:
    wrk = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if wrk is None:
        raise SystemExit(
            "wrk is not installed: run scripts/install-system-deps.sh (or apt-get install wrk)"
        )
    return wrk


def wrk_version(wrk: str) -> str:
    result = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).splitlines()[0].strip()


def run_wrk(
    wrk: str,
    url: str,
    settings: LoadSettings,
    *,
    duration_s: float | None = None,
    requests: int | None = None,
) -> dict[str, Any]:
    """Run wrk for ``duration_s`` seconds or until ``requests`` responses; return its summary.

    The summary has ``requests``, ``rps``, ``p50_ms``, ``p99_ms``, ``errors`` (non-2xx answers
    plus socket errors and timeouts) and the raw counters.
    """
    if (duration_s is None) == (requests is None):
        raise ValueError("give exactly one of duration_s and requests")
    duration = int(duration_s) if duration_s is not None else _COUNTED_RUN_CEILING_S
    command = [
        wrk,
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{duration}s",
        f"--timeout={settings.timeout_s}s",
        "--latency",
        "-s",
        str(SCRIPT),
        url,
    ]
    if requests is not None:
        per_thread = -(-requests // settings.threads)
        command += ["--", str(per_thread)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    lines = []
    finished_threads = 0
    for line in process.stdout:
        lines.append(line)
        if line.startswith("WRK_THREAD_DONE"):
            finished_threads += 1
            if finished_threads == settings.threads:
                process.send_signal(signal.SIGINT)
    stderr = process.stderr.read() if process.stderr is not None else ""
    process.wait()
    summary = next((line for line in lines if line.startswith("WRK_JSON ")), None)
    if summary is None:
        raise RuntimeError(f"wrk printed no summary:\n{''.join(lines)}\n{stderr}")
    raw = json.loads(summary.removeprefix("WRK_JSON "))
    socket_errors = (
        raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    )
    return {
        "requests": raw["requests"],
        "duration_s": raw["duration_us"] / 1e6,
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
        "errors": raw["non2xx"] + socket_errors,
        "non2xx": raw["non2xx"],
        "socket_errors": socket_errors,
        "wrk_raw": raw,
    }
