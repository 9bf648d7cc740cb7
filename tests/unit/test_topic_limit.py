"""stream.kafka.TopicLimit: what a topic takes, looked up when needed and kept a while.

The lookup is a plain coroutine here (`max_message_bytes` asks the broker; the
integration test in test_dead_letters.py runs it against the embedded broker).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import KafkaConnectionError

from stream import kafka
from stream.kafka import TopicLimit

DEFAULT = 5 * 1_048_576


class Lookups:
    """Answers in turn (an exception is raised), counting the calls."""

    def __init__(self, *answers: int | BaseException | None) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> int | None:
        self.calls += 1
        await asyncio.sleep(0)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def test_the_limit_is_looked_up_once_and_kept_for_its_time() -> None:
    lookups = Lookups(1_048_588, 2_000_000)
    limit = TopicLimit("dead-letters", lookups, DEFAULT, ttl_s=0.2)
    assert await limit.get() == 1_048_588
    assert await limit.get() == 1_048_588
    assert lookups.calls == 1
    await asyncio.sleep(0.25)
    assert await limit.get() == 2_000_000
    assert lookups.calls == 2


async def test_callers_at_once_share_one_lookup() -> None:
    lookups = Lookups(1_048_588)
    limit = TopicLimit("dead-letters", lookups, DEFAULT)
    assert await asyncio.gather(*(limit.get() for _ in range(5))) == [1_048_588] * 5
    assert lookups.calls == 1


async def test_a_limit_not_reported_is_the_default() -> None:
    limit = TopicLimit("dead-letters", Lookups(None), DEFAULT)
    assert await limit.get() == DEFAULT


async def test_a_failed_lookup_stands_as_the_default_for_a_while_then_is_tried_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kafka, "FAILED_LOOKUP_TTL_S", 0.2)
    lookups = Lookups(KafkaConnectionError("away"), 1_048_588)
    limit = TopicLimit("dead-letters", lookups, DEFAULT)
    with caplog.at_level(logging.WARNING, logger="stream.kafka"):
        assert await limit.get() == DEFAULT
    assert "could not read a topic's max.message.bytes" in caplog.text
    assert await limit.get() == DEFAULT
    assert lookups.calls == 1
    await asyncio.sleep(0.25)
    assert await limit.get() == 1_048_588
    assert lookups.calls == 2


async def test_a_failed_re_read_keeps_the_limit_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 MB topic whose re-read fails stays 1 MB (it was 5 MiB for a minute, and dead letters
    sized for that are refused: the worker would stop); then it is read again."""
    monkeypatch.setattr(kafka, "FAILED_LOOKUP_TTL_S", 0.2)
    lookups = Lookups(1_048_588, KafkaConnectionError("away"), 2_000_000)
    limit = TopicLimit("dead-letters", lookups, DEFAULT, ttl_s=0.1)
    assert await limit.get() == 1_048_588
    await asyncio.sleep(0.15)
    assert await limit.get() == 1_048_588  # the re-read failed
    assert lookups.calls == 2
    await asyncio.sleep(0.25)
    assert await limit.get() == 2_000_000
    assert lookups.calls == 3


async def test_a_limit_below_the_default_is_a_warning_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limit = TopicLimit("dead-letters", Lookups(1_048_588, 1_048_588), DEFAULT, ttl_s=0.0)
    with caplog.at_level(logging.INFO, logger="stream.kafka"):
        await limit.get()
        await limit.get()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"topic takes records up to 1048588 bytes, less than the {DEFAULT} wanted"
    ]
    assert warnings[0].topic == "dead-letters"  # type: ignore[attr-defined]


async def test_an_answer_not_understood_is_the_default_too() -> None:
    """Whatever the lookup raises, the default stands: a dead letter must never fail on it."""
    limit = TopicLimit("dead-letters", Lookups(ValueError("invalid literal for int()")), DEFAULT)
    assert await limit.get() == DEFAULT
