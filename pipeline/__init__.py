"""pipeline: background jobs on Apache Kafka, built with Faust.

Importing the package loads nothing of the worker, so a service that only enqueues jobs
(``pipeline.queues``) never loads Faust. ``faust -A pipeline worker`` asks for ``pipeline.app``:
that first access builds the app, imports the job modules the settings name, and registers the
agents, timers and web views of the settings' role (``PIPELINE_ROLE``: jobs, the
monitor, or both); it opens no connection and starts no thread.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.settings import Settings

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    application = importlib.import_module("pipeline.application")
    # Job modules first: they register the queues the agents are made for.
    handlers = importlib.import_module("pipeline.handlers")
    handlers.load_job_modules(application.settings.job_modules)
    for module in role_modules(application.settings):
        importlib.import_module(module)
    return application.app


def role_modules(settings: Settings) -> list[str]:
    """The modules that register what ``settings.role`` runs: agents, timers and web views."""
    modules = ["pipeline.agents.control", "pipeline.agents.retention", "pipeline.web_metrics"]
    if settings.runs_jobs:
        modules += [
            "pipeline.agents.queues",
            "pipeline.agents.delay",
            "pipeline.timers",
        ]
    if settings.runs_monitor:
        modules += ["pipeline.agents.monitor", "pipeline.web", "pipeline.web_actions"]
    return modules
