"""The dashboard in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pipeline.events import EventType
from pipeline.queues import EmailQueue
from pipeline.schemas import OtpEmailJob
from pipeline.settings import Settings
from tests.kafka_utils import EventLog
from tests.smtp import SmtpSink
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow

StartWorker = Callable[..., Awaitable[WorkerProcess]]
CHROMIUM = shutil.which("chromium")
# Flags for a headless browser on a machine with no outside network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT = os.environ.get("PIPELINE_DASHBOARD_SCREENSHOT")


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return CHROMIUM


async def test_the_dashboard_shows_queues_and_redrives_a_dead_letter(
    chromium: str,
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
    tmp_path: Path,
) -> None:
    from playwright.async_api import async_playwright

    worker = await start_worker(**smtp_sink.worker_env())
    smtp_sink.refuse.add("gone@example.com")
    async with EmailQueue.connect(pipeline_settings) as queue:
        fine = await queue.add_otp_email_job(
            OtpEmailJob(email="fine@example.com", customer_name="Fine", otp="111222")
        )
        dead = await queue.add_otp_email_job(
            OtpEmailJob(email="gone@example.com", customer_name="Gone", otp="333444")
        )
    await event_log.wait_for([fine], EventType.COMPLETED)
    await event_log.wait_for([dead], EventType.DEAD_LETTERED)

    base = f"http://127.0.0.1:{worker.env['PIPELINE_WEB_PORT']}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await page.goto(f"{base}/")
        row = page.locator("#queues tbody tr", has_text="otp-email-verification")
        await row.wait_for()
        assert (await row.locator("td").all_inner_texts())[:5] == [
            "email", "otp-email-verification", "2", "2", "1",
        ]  # fmt: skip
        letter = page.locator(f'#dlq tbody tr[data-job-id="{dead}"]')
        await letter.wait_for()
        assert "refused" in await letter.inner_text()
        await page.locator("#failures tbody tr", has_text=dead).wait_for()
        await page.screenshot(path=SCREENSHOT or str(tmp_path / "dashboard.png"), full_page=True)
        assert "333444" not in await page.content()

        smtp_sink.refuse.clear()
        await letter.get_by_role("button", name="Redrive").click()
        await letter.wait_for(state="detached")
        await browser.close()

    done = await event_log.wait_for([dead], EventType.COMPLETED)
    assert done[dead].attempt == 1
    assert len(smtp_sink.messages_to("gone@example.com")) == 1
