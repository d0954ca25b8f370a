"""The worker process ``faust -A pipeline worker`` runs, without Faust's start-up spinner.

With ``--loglevel warn`` (or higher) Faust draws a progress spinner and, to drive it, sets the
root logger to DEBUG for the life of the process: every ``log.debug`` call in aiokafka and Faust
then builds a log record that no handler prints, on every record sent. That cost a third of the
worker's CPU time in ``make bench``. Without the spinner the root logger keeps the level asked.
"""

from __future__ import annotations

import logging

import faust


class Worker(faust.Worker):
    """Faust's worker with the spinner switched off."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Configure the root logger without the spinner's DEBUG level."""
        self.spinner = None
        super().on_setup_root_logger(logger, level)
