"""Job handlers, one module per job family; importing this package registers the built-in ones.
``load_job_modules`` imports the modules that register a deployment's own."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from pipeline.errors import ConfigurationError
from pipeline.handlers import email, media
from pipeline.jobs import registry

__all__ = ["email", "load_job_modules", "media", "registry"]


def load_job_modules(modules: Iterable[str]) -> None:
    """Import ``modules`` (``settings.job_modules``), which register job types and queues."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(
                f"job module {module!r} cannot be imported ({exc}); check PIPELINE_JOB_MODULES "
                "and that the module is on the worker's Python path"
            ) from exc
