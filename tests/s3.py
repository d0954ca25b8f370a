"""A real S3-compatible server for tests: moto's server mode on a free port, over HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

ACCESS_KEY = "test-access"
SECRET_KEY = "test-secret"
REGION = "us-east-1"


@dataclass
class S3Server:
    """moto's S3 server; its data outlives a stop and start (it lives in this process)."""

    port: int
    _server: ThreadedMotoServer | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        """A plain boto3 client, for setting up and checking."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def env(self) -> dict[str, str]:
        """The worker settings that point at this server."""
        return {
            "PIPELINE_S3_ENDPOINT_URL": self.endpoint,
            "PIPELINE_S3_REGION": REGION,
            "PIPELINE_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "PIPELINE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }
