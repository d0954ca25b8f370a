"""Faust's partition assignor, told the changelog topics of every role's tables.

Faust's group leader decides which assigned topics are table changelogs (the URLs that route a
key's web request, the standby replicas) from the tables its own process declared. A leader with
role ``jobs`` declares no monitor tables and one with role ``monitor`` no job-state tables: the
monitor's tables would get no route to their owner (``/jobs/{id}`` answered 503) and the job
states no standby. Here the leader counts every role's changelogs, named from the settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from faust.assignor import PartitionAssignor as FaustPartitionAssignor
from faust.types.tables import TableManagerT


class _EveryRolesTables:
    """The app's table manager, with the changelog topics of every role's tables."""

    def __init__(self, tables: Any, changelogs: Callable[[], set[str]]) -> None:
        self._tables = tables
        self._changelogs = changelogs

    @property
    def changelog_topics(self) -> set[str]:
        own: set[str] = self._tables.changelog_topics
        return own | self._changelogs()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tables, name)


class PartitionAssignor(FaustPartitionAssignor):
    """Faust's assignor, whose table manager knows every role's changelog topics."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        every = _EveryRolesTables(self._table_manager, app.every_changelog)
        self._table_manager = cast(TableManagerT, every)
