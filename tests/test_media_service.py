"""The media service against a real S3-compatible server (moto over HTTP), without Kafka."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.schemas import MediaUploadJob
from pipeline.services.media import MediaRejected, MediaService, StorageUnreachable
from pipeline.settings import Settings
from tests.s3 import S3Server

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 1016
MIB = 1024 * 1024


class Recorder:
    """Collects progress reports."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, int | None, int | None]] = []

    async def __call__(
        self, percent: float, bytes_done: int | None = None, bytes_total: int | None = None
    ) -> None:
        self.reports.append((percent, bytes_done, bytes_total))


def service(s3_server: S3Server, staging: Path, **overrides: Any) -> MediaService:
    env = s3_server.env()
    return MediaService(
        Settings(
            s3_endpoint_url=env["PIPELINE_S3_ENDPOINT_URL"],
            s3_access_key_id=env["PIPELINE_S3_ACCESS_KEY_ID"],
            s3_secret_access_key=env["PIPELINE_S3_SECRET_ACCESS_KEY"],
            media_staging_dir=staging,
            media_part_size_bytes=5 * MIB,
            media_progress_interval_ms=0,
            **overrides,
        )
    )


async def test_a_small_file_goes_in_one_request_with_its_checksum(
    s3_server: S3Server, staging: Path, bucket: str
) -> None:
    (staging / "avatar").write_bytes(PNG)
    media = service(s3_server, staging)
    progress = Recorder()
    job = MediaUploadJob(source="avatar", bucket=bucket, key_prefix="users/7", owner_id="7")
    result = await media.upload(job, job_id="job-1", progress=progress)
    await media.close()

    assert result["key"] == "users/7/job-1.png"
    assert result["content_type"] == "image/png"
    assert result["parts"] == "1"
    stored = s3_server.client().get_object(Bucket=bucket, Key=result["key"])
    assert stored["Body"].read() == PNG
    assert stored["ContentType"] == "image/png"
    assert stored["Metadata"] == {"sha256": hashlib.sha256(PNG).hexdigest(), "owner-id": "7"}
    assert progress.reports == [(100.0, len(PNG), len(PNG))]


async def test_a_large_file_goes_multipart_with_monotonic_progress(
    s3_server: S3Server, staging: Path, bucket: str
) -> None:
    data = os.urandom(12 * MIB + 123)
    (staging / "clip.mp4").write_bytes(data)
    media = service(s3_server, staging)
    progress = Recorder()
    job = MediaUploadJob(
        source="clip.mp4", bucket=bucket, key="videos/clip.mp4", content_type="video/mp4",
        delete_source=True,
    )  # fmt: skip
    result = await media.upload(job, job_id="job-2", progress=progress)
    await media.close()

    assert result["parts"] == "3"
    assert result["etag"].endswith("-3")
    stored = s3_server.client().get_object(Bucket=bucket, Key="videos/clip.mp4")
    assert stored["Body"].read() == data
    assert stored["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    percents = [p for p, _, _ in progress.reports]
    assert percents == sorted(percents)
    assert percents[-1] == 100.0
    assert len(percents) == 3
    assert not (staging / "clip.mp4").exists()


async def test_an_s3_staging_source_and_stale_multipart_uploads(
    s3_server: S3Server, staging: Path, bucket: str
) -> None:
    client = s3_server.client()
    staging_bucket = f"{bucket}-staging"
    client.create_bucket(Bucket=staging_bucket)
    client.put_object(Bucket=staging_bucket, Key="in/doc.pdf", Body=b"%PDF-1.7\n" + b"x" * 100)
    client.create_multipart_upload(Bucket=bucket, Key="docs/doc.pdf")  # left by an earlier try
    media = service(s3_server, staging, media_staging_bucket=staging_bucket)
    job = MediaUploadJob(
        source=f"s3://{staging_bucket}/in/doc.pdf", bucket=bucket, key="docs/doc.pdf"
    )
    result = await media.upload(job, job_id="job-3", progress=Recorder())
    await media.close()

    assert result["content_type"] == "application/pdf"
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"source": "../outside.png"}, "source path climbs out of the staging directory"),
        ({"source": "a/../../x.png"}, "source path climbs out of the staging directory"),
        ({"source": "s3:///x.png"}, "has no bucket"),
        ({"source": "s3://staging/a/../x.png"}, "source key may not contain"),
        ({"source": "ok\x00.png"}, "NUL"),
        ({"key": "../../etc/passwd"}, "key may not contain '.' or '..'"),
        ({"key": "///"}, "key is empty"),
        ({"key_prefix": "users/../admin"}, "key prefix may not contain"),
    ],
)
def test_a_source_or_key_that_can_never_work_is_refused_by_the_model(
    fields: dict[str, str], reason: str
) -> None:
    # The producer validates with the model: such a job is refused before it gets an id.
    with pytest.raises(ValidationError, match=reason):
        MediaUploadJob.model_validate(
            {"source": "ok.png", "bucket": "media", "key": "a.png"} | fields
        )


@pytest.mark.parametrize(
    ("source", "key", "reason"),
    [
        ("../outside.png", "a.png", "outside the staging directory"),
        ("escape-link.png", "a.png", "outside the staging directory"),
        ("/etc/hostname", "a.png", "outside the staging directory"),
        ("missing.png", "a.png", "does not exist"),
        ("big.png", "a.png", "over the size limit"),
        ("script.sh", "a.sh", "content type text/x-sh is not allowed"),
        ("ok.png", "../../etc/passwd", "may not contain '.' or '..'"),
        ("s3://other-bucket/ok.png", "a.png", "not the staging bucket"),
    ],
)
async def test_unsafe_or_unfit_jobs_are_refused_before_any_upload(
    s3_server: S3Server, staging: Path, bucket: str, source: str, key: str, reason: str
) -> None:
    (staging.parent / "outside.png").write_bytes(PNG)
    (staging / "escape-link.png").symlink_to(staging.parent / "outside.png")
    (staging / "big.png").write_bytes(PNG * 3)
    (staging / "script.sh").write_bytes(b"#!/bin/sh\nrm -rf /\n")
    (staging / "ok.png").write_bytes(PNG)
    media = service(s3_server, staging, media_max_bytes=2048)
    # Unvalidated, as a record from a producer that skipped the model would be: the worker
    # refuses what the model would (test_a_source_or_key_that_can_never_work_is_refused...).
    job = MediaUploadJob.model_construct(source=source, bucket=bucket, key=key)
    with pytest.raises(MediaRejected, match=reason):
        await media.upload(job, job_id="job-4", progress=Recorder())
    await media.close()
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


async def test_a_key_may_not_escape_its_prefix_and_a_down_store_is_unreachable(
    s3_server: S3Server, staging: Path, bucket: str
) -> None:
    (staging / "ok.png").write_bytes(PNG)
    media = service(s3_server, staging)
    with pytest.raises(MediaRejected, match=r"'\.' or '\.\.'"):
        await media.upload(
            MediaUploadJob.model_construct(
                source="ok.png", bucket=bucket, key_prefix="users/7", key="../8/x.png"
            ),
            job_id="job-5",
            progress=Recorder(),
        )
    s3_server.stop()
    with pytest.raises(StorageUnreachable):
        await media.upload(
            MediaUploadJob(source="ok.png", bucket=bucket, key="x.png"),
            job_id="job-6",
            progress=Recorder(),
        )
    await media.close()
