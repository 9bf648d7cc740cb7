"""`python -m stream bench`: how fast and how big, on this machine, in one run.

    python -m stream bench                 # everything below; figures to bench.json
    python -m stream bench pipeline        # throughput and latency on the embedded broker
    python -m stream bench memory          # bytes per pair and per customer (no broker)
    python -m stream bench handlers        # the pipeline's own CPU an event (no broker)

`pipeline` (stream/bench/pipeline.py) runs a bare Faust passthrough, a raw
aiokafka relay, the full pipeline and the cheapest Faust agent that answers
each event (`batched`: the floor under any Faust pipeline) on the same
generated workload and prints events/s, add-to-suggestion latency at a
steady 1,000 adds/s, and the pipeline's ratios to the baselines: medians of
`--runs` runs. `memory`
(stream/bench/memory.py) measures the state with tracemalloc. `handlers`
(stream/bench/handlers.py) runs the worker's per-event handlers on the same
workload in one process, without Kafka or Faust's streams: the CPU an event
of the pipeline's own work, whatever carries its events. The README's
"Performance" section quotes one such run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from stream.bench.memory import measure_memory
from stream.bench.pipeline import (
    BENCH_SETTINGS,
    KINDS,
    ROOT,
    environment_without_settings,
    medians_of,
    run_all,
)
from stream.config import Settings, SettingsError


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stream bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "what", nargs="?", choices=["all", "pipeline", "memory", "handlers"], default="all"
    )
    parser.add_argument("--events", type=int, default=20_000, help="workload size (events)")
    parser.add_argument("--customers", type=int, default=2_000, help="customers in the workload")
    parser.add_argument(
        "--history",
        type=int,
        default=500,
        help="orders the pipeline learns from before its clock starts",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per processor (median)")
    parser.add_argument(
        "--workers", default="1", help="pipeline worker counts, e.g. 1,2,4 (baselines: the first)"
    )
    parser.add_argument("--processors", default=",".join(KINDS), help=f"which of {','.join(KINDS)}")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=10.0,
        help="length of the latency phase (> 1: its first second is warm-up, not counted)",
    )
    parser.add_argument("--rate", type=int, default=1_000, help="adds/s in the latency phase")
    parser.add_argument(
        "--random-ids",
        action="store_true",
        help="handlers: the workload's event, order and cart ids as random UUIDs, as many "
        "shops' are, not the demo's serial numbers",
    )
    parser.add_argument("--pairs", type=int, default=250_000, help="memory: pairs to hold")
    parser.add_argument("--memory-customers", type=int, default=100_000)
    parser.add_argument("--capacity", type=int, default=100, help="neighbours kept per item")
    parser.add_argument("--json", default="bench.json", help="where the figures go")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="STREAM_NAME=VALUE",
        help="a setting for the pipeline's workers, e.g. STREAM_BATCH_WAIT_MS=10 (repeatable; "
        "the bench's own environment's STREAM_* variables are not passed on)",
    )
    args = parser.parse_args(argv)
    if args.latency_seconds <= 1:
        parser.error("--latency-seconds must be more than 1 (the first second is warm-up)")
    args.pipeline_settings = {}
    for setting in args.setting:
        name, equals, value = setting.partition("=")
        if not equals or not name.startswith("STREAM_"):
            parser.error(f"--setting {setting!r}: give STREAM_NAME=VALUE")
        if name in BENCH_SETTINGS:
            parser.error(f"--setting {name}: the bench sets it (broker, namespace, partitions)")
        args.pipeline_settings[name] = value
    try:
        Settings.from_env(args.pipeline_settings)
    except SettingsError as exc:
        parser.error(f"--setting: {exc}")
    return args


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    figures: dict[str, Any] = {
        "machine": {
            "cpus": _cpus(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
    }
    if args.what in ("all", "pipeline"):
        figures["pipeline"] = asyncio.run(
            run_all(
                events=args.events,
                customers=args.customers,
                history=args.history,
                runs=args.runs,
                workers=[int(n) for n in args.workers.split(",")],
                partitions=args.partitions,
                latency_seconds=args.latency_seconds,
                rate=args.rate,
                progress=say,
                kinds=tuple(args.processors.split(",")),
                pipeline_settings=args.pipeline_settings,
            )
        )
    if args.what in ("all", "handlers"):
        figures["handlers"] = run_handlers(args, progress=say)
    if args.what in ("all", "memory"):
        say("memory ...")
        figures["memory"] = measure_memory(args.pairs, args.memory_customers, args.capacity)
    print(report(figures))
    with open(args.json, "wb") as out:
        out.write(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    say(f"figures written to {args.json}")
    return 0


def run_handlers(args: argparse.Namespace, progress: Callable[[str], None]) -> dict[str, Any]:
    """stream/bench/handlers.py, `--runs` times, each a fresh process; medians, and each run's."""
    env = environment_without_settings()
    env.update(args.pipeline_settings, STREAM_PARTITIONS=str(args.partitions))
    runs = []
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as data:
        for run in range(args.runs):
            progress(f"run {run + 1}/{args.runs}: handlers, no broker ...")
            done = subprocess.run(
                [
                    sys.executable,
                    *("-m", "stream.bench.handlers", f"--events={args.events}"),
                    *(f"--customers={args.customers}", f"--history={args.history}"),
                    *(["--random-ids"] if args.random_ids else []),
                ],
                cwd=ROOT,
                env=dict(env, STREAM_DATA_DIR=f"{data}/{run}"),
                stdin=subprocess.DEVNULL,
                capture_output=True,
            )
            if done.returncode:
                raise SystemExit(f"bench handlers failed:\n{done.stderr.decode()[-3000:]}")
            runs.append(orjson.loads(done.stdout))
            progress(f"  {runs[-1]['cpu_us_per_event']:.1f} CPU us an event")
    return medians_of(runs) | {"runs_cpu_us_per_event": [r["cpu_us_per_event"] for r in runs]}


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def report(figures: dict[str, Any]) -> str:
    """The figures as the README's Performance tables (Markdown)."""
    lines: list[str] = []
    pipeline = figures.get("pipeline")
    if pipeline:
        w = pipeline["workload"]
        lines += [
            f"Workload: {w['events']:,} events ({w['item_added']:,} item_added, "
            f"{w['orders']:,} orders, {w['basket_rows']:,} basket rows), "
            f"{w['customers']:,} customers, {w['partitions']} partitions; the pipeline "
            f"learnt {w['history_orders']:,} earlier orders first; "
            f"medians of {pipeline['runs']} runs.",
            "",
            "| processor | events/s | CPU ms/event | p50 add->answer (ms) | p99 (ms) "
            "| p99 add->answer sent (ms) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, m in pipeline["medians"].items():
            latency = m.get("latency")
            p50, p99, sent = (
                (f"{latency[k]:.1f}" for k in ("p50_ms", "p99_ms", "p99_to_answer_ms"))
                if latency
                else ("-", "-", "-")
            )
            cpu = m["cpu_ms_per_event"]
            lines.append(
                f"| {name} | {m['events_per_s']:,.0f} | {cpu:.2f} | {p50} | {p99} | {sent} |"
            )
        lines.append("")
        for name, value in pipeline["ratios"].items():
            lines.append(f"- {name.replace('_', ' ')}: {value:.2f}x")
    handlers = figures.get("handlers")
    if handlers:
        calls = ", ".join(f"{k} {v:.1f} us" for k, v in handlers["us_per_call"].items())
        lines += [
            "",
            f"- the pipeline's own work, no broker: {handlers['cpu_us_per_event']:.1f} CPU us "
            f"an input event (a call: {calls})",
        ]
        state = handlers["state"]
        held = ", ".join(f"{k} {v:,.0f} B" for k, v in state["bytes_per_customer"].items())
        lines.append(f"- held per customer after it, {state['customers']:,} customers: {held}")
        baselines = (pipeline or {}).get("medians", {})
        passthrough = next((m for n, m in baselines.items() if n.startswith("passthrough ")), None)
        if passthrough:
            share = handlers["cpu_us_per_event"] / 1000 / passthrough["cpu_ms_per_event"]
            lines.append(f"- own work over the passthrough's whole CPU an event: {share:.2f}x")
    memory = figures.get("memory")
    if memory:
        pairs, customers = memory["pairs"], memory["customers"]
        lines += [
            "",
            f"- memory per million pairs: {pairs['mib_per_million_pairs']:.1f} MiB "
            f"({pairs['bytes_per_pair']:.1f} B a pair, {pairs['capacity']} neighbours an item)",
            f"- memory per 100k customers: {customers['bytes_per_customer'] * 1e5 / 2**20:.1f} MiB "
            f"({customers['bytes_per_customer']:.0f} B a customer, "
            f"{customers['orders_each']} orders each)",
        ]
        lines += [f"- {k}: {v:.1f} us" for k, v in memory["per_call_us"].items()]
    return "\n".join(lines)
