"""The compiled murmur2 places every key where Kafka's clients do."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner, murmur2

from pipeline.partitioning import default_partitioner, key_hash

# The Java client's own vectors (org.apache.kafka.common.utils.UtilsTest#testMurmur2), as
# signed 32-bit results.
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "signed"), JAVA_VECTORS.items())
def test_the_hash_is_the_java_clients(key: bytes, signed: int) -> None:
    assert key_hash(key) == signed & 0x7FFFFFFF


def test_every_key_goes_where_aiokafkas_partitioner_puts_it() -> None:
    draw = random.Random(7)
    keys = [draw.randbytes(length) for length in range(70) for _ in range(20)]
    keys += [f"{draw.getrandbits(128):032x}".encode() for _ in range(1_000)]  # job ids
    partitions = list(range(12))
    theirs = DefaultPartitioner()
    for key in keys:
        assert key_hash(key) == murmur2(key) & 0x7FFFFFFF
        assert default_partitioner(key, partitions, partitions) == theirs(
            key, partitions, partitions
        )


def test_a_record_without_a_key_goes_to_a_partition_that_is_up() -> None:
    assert {default_partitioner(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
    assert default_partitioner(None, [0, 1, 2], []) in {0, 1, 2}
