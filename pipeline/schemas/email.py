"""Email job payloads. Secrets (codes, reset links) are ``SecretStr``: masked in every repr."""

from __future__ import annotations

from pydantic import EmailStr, Field, SecretStr

from pipeline.schemas.jobs import JobModel


class OtpEmailJob(JobModel):
    """A one-time code for verifying an email address."""

    email: EmailStr = Field(description="Recipient address.")
    customer_name: str = Field(min_length=1, max_length=200, description="Name in the greeting.")
    otp: SecretStr = Field(min_length=4, max_length=12, description="The one-time code.")
    expires_in_minutes: int = Field(10, ge=1, le=1440, description="How long the code is valid.")


class DailyDigestEmailJob(JobModel):
    """The daily digest mail of one recipient."""

    email: EmailStr = Field(description="Recipient address.")
    customer_name: str = Field(min_length=1, max_length=200, description="Name in the greeting.")
    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="The day the digest covers.")


class ForgotPasswordEmailJob(JobModel):
    """A password-reset link."""

    email: EmailStr = Field(description="Recipient address.")
    customer_name: str = Field(min_length=1, max_length=200, description="Name in the greeting.")
    reset_url: SecretStr = Field(
        min_length=8, max_length=2000, description="The reset link; carries a token."
    )
    expires_in_minutes: int = Field(30, ge=1, le=1440, description="How long the link is valid.")
