"""`KeyPartitioner` puts every key where Kafka's default partitioner does."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from stream.kafka import KeyPartitioner


@given(
    keys=st.lists(st.binary(max_size=40), min_size=1, max_size=20),
    count=st.integers(1, 64),
)
def test_keys_go_where_the_default_partitioner_puts_them(keys: list[bytes], count: int) -> None:
    partitions = list(range(count))
    ours, kafkas = KeyPartitioner(), DefaultPartitioner()
    for key in keys + keys:  # hashed, then from the cache
        assert ours(key, partitions, partitions) == kafkas(key, partitions, partitions)


def test_known_java_client_partitions() -> None:
    """The Java client's partitions of these keys among 1,000 (pinned by kafka-python's tests)."""
    ours = KeyPartitioner()
    all_partitions = list(range(1000))
    assert ours(b"", all_partitions, all_partitions) == 681
    assert ours(b"a", all_partitions, all_partitions) == 524
    assert ours(b"ab", all_partitions, all_partitions) == 434
    assert ours(b"abc", all_partitions, all_partitions) == 107
    assert ours(b"123456789", all_partitions, all_partitions) == 566
    assert ours(b"\x00 ", all_partitions, all_partitions) == 742


def test_a_record_without_key_goes_to_an_available_partition() -> None:
    ours = KeyPartitioner()
    assert {ours(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
