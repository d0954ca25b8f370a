"""The flood filter that keeps a Kafka outage from filling the worker's log, and settings
errors logged in one line (no broker)."""

from __future__ import annotations

import logging
import sys

from pipeline.errors import ConfigurationError, InternalError
from pipeline.logs import FloodFilter, NoConfigurationTracebacks


def record(name: str, message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_one_line_per_kind_per_interval_then_a_count_of_the_rest() -> None:
    now = [0.0]
    flood = FloodFilter(interval_s=10, clock=lambda: now[0])
    unreachable = "Unable connect to node with id %s"
    assert flood.filter(record("aiokafka.conn", unreachable))
    assert not any(flood.filter(record("aiokafka.conn", unreachable)) for _ in range(500))
    # Another cause is its own kind, and is reported at once.
    assert flood.filter(record("aiokafka.consumer", "Failed fetch messages"))
    now[0] = 10.0
    again = record("aiokafka.conn", unreachable)
    assert flood.filter(again)
    assert "(500 more like this in the last 10 s)" in str(again.msg)


def test_our_own_and_quieter_records_are_never_held_back() -> None:
    flood = FloodFilter(interval_s=10, clock=lambda: 0.0)
    assert all(flood.filter(record("pipeline.runner", "job x dead-lettered")) for _ in range(50))
    assert all(flood.filter(record("aiokafka", "joined", logging.INFO)) for _ in range(50))


def test_a_configuration_error_is_logged_without_its_traceback_and_others_with_it() -> None:
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for error, traceback_kept in (
        (ConfigurationError("set X"), False),
        (InternalError("bug"), True),
    ):
        try:
            raise error
        except Exception:
            logged = logging.LogRecord(
                "mode", logging.ERROR, __file__, 1, "Error: %r", (error,), sys.exc_info()
            )
        assert NoConfigurationTracebacks().filter(logged)
        assert ("Traceback" in handler.format(logged)) is traceback_kept
