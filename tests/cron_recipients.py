"""A recipient source for the cron tests, loaded by the worker through its settings."""

from __future__ import annotations

from pipeline.cron import Recipient
from pipeline.settings import Settings


async def three(settings: Settings) -> list[Recipient]:
    return [Recipient(f"reader{i}@example.com", f"Reader {i}") for i in range(3)]
