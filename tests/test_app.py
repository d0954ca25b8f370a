"""The package's import-time promises and the app's wiring, without a broker."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pipeline
from pipeline.catalog import EMAIL, JOB_EVENTS, MEDIA_UPLOAD, QUEUES
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def test_importing_pipeline_opens_no_socket_starts_no_thread_and_writes_no_file(
    tmp_path: Path,
) -> None:
    probe = textwrap.dedent(
        """
        import builtins, os, socket, threading

        def refuse(*args, **kwargs):
            raise AssertionError(f"I/O at import time: {args!r}")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        real_open = builtins.open
        def guarded_open(file, mode="r", *args, **kwargs):
            if any(flag in mode for flag in "wax+"):
                refuse(file, mode)
            return real_open(file, mode, *args, **kwargs)
        builtins.open = guarded_open

        import pipeline
        assert pipeline.app.conf.id == "pipeline", pipeline.app.conf.id
        assert threading.active_count() == 1, threading.enumerate()
        assert not os.listdir("."), os.listdir(".")
        """
    )
    env = {"PATH": "", "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_producer_side_loads_nothing_of_the_worker() -> None:
    # A web service that only enqueues jobs imports pipeline.queues: it must not pay for (or
    # break on) Faust, the S3 client or the agents.
    probe = textwrap.dedent(
        """
        import sys
        import pipeline.queues
        worker = ("faust", "mode", "aioboto3", "botocore", "pipeline.application",
                  "pipeline.topics", "pipeline.agents", "pipeline.runner",
                  "pipeline.services.media")
        print(sorted(m for m in sys.modules if m.startswith(worker)))
        """
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_import_contracts_hold() -> None:
    # pyproject.toml's [tool.importlinter]: the producer side loads no worker module (a static
    # check of every import, function-level ones included) and no package has an import cycle.
    lint_imports = str(Path(sys.executable).with_name("lint-imports"))
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_settings_read_the_pipeline_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9093")
    monkeypatch.setenv("PIPELINE_TOPIC_PREFIX", "staging.")
    settings = Settings()
    assert settings.kafka_broker_urls == ["kafka://k1:9092", "kafka://k2:9093"]
    assert EMAIL.topic.name(settings) == "staging.email"


def test_defaults_point_at_a_local_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PIPELINE_KAFKA_BOOTSTRAP_SERVERS", "PIPELINE_TOPIC_PREFIX", "PIPELINE_APP_ID"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "localhost:9092"
    # The built-in queues (a test's job module may have registered more in this process).
    assert [QUEUES[name].topic.name(settings) for name in ("email", "media-upload")] == [
        "email",
        "media-upload",
    ]
    assert "bench" not in QUEUES  # only make bench registers it (bench/jobs.py)
    assert JOB_EVENTS.name(settings) == "job-events"
    assert MEDIA_UPLOAD.topic.partition_count(settings) == JOB_EVENTS.partition_count(settings) == 6


def test_a_bad_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_TOPIC_PARTITIONS", "0")
    with pytest.raises(ValueError, match="topic_partitions"):
        Settings()


def test_the_readme_layout_names_every_module_and_only_those() -> None:
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout") : readme.index("## Settings")]
    listed = set(re.findall(r"^\| `([^`]+)`", layout, flags=re.MULTILINE))
    package = REPO / "pipeline"
    modules = {
        f"pipeline/{path.name}" + ("/" if path.is_dir() else "")
        for path in package.iterdir()
        if (path.suffix == ".py" and path.name != "__init__.py")
        or (path.is_dir() and not path.name.startswith("__"))
    }
    assert sorted(modules - listed) == []
    assert sorted(path for path in listed if not (REPO / path).exists()) == []


@pytest.mark.parametrize(
    ("role", "loaded", "not_loaded"),
    [
        ("all", {"pipeline.agents.queues", "pipeline.agents.monitor", "pipeline.timers"}, set()),
        ("jobs", {"pipeline.agents.queues", "pipeline.timers"}, {"pipeline.agents.monitor"}),
        ("monitor", {"pipeline.agents.monitor", "pipeline.web"}, {"pipeline.timers"}),
    ],
)
def test_a_role_registers_its_own_modules(
    role: str, loaded: set[str], not_loaded: set[str]
) -> None:
    modules = set(pipeline.role_modules(Settings(role=role)))
    assert loaded <= modules
    assert not modules & not_loaded
    assert "pipeline.web_metrics" in modules  # every role
    assert "pipeline.cli" not in modules  # a console script: it loads no worker
