"""The dashboard in a real browser (Debian's Chromium driven by Playwright): the overview,
pausing a queue, paging through a state's jobs, a job's page, redriving every dead letter."""

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
# A folder to write one screenshot per page into (the README's are made this way).
SCREENSHOTS = os.environ.get("PIPELINE_DASHBOARD_SCREENSHOTS")
OTP = "333444"


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return CHROMIUM


async def test_the_dashboard_pages_pause_and_redrive_all(
    chromium: str,
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
    tmp_path: Path,
) -> None:
    from playwright.async_api import Page, async_playwright

    worker = await start_worker(**smtp_sink.worker_env())
    smtp_sink.refuse.add("gone@example.com")
    async with EmailQueue.connect(pipeline_settings) as queue:
        fine = [
            await queue.add_otp_email_job(
                OtpEmailJob(email=f"fine{n}@example.com", customer_name="Fine", otp=OTP)
            )
            for n in range(25)
        ]
        dead = [
            await queue.add_otp_email_job(
                OtpEmailJob(email="gone@example.com", customer_name="Gone", otp=OTP),
                job_id=f"gone-{n}",
            )
            for n in range(2)
        ]
    await event_log.wait_for(fine, EventType.COMPLETED)
    await event_log.wait_for(dead, EventType.DEAD_LETTERED)
    shots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path

    async def snap(page: Page, name: str) -> None:
        await page.screenshot(path=str(shots / f"dashboard-{name}.png"), full_page=True)
        assert OTP not in await page.content()

    base = f"http://127.0.0.1:{worker.env['PIPELINE_WEB_PORT']}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("dialog", lambda dialog: dialog.accept())

        # The overview: current depths, the worker and its partitions, lag, failures.
        await page.goto(f"{base}/")
        row = page.locator('#queues tbody tr[data-queue="email"]')
        await row.locator("td", has_text="25").first.wait_for()
        cells = await row.locator("td").all_inner_texts()
        assert cells[:7] == ["email", "0", "0", "0", "25", "0", "2"]
        worker_row = page.locator("#workers tbody tr")
        await worker_row.first.wait_for()
        assert "up" in await worker_row.first.inner_text()
        assert "email [" in await worker_row.first.inner_text()
        await page.locator("#failures tbody tr", has_text="gone-0").wait_for()
        await snap(page, "overview")

        # Pause the queue on every worker, then resume it.
        await row.get_by_role("button", name="Pause").click()
        await row.locator("td", has_text="paused").wait_for(timeout=15_000)
        await worker.wait_for_log(r"queue email paused by an operator", 15)
        await row.get_by_role("button", name="Resume").click()
        await row.locator("td", has_text="running").wait_for(timeout=15_000)
        await worker.wait_for_log(r"queue email resumed by an operator", 15)

        # A state's jobs, a page of 20 at a time.
        await page.goto(f"{base}/#/jobs/email/completed/0")
        rows = page.locator("#jobs tbody tr")
        await rows.nth(19).wait_for()
        assert await rows.count() == 20
        await page.locator("#next").click()
        await page.locator("#prev").wait_for()
        await rows.first.wait_for()
        assert await rows.count() == 5
        await snap(page, "jobs")

        # A job's page, found by its id: state, timeline, masked data.
        await page.fill("#search input", fine[0])
        await page.press("#search input", "Enter")
        await page.locator("#job", has_text="completed").wait_for()
        data = page.locator("#data", has_text="fine0@example.com")
        await data.wait_for()
        assert "**********" in await data.inner_text()
        assert await page.locator("#timeline tbody tr").count() >= 2
        await snap(page, "job")

        # Dead letters: redrive them all once the mail server takes them.
        await page.goto(f"{base}/#/dlq/email")
        letters = page.locator("#dlq tbody tr")
        await letters.nth(1).wait_for()
        assert "refused" in await letters.first.inner_text()
        await snap(page, "dlq")
        smtp_sink.refuse.clear()
        await page.locator("#redrive-all").click()
        await letters.first.wait_for(state="detached", timeout=15_000)
        await browser.close()

    done = await event_log.wait_for(dead, EventType.COMPLETED)
    assert all(event.attempt == 1 for event in done.values())
    assert len(smtp_sink.messages_to("gone@example.com")) == 2


async def test_with_a_token_the_browser_asks_for_it_once(
    chromium: str, start_worker: StartWorker
) -> None:
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    token = "dash-" + "9" * 16
    worker = await start_worker(PIPELINE_WEB_TOKEN=token)
    base = f"http://127.0.0.1:{worker.env['PIPELINE_WEB_PORT']}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        stranger = await browser.new_page()
        # Headless, nobody answers the browser's prompt: the navigation fails.
        with pytest.raises(PlaywrightError, match="AUTH"):
            await stranger.goto(f"{base}/")
        assert (await stranger.request.get(f"{base}/")).status == 401
        # As a person would type it into the browser's prompt: any user name, the token.
        context = await browser.new_context(http_credentials={"username": "ops", "password": token})
        page = await context.new_page()
        await page.goto(f"{base}/")
        # The page's own requests (the queues, the workers) carry it too.
        await page.locator('#queues tbody tr[data-queue="email"]').wait_for()
        await page.locator("#workers tbody tr").first.wait_for()
        await browser.close()
