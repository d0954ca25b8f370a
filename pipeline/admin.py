"""Creating and deleting the project's topics from outside a worker (producers, command line,
tests, benchmarks)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.metadata import MetadataRequest

from pipeline.catalog import TopicSpec
from pipeline.connection import client_options, connect_one, refusal, start_client
from pipeline.errors import ConfigurationError
from pipeline.settings import Settings

logger = logging.getLogger(__name__)


REFUSALS_BEFORE_GIVING_UP = 3


async def kafka_answers(settings: Settings) -> bool:
    """Whether one metadata round trip to the settings' brokers lists a broker."""
    client = AIOKafkaClient(**client_options(settings), request_timeout_ms=3000)
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except (KafkaError, OSError):
        return False
    finally:
        await client.close()


async def partition_counts(settings: Settings, names: Iterable[str]) -> dict[str, int]:
    """Partitions of each of ``names`` that exists, as the broker's metadata says: the one
    place partition counts are looked up (asking creates no topic)."""
    client = AIOKafkaClient(**client_options(settings))
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
    pause_s, tries, refusals = 1.0, 0, 0
    while True:
        # aiokafka's own connection errors are summarised by pipeline.logs.FloodFilter.
        answered = await kafka_answers(settings)
        tries += 1
        refused = None if answered else await refusal(settings)
        refusals = refusals + 1 if refused is not None else 0
        # A closed connection may be a broker shutting down: only a repeated one is an answer.
        if refused is not None and (refused.definite or refusals >= REFUSALS_BEFORE_GIVING_UP):
            raise refused
        if answered:
            if tries > 1:
                logger.warning("Kafka at %s answers now", settings.kafka_bootstrap_servers)
            return
        logger.warning(
            "%s (try %d); trying again in %.0f s",
            refused or f"Kafka at {settings.kafka_bootstrap_servers} does not answer",
            tries,
            pause_s,
        )
        await asyncio.sleep(pause_s)
        pause_s = min(pause_s * 2, max_pause_s)


def topic_durability(settings: Settings) -> dict[str, str]:
    """Topic configs that keep an acknowledged record through the loss of a broker: it is
    acknowledged (acks all) only once ``min.insync.replicas`` replicas have it (by default one
    less than the replication factor: 2 of 3, so one broker may be lost without losing an
    acknowledged record, and writes go on once new leaders are elected), and a replica that
    missed records never becomes leader (unclean election off, Kafka's default since 0.11, set
    here so that no broker default can turn it on)."""
    min_insync = settings.topic_min_insync_replicas
    if min_insync is None:
        min_insync = max(1, settings.topic_replication_factor - 1)
    return {
        "min.insync.replicas": str(min_insync),
        "unclean.leader.election.enable": "false",
    }


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
    durability = topic_durability(settings)
    compact = {**durability, "cleanup.policy": "compact"}
    wanted: dict[str, tuple[int, dict[str, str]]] = {
        spec.name(settings): (
            spec.partition_count(settings),
            {**(compact if spec.compacted else durability), **dict(spec.config)},
        )
        for spec in specs
    }
    wanted.update((name, (partitions, compact)) for name, partitions in (compacted or {}).items())
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(settings, admin)
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
    if missing:
        await _until_every_broker_lists(settings, {topic.name for topic in missing})


async def _until_every_broker_lists(
    settings: Settings, names: set[str], timeout_s: float = 30.0
) -> None:
    """Wait until every broker's metadata lists ``names``. On a cluster, a broker learns of a
    new topic from the controller a moment after its creation is acknowledged; a client that
    asks that broker meanwhile is told the topic does not exist (a consumer assigned no
    partitions of it until its next metadata refresh, minutes later)."""
    deadline = time.monotonic() + timeout_s
    while True:
        client = AIOKafkaClient(**client_options(settings))
        try:
            await client.bootstrap()
            addresses = [f"{b.host}:{b.port}" for b in client.cluster.brokers()]
        finally:
            await client.close()
        unlisted = {address for address in addresses if not await _lists(settings, address, names)}
        if not unlisted:
            return
        if time.monotonic() > deadline:
            logger.warning("brokers %s do not list new topics yet", ", ".join(sorted(unlisted)))
            return
        await asyncio.sleep(0.1)


async def _lists(settings: Settings, address: str, names: set[str]) -> bool:
    """Whether the broker at ``address`` (that one, not any of the cluster) knows ``names``;
    a broker that cannot be reached counts as knowing them, since no client can ask it either."""
    try:
        conn = await connect_one(settings, address, request_timeout_ms=3000)
    except (OSError, TimeoutError, KafkaError):
        return True
    try:
        # Not auto-created by the asking, whatever the broker's auto.create.topics.enable.
        request = MetadataRequest(sorted(names), allow_auto_topic_creation=False)
        topics = (await conn.send(request)).to_object()["topics"]
    except (TimeoutError, KafkaError):
        return True
    finally:
        conn.close()
    return all(topic["error_code"] == 0 and topic["partitions"] for topic in topics)


async def check_partitions(settings: Settings, specs: Iterable[TopicSpec]) -> None:
    """Refuse to run when a topic exists with another partition count than the settings give it.

    Job-state tables are partitioned like their queue topics, and redrives and delay tiers place
    records by the settings' count: a topic made earlier with another count would put a job's
    record and its state in different partitions, and its duplicates would run again.
    """
    declared = {spec.name(settings): spec.partition_count(settings) for spec in specs}
    found = await partition_counts(settings, declared)
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


async def delete_topics(settings: Settings, marker: str) -> None:
    """Delete every topic whose name holds ``marker``: a test's or a benchmark run's topics,
    Faust's changelogs included."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if marker in name]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def group_lag(settings: Settings, topics: Iterable[str]) -> dict[str, dict[int, int]]:
    """Records after the workers' committed offset in each partition of ``topics`` (by topic,
    then partition): what the consumer group (``settings.app_id``) has yet to finish. A
    partition the group never committed counts from the log's start."""
    names = list(topics)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(settings, admin)
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await start_client(settings, consumer)
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
        counts = await partition_counts(settings, names)
        partitions = [TopicPartition(name, p) for name in names for p in range(counts.get(name, 0))]
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    lag: dict[str, dict[int, int]] = {}
    for tp in partitions:
        done = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else starts[tp]
        lag.setdefault(tp.topic, {})[tp.partition] = max(ends[tp] - done, 0)
    return lag
