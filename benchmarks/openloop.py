"""Latency at a steady rate: Vegeta sends requests on a schedule, whether or not earlier ones have
been answered (an open loop), so queueing shows in the latencies instead of slowing the sender.

Every request carries ``X-Bench-Seq``; the apps (``BENCH_TIMING_DIR``) write when they started
and finished each numbered request, which splits every latency into the wait before the app
got the request and the time spent in it.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def run_vegeta(
    vegeta: str,
    url: str,
    *,
    rate: float,
    duration_s: float,
    timing_dir: Path | None = None,
    workers: int | None = None,
    timeout_s: int = 10,
    seq_base: int = 0,
    probe: dict[str, list[tuple[float, float]]] | None = None,
) -> dict[str, Any]:
    """Attack ``url`` at ``rate`` requests/s for ``duration_s`` (``rate`` 0: as fast as
    ``workers`` connections allow, a closed loop). Returns latency percentiles and, when
    ``timing_dir`` holds the apps' timing files, the per-request split."""
    expected = int(rate * duration_s * 1.1) + 100 if rate else 50_000
    with tempfile.TemporaryDirectory(prefix="vegeta-") as scratch:
        targets = Path(scratch) / "targets.jsonl"
        body = base64.b64encode(b"{}").decode()
        with targets.open("w") as out:
            for seq in range(expected):
                out.write(
                    json.dumps(
                        {
                            "method": "POST",
                            "url": url,
                            "body": body,
                            "header": {
                                "Content-Type": ["application/json"],
                                "X-Bench-Seq": [str(seq_base + seq)],
                            },
                        }
                    )
                    + "\n"
                )
        results = Path(scratch) / "results.bin"
        command = [
            vegeta,
            "attack",
            "-format=json",
            f"-targets={targets}",
            f"-rate={rate:g}/s" if rate else "-rate=0",
            f"-duration={duration_s:g}s",
            f"-timeout={timeout_s}s",
            f"-output={results}",
        ]
        if workers:
            command += [f"-workers={workers}", f"-max-workers={workers}"]
        subprocess.run(command, check=True, capture_output=True)
        encoded = subprocess.run(
            [vegeta, "encode", "-to=csv", str(results)], check=True, capture_output=True, text=True
        ).stdout
    rows = []
    for fields in csv.reader(encoded.splitlines()):
        # timestamp (ns), code, latency (ns), bytes out, bytes in, error, body, attack, seq, ...
        rows.append(
            {
                "sent": int(fields[0]) / 1e9,
                "code": int(fields[1]),
                "latency_ms": int(fields[2]) / 1e6,
                "error": fields[5],
                "seq": seq_base + int(fields[8]) % expected,
            }
        )
    if not rows:
        raise RuntimeError("vegeta recorded no request")
    latencies = [row["latency_ms"] for row in rows]
    first = min(row["sent"] for row in rows)
    last = max(row["sent"] for row in rows)
    errors = [row for row in rows if not 200 <= row["code"] < 300 or row["error"]]
    summary: dict[str, Any] = {
        "requests": len(rows),
        "rate": rate,
        "achieved_rate": (len(rows) - 1) / (last - first) if last > first else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "mean_ms": statistics.fmean(latencies),
        "errors": len(errors),
        "error_samples": sorted({row["error"] or f"HTTP {row['code']}" for row in errors})[:5],
        "window": (first, last + max(latencies) / 1000),
    }
    if timing_dir is not None:
        summary["anatomy"] = anatomy(rows, read_timing(timing_dir, expected))
        summary["anatomy"]["stalls"] = stall_evidence(
            rows, read_timing(timing_dir, expected), read_gc_pauses(timing_dir), probe or {}
        )
    return summary


def stall_evidence(
    rows: list[dict[str, Any]],
    timing: dict[int, tuple[float, float, str]],
    gc_pauses: list[tuple[float, float]],
    probe_result: dict[str, list[tuple[float, float]]],
) -> dict[str, Any]:
    """What the slowest 1 % of requests waited on, while the app had them.

    ``probe`` holds (sent, latency ms) of CreateRoom calls a separate process made directly to
    LiveKit during the run, on its own connection: if they were slow while the slow requests
    were in the app, LiveKit itself was slow; ``gc_ms`` is the app's garbage-collector time
    inside those intervals; ``lateness`` how late the probe's own timer fired then (the
    machine, with LiveKit out of the picture).
    """
    probe = probe_result.get("createroom", [])
    lateness = probe_result.get("lateness", [])
    joined = [(row["latency_ms"], timing[row["seq"]]) for row in rows if row["seq"] in timing]
    if not joined:
        return {}
    joined.sort(key=lambda item: item[0])
    slow = joined[-max(1, len(joined) // 100) :]
    probe_all = [latency for _, latency in probe]
    probe_during, gc_during, late_during = [], [], []
    for _, (start, end, _worker) in slow:
        inside = [
            lat for sent, lat in probe if start <= sent <= end or start <= sent + lat / 1000 <= end
        ]
        probe_during.append(max(inside) if inside else None)
        late = [ms for at, ms in lateness if start <= at <= end]
        late_during.append(max(late) if late else None)
        gc_during.append(1000 * sum(max(0.0, min(end, b) - max(start, a)) for a, b in gc_pauses))
    seen = [value for value in probe_during if value is not None]
    late_seen = [value for value in late_during if value is not None]
    late_all = [ms for _, ms in lateness]
    return {
        "gc_pauses": len(gc_pauses),
        "gc_longest_ms": 1000 * max((b - a for a, b in gc_pauses), default=0.0),
        "slow_in_app_gc_ms_mean": statistics.fmean(gc_during),
        "probe_calls": len(probe_all),
        "probe_p50_ms": percentile(probe_all, 50) if probe_all else None,
        "probe_p99_ms": percentile(probe_all, 99) if probe_all else None,
        "probe_max_ms": max(probe_all) if probe_all else None,
        "slow_with_probe_overlap": len(seen),
        "probe_max_during_slow_median_ms": statistics.median(seen) if seen else None,
        "lateness_p50_ms": percentile(late_all, 50) if late_all else None,
        "lateness_max_during_slow_median_ms": statistics.median(late_seen) if late_seen else None,
    }


def read_timing(directory: Path, expected: int) -> dict[int, tuple[float, float, str]]:
    """``seq -> (app start, app end, worker pid/thread)`` from the apps' timing files."""
    timing: dict[int, tuple[float, float, str]] = {}
    for path in directory.glob("timing-*.txt"):
        pid = path.stem.removeprefix("timing-")
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) == 4 and fields[0] != "gc":
                timing[int(fields[0])] = (float(fields[1]), float(fields[2]), f"{pid}/{fields[3]}")
    return timing


def read_gc_pauses(directory: Path) -> list[tuple[float, float]]:
    """Garbage-collector passes over 1 ms in the app processes, as (start, end) epoch seconds."""
    pauses = []
    for path in directory.glob("timing-*.txt"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if fields and fields[0] == "gc":
                pauses.append((float(fields[1]), float(fields[2])))
    return pauses


def anatomy(
    rows: list[dict[str, Any]], timing: dict[int, tuple[float, float, str]]
) -> dict[str, Any]:
    """Where the time of the median and of the slowest 1 % of requests went.

    ``before_app``: from the moment Vegeta sent the request to the moment the Flask app started
    on it (connection setup, gunicorn's queue for a free thread, the GIL); ``in_app``: the app
    itself (for the eager variants, mostly waiting on LiveKit); ``after_app``: writing the
    answer back.
    """
    joined = []
    for row in rows:
        app = timing.get(row["seq"])
        if app is None:
            continue
        start, end, worker = app
        received = row["sent"] + row["latency_ms"] / 1000
        joined.append(
            {
                "latency_ms": row["latency_ms"],
                "before_app_ms": 1000 * (start - row["sent"]),
                "in_app_ms": 1000 * (end - start),
                "after_app_ms": 1000 * (received - end),
                "worker": worker.split("/")[0],
                "sent": row["sent"],
            }
        )
    if not joined:
        return {"joined": 0}
    first_sent = min(item["sent"] for item in joined)
    joined.sort(key=lambda item: item["latency_ms"])
    slow = joined[-max(1, len(joined) // 100) :]
    middle = joined[len(joined) // 2 - len(joined) // 20 : len(joined) // 2 + len(joined) // 20 + 1]

    def mean_of(group: list[dict[str, Any]]) -> dict[str, float]:
        return {
            key: statistics.fmean(item[key] for item in group)
            for key in ("latency_ms", "before_app_ms", "in_app_ms", "after_app_ms")
        }

    in_app = [item["in_app_ms"] for item in joined]
    before = [item["before_app_ms"] for item in joined]
    per_worker: dict[str, int] = {}
    for item in joined:
        per_worker[item["worker"]] = per_worker.get(item["worker"], 0) + 1
    return {
        "joined": len(joined),
        "median_requests": mean_of(middle),
        "slowest_1pct": mean_of(slow),
        "in_app_p50_ms": percentile(in_app, 50),
        "in_app_p99_ms": percentile(in_app, 99),
        "before_app_p50_ms": percentile(before, 50),
        "before_app_p99_ms": percentile(before, 99),
        "requests_per_worker": sorted(per_worker.values(), reverse=True),
        # When the slowest requests were sent (seconds into the run): clustered or spread out.
        "slowest_sent_at_s": sorted(round(item["sent"] - first_sent, 2) for item in slow)[:20],
    }
