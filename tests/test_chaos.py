"""The chaos suite's short run (``make chaos`` runs the long one): real workers SIGKILLed under
load, an SMTP outage and hostile records. The broker restart is left to ``make chaos``: the
other tests share this session's broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import Plan, run

pytestmark = pytest.mark.slow


@pytest.mark.timeout(420)
async def test_kills_an_outage_and_hostile_records_lose_and_repeat_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    plan = Plan(jobs=400, kills=2, broker_restart=False, smtp_outage_s=6, load_s=20)
    figures = await run(plan, kafka_bootstrap, tmp_path)
    print(figures.report())
    assert figures.failures() == []
    assert figures.delivered == plan.jobs
    assert figures.kills == plan.kills
