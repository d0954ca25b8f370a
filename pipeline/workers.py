"""Which workers are up, from the heartbeats each writes to the compacted
``worker-heartbeats`` topic: id, role, web address, the partitions it owns, when it started
and when it last beat. Free of Faust."""

from __future__ import annotations

import json
from typing import Any

from pipeline.events import now_ms

HEARTBEAT_S = 5.0
# A worker silent this long is listed as gone; one gone this long is no longer listed.
SILENT_S = 30.0
FORGET_S = 3600.0


def heartbeat(
    worker_id: str,
    *,
    role: str,
    web: str,
    started_ms: int,
    partitions: dict[str, list[int]],
    stopped: bool = False,
) -> bytes:
    """A worker's heartbeat record value."""
    return json.dumps(
        {
            "worker_id": worker_id,
            "role": role,
            "web": web,
            "started_ms": started_ms,
            "at_ms": now_ms(),
            "partitions": partitions,
            "stopped": stopped,
        }
    ).encode()


class Roster:
    """The latest heartbeat of each worker."""

    def __init__(self) -> None:
        self._beats: dict[str, dict[str, Any]] = {}

    def apply(self, value: bytes | None) -> None:
        """Take one heartbeat record (a value that is not one is ignored)."""
        try:
            beat = json.loads(value) if value else None
        except ValueError:
            return
        # Anyone who can produce to the topic can write here: only well-formed beats count.
        if (
            isinstance(beat, dict)
            and isinstance(beat.get("worker_id"), str)
            and all(isinstance(beat.get(name), int) for name in ("at_ms", "started_ms"))
            and isinstance(beat.get("partitions"), dict)
        ):
            self._beats[beat["worker_id"]] = beat

    def workers(self, at_ms: int | None = None) -> list[dict[str, Any]]:
        """Every worker heard from within ``FORGET_S``, with ``state`` up, gone (silent for
        ``SILENT_S``) or stopped, newest start first."""
        now = at_ms if at_ms is not None else now_ms()
        listed = []
        for beat in self._beats.values():
            silent_s = (now - int(beat.get("at_ms") or 0)) / 1000
            if silent_s > FORGET_S:
                continue
            state = "stopped" if beat.get("stopped") else "gone" if silent_s > SILENT_S else "up"
            listed.append({**beat, "state": state, "silent_s": round(max(silent_s, 0.0), 1)})
        return sorted(listed, key=lambda beat: -int(beat.get("started_ms") or 0))
