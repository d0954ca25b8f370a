"""``faust -A pipeline worker --help`` with the web server's real defaults.

Faust writes its worker options' help when it is imported, from its own environment variables
("default: 0.0.0.0"), but this app binds the web server where ``PIPELINE_WEB_HOST`` and
``PIPELINE_WEB_PORT`` say (127.0.0.1:6066 unless set): the help is rewritten to say so. The
app is built before click prints a subcommand's help, so this runs in time.
"""

from __future__ import annotations

from faust.cli.base import cli

from pipeline.settings import Settings


def tell_web_defaults(settings: Settings) -> None:
    """Make the worker command's help name the web host and port ``settings`` give."""
    command = cli.commands.get("worker")
    for param in command.params if command is not None else []:
        if param.name == "web_bind":
            param.help = (  # type: ignore[attr-defined]  # click.Option has it; Parameter not
                f"Interface the web server binds (default: {settings.web_host}, from "
                "PIPELINE_WEB_HOST)"
            )
        elif param.name == "web_host":
            param.help = (  # type: ignore[attr-defined]
                f"Host name the other workers reach this one's web server at (default: "
                f"{settings.web_host}, from PIPELINE_WEB_HOST)"
            )
        elif param.name == "web_port":
            param.help = (  # type: ignore[attr-defined]
                f"Port of the web server (default: {settings.web_port}, from PIPELINE_WEB_PORT)"
            )
