"""The latency phase's probes (`stream.bench.pipeline.live_adds`): a live shop's adds."""

from __future__ import annotations

from stream.bench.pipeline import Workload, live_adds
from stream.domain.events import parse_ts


def test_probes_event_time_moves_on_from_the_workload_at_the_pace_they_are_sent() -> None:
    """At 1,000 adds/s a shop's event time moves a millisecond an add, not the demo's minutes.

    The demo feed's clock moved minutes an event: timed at 1,000/s, that was
    weeks of event time in seconds, and the worker re-scored every customer
    while the probes were timed.
    """
    workload = Workload.generate(500, 50, history=20)
    end = parse_ts(workload.last_ts)
    assert end == max(parse_ts(e.value["ts"]) for e in workload.history + workload.events)

    probes = list(live_adds(2000, seed=3, after=workload.last_ts, rate=1000))

    times = [parse_ts(p.value["ts"]) for p in probes]
    assert times == sorted(times) and times[0] > end
    assert abs(times[-1] - end - 2.0) < 0.002  # 2,000 adds at 1,000/s: two seconds on
    assert {p.value["type"] for p in probes} == {"item_added"}
    ids = {p.value["event_id"] for p in probes}
    assert len(ids) == 2000
    assert not ids & {e.value["event_id"] for e in workload.events}
