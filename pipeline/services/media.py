"""Moving staged files into S3-compatible storage with aioboto3.

A file is read twice, never whole: first in chunks to learn its size, SHA-256 and content type
(so an oversize or forbidden file is refused before anything is uploaded), then to upload it,
in one request up to the part size and as a multipart upload above it. A local file's parts
are handed to the client as windows on the file, which botocore and aiohttp read in small
pieces, so memory does not grow with the part size. An upload whose source changed between the
passes (size and mtime, or ETag) is not completed. A failed multipart upload is
aborted; uploads a crashed or failed earlier attempt left for the same key are aborted before a
new one starts, so no orphaned parts stay behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import mimetypes
import posixpath
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol

import aioboto3
import aiohttp
import filetype
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError
from botocore.exceptions import ConnectionError as EndpointUnreachable

from pipeline.errors import DependencyDown, PermanentJobError, TransientJobError
from pipeline.schemas import media as media_schema
from pipeline.schemas.media import MediaUploadJob
from pipeline.services.media_sources import READ_CHUNK_BYTES, LocalSource, S3Source, Source
from pipeline.settings import Settings

logger = logging.getLogger(__name__)

SNIFF_BYTES = 8192


class StorageUnavailable(TransientJobError):
    """The object store could not be reached or failed on its side."""


class StorageUnreachable(DependencyDown):
    """No connection to the object store could be made: the queue pauses until it answers."""


class SourceChanged(TransientJobError):
    """The staged file changed while it was being uploaded."""


class MediaRejected(PermanentJobError):
    """The job asks for something it may not: a path outside staging, a forbidden type, ..."""


class Progress(Protocol):
    """Where upload progress goes (the job's progress reporter)."""

    async def __call__(
        self, percent: float, bytes_done: int | None = None, bytes_total: int | None = None
    ) -> None: ...


@dataclass(frozen=True)
class Probe:
    """What the first pass learned about a source."""

    size: int
    sha256: str
    head: bytes
    version: str


def normalize_key(raw: str, *, what: str = "key") -> str:
    """``schemas.media.normalize_key``, refusing with ``MediaRejected`` (a job validated by its
    model never has such a key; a source key read from elsewhere may)."""
    try:
        return media_schema.normalize_key(raw, what=f"destination {what}")
    except ValueError as exc:
        raise MediaRejected(str(exc)) from None


def destination_key(job: MediaUploadJob, job_id: str, extension: str) -> str:
    """The object key: ``key`` under ``key_prefix``, or ``<prefix>/<job id><ext>``."""
    prefix = normalize_key(job.key_prefix, what="key prefix") if job.key_prefix else ""
    name = normalize_key(job.key) if job.key else f"{job_id}{extension}"
    key = posixpath.normpath(f"{prefix}/{name}" if prefix else name)
    if prefix and not key.startswith(prefix + "/"):
        raise MediaRejected("destination key escapes its prefix")
    return key


def sniff_content_type(head: bytes, name: str) -> str:
    """The content type from the first bytes, else from the name."""
    by_bytes = filetype.guess_mime(head) if head else None
    if by_bytes:
        return str(by_bytes)
    by_name, _ = mimetypes.guess_type(name)
    return by_name or "application/octet-stream"


class MediaService:
    """Uploads staged files to S3-compatible storage with one shared client."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._client_lock = asyncio.Lock()

    async def _s3(self) -> Any:
        async with self._client_lock:
            if self._client is None:
                s = self._settings
                config = AioConfig(
                    s3={"addressing_style": s.s3_addressing_style},
                    retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                    # Plain requests that every S3-compatible server accepts.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                self._client = await self._stack.enter_async_context(
                    aioboto3.Session().client(
                        "s3",
                        endpoint_url=s.s3_endpoint_url,
                        region_name=s.s3_region,
                        aws_access_key_id=s.s3_access_key_id,
                        aws_secret_access_key=s.s3_secret_access_key.get_secret_value(),
                        config=config,
                    )
                )
            return self._client

    async def close(self) -> None:
        """Close the client's connections."""
        await self._stack.aclose()
        self._client = None

    async def upload(
        self, job: MediaUploadJob, *, job_id: str, progress: Progress
    ) -> dict[str, str]:
        """Upload the job's source; returns the result summary for the ``completed`` record."""
        try:
            return await self._upload(job, job_id, progress)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "?"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if status >= 500 or status in (408, 429) or code in ("SlowDown", "RequestTimeout"):
                raise StorageUnavailable(f"object store answered {status} {code}") from exc
            raise MediaRejected(f"object store refused the upload: {status} {code}") from exc
        except (
            EndpointUnreachable,
            ConnectionClosedError,
            aiohttp.ClientConnectorError,
            aiohttp.ServerDisconnectedError,
        ) as exc:
            # Refused, or gone mid-request: an outage of the store, not a fault of the job.
            raise StorageUnreachable(f"object store unreachable ({type(exc).__name__})") from exc
        except (TimeoutError, BotoCoreError, aiohttp.ClientError, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise MediaRejected("source file disappeared") from exc
            raise StorageUnavailable(f"object store unavailable ({type(exc).__name__})") from exc

    async def _upload(self, job: MediaUploadJob, job_id: str, progress: Progress) -> dict[str, str]:
        s = self._settings
        client = await self._s3()
        source = self._resolve_source(job.source, client)
        probe = await self._probe(source)
        content_type = (
            (job.content_type or sniff_content_type(probe.head, source.name))
            .split(";")[0]
            .strip()
            .lower()
        )
        if content_type not in s.media_allowed_content_types:
            raise MediaRejected(f"content type {content_type} is not allowed")
        extension = mimetypes.guess_extension(content_type) or PurePosixPath(source.name).suffix
        key = destination_key(job, job_id, extension)
        metadata = {**job.metadata, "sha256": probe.sha256}
        if job.owner_id:
            metadata["owner-id"] = job.owner_id
        await self._abort_stale_uploads(client, job.bucket, key)

        if probe.size <= s.media_part_size_bytes:
            body = b"".join([chunk async for chunk in source.chunks(READ_CHUNK_BYTES)])
            if hashlib.sha256(body).hexdigest() != probe.sha256:
                raise SourceChanged("source changed during the upload; trying again")
            response = await client.put_object(
                Bucket=job.bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata
            )
            parts = 1
            await progress(100.0, probe.size, probe.size)
        else:
            response, parts = await self._multipart(
                client, source, job.bucket, key, content_type, metadata, probe, progress
            )
        if job.delete_source:
            await source.delete()
        return {
            "bucket": job.bucket,
            "key": key,
            "size": str(probe.size),
            "etag": str(response["ETag"]).strip('"'),
            "sha256": probe.sha256,
            "content_type": content_type,
            "parts": str(parts),
        }

    def _resolve_source(self, raw: str, client: Any) -> Source:
        if raw.startswith("s3://"):
            bucket, _, key = raw.removeprefix("s3://").partition("/")
            if (
                not self._settings.media_staging_bucket
                or bucket != self._settings.media_staging_bucket
            ):
                raise MediaRejected("source bucket is not the staging bucket")
            return S3Source(client, bucket, normalize_key(key, what="source key"))
        staging = self._settings.media_staging_dir.resolve()
        # resolve() follows every symlink, so a link pointing out of staging is caught too.
        path = (staging / raw).resolve()
        if not path.is_relative_to(staging):
            raise MediaRejected("source path is outside the staging directory")
        if not path.is_file():
            raise MediaRejected("source file does not exist")
        return LocalSource(path)

    async def _probe(self, source: Source) -> Probe:
        version = await source.version()
        digest = hashlib.sha256()
        size = 0
        head = b""
        async for chunk in source.chunks(READ_CHUNK_BYTES):
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
            size += len(chunk)
            if size > self._settings.media_max_bytes:
                raise MediaRejected(
                    f"source is over the size limit of {self._settings.media_max_bytes} bytes"
                )
            digest.update(chunk)
        return Probe(size=size, sha256=digest.hexdigest(), head=head, version=version)

    async def _abort_stale_uploads(self, client: Any, bucket: str, key: str) -> None:
        listing = await client.list_multipart_uploads(Bucket=bucket, Prefix=key)
        for upload in listing.get("Uploads", []):
            if upload["Key"] == key:
                logger.info("aborting an unfinished multipart upload of %s/%s", bucket, key)
                await client.abort_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload["UploadId"]
                )

    async def _multipart(
        self,
        client: Any,
        source: Source,
        bucket: str,
        key: str,
        content_type: str,
        metadata: dict[str, str],
        probe: Probe,
        progress: Progress,
    ) -> tuple[dict[str, Any], int]:
        created = await client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, Metadata=metadata
        )
        upload_id = created["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            last_report = 0.0
            interval_s = self._settings.media_progress_interval_ms / 1000
            async for body in source.parts(self._settings.media_part_size_bytes):
                number = len(parts) + 1
                answer = await client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                done = min(number * self._settings.media_part_size_bytes, probe.size)
                now = time.monotonic()
                if done < probe.size and now - last_report >= interval_s:
                    last_report = now
                    await progress(round(100 * done / probe.size, 1), done, probe.size)
            if await source.version() != probe.version:
                raise SourceChanged("source changed during the upload; trying again")
            response = await client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        await progress(100.0, probe.size, probe.size)
        return response, len(parts)
