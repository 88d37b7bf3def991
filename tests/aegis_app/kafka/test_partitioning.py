"""The batch partitioner gives every key the partition aiokafka's default partitioner does."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis_app.kafka.partitioning import partitions_of


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=30), st.integers(min_value=1, max_value=64))
def test_the_same_partition_as_aiokafkas_default(keys, count):
    everyone = list(range(count))
    assert partitions_of(keys, count) == [DefaultPartitioner()(k, everyone, everyone) for k in keys]


def test_known_keys():
    # Text keys as the worker sends them (a card, a transaction id), 12 partitions.
    keys = [b"7", b"1042", b"tx-00000001", b"", "caf\u00e9".encode()]
    everyone = list(range(12))
    assert partitions_of(keys, 12) == [DefaultPartitioner()(k, everyone, everyone) for k in keys]
