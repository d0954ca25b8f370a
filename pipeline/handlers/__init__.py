"""Job handlers, one module per job family. Importing this package registers them."""

from pipeline.handlers import bench, email, media
from pipeline.jobs import registry

__all__ = ["bench", "email", "media", "registry"]
