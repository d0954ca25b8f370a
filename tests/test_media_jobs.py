"""Media-upload jobs end to end: the producer API, a real worker, Kafka and an S3 server."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pipeline.events import EventType
from pipeline.queues import MediaUploadQueue
from pipeline.schemas import MediaUploadJob
from pipeline.settings import Settings
from tests.kafka_utils import EventLog, read_topic
from tests.s3 import S3Server
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow

StartWorker = Callable[..., Awaitable[WorkerProcess]]
MIB = 1024 * 1024


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def media_env(s3_server: S3Server, staging: Path, **extra: str) -> dict[str, str]:
    return {
        **s3_server.env(),
        "PIPELINE_MEDIA_STAGING_DIR": str(staging),
        "PIPELINE_MEDIA_PROGRESS_INTERVAL_MS": "100",
        **extra,
    }


async def test_small_and_large_files_arrive_identical_with_progress_and_little_memory(
    start_worker: StartWorker,
    s3_server: S3Server,
    staging: Path,
    bucket: str,
    event_log: EventLog,
    pipeline_settings: Settings,
    record_property: Callable[[str, object], None],
) -> None:
    small = b"\x89PNG\r\n\x1a\n" + os.urandom(1016)
    large = os.urandom(50 * MIB)
    (staging / "small.png").write_bytes(small)
    (staging / "large.mp4").write_bytes(large)
    worker = await start_worker(**media_env(s3_server, staging))
    assert worker.process is not None

    async with MediaUploadQueue.connect(pipeline_settings) as queue:
        small_id = await queue.add_media_upload_job(
            MediaUploadJob(source="small.png", bucket=bucket, key_prefix="avatars")
        )
        done = await event_log.wait_for([small_id], EventType.COMPLETED)
        # Measured after a first upload, so the S3 client's one-off set-up is not counted.
        before = memory_kib(worker.process.pid)
        large_id = await queue.add_media_upload_job(
            MediaUploadJob(
                source="large.mp4",
                bucket=bucket,
                key="videos/large.mp4",
                content_type="video/mp4",
                owner_id="u-1",
                metadata={"title": "demo"},
            )
        )
        done |= await event_log.wait_for([large_id], EventType.COMPLETED, timeout_s=120)
    after = memory_kib(worker.process.pid)

    client = s3_server.client()
    for job_id, data in ((small_id, small), (large_id, large)):
        result = done[job_id].result
        stored = client.get_object(Bucket=bucket, Key=result["key"])
        assert hashlib.sha256(stored["Body"].read()).hexdigest() == hashlib.sha256(data).hexdigest()
        assert stored["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert result["sha256"] == hashlib.sha256(data).hexdigest()
        assert result["size"] == str(len(data))
        assert result["etag"] == stored["ETag"].strip('"')
    assert done[small_id].result["key"] == f"avatars/{small_id}.png"
    assert done[small_id].result["parts"] == "1"
    assert done[large_id].result["parts"] == "7"  # 8 MiB parts
    assert done[large_id].result["etag"].endswith("-7")
    assert client.head_object(Bucket=bucket, Key="videos/large.mp4")["Metadata"] == {
        "title": "demo", "owner-id": "u-1", "sha256": hashlib.sha256(large).hexdigest(),
    }  # fmt: skip

    progress = [e for e in event_log.of(large_id) if e.type == EventType.PROGRESS]
    percents = [e.progress_percent for e in progress]
    assert len(progress) >= 2
    assert percents == sorted(percents)
    assert percents[-1] == 100.0
    assert progress[-1].progress_bytes_done == progress[-1].progress_bytes_total == len(large)

    # Streaming: the worker's peak memory grows by far less than the 50 MB it moved (parts are
    # windows on the file, read in small pieces).
    growth_mib = (after["VmHWM"] - before["VmHWM"]) / 1024
    record_property("worker_peak_rss_growth_mib", growth_mib)
    print(f"worker peak RSS {after['VmHWM'] / 1024:.0f} MiB, grew {growth_mib:.1f} MiB")
    assert growth_mib < 25


async def test_storage_down_mid_upload_pauses_the_queue_and_leaves_no_parts_behind(
    start_worker: StartWorker,
    s3_server: S3Server,
    staging: Path,
    bucket: str,
    event_log: EventLog,
    pipeline_settings: Settings,
) -> None:
    (staging / "clip.mp4").write_bytes(os.urandom(40 * MIB))
    await start_worker(**media_env(s3_server, staging, PIPELINE_MEDIA_PART_SIZE_BYTES=str(5 * MIB)))
    async with MediaUploadQueue.connect(pipeline_settings) as queue:
        job_id = await queue.add_media_upload_job(
            MediaUploadJob(source="clip.mp4", bucket=bucket, key="clips/clip.mp4")
        )
    await event_log.wait_for([job_id], EventType.PROGRESS)
    s3_server.stop()
    # The store going away is an outage: the queue pauses and the upload keeps its attempt.
    await event_log.wait_for([""], EventType.QUEUE_PAUSED)
    s3_server.start()
    done = await event_log.wait_for([job_id], EventType.COMPLETED, timeout_s=120)
    await event_log.wait_for([""], EventType.QUEUE_RESUMED)

    assert done[job_id].attempt == 1
    assert "failed" not in event_log.types(job_id)
    [paused] = [e for e in event_log.of("") if e.type == EventType.QUEUE_PAUSED]
    assert paused.queue == "media-upload"
    assert paused.error_message is not None
    assert "StorageUnreachable" in paused.error_message or "unreachable" in paused.error_message
    client = s3_server.client()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == [
        "clips/clip.mp4"
    ]


async def test_unsafe_and_unfit_uploads_are_dead_lettered_and_the_worker_goes_on(
    start_worker: StartWorker,
    s3_server: S3Server,
    staging: Path,
    bucket: str,
    event_log: EventLog,
    pipeline_settings: Settings,
    kafka_bootstrap: str,
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 1016
    (staging.parent / "secret.png").write_bytes(png)
    (staging / "link.png").symlink_to(staging.parent / "secret.png")
    (staging / "big.png").write_bytes(png * 4)
    (staging / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (staging / "fine.png").write_bytes(png)
    await start_worker(**media_env(s3_server, staging, PIPELINE_MEDIA_MAX_BYTES="2048"))

    cases = {
        # The worker's model refuses it before the service sees it.
        "traversal": ("../secret.png", "source path climbs out of the staging directory"),
        "symlink": ("link.png", "outside the staging directory"),
        "missing": ("nowhere.png", "does not exist"),
        "oversize": ("big.png", "over the size limit of 2048"),
        "forbidden": ("run.sh", "is not allowed"),
    }
    async with MediaUploadQueue.connect(pipeline_settings) as queue:
        # Unvalidated models: a traversal is refused at enqueue by the model, but a producer
        # that skips it must find the worker refusing it too.
        ids = {
            name: await queue.add_media_upload_job(
                MediaUploadJob.model_construct(source=source, bucket=bucket, key=f"{name}.bin")
            )
            for name, (source, _) in cases.items()
        }
        dead = await event_log.wait_for(ids.values(), EventType.DEAD_LETTERED)
        fine = await queue.add_media_upload_job(
            MediaUploadJob(source="fine.png", bucket=bucket, key="fine.png")
        )
    await event_log.wait_for([fine], EventType.COMPLETED)

    for name, (_, reason) in cases.items():
        assert reason in (dead[ids[name]].error_message or ""), name
        assert dead[ids[name]].attempt == 1
    letters = await read_topic(
        kafka_bootstrap, f"{pipeline_settings.topic_prefix}media-upload-dead-letter"
    )
    assert {dict(r.headers)["job-id"].decode() for r in letters} == set(ids.values())
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["fine.png"]
