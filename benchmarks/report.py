"""Writing the results: JSON, a markdown table and a PNG bar chart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def write_results(
    results: dict[str, Any],
    out_dir: Path,
    render: Callable[[dict[str, Any]], str],
    chart: Callable[[dict[str, Any], Path], None],
) -> str:
    """Write results.json, results.md (``render``) and results.png (``chart``) into ``out_dir``;
    return the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = render(results)
    (out_dir / "results.md").write_text(markdown)
    chart(results, out_dir / "results.png")
    return markdown


def write_markdown(lines: list[str], out: Path | None) -> None:
    """Print Markdown ``lines`` and, given ``out``, write them to that file too."""
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def publish(
    results: dict[str, Any],
    out_dir: Path,
    render: Callable[[dict[str, Any]], str],
    chart: Callable[[dict[str, Any], Path], None],
    *,
    check: bool,
) -> int:
    """Write the results, print the markdown and each target; the exit status: 1 when
    ``check`` is set and a target was missed."""
    markdown = write_results(results, out_dir, render, chart)
    print()
    print(markdown)
    print(f"written: {out_dir / 'results.json'}, results.md, results.png")
    missed = print_targets(results["targets"])
    return 1 if check and missed else 0


def _heading(title: str, meta: dict[str, Any]) -> list[str]:
    """The title, then the machine and its load during the run."""
    return [
        f"# {title}",
        "",
        f"{meta['date']} · {meta['cpu_count']} CPUs ({meta['cpu_model']}) · "
        f"{meta['memory_gib']:.1f} GiB · Python {meta['python']} · "
        f"load average before {meta['loadavg_before']}, after {meta['loadavg_after']}",
        "",
    ]


def render_markdown(results: dict[str, Any]) -> str:
    meta, settings = results["meta"], results["settings"]
    lines = [
        *_heading("Token endpoint benchmark", meta),
        f"gunicorn {settings['gunicorn']} · wrk {settings['wrk']} · "
        f"{settings['rounds']} interleaved rounds of {settings['duration_s']} s per variant "
        f"(after {settings['warmup_s']} s warm-up); medians across rounds, errors summed, "
        "peak RSS = highest sum of gunicorn master + workers.",
        "",
        "| variant | req/s | p50 ms | p99 ms | errors | peak RSS MiB "
        "| app CPU ms/req | livekit-server CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, variant in results["variants"].items():
        summary = variant["summary"]
        lines.append(
            f"| {name} | {summary['rps']:.0f} | {summary['p50_ms']:.1f} | "
            f"{summary['p99_ms']:.1f} | {summary['errors']} | "
            f"{summary['peak_rss_bytes'] / MIB:.0f} | {summary['app_cpu_ms_per_request']:.2f} | "
            f"{summary['livekit_cpu_ms_per_request']:.2f} |"
        )
    steady_rows = []
    for name, variant in results["variants"].items():
        summary = variant["summary"]
        if "steady_p50_ms" not in summary:
            continue
        anatomies = [r["steady"].get("anatomy") for r in variant["rounds"] if r.get("steady")]
        slow = _median_anatomy(anatomies)
        steady_rows.append(
            f"| {name} | {summary['steady_rate']:.0f} | {summary['steady_p50_ms']:.1f} | "
            f"{summary['steady_p90_ms']:.1f} | {summary['steady_p99_ms']:.1f} | "
            f"{summary['steady_max_ms']:.1f} | {summary['steady_errors']} | {slow} | "
            f"{_stalls(anatomies)} |"
        )
    if steady_rows:
        lines += [
            "",
            f"Latency at a steady rate: {settings.get('steady', '')}; medians across rounds. "
            "*Slowest 1 %* splits the slowest requests into the time before the app got them "
            "(gunicorn's queue for a thread, the GIL) and the time in the app; *while they were "
            "in the app* gives, for the eager variants, a CreateRoom probe straight to LiveKit "
            "(p50 → its slowest call during those requests, ms), the probe's own timer "
            "lateness (the machine; p50 → during), and the app's garbage-collector time in them.",
            "",
            "| variant | rate/s | p50 ms | p90 ms | p99 ms | max ms | errors "
            "| slowest 1 %: total = before app + in app (ms) "
            "| while they were in the app: LiveKit probe · timer lateness · GC (ms) |",
            "|---|---:|---:|---:|---:|---:|---:|---|---|",
            *steady_rows,
        ]
    saturation_rows = []
    for name, variant in results["variants"].items():
        runs = [r["saturation"] for r in variant["rounds"] if r.get("saturation")]
        if runs:
            anatomies = [run.get("anatomy") for run in runs]
            p50 = sorted(run["p50_ms"] for run in runs)[len(runs) // 2]
            p99 = sorted(run["p99_ms"] for run in runs)[len(runs) // 2]
            middle = _median_anatomy(anatomies, "median_requests")
            saturation_rows.append(
                f"| {name} | {p50:.1f} | {p99:.1f} | {middle} | {_median_anatomy(anatomies)} | "
                f"{_stalls(anatomies)} |"
            )
    if saturation_rows:
        lines += [
            "",
            f"At saturation ({settings.get('saturation_anatomy', '')}), where the time goes:",
            "",
            "| variant | p50 ms | p99 ms | median requests: total = before app + in app (ms) "
            "| slowest 1 % (ms) | while they were in the app: LiveKit probe · timer lateness "
            "· GC (ms) |",
            "|---|---:|---:|---|---|---|",
            *saturation_rows,
        ]
    splits = {
        name: " ".join("/".join(map(str, s)) for s in v["summary"].get("connection_splits", []))
        for name, v in results["variants"].items()
    }
    if any(splits.values()):
        lines += [
            "",
            "Connections per worker (wrk's 16, one sample per round): "
            + "; ".join(f"{name} {text}" for name, text in splits.items())
            + ".",
        ]
    variants = results["variants"]
    if {"baseline-flask", "baseline-livekit-api", "ours-on_join"} <= variants.keys():
        rps = {name: variants[name]["summary"]["rps"] for name in variants}
        cpu = {name: variants[name]["summary"]["app_cpu_ms_per_request"] for name in variants}
        lines += [
            "",
            "Where `on_join`'s distance to the bare PyJWT route goes (req/s ratios, app CPU per "
            "request): livekit-api's own token code, `baseline-livekit-api` / `baseline-flask` = "
            f"{rps['baseline-livekit-api'] / rps['baseline-flask']:.2f}x "
            f"({cpu['baseline-livekit-api'] - cpu['baseline-flask']:+.2f} ms); this package's "
            f"token path, `ours-on_join` / `baseline-livekit-api` = "
            f"{rps['ours-on_join'] / rps['baseline-livekit-api']:.2f}x "
            f"({cpu['ours-on_join'] - cpu['baseline-livekit-api']:+.2f} ms).",
        ]
    if {"ours-eager", "naive-eager"} <= variants.keys():
        ratio = variants["ours-eager"]["summary"]["rps"] / variants["naive-eager"]["summary"]["rps"]
        lines += [
            "",
            f"On loopback (no TLS, no RTT), ours-eager / naive-eager req/s = {ratio:.2f}x: "
            "see the remote profile for the comparison that matters.",
        ]
    soak = results.get("soak")
    if soak:
        lines += [
            "",
            f"**Soak** ({soak['variant']}, {soak['requests']} requests after "
            f"{soak['warmup_requests']} warm-up): {soak['rps']:.0f} req/s, "
            f"p50 {soak['p50_ms']:.1f} ms, p99 {soak['p99_ms']:.1f} ms, {soak['errors']} errors; "
            f"RSS {soak['rss_before_bytes'] / MIB:.1f} → {soak['rss_after_bytes'] / MIB:.1f} MiB "
            f"({soak['rss_growth_pct']:+.1f} %), peak {soak['rss_peak_bytes'] / MIB:.1f} MiB; "
            f"{len(soak['log_warnings'])} warning lines in the logs.",
        ]
    lines += target_table(results["targets"])
    lines += [
        "",
        "Tokens signed (claim names of the first answer of each variant; values omitted):",
        "",
        "| variant | claims | video grants | roomConfig | TTL s |",
        "|---|---|---|---|---:|",
    ]
    for name, variant in results["variants"].items():
        shape = variant["token_claims"]
        lines.append(
            f"| {name} | {' '.join(shape['claims'])} | {' '.join(shape['video'])} | "
            f"{' '.join(shape['room_config']) or '-'} | {shape['ttl_s']} |"
        )
    warnings = {
        name: variant["log_warnings"]
        for name, variant in results["variants"].items()
        if variant["log_warnings"]
    }
    if soak and soak["log_warnings"]:
        warnings["soak"] = soak["log_warnings"]
    if warnings:
        lines += ["", "Warnings found in the server logs (first few per variant):", ""]
        for name, found in warnings.items():
            lines += [f"- {name}: `{line}`" for line in found[:3]]
    return "\n".join(lines) + "\n"


def _stalls(anatomies: list[Any]) -> str:
    """The LiveKit probe, timer lateness and GC seen while the slowest requests were in the app,
    from the round whose slowest 1 % had the median total."""
    rounds = [a for a in anatomies if a and a.get("joined") and a.get("stalls")]
    if not rounds:
        return "-"
    stalls = sorted(rounds, key=lambda a: a["slowest_1pct"]["latency_ms"])[len(rounds) // 2][
        "stalls"
    ]
    if not stalls.get("probe_calls"):
        return f"GC {stalls['slow_in_app_gc_ms_mean']:.1f}"

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    probe = ms(stalls.get("probe_p50_ms")), ms(stalls.get("probe_max_during_slow_median_ms"))
    late = ms(stalls.get("lateness_p50_ms")), ms(stalls.get("lateness_max_during_slow_median_ms"))
    gc = stalls["slow_in_app_gc_ms_mean"]
    return f"{probe[0]} → {probe[1]} · {late[0]} → {late[1]} · {gc:.1f}"


def _median_anatomy(anatomies: list[Any], key: str = "slowest_1pct") -> str:
    """``total = before app + in app`` of the round with the median total."""
    groups = [a[key] for a in anatomies if a and a.get("joined")]
    if not groups:
        return "-"
    group = sorted(groups, key=lambda g: g["latency_ms"])[len(groups) // 2]
    return f"{group['latency_ms']:.1f} = {group['before_app_ms']:.1f} + {group['in_app_ms']:.1f}"


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["variants"])
    summaries = [results["variants"][name]["summary"] for name in names]
    panels = [
        ("requests/s (higher is better)", [s["rps"] for s in summaries], "{:.0f}"),
        ("p50 latency, ms", [s["p50_ms"] for s in summaries], "{:.1f}"),
        ("p99 latency, ms", [s["p99_ms"] for s in summaries], "{:.1f}"),
        ("peak RSS, MiB", [s["peak_rss_bytes"] / MIB for s in summaries], "{:.0f}"),
    ]
    colors = ["#8c8c8c" if name.startswith(("baseline", "naive")) else "#1f77b4" for name in names]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for axis, (title, values, fmt) in zip(axes.flat, panels, strict=True):
        bars = axis.bar(names, values, color=colors)
        axis.bar_label(bars, labels=[fmt.format(v) for v in values], fontsize=8)
        axis.set_title(title)
        axis.tick_params(axis="x", labelsize=8)
        axis.margins(y=0.15)
    errors = ", ".join(f"{name}: {s['errors']}" for name, s in zip(names, summaries, strict=True))
    meta = results["meta"]
    figure.suptitle(
        f"POST /livekit/token — gunicorn {results['settings']['gunicorn']}, "
        f"wrk {results['settings']['wrk']}\n"
        f"{meta['cpu_count']} CPUs, Python {meta['python']}, {meta['date']} · errors: {errors}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def render_remote(results: dict[str, Any]) -> str:
    meta, settings = results["meta"], results["settings"]
    lines = [
        *_heading("Token endpoint benchmark: LiveKit across a network", meta),
        f"Path: {settings['path']}. Certificate check: "
        + "; ".join(f"{k}: {v}" for k, v in results.get("verification", {}).items())
        + ".",
        "",
        f"gunicorn {settings['gunicorn']} · wrk {settings['wrk']} · {settings['rounds']} "
        f"interleaved rounds of {settings['duration_s']} s (after {settings['warmup_s']} s "
        f"warm-up) · steady rate: {settings['steady']}. Medians across rounds.",
        "",
        "| RTT ms | TLS | variant | req/s (per round) | p50 ms | p99 ms | steady rate/s "
        "| steady p50 | p90 | p99 | max ms | LiveKit service p50 / p99 ms | floor ms | new TLS "
        "connections per request | connections per worker | errors |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|",
    ]
    for cell in results["cells"]:
        for name, variant in cell["variants"].items():
            s = variant["summary"]
            rounds = ", ".join(f"{r:.0f}" for r in s["rps_rounds"])
            splits = " ".join("/".join(map(str, split)) or "-" for split in s["connection_splits"])
            errors = s["errors"] + s.get("steady_errors", 0)
            lines.append(
                f"| {cell['rtt_ms']} | {cell['tls']} | {name} | {s['rps']:.0f} ({rounds}) | "
                f"{s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {_fmt(s.get('steady_rate'), '.0f')} | "
                f"{_fmt(s.get('steady_p50_ms'))} | {_fmt(s.get('steady_p90_ms'))} | "
                f"{_fmt(s.get('steady_p99_ms'))} | {_fmt(s.get('steady_max_ms'))} | "
                f"{_fmt(s.get('livekit_service_p50_ms'))} / {_fmt(s.get('livekit_service_p99_ms'))}"
                f" | {_fmt(s.get('steady_floor_ms'))} | "
                f"{s['new_connection_share']:.2f} | {splits} | {errors} |"
            )
    lines += [
        "",
        "| RTT ms | TLS | ours-eager / naive-eager req/s | per round | new connection + "
        "request, RTT (probe) | request on a reused connection, RTT (probe) |",
        "|---:|---|---:|---|---:|---:|",
    ]
    probes = {(probe["rtt_ms"], probe["tls"]): probe for probe in results.get("probes", [])}
    for cell in results["cells"]:
        variants = cell["variants"]
        if {"ours-eager", "naive-eager"} <= variants.keys():
            ours, naive = variants["ours-eager"], variants["naive-eager"]
            per_round = [
                a["rps"] / b["rps"] for a, b in zip(ours["rounds"], naive["rounds"], strict=True)
            ]
            probe = probes.get((cell["rtt_ms"], cell["tls"]), {})
            lines.append(
                f"| {cell['rtt_ms']} | {cell['tls']} | "
                f"{ours['summary']['rps'] / naive['summary']['rps']:.2f}x | "
                f"{', '.join(f'{r:.2f}' for r in per_round)} | "
                f"{_fmt(probe.get('new_connection_rtts'), '.2f')} (expected "
                f"{probe.get('expected_new_rtts', '-')}) | "
                f"{_fmt(probe.get('reused_connection_rtts'), '.2f')} |"
            )
    slopes = rtt_slopes(results)
    if slopes:
        lines += [
            "",
            "Round trips per request, from the steady-rate p50 against RTT "
            "(slope of p50 between the smallest and the largest RTT):",
            "",
            "| variant | TLS | round trips per request |",
            "|---|---|---:|",
        ]
        lines += [f"| {name} | {tls} | {slope:.2f} |" for (name, tls), slope in slopes.items()]
    return "\n".join(lines + target_table(results["targets"])) + "\n"


def target_table(targets: list[dict[str, Any]]) -> list[str]:
    """The targets as Markdown rows: each one met or missed, with what was measured and why."""
    lines = ["", "| target | measured | met | reason (measured) |", "|---|---|:-:|---|"]
    for target in targets:
        lines.append(
            f"| {target['target']} | {target['measured']} | {'yes' if target['met'] else 'NO'} "
            f"| {target.get('reason', '')} |"
        )
    return lines


def print_targets(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Print each target as met or MISSED with its measurement and reason; the missed ones."""
    print("\ntargets:")
    for target in targets:
        verdict = "met   " if target["met"] else "MISSED"
        print(f"  {verdict} {target['target']}: {target['measured']}")
        if target.get("reason"):
            print(f"         reason: {target['reason']}")
    return [target for target in targets if not target["met"]]


def rtt_slopes(results: dict[str, Any]) -> dict[tuple[str, str], float]:
    """Extra milliseconds of steady-rate p50 per millisecond of RTT, per variant and TLS."""
    points: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for cell in results["cells"]:
        for name, variant in cell["variants"].items():
            p50 = variant["summary"].get("steady_p50_ms")
            if p50 is not None:
                points.setdefault((name, cell["tls"]), []).append((cell["rtt_ms"], p50))
    slopes = {}
    for key, values in sorted(points.items()):
        values.sort()
        (low, low_p50), (high, high_p50) = values[0], values[-1]
        if high > low:
            slopes[key] = (high_p50 - low_p50) / (high - low)
    return slopes


def write_remote_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    colors = {"ours-eager": "#1f77b4", "naive-eager": "#8c8c8c"}
    styles = {"1.3": "-", "1.2": "--"}
    series: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    for cell in results["cells"]:
        for name, variant in cell["variants"].items():
            s = variant["summary"]
            series.setdefault((name, cell["tls"]), []).append(
                (cell["rtt_ms"], s["rps"], s.get("steady_p99_ms") or float("nan"))
            )
    for (name, tls), values in sorted(series.items()):
        values.sort()
        rtts = [v[0] for v in values]
        style = {"color": colors.get(name, "k"), "linestyle": styles.get(tls, ":"), "marker": "o"}
        left.plot(rtts, [v[1] for v in values], label=f"{name}, TLS {tls}", **style)
        right.plot(rtts, [v[2] for v in values], label=f"{name}, TLS {tls}", **style)
    left.set_title("maximum req/s (wrk, closed loop)")
    right.set_title("p99 ms at half the variant's maximum rate (Vegeta, open loop)")
    for axis in (left, right):
        axis.set_xlabel("round-trip time to LiveKit, ms")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    left.set_ylim(bottom=0)
    right.set_ylim(bottom=0)
    meta, settings = results["meta"], results["settings"]
    figure.suptitle(
        f"POST /livekit/token, eager room creation, LiveKit behind nginx TLS + Toxiproxy RTT — "
        f"gunicorn {settings['gunicorn']}\n{meta['cpu_count']} CPUs ({meta['cpu_model']}), "
        f"{meta['memory_gib']:.0f} GiB, Python {meta['python']}, {meta['date']}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
