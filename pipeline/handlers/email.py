"""Email job handlers: turn a job into a rendered email and send it."""

from __future__ import annotations

from typing import Any

from pipeline.catalog import EMAIL
from pipeline.jobs import JobContext, registry
from pipeline.schemas.email import DailyDigestEmailJob, ForgotPasswordEmailJob, OtpEmailJob
from pipeline.schemas.jobs import JobName
from pipeline.services.email import render


def message_id(ctx: JobContext) -> str:
    """One Message-ID per job, the same on every attempt: if a worker dies after the server
    accepted a message but before the job was marked done, the re-sent copy carries the same id
    and mail systems that deduplicate on it drop it."""
    return f"<{ctx.job_id}@pipeline.jobs>"


async def send(
    ctx: JobContext, template: str, *, to: str, subject: str, **fields: Any
) -> dict[str, str]:
    """Render ``template`` for ``to`` and send it; the result summary names the message."""
    email = render(template, to=to, subject=subject, message_id=message_id(ctx), **fields)
    return {"message_id": await ctx.services.email.send(email)}


@registry.job(JobName.OTP_EMAIL_VERIFICATION, queue=EMAIL, model=OtpEmailJob)
async def send_otp_email(job: OtpEmailJob, ctx: JobContext) -> dict[str, str]:
    """Send a verification code."""
    return await send(
        ctx, "otp", to=job.email, subject="Your verification code",
        customer_name=job.customer_name, otp=job.otp.get_secret_value(),
        expires_in_minutes=job.expires_in_minutes,
    )  # fmt: skip


@registry.job(JobName.FORGOT_PASSWORD_EMAIL, queue=EMAIL, model=ForgotPasswordEmailJob)
async def send_forgot_password_email(
    job: ForgotPasswordEmailJob, ctx: JobContext
) -> dict[str, str]:
    """Send a password-reset link."""
    return await send(
        ctx, "forgot_password", to=job.email, subject="Reset your password",
        customer_name=job.customer_name, reset_url=job.reset_url.get_secret_value(),
        expires_in_minutes=job.expires_in_minutes,
    )  # fmt: skip


@registry.job(JobName.DAILY_DIGEST_EMAIL, queue=EMAIL, model=DailyDigestEmailJob)
async def send_daily_digest_email(job: DailyDigestEmailJob, ctx: JobContext) -> dict[str, str]:
    """Send one recipient's daily digest."""
    return await send(
        ctx, "daily_digest", to=job.email, subject=f"Your daily digest for {job.day}",
        customer_name=job.customer_name, day=job.day,
    )  # fmt: skip
