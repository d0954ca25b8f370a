"""Where a media job's file comes from: the staging directory or the staging bucket.

Both are read in chunks (to probe them) and in multipart-sized parts (to upload them), never
whole.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

READ_CHUNK_BYTES = 1024 * 1024


class Source(Protocol):
    """A staged file."""

    name: str

    async def version(self) -> str:
        """Changes whenever the content may have changed."""
        ...

    def chunks(self, size: int) -> AsyncIterator[bytes]:
        """The content, ``size`` bytes at a time."""
        ...

    def parts(self, size: int) -> AsyncIterator[Any]:
        """Request bodies of ``size`` bytes (the last one shorter) for a multipart upload."""
        ...

    async def delete(self) -> None: ...


class FileWindow(io.RawIOBase):
    """``length`` bytes of a file from ``offset``, as a seekable stream: botocore reads it to
    sign the request and aiohttp to send it, each in small pieces."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._offset = offset
        self._length = length
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(base + offset, 0), self._length)
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._length - self._position)
        if wanted <= 0:
            return 0
        self._file.seek(self._offset + self._position)
        count = self._file.readinto(memoryview(buffer)[:wanted]) or 0
        self._position += count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


class LocalSource:
    """A file in the staging directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name

    async def version(self) -> str:
        """Size and modification time."""
        stat = await asyncio.to_thread(self.path.stat)
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        """The file's bytes, ``size`` at a time, read off the event loop."""
        with self.path.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, size):
                yield chunk

    async def parts(self, size: int) -> AsyncIterator[Any]:
        """Windows on the file: no part is ever held in memory."""
        total = (await asyncio.to_thread(self.path.stat)).st_size
        for offset in range(0, total, size):
            window = FileWindow(self.path, offset, min(size, total - offset))
            try:
                yield window
            finally:
                window.close()

    async def delete(self) -> None:
        """Remove the staged file."""
        await asyncio.to_thread(self.path.unlink, missing_ok=True)


class S3Source:
    """An object in the staging bucket."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self.name = PurePosixPath(key).name

    async def version(self) -> str:
        """The object's ETag."""
        head = await self._client.head_object(Bucket=self.bucket, Key=self.key)
        return str(head["ETag"])

    async def parts(self, size: int) -> AsyncIterator[Any]:
        """Parts downloaded one at a time (a network source must be buffered)."""
        part = bytearray()
        async for chunk in self.chunks(READ_CHUNK_BYTES):
            part += chunk
            if len(part) >= size:
                yield bytes(part[:size])
                del part[:size]
        if part:
            yield bytes(part)

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        """The object's bytes, ``size`` at a time at most."""
        response = await self._client.get_object(Bucket=self.bucket, Key=self.key)
        body = response["Body"]
        try:
            async for chunk in body.iter_chunks(size):
                yield chunk
        finally:
            body.close()

    async def delete(self) -> None:
        """Remove the staged object."""
        await self._client.delete_object(Bucket=self.bucket, Key=self.key)
