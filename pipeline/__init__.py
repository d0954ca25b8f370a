"""pipeline: background jobs on Apache Kafka, built with Faust.

``faust -A pipeline worker`` finds the app as ``pipeline.app``. Importing this package builds the
app and registers its agents and timers; it opens no connection and starts no thread.
"""

from pipeline import agents, cli, timers, web
from pipeline.application import app

__all__ = ["agents", "app", "cli", "timers", "web"]
