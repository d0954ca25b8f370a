"""Built-in job names, and the base of every job model."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, SerializationInfo, field_serializer

# Passed as serialization context to put secrets on the wire; every other dump masks them.
REVEAL_SECRETS = {"reveal_secrets": True}


class JobName(StrEnum):
    """Built-in job names: the record key of every job."""

    OTP_EMAIL_VERIFICATION = "otp-email-verification"
    FORGOT_PASSWORD_EMAIL = "forgot-password-email"
    DAILY_DIGEST_EMAIL = "daily-digest-email"
    MEDIA_UPLOAD = "media-upload"


class JobModel(BaseModel):
    """Base of job payloads: strict, immutable, and secrets masked unless sent on the wire."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @field_serializer("*", when_used="json")
    def _wire_secret(self, value: Any, info: SerializationInfo) -> Any:
        if isinstance(value, SecretStr):
            context = info.context or {}
            return value.get_secret_value() if context.get("reveal_secrets") else str(value)
        return value

    def to_wire(self) -> bytes:
        """The job's JSON as published to Kafka, secrets included."""
        return self.model_dump_json(context=REVEAL_SECRETS).encode()

    def secret_values(self) -> list[str]:
        """Every secret in the job, so error messages can be scrubbed of them."""
        return [
            value.get_secret_value()
            for value in self.__dict__.values()
            if isinstance(value, SecretStr) and value.get_secret_value()
        ]
