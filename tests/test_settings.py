"""Every setting the README documents exists and is read somewhere, and every setting is
documented (no broker)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.catalog import EMAIL, MEDIA_UPLOAD
from pipeline.settings import LEGACY_QUEUE_VARIABLES, QueueSettings, Settings

REPO = Path(__file__).resolve().parent.parent


def documented() -> set[str]:
    readme = (REPO / "README.md").read_text()
    return set(re.findall(r"`PIPELINE_([A-Z0-9_]+)`", readme))


def source() -> str:
    return "\n".join(
        path.read_text() for path in (REPO / "pipeline").rglob("*.py") if path.name != "settings.py"
    )


def queue_groups() -> dict[str, set[str]]:
    """Settings groups of the built-in queues, with their fields."""
    return {
        name: set(QueueSettings.model_fields)
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, QueueSettings)
    }


def test_every_documented_setting_is_a_setting_and_is_read() -> None:
    fields = set(Settings.model_fields)
    groups = queue_groups()
    nested = {name for name in documented() if "__" in name}
    for name in nested:
        group, _, field = name.lower().partition("__")
        assert field in groups.get(group, set()), name
        assert re.search(rf"\.{field}\b", source()), name
    code = source()
    # Read as settings.<name> (or s.<name>, self._settings.<name>) or kept by pydantic's alias.
    unread = [
        name
        for name in documented() - nested
        if name.lower() in fields and not re.search(rf"\.{name.lower()}\b", code)
    ]
    unknown = [
        name
        for name in documented() - nested
        if name.lower() not in fields and name not in LEGACY_QUEUE_VARIABLES
    ]
    # Variables of the test suite and the local stack, not of the worker.
    unknown = [name for name in unknown if name not in {"DASHBOARD_SCREENSHOTS"}]
    assert unknown == []
    assert unread == []


def test_every_setting_is_documented() -> None:
    names = {n.lower() for n in documented()}
    groups = {name.partition("__")[0] for name in names if "__" in name}
    queue_fields = {name.partition("__")[2] for name in names if "__" in name}
    assert sorted(set(Settings.model_fields) - names - groups) == []
    assert sorted(set(QueueSettings.model_fields) - queue_fields) == []


def test_queue_settings_nest_per_queue_and_keep_the_old_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIPELINE_EMAIL__CONCURRENCY", "5")
    monkeypatch.setenv("PIPELINE_EMAIL_CONCURRENCY", "7")  # the nested name wins
    monkeypatch.setenv("PIPELINE_EMAIL_JOB_TIMEOUT_S", "9")  # an old name alone still counts
    monkeypatch.setenv("PIPELINE_MEDIA_UPLOAD__ENABLED", "false")
    settings = Settings()
    email = EMAIL.settings(settings)
    assert (email.concurrency, email.job_timeout_s) == (5, 9.0)
    # Defaults of the group's own model stay where nothing was set.
    assert (email.rate_limit_jobs, email.rate_limit_period_ms) == (10, 150)
    media = MEDIA_UPLOAD.settings(settings)
    assert (media.enabled, media.concurrency, media.job_timeout_s) == (False, 2, 1800.0)


def test_a_registered_queue_reads_its_group_from_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.catalog import QueueSpec
    from pipeline.errors import ConfigurationError

    spec = QueueSpec("reports", "Report jobs.", settings_group="reports")
    monkeypatch.setenv("PIPELINE_QUEUES__REPORTS__CONCURRENCY", "4")
    assert spec.settings(Settings()).concurrency == 4
    monkeypatch.setenv("PIPELINE_QUEUES__REPORTS__CONCURRENCY", "0")
    with pytest.raises(ConfigurationError, match=r"PIPELINE_QUEUES__REPORTS__.*concurrency: "):
        spec.settings(Settings())
