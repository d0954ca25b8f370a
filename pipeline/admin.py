"""Creating and deleting the project's topics from outside a worker (producers, command line,
tests, benchmarks)."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from pipeline.settings import Settings
from pipeline.topics import TopicSpec


async def ensure_topics(settings: Settings, specs: Iterable[TopicSpec]) -> None:
    """Create each topic that does not exist yet with its declared partitions.

    A producer that ran before any worker would otherwise get the broker's auto-created topic
    and its default partition count.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=spec.name(settings),
                num_partitions=spec.partition_count(settings),
                replication_factor=settings.topic_replication_factor,
            )
            for spec in specs
            if spec.name(settings) not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, *_ in response.topic_errors:
                # Already there means another process won the race: what we wanted.
                if code and for_code(code) is not TopicAlreadyExistsError:
                    raise for_code(code)(f"could not create topic {name}")
    finally:
        await admin.close()


async def delete_topics(bootstrap_servers: str, marker: str) -> None:
    """Delete every topic whose name holds ``marker``: a test's or a benchmark run's topics,
    Faust's changelogs included."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if marker in name]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()
