"""What the worker's app sets up as it is loaded, before any Kafka client starts."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from stream.codec import DEAD_LETTER_REASONS, PROCESSING_ERROR
from stream.config import Topics
from tests.scripts import run_script

SCRIPT = """
from prometheus_client import generate_latest
from stream import app
print(generate_latest(app.registry).decode())
"""


def test_the_app_makes_its_data_dir_and_exports_its_error_series_at_0(tmp_path: Path) -> None:
    """A data directory whose parents do not exist is made (Faust's mkdir is not recursive:
    the worker stopped with FileNotFoundError); and the series the error alerts watch are
    exported at 0 from the start (a series that appears at its first error shows Prometheus
    no increase, and ProcessingErrors, DeadLettersHigh or TimerErrors would not fire)."""
    data_dir = tmp_path / "var" / "lib" / "cross-sell" / "data"
    done = run_script(SCRIPT, data_dir)
    assert data_dir.is_dir()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(done.stdout.decode())
        for sample in family.samples
    }
    topics = Topics()
    expected = {
        *((topic, reason) for topic in topics.inputs for reason in DEAD_LETTER_REASONS),
        (topics.item_baskets, PROCESSING_ERROR),
        ("cross-sell-stream-ticks", PROCESSING_ERROR),
    }
    dead = {
        (dict(labels)["topic"], dict(labels)["reason"]): value
        for (name, labels), value in samples.items()
        if name == "stream_events_dead_lettered_total"
    }
    assert dead == dict.fromkeys(expected, 0.0)
    timers = {
        dict(labels)["timer"]: value
        for (name, labels), value in samples.items()
        if name == "stream_timer_errors_total"
    }
    assert timers == {"rescore": 0.0, "item_neighbors": 0.0}
