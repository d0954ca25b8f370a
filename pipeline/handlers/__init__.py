"""Job handlers, one module per job family. Importing this package registers them."""

from pipeline.handlers import email, media
from pipeline.jobs import registry

__all__ = ["email", "media", "registry"]
