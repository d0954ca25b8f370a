"""Media-upload job payloads."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from pipeline.schemas.jobs import JobModel

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class MediaUploadJob(JobModel):
    """Move a staged file into object storage."""

    source: str = Field(
        min_length=1,
        max_length=1024,
        description="A path inside the staging directory, or s3://<staging bucket>/<key>.",
    )
    bucket: str = Field(pattern=BUCKET_PATTERN, description="Destination bucket.")
    key: str | None = Field(
        None, max_length=1024, description="Destination key (under key_prefix, if given)."
    )
    key_prefix: str | None = Field(
        None,
        max_length=512,
        description="Destination folder; without a key the name is made from the job id.",
    )
    content_type: str | None = Field(
        None, max_length=255, description="Content type; sniffed from the bytes when absent."
    )
    owner_id: str | None = Field(None, max_length=255, description="Stored in the metadata.")
    metadata: dict[str, str] = Field(
        default_factory=dict, description="User metadata stored with the object."
    )
    delete_source: bool = Field(False, description="Delete the staged file after the upload.")

    @model_validator(mode="after")
    def _needs_a_destination(self) -> Self:
        if not self.key and not self.key_prefix:
            raise ValueError("give a key, a key_prefix, or both")
        if sum(len(k) + len(v) for k, v in self.metadata.items()) > 1800:
            raise ValueError("metadata is over 1800 bytes (S3 allows 2 KB in all)")
        return self
