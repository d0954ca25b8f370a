"""A job module of a deployment's own, as the README shows it: a queue and a job type the
worker loads through ``PIPELINE_JOB_MODULES``."""

from __future__ import annotations

from pipeline.catalog import QueueSpec, register_queue
from pipeline.jobs import JobContext, registry
from pipeline.queues import Queue
from pipeline.schemas.jobs import JobModel

REPORTS = register_queue(QueueSpec("reports", "Monthly reports.", settings_group="reports"))


class MonthlyReport(JobModel):
    """One account's report."""

    account_id: str


@registry.job("monthly-report", queue=REPORTS, model=MonthlyReport)
async def monthly_report(job: MonthlyReport, ctx: JobContext) -> dict[str, str]:
    """Pretend to build the report; the result names the account."""
    await ctx.report_progress(50)
    return {"account": job.account_id}


class ReportsQueue(Queue):
    """The producer of the reports queue."""

    queue = REPORTS
