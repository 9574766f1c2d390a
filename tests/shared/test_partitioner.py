"""Every producer's partitioner puts a key where Kafka's default partitioner does."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from shared.publisher import RememberingPartitioner


def test_keys_land_on_the_default_partitioners_partition() -> None:
    remembering, default = RememberingPartitioner(), DefaultPartitioner()
    rng = random.Random(7)
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        keys = [rng.randbytes(rng.randint(1, 40)) for _ in range(2_000)]
        for key in keys + keys:  # the second time from what it remembers
            assert remembering(key, partitions, partitions) == default(key, partitions, partitions)
    # A key-less message is spread like the default does: over the partitions available.
    assert remembering(None, [0, 1, 2], [2]) == 2
