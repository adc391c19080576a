"""The benchmark command: interleaved rounds over every variant, a soak, and the report."""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from .apps import TIMING_DIR_ENV, VARIANTS
from .load import LoadSettings, find_wrk, run_wrk, wrk_version
from .network import find_tool, tool_version
from .openloop import run_vegeta
from .probe import LiveKitProbe
from .report import MIB, publish, render_markdown, write_chart
from .serve import ROOT, GunicornServer, RssSampler, ServerSettings, cpu_seconds

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SOAK_VARIANT = "ours-eager"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark POST /livekit/token against a real livekit-server.",
    )
    parser.add_argument(
        "--profile",
        choices=("loopback", "remote"),
        default="loopback",
        help="loopback: every variant against livekit-server on loopback; remote: the eager "
        "variants against LiveKit behind nginx TLS with a round-trip time added by Toxiproxy",
    )
    parser.add_argument("--quick", action="store_true", help="shorter run")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=int, help="seconds measured per run (10, quick 4)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per run (3, quick 2)")
    parser.add_argument(
        "--soak-requests", type=int, help="soak length (20000, quick 5000; 0 skips the soak)"
    )
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), metavar="VARIANT"
    )
    parser.add_argument("--connections", type=int, default=LoadSettings.connections)
    parser.add_argument(
        "--servers",
        default=f"{ServerSettings.workers}x{ServerSettings.threads}",
        help="gunicorn WORKERSxTHREADS (default %(default)s: no connection placement to skew)",
    )
    parser.add_argument(
        "--steady-fraction",
        type=float,
        default=0.5,
        help="steady (open-loop) rate as a fraction of the variant's measured maximum",
    )
    parser.add_argument(
        "--steady-duration",
        type=int,
        help="seconds at the steady rate (8, remote 6, quick 4; 0 skips)",
    )
    parser.add_argument(
        "--anatomy-duration",
        type=int,
        help="seconds of closed-loop Vegeta at saturation for the eager variants (4, quick 3)",
    )
    parser.add_argument(
        "--empty-timeout",
        type=int,
        help="empty timeout of the rooms the eager variants create, s (default 10)",
    )
    parser.add_argument(
        "--rtts", type=int, nargs="+", help="remote: round-trip times in ms (2 20 50)"
    )
    parser.add_argument(
        "--tls", nargs="+", choices=("1.3", "1.2"), help="remote: TLS versions (1.3 1.2)"
    )
    parser.add_argument(
        "--probe-only",
        action="store_true",
        help="remote: only count the round trips of a new and a reused connection (no load)",
    )
    parser.add_argument("--out", type=Path, help="output directory (results/<profile>)")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target is missed"
    )
    args = parser.parse_args(argv)
    if args.empty_timeout is not None:
        # Read by benchmarks.apps in this process (the probe) and in every gunicorn it starts.
        os.environ["BENCH_EMPTY_TIMEOUT"] = str(args.empty_timeout)
    quick = args.quick
    workers, _, threads = args.servers.partition("x")
    args.server_settings = ServerSettings(workers=int(workers), threads=int(threads or 1))
    remote = args.profile == "remote"
    args.rounds = args.rounds or (1 if quick and remote else 3)
    args.duration = args.duration or (4 if quick else (6 if remote else 10))
    args.warmup = args.warmup if args.warmup is not None else (2 if quick or remote else 3)
    if args.steady_duration is None:
        args.steady_duration = 4 if quick else (6 if remote else 8)
    if args.anatomy_duration is None:
        args.anatomy_duration = 3 if quick else 4
    if args.soak_requests is None:
        args.soak_requests = 0 if remote else (5000 if quick else 20000)
    args.rtts = args.rtts or [2, 20, 50]
    args.tls = args.tls or ["1.3", "1.2"]
    if args.out is None:
        args.out = RESULTS_DIR / args.profile
    return args


def main_loopback(args: argparse.Namespace) -> int:
    """The loopback profile: every variant against livekit-server on loopback."""
    from flask_livekit_onboarding.testing import LiveKitDevServer, ensure_livekit_server

    wrk = find_wrk()
    vegeta = find_tool("vegeta", required_by="the steady-rate measurements")
    load = LoadSettings(connections=args.connections)
    server_settings = args.server_settings
    binary = ensure_livekit_server()
    logs = args.out / "logs"
    meta = machine_info(binary, wrk)
    meta["versions"]["vegeta"] = tool_version([vegeta, "-version"]).removeprefix("Version: ")
    results: dict[str, Any] = {
        "profile": "loopback",
        "meta": meta,
        "settings": {},
        "variants": {},
        "targets": [],
    }
    results["settings"] = {
        "gunicorn": f"-w {server_settings.workers} --threads {server_settings.threads} "
        f"-k {server_settings.worker_class}",
        "wrk": f"-t{load.threads} -c{load.connections} --timeout {load.timeout_s}s "
        "(POST JSON, non-2xx counted as errors)",
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "soak_requests": args.soak_requests,
        "steady": f"Vegeta open loop at {args.steady_fraction:g}x the run's own wrk maximum, "
        f"{args.steady_duration} s",
        "saturation_anatomy": f"Vegeta closed loop, {load.connections} connections, "
        f"{args.anatomy_duration} s (eager variants)",
        "livekit_server_log_level": "warn",
        "room_empty_timeout_s": int(os.environ.get("BENCH_EMPTY_TIMEOUT", "10")),
    }
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in args.variants}
    warnings: dict[str, list[str]] = {name: [] for name in args.variants}
    started = time.monotonic()
    # Warnings only: livekit-server logs every room at info, which costs the shared CPUs.
    with LiveKitDevServer(binary, log_level="warn") as livekit:
        env = {
            "LIVEKIT_URL": livekit.url,
            "LIVEKIT_API_KEY": livekit.api_key,
            "LIVEKIT_API_SECRET": livekit.api_secret,
        }
        for index in range(args.rounds):
            shift = index % len(args.variants)
            order = args.variants[shift:] + args.variants[:shift]
            for name in order:
                log_path = logs / f"{name}-round{index + 1}.log"
                run = measure(
                    name,
                    env,
                    log_path,
                    server_settings,
                    wrk,
                    load,
                    args,
                    livekit.pid,
                    vegeta,
                    probe_url=livekit.url,
                )
                run["round"] = index + 1
                if rounds[name]:
                    run.pop("token_claims")
                rounds[name].append(run)
                warnings[name] += run.pop("log_warnings")
                print(f"round {index + 1}/{args.rounds} {name:15} {describe(run)}", flush=True)
        if args.soak_requests and SOAK_VARIANT in args.variants:
            results["soak"] = soak(env, logs, server_settings, wrk, load, args.soak_requests)
    meta["loadavg_after"] = _loadavg()
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    for name in args.variants:
        results["variants"][name] = {
            "summary": summarize(rounds[name]),
            "token_claims": rounds[name][0].pop("token_claims"),
            "rounds": rounds[name],
            "log_warnings": warnings[name],
        }
    results["targets"] = evaluate_targets(results)
    return publish(results, args.out, render_markdown, write_chart, check=args.check)


def measure(
    name: str,
    env: dict[str, str],
    log_path: Path,
    server_settings: ServerSettings,
    wrk: str,
    load: LoadSettings,
    args: argparse.Namespace,
    livekit_pid: int | None,
    vegeta: str | None = None,
    probe_url: str | None = None,
) -> dict[str, Any]:
    """One fresh gunicorn for ``name``: warm up, measure the maximum with wrk (RSS, CPU and the
    connection split sampled throughout), then, with Vegeta, the latency at a steady rate of
    ``args.steady_fraction`` of that maximum (open loop) and, for the eager variants, where the
    time of each request goes at saturation (closed loop, as many connections as wrk).

    CPU time of the app (gunicorn master + workers) and of livekit-server is recorded per
    request, which shows where a slow variant spends the shared CPUs.
    """
    livekit = [livekit_pid] if livekit_pid else []
    with tempfile.TemporaryDirectory(prefix="bench-timing-") as timing:
        env = {**env, TIMING_DIR_ENV: timing}
        timing_dir = Path(timing)
        with GunicornServer(name, env, log_path, server_settings) as server:
            if args.warmup:
                run_wrk(wrk, server.url, load, duration_s=args.warmup)
            app_cpu, livekit_cpu = server.cpu(), cpu_seconds(livekit)
            window_start = time.time()
            with RssSampler(server) as sampler:
                run = run_wrk(wrk, server.url, load, duration_s=args.duration)
            run["window"] = (window_start, time.time())
            app_cpu, livekit_cpu = server.cpu() - app_cpu, cpu_seconds(livekit) - livekit_cpu
            split = max(sampler.splits, key=lambda s: (len(s), sum(s)), default=[])
            if vegeta is not None and args.steady_duration:
                rate = max(1, round(args.steady_fraction * run["rps"]))
                with _probe(name, probe_url, env) as probe:
                    run["steady"] = run_vegeta(
                        vegeta,
                        server.url,
                        rate=rate,
                        duration_s=args.steady_duration,
                        timing_dir=timing_dir,
                        probe=probe,
                    )
                if "eager" in name and args.anatomy_duration:
                    with _probe(name, probe_url, env) as probe:
                        run["saturation"] = run_vegeta(
                            vegeta,
                            server.url,
                            rate=0,
                            duration_s=args.anatomy_duration,
                            timing_dir=timing_dir,
                            workers=load.connections,
                            seq_base=10_000_000,
                            probe=probe,
                        )
    requests = max(run["requests"], 1)
    run["app_cpu_ms_per_request"] = 1000 * app_cpu / requests
    run["livekit_cpu_ms_per_request"] = 1000 * livekit_cpu / requests
    run["peak_rss_bytes"] = sampler.peak
    run["connection_split"] = split
    run["log_warnings"] = server.warnings()
    run["token_claims"] = token_claims(server.first_answer)
    return run


@contextlib.contextmanager
def _probe(
    name: str, url: str | None, env: dict[str, str]
) -> Iterator[dict[str, list[tuple[float, float]]]]:
    """For an eager variant, time CreateRoom straight to LiveKit during the run (see probe.py)."""
    if url is None or "eager" not in name:
        yield {}
        return
    with LiveKitProbe(url, env["LIVEKIT_API_KEY"], env["LIVEKIT_API_SECRET"]) as probe:
        yield probe.result


def describe(run: dict[str, Any]) -> str:
    text = (
        f"{run['rps']:8.0f} req/s  p50 {run['p50_ms']:7.1f} ms  p99 {run['p99_ms']:7.1f} ms  "
        f"errors {run['errors']}  split {run['connection_split']}  "
        f"peak RSS {run['peak_rss_bytes'] / MIB:.0f} MiB  "
        f"CPU/req app {run['app_cpu_ms_per_request']:.2f} ms "
        f"livekit {run['livekit_cpu_ms_per_request']:.2f} ms"
    )
    steady = run.get("steady")
    if steady:
        text += (
            f"\n    steady {steady['rate']:.0f}/s: p50 {steady['p50_ms']:.1f} p90 "
            f"{steady['p90_ms']:.1f} p99 {steady['p99_ms']:.1f} max {steady['max_ms']:.1f} ms, "
            f"errors {steady['errors']}"
        )
        text += _slowest(steady)
    saturation = run.get("saturation")
    if saturation:
        text += (
            f"\n    saturation (closed loop): p50 {saturation['p50_ms']:.1f} "
            f"p99 {saturation['p99_ms']:.1f} ms" + _slowest(saturation)
        )
    return text


def _slowest(run: dict[str, Any]) -> str:
    anatomy = run.get("anatomy") or {}
    if not anatomy.get("joined"):
        return ""
    slow, middle = anatomy["slowest_1pct"], anatomy["median_requests"]
    text = (
        f"; slowest 1 %: {slow['latency_ms']:.1f} ms = {slow['before_app_ms']:.1f} before the app "
        f"+ {slow['in_app_ms']:.1f} in it (median requests: {middle['before_app_ms']:.1f} + "
        f"{middle['in_app_ms']:.1f})"
    )
    stalls = anatomy.get("stalls") or {}
    if stalls.get("probe_calls"):
        text += (
            f"; LiveKit probe p50 {stalls['probe_p50_ms']:.1f} ms, max while the slow requests "
            f"were in the app {_ms(stalls['probe_max_during_slow_median_ms'])} (median); "
            f"timer lateness then {_ms(stalls['lateness_max_during_slow_median_ms'])}"
        )
    if stalls:
        text += f"; GC in them {stalls['slow_in_app_gc_ms_mean']:.1f} ms"
    return text


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def token_claims(answer: bytes) -> dict[str, Any]:
    """The shape of the token a variant signed (claim names and grants, no values)."""
    token = json.loads(answer)["participant_token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return {
        "claims": sorted(claims),
        "video": sorted(name for name, value in claims.get("video", {}).items() if value),
        "room_config": sorted(claims.get("roomConfig", {})),
        "ttl_s": claims["exp"] - claims["nbf"],
    }


def soak(
    env: dict[str, str],
    logs: Path,
    server_settings: ServerSettings,
    wrk: str,
    load: LoadSettings,
    requests: int,
) -> dict[str, Any]:
    """``requests`` requests to one ours-eager server after a warm-up, RSS before and after."""
    warmup_requests = max(1000, requests // 10)
    print(f"soak: {SOAK_VARIANT}, {warmup_requests} warm-up + {requests} requests", flush=True)
    with GunicornServer(SOAK_VARIANT, env, logs / "soak.log", server_settings) as server:
        run_wrk(wrk, server.url, load, requests=warmup_requests)
        time.sleep(1.0)
        before = server.rss()
        with RssSampler(server, interval=0.5) as sampler:
            run = run_wrk(wrk, server.url, load, requests=requests)
        time.sleep(1.0)
        after = server.rss()
    run.update(
        variant=SOAK_VARIANT,
        warmup_requests=warmup_requests,
        rss_before_bytes=before,
        rss_after_bytes=after,
        rss_peak_bytes=sampler.peak,
        rss_growth_pct=100.0 * (after - before) / before,
        rss_timeline=[(round(t, 1), rss) for t, rss in sampler.samples],
        log_warnings=server.warnings(),
    )
    print(
        f"soak: {run['requests']} requests, {run['rps']:.0f} req/s, errors {run['errors']}, "
        f"RSS {before / MIB:.1f} -> {after / MIB:.1f} MiB ({run['rss_growth_pct']:+.1f} %), "
        f"{len(run['log_warnings'])} warning lines",
        flush=True,
    )
    return run


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": statistics.median(run["rps"] for run in runs),
        "p50_ms": statistics.median(run["p50_ms"] for run in runs),
        "p99_ms": statistics.median(run["p99_ms"] for run in runs),
        "errors": sum(run["errors"] for run in runs),
        "requests": sum(run["requests"] for run in runs),
        "peak_rss_bytes": max(run["peak_rss_bytes"] for run in runs),
        "app_cpu_ms_per_request": statistics.median(run["app_cpu_ms_per_request"] for run in runs),
        "livekit_cpu_ms_per_request": statistics.median(
            run["livekit_cpu_ms_per_request"] for run in runs
        ),
        "connection_splits": [run.get("connection_split", []) for run in runs],
    } | steady_summary(runs)


def steady_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians across rounds of the open-loop run at a steady rate (and its errors)."""
    steady = [run["steady"] for run in runs if run.get("steady")]
    if not steady:
        return {}
    saturation = [run["saturation"] for run in runs if run.get("saturation")]
    summary = {
        f"steady_{key}": statistics.median(s[key] for s in steady)
        for key in ("rate", "p50_ms", "p90_ms", "p99_ms", "max_ms")
    }
    summary["steady_errors"] = sum(s["errors"] for s in steady)
    summary["saturation_errors"] = sum(s["errors"] for s in saturation)
    return summary


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    variants = {name: v["summary"] for name, v in results["variants"].items()}
    targets: list[dict[str, Any]] = []

    def add(target: str, measured: str, met: bool, reason: str = "") -> None:
        targets.append({"target": target, "measured": measured, "met": bool(met), "reason": reason})

    for ours, other, wanted in (("ours-on_join", "baseline-flask", 0.9),):
        if {ours, other} <= variants.keys():
            ratio = variants[ours]["rps"] / variants[other]["rps"]
            paired = ", ".join(f"{r:.2f}" for r in round_ratios(results, ours, other))
            add(
                f"{ours} >= {wanted:g}x {other} req/s",
                f"{ratio:.2f}x (per round: {paired})",
                ratio >= wanted,
                cpu_reason(variants, ours, other),
            )
    if "ours-eager" in variants and "steady_p50_ms" in variants["ours-eager"]:
        eager = variants["ours-eager"]
        ratio = eager["steady_p99_ms"] / eager["steady_p50_ms"]
        add(
            "ours-eager p99 <= 3x its p50 at half its maximum rate",
            f"{eager['steady_p99_ms']:.1f} / {eager['steady_p50_ms']:.1f} ms = {ratio:.2f}x "
            f"at {eager['steady_rate']:.0f}/s",
            ratio <= 3.0,
        )
    errors = {
        name: summary["errors"]
        + summary.get("steady_errors", 0)
        + summary.get("saturation_errors", 0)
        for name, summary in variants.items()
    }
    soak_run = results.get("soak")
    if soak_run:
        errors["soak"] = soak_run["errors"]
    add(
        "zero errors in every variant",
        ", ".join(f"{name} {count}" for name, count in errors.items()),
        not any(errors.values()),
    )
    if soak_run:
        growth = soak_run["rss_growth_pct"]
        add("soak RSS growth < 10% after warm-up", f"{growth:+.1f} %", growth < 10.0)
        found = len(soak_run["log_warnings"])
        add("no warnings in the soak logs", f"{found} lines", found == 0)
    return targets


def cpu_reason(variants: dict[str, Any], ours: str, other: str) -> str:
    """Where the difference goes: app CPU per request, and livekit-api's own token route."""
    cpu = {name: summary["app_cpu_ms_per_request"] for name, summary in variants.items()}
    reason = (
        f"app CPU per request {cpu[ours]:.2f} ms against {cpu[other]:.2f} ms "
        f"(+{1000 * (cpu[ours] - cpu[other]):.0f} us)"
    )
    livekit_api = variants.get("baseline-livekit-api")
    if livekit_api:
        share = livekit_api["rps"] / variants[other]["rps"]
        reason += (
            f"; the bare route minting with livekit-api's AccessToken: {share:.2f}x, "
            f"{cpu['baseline-livekit-api']:.2f} ms"
        )
    return reason


def round_ratios(results: dict[str, Any], ours: str, other: str) -> list[float]:
    """req/s of ``ours`` over ``other`` within each round, which ran close together in time."""
    others = {run["round"]: run["rps"] for run in results["variants"][other]["rounds"]}
    return [
        run["rps"] / others[run["round"]]
        for run in results["variants"][ours]["rounds"]
        if others.get(run["round"])
    ]


def machine_info(livekit_binary: str, wrk: str) -> dict[str, Any]:
    def version(distribution: str) -> str:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return "not installed"

    livekit_version = subprocess.run(
        [livekit_binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_before": _loadavg(),
        "git_commit": _git_commit(),
        "versions": {
            name: version(name)
            for name in (
                "flask-livekit-onboarding",
                "flask",
                "werkzeug",
                "gunicorn",
                "livekit-api",
                "aiohttp",
                "pyjwt",
            )
        }
        | {"livekit-server": livekit_version, "wrk": wrk_version(wrk)},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _git_commit() -> str:
    if os.environ.get("BENCH_GIT_COMMIT"):
        return os.environ["BENCH_GIT_COMMIT"]
    result = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"
