"""How cost grows with live rooms, webhook events and context updates.

    python -m benchmarks.scale [--quick] [--sizes 0 1000 5000] [--events 1000 10000]

Against one real livekit-server (and a two-node cluster sharing Redis), with real processes:

- rooms: live onboarding rooms are started through this package (one user each, in process)
  at a bounded rate up to each size; at each size the token endpoint (``eager`` and
  ``on_join``, resume policy) is driven by wrk against gunicorn, and ``list_sessions``,
  ``flask livekit rooms`` and ``GET /rooms/<name>`` are timed in process. The rooms are closed
  at the same bounded rate afterwards;
- webhooks: signed events made in process, posted over HTTP to gunicorn, distinct ones plus
  duplicates, with the in-process and the Redis ledger;
- context updates on one room and across 100 rooms, with in-process and Redis locks, and how
  long each update waited for its room's lock;
- the token path through a two-node cluster sharing Redis, against one node.

Written to ``benchmarks/results/scale/`` (``results.json``, ``results.md``, ``results.png``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .apps import ROOM_PREFIX
from .harness import RESULTS_DIR, machine_info
from .httpload import Request, drive, latency_summary, percentile
from .load import LoadSettings, find_wrk, run_wrk
from .report import write_results
from .scale_app import LOCK_WAITS_PATH, STAFF, USER_HEADER
from .scale_report import plot, render
from .serve import ROOT, GunicornServer, ServerSettings, free_port, rss_bytes

TOKEN_MODES = ("eager", "on_join")
LEDGERS = ("memory", "redis")
JSON = {"Content-Type": "application/json"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for development")
    parser.add_argument("--sizes", type=int, nargs="+", help="live rooms (0 1000 5000)")
    parser.add_argument("--events", type=int, nargs="+", help="distinct events (1000 10000)")
    parser.add_argument(
        "--duplicates", type=float, default=0.2, help="duplicates per distinct event (0.2)"
    )
    parser.add_argument("--create-rate", type=float, default=100.0, help="rooms per second")
    parser.add_argument("--duration", type=int, help="seconds of wrk per token run (5)")
    parser.add_argument("--updates", type=int, help="context updates per run (400)")
    parser.add_argument("--skip-cluster", action="store_true", help="no two-node comparison")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "scale")
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ([0, 20, 60] if args.quick else [0, 1000, 5000])
    args.events = args.events or ([200, 500] if args.quick else [1000, 10000])
    args.duration = args.duration or (2 if args.quick else 5)
    args.updates = args.updates or (60 if args.quick else 400)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from flask_livekit_onboarding.devserver import LiveKitCluster
    from flask_livekit_onboarding.testing import LiveKitDevServer, ensure_livekit_server

    binary = ensure_livekit_server()
    wrk = find_wrk()
    logs = args.out / "logs"
    results: dict[str, Any] = {"meta": machine_info(binary, wrk), "settings": vars_of(args)}
    started = time.monotonic()
    with redis_server() as redis_url, LiveKitDevServer(binary, log_level="warn") as livekit:
        env = {
            "LIVEKIT_URL": livekit.url,
            "LIVEKIT_API_KEY": livekit.api_key,
            "LIVEKIT_API_SECRET": livekit.api_secret,
        }
        os.environ.update(env)
        bench = Bench(args, env, redis_url, wrk, logs)
        results["rooms"] = bench.room_curves(livekit.pid)
        results["webhooks"] = bench.webhook_curves()
        results["context"] = bench.context_curves()
        if not args.skip_cluster:
            single = bench.token_runs(env, "single")
            with LiveKitCluster(
                binary,
                redis_url=redis_url.removesuffix("/0") + "/1",
                nodes=2,
                api_key=livekit.api_key,
                api_secret=livekit.api_secret,
                log_level="warn",
            ) as cluster:
                cluster_env = {**env, "LIVEKIT_URL": cluster.urls[0]}
                results["cluster"] = {
                    "single": single,
                    "two_nodes": bench.token_runs(cluster_env, "cluster"),
                }
    results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    markdown = write_results(results, args.out, render, plot)
    print(markdown)
    print(f"written: {args.out / 'results.json'}, results.md, results.png")
    return 0


def vars_of(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings as JSON; paths inside the repository relative to it."""
    return {
        key: _shown(value) if isinstance(value, Path) else value
        for key, value in vars(args).items()
    }


def _shown(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


class Bench:
    """The measurements, sharing the run's settings, LiveKit credentials and Redis."""

    def __init__(
        self, args: argparse.Namespace, env: dict[str, str], redis_url: str, wrk: str, logs: Path
    ) -> None:
        self.args = args
        self.env = env
        self.redis_url = redis_url
        self.wrk = wrk
        self.logs = logs

    def server(self, label: str, mode: str, env: dict[str, str]) -> GunicornServer:
        return GunicornServer(
            label,
            env,
            self.logs / f"{label}.log",
            ServerSettings(),
            app=f"benchmarks.scale_app:create_app({mode!r})",
        )

    def token_runs(self, env: dict[str, str], label: str) -> dict[str, Any]:
        """The token endpoint in both creation modes: wrk's req/s, p50 and p99."""
        runs = {}
        for mode in TOKEN_MODES:
            with self.server(f"{label}-token-{mode}", mode, env) as server:
                run_wrk(self.wrk, server.url, LoadSettings(), duration_s=1)
                run = run_wrk(self.wrk, server.url, LoadSettings(), duration_s=self.args.duration)
            run.pop("wrk_raw")
            runs[mode] = run
            print(f"{label} token {mode}: {describe(run)}", flush=True)
        return runs

    def room_curves(self, livekit_pid: int | None) -> list[dict[str, Any]]:
        """At each size: the token path, the listings and one room's status."""
        from livekit import api

        from flask_livekit_onboarding.sessions import list_sessions

        from .scale_app import create_app

        app = create_app("eager")
        client = app.test_client()
        state = app.extensions["livekit_onboarding"]
        runner = app.test_cli_runner()
        status_path = f"/livekit/rooms/{self.own_room(client)}"
        curves = []
        live = 0
        try:
            for size in self.args.sizes:
                creation = paced(
                    range(live, size),
                    self.args.create_rate,
                    lambda i: _expect(
                        client.post("/livekit/token", json={}, headers={USER_HEADER: f"u{i}"}),
                        201,
                    ),
                )
                live = max(live, size)
                point: dict[str, Any] = {"rooms": size, "creation": creation}
                point["token"] = self.token_runs(self.env, f"rooms{size}")
                with app.app_context():
                    point["list_sessions"] = timed(lambda: list_sessions(state), repeat=5)
                    listed = len(list_sessions(state))
                # LiveKit's part of it: one ListRooms returning every live room.
                point["list_rooms_call"] = timed(
                    lambda: state.livekit.call(
                        lambda lk: lk.room.list_rooms(api.ListRoomsRequest())
                    ),
                    repeat=5,
                )
                point["listed"] = listed
                point["cli_rooms"] = timed(
                    lambda: _expect_cli(runner.invoke(args=["livekit", "rooms", "--json"])),
                    repeat=3,
                )
                point["room_status"] = timed(
                    lambda: _expect(
                        client.get(status_path, headers={USER_HEADER: "u-status"}), 200
                    ),
                    repeat=50,
                )
                point["livekit_rss_mib"] = rss_bytes([livekit_pid]) / 2**20 if livekit_pid else None
                print(
                    f"{size} rooms: listed {listed}, list_sessions p50 "
                    f"{point['list_sessions']['p50_ms']:.1f} ms, status p50 "
                    f"{point['room_status']['p50_ms']:.1f} ms",
                    flush=True,
                )
                curves.append(point)
        finally:
            deleted = close_rooms(self.env, self.args.create_rate)
            state.close()
            print(f"closed {deleted} rooms", flush=True)
        return curves

    @staticmethod
    def own_room(client: Any) -> str:
        response = client.post("/livekit/token", json={}, headers={USER_HEADER: "u-status"})
        return str(_expect(response, 201).get_json()["room_name"])

    def ledger_env(self, ledger: str) -> dict[str, str]:
        return {**self.env, "BENCH_REDIS_URL": self.redis_url if ledger == "redis" else ""}

    def webhook_curves(self) -> list[dict[str, Any]]:
        """Events per second and p99 per worker, distinct events plus duplicates."""
        key, secret = self.env["LIVEKIT_API_KEY"], self.env["LIVEKIT_API_SECRET"]
        curves = []
        for events in self.args.events:
            bodies = signed_events(key, secret, events, self.args.duplicates)
            for ledger in LEDGERS:
                label = f"webhooks-{ledger}-{events}"
                with self.server(label, "on_join", self.ledger_env(ledger)) as server:
                    run = drive(server.port, bodies)
                # A duplicate that arrives while its first copy is being handled is told to
                # retry later (503), as LiveKit does: the protocol, not a failure.
                retry_later = run["outcomes"].get("503", 0)
                run["errors"] -= retry_later
                run.update(
                    ledger=ledger, distinct=events, posted=len(bodies), retry_later=retry_later
                )
                curves.append(run)
                print(f"{label}: {describe(run)} {run['outcomes']}", flush=True)
        return curves

    def context_curves(self) -> list[dict[str, Any]]:
        """Context updates per second on one room and across 100, with the lock waits."""
        curves = []
        for ledger in LEDGERS:
            with self.server(f"context-{ledger}", "eager", self.ledger_env(ledger)) as server:
                rooms = [start_room(server.port, f"ctx-{ledger}-{i}") for i in range(100)]
                for spread in (1, 100):
                    updates = [
                        Request(
                            "PATCH",
                            f"/livekit/rooms/{rooms[i % spread]}/context",
                            json.dumps({"context": {"step": f"s{i}"}}).encode(),
                            {**JSON, USER_HEADER: STAFF},
                        )
                        for i in range(self.args.updates)
                    ]
                    drive(server.port, [Request("GET", LOCK_WAITS_PATH)], concurrency=1)
                    run = drive(server.port, updates)
                    waits = lock_waits(server.port)
                    run.update(
                        locks=ledger,
                        rooms=spread,
                        lock_wait_p50_ms=percentile(waits, 0.5),
                        lock_wait_p99_ms=percentile(waits, 0.99),
                    )
                    curves.append(run)
                    print(f"context {ledger} x{spread} rooms: {describe(run)}", flush=True)
        close_rooms(self.env, self.args.create_rate)
        return curves


def describe(run: dict[str, Any]) -> str:
    return (
        f"{run['rps']:.0f} req/s, p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, "
        f"{run['errors']} errors"
    )


def paced(items: range, rate: float, call: Any) -> dict[str, Any]:
    """``call(item)`` for each item, no faster than ``rate`` per second; latency summary."""
    latencies = []
    started = time.perf_counter()
    for count, item in enumerate(items):
        due = started + count / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        began = time.perf_counter()
        call(item)
        latencies.append(1000 * (time.perf_counter() - began))
    return latency_summary(latencies, time.perf_counter() - started)


def timed(call: Any, repeat: int) -> dict[str, Any]:
    latencies = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        latencies.append(1000 * (time.perf_counter() - began))
    return latency_summary(latencies, sum(latencies) / 1000)


def _expect(response: Any, status: int) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"expected {status}, got {response.status_code}: {response.data!r}")
    return response


def _expect_cli(result: Any) -> Any:
    if result.exit_code != 0:
        raise RuntimeError(f"flask livekit rooms failed: {result.output}")
    return result


def start_room(port: int, user: str) -> str:
    """Start ``user``'s onboarding room through the server on ``port``; its name."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/livekit/token", b"{}", {**JSON, USER_HEADER: user})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 201:
        raise RuntimeError(f"could not start a room for {user}: {response.status} {body!r}")
    return str(json.loads(body)["room_name"])


def lock_waits(port: int) -> list[float]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", LOCK_WAITS_PATH)
        waits: list[float] = json.loads(connection.getresponse().read())["waits_ms"]
        return waits
    finally:
        connection.close()


def signed_events(key: str, secret: str, distinct: int, duplicates: float) -> list[Request]:
    """``distinct`` participant_joined events signed as LiveKit signs them, plus duplicates."""
    from google.protobuf.json_format import MessageToDict
    from livekit import api

    now = int(time.time())
    run = os.urandom(4).hex()
    bodies = []
    for i in range(distinct):
        event = api.WebhookEvent(
            event="participant_joined",
            id=f"EV_{run}_{i}",
            created_at=now,
            room=api.Room(name=f"{ROOM_PREFIX}hook-{i % 500}", sid=f"RM_{i % 500}"),
            participant=api.ParticipantInfo(identity=f"u{i}", sid=f"PA_{i}"),
        )
        body = json.dumps(MessageToDict(event)).encode()
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        token = api.AccessToken(key, secret).with_sha256(digest).to_jwt()
        bodies.append(Request("POST", "/livekit/webhook", body, {**JSON, "Authorization": token}))
    rng = random.Random(distinct)
    posted = bodies + rng.choices(bodies, k=int(distinct * duplicates))
    rng.shuffle(posted)
    return posted


def close_rooms(env: dict[str, str], rate: float) -> int:
    """Delete every room of this benchmark on LiveKit, ``rate`` a second; how many."""
    from livekit import api

    async def close() -> int:
        async with api.LiveKitAPI(
            env["LIVEKIT_URL"], env["LIVEKIT_API_KEY"], env["LIVEKIT_API_SECRET"]
        ) as lk:
            rooms = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
            names = [room.name for room in rooms if room.name.startswith(ROOM_PREFIX)]
            for count, name in enumerate(names):
                await lk.room.delete_room(api.DeleteRoomRequest(room=name))
                if count % 10 == 9:
                    await asyncio.sleep(10 / rate)
            return len(names)

    return asyncio.run(close())


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on loopback, without persistence; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as workdir:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", workdir]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import redis

            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("redis-server did not start") from None
                    time.sleep(0.05)
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    raise SystemExit(main())
