"""The services one worker shares between its jobs, built from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.services.email import EmailService
from pipeline.services.media import MediaService
from pipeline.settings import Settings


@dataclass
class Services:
    """The services one worker shares between its jobs."""

    email: EmailService
    media: MediaService

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Build every service; none connects before its first use."""
        return cls(email=EmailService(settings), media=MediaService(settings))

    async def close(self) -> None:
        """Close every connection the services hold."""
        await self.email.close()
        await self.media.close()
