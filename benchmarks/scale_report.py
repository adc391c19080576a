"""The growth curves as a Markdown table per curve and one plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def _run(run: dict[str, Any]) -> list[str]:
    return [f"{run['rps']:.0f}", f"{run['p50_ms']:.1f}", f"{run['p99_ms']:.1f}", str(run["errors"])]


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# Growth curves",
        "",
        f"{meta['date']}, {meta['cpu_count']} CPUs ({meta['cpu_model']}), load average "
        f"{meta['loadavg_before']} before; commit {meta['git_commit']}; "
        f"{meta.get('elapsed_s', '?')} s. Single runs, not medians.",
        "",
        "## Live rooms",
        "",
        "Token endpoint (wrk, 16 connections, gunicorn 1x8, resume policy); `list_sessions`, "
        "`flask livekit rooms --json` and `GET /rooms/<name>` in process (ms per call).",
        "",
    ]
    rows = []
    for point in results.get("rooms", []):
        eager, on_join = point["token"]["eager"], point["token"]["on_join"]
        rows.append(
            [
                str(point["rooms"]),
                *(f"{eager[k]:.0f}" if k == "rps" else f"{eager[k]:.1f}" for k in _KEYS),
                *(f"{on_join[k]:.0f}" if k == "rps" else f"{on_join[k]:.1f}" for k in _KEYS),
                f"{point['list_sessions']['p50_ms']:.1f}",
                _p50(point.get("list_rooms_call")),
                f"{point['cli_rooms']['p50_ms']:.1f}",
                f"{point['room_status']['p50_ms']:.1f} / {point['room_status']['p99_ms']:.1f}",
                f"{point['livekit_rss_mib'] or 0:.0f}",
            ]
        )
    lines += _table(
        [
            "rooms",
            "eager req/s",
            "eager p50",
            "eager p99",
            "on_join req/s",
            "on_join p50",
            "on_join p99",
            "list_sessions",
            "of which ListRooms",
            "CLI rooms",
            "GET room p50 / p99",
            "livekit-server RSS MiB",
        ],
        rows,
    )
    lines += ["## Webhooks", "", "One worker x 8 threads, 8 client connections.", ""]
    lines += _table(
        [
            "distinct events",
            "posted",
            "ledger",
            "events/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "outcomes",
        ],
        [
            [str(run["distinct"]), str(run["posted"]), run["ledger"], *_run(run), _outcomes(run)]
            for run in results.get("webhooks", [])
        ],
    )
    lines += ["## Context updates", "", "8 client connections, staff caller, merge.", ""]
    lines += _table(
        ["locks", "rooms", "updates/s", "p50 ms", "p99 ms", "errors", "lock wait p50 / p99 ms"],
        [
            [
                run["locks"],
                str(run["rooms"]),
                *_run(run),
                f"{run['lock_wait_p50_ms']:.1f} / {run['lock_wait_p99_ms']:.1f}",
            ]
            for run in results.get("context", [])
        ],
    )
    cluster = results.get("cluster")
    if cluster:
        lines += ["## One node against a two-node cluster sharing Redis", ""]
        lines += _table(
            ["LiveKit", "mode", "req/s", "p50 ms", "p99 ms", "errors"],
            [
                [where, mode, *_run(cluster[where][mode])]
                for where in ("single", "two_nodes")
                for mode in cluster[where]
            ],
        )
    return "\n".join(lines)


_KEYS = ("rps", "p50_ms", "p99_ms")


def _p50(run: dict[str, Any] | None) -> str:
    return "-" if run is None else f"{run['p50_ms']:.1f}"


def _outcomes(run: dict[str, Any]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in sorted(run["outcomes"].items()))


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    points = results.get("rooms", [])
    sizes = [point["rooms"] for point in points]
    token, listing, hooks = axes
    for mode, style in (("eager", "o-"), ("on_join", "s-")):
        token.plot(sizes, [p["token"][mode]["p50_ms"] for p in points], style, label=f"{mode} p50")
        token.plot(
            sizes,
            [p["token"][mode]["p99_ms"] for p in points],
            style,
            alpha=0.4,
            label=f"{mode} p99",
        )
    token.set(title="POST /token (resume)", xlabel="live rooms", ylabel="ms")
    for key, label in (
        ("list_sessions", "list_sessions"),
        ("list_rooms_call", "of which LiveKit's ListRooms"),
        ("cli_rooms", "flask livekit rooms"),
        ("room_status", "GET /rooms/<name>"),
    ):
        if all(key in p for p in points):
            listing.plot(sizes, [p[key]["p50_ms"] for p in points], "o-", label=label)
    listing.set(title="Listing and status (p50)", xlabel="live rooms", ylabel="ms")
    for ledger, style in (("memory", "o-"), ("redis", "s-")):
        runs = [run for run in results.get("webhooks", []) if run["ledger"] == ledger]
        hooks.plot([r["distinct"] for r in runs], [r["rps"] for r in runs], style, label=ledger)
    hooks.set(title="Webhooks per second (one worker)", xlabel="distinct events", ylabel="events/s")
    hooks.set_xscale("log")
    for axis in axes:
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
