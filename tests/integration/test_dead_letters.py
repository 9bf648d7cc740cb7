"""Bad input never stops a worker and never vanishes.

Every invalid example of the codec's table (plus mis-keyed records) goes
through a live worker, interleaved with valid orders: each invalid record
lands in dead-letters with its reason, source position and original bytes;
each valid one is processed; the worker keeps running; the counters agree.

A dead-letters topic made for less than the 5 MiB the service asks for (as
Kafka's default of 1 MB) gets dead letters cut to fit it: the embedded broker
does not enforce the limit, so the test measures the records it is sent.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream.broker import EmbeddedBroker
from stream.codec import MAX_DEAD_LETTER_BYTES
from tests.examples import INVALID, VALID
from tests.integration.conftest import Deployment, namespace, values
from tests.schema_check import validate

pytestmark = pytest.mark.integration


def valid_order(n: int) -> dict[str, Any]:
    return {
        "event_id": f"e-valid-{n}",
        "type": "order_completed",
        "customer_id": f"dl-{n}",
        "ts": "2026-11-23T09:15:00Z",
        "order_id": f"o-valid-{n}",
        "items": [{"sku": "cam", "quantity": 1, "unit_price": 10.5}],
    }


async def test_invalid_records_go_to_dead_letters_and_the_worker_goes_on(
    deployment: Deployment,
) -> None:
    """All invalid classes are dead-lettered with reason and original bytes; valid ones count."""
    topics = deployment.topics
    topic_of = {
        "cart": topics.cart,
        "purchase": topics.purchase,
        "subscription": topics.subscription,
    }
    worker = deployment.start_worker()
    sent: list[tuple[str, bytes | None, bytes, str]] = []  # topic, key, value, reason
    for example in INVALID:
        sent.append((topic_of[example.topic], b"cust-1", example.payload, example.reason or ""))
    # Valid values with a key that is not their customer_id, or no key at all.
    mis_keyed = next(e for e in VALID if e.topic == "cart")
    sent.append((topics.cart, b"someone-else", mis_keyed.payload, "bad_key"))
    sent.append((topics.cart, None, mis_keyed.payload, "bad_key"))

    valid = [valid_order(n) for n in range(len(sent) // 20 + 1)]
    for n, (topic, key, value, _) in enumerate(sent):
        if n % 20 == 0:
            order = valid[n // 20]
            await deployment.produce(
                topics.purchase, [(order["customer_id"].encode(), orjson.dumps(order))]
            )
        await deployment.produce(topic, [(key, value)])

    letters = await deployment.read(
        topics.dead_letters, lambda rs: len(rs) >= len(sent), settle=3.0
    )
    assert len(letters) == len(sent)

    # Each dead letter points at the exact input record and carries its bytes.
    originals: dict[tuple[str, int, int], bytes] = {}
    for topic in set(topic_of.values()):
        for record in await deployment.read(
            topic,
            lambda rs, t=topic: (
                len(rs)
                >= sum(1 for s in sent if s[0] == t) + (len(valid) if t == topics.purchase else 0)
            ),
        ):
            originals[(topic, record.partition, record.offset)] = record.value
    reasons: Counter[str] = Counter()
    for letter in values(letters):
        validate("dead-letter", letter)
        original = base64.b64decode(letter["original"])
        assert originals[(letter["topic"], letter["partition"], letter["offset"])] == original
        reasons[letter["reason"]] += 1
        assert letter["detail"]
    assert reasons == Counter(reason for *_, reason in sent)

    ltv = await deployment.read(topics.customer_ltv, lambda rs: len(rs) >= len(valid))
    assert sorted(r.key.decode() for r in ltv) == sorted(o["customer_id"] for o in valid)

    assert worker.process.poll() is None, deployment.logs()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(await worker.metrics())
        for s in family.samples
    }
    dead = {
        labels: v
        for (name, labels), v in samples.items()
        if name == "stream_events_dead_lettered_total"
    }
    by_reason: Counter[str] = Counter()
    for labels, value in dead.items():
        by_reason[dict(labels)["reason"]] += int(value)
    assert by_reason == reasons
    invalid_consumed = sum(
        v
        for (name, labels), v in samples.items()
        if name == "stream_events_consumed_total" and dict(labels)["type"] == "invalid"
    )
    assert invalid_consumed == len(sent)


async def test_a_record_the_workers_code_raises_on_is_kept_and_the_agent_goes_on(
    deployment: Deployment,
) -> None:
    """A record that breaks its agent's code goes to dead-letters as processing_error.

    The internal item-baskets topic is read without the codec (the worker
    writes it), so a foreign record there makes the item-rows agent raise:
    it is kept with its bytes and the exception, and the agent goes on with
    the rest of its batch and after it (the order's baskets are counted).
    The module's worker is reused if the test above started one.
    """
    topics = deployment.topics
    if not deployment.workers:
        deployment.start_worker()
    broken = b"\x00 not a basket record"
    await deployment.produce(topics.item_baskets, [(b"dl-tripod", broken)])
    order = {
        **valid_order(1000),
        "items": [
            {"sku": "dl-tripod", "quantity": 1, "unit_price": 10.5},
            {"sku": "dl-bag", "quantity": 1, "unit_price": 99.0},
        ],
    }
    await deployment.produce(
        topics.purchase, [(order["customer_id"].encode(), orjson.dumps(order))]
    )

    def broken_letters(records: list[Any]) -> list[dict[str, Any]]:
        return [r for r in values(records) if r["topic"] == topics.item_baskets]

    letters = broken_letters(
        await deployment.read(topics.dead_letters, lambda rs: bool(broken_letters(rs)), settle=2.0)
    )
    assert len(letters) == 1, letters
    letter = letters[0]
    validate("dead-letter", letter)
    assert letter["reason"] == "processing_error"
    assert letter["detail"].startswith("JSONDecodeError")
    assert base64.b64decode(letter["original"]) == broken
    assert letter["key"] == "dl-tripod"

    def paired(records: list[Any]) -> bool:
        latest = {r["sku"]: r for r in values(records)}
        return all(
            sku in latest and other in {n["sku"] for n in latest[sku]["neighbors"]}
            for sku, other in (("dl-tripod", "dl-bag"), ("dl-bag", "dl-tripod"))
        )

    await deployment.read(topics.item_neighbors, paired)
    assert all(w.process.poll() is None for w in deployment.workers), deployment.logs()
    counted = 0.0
    for worker in deployment.workers:
        for family in text_string_to_metric_families(await worker.metrics()):
            for sample in family.samples:
                if sample.name == "stream_events_dead_lettered_total" and sample.labels == {
                    "topic": topics.item_baskets,
                    "reason": "processing_error",
                }:
                    counted += sample.value
    assert counted == 1
    assert "processing failed" in deployment.logs()


KAFKAS_DEFAULT_LIMIT = 1_048_588  # Kafka's max.message.bytes, where a topic does not set it


async def test_a_dead_letter_is_cut_to_what_its_topic_takes(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """dead-letters made at Kafka's default limit: a 1,000,000-byte bad record's dead letter
    fits it (its original cut, its size and hash of the whole), and so does that of a valid
    order sent with a 600,000-byte key (the key cut); the worker goes on."""
    async with namespace(
        broker,
        tmp_path_factory,
        topic_configs={"dead_letters": {"max.message.bytes": str(KAFKAS_DEFAULT_LIMIT)}},
    ) as deployment:
        topics = deployment.topics
        worker = deployment.start_worker()
        big = (b"not json " * 111_112)[:1_000_000]
        await deployment.produce(topics.cart, [(b"dl-big", big)])
        huge_key = b"\x01" * 600_000  # JSON writes each as \u0001: 3.6 MB whole
        mis_keyed = orjson.dumps(valid_order(2001))
        await deployment.produce(topics.purchase, [(huge_key, mis_keyed)])
        order = valid_order(2000)
        await deployment.produce(
            topics.purchase, [(order["customer_id"].encode(), orjson.dumps(order))]
        )

        letters = await deployment.read(topics.dead_letters, lambda rs: len(rs) >= 2, settle=2.0)
        assert len(letters) == 2
        for record in letters:
            assert len(record.value) + len(record.key or b"") + 128 <= KAFKAS_DEFAULT_LIMIT
        [record] = [r for r in letters if r.key == b"dl-big"]
        [keyed] = [orjson.loads(r.value) for r in letters if r.key == huge_key[:1024]]
        validate("dead-letter", keyed)
        assert keyed["reason"] == "bad_key"
        assert keyed["key"] == "\x01" * 1024
        assert keyed["key_truncated"] is True
        assert base64.b64decode(keyed["original"]) == mis_keyed
        letter = orjson.loads(record.value)
        validate("dead-letter", letter)
        kept = base64.b64decode(letter["original"])
        assert letter["reason"] == "not_json"
        assert letter["original_truncated"] is True
        assert 750_000 < len(kept) < 1_000_000
        assert kept == big[: len(kept)]
        assert letter["original_size"] == len(big)
        assert letter["original_sha256"] == hashlib.sha256(big).hexdigest()

        await deployment.read(topics.customer_ltv, lambda rs: len(rs) >= 1)
        assert worker.process.poll() is None, deployment.logs()
        assert (
            f"topic takes records up to {KAFKAS_DEFAULT_LIMIT} bytes, "
            f"less than the {MAX_DEAD_LETTER_BYTES} wanted"
        ) in worker.log_path.read_text()
