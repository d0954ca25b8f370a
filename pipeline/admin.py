"""Creating and deleting the project's topics from outside a worker (producers, command line,
tests, benchmarks)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from pipeline.catalog import TopicSpec
from pipeline.errors import ConfigurationError
from pipeline.settings import Settings

logger = logging.getLogger(__name__)


async def kafka_answers(bootstrap_servers: str) -> bool:
    """Whether one metadata round trip to ``bootstrap_servers`` lists a broker."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except (KafkaError, OSError):
        return False
    finally:
        await client.close()


async def partition_counts(bootstrap_servers: str, names: Iterable[str]) -> dict[str, int]:
    """Partitions of each of ``names`` that exists, as the broker's metadata says: the one
    place partition counts are looked up (asking creates no topic)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers)
    try:
        await client.bootstrap()
        cluster = await client.fetch_all_metadata()
        return {
            name: len(partitions)
            for name in names
            if (partitions := cluster.partitions_for_topic(name))
        }
    finally:
        await client.close()


async def wait_for_kafka(settings: Settings, max_pause_s: float = 5.0) -> None:
    """Return once Kafka answers; until then try again with a growing pause, one line each."""
    pause_s, tries = 1.0, 0
    while True:
        # aiokafka's own connection errors are summarised by pipeline.logs.FloodFilter.
        answered = await kafka_answers(settings.kafka_bootstrap_servers)
        tries += 1
        if answered:
            if tries > 1:
                logger.warning("Kafka at %s answers now", settings.kafka_bootstrap_servers)
            return
        logger.warning(
            "Kafka at %s does not answer (try %d); trying again in %.0f s",
            settings.kafka_bootstrap_servers,
            tries,
            pause_s,
        )
        await asyncio.sleep(pause_s)
        pause_s = min(pause_s * 2, max_pause_s)


async def ensure_topics(
    settings: Settings,
    specs: Iterable[TopicSpec],
    compacted: Mapping[str, int] | None = None,
) -> None:
    """Create each topic that does not exist yet with its declared partitions, and each of the
    ``compacted`` topics (name -> partitions: tables' changelogs) with log compaction.

    A producer that ran before any worker would otherwise get the broker's auto-created topic
    and its default partition count; a worker that subscribed to a changelog before Faust
    created it would skip it ("Ignoring missing topic") or find it with 0 partitions.
    """
    wanted: dict[str, tuple[int, dict[str, str]]] = {
        spec.name(settings): (spec.partition_count(settings), {}) for spec in specs
    }
    wanted.update(
        (name, (partitions, {"cleanup.policy": "compact"}))
        for name, partitions in (compacted or {}).items()
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=config,
            )
            for name, (partitions, config) in wanted.items()
            if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, *_ in response.topic_errors:
                # Already there means another process won the race: what we wanted.
                if code and for_code(code) is not TopicAlreadyExistsError:
                    raise for_code(code)(f"could not create topic {name}")
    finally:
        await admin.close()


async def check_partitions(settings: Settings, specs: Iterable[TopicSpec]) -> None:
    """Refuse to run when a topic exists with another partition count than the settings give it.

    Job-state tables are partitioned like their queue topics, and redrives and delay tiers place
    records by the settings' count: a topic made earlier with another count would put a job's
    record and its state in different partitions, and its duplicates would run again.
    """
    declared = {spec.name(settings): spec.partition_count(settings) for spec in specs}
    found = await partition_counts(settings.kafka_bootstrap_servers, declared)
    wrong = [
        f"{name} has {found[name]} (settings say {count})"
        for name, count in declared.items()
        if name in found and found[name] != count
    ]
    if wrong:
        raise ConfigurationError(
            "topics exist with another partition count: "
            + "; ".join(wrong)
            + ". Set PIPELINE_TOPIC_PARTITIONS to match, or give this deployment new topics "
            "(PIPELINE_TOPIC_PREFIX)."
        )


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
