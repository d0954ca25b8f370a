"""Media-upload job payloads."""

from __future__ import annotations

import posixpath
from typing import Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pipeline.schemas.jobs import JobModel

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


def normalize_key(raw: str, *, what: str = "key") -> str:
    """A key with ``\\`` as ``/``, no empty or leading segments; ``.`` and ``..`` are refused
    (ValueError): no object store key needs them, and they could climb out of a prefix."""
    parts = [part for part in raw.replace("\\", "/").split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ValueError(f"{what} may not contain '.' or '..' segments")
    if not parts:
        raise ValueError(f"{what} is empty")
    return "/".join(parts)


def check_source(raw: str) -> str:
    """Refuse a source no worker could ever accept: an ``s3://`` one without a bucket or with a
    bad key, or a relative path that climbs out of the staging directory."""
    if "\x00" in raw:
        raise ValueError("source may not contain NUL")
    if raw.startswith("s3://"):
        bucket, _, key = raw.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError("source s3://<bucket>/<key> has no bucket")
        normalize_key(key, what="source key")
    elif not raw.startswith("/"):
        normal = posixpath.normpath(raw)
        if normal == ".." or normal.startswith("../"):
            raise ValueError("source path climbs out of the staging directory")
    return raw


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

    @field_validator("source")
    @classmethod
    def _source_can_be_valid(cls, value: str) -> str:
        return check_source(value)

    @field_validator("key", "key_prefix")
    @classmethod
    def _key_can_be_valid(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            normalize_key(value, what=str(info.field_name).replace("_", " "))
        return value

    @model_validator(mode="after")
    def _needs_a_destination(self) -> Self:
        if not self.key and not self.key_prefix:
            raise ValueError("give a key, a key_prefix, or both")
        if sum(len(k) + len(v) for k, v in self.metadata.items()) > 1800:
            raise ValueError("metadata is over 1800 bytes (S3 allows 2 KB in all)")
        return self
