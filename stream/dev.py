"""`python -m stream dev` (what `make run` runs): the whole product on one machine.

Starts the embedded broker (unless STREAM_BROKER names a cluster), creates
the topics, starts one worker, plays the demo feed into the input topics and
prints every suggestion and trigger as it is emitted, one line each, until
Ctrl-C. Nothing is left running afterwards: the worker and the broker are
stopped in order, and the broker also dies with this process if it is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.broker import EmbeddedBroker, die_with_parent, ensure_topics
from stream.config import Settings
from stream.demo import PLANS, DemoEvent, DemoFeed, basket_rows
from stream.health import BASKET_ROWS, processed_by_agent
from stream.kafka import client_security


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
    return value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stream dev", description=__doc__)
    parser.add_argument(
        "--rate",
        type=_positive,
        default=8.0,
        help="live events per second after the history (default 8)",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=300,
        help="past orders played first, at full speed (default 300)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=0.0,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    parser.add_argument("--seed", type=int, default=7, help="demo feed seed")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    settings = Settings.from_env()
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    broker: EmbeddedBroker | None = None
    broker_url = settings.broker
    if broker_url is None:
        broker = EmbeddedBroker(log_path=data_dir / "broker.log").start()
        broker_url = broker.url
        say(f"embedded broker on {broker.bootstrap} (in memory; log {data_dir / 'broker.log'})")
    try:
        return asyncio.run(run(settings, broker_url, data_dir, args, embedded=broker is not None))
    finally:
        if broker is not None:
            broker.stop()
            say("broker stopped")


def say(line: str, out: TextIO = sys.stdout) -> None:
    print(line, file=out, flush=True)


async def run(
    settings: Settings, broker_url: str, data_dir: Path, args: argparse.Namespace, *, embedded: bool
) -> int:
    bootstrap = [part.removeprefix("kafka://") for part in broker_url.split(",")]
    await ensure_topics(settings, bootstrap)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: its terminal closed
        loop.add_signal_handler(sig, stop.set)
    worker_log = data_dir / "worker.log"
    worker = await start_worker(broker_url, data_dir, worker_log)
    say(
        f"worker pid {worker.pid} on http://localhost:{settings.web_port}/metrics "
        f"(log {worker_log}); Ctrl-C stops everything"
    )
    tasks = [
        asyncio.create_task(show_outputs(settings, bootstrap, from_start=embedded)),
        asyncio.create_task(play_feed(settings, bootstrap, args)),
        asyncio.create_task(worker.wait()),
    ]
    if args.seconds > 0:
        loop.call_later(args.seconds, stop.set)
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if tasks[2] in done:
        say(f"worker exited with code {worker.returncode}; last lines of {worker_log}:")
        say(tail(worker_log))
        code = 1
    for name, task in (("output printer", tasks[0]), ("demo feed", tasks[1])):
        if task in done and not task.cancelled() and task.exception() is not None:
            say(f"the {name} failed: {task.exception()!r}", sys.stderr)
            code = 1
    for task in (*tasks, stopper):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await stop_worker(worker)
    say("worker stopped")
    return code


async def start_worker(
    broker_url: str, data_dir: Path, log_path: Path
) -> asyncio.subprocess.Process:
    env = dict(os.environ, STREAM_BROKER=broker_url, STREAM_DATA_DIR=str(data_dir / "worker"))
    env.setdefault("STREAM_PLAN_LADDER", ",".join(plan for plan, _ in PLANS))  # the demo's plans
    with log_path.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stream",
            "worker",
            "-l",
            "info",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # Ctrl-C goes to us; we stop it in order
            preexec_fn=die_with_parent,  # and if we are killed (SIGKILL), it goes too
        )


async def stop_worker(worker: asyncio.subprocess.Process, grace: float = 15.0) -> None:
    if worker.returncode is not None:
        return
    worker.terminate()
    try:
        await asyncio.wait_for(worker.wait(), grace)
    except TimeoutError:
        worker.kill()
        await worker.wait()


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def play_feed(settings: Settings, bootstrap: list[str], args: argparse.Namespace) -> None:
    """History at full speed, then live sessions at `args.rate` events per second."""
    topics = {
        "cart": settings.topics.cart,
        "purchase": settings.topics.purchase,
        "subscription": settings.topics.subscription,
    }
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, **client_security(settings.security)
    )
    await producer.start()
    feed = DemoFeed(seed=args.seed)

    async def send(event: DemoEvent) -> None:
        await producer.send(
            topics[event.topic], key=event.key.encode(), value=orjson.dumps(event.value)
        )

    try:
        history = list(feed.history(args.history))
        for event in history:
            await send(event)
        for event in feed.subscriptions():
            await send(event)
        await producer.flush()
        say(f"demo feed: {args.history} past orders sent; the worker learns them ...")
        if await history_learnt(settings.web_port, args.history, basket_rows(history)):
            say("demo feed: history learnt; live cart sessions follow")
        else:
            say(f"demo feed: history not learnt in {LEARN_TIMEOUT_S:.0f} s; live sessions follow")
        for event in feed.live():
            await send(event)
            await asyncio.sleep(1.0 / args.rate)
    finally:
        await producer.stop()


LEARN_TIMEOUT_S = 120.0
# After the last basket is counted, the total N reaches the item rows by a 1 s timer, and
# the rows their `item-neighbors` records by 0.2 s and 1 s timers, which the index reads.
NEIGHBORS_SETTLE_S = 3.0


async def history_learnt(web_port: int, orders: int, baskets: int) -> bool:
    """Wait until the worker has counted the history's orders and their baskets.

    Live cart adds that came sooner would meet an index that has learnt
    nothing yet and be answered with nothing. The rows and their neighbours
    then reach the worker's index by timers (NEIGHBORS_SETTLE_S).
    False if that does not happen within LEARN_TIMEOUT_S (a slow machine:
    the feed goes on).
    """
    deadline = asyncio.get_running_loop().time() + LEARN_TIMEOUT_S
    wanted = {"track_orders": orders, BASKET_ROWS: baskets}
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(OSError, ValueError):  # its web server not up (or not yet)
            processed = await processed_by_agent(web_port)
            if all(processed[agent] >= count for agent, count in wanted.items()):
                await asyncio.sleep(NEIGHBORS_SETTLE_S)
                return True
        await asyncio.sleep(0.25)
    return False


async def show_outputs(settings: Settings, bootstrap: list[str], *, from_start: bool) -> None:
    """Print each suggestion and trigger as one readable line."""
    consumer = AIOKafkaConsumer(
        settings.topics.suggestions,
        settings.topics.triggers,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_start else "latest",
        fetch_max_wait_ms=100,
        **client_security(settings.security),
    )
    await consumer.start()
    try:
        async for record in consumer:
            value = orjson.loads(record.value)
            if record.topic == settings.topics.suggestions:
                say(describe_suggestion(value))
            else:
                say(describe_trigger(value))
    finally:
        await consumer.stop()


def _offers(items: list[dict[str, Any]], limit: int = 3) -> str:
    shown = ", ".join(str(item.get("sku") or item.get("plan_id")) for item in items[:limit])
    more = f" +{len(items) - limit}" if len(items) > limit else ""
    return (shown + more) or "(nothing qualifies)"


def describe_suggestion(s: dict[str, Any]) -> str:
    """`suggestion  cust-0001 added camera-x100 -> sd-card-128gb (conf 0.62, lift 2.1), ...`"""
    items = s["items"]
    if items:
        top = items[0]
        head = (
            f"{top['sku']} (conf {top['confidence']:.2f}, lift {top['lift']:.1f})"
            if top.get("source") != "popular"
            else f"{top['sku']} (popular: cold item or new customer)"
        )
        rest = _offers(items[1:], 2)
        shown = head if not items[1:] else f"{head}, {rest}"
    else:
        shown = "(control: none shown)" if s["variant"] == "control" else "(nothing qualifies)"
    who = f"{s['customer_id']:<10}"
    return f"{s['event_ts']}  suggestion  {who} added {s['trigger_sku']} -> {shown}"


def describe_trigger(t: dict[str, Any]) -> str:
    """`trigger     post_purchase cust-0001 order-000042 -> offers ... | ltv 1234.50`"""
    context = t.get("order_id") or t.get("sku") or ""
    if t["kind"] == "renewal_approaching":
        context = f"{t['subscription_id']} ({t['plan_id']}, renews in {t['window_days']} d)"
    ltv = t.get("customer", {}).get("ltv", 0.0)
    return (
        f"{t['event_ts']}  trigger     {t['kind']:<13} {t['customer_id']:<10} {context} "
        f"-> {_offers(t['offers'])} | ltv {ltv:.2f}"
    )
