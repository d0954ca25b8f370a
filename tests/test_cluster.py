"""On a cluster of three brokers (``KAFKA_NODES=3 deploy/kafka/kafka.sh``, its own, beside the
session's broker): topics made with three replicas, two in sync before an acknowledgement, and a
worker group of two that loses one broker to SIGKILL mid-load and gets it back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.admin import ensure_topics
from pipeline.catalog import EMAIL
from pipeline.settings import Settings
from tests.chaos import Plan, run
from tests.local_kafka import LocalKafka

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalKafka]:
    brokers = LocalKafka.on_free_ports(tmp_path_factory.mktemp("cluster"), nodes=3)
    await brokers.up()
    try:
        yield brokers
    finally:
        await brokers.down()


async def test_topics_get_three_replicas_two_in_sync_and_no_unclean_leaders(
    cluster: LocalKafka, topic_prefix: str
) -> None:
    settings = Settings(
        kafka_bootstrap_servers=cluster.bootstrap(),
        topic_prefix=topic_prefix,
        topic_replication_factor=3,
    )
    await ensure_topics(settings, [EMAIL.topic])
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap())
    await admin.start()
    try:
        name = EMAIL.topic.name(settings)
        [described] = await admin.describe_topics([name])
        assert {len(p["replicas"]) for p in described["partitions"]} == {3}
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        [resource] = response.resources
        configs = {entry[0]: entry[1] for entry in resource[4]}
        assert configs["min.insync.replicas"] == "2"
        assert configs["unclean.leader.election.enable"] == "false"
    finally:
        await admin.close()


@pytest.mark.timeout(420)
async def test_a_broker_killed_under_load_loses_and_repeats_nothing(
    cluster: LocalKafka, tmp_path: Path
) -> None:
    plan = Plan(
        jobs=400, workers=2, kills=0, broker_restart=False, smtp_outage_s=0, load_s=20,
        node_down_s=10,
    )  # fmt: skip
    figures = await run(plan, cluster.bootstrap(), tmp_path, cluster)
    print(figures.report())
    assert figures.failures() == []
    assert figures.delivered == plan.jobs
    assert figures.node_killed is not None
    # Recovery is logged, not flooded: a few lines per worker for the lost connections.
    assert figures.warnings < 60 * plan.workers, figures.report()
