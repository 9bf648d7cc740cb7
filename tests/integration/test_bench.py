"""`python -m stream bench` runs end to end on the embedded broker (tiny sizes; figures not judged).

The benchmark's targets are met in the benchmark (README "Performance"),
not here: this proves the command works from a fresh checkout and that
every processor answered every event and every latency probe.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from stream.bench.pipeline import Installation, until
from stream.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_bench_measures_all_four_processors_the_handlers_and_the_memory(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream",
            "bench",
            "--events=2000",  # (d) answers a few hundred in one burst: untimeable
            "--customers=50",
            "--history=200",
            "--runs=1",
            "--partitions=2",
            "--latency-seconds=3",
            "--rate=50",
            "--pairs=2000",
            "--memory-customers=300",
            "--setting=STREAM_BATCH_WAIT_MS=5",
            f"--json={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = orjson.loads(out.read_bytes())
    medians = figures["pipeline"]["medians"]
    assert set(medians) == {"passthrough x1", "relay x1", "pipeline x1", "batched x1"}
    for name, m in medians.items():
        assert m["events"] == 2000, name
        # The pipeline's clock starts once the workload is in: a few events may come before.
        assert 1000 <= m["timed_events"] <= 2000, name
        assert m["events_per_s"] > 0, name
        # The first second of probes is warm-up; the other two seconds' are all answered.
        assert 80 <= m["latency"]["probes"] <= 100, name
        assert 0 < m["latency"]["p50_ms"] <= m["latency"]["p99_ms"] <= m["latency"]["max_ms"]
        # the answer is sent before it arrives (timestamps in ms: 1 ms of rounding)
        assert m["latency"]["p50_to_answer_ms"] <= m["latency"]["p50_ms"] + 1
    # CPU per event: the pipeline's work shows next to a bare relay's (which, counted in
    # /proc's 10 ms ticks over 2,000 events, may round to 0).
    assert medians["pipeline x1"]["cpu_ms_per_event"] > medians["relay x1"]["cpu_ms_per_event"]
    # Records the pipeline's agents read an input event: each timed event once, and the
    # basket records and ticks besides; fewer than a record an item and order would be.
    workload = figures["pipeline"]["workload"]
    per_item = 1 + workload["basket_rows"] / workload["events"]
    assert 1 <= medians["pipeline x1"]["records_read_per_event"] < per_item, per_item
    assert set(figures["pipeline"]["ratios"]) == {
        "pipeline_vs_passthrough_throughput",
        "pipeline_vs_passthrough_p99_latency",
        "pipeline_vs_relay_throughput",
        "pipeline_vs_relay_p99_latency",
        "pipeline_vs_batched_throughput",
        "pipeline_vs_batched_p99_latency",
    }
    assert figures["pipeline"]["pipeline_settings"] == {"STREAM_BATCH_WAIT_MS": "5"}
    assert figures["pipeline"]["workload"]["history_orders"] == 200
    handlers = figures["handlers"]  # the same workload's handlers, no broker
    assert handlers["calls"]["cart event"] == figures["pipeline"]["workload"]["item_added"]
    assert handlers["cpu_us_per_event"] > 0 and len(handlers["runs_cpu_us_per_event"]) == 1
    customers = figures["memory"]["customers"]
    assert customers["customers"] == 300 and customers["bytes_per_customer"] > 0
    assert "| pipeline x1 |" in done.stdout  # the README's table


def test_a_latency_phase_of_one_second_or_less_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its first second is warm-up: nothing would be left to measure (it crashed on that)."""
    from stream.bench import parse_args

    assert parse_args(["pipeline", "--latency-seconds=1.5"]).latency_seconds == 1.5
    with pytest.raises(SystemExit):
        parse_args(["pipeline", "--latency-seconds=1"])
    assert "--latency-seconds must be more than 1" in capsys.readouterr().err


def test_settings_go_to_the_pipelines_workers_and_only_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--setting STREAM_NAME=VALUE` reaches the pipeline's workers, not the baselines."""
    from stream.bench import parse_args
    from stream.bench.pipeline import Installation

    args = parse_args(
        [
            "pipeline",
            "--setting",
            "STREAM_BATCH_WAIT_MS=10",
            "--setting=STREAM_FETCH_MAX_WAIT_MS=50",
        ]
    )
    assert args.pipeline_settings == {
        "STREAM_BATCH_WAIT_MS": "10",
        "STREAM_FETCH_MAX_WAIT_MS": "50",
    }
    broker: Any = SimpleNamespace(url="kafka://127.0.0.1:9")
    pipeline = Installation("pipeline", broker, 2, tmp_path, args.pipeline_settings)
    relay = Installation("relay", broker, 2, tmp_path, args.pipeline_settings)
    assert (pipeline.settings.batch_wait_ms, pipeline.settings.fetch_max_wait_ms) == (10, 50)
    assert pipeline.env["STREAM_BROKER"] == "kafka://127.0.0.1:9"
    assert "STREAM_BATCH_WAIT_MS" not in relay.env
    for bad, says in [
        ("STREAM_BATCH_WAIT_MS=0", "must be an integer >= 1"),
        ("STREAM_NO_SUCH=1", "unknown setting STREAM_NO_SUCH"),
        ("STREAM_BROKER=kafka://elsewhere:9092", "the bench sets it"),
        ("STREAM_TOPIC_CART_EVENTS=mine", "the bench sets it"),
        ("BATCH_WAIT_MS=10", "give STREAM_NAME=VALUE"),
    ]:
        with pytest.raises(SystemExit):
            parse_args(["pipeline", f"--setting={bad}"])
        assert says in capsys.readouterr().err, bad


async def test_the_pipelines_clock_waits_for_every_worker(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """N workers are timed once each is ready and, together, they own every input partition."""
    installation = Installation("pipeline", broker, 2, tmp_path)
    await installation.create_topics()
    installation.start(2)
    try:
        assert not await installation.settled()  # still starting
        await until(installation.settled, installation, 120, "a settled group", poll=0.2)
        inputs = installation.inputs
        owned = await installation.owned()
        assert owned is not None and len(owned) == 2
        assert all(owned) and not owned[0] & owned[1]  # both share the work, none twice
        assert owned[0] | owned[1] == {(t, p) for t in inputs for p in (0, 1)}
        installation.processes[1].terminate()
        installation.processes[1].wait(30)
        assert not await installation.settled()  # one gone: its partitions are orphaned
    finally:
        installation.stop()
