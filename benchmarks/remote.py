"""``python -m benchmarks --profile remote``: the eager variants against LiveKit across a network.

livekit-server on loopback behind nginx (TLS 1.3 and TLS 1.2, a self-signed certificate the
apps verify through ``SSL_CERT_FILE``), with Toxiproxy adding a round-trip time between the apps
and nginx and :mod:`benchmarks.handshake` the TCP handshake's round trip Toxiproxy leaves out
(checked by a probe at every RTT and TLS version). For every RTT and TLS version, interleaved
rounds measure each variant's maximum (wrk) and its latency at half that rate (Vegeta, open
loop); nginx's access log gives LiveKit's own service time for every CreateRoom and whether the
request came on a new TLS connection.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from typing import Any

from .handshake import HandshakeDelay, probe_round_trips
from .harness import machine_info, measure, steady_summary
from .load import LoadSettings, find_wrk
from .network import (
    Certificates,
    NginxTLS,
    Toxiproxy,
    check_verification,
    find_tool,
    scratch_dir,
    tool_version,
)
from .openloop import percentile
from .report import MIB, publish, render_remote, write_remote_chart

REMOTE_VARIANTS = ("naive-eager", "ours-eager")


def main_remote(args: argparse.Namespace) -> int:
    from flask_livekit_onboarding.testing import LiveKitDevServer, ensure_livekit_server

    variants = [name for name in args.variants if name in REMOTE_VARIANTS] or list(REMOTE_VARIANTS)
    wrk = find_wrk()
    vegeta = find_tool("vegeta", required_by="the steady-rate measurements")
    nginx = find_tool("nginx", required_by="--profile remote (TLS terminator)")
    toxiproxy = find_tool("toxiproxy-server", required_by="--profile remote (round-trip time)")
    load = LoadSettings(connections=args.connections)
    settings = args.server_settings
    args.anatomy_duration = 0  # the tail at saturation is dissected in the loopback profile
    binary = ensure_livekit_server()
    meta = machine_info(binary, wrk)
    meta["versions"] |= {
        "vegeta": tool_version([vegeta, "-version"]).removeprefix("Version: "),
        "nginx": tool_version([nginx, "-v"]),
        "toxiproxy": "v2.5.0 (go install github.com/Shopify/toxiproxy/v2/cmd/server)",
        "openssl": tool_version(["openssl", "version"]),
    }
    results: dict[str, Any] = {
        "profile": "remote",
        "meta": meta,
        "settings": {
            "gunicorn": f"-w {settings.workers} --threads {settings.threads} "
            f"-k {settings.worker_class}",
            "wrk": f"-t{load.threads} -c{load.connections} --timeout {load.timeout_s}s",
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "steady": f"Vegeta open loop at {args.steady_fraction:g}x the run's own wrk maximum, "
            f"{args.steady_duration} s",
            "concurrency": settings.workers * settings.threads,
            "rtts_ms": args.rtts,
            "tls": args.tls,
            "path": "app -> handshake model (each new connection's first chunk held one RTT, "
            "as SYN / SYN-ACK would) -> Toxiproxy (latency toxic, RTT/2 each way) -> nginx TLS "
            "(ECDSA P-256, no session cache or tickets, keepalive_requests 1000000) "
            "-> livekit-server (HTTP keep-alive), all on 127.0.0.1",
        },
        "cells": [],
        "probes": [],
        "targets": [],
    }
    logs = args.out / "logs"
    started = time.monotonic()
    scratch = scratch_dir()
    try:
        certificates = Certificates.create(scratch / "tls")
        with (
            LiveKitDevServer(binary, log_level="warn") as livekit,
            NginxTLS(nginx, livekit.port, certificates, scratch / "nginx") as tls,
            Toxiproxy(
                toxiproxy, {f"tls{v}": port for v, port in tls.ports.items()}, scratch
            ) as proxy,
            HandshakeDelay(proxy.ports) as handshake,
        ):
            results["verification"] = check_verification(tls.ports["1.3"], certificates.ca)
            print(f"certificate check: {results['verification']}", flush=True)
            local = {
                version: probe_round_trips(
                    handshake.ports["tls" + version], certificates.ca, version, 0, samples=9
                )
                for version in args.tls
            }
            results["local_probes"] = list(local.values())
            for rtt in args.rtts:
                proxy.set_rtt(rtt)
                handshake.set_rtt(rtt)
                for version in args.tls:
                    port = handshake.ports["tls" + version]
                    probe = probe_round_trips(
                        port, certificates.ca, version, rtt, local[version], samples=9
                    )
                    results["probes"].append(probe)
                    print(
                        f"RTT {rtt} ms TLS {version} probe: new connection + request "
                        f"{probe['new_connection_rtts']:.2f} RTT (expected "
                        f"{probe['expected_new_rtts']}), reused "
                        f"{probe['reused_connection_rtts']:.2f} (local work taken off)",
                        flush=True,
                    )
                    if args.probe_only:
                        continue
                    cell = run_cell(
                        args, variants, livekit, tls, port, certificates, version, rtt,
                        wrk, vegeta, load, logs,
                    )  # fmt: skip
                    results["cells"].append(cell)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    meta["loadavg_after"] = _loadavg()
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    if args.probe_only:
        probes = {key: results[key] for key in ("meta", "local_probes", "probes")}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "probes.json").write_text(json.dumps(probes, indent=2) + "\n")
        print(f"written: {args.out / 'probes.json'}")
        return 0 if all(probe["faithful"] for probe in results["probes"]) else 1
    results["targets"] = evaluate_remote_targets(results)
    return publish(results, args.out, render_remote, write_remote_chart, check=args.check)


def run_cell(
    args: argparse.Namespace,
    variants: list[str],
    livekit: Any,
    tls: NginxTLS,
    app_port: int,
    certificates: Certificates,
    version: str,
    rtt: int,
    wrk: str,
    vegeta: str,
    load: LoadSettings,
    logs: Any,
) -> dict[str, Any]:
    """Interleaved rounds of every variant at one RTT and TLS version."""
    env = {
        "LIVEKIT_URL": f"wss://127.0.0.1:{app_port}",
        "LIVEKIT_API_KEY": livekit.api_key,
        "LIVEKIT_API_SECRET": livekit.api_secret,
        # The apps verify nginx's certificate against the benchmark's CA, as a deployment
        # with a private CA would; nothing turns verification off.
        "SSL_CERT_FILE": str(certificates.ca),
    }
    port = tls.ports[version]
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for index in range(args.rounds):
        shift = index % len(variants)
        for name in variants[shift:] + variants[:shift]:
            log_path = logs / f"{name}-rtt{rtt}-tls{version}-round{index + 1}.log"
            run = measure(
                name, env, log_path, args.server_settings, wrk, load, args, livekit.pid, vegeta
            )
            run["round"] = index + 1
            run["nginx_max"] = nginx_stats(tls, port, run.pop("window"))
            steady = run.get("steady")
            if steady:
                steady["nginx"] = nginx_stats(tls, port, steady.pop("window"))
                service = steady["nginx"]["upstream_p50_ms"]
                steady["floor_ms"] = rtt + service if service is not None else None
            run.pop("token_claims")
            rounds[name].append(run)
            print(
                f"RTT {rtt:3d} ms TLS {version} round {index + 1}/{args.rounds} {name:12} "
                + describe_remote(run),
                flush=True,
            )
    return {
        "rtt_ms": rtt,
        "tls": version,
        "variants": {
            name: {"summary": summarize_remote(runs), "rounds": runs}
            for name, runs in rounds.items()
        },
    }


def describe_remote(run: dict[str, Any]) -> str:
    text = (
        f"{run['rps']:7.1f} req/s p50 {run['p50_ms']:6.1f} p99 {run['p99_ms']:6.1f} ms "
        f"errors {run['errors']} split {run['connection_split']} "
        f"new TLS conns/req {run['nginx_max']['new_connection_share']:.2f}"
    )
    steady = run.get("steady")
    if steady:
        text += (
            f"\n    steady {steady['rate']:.0f}/s: p50 {steady['p50_ms']:.1f} p90 "
            f"{steady['p90_ms']:.1f} p99 {steady['p99_ms']:.1f} max {steady['max_ms']:.1f} ms "
            f"errors {steady['errors']}; LiveKit service p50 "
            f"{steady['nginx']['upstream_p50_ms']} ms, floor {steady['floor_ms']} ms"
        )
    return text


def nginx_stats(tls: NginxTLS, port: int, window: tuple[float, float]) -> dict[str, Any]:
    """What nginx saw in ``window``: requests, the share that opened a new TLS connection,
    and LiveKit's own service time (nginx to livekit-server and back, on loopback)."""
    entries = tls.log_lines(window[0], window[1] + 0.5, port)
    upstream = [e["upstream_ms"] for e in entries if e["upstream_ms"] is not None]
    new = sum(1 for e in entries if e["connection_requests"] == 1)
    return {
        "requests": len(entries),
        "new_connection_share": new / len(entries) if entries else 0.0,
        "upstream_p50_ms": percentile(upstream, 50) if upstream else None,
        "upstream_p99_ms": percentile(upstream, 99) if upstream else None,
        "non_2xx": sum(1 for e in entries if not 200 <= e["status"] < 300),
    }


def summarize_remote(runs: list[dict[str, Any]]) -> dict[str, Any]:
    steady = [run["steady"] for run in runs if run.get("steady")]
    summary = {
        "rps": statistics.median(run["rps"] for run in runs),
        "rps_rounds": [round(run["rps"], 1) for run in runs],
        "p50_ms": statistics.median(run["p50_ms"] for run in runs),
        "p99_ms": statistics.median(run["p99_ms"] for run in runs),
        "errors": sum(run["errors"] for run in runs),
        "peak_rss_bytes": max(run["peak_rss_bytes"] for run in runs),
        "app_cpu_ms_per_request": statistics.median(run["app_cpu_ms_per_request"] for run in runs),
        "new_connection_share": statistics.median(
            run["nginx_max"]["new_connection_share"] for run in runs
        ),
        "connection_splits": [run["connection_split"] for run in runs],
    } | steady_summary(runs)
    floors = [s["floor_ms"] for s in steady if s.get("floor_ms") is not None]
    # nginx logs times in whole milliseconds: a p50 of 0 means under a millisecond.
    services = [
        s["nginx"]["upstream_p50_ms"] for s in steady if s["nginx"]["upstream_p50_ms"] is not None
    ]
    tails = [
        s["nginx"]["upstream_p99_ms"] for s in steady if s["nginx"]["upstream_p99_ms"] is not None
    ]
    if floors:
        summary["steady_floor_ms"] = statistics.median(floors)
        summary["livekit_service_p50_ms"] = statistics.median(services)
        summary["livekit_service_p99_ms"] = statistics.median(tails)
    return summary


def evaluate_remote_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []

    def add(target: str, measured: str, met: bool, reason: str = "") -> None:
        targets.append({"target": target, "measured": measured, "met": bool(met), "reason": reason})

    cells = {(cell["rtt_ms"], cell["tls"]): cell["variants"] for cell in results["cells"]}
    probes = {(probe["rtt_ms"], probe["tls"]): probe for probe in results.get("probes", [])}
    for version, wanted in (("1.3", 2.7), ("1.2", 3.5)):
        variants = cells.get((20, version))
        if not variants or not {"ours-eager", "naive-eager"} <= variants.keys():
            continue
        ours, naive = variants["ours-eager"], variants["naive-eager"]
        ratio = ours["summary"]["rps"] / naive["summary"]["rps"]
        per_round = [
            a["rps"] / b["rps"] for a, b in zip(ours["rounds"], naive["rounds"], strict=True)
        ]
        median = statistics.median(per_round)
        steady = all(r >= 0.8 * median for r in per_round)
        add(
            f"ours-eager >= {wanted:g}x naive-eager req/s at 20 ms RTT, TLS {version}, "
            "no round below 0.8x the median",
            f"{ratio:.2f}x (per round: {', '.join(f'{r:.2f}' for r in per_round)})",
            ratio >= wanted and steady,
            round_trip_reason(
                ours["summary"],
                naive["summary"],
                probes.get((20, version)),
                20,
                results["settings"].get("concurrency", 8),
            ),
        )
    load = f"load average {results['meta']['loadavg_before']} before the run"
    for rtt in (20, 50):
        measured, above, met = [], [], True
        for version in ("1.3", "1.2"):
            summary = cells.get((rtt, version), {}).get("ours-eager", {}).get("summary")
            if not summary or "steady_floor_ms" not in summary:
                continue
            ratio = summary["steady_p50_ms"] / summary["steady_floor_ms"]
            met = met and ratio <= 1.3
            measured.append(
                f"TLS {version}: {summary['steady_p50_ms']:.1f} / "
                f"({rtt} + {summary['livekit_service_p50_ms']:.1f}) ms = {ratio:.2f}x"
            )
            above.append(
                f"TLS {version} {summary['steady_p50_ms'] - summary['steady_floor_ms']:.1f} ms "
                f"over one RTT + LiveKit at {summary['steady_rate']:.0f}/s"
            )
        if measured:
            add(
                f"ours-eager p50 at half its maximum rate <= 1.3x (RTT + LiveKit's CreateRoom "
                f"service time) at {rtt} ms",
                "; ".join(measured),
                met,
                f"{', '.join(above)}: time in this machine (gunicorn, the app, TLS), {load}",
            )
    measured, services, met = [], [], True
    for (rtt, version), variants in sorted(cells.items()):
        summary = variants.get("ours-eager", {}).get("summary")
        if not summary or "steady_p50_ms" not in summary:
            continue
        ratio = summary["steady_p99_ms"] / summary["steady_p50_ms"]
        met = met and ratio <= 3.0
        measured.append(f"{rtt} ms/TLS {version} {ratio:.2f}x")
        services.append(f"{rtt} ms/TLS {version} {summary.get('livekit_service_p99_ms', '-')} ms")
    if measured:
        add(
            "ours-eager p99 <= 3x its p50 at half its maximum rate",
            ", ".join(measured),
            met,
            "LiveKit's own CreateRoom service time p99 (nginx): " + ", ".join(services),
        )
    errors = {
        f"{name} {rtt} ms/TLS {version}": v["summary"]["errors"]
        + v["summary"].get("steady_errors", 0)
        for (rtt, version), variants in sorted(cells.items())
        for name, v in variants.items()
    }
    total = sum(errors.values())
    add(
        "zero errors in every variant",
        f"{total} in {len(errors)} variant x RTT x TLS cells"
        + ("" if not total else ": " + ", ".join(f"{k} {n}" for k, n in errors.items() if n)),
        total == 0,
    )
    return targets


def round_trip_reason(
    ours: dict[str, Any],
    naive: dict[str, Any],
    probe: dict[str, Any] | None,
    rtt: int,
    concurrency: int,
) -> str:
    """What bounds the ratio: round trips per request of each variant, the probe's count, and
    how close ours-eager came to the rate its threads allow at one RTT + LiveKit each."""
    parts = []
    service = ours.get("livekit_service_p50_ms")
    if service is not None:
        limit = 1000 * concurrency / (rtt + service)
        parts.append(
            f"ours-eager {ours['rps']:.0f} req/s = {ours['rps'] / limit:.2f}x of the "
            f"{limit:.0f} req/s its {concurrency} threads allow at one RTT + LiveKit each "
            f"(app CPU {ours['app_cpu_ms_per_request']:.2f} ms per request)"
        )
    if "steady_p50_ms" in ours and "steady_p50_ms" in naive:
        parts.append(
            f"steady-rate p50: naive-eager {naive['steady_p50_ms']:.1f} ms = "
            f"{naive['steady_p50_ms'] / rtt:.2f} RTT, ours-eager {ours['steady_p50_ms']:.1f} ms "
            f"= {ours['steady_p50_ms'] / rtt:.2f} RTT; new TLS connections per request "
            f"{naive['new_connection_share']:.2f} against {ours['new_connection_share']:.2f}"
        )
    if probe is not None:
        parts.append(
            f"probe: a new connection + request {probe['new_connection_rtts']:.2f} RTT "
            f"(expected {probe['expected_new_rtts']}), a reused one "
            f"{probe['reused_connection_rtts']:.2f}"
        )
    return "; ".join(parts)


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "unknown"


__all__ = ["MIB", "main_remote"]
