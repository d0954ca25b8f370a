"""Job constants, job models and the Avro schemas of lifecycle records."""

from pipeline.schemas.email import ForgotPasswordEmailJob, OtpEmailJob
from pipeline.schemas.jobs import JobModel, JobName, QueueName

__all__ = ["ForgotPasswordEmailJob", "JobModel", "JobName", "OtpEmailJob", "QueueName"]
