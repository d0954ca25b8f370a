"""Every setting the README documents exists and is read somewhere, and every setting is
documented (no broker)."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def documented() -> set[str]:
    readme = (REPO / "README.md").read_text()
    return set(re.findall(r"`PIPELINE_([A-Z0-9_]+)`", readme))


def source() -> str:
    return "\n".join(
        path.read_text() for path in (REPO / "pipeline").rglob("*.py") if path.name != "settings.py"
    )


def test_every_documented_setting_is_a_setting_and_is_read() -> None:
    fields = set(Settings.model_fields)
    code = source()
    # Read as settings.<name> (or s.<name>, self._settings.<name>) or kept by pydantic's alias.
    unread = [
        name
        for name in documented()
        if name.lower() in fields and not re.search(rf"\.{name.lower()}\b", code)
    ]
    unknown = [name for name in documented() if name.lower() not in fields]
    # Variables of the test suite and the local stack, not of the worker.
    unknown = [name for name in unknown if name not in {"DASHBOARD_SCREENSHOT"}]
    assert unknown == []
    assert unread == []


def test_every_setting_is_documented() -> None:
    assert sorted(set(Settings.model_fields) - {n.lower() for n in documented()}) == []
