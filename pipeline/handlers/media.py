"""Media-upload job handlers."""

from __future__ import annotations

from pipeline.catalog import MEDIA_UPLOAD
from pipeline.jobs import JobContext, registry
from pipeline.retry import RetryPolicy
from pipeline.schemas.jobs import JobName
from pipeline.schemas.media import MediaUploadJob


@registry.job(
    JobName.MEDIA_UPLOAD,
    queue=MEDIA_UPLOAD,
    model=MediaUploadJob,
    retry=RetryPolicy(attempts=5, backoff_s=2.0),
)
async def upload_media(job: MediaUploadJob, ctx: JobContext) -> dict[str, str]:
    """Move the staged file into the destination bucket."""
    result: dict[str, str] = await ctx.services.media.upload(
        job, job_id=ctx.job_id, progress=ctx.report_progress
    )
    return result
