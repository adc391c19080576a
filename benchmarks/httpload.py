"""A closed-loop HTTP driver for request lists wrk cannot express (signed webhooks, PATCHes).

Each of ``concurrency`` threads keeps one keep-alive connection and takes the next request of
the list until none is left; every request's latency is kept, so p50/p99 come from all of them.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def latency_summary(latencies_ms: Sequence[float], elapsed_s: float) -> dict[str, float]:
    return {
        "requests": len(latencies_ms),
        "rps": len(latencies_ms) / elapsed_s if elapsed_s else 0.0,
        "p50_ms": percentile(latencies_ms, 0.50),
        "p99_ms": percentile(latencies_ms, 0.99),
        "max_ms": max(latencies_ms, default=0.0),
    }


def drive(port: int, requests: Sequence[Request], concurrency: int = 8) -> dict[str, Any]:
    """Send ``requests`` to 127.0.0.1:``port``; req/s, latency, and each outcome's count.

    An outcome is the status code and, for a JSON object answer, its ``status`` field
    (``"200 duplicate"``); anything but a 2xx counts as an error.
    """
    cursor = iter(range(len(requests)))
    cursor_lock = threading.Lock()
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    results_lock = threading.Lock()

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        seen: Counter[str] = Counter()
        while True:
            with cursor_lock:
                index = next(cursor, None)
            if index is None:
                break
            request = requests[index]
            started = time.perf_counter()
            try:
                connection.request(
                    request.method, request.path, body=request.body, headers=dict(request.headers)
                )
                response = connection.getresponse()
                body = response.read()
            except OSError:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                seen["socket error"] += 1
                continue
            mine.append(1000 * (time.perf_counter() - started))
            seen[_outcome(response.status, body)] += 1
        connection.close()
        with results_lock:
            latencies.extend(mine)
            outcomes.update(seen)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    errors = sum(n for outcome, n in outcomes.items() if not outcome.startswith("2"))
    return {**latency_summary(latencies, elapsed), "errors": errors, "outcomes": dict(outcomes)}


def _outcome(status: int, body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return str(status)
    label = document.get("status") if isinstance(document, dict) else None
    return f"{status} {label}" if isinstance(label, str) else str(status)
