"""The worker process ``faust -A pipeline worker`` runs: ``PIPELINE_LOG_LEVEL``, a log that a
Kafka outage cannot flood, and no start-up spinner.

With ``--loglevel warn`` (or higher) Faust draws a progress spinner and, to drive it, sets the
root logger to DEBUG for the life of the process: every ``log.debug`` call in aiokafka and Faust
then builds a log record that no handler prints, on every record sent. That cost a third of the
worker's CPU time in ``make bench``. Without the spinner the root logger keeps the level asked.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from pipeline import logs


class Worker(faust.Worker):
    """Faust's worker with the settings' log level, a flood filter and no spinner."""

    def __init__(self, app: Any, *services: Any, **kwargs: Any) -> None:
        settings = app.pipeline_settings
        # Set explicitly, PIPELINE_LOG_LEVEL wins over the command line's --loglevel.
        if "log_level" in settings.model_fields_set:
            kwargs["loglevel"] = settings.log_level
        super().__init__(app, *services, **kwargs)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Configure the root logger without the spinner's DEBUG level, then filter floods."""
        self.spinner = None
        super().on_setup_root_logger(logger, level)
        logs.install(logger.handlers)
