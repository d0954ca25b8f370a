"""Faust agents: one per registered queue (``queues``), the delay tiers, the monitor and the
retention sweep. Importing this package registers them on the app."""

from pipeline.agents import delay, monitor, queues, retention

__all__ = ["delay", "monitor", "queues", "retention"]
