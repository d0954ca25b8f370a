"""Faust agents, one module per job family. Importing this package registers them on the app."""

from pipeline.agents import bench, delay, email, media, monitor, retention

__all__ = ["bench", "delay", "email", "media", "monitor", "retention"]
