"""Job constants, job models and the Avro schemas of lifecycle records."""

from pipeline.schemas.email import DailyDigestEmailJob, ForgotPasswordEmailJob, OtpEmailJob
from pipeline.schemas.jobs import JobModel, JobName
from pipeline.schemas.media import MediaUploadJob

__all__ = [
    "DailyDigestEmailJob",
    "ForgotPasswordEmailJob",
    "JobModel",
    "JobName",
    "MediaUploadJob",
    "OtpEmailJob",
]
